// The workspace's vault, supervisor side. The decrypted view lives only in the workspace's
// mount namespace, on a shared mount at <stage>/vault that every human session binds (as a
// slave) at the vault's mountpoint: mounting fusevault there makes the plaintext appear in
// all of them at once, unmounting makes it vanish from all of them.
//
// The FUSE server is a forked child of the (single-threaded) supervisor, so it shares the
// workspace's user and mount namespaces; it is non-dumpable, has no core limit, dies with
// the supervisor (PR_SET_PDEATHSIG) and holds the keys only in sodium_malloc'd memory that
// is wiped when it unmounts.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "util/fd.hpp"

namespace pw {

class VaultHost {
 public:
  enum class State { Locked, Unlocking, Unlocked };

  VaultHost(std::string workspace, std::filesystem::path cipherdir, std::filesystem::path mount_dir);
  ~VaultHost();
  VaultHost(const VaultHost&) = delete;
  VaultHost& operator=(const VaultHost&) = delete;

  // In the workspace's mount namespace, before any session exists: the empty, shared mount
  // the sessions bind.
  void prepare();

  State state() const { return state_; }
  // An O_PATH fd of the anchor itself, taken before anything was mounted on it: a clone made
  // from it (open_tree, AT_EMPTY_PATH) is rooted at the anchor, not at what covers it, so
  // the session's copy keeps receiving mount and unmount events. -1 before prepare().
  int anchor_fd() const { return anchor_.get(); }
  bool configured() const { return !cipherdir_.empty(); }

  // Starts unlocking with the passphrase read from `pass_fd` (one line). The outcome goes
  // to `reply_to` as "ok unlocked", "error wrong-passphrase: ..." or "error ...".
  void begin_unlock(Fd pass_fd, Fd reply_to);

  // Unmounts (the plaintext leaves every session), stops the server, which wipes the key.
  // Waits for the server to exit (SIGKILL after a grace period). Idempotent.
  void lock();

  // Fds the supervisor's poll loop must watch, and what to call when one is ready.
  std::vector<int> fds() const;
  void on_ready(int fd);

 private:
  void reap(bool report);
  void sweep_mounts();
  void flush_before_stop();

  std::string workspace_;
  std::filesystem::path cipherdir_;
  std::filesystem::path mount_dir_;
  State state_ = State::Locked;
  pid_t pid_ = -1;
  Fd anchor_;
  Fd pidfd_;
  Fd status_;    // read end: the child's one-line outcome
  Fd reply_to_;  // the client waiting for the outcome of an unlock
  std::string status_buf_;
};

const char* to_string(VaultHost::State);

}  // namespace pw
