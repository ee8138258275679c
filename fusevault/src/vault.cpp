// Vault lifecycle: create, unlock, re-key, info, fsck. The config is written atomically.
#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "crypto.hpp"
#include "format.hpp"
#include "fs.hpp"
#include "fusevault/vault.hpp"

namespace fusevault {

struct Vault::Impl {
  int root_fd = -1;
  std::shared_ptr<format::Keys> keys;
  std::unique_ptr<Fs> fs;
  ~Impl() {
    fs.reset();
    if (keys) keys->wipe();
    if (root_fd >= 0) ::close(root_fd);
  }
};

namespace {

std::string errstr(const std::string& what) { return what + ": " + std::strerror(errno); }

int open_dir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw VaultError(errstr("cannot open " + path));
  return fd;
}

std::vector<std::uint8_t> read_config_bytes(int dfd) {
  int fd = ::openat(dfd, format::kConfigName, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) throw VaultError("not a fusevault vault (no fusevault.conf)");
    throw VaultError(errstr("cannot open fusevault.conf"));
  }
  std::vector<std::uint8_t> buf(4096);
  std::size_t got = 0;
  for (;;) {
    ssize_t r = ::read(fd, buf.data() + got, buf.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
    if (got == buf.size()) break;
  }
  ::close(fd);
  buf.resize(got);
  return buf;
}

format::Config parse(const std::vector<std::uint8_t>& b, bool enforce_floor) {
  const auto floor = minimum_kdf();
  try {
    return format::parse_config(b.data(), b.size(), enforce_floor ? floor.opslimit : 0,
                                enforce_floor ? floor.memlimit : 0);
  } catch (const format::FormatError& e) {
    throw VaultError(std::string("invalid vault config: ") + e.what());
  }
}

void write_all(int fd, const std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::write(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) throw VaultError(errstr("write failed"));
    p += r;
    n -= static_cast<std::size_t>(r);
  }
}

// temp file + fsync + rename + fsync(dir): the old or the new config, never a torn one.
void write_config_atomic(int dfd, const format::Config& c) {
  const auto bytes = format::serialize(c);
  ::unlinkat(dfd, format::kConfigTmpName, 0);
  int fd = ::openat(dfd, format::kConfigTmpName, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
  if (fd < 0) throw VaultError(errstr("cannot create fusevault.conf.tmp"));
  try {
    write_all(fd, bytes.data(), bytes.size());
    if (::fsync(fd) != 0) throw VaultError(errstr("fsync"));
  } catch (...) {
    ::close(fd);
    ::unlinkat(dfd, format::kConfigTmpName, 0);
    throw;
  }
  ::close(fd);
  if (::renameat(dfd, format::kConfigTmpName, dfd, format::kConfigName) != 0)
    throw VaultError(errstr("cannot replace fusevault.conf"));
  ::fsync(dfd);
}

}  // namespace

unsigned default_format() {
  crypto::init();
  return crypto::aes256gcm_available() ? format::kFormatV2 : format::kFormatV1;
}

std::string content_cipher(unsigned v) {
  if (v == format::kFormatV1) return "XChaCha20-Poly1305, random nonces";
  if (v == format::kFormatV2) return "AES-256-GCM, a key per write session";
  return "unknown";
}

namespace {
// Format 2 needs AES-NI: libsodium has no portable AES-GCM. Refused before any key work.
void require_cipher(unsigned v) {
  if (v == format::kFormatV2 && !crypto::aes256gcm_available())
    throw VaultError("this vault uses format 2 (AES-256-GCM), which libsodium runs only on x86 "
                     "CPUs with AES-NI and PCLMULQDQ; this one lacks them (vaults made here use "
                     "format 1)");
}
}  // namespace

KdfParams default_kdf() { return {3, 256ull << 20}; }
KdfParams minimum_kdf() { return {1, 8ull << 20}; }

