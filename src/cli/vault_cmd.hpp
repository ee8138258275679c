// `pw vault init|unlock|lock|status|passwd`: the client side of the project vault.
// Passphrases come from the terminal (echo off), an inherited fd or a file — never argv or
// the environment — and are held in sodium_malloc'd memory. Unlock hands the passphrase to
// the workspace supervisor through a pipe passed over the control socket.
#pragma once

#include <cstdint>
#include <string>

namespace pw {

struct PassSource {
  int fd = -1;       // --passphrase-fd
  std::string file;  // --passphrase-file
  bool from_terminal() const { return fd < 0 && file.empty(); }
};

struct KdfChoice {
  std::uint64_t ops = 0;      // 0: fusevault's default
  std::uint64_t mem_mib = 0;  // 0: fusevault's default
};

// NAME may be empty inside a human session: the session's own profile is meant.
int vault_init(const std::string& name, const PassSource& pass, const KdfChoice& kdf);
int vault_passwd(const std::string& name, const PassSource& old_pass, const PassSource& new_pass,
                 const KdfChoice& kdf);
int vault_unlock(const std::string& name, const PassSource& pass);
int vault_lock(const std::string& name);
int vault_status(const std::string& name);
// Copies the plaintext tree `from` into NAME's vault (which must exist) directly on the
// cipherdir, then reads every file back through the vault and compares hashes. Holds the
// workspace's lock meanwhile, so no session (and no unlock) can start; refuses while the
// workspace runs. Existing vault entries are never overwritten (identical ones are skipped).
int vault_migrate(const std::string& name, const std::string& from, const PassSource& pass);

// `unlock = "on-enter"`: called by `pw NAME` once its workspace runs; asks on the terminal
// if the vault is locked. Failures are reported and the session starts locked.
void vault_unlock_on_enter(const std::string& name);

}  // namespace pw
