// import_tree / verify_tree: a plaintext tree into an open vault through the fs layer.
#include "fusevault/tree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>

#include "fs.hpp"

namespace fusevault {
namespace {

constexpr std::size_t kChunk = 1 << 20;
using Hash = std::array<unsigned char, crypto_generichash_BYTES>;

struct SrcEntry {
  std::string rel;  // relative to the source root, "/"-separated
  struct stat st;
  std::string target;  // symlinks
};

std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "/" + b; }
std::string parent_of(const std::string& rel) {
  auto p = rel.rfind('/');
  return p == std::string::npos ? std::string() : rel.substr(0, p);
}
std::string base_of(const std::string& rel) {
  auto p = rel.rfind('/');
  return p == std::string::npos ? rel : rel.substr(p + 1);
}

[[noreturn]] void fail_src(const std::string& path, const char* what, int err) {
  throw VaultError(std::string("cannot ") + what + " " + path + ": " + std::strerror(err));
}

// Pre-order listing of the tree under `root`, names sorted; symlinks are not followed.
void walk(const std::string& root, const std::string& rel, std::vector<SrcEntry>& out) {
  const std::string dir = rel.empty() ? root : root + "/" + rel;
  DIR* d = ::opendir(dir.c_str());
  if (!d) fail_src(dir, "read the directory", errno);
  std::vector<std::string> names;
  errno = 0;
  while (dirent* de = ::readdir(d)) {
    const std::string n = de->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  const int err = errno;
  ::closedir(d);
  if (err) fail_src(dir, "read the directory", err);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    SrcEntry e;
    e.rel = join(rel, n);
    const std::string full = root + "/" + e.rel;
    if (::lstat(full.c_str(), &e.st) != 0) fail_src(full, "stat", errno);
    if (S_ISLNK(e.st.st_mode)) {
      std::string buf(static_cast<std::size_t>(e.st.st_size) + 1, '\0');
      for (;;) {
        const ssize_t r = ::readlink(full.c_str(), buf.data(), buf.size());
        if (r < 0) fail_src(full, "read the symlink", errno);
        if (static_cast<std::size_t>(r) < buf.size()) {
          buf.resize(static_cast<std::size_t>(r));
          break;
        }
        buf.resize(buf.size() * 2);
      }
      e.target = buf;
    }
    const bool is_dir = S_ISDIR(e.st.st_mode);
    const std::string sub = e.rel;  // `out` may reallocate below
    out.push_back(std::move(e));
    if (is_dir) walk(root, sub, out);
  }
}

std::vector<SrcEntry> list_source(const std::string& source) {
  struct stat st{};
  if (::stat(source.c_str(), &st) != 0) fail_src(source, "stat", errno);
  if (!S_ISDIR(st.st_mode)) throw VaultError(source + " is not a directory");
  std::vector<SrcEntry> out;
  walk(source, "", out);
  return out;
}

struct SrcHash {
  Hash hash;
  std::uint64_t size;
};

SrcHash hash_source(const std::string& path, const std::function<void(std::size_t)>& chunk = {}) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail_src(path, "open", errno);
  crypto_generichash_state h;
  crypto_generichash_init(&h, nullptr, 0, crypto_generichash_BYTES);
  std::vector<unsigned char> buf(kChunk);
  SrcHash out{};
  for (;;) {
    const ssize_t r = ::read(fd, buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const int e = errno;
      ::close(fd);
      fail_src(path, "read", e);
    }
    if (r == 0) break;
    crypto_generichash_update(&h, buf.data(), static_cast<unsigned long long>(r));
    out.size += static_cast<std::uint64_t>(r);
    if (chunk) chunk(static_cast<std::size_t>(r));
  }
  ::close(fd);
  crypto_generichash_final(&h, out.hash.data(), out.hash.size());
  return out;
}