Vault::Vault(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Vault::~Vault() = default;

void Vault::create(const std::string& cipherdir, const SecureBytes& pass, KdfParams kdf, unsigned fmt) {
  crypto::init();
  if (fmt == 0) fmt = default_format();
  if (fmt > 0xffff || !format::layout_for(static_cast<std::uint16_t>(fmt)))
    throw VaultError("unknown vault format " + std::to_string(fmt) + " (known: 1, 2)");
  require_cipher(fmt);
  if (pass.empty()) throw VaultError("empty passphrase");
  const auto floor = minimum_kdf();
  if (kdf.opslimit < floor.opslimit || kdf.memlimit < floor.memlimit)
    throw VaultError("KDF parameters below the floor (ops >= 1, mem >= 8 MiB)");
  const int dfd = open_dir(cipherdir);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{dfd};
  {
    int fd2 = ::fcntl(dfd, F_DUPFD_CLOEXEC, 0);
    DIR* d = fd2 < 0 ? nullptr : ::fdopendir(fd2);
    if (!d) {
      const std::string msg = errstr("cannot list " + cipherdir);
      if (fd2 >= 0) ::close(fd2);
      throw VaultError(msg);
    }
    bool empty = true;
    while (dirent* de = ::readdir(d))
      if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) empty = false;
    ::closedir(d);
    if (!empty) throw VaultError(cipherdir + " is not empty");
  }
  SecureBytes master(32);
  crypto::random_bytes(master.data(), 32);
  format::Config c;
  c.version = static_cast<std::uint16_t>(fmt);
  crypto::random_bytes(c.vault_id.data(), c.vault_id.size());
  crypto::random_bytes(c.salt.data(), c.salt.size());
  c.opslimit = kdf.opslimit;
  c.memlimit = kdf.memlimit;
  try {
    format::wrap_master(c, master, pass);
  } catch (const format::FormatError& e) {
    throw VaultError(e.what());
  }
  format::DirId root_id;
  crypto::random_bytes(root_id.data(), root_id.size());
  int fd = ::openat(dfd, format::kDirIdName, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
  if (fd < 0) throw VaultError(errstr("cannot create fusevault.dirid"));
  write_all(fd, root_id.data(), root_id.size());
  ::fsync(fd);
  ::close(fd);
  write_config_atomic(dfd, c);  // last: a vault exists once its config does
}

std::unique_ptr<Vault> Vault::open(const std::string& cipherdir, const SecureBytes& pass) {
  crypto::init();
  auto impl = std::make_unique<Impl>();
  impl->root_fd = open_dir(cipherdir);
  const auto c = parse(read_config_bytes(impl->root_fd), true);
  require_cipher(c.version);
  SecureBytes master;
  bool ok;
  try {
    ok = format::unwrap_master(c, pass, master);
  } catch (const format::FormatError& e) {
    throw VaultError(e.what());
  }
  if (!ok) throw WrongPassphrase();
  impl->keys = std::make_shared<format::Keys>(master.data(), c.version);
  return std::unique_ptr<Vault>(new Vault(std::move(impl)));
}

void Vault::change_passphrase(const std::string& cipherdir, const SecureBytes& old_pass,
                              const SecureBytes& new_pass, const KdfParams* new_kdf) {
  crypto::init();
  if (new_pass.empty()) throw VaultError("empty passphrase");
  const int dfd = open_dir(cipherdir);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{dfd};
  const auto c = parse(read_config_bytes(dfd), true);
  SecureBytes master;
  if (!format::unwrap_master(c, old_pass, master)) throw WrongPassphrase();
  format::Config n = c;
  crypto::random_bytes(n.salt.data(), n.salt.size());
  if (new_kdf) {
    const auto floor = minimum_kdf();
    if (new_kdf->opslimit < floor.opslimit || new_kdf->memlimit < floor.memlimit)
      throw VaultError("KDF parameters below the floor");
    n.opslimit = new_kdf->opslimit;
    n.memlimit = new_kdf->memlimit;
  }
  format::wrap_master(n, master, new_pass);
  // Prove the new config opens to the same key before it replaces the old one.
  const auto bytes = format::serialize(n);
  const auto back = parse(bytes, true);
  SecureBytes check;
  if (!format::unwrap_master(back, new_pass, check) || !crypto::equal_ct(check.data(), master.data(), 32))
    throw VaultError("internal error: re-wrapped key does not verify; config left unchanged");
  write_config_atomic(dfd, n);
}

VaultInfo Vault::info(const std::string& cipherdir) {
  crypto::init();
  const int dfd = open_dir(cipherdir);
  std::vector<std::uint8_t> b;
  try {
    b = read_config_bytes(dfd);
  } catch (...) {
    ::close(dfd);
    throw;
  }
  ::close(dfd);
  const auto c = parse(b, false);
  return {c.version, c.flags, crypto::hex(c.vault_id.data(), c.vault_id.size()), "argon2id13",
          {c.opslimit, c.memlimit}};
}

Fs& Vault::fs() {
  if (!impl_->keys) throw VaultError("vault is closed");
  if (!impl_->fs) {
    int fd = ::fcntl(impl_->root_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) throw VaultError(errstr("dup"));
    impl_->fs = std::make_unique<Fs>(fd, impl_->keys);
  }
  return *impl_->fs;
}

void Vault::close() {
  impl_->fs.reset();
  if (impl_->keys) impl_->keys->wipe();
  impl_->keys.reset();
}

void Vault::relock_keys() {
  if (impl_->keys) impl_->keys->relock();
}

namespace {
void fsck_dir(Fs& fs, std::uint64_t dino, const std::string& path, FsckReport& r) {
  std::vector<std::string> bad;
  std::vector<DirEntry> ents;
  try {
    ents = fs.readdir(dino, &bad);
  } catch (const FsError& e) {
    r.damaged.push_back((path.empty() ? "/" : path) + ": directory unreadable (" + std::strerror(e.err) + ")");
    return;
  }
  for (auto& b : bad) r.damaged.push_back(path + "/[" + b + "]: name does not authenticate");
  std::vector<char> buf(1 << 20);
  for (auto& e : ents) {
    if (e.name == "." || e.name == "..") continue;
    const std::string p = path + "/" + e.name;
    Fs::Entry en{};
    try {
      en = fs.lookup(dino, e.name);
    } catch (const FsError& ex) {
      r.damaged.push_back(p + ": lookup failed (" + std::strerror(ex.err) + ")");
      continue;
    }
    try {
      if (S_ISDIR(en.st.st_mode)) {
        r.dirs++;
        fsck_dir(fs, en.ino, p, r);
      } else if (S_ISREG(en.st.st_mode)) {
        r.files++;
        const auto fh = fs.open(en.ino, O_RDONLY);
        std::uint64_t off = 0;
        try {
          for (;;) {
            const auto n = fs.read(fh, off, buf.size(), buf.data());
            off += n;
            if (n < buf.size()) break;
          }
          r.bytes += off;
          if (off != static_cast<std::uint64_t>(en.st.st_size)) throw FsError(EIO);
        } catch (...) {
          fs.release(fh);
          throw;
        }
        fs.release(fh);
      } else if (S_ISLNK(en.st.st_mode)) {
        r.symlinks++;
        (void)fs.readlink(en.ino);
      } else {
        // The vault makes files, dirs and symlinks only: anything else was put there.
        r.damaged.push_back(p + ": not a file, dir or symlink (the vault makes no other kind)");
      }
    } catch (const FsError& ex) {
      r.damaged.push_back(p + ": " + (ex.err == EIO ? std::string("content does not authenticate")
                                                     : std::string(std::strerror(ex.err))));
    }
    fs.forget(en.ino, 1);
  }
}
}  // namespace

FsckReport fsck(Vault& vault) {
  FsckReport r;
  fsck_dir(vault.fs(), Fs::kRoot, "", r);
  return r;
}

void harden_process() {
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  rlimit rl{0, 0};
  ::setrlimit(RLIMIT_CORE, &rl);
  // Key memory is mlock'd as far as RLIMIT_MEMLOCK allows (sodium_malloc does not fail when
  // it cannot lock): take all of the hard limit.
  if (::getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_MEMLOCK, &rl);
  }
}

}  // namespace fusevault
