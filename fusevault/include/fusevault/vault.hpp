// fusevault public API: create/open/re-key a vault and serve it over FUSE.
// Passphrases are passed as SecureBytes, never as std::string.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "fusevault/secure.hpp"

namespace fusevault {

// A user-facing failure with a clear message (wrong passphrase, bad config, ...).
class VaultError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};
class WrongPassphrase : public VaultError {
public:
  WrongPassphrase() : VaultError("wrong passphrase (or the vault config was modified)") {}
};

struct KdfParams {
  std::uint64_t opslimit;
  std::uint64_t memlimit;  // bytes
};
KdfParams default_kdf();  // Argon2id MODERATE: 3 passes, 256 MiB
KdfParams minimum_kdf();  // the floor we accept when opening

// Format 2 seals file contents with AES-256-GCM (a key per write session), format 1 with
// XChaCha20-Poly1305; docs/vault-format.md. Format 2 needs libsodium's AES-GCM, which
// 1.0.18 has only on x86 with AES-NI and PCLMULQDQ. The default: 2 where it is, else 1.
unsigned default_format();
// "AES-256-GCM, a key per write session" or "XChaCha20-Poly1305, random nonces".
std::string content_cipher(unsigned format_version);

struct VaultInfo {
  unsigned format_version;
  std::uint32_t flags;
  std::string vault_id_hex;
  std::string kdf;  // "argon2id13"
  KdfParams kdf_params;
};

class Fs;  // the filesystem layer (fusevault/src/fs.hpp)

class Vault {
public:
  ~Vault();
  Vault(const Vault&) = delete;
  Vault& operator=(const Vault&) = delete;

  // Creates a new vault in an existing empty directory; format 0 means default_format().
  static void create(const std::string& cipherdir, const SecureBytes& passphrase, KdfParams kdf,
                     unsigned format = 0);
  // Opens (unlocks) a vault; throws WrongPassphrase or VaultError.
  static std::unique_ptr<Vault> open(const std::string& cipherdir, const SecureBytes& passphrase);
  // Re-wraps the master key under a new passphrase (atomic: temp + fsync + rename).
  static void change_passphrase(const std::string& cipherdir, const SecureBytes& old_pass,
                                const SecureBytes& new_pass, const KdfParams* new_kdf = nullptr);
  static VaultInfo info(const std::string& cipherdir);

  // The filesystem over this vault (created on first use; shared by servers/fsck).
  Fs& fs();
  // Drops the filesystem and wipes all keys; the Vault is unusable afterwards.
  void close();
  // Relock key memory after fork() (mlock is not inherited).
  void relock_keys();

  struct Impl;

private:
  explicit Vault(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct FsckReport {
  std::uint64_t files = 0, dirs = 0, symlinks = 0, bytes = 0;
  std::vector<std::string> damaged;  // "path: reason"
};
// Authenticates every name, every content block and every symlink target.
FsckReport fsck(Vault& vault);

struct MountOptions {
  bool writeback_cache = true;
  bool allow_other = false;
  unsigned max_threads = 8;
  double timeout_s = 1.0;  // entry and attribute timeouts
  bool debug = false;
};

// Serves a vault on an already chosen mountpoint in the current process.
// Usage: Server s(vault, mp, opts); s.mount(); ...; s.run();  stop() from any thread
// or a signal handler ends run(); the destructor unmounts and wipes the vault's keys.
class Server {
public:
  Server(std::unique_ptr<Vault> vault, std::string mountpoint, MountOptions opts = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  void mount();  // throws VaultError if the mount fails
  int run();     // blocks in the multithreaded FUSE loop; returns 0 on clean unmount
  void stop();   // async-signal-safe: exits the loop and lazily unmounts
  Vault& vault();
  struct Impl;

private:
  std::unique_ptr<Impl> impl_;
};

// Makes the current process non-dumpable, sets RLIMIT_CORE to 0 and raises RLIMIT_MEMLOCK
// to its hard limit (key memory is mlock'd as far as it allows).
void harden_process();

// Passphrase input. Terminal: echo off, on the given tty fd (or /dev/tty if -1).
SecureBytes read_passphrase_tty(const char* prompt, int tty_fd = -1);
// One line (up to newline or EOF) from an fd; the fd is not closed.
SecureBytes read_passphrase_fd(int fd);
SecureBytes read_passphrase_file(const std::string& path);

}  // namespace fusevault
