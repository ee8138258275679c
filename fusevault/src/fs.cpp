#include "fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <latch>
#include <optional>
#include <thread>
#include <cstring>
#include <utility>

#include "crypto.hpp"

namespace fusevault {

using format::kBlockSize;

struct Fs::Node {
  std::uint64_t ino;
  ino_t backing;
  mode_t type;  // S_IFMT bits
  std::uint64_t nlookup = 0;
  std::uint64_t child_refs = 0;  // links of other nodes that name this one as parent
  struct Link {
    std::uint64_t parent;
    std::string disk;
  };
  std::vector<Link> links;  // known names; a directory has at most one
  std::optional<format::DirId> dirid;
  std::weak_ptr<OpenFile> open;
  bool mapped = true;  // present in by_backing_
};

// One per open regular file (shared by all handles of it): one fd, the header, the
// plaintext size, and the lock that serializes writers of this file.
struct Fs::OpenFile {
  int fd = -1;
  bool writable = false;
  std::shared_mutex mu;
  std::atomic<std::uint64_t> size{0};
  bool has_header = false;
  bool corrupt = false;
  format::FileId id{};
  // Version 2: the key of this file's write session (drawn at its first block write; a new
  // OpenFile or a new file id starts a new one) and the session's next block counter.
  std::shared_ptr<const format::SessionKey> wkey;
  std::uint64_t wcounter = 0;
  // Keys of sessions met while reading, most recently used first.
  std::mutex kmu;
  std::vector<std::shared_ptr<const format::SessionKey>> rkeys;
  // Writes sealing outside the lock ([off, end) each; under mu), and their commits: a write
  // past the end waits for the one that will extend the file up to it (see Fs::write).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> presealing;
  std::condition_variable_any committed;
  ~OpenFile() {
    if (fd >= 0) ::close(fd);
  }
};

struct Fs::Handle {
  std::uint64_t ino;
  std::shared_ptr<OpenFile> of;
};

// Spreads the block crypto (and the pwrite) of one large write made under its file's lock
// over the CPUs: one that cannot be presealed (see Fs::preseal), or whose presealed blocks
// were sealed again. Reads do without it (see read_chunk). Threads are started on
// first use (never before a daemonizing fork) and joined with the Fs. A request comes every
// 100 us or so while a file streams, and waking a sleeping thread costs tens of us on a
// virtual machine, so an idle worker spins briefly before it sleeps, and the caller runs
// whatever parts of its own request no worker has taken yet instead of waiting for one.
struct Fs::Pool {
  using Fn = std::function<void(std::size_t, std::size_t)>;
  struct Job {
    const Fn* fn;
    std::size_t begin, end;
    std::latch* done;
  };
  static constexpr auto kSpin = std::chrono::microseconds(50);
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> q;
  std::atomic<std::size_t> queued{0};
  std::size_t sleepers = 0;  // under mu
  std::vector<std::thread> threads;
  std::atomic<bool> stop{false};

  explicit Pool(unsigned n) {
    for (unsigned i = 0; i < n; i++)
      threads.emplace_back([this] {
        for (;;) {
          const auto until = std::chrono::steady_clock::now() + kSpin;
          while (queued.load(std::memory_order_acquire) == 0 && !stop.load(std::memory_order_relaxed) &&
                 std::chrono::steady_clock::now() < until) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
          }
          Job j;
          {
            std::unique_lock l(mu);
            sleepers++;
            cv.wait(l, [this] { return stop || !q.empty(); });
            sleepers--;
            if (stop && q.empty()) return;
            j = pop_locked();
          }
          (*j.fn)(j.begin, j.end);
          j.done->count_down();
        }
      });
  }
  ~Pool() {
    {
      std::lock_guard l(mu);
      stop = true;
    }
    cv.notify_all();
    for (auto& t : threads) t.join();
  }
  Job pop_locked() {
    Job j = q.front();
    q.pop_front();
    queued.fetch_sub(1, std::memory_order_relaxed);
    return j;
  }
  // fn must not throw. Runs [0, n) in parts; the caller's thread takes the first part, then
  // any part still queued.
  void run(std::size_t n, const Fn& fn) {
    const std::size_t parts = std::min<std::size_t>(2 * (threads.size() + 1), n);
    const std::size_t chunk = (n + parts - 1) / parts;
    const std::size_t used = (n + chunk - 1) / chunk;
    std::latch done(static_cast<std::ptrdiff_t>(used - 1));
    {
      std::lock_guard l(mu);
      for (std::size_t p = 1; p < used; p++) q.push_back({&fn, p * chunk, std::min(n, (p + 1) * chunk), &done});
      queued.fetch_add(used - 1, std::memory_order_release);
      if (sleepers > 0) cv.notify_all();
    }
    fn(0, std::min(n, chunk));
    for (;;) {
      Job j;
      {
        std::lock_guard l(mu);
        auto it = std::find_if(q.begin(), q.end(), [&](const Job& x) { return x.done == &done; });
        if (it == q.end()) break;
        j = *it;
        q.erase(it);
        queued.fetch_sub(1, std::memory_order_relaxed);
      }
      fn(j.begin, j.end);
      done.count_down();
    }
    done.wait();
  }
};

namespace {

[[noreturn]] void fail(int e) { throw FsError(e); }
[[noreturn]] void fail_errno() { throw FsError(errno ? errno : EIO); }

constexpr std::uint64_t nblocks(std::uint64_t size) { return (size + kBlockSize - 1) / kBlockSize; }
constexpr std::size_t kChunkBlocks = 256;  // 1 MiB of plaintext per I/O syscall

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int release() { return std::exchange(fd, -1); }
};

void pread_exact(int fd, std::uint8_t* p, std::size_t n, std::uint64_t off) {
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail_errno();
    }
    if (r == 0) fail(EIO);  // ciphertext shorter than its size promised
    p += r;
    n -= static_cast<std::size_t>(r);
    off += static_cast<std::uint64_t>(r);
  }
}

void pwrite_all(int fd, const std::uint8_t* p, std::size_t n, std::uint64_t off) {
  while (n > 0) {
    ssize_t r = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail_errno();
    }
    p += r;
    n -= static_cast<std::size_t>(r);
    off += static_cast<std::uint64_t>(r);
  }
}