// Content hash of a vault file; FsError(EIO) when a block does not authenticate.
SrcHash hash_vault(Fs& fs, std::uint64_t ino, const std::function<void(std::size_t)>& chunk = {}) {
  const std::uint64_t fh = fs.open(ino, O_RDONLY);
  crypto_generichash_state h;
  crypto_generichash_init(&h, nullptr, 0, crypto_generichash_BYTES);
  std::vector<char> buf(kChunk);
  SrcHash out{};
  try {
    for (;;) {
      const std::size_t n = fs.read(fh, out.size, buf.size(), buf.data());
      if (n == 0) break;
      crypto_generichash_update(&h, reinterpret_cast<const unsigned char*>(buf.data()), n);
      out.size += n;
      if (chunk) chunk(n);
    }
  } catch (...) {
    fs.release(fh);
    throw;
  }
  fs.release(fh);
  crypto_generichash_final(&h, out.hash.data(), out.hash.size());
  return out;
}

bool same_mtime(const struct stat& a, const struct stat& b) {
  return a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

const char* kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISREG(m)) return "a file";
  if (S_ISLNK(m)) return "a symlink";
  return "a special file";
}

// Lookups held for the length of one operation; forgotten together at the end.
class Refs {
 public:
  explicit Refs(Fs& fs) : fs_(fs) {}
  ~Refs() {
    for (auto ino : held_) fs_.forget(ino, 1);
  }
  Refs(const Refs&) = delete;
  Refs& operator=(const Refs&) = delete;
  std::uint64_t hold(std::uint64_t ino) {
    held_.push_back(ino);
    return ino;
  }
  // The entry NAME in dir PARENT, or nullopt if there is none.
  std::optional<Fs::Entry> find(std::uint64_t parent, const std::string& name, const std::string& rel) {
    try {
      Fs::Entry e = fs_.lookup(parent, name);
      hold(e.ino);
      return e;
    } catch (const FsError& e) {
      if (e.err == ENOENT) return std::nullopt;
      throw VaultError("vault: " + rel + ": " + std::strerror(e.err));
    }
  }

 private:
  Fs& fs_;
  std::vector<std::uint64_t> held_;
};

TreeProgress totals(const std::vector<SrcEntry>& src) {
  TreeProgress p;
  for (const auto& e : src) {
    if (S_ISREG(e.st.st_mode) || S_ISLNK(e.st.st_mode)) p.total_files++;
    if (S_ISREG(e.st.st_mode)) p.total_bytes += static_cast<std::uint64_t>(e.st.st_size);
  }
  return p;
}

enum class Plan { New, Merge, Identical, Skip };

}  // namespace

