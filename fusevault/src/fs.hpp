// The filesystem layer: every operation on a cipherdir opened by fd, using *at() calls
// only. Knows nothing about FUSE; its inode/lookup-count model mirrors the kernel's so the
// bridge is a thin translation. Errors are thrown as FsError(errno).
#pragma once
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "format.hpp"

namespace fusevault {

class FsError : public std::runtime_error {
public:
  explicit FsError(int e, const char* where = "fs") : std::runtime_error(where), err(e) {}
  int err;
};

struct SetAttrRequest {
  bool set_mode = false, set_uid = false, set_gid = false, set_size = false;
  bool set_atime = false, set_mtime = false, atime_now = false, mtime_now = false;
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::uint64_t size = 0;
  timespec atime{}, mtime{};
};

struct DirEntry {
  std::string name;
  unsigned char type;  // DT_*
  std::uint64_t backing_ino;
};

struct FsStats {
  std::size_t nodes, cached_dir_fds;
};

class Fs {
public:
  static constexpr std::uint64_t kRoot = 1;
  struct Entry {
    std::uint64_t ino;
    struct stat st;
  };

  // Takes ownership of root_fd (an O_DIRECTORY fd of the cipherdir).
  Fs(int root_fd, std::shared_ptr<const format::Keys> keys);
  ~Fs();
  Fs(const Fs&) = delete;
  Fs& operator=(const Fs&) = delete;

  Entry lookup(std::uint64_t parent, std::string_view name);  // +1 lookup
  void forget(std::uint64_t ino, std::uint64_t n);
  struct stat getattr(std::uint64_t ino);
  struct stat setattr(std::uint64_t ino, std::uint64_t fh, const SetAttrRequest& r);
  Entry mkdir(std::uint64_t parent, std::string_view name, mode_t mode);            // +1
  Entry create(std::uint64_t parent, std::string_view name, mode_t mode, int flags,
               std::uint64_t& fh);                                                 // +1
  Entry symlink(std::uint64_t parent, std::string_view name, std::string_view target);  // +1
  std::string readlink(std::uint64_t ino);
  Entry link(std::uint64_t ino, std::uint64_t newparent, std::string_view newname);  // +1
  void unlink(std::uint64_t parent, std::string_view name);
  void rmdir(std::uint64_t parent, std::string_view name);
  void rename(std::uint64_t parent, std::string_view name, std::uint64_t newparent,
              std::string_view newname, unsigned flags);
  std::uint64_t open(std::uint64_t ino, int flags);
  void release(std::uint64_t fh);
  std::size_t read(std::uint64_t fh, std::uint64_t off, std::size_t size, char* out);
  std::size_t write(std::uint64_t fh, std::uint64_t off, const char* data, std::size_t size);
  void fsync(std::uint64_t fh, bool datasync);
  void fsyncdir(std::uint64_t ino);
  // Decrypted listing including "." and "..". Undecryptable entries are skipped and, if
  // damaged is given, reported there by their on-disk name.
  std::vector<DirEntry> readdir(std::uint64_t ino, std::vector<std::string>* damaged = nullptr);
  struct statvfs statfs();
  FsStats stats();

  struct Node;
  struct OpenFile;
  struct Handle;
  class Sealer;
  class Opener;

private:
  struct CName {
    std::string disk, encoded;
    bool is_long;
  };
  Node* get(std::uint64_t ino);
  Node* find_backing(const struct stat& st);
  Node* node_for(const struct stat& st, Node* parent, const std::string& disk);
  void add_link(Node* n, std::uint64_t parent, const std::string& disk);
  void remove_link(Node* n, std::uint64_t parent, const std::string& disk);
  void clear_links(Node* n);
  void maybe_delete(Node* n);
  void drop_name(const struct stat& st, std::uint64_t parent, const std::string& disk);
  int dir_fd(Node* n);
  void uncache_dir(std::uint64_t ino);
  const format::DirId& dir_id(Node* n);
  CName cname_for(Node* dir, std::string_view name);
  void write_sidecar(int pfd, const CName& c);
  struct stat stat_node(Node* n, OpenFile** of_out = nullptr);
  struct stat plain_stat(struct stat st, Node* n);
  int open_backing(Node* n, int mode, OpenFile* existing);
  std::shared_ptr<OpenFile> open_locked(Node* n, bool want_write);

  // Content I/O; caller holds the OpenFile's mutex.
  void ensure_header(OpenFile& of);
  void load_block(OpenFile& of, std::uint64_t idx, std::uint64_t size, std::uint8_t* out);
  std::size_t write_chunk(OpenFile& of, std::uint64_t off, const std::uint8_t* data, std::size_t n);
  struct PreSealed;
  bool preseal(OpenFile& of, std::uint64_t off, const std::uint8_t* data, std::size_t n, PreSealed& pre);
  void write_presealed(OpenFile& of, std::uint64_t off, const std::uint8_t* data, std::size_t n, const PreSealed& pre);
  std::size_t read_chunk(OpenFile& of, std::uint64_t off, std::size_t n, std::uint8_t* out);
  void grow(OpenFile& of, std::uint64_t newsize);
  void truncate(OpenFile& of, std::uint64_t newsize);

  void parallel(std::size_t n, const std::function<void(std::size_t, std::size_t)>& fn);
  struct Pool;
  std::unique_ptr<Pool> pool_;
  std::once_flag pool_once_;

  int root_fd_;
  std::shared_ptr<const format::Keys> keys_;
  std::shared_ptr<format::KeySlab> slab_ = std::make_shared<format::KeySlab>();
  std::mutex mu_;  // node table, dir fd cache and every namespace operation
  std::unordered_map<std::uint64_t, std::unique_ptr<Node>> nodes_;
  std::unordered_map<ino_t, Node*> by_backing_;
  std::uint64_t next_ino_ = 2;
  std::size_t dir_cache_cap_;
  std::list<std::uint64_t> lru_;
  std::unordered_map<std::uint64_t, std::pair<int, std::list<std::uint64_t>::iterator>> dir_cache_;
};

}  // namespace fusevault