void pwritev_all(int fd, iovec* iov, int n, std::uint64_t off) {
  while (n > 0) {
    ssize_t r = ::pwritev(fd, iov, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail_errno();
    }
    off += static_cast<std::uint64_t>(r);
    auto left = static_cast<std::size_t>(r);
    while (n > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --n;
    }
    if (n > 0) {
      iov->iov_base = static_cast<std::uint8_t*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
}

std::vector<std::uint8_t>& tls_buf(int which) {
  thread_local std::vector<std::uint8_t> bufs[4];
  return bufs[which];
}

std::string sidecar_name(const std::string& disk) { return disk + format::kLongSuffix; }

bool read_small_file(int dfd, const char* name, std::string& out, std::size_t max) {
  // O_NONBLOCK: a FIFO planted in the cipherdir in a file's place must not hang the
  // server in open() (or read()); anything but a regular file is refused.
  Fd f(::openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (f.fd < 0) return false;
  struct stat fst {};
  if (::fstat(f.fd, &fst) != 0 || !S_ISREG(fst.st_mode)) return false;
  out.resize(max + 1);
  std::size_t got = 0;
  while (got < out.size()) {
    ssize_t r = ::read(f.fd, out.data() + got, out.size() - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  if (got > max) return false;
  out.resize(got);
  return true;
}

void write_new_file(int dfd, const char* name, const void* p, std::size_t n, mode_t mode) {
  Fd f(::openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (f.fd < 0) fail_errno();
  pwrite_all(f.fd, static_cast<const std::uint8_t*>(p), n, 0);
}

constexpr std::size_t kReadKeyCache = 16;

}  // namespace

// Seals the blocks of one write request. Version 1 draws all nonces with one call; version
// 2 takes consecutive counters of the file's write session, so under one key no nonce is
// ever used twice (a restored old copy of a file gets a new session, hence a new key).
// Made under the file's lock; seal() may then run on several threads at once, with or
// without that lock.
class Fs::Sealer {
public:
  Sealer(const Fs& fs, OpenFile& of, std::size_t count) : keys_(*fs.keys_), id_(of.id) {
    const format::Keys& keys = keys_;
    if (keys.layout().version == format::kFormatV1) {
      nonces_ = &tls_buf(1);
      nonces_->resize(count * crypto::kNonceBytes);
      crypto::random_bytes(nonces_->data(), nonces_->size());
      return;
    }
    // A session re-keys after 2^32 block writes (16 TiB), far inside AES-GCM's bounds.
    if (!of.wkey || of.wcounter + count > (std::uint64_t{1} << 32)) {
      format::KeyId kid;
      crypto::random_bytes(kid.data(), kid.size());
      of.wkey = std::make_shared<const format::SessionKey>(keys, of.id, kid, fs.slab_);
      of.wcounter = 0;
    }
    key_ = of.wkey;
    base_ = of.wcounter;
    of.wcounter += count;
  }
  void seal(std::size_t k, std::uint8_t* out, const std::uint8_t* plain, std::size_t len, std::uint64_t idx,
            bool last) const {
    if (nonces_)
      format::seal_block(out, plain, len, id_, idx, last, nonces_->data() + k * crypto::kNonceBytes,
                         keys_.content());
    else
      format::seal_block_v2(out, plain, len, id_, idx, last, *key_, base_ + k);
  }

private:
  const format::Keys& keys_;
  const format::FileId id_;  // a copy: a presealing thread seals without the file's lock
  std::vector<std::uint8_t>* nonces_ = nullptr;
  std::shared_ptr<const format::SessionKey> key_;  // the one its counters belong to
  std::uint64_t base_ = 0;
};

// Opens the blocks of one read. Version 2 first resolves the session key of every block in
// the buffer (the write session's, the file's small cache, or derived once), so open() only
// compares key ids.
class Fs::Opener {
public:
  Opener(const Fs& fs, OpenFile& of, const std::uint8_t* cbuf, std::size_t count)
      : keys_(*fs.keys_), slab_(fs.slab_), of_(of) {
    const auto& l = keys_.layout();
    if (l.version == format::kFormatV1) return;
    for (std::size_t k = 0; k < count; k++) {
      const std::uint8_t* kid = cbuf + k * l.cipher_block();
      if (!find(kid)) keys_used_.push_back(resolve(format::block_key_id(kid)));
    }
  }
  bool open(std::uint8_t* out, const std::uint8_t* in, std::size_t len, std::uint64_t idx, bool last) const {
    if (keys_.layout().version == format::kFormatV1)
      return format::open_block(out, in, len, of_.id, idx, last, keys_.content());
    const format::SessionKey* k = find(in);
    return k && format::open_block_v2(out, in, len, of_.id, idx, last, *k);
  }

private:
  const format::SessionKey* find(const std::uint8_t* kid) const {
    for (auto& k : keys_used_)
      if (std::memcmp(k->id().data(), kid, format::kKeyIdBytes) == 0) return k.get();
    return nullptr;
  }
  std::shared_ptr<const format::SessionKey> resolve(const format::KeyId& kid) {
    if (of_.wkey && of_.wkey->id() == kid) return of_.wkey;
    std::lock_guard g(of_.kmu);
    auto& c = of_.rkeys;
    for (std::size_t i = 0; i < c.size(); i++)
      if (c[i]->id() == kid) {
        std::rotate(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(i), c.begin() + static_cast<std::ptrdiff_t>(i) + 1);
        return c.front();
      }
    auto k = std::make_shared<const format::SessionKey>(keys_, of_.id, kid, slab_);
    if (c.size() >= kReadKeyCache) c.pop_back();
    c.insert(c.begin(), k);
    return k;
  }
  const format::Keys& keys_;
  const std::shared_ptr<format::KeySlab>& slab_;
  OpenFile& of_;
  std::vector<std::shared_ptr<const format::SessionKey>> keys_used_;
};

Fs::Fs(int root_fd, std::shared_ptr<const format::Keys> keys) : root_fd_(root_fd), keys_(std::move(keys)) {
  rlimit rl{};
  std::size_t nofile = 1024;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) nofile = rl.rlim_cur;
  // Leave most descriptors to open files; directories are reopened on a cache miss.
  dir_cache_cap_ = std::clamp<std::size_t>(nofile / 8, 16, 4096);
  struct stat st{};
  if (::fstat(root_fd_, &st) != 0) fail_errno();
  auto root = std::make_unique<Node>();
  root->ino = kRoot;
  root->backing = st.st_ino;
  root->type = S_IFDIR;
  root->nlookup = 1;
  by_backing_[st.st_ino] = root.get();
  nodes_[kRoot] = std::move(root);
}

Fs::~Fs() {
  pool_.reset();
  // Files still open when the filesystem stops (the server was told to stop) keep their
  // OpenFile and its session keys alive; the keys are wiped here all the same.
  slab_->wipe_all();
  for (auto& [ino, e] : dir_cache_) ::close(e.first);
  ::close(root_fd_);
}

void Fs::parallel(std::size_t n, const std::function<void(std::size_t, std::size_t)>& fn) {
  constexpr std::size_t kMinParallelBlocks = 32;  // below 128 KiB the hand-off costs more
  if (n < kMinParallelBlocks || std::thread::hardware_concurrency() < 2) return fn(0, n);
  std::call_once(pool_once_, [this] {
    pool_ = std::make_unique<Pool>(std::min(std::thread::hardware_concurrency(), 8u) - 1);
  });
  pool_->run(n, fn);
}

Fs::Node* Fs::get(std::uint64_t ino) {
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) fail(ESTALE);
  return it->second.get();
}

Fs::Node* Fs::find_backing(const struct stat& st) {
  auto it = by_backing_.find(st.st_ino);
  if (it == by_backing_.end() || it->second->type != (st.st_mode & S_IFMT)) return nullptr;
  return it->second;
}

Fs::Node* Fs::node_for(const struct stat& st, Node* parent, const std::string& disk) {
  Node* n = find_backing(st);
  if (!n) {
    auto it = by_backing_.find(st.st_ino);
    if (it != by_backing_.end()) {  // a recycled inode number: the old node is gone on disk
      it->second->mapped = false;
      by_backing_.erase(it);
    }
    auto node = std::make_unique<Node>();
    node->ino = next_ino_++;
    node->backing = st.st_ino;
    node->type = st.st_mode & S_IFMT;
    n = node.get();
    nodes_[n->ino] = std::move(node);
    by_backing_[st.st_ino] = n;
  }
  if (n->type == S_IFDIR && !n->links.empty() &&
      (n->links[0].parent != parent->ino || n->links[0].disk != disk)) {
    clear_links(n);  // a directory has one name; the newest lookup wins
  }
  add_link(n, parent->ino, disk);
  return n;
}

void Fs::add_link(Node* n, std::uint64_t parent, const std::string& disk) {
  for (auto& l : n->links)
    if (l.parent == parent && l.disk == disk) return;
  n->links.push_back({parent, disk});
  get(parent)->child_refs++;
}

void Fs::remove_link(Node* n, std::uint64_t parent, const std::string& disk) {
  for (auto it = n->links.begin(); it != n->links.end(); ++it) {
    if (it->parent == parent && it->disk == disk) {
      n->links.erase(it);
      auto p = nodes_.find(parent);
      if (p != nodes_.end()) {
        p->second->child_refs--;
        maybe_delete(p->second.get());
      }
      return;
    }
  }
}

void Fs::clear_links(Node* n) {
  while (!n->links.empty()) {
    auto l = n->links.back();
    remove_link(n, l.parent, l.disk);
  }
}

void Fs::maybe_delete(Node* n) {
  if (n->ino == kRoot || n->nlookup > 0 || n->child_refs > 0 || !n->open.expired()) return;
  const std::uint64_t ino = n->ino;
  auto links = std::move(n->links);
  n->links.clear();
  if (n->mapped) {
    auto it = by_backing_.find(n->backing);
    if (it != by_backing_.end() && it->second == n) by_backing_.erase(it);
  }
  uncache_dir(ino);
  nodes_.erase(ino);  // n is dangling from here
  for (auto& l : links) {
    auto p = nodes_.find(l.parent);
    if (p != nodes_.end()) {
      p->second->child_refs--;
      maybe_delete(p->second.get());
    }
  }
}

// Bookkeeping after the name (parent, disk) of the object st was removed on disk.
void Fs::drop_name(const struct stat& st, std::uint64_t parent, const std::string& disk) {
  Node* n = find_backing(st);
  if (!n) return;
  const bool gone = S_ISDIR(st.st_mode) || st.st_nlink <= 1;
  if (gone) {
    by_backing_.erase(n->backing);
    n->mapped = false;
    uncache_dir(n->ino);
    clear_links(n);  // may delete n
  } else {
    remove_link(n, parent, disk);
  }
}

void Fs::uncache_dir(std::uint64_t ino) {
  auto it = dir_cache_.find(ino);
  if (it == dir_cache_.end()) return;
  ::close(it->second.first);
  lru_.erase(it->second.second);
  dir_cache_.erase(it);
}

// A borrowed fd of a directory node, valid while mu_ is held. Directory fds follow the
// inode across renames, so a cached fd never goes stale; misses walk up the parents.
int Fs::dir_fd(Node* n) {
  if (n->ino == kRoot) return root_fd_;
  if (n->type != S_IFDIR) fail(ENOTDIR);
  auto it = dir_cache_.find(n->ino);
  if (it != dir_cache_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.second);
    return it->second.first;
  }
  if (n->links.empty()) fail(ENOENT);
  const auto link = n->links.front();
  const int pfd = dir_fd(get(link.parent));
  // O_PATH: works for *at() calls and fstat even on a directory its owner made unreadable.
  int fd = ::openat(pfd, link.disk.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail_errno();
  lru_.push_front(n->ino);
  dir_cache_[n->ino] = {fd, lru_.begin()};
  // Evict from the cold end; the few fds a caller holds at once are the hottest.
  while (dir_cache_.size() > dir_cache_cap_) {
    const std::uint64_t victim = lru_.back();
    uncache_dir(victim);
  }
  return fd;
}

const format::DirId& Fs::dir_id(Node* n) {
  if (!n->dirid) {
    const int dfd = dir_fd(n);
    std::string s;
    if (!read_small_file(dfd, format::kDirIdName, s, format::kDirIdBytes) || s.size() != format::kDirIdBytes)
      fail(EIO);
    format::DirId id;
    std::memcpy(id.data(), s.data(), id.size());
    n->dirid = id;
  }
  return *n->dirid;
}

Fs::CName Fs::cname_for(Node* dir, std::string_view name) {
  if (dir->type != S_IFDIR) fail(ENOTDIR);
  if (name.size() > format::kMaxNameBytes) fail(ENAMETOOLONG);
  if (!format::valid_plain_name(name)) fail(EINVAL);
  CName c;
  c.encoded = format::encrypt_name(*keys_, dir_id(dir), name);
  c.is_long = format::needs_long_name(c.encoded);
  c.disk = c.is_long ? format::long_name(c.encoded) : c.encoded;
  return c;
}

void Fs::write_sidecar(int pfd, const CName& c) {
  write_new_file(pfd, sidecar_name(c.disk).c_str(), c.encoded.data(), c.encoded.size(), 0600);
}

struct stat Fs::plain_stat(struct stat st, Node* n) {
  if (S_ISREG(st.st_mode)) {
    auto of = n ? n->open.lock() : nullptr;
    if (of) {
      st.st_size = static_cast<off_t>(of->size.load());
    } else {
      auto ps = format::plain_size(static_cast<std::uint64_t>(st.st_size), keys_->layout());
      // An impossible size is reported raw so that reads reach us and fail with EIO.
      if (ps) st.st_size = static_cast<off_t>(*ps);
    }
  } else if (S_ISLNK(st.st_mode)) {
    st.st_size = static_cast<off_t>(format::symlink_plain_size(static_cast<std::uint64_t>(st.st_size)));
  }
  if (n) st.st_ino = n->ino;
  return st;
}

struct stat Fs::stat_node(Node* n, OpenFile** of_out) {
  struct stat st{};
  if (n->type == S_IFDIR) {
    if (::fstat(dir_fd(n), &st) != 0) fail_errno();
    return st;
  }
  if (auto of = n->open.lock()) {
    if (::fstat(of->fd, &st) != 0) fail_errno();
    if (of_out) *of_out = of.get();
    return st;
  }
  for (auto& l : n->links) {
    auto p = nodes_.find(l.parent);
    if (p == nodes_.end()) continue;
    if (::fstatat(dir_fd(p->second.get()), l.disk.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        st.st_ino == n->backing)
      return st;
  }
  fail(ENOENT);
}

Fs::Entry Fs::lookup(std::uint64_t parent, std::string_view name) {
  std::lock_guard g(mu_);
  Node* p = get(parent);
  auto c = cname_for(p, name);
  struct stat st{};
  if (::fstatat(dir_fd(p), c.disk.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) fail_errno();
  Node* n = node_for(st, p, c.disk);
  n->nlookup++;
  return {n->ino, plain_stat(st, n)};
}

void Fs::forget(std::uint64_t ino, std::uint64_t count) {
  std::lock_guard g(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end() || ino == kRoot) return;
  Node* n = it->second.get();
  n->nlookup -= std::min(count, n->nlookup);
  maybe_delete(n);
}

struct stat Fs::getattr(std::uint64_t ino) {
  std::lock_guard g(mu_);
  Node* n = get(ino);
  return plain_stat(stat_node(n), n);
}

struct stat Fs::setattr(std::uint64_t ino, std::uint64_t fh, const SetAttrRequest& r) {
  std::lock_guard g(mu_);
  Node* n = get(ino);
  std::shared_ptr<OpenFile> of = fh ? reinterpret_cast<Handle*>(fh)->of : n->open.lock();
  if (r.set_size) {
    if (n->type == S_IFDIR) fail(EISDIR);
    if (n->type != S_IFREG) fail(EINVAL);
    if (!of || !of->writable) of = open_locked(n, true);
    std::unique_lock fl(of->mu);
    truncate(*of, r.size);
  }
  // Metadata goes to an fd when we have one (works for unlinked open files), else by name.
  int fd = -1;
  int pfd = -1;
  std::string name;
  if (n->ino == kRoot) {
    fd = root_fd_;
  } else if (n->type == S_IFDIR) {
    if (n->links.empty()) fail(ENOENT);
    pfd = dir_fd(get(n->links.front().parent));  // by name: cached dir fds are O_PATH
    name = n->links.front().disk;
  } else if (of) {
    fd = of->fd;
  } else {
    struct stat st{};
    for (auto& l : n->links) {
      auto p = nodes_.find(l.parent);
      if (p == nodes_.end()) continue;
      const int d = dir_fd(p->second.get());
      if (::fstatat(d, l.disk.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == n->backing) {
        pfd = d;
        name = l.disk;
        break;
      }
    }
    if (pfd < 0) fail(ENOENT);
  }
  if (r.set_mode) {
    int rc;
    if (fd >= 0)
      rc = ::fchmod(fd, r.mode & 07777);
    else if (n->type == S_IFLNK)
      rc = 0;  // Linux symlinks have no mode of their own
    else
      rc = ::fchmodat(pfd, name.c_str(), r.mode & 07777, 0);
    if (rc != 0) fail_errno();
  }
  if (r.set_uid || r.set_gid) {
    const uid_t u = r.set_uid ? r.uid : static_cast<uid_t>(-1);
    const gid_t gg = r.set_gid ? r.gid : static_cast<gid_t>(-1);
    int rc = fd >= 0 ? ::fchown(fd, u, gg) : ::fchownat(pfd, name.c_str(), u, gg, AT_SYMLINK_NOFOLLOW);
    if (rc != 0) fail_errno();
  }
  if (r.set_atime || r.set_mtime) {
    timespec ts[2];
    ts[0] = r.set_atime ? (r.atime_now ? timespec{0, UTIME_NOW} : r.atime) : timespec{0, UTIME_OMIT};
    ts[1] = r.set_mtime ? (r.mtime_now ? timespec{0, UTIME_NOW} : r.mtime) : timespec{0, UTIME_OMIT};
    int rc = fd >= 0 ? ::futimens(fd, ts) : ::utimensat(pfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW);
    if (rc != 0) fail_errno();
  }
  return plain_stat(stat_node(n), n);
}

Fs::Entry Fs::mkdir(std::uint64_t parent, std::string_view name, mode_t mode) {
  std::lock_guard g(mu_);
  Node* p = get(parent);
  auto c = cname_for(p, name);
  const int pfd = dir_fd(p);
  struct stat st{};
  if (::fstatat(pfd, c.disk.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) fail(EEXIST);
  // Build the directory under a temporary name and rename it into place, so a crash never
  // leaves a directory without its id (whose children could not be named).
  std::uint8_t rnd[12];
  crypto::random_bytes(rnd, sizeof rnd);
  const std::string tmp = format::kTmpPrefix + crypto::hex(rnd, sizeof rnd);
  if (::mkdirat(pfd, tmp.c_str(), 0700) != 0) fail_errno();
  Fd dfd(::openat(pfd, tmp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  format::DirId id;
  crypto::random_bytes(id.data(), id.size());
  try {
    if (dfd.fd < 0) fail_errno();
    write_new_file(dfd.fd, format::kDirIdName, id.data(), id.size(), 0400);
    if (::fchmod(dfd.fd, mode & 07777) != 0) fail_errno();
    if (c.is_long) write_sidecar(pfd, c);
    if (::renameat2(pfd, tmp.c_str(), pfd, c.disk.c_str(), RENAME_NOREPLACE) != 0) fail_errno();
  } catch (...) {
    if (dfd.fd >= 0) ::unlinkat(dfd.fd, format::kDirIdName, 0);
    ::unlinkat(pfd, tmp.c_str(), AT_REMOVEDIR);
    throw;
  }
  if (::fstat(dfd.fd, &st) != 0) fail_errno();
  Node* n = node_for(st, p, c.disk);
  n->dirid = id;
  n->nlookup++;
  if (!dir_cache_.count(n->ino)) {
    lru_.push_front(n->ino);
    dir_cache_[n->ino] = {dfd.release(), lru_.begin()};
    while (dir_cache_.size() > dir_cache_cap_) uncache_dir(lru_.back());
  }
  return {n->ino, plain_stat(st, n)};
}

namespace {
// Puts a file back as it was when a write or a growth that extends it fails part-way (the
// disk full, the size limit reached). Extending a file re-seals its old last block without
// the last-block flag, so a half-done extension would otherwise cost that block's data as
// well as leave a tail that fails authentication. The old last block's ciphertext is kept
// and written back as it was (the same bytes, so no nonce is used twice), and the file is
// cut back to its old length. Blocks a failed write had already overwritten inside the old
// length keep their new contents; each is whole and authentic either way.
class Extension {
public:
  Extension(Fs::OpenFile& of, std::uint64_t new_end, const format::Layout& l)
      : of_(of), size_(of.size), header_(of.has_header), l_(l) {
    if (new_end <= size_ || of.corrupt) return;
    active_ = true;
    if (size_ == 0) return;
    tail_off_ = format::block_offset(nblocks(size_) - 1, l);
    tail_.resize(static_cast<std::size_t>(format::cipher_size(size_, l) - tail_off_));
    pread_exact(of.fd, tail_.data(), tail_.size(), tail_off_);
  }
  // Called with the operation's error pending; never throws, so that error is the one
  // reported. If putting back fails too, the tail is left to fail authentication (EIO).
  void undo() noexcept {
    if (!active_) return;
    try {
      if (!tail_.empty()) pwrite_all(of_.fd, tail_.data(), tail_.size(), tail_off_);
      const std::uint64_t len = size_ > 0 ? format::cipher_size(size_, l_) : header_ ? format::kHeaderSize : 0;
      if (::ftruncate(of_.fd, static_cast<off_t>(len)) != 0) return;
      of_.size = size_;
      of_.has_header = header_;
    } catch (...) {
    }
  }

private:
  Fs::OpenFile& of_;
  const std::uint64_t size_;
  const bool header_;
  const format::Layout& l_;
  bool active_ = false;
  std::uint64_t tail_off_ = 0;
  std::vector<std::uint8_t> tail_;
};
}  // namespace

void Fs::ensure_header(OpenFile& of) {
  if (of.has_header) return;
  crypto::random_bytes(of.id.data(), of.id.size());
  of.wkey.reset();  // the session key is bound to the file id
  of.rkeys.clear();
  std::uint8_t hb[format::kHeaderSize];
  format::encode_header({keys_->layout().version, of.id}, hb);
  pwrite_all(of.fd, hb, sizeof hb, 0);
  of.has_header = true;
}

namespace {
void load_open_file(Fs::OpenFile& of, const format::Layout& l);
}

int Fs::open_backing(Node* n, int mode, OpenFile* existing) {
  // O_NONBLOCK: no open() of a FIFO put in a file's place waits for a peer (it has no
  // effect on the regular files this opens).
  const int flags = mode | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
  int last_err = ENOENT;
  for (auto& l : n->links) {
    auto p = nodes_.find(l.parent);
    if (p == nodes_.end()) continue;
    int fd = ::openat(dir_fd(p->second.get()), l.disk.c_str(), flags);
    if (fd >= 0) {
      struct stat st{};
      if (::fstat(fd, &st) == 0 && st.st_ino == n->backing) return fd;
      ::close(fd);
      continue;
    }
    last_err = errno;
    if (errno == EACCES && mode == O_RDWR) {
      // Write-only permission (e.g. 0200): we still need to read for read-modify-write.
      struct stat st{};
      const int pfd = dir_fd(p->second.get());
      if (::fstatat(pfd, l.disk.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_uid == ::geteuid() &&
          ::fchmodat(pfd, l.disk.c_str(), (st.st_mode & 07777) | S_IRUSR | S_IWUSR, 0) == 0) {
        fd = ::openat(pfd, l.disk.c_str(), flags);
        const int e = errno;
        (void)!::fchmodat(pfd, l.disk.c_str(), st.st_mode & 07777, 0);
        if (fd >= 0) return fd;
        last_err = e;
      }
    }
    if (last_err != ENOENT) break;
  }
  if (existing && last_err == ENOENT) {
    // Unlinked while open: reopen the inode itself.
    const std::string proc = "/proc/self/fd/" + std::to_string(existing->fd);
    int fd = ::open(proc.c_str(), mode | O_CLOEXEC);
    if (fd >= 0) return fd;
    last_err = errno;
  }
  errno = last_err;
  return -1;
}

std::shared_ptr<Fs::OpenFile> Fs::open_locked(Node* n, bool want_write) {
  if (n->type == S_IFDIR) fail(EISDIR);
  if (n->type != S_IFREG) fail(EINVAL);
  auto of = n->open.lock();
  if (of && (of->writable || !want_write)) return of;
  // Always try read-write: the writeback cache reads pages of write-only opens.
  bool writable = true;
  int fd = open_backing(n, O_RDWR, of.get());
  if (fd < 0 && errno == EACCES && !want_write) {
    writable = false;
    fd = open_backing(n, O_RDONLY, of.get());
  }
  if (fd < 0) fail_errno();
  if (of) {
    std::unique_lock fl(of->mu);
    ::close(of->fd);
    of->fd = fd;
    of->writable = true;
    return of;
  }
  of = std::make_shared<OpenFile>();
  of->fd = fd;
  of->writable = writable;
  load_open_file(*of, keys_->layout());
  n->open = of;
  return of;
}

namespace {
void load_open_file(Fs::OpenFile& of, const format::Layout& l) {
  struct stat st{};
  if (::fstat(of.fd, &st) != 0) fail_errno();
  const auto csize = static_cast<std::uint64_t>(st.st_size);
  auto ps = format::plain_size(csize, l);
  if (!ps) {
    of.corrupt = true;
    of.size = csize;
    return;
  }
  of.size = *ps;
  if (csize >= format::kHeaderSize) {
    std::uint8_t hb[format::kHeaderSize];
    pread_exact(of.fd, hb, sizeof hb, 0);
    auto h = format::decode_header(hb, l.version);
    if (!h) {
      of.corrupt = true;
      return;
    }
    of.id = h->file_id;
    of.has_header = true;
  }
}
}  // namespace

Fs::Entry Fs::create(std::uint64_t parent, std::string_view name, mode_t mode, int flags, std::uint64_t& fh) {
  std::lock_guard g(mu_);
  Node* p = get(parent);
  auto c = cname_for(p, name);
  const int pfd = dir_fd(p);
  if (c.is_long) write_sidecar(pfd, c);
  int fd = ::openat(pfd, c.disk.c_str(), O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW | (flags & O_EXCL),
                    mode & 07777);
  if (fd < 0) {
    const int e = errno;
    if (c.is_long && e != EEXIST) ::unlinkat(pfd, sidecar_name(c.disk).c_str(), 0);
    fail(e);
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    fail(e);
  }
  Node* n = node_for(st, p, c.disk);
  auto of = n->open.lock();
  if (!of) {
    of = std::make_shared<OpenFile>();
    of->fd = fd;
    of->writable = true;
    load_open_file(*of, keys_->layout());
    n->open = of;
  } else if (!of->writable) {
    std::unique_lock fl(of->mu);
    ::close(of->fd);
    of->fd = fd;
    of->writable = true;
  } else {
    ::close(fd);
  }
  if (flags & O_TRUNC) {
    std::unique_lock fl(of->mu);
    truncate(*of, 0);
  }
  n->nlookup++;
  fh = reinterpret_cast<std::uint64_t>(new Handle{n->ino, of});
  return {n->ino, plain_stat(st, n)};
}

Fs::Entry Fs::symlink(std::uint64_t parent, std::string_view name, std::string_view target) {
  std::lock_guard g(mu_);
  if (target.size() > format::kMaxSymlinkBytes) fail(ENAMETOOLONG);
  Node* p = get(parent);
  auto c = cname_for(p, name);
  const int pfd = dir_fd(p);
  const std::string enc = format::encrypt_symlink(*keys_, target);
  if (c.is_long) write_sidecar(pfd, c);
  if (::symlinkat(enc.c_str(), pfd, c.disk.c_str()) != 0) {
    const int e = errno;
    if (c.is_long && e != EEXIST) ::unlinkat(pfd, sidecar_name(c.disk).c_str(), 0);
    fail(e);
  }
  struct stat st{};
  if (::fstatat(pfd, c.disk.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) fail_errno();
  Node* n = node_for(st, p, c.disk);
  n->nlookup++;
  return {n->ino, plain_stat(st, n)};
}

std::string Fs::readlink(std::uint64_t ino) {
  std::lock_guard g(mu_);
  Node* n = get(ino);
  if (n->type != S_IFLNK) fail(EINVAL);
  std::string buf(8192, '\0');
  for (auto& l : n->links) {
    auto p = nodes_.find(l.parent);
    if (p == nodes_.end()) continue;
    ssize_t r = ::readlinkat(dir_fd(p->second.get()), l.disk.c_str(), buf.data(), buf.size());
    if (r < 0) {
      if (errno == ENOENT) continue;
      fail_errno();
    }
    buf.resize(static_cast<std::size_t>(r));
    auto t = format::decrypt_symlink(*keys_, buf);
    if (!t) fail(EIO);
    return *t;
  }
  fail(ENOENT);
}

Fs::Entry Fs::link(std::uint64_t ino, std::uint64_t newparent, std::string_view newname) {
  std::lock_guard g(mu_);
  Node* n = get(ino);
  if (n->type == S_IFDIR) fail(EPERM);
  Node* np = get(newparent);
  auto c = cname_for(np, newname);
  const int npfd = dir_fd(np);
  if (c.is_long) write_sidecar(npfd, c);
  int err = ENOENT;
  bool done = false;
  for (auto& l : n->links) {
    auto p = nodes_.find(l.parent);
    if (p == nodes_.end()) continue;
    if (::linkat(dir_fd(p->second.get()), l.disk.c_str(), dir_fd(np), c.disk.c_str(), 0) == 0) {
      done = true;
      break;
    }
    err = errno;
    if (err != ENOENT) break;
  }
  if (!done) {
    if (c.is_long && err != EEXIST) ::unlinkat(npfd, sidecar_name(c.disk).c_str(), 0);
    fail(err);
  }
  struct stat st{};
  if (::fstatat(dir_fd(np), c.disk.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) fail_errno();
  add_link(n, np->ino, c.disk);
  n->nlookup++;
  return {n->ino, plain_stat(st, n)};
}

void Fs::unlink(std::uint64_t parent, std::string_view name) {
  std::lock_guard g(mu_);
  Node* p = get(parent);
  auto c = cname_for(p, name);
  const int pfd = dir_fd(p);
  struct stat st{};
  if (::fstatat(pfd, c.disk.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) fail_errno();
  if (S_ISDIR(st.st_mode)) fail(EISDIR);
  if (::unlinkat(pfd, c.disk.c_str(), 0) != 0) fail_errno();
  if (c.is_long) ::unlinkat(pfd, sidecar_name(c.disk).c_str(), 0);
  drop_name(st, parent, c.disk);
}

namespace {
// A fresh directory stream on the directory behind `dfd` (cached dir fds are O_PATH and
// shared, so each listing opens its own).
DIR* open_dir_stream(int dfd) {
  int fd = ::openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail_errno();
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    fail_errno();
  }
  return d;
}

// True if the directory holds nothing but its id file.
bool dir_is_empty(int dfd) {
  DIR* d = open_dir_stream(dfd);
  bool empty = true;
  while (dirent* de = ::readdir(d)) {
    const std::string_view n(de->d_name);
    if (n == "." || n == ".." || n == format::kDirIdName) continue;
    empty = false;
    break;
  }
  ::closedir(d);
  return empty;
}

// Removes the id file of an empty directory (so the host can rmdir it); returns the id.
std::string take_dirid(int dfd) {
  if (!dir_is_empty(dfd)) fail(ENOTEMPTY);
  std::string id;
  read_small_file(dfd, format::kDirIdName, id, format::kDirIdBytes);
  if (::unlinkat(dfd, format::kDirIdName, 0) != 0) {
    if (errno != EACCES && errno != ENOENT) fail_errno();
    if (errno == EACCES) {
      // An empty 0555 directory can still be removed on a real fs; emulate that.
      if (::fchmod(dfd, 0700) != 0 || ::unlinkat(dfd, format::kDirIdName, 0) != 0) fail_errno();
    }
  }
  return id;
}

void restore_dirid(int dfd, const std::string& id) {
  try {
    write_new_file(dfd, format::kDirIdName, id.data(), id.size(), 0400);
  } catch (...) {
  }
}
}  // namespace

void Fs::rmdir(std::uint64_t parent, std::string_view name) {
  std::lock_guard g(mu_);
  Node* p = get(parent);
  auto c = cname_for(p, name);
  const int pfd = dir_fd(p);
  Fd dfd(::openat(pfd, c.disk.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dfd.fd < 0) fail_errno();
  struct stat st{};
  if (::fstat(dfd.fd, &st) != 0) fail_errno();
  const std::string id = take_dirid(dfd.fd);
  if (::unlinkat(pfd, c.disk.c_str(), AT_REMOVEDIR) != 0) {
    const int e = errno;
    restore_dirid(dfd.fd, id);
    fail(e);
  }
  if (c.is_long) ::unlinkat(pfd, sidecar_name(c.disk).c_str(), 0);
  drop_name(st, parent, c.disk);
}

void Fs::rename(std::uint64_t parent, std::string_view name, std::uint64_t newparent, std::string_view newname,
                unsigned flags) {
  if (flags & ~static_cast<unsigned>(RENAME_NOREPLACE | RENAME_EXCHANGE)) fail(EINVAL);
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) fail(EINVAL);
  std::lock_guard g(mu_);
  Node* p = get(parent);
  Node* np = get(newparent);
  auto oc = cname_for(p, name);
  auto nc = cname_for(np, newname);
  const int opfd = dir_fd(p);
  const int npfd = dir_fd(np);
  struct stat ost{}, nst{};
  if (::fstatat(opfd, oc.disk.c_str(), &ost, AT_SYMLINK_NOFOLLOW) != 0) fail_errno();
  const bool target = ::fstatat(npfd, nc.disk.c_str(), &nst, AT_SYMLINK_NOFOLLOW) == 0;
  if (!target && errno != ENOENT) fail_errno();

  if (flags & RENAME_EXCHANGE) {
    if (!target) fail(ENOENT);
    // Each name keeps its own sidecar: the sidecar belongs to the name, not the inode.
    if (::renameat2(opfd, oc.disk.c_str(), npfd, nc.disk.c_str(), RENAME_EXCHANGE) != 0) fail_errno();
    Node* a = find_backing(ost);
    Node* b = find_backing(nst);
    if (a) {
      add_link(a, newparent, nc.disk);
      remove_link(a, parent, oc.disk);
    }
    if (b) {
      add_link(b, parent, oc.disk);
      remove_link(b, newparent, nc.disk);
    }
    if (a && a->type == S_IFDIR && a->links.size() > 1) remove_link(a, a->links.front().parent, a->links.front().disk);
    if (b && b->type == S_IFDIR && b->links.size() > 1) remove_link(b, b->links.front().parent, b->links.front().disk);
    return;
  }
  if (target && (flags & RENAME_NOREPLACE)) fail(EEXIST);
  if (target && ost.st_ino == nst.st_ino) return;  // two names of one file: POSIX says no-op

  std::string saved_id;
  Fd target_dir(-1);
  if (target) {
    if (S_ISDIR(nst.st_mode)) {
      if (!S_ISDIR(ost.st_mode)) fail(EISDIR);
      target_dir.fd = ::openat(npfd, nc.disk.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (target_dir.fd < 0) fail_errno();
      saved_id = take_dirid(target_dir.fd);
    } else if (S_ISDIR(ost.st_mode)) {
      fail(ENOTDIR);
    }
  }
  const bool new_sidecar = nc.is_long && !target;
  if (nc.is_long) write_sidecar(npfd, nc);
  if (::renameat2(opfd, oc.disk.c_str(), npfd, nc.disk.c_str(), flags) != 0) {
    const int e = errno;
    if (new_sidecar) ::unlinkat(npfd, sidecar_name(nc.disk).c_str(), 0);
    if (target_dir.fd >= 0) restore_dirid(target_dir.fd, saved_id);
    fail(e);
  }
  if (oc.is_long) ::unlinkat(opfd, sidecar_name(oc.disk).c_str(), 0);
  if (target) drop_name(nst, newparent, nc.disk);
  if (Node* src = find_backing(ost)) {
    add_link(src, newparent, nc.disk);
    remove_link(src, parent, oc.disk);
  }
}

std::uint64_t Fs::open(std::uint64_t ino, int flags) {
  std::lock_guard g(mu_);
  Node* n = get(ino);
  const bool want_write = (flags & O_ACCMODE) != O_RDONLY;
  auto of = open_locked(n, want_write);
  if ((flags & O_TRUNC) && want_write) {
    std::unique_lock fl(of->mu);
    truncate(*of, 0);
  }
  return reinterpret_cast<std::uint64_t>(new Handle{ino, std::move(of)});
}

void Fs::release(std::uint64_t fh) {
  auto* h = reinterpret_cast<Handle*>(fh);
  std::lock_guard g(mu_);
  const std::uint64_t ino = h->ino;
  delete h;
  auto it = nodes_.find(ino);
  if (it != nodes_.end()) maybe_delete(it->second.get());
}

void Fs::load_block(OpenFile& of, std::uint64_t idx, std::uint64_t size, std::uint8_t* out) {
  std::memset(out, 0, kBlockSize);
  const std::uint64_t nb = nblocks(size);
  if (idx >= nb) return;
  const std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(kBlockSize, size - idx * kBlockSize));
  const auto& l = keys_->layout();
  std::uint8_t cbuf[kBlockSize + format::kMaxBlockOverhead];
  pread_exact(of.fd, cbuf, len + l.overhead, format::block_offset(idx, l));
  if (!Opener(*this, of, cbuf, 1).open(out, cbuf, len, idx, idx == nb - 1)) fail(EIO);
}

std::size_t Fs::write_chunk(OpenFile& of, std::uint64_t off, const std::uint8_t* data, std::size_t n) {
  std::uint64_t size = of.size;
  if (off > size) {
    grow(of, off);
    size = off;
  }
  ensure_header(of);
  const std::uint64_t end = off + n;
  const std::uint64_t new_size = std::max(size, end);
  const std::uint64_t old_nb = nblocks(size), new_nb = nblocks(new_size);
  std::uint64_t first = off / kBlockSize;
  const std::uint64_t last = (end - 1) / kBlockSize;
  // Appending at a block boundary: the old last block loses its last-block flag.
  if (old_nb > 0 && first == old_nb) first = old_nb - 1;
  const std::uint64_t count = last - first + 1;
  const auto& l = keys_->layout();
  auto& cbuf = tls_buf(0);
  cbuf.resize(count * l.cipher_block());
  // Edge blocks (partially covered) are read-modify-written first; at most three.
  std::uint8_t edge[3][kBlockSize];
  std::uint64_t edge_idx[3];
  int nedge = 0;
  auto covered = [&](std::uint64_t i, std::uint64_t& ws, std::uint64_t& we, std::size_t& blen) {
    const std::uint64_t bstart = i * kBlockSize;
    blen = static_cast<std::size_t>(std::min<std::uint64_t>(kBlockSize, new_size - bstart));
    ws = std::max(off, bstart);
    we = std::min(end, bstart + blen);
    return ws == bstart && we == bstart + blen;
  };
  for (std::uint64_t i : {first, first + 1, last}) {
    if (i > last || (nedge > 0 && edge_idx[nedge - 1] == i)) continue;
    std::uint64_t ws, we;
    std::size_t blen;
    if (covered(i, ws, we, blen)) continue;
    load_block(of, i, size, edge[nedge]);
    if (we > ws) std::memcpy(edge[nedge] + (ws - i * kBlockSize), data + (ws - off), we - ws);
    edge_idx[nedge++] = i;
  }
  const Sealer sealer(*this, of, count);
  // Blocks are laid out contiguously; only the last one may be short.
  const std::size_t last_len = static_cast<std::size_t>(std::min<std::uint64_t>(kBlockSize, new_size - last * kBlockSize));
  // Each part is written as soon as it is sealed, by the thread that sealed it, so one
  // part's write overlaps another's sealing. The first error is kept and thrown once every
  // part is done (fn must not throw); Fs::write then puts the file back (Extension).
  std::atomic<int> werr{0};
  parallel(count, [&](std::size_t b, std::size_t e) {
    for (std::size_t k = b; k < e; k++) {
      const std::uint64_t i = first + k;
      std::uint64_t ws, we;
      std::size_t blen;
      const std::uint8_t* src;
      if (covered(i, ws, we, blen)) {
        src = data + (i * kBlockSize - off);
      } else {
        src = nullptr;
        for (int x = 0; x < nedge; x++)
          if (edge_idx[x] == i) src = edge[x];
      }
      sealer.seal(k, cbuf.data() + k * l.cipher_block(), src, blen, i, i == new_nb - 1);
    }
    const std::size_t bytes = e == count ? (e - b - 1) * l.cipher_block() + last_len + l.overhead : (e - b) * l.cipher_block();
    try {
      pwrite_all(of.fd, cbuf.data() + b * l.cipher_block(), bytes, format::block_offset(first + b, l));
    } catch (const FsError& x) {
      int none = 0;
      werr.compare_exchange_strong(none, x.err);
    } catch (...) {
      int none = 0;
      werr.compare_exchange_strong(none, EIO);
    }
  });
  if (int e = werr.load()) fail(e);
  of.size = new_size;
  return n;
}

// A large write's blocks that it covers whole, but for its last one, are sealed before the
// file's lock is taken, so two writes the kernel has in flight to one file (its writeback
// sends several) seal on two CPUs while their commits stay serialized. Such a block is
// never the file's last after the write (the write's own last block follows it), whatever
// other writes do meanwhile, so its last-block flag is known; its contents are the write's
// alone, so no other write can change them; counters (or nonces) are reserved under the
// lock. What the lock's holder decides at the commit, by the file as it is then: the
// edges (a partial first block, the old last block an append re-flags, the write's last
// block) and the size. A file emptied meanwhile has a new file id: the blocks are sealed
// again under the lock.
struct Fs::PreSealed {
  std::uint64_t first = 0, count = 0;  // blocks [first, first + count)
  format::FileId id{};
  std::vector<std::uint8_t>* buf = nullptr;  // count sealed blocks, back to back
};

namespace {
constexpr std::uint64_t kMinPreSealBlocks = 32;  // below 128 KiB sealing under the lock is as quick
constexpr auto kGapWait = std::chrono::milliseconds(2);
}

bool Fs::preseal(OpenFile& of, std::uint64_t off, const std::uint8_t* data, std::size_t n, PreSealed& pre) {
  if (n > kChunkBlocks * kBlockSize) return false;  // more than FUSE sends: the chunked path
  const std::uint64_t end = off + n;
  const std::uint64_t b0 = (off + kBlockSize - 1) / kBlockSize;
  const std::uint64_t stop = (end - 1) / kBlockSize;  // the write's last block is an edge
  if (stop < b0 + kMinPreSealBlocks) return false;
  const auto& l = keys_->layout();
  pre.first = b0;
  pre.count = stop - b0;
  pre.buf = &tls_buf(3);
  pre.buf->resize(static_cast<std::size_t>(pre.count) * l.cipher_block());
  std::uint8_t* out = pre.buf->data();
  std::optional<Sealer> sealer;
  {
    std::unique_lock lk(of.mu);
    if (!of.writable || of.corrupt) return false;  // the locked path says why
    ensure_header(of);
    pre.id = of.id;
    sealer.emplace(*this, of, static_cast<std::size_t>(pre.count));
    of.presealing.emplace_back(off, end);  // last: from here on Fs::write takes it out again
  }
  of.committed.notify_all();  // a write past the end may be waiting for this one to show up
  // In this thread, not spread over the crypto pool: the kernel's writeback sends several
  // writes at once, each sealing in its own thread, and handing parts to the pool as well
  // only added hand-offs (1 GiB through the writeback cache, 4 rounds: 1.50-1.54 s without
  // the pool against 1.52-1.85 s with it, or with it for a write sealing alone).
  for (std::uint64_t k = 0; k < pre.count; k++) {
    const std::uint64_t i = b0 + k;
    sealer->seal(static_cast<std::size_t>(k), out + k * l.cipher_block(), data + (i * kBlockSize - off), kBlockSize, i, false);
  }
  return true;
}

// The commit of a presealed write, under the file's lock: grows the file to the write's
// offset if it is past the end, seals the edges around the presealed blocks (read-modify-
// write where the write covers a block in part) and writes everything with one pwritev.
void Fs::write_presealed(OpenFile& of, std::uint64_t off, const std::uint8_t* data, std::size_t n,
                         const PreSealed& pre) {
  std::uint64_t size = of.size;
  if (off > size) {
    grow(of, off);
    size = off;
  }
  const std::uint64_t end = off + n;
  const std::uint64_t new_size = std::max(size, end);
  const std::uint64_t old_nb = nblocks(size), new_nb = nblocks(new_size);
  std::uint64_t first = off / kBlockSize;
  const std::uint64_t last = (end - 1) / kBlockSize;
  if (old_nb > 0 && first == old_nb) first = old_nb - 1;  // the old last block loses its flag
  const std::uint64_t pend = pre.first + pre.count;
  // One block at most before the presealed ones (a partial first block, or the old last
  // block when the write appends at a block boundary) and exactly one after (the write's last).
  std::uint64_t edges[3];
  int nedge = 0;
  for (std::uint64_t i = first; i < pre.first; i++) edges[nedge++] = i;
  for (std::uint64_t i = pend; i <= last; i++) edges[nedge++] = i;
  const auto& l = keys_->layout();
  std::uint8_t sealed[3][kBlockSize + format::kMaxBlockOverhead];
  std::size_t sealed_len[3];
  const Sealer sealer(*this, of, static_cast<std::size_t>(nedge));
  for (int x = 0; x < nedge; x++) {
    const std::uint64_t i = edges[x];
    const std::uint64_t bstart = i * kBlockSize;
    const std::size_t blen = static_cast<std::size_t>(std::min<std::uint64_t>(kBlockSize, new_size - bstart));
    const std::uint64_t ws = std::max(off, bstart), we = std::min(end, bstart + blen);
    std::uint8_t plain[kBlockSize];
    const std::uint8_t* src = data + (ws - off);
    if (ws != bstart || we != bstart + blen) {
      load_block(of, i, size, plain);
      if (we > ws) std::memcpy(plain + (ws - bstart), data + (ws - off), we - ws);
      src = plain;
    }
    sealer.seal(static_cast<std::size_t>(x), sealed[x], src, blen, i, i == new_nb - 1);
    sealed_len[x] = blen + l.overhead;
  }
  iovec iov[4];
  int niov = 0;
  int x = 0;
  for (; x < nedge && edges[x] < pre.first; x++) iov[niov++] = {sealed[x], sealed_len[x]};
  iov[niov++] = {pre.buf->data(), static_cast<std::size_t>(pre.count) * l.cipher_block()};
  for (; x < nedge; x++) iov[niov++] = {sealed[x], sealed_len[x]};
  pwritev_all(of.fd, iov, niov, format::block_offset(first, l));
  of.size = new_size;
}

void Fs::grow(OpenFile& of, std::uint64_t newsize) {
  const std::uint64_t size = of.size;
  if (newsize <= size) return;
  ensure_header(of);
  const std::uint64_t old_nb = nblocks(size), new_nb = nblocks(newsize);
  std::uint64_t i = old_nb > 0 ? old_nb - 1 : 0;  // re-seal the old last block (flag, padding)
  const auto& l = keys_->layout();
  auto& cbuf = tls_buf(0);
  std::uint8_t tmp[kBlockSize];
  while (i < new_nb) {
    const std::uint64_t cnt = std::min<std::uint64_t>(new_nb - i, kChunkBlocks);
    cbuf.resize(cnt * l.cipher_block());
    const Sealer sealer(*this, of, cnt);
    std::size_t out = 0;
    for (std::uint64_t j = i; j < i + cnt; j++) {
      const std::size_t blen = static_cast<std::size_t>(std::min<std::uint64_t>(kBlockSize, newsize - j * kBlockSize));
      if (j < old_nb)
        load_block(of, j, size, tmp);
      else
        std::memset(tmp, 0, blen);
      sealer.seal(j - i, cbuf.data() + out, tmp, blen, j, j == new_nb - 1);
      out += blen + l.overhead;
    }
    pwrite_all(of.fd, cbuf.data(), out, format::block_offset(i, l));
    i += cnt;
  }
  of.size = newsize;
}

void Fs::truncate(OpenFile& of, std::uint64_t newsize) {
  if (newsize == 0) {
    // Emptied: drop the header too, so the next write starts a new file id.
    if (::ftruncate(of.fd, 0) != 0) fail_errno();
    of.size = 0;
    of.has_header = false;
    of.corrupt = false;
    return;
  }
  if (of.corrupt) fail(EIO);
  const std::uint64_t size = of.size;
  if (newsize == size) return;
  if (newsize > size) {
    Extension ext(of, newsize, keys_->layout());
    try {
      grow(of, newsize);
    } catch (...) {
      ext.undo();
      throw;
    }
    return;
  }
  const std::uint64_t li = nblocks(newsize) - 1;
  const std::size_t blen = static_cast<std::size_t>(newsize - li * kBlockSize);
  std::uint8_t tmp[kBlockSize];
  load_block(of, li, size, tmp);
  const auto& l = keys_->layout();
  std::uint8_t cbuf[kBlockSize + format::kMaxBlockOverhead];
  Sealer(*this, of, 1).seal(0, cbuf, tmp, blen, li, true);
  pwrite_all(of.fd, cbuf, blen + l.overhead, format::block_offset(li, l));
  if (::ftruncate(of.fd, static_cast<off_t>(format::cipher_size(newsize, l))) != 0) fail_errno();
  of.size = newsize;
}

std::size_t Fs::read_chunk(OpenFile& of, std::uint64_t off, std::size_t n, std::uint8_t* out) {
  const std::uint64_t size = of.size;
  if (off >= size) return 0;
  n = static_cast<std::size_t>(std::min<std::uint64_t>(n, size - off));
  if (n == 0) return 0;
  const std::uint64_t nb = nblocks(size);
  const std::uint64_t first = off / kBlockSize, last = (off + n - 1) / kBlockSize;
  const std::size_t last_len = static_cast<std::size_t>(std::min<std::uint64_t>(kBlockSize, size - last * kBlockSize));
  const auto& l = keys_->layout();
  const std::size_t clen = static_cast<std::size_t>((last - first) * l.cipher_block() + last_len + l.overhead);
  auto& cbuf = tls_buf(2);
  cbuf.resize(clen);
  pread_exact(of.fd, cbuf.data(), clen, format::block_offset(first, l));
  const Opener opener(*this, of, cbuf.data(), static_cast<std::size_t>(last - first + 1));
  // In this thread, not spread over the crypto pool as writes are: a streaming reader has
  // two reads in flight (the kernel's readahead window and the next one), which already
  // keep two CPUs busy, and handing parts of each to other threads measured 7-10 % slower,
  // for random 128 KiB reads too (docs/benchmarks.md).
  std::uint8_t tmp[kBlockSize];
  for (std::size_t k = 0; k < static_cast<std::size_t>(last - first + 1); k++) {
    const std::uint64_t i = first + k;
    const std::uint64_t bstart = i * kBlockSize;
    const std::size_t blen = static_cast<std::size_t>(std::min<std::uint64_t>(kBlockSize, size - bstart));
    const std::uint8_t* c = cbuf.data() + k * l.cipher_block();
    const std::uint64_t rs = std::max(off, bstart), re = std::min(off + n, bstart + blen);
    if (rs == bstart && re == bstart + blen) {
      if (!opener.open(out + (bstart - off), c, blen, i, i == nb - 1)) fail(EIO);
    } else {
      if (!opener.open(tmp, c, blen, i, i == nb - 1)) fail(EIO);
      std::memcpy(out + (rs - off), tmp + (rs - bstart), re - rs);
    }
  }
  return n;
}

std::size_t Fs::read(std::uint64_t fh, std::uint64_t off, std::size_t size, char* out) {
  auto& of = *reinterpret_cast<Handle*>(fh)->of;
  std::shared_lock l(of.mu);
  if (of.corrupt) fail(EIO);
  std::size_t done = 0;
  while (done < size) {
    const std::size_t want = std::min(size - done, kChunkBlocks * kBlockSize);
    const std::size_t got = read_chunk(of, off + done, want, reinterpret_cast<std::uint8_t*>(out) + done);
    done += got;
    if (got < want) break;
  }
  return done;
}

std::size_t Fs::write(std::uint64_t fh, std::uint64_t off, const char* data, std::size_t size) {
  auto& of = *reinterpret_cast<Handle*>(fh)->of;
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(data);
  PreSealed pre;
  bool presealed = size > 0 && preseal(of, off, bytes, size, pre);
  std::unique_lock l(of.mu);
  // A presealed write leaves the list (and wakes who waits on it) when it is done, however.
  struct Unlist {
    OpenFile& of;
    bool listed;
    std::uint64_t off, end;
    ~Unlist() {
      if (!listed) return;
      auto it = std::find(of.presealing.begin(), of.presealing.end(), std::pair{off, end});
      if (it != of.presealing.end()) of.presealing.erase(it);
      of.committed.notify_all();
    }
  } unlist{of, presealed, off, off + size};
  if (!of.writable) fail(EBADF);
  if (of.corrupt) fail(EIO);
  // The writes the kernel's writeback sends at once reach this point in any order. One
  // past the end would fill the gap with sealed zero blocks that the write before it then
  // overwrites, sealing that megabyte twice (it happened to most of a streamed file's
  // writes). It waits instead while a write still sealing covers the end: that write is
  // not waiting itself (nothing lies between it and the end) and leaves the list however
  // it ends, so the wait always ends. With none listed yet, it gives one on its way (the
  // kernel sent it first) kGapWait to show up; a write that really leaves a hole pays that.
  if (presealed) {
    const auto deadline = std::chrono::steady_clock::now() + kGapWait;
    while (off > of.size) {
      const std::uint64_t at = of.size;
      if (std::any_of(of.presealing.begin(), of.presealing.end(),
                      [&](const auto& w) { return w.first <= at && at < w.second; }))
        of.committed.wait(l);
      else if (of.committed.wait_until(l, deadline) == std::cv_status::timeout)
        break;
    }
  }
  if (presealed && (!of.has_header || of.id != pre.id)) presealed = false;  // emptied meanwhile
  Extension ext(of, off + size, keys_->layout());
  std::size_t done = 0;
  try {
    if (presealed) {
      write_presealed(of, off, bytes, size, pre);
      return size;
    }
    while (done < size) {
      const std::uint64_t o = off + done;
      const std::size_t room = kChunkBlocks * kBlockSize - static_cast<std::size_t>(o % kBlockSize);
      const std::size_t n = std::min(size - done, room);
      write_chunk(of, o, reinterpret_cast<const std::uint8_t*>(data) + done, n);
      done += n;
    }
  } catch (...) {
    ext.undo();
    throw;
  }
  return done;
}

void Fs::fsync(std::uint64_t fh, bool datasync) {
  auto& of = *reinterpret_cast<Handle*>(fh)->of;
  std::shared_lock l(of.mu);
  if ((datasync ? ::fdatasync(of.fd) : ::fsync(of.fd)) != 0) fail_errno();
}

void Fs::fsyncdir(std::uint64_t ino) {
  std::lock_guard g(mu_);
  Fd fd(::openat(dir_fd(get(ino)), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.fd < 0 || ::fsync(fd.fd) != 0) fail_errno();
}

std::vector<DirEntry> Fs::readdir(std::uint64_t ino, std::vector<std::string>* damaged) {
  std::lock_guard g(mu_);
  Node* n = get(ino);
  const int dfd = dir_fd(n);
  const format::DirId& did = dir_id(n);
  DIR* d = open_dir_stream(dfd);
  std::vector<DirEntry> out;
  out.push_back({".", DT_DIR, 0});
  out.push_back({"..", DT_DIR, 0});
  std::string enc;
  while (dirent* de = ::readdir(d)) {
    const std::string_view name(de->d_name);
    if (name == "." || name == "..") continue;
    if (format::is_long_name(name)) {
      if (!read_small_file(dfd, sidecar_name(std::string(name)).c_str(), enc, 4096) ||
          format::long_name(enc) != name) {
        if (damaged) damaged->emplace_back(name);
        continue;
      }
    } else if (format::is_reserved(name)) {
      continue;
    } else {
      enc.assign(name);
    }
    auto plain = format::decrypt_name(*keys_, did, enc);
    if (!plain) {
      if (damaged) damaged->emplace_back(name);
      continue;
    }
    out.push_back({std::move(*plain), de->d_type, de->d_ino});
  }
  ::closedir(d);
  return out;
}

struct statvfs Fs::statfs() {
  struct statvfs s{};
  if (::fstatvfs(root_fd_, &s) != 0) fail_errno();
  s.f_namemax = format::kMaxNameBytes;
  return s;
}

FsStats Fs::stats() {
  std::lock_guard g(mu_);
  return {nodes_.size(), dir_cache_.size()};
}

}  // namespace fusevault