ImportReport import_tree(Vault& vault, const std::string& source, const ProgressFn& progress) {
  Fs& fs = vault.fs();
  const std::vector<SrcEntry> src = list_source(source);
  ImportReport rep;
  Refs refs(fs);

  // Pass 1: what exists already. Only dirs that exist in the vault can hold existing entries.
  std::vector<Plan> plan(src.size(), Plan::New);
  std::map<std::string, std::uint64_t> existing{{"", Fs::kRoot}};
  for (std::size_t i = 0; i < src.size(); ++i) {
    const SrcEntry& e = src[i];
    const mode_t m = e.st.st_mode;
    if (!S_ISDIR(m) && !S_ISREG(m) && !S_ISLNK(m)) {
      plan[i] = Plan::Skip;
      rep.skipped.push_back(e.rel + ": " + kind(m) + " (only files, directories and symlinks are copied)");
      continue;
    }
    auto pit = existing.find(parent_of(e.rel));
    if (pit == existing.end()) continue;
    auto v = refs.find(pit->second, base_of(e.rel), e.rel);
    if (!v) continue;
    const mode_t vm = v->st.st_mode;
    if ((vm & S_IFMT) != (m & S_IFMT)) {
      rep.conflicts.push_back(e.rel + ": exists in the vault as " + kind(vm) + ", the source has " + kind(m));
    } else if (S_ISDIR(m)) {
      plan[i] = Plan::Merge;
      existing[e.rel] = v->ino;
    } else if (S_ISLNK(m)) {
      std::string t;
      try {
        t = fs.readlink(v->ino);
      } catch (const FsError& ex) {
        rep.conflicts.push_back(e.rel + ": exists in the vault, unreadable (" + std::strerror(ex.err) + ")");
        continue;
      }
      if (t == e.target)
        plan[i] = Plan::Identical;
      else
        rep.conflicts.push_back(e.rel + ": exists in the vault as a symlink to '" + t + "', the source's points to '" +
                                e.target + "'");
    } else {
      std::string why;
      if (v->st.st_size != e.st.st_size)
        why = "different size";
      else if ((vm & 07777) != (m & 07777))
        why = "different mode";
      else if (!same_mtime(v->st, e.st))
        why = "different mtime";
      else {
        try {
          if (hash_vault(fs, v->ino).hash != hash_source(source + "/" + e.rel).hash) why = "different content";
        } catch (const FsError& ex) {
          why = std::string("unreadable (") + std::strerror(ex.err) + ")";
        }
      }
      if (why.empty())
        plan[i] = Plan::Identical;
      else
        rep.conflicts.push_back(e.rel + ": exists in the vault with " + why);
    }
  }
  if (!rep.conflicts.empty()) return rep;

  // Pass 2: write, in pre-order (parents first).
  TreeProgress prog = totals(src);
  std::map<std::string, std::uint64_t> dirs = existing;
  std::vector<std::pair<std::uint64_t, const SrcEntry*>> made_dirs;
  std::vector<char> buf(kChunk);
  auto tell = [&](const std::string& rel) {
    if (!progress) return;
    prog.current = rel;
    progress(prog);
  };
  for (std::size_t i = 0; i < src.size(); ++i) {
    const SrcEntry& e = src[i];
    if (plan[i] == Plan::Skip || plan[i] == Plan::Merge) continue;
    if (plan[i] == Plan::Identical) {
      rep.identical++;
      prog.files++;
      if (S_ISREG(e.st.st_mode)) prog.bytes += static_cast<std::uint64_t>(e.st.st_size);
      tell(e.rel);
      continue;
    }
    const std::uint64_t parent = dirs.at(parent_of(e.rel));
    const std::string name = base_of(e.rel);
    const std::string full = source + "/" + e.rel;
    SetAttrRequest attrs;
    attrs.set_mode = true;
    attrs.mode = e.st.st_mode & 07777;
    attrs.set_atime = attrs.set_mtime = true;
    attrs.atime = e.st.st_atim;
    attrs.mtime = e.st.st_mtim;
    try {
      if (S_ISDIR(e.st.st_mode)) {
        // Owner-writable while it is filled; its own mode and mtime are set at the end.
        Fs::Entry d = fs.mkdir(parent, name, 0700);
        dirs[e.rel] = refs.hold(d.ino);
        made_dirs.emplace_back(d.ino, &e);
        rep.dirs++;
      } else if (S_ISLNK(e.st.st_mode)) {
        Fs::Entry l = fs.symlink(parent, name, e.target);
        refs.hold(l.ino);
        attrs.set_mode = false;
        fs.setattr(l.ino, 0, attrs);
        rep.symlinks++;
        prog.files++;
        tell(e.rel);
      } else {
        const int in = ::open(full.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0) fail_src(full, "open", errno);
        std::uint64_t fh = 0;
        Fs::Entry f{};
        try {
          f = fs.create(parent, name, 0600, O_RDWR | O_EXCL, fh);
        } catch (...) {
          ::close(in);
          throw;
        }
        refs.hold(f.ino);
        std::uint64_t off = 0;
        int rerr = 0;
        try {
          for (;;) {
            const ssize_t r = ::read(in, buf.data(), buf.size());
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
              rerr = errno;
              break;
            }
            if (r == 0) break;
            const std::size_t n = static_cast<std::size_t>(r);
            if (fs.write(fh, off, buf.data(), n) != n) throw FsError(EIO, "short write");
            off += n;
            prog.bytes += n;
            tell(e.rel);
          }
        } catch (...) {
          ::close(in);
          fs.release(fh);
          try {
            fs.unlink(parent, name);
          } catch (const FsError&) {
          }
          throw;
        }
        ::close(in);
        fs.release(fh);
        if (rerr) {
          try {
            fs.unlink(parent, name);
          } catch (const FsError&) {
          }
          fail_src(full, "read", rerr);
        }
        fs.setattr(f.ino, 0, attrs);
        rep.files++;
        rep.bytes += off;
        prog.files++;
        tell(e.rel);
      }
    } catch (const FsError& ex) {
      throw VaultError("cannot write " + e.rel + " into the vault: " + std::strerror(ex.err));
    }
  }
  // Directories last, deepest first: filling them changed their mtimes.
  for (auto it = made_dirs.rbegin(); it != made_dirs.rend(); ++it) {
    SetAttrRequest a;
    a.set_mode = true;
    a.mode = it->second->st.st_mode & 07777;
    a.set_atime = a.set_mtime = true;
    a.atime = it->second->st.st_atim;
    a.mtime = it->second->st.st_mtim;
    try {
      fs.setattr(it->first, 0, a);
    } catch (const FsError& ex) {
      throw VaultError("cannot set the mode of " + it->second->rel + " in the vault: " + std::strerror(ex.err));
    }
  }
  return rep;
}

VerifyReport verify_tree(Vault& vault, const std::string& source, const ProgressFn& progress) {
  Fs& fs = vault.fs();
  const std::vector<SrcEntry> src = list_source(source);
  VerifyReport rep;
  Refs refs(fs);
  TreeProgress prog = totals(src);
  std::map<std::string, std::uint64_t> dirs{{"", Fs::kRoot}};
  for (const SrcEntry& e : src) {
    const mode_t m = e.st.st_mode;
    if (!S_ISDIR(m) && !S_ISREG(m) && !S_ISLNK(m)) continue;
    auto pit = dirs.find(parent_of(e.rel));
    if (pit == dirs.end()) {
      rep.mismatches.push_back(e.rel + ": missing in the vault");
      continue;
    }
    auto v = refs.find(pit->second, base_of(e.rel), e.rel);
    if (!v) {
      rep.mismatches.push_back(e.rel + ": missing in the vault");
      continue;
    }
    const mode_t vm = v->st.st_mode;
    if ((vm & S_IFMT) != (m & S_IFMT)) {
      rep.mismatches.push_back(e.rel + ": is " + kind(vm) + " in the vault, " + kind(m) + " in the source");
      continue;
    }
    if (S_ISDIR(m)) {
      dirs[e.rel] = v->ino;
      rep.dirs++;
      continue;
    }
    prog.files++;
    if (S_ISLNK(m)) {
      rep.symlinks++;
      try {
        const std::string t = fs.readlink(v->ino);
        if (t != e.target) rep.mismatches.push_back(e.rel + ": symlink target differs ('" + t + "' in the vault)");
      } catch (const FsError& ex) {
        rep.mismatches.push_back(e.rel + ": symlink unreadable in the vault (" + std::strerror(ex.err) + ")");
      }
      if (progress) {
        prog.current = e.rel;
        progress(prog);
      }
      continue;
    }
    rep.files++;
    const SrcHash s = hash_source(source + "/" + e.rel);
    try {
      const SrcHash h = hash_vault(fs, v->ino, [&](std::size_t n) {
        prog.bytes += n;
        if (progress) {
          prog.current = e.rel;
          progress(prog);
        }
      });
      rep.bytes += h.size;
      if (h.size != s.size) {
        rep.mismatches.push_back(e.rel + ": size differs (" + std::to_string(h.size) + " bytes in the vault, " +
                                 std::to_string(s.size) + " in the source)");
        continue;
      }
      if (h.hash != s.hash) {
        rep.mismatches.push_back(e.rel + ": content differs (hash mismatch)");
        continue;
      }
    } catch (const FsError& ex) {
      rep.mismatches.push_back(e.rel + ": " + (ex.err == EIO ? std::string("content does not authenticate (damaged)")
                                                             : std::string("unreadable: ") + std::strerror(ex.err)));
      continue;
    }
    // One line per entry: content first, then metadata.
    if ((vm & 07777) != (m & 07777))
      rep.mismatches.push_back(e.rel + ": mode differs");
    else if (!same_mtime(v->st, e.st))
      rep.mismatches.push_back(e.rel + ": mtime differs");
  }
  return rep;
}

}  // namespace fusevault
