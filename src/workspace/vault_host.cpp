#include "workspace/vault_host.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fusevault/vault.hpp>

#include "util/error.hpp"
#include "workspace/protocol.hpp"

namespace fs = std::filesystem;

namespace pw {
namespace {

constexpr long kFuseSuperMagic = 0x65735546;
constexpr int kStopGraceMs = 5000;

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// The vault server: runs in a child forked from the supervisor. Never returns.
[[noreturn]] void serve(const std::string& workspace, const fs::path& cipherdir,
                        const fs::path& mount_dir, int pass_fd, int status_fd, pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) _exit(1);
  ::prctl(PR_SET_NAME, "pw-vault");
  // Keep exactly the passphrase fd (3) and the status pipe (4): a copy of a session's
  // connection here would keep that session "alive" for the supervisor's peers.
  int p = ::fcntl(pass_fd, F_DUPFD_CLOEXEC, 100);
  int s = ::fcntl(status_fd, F_DUPFD_CLOEXEC, 100);
  if (p < 0 || s < 0 || ::dup2(p, 3) < 0 || ::dup2(s, 4) < 0) _exit(1);
  ::close_range(5, ~0U, 0);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) ::signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  fusevault::harden_process();

  int rc = 1;
  try {
    std::unique_ptr<fusevault::Vault> vault;
    {
      fusevault::SecureBytes pass = fusevault::read_passphrase_fd(3);
      ::close(3);
      if (pass.empty()) throw fusevault::VaultError("empty passphrase");
      try {
        vault = fusevault::Vault::open(cipherdir.string(), pass);
      } catch (const fusevault::WrongPassphrase&) {
        throw;
      } catch (const std::exception& e) {
        throw fusevault::VaultError((cipherdir / "fusevault.conf").string() + ": " + e.what());
      }
    }  // the passphrase is wiped here
    fusevault::MountOptions opts;
    // allow_other inside the workspace's user namespace admits this namespace and the
    // sessions' nested ones only; same-uid processes outside (e.g. through /proc/PID/root)
    // get EACCES. default_permissions is always on.
    opts.allow_other = true;
    fusevault::Server server(std::move(vault), mount_dir.string(), opts);
    server.mount();
    write_all(4, "ok\n");
    ::close(4);
    rc = server.run();
  } catch (const fusevault::WrongPassphrase&) {
    // The config is authenticated as a whole: an edited byte reads as a wrong passphrase.
    write_all(4, "wrong wrong passphrase (or " + (cipherdir / "fusevault.conf").string() +
                     " was modified)\n");
    _exit(2);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    for (char& c : msg) {
      if (c == '\n') c = ' ';
    }
    write_all(4, "error " + msg + " (vault of " + workspace + ")\n");
    _exit(1);
  }
  // The Server's destructor has unmounted and wiped the keys.
  _exit(rc == 0 ? 0 : 1);
}

}  // namespace

const char* to_string(VaultHost::State s) {
  switch (s) {
    case VaultHost::State::Locked: return "locked";
    case VaultHost::State::Unlocking: return "unlocking";
    case VaultHost::State::Unlocked: return "unlocked";
  }
  return "?";
}

VaultHost::VaultHost(std::string workspace, fs::path cipherdir, fs::path mount_dir)
    : workspace_(std::move(workspace)), cipherdir_(std::move(cipherdir)), mount_dir_(std::move(mount_dir)) {}

VaultHost::~VaultHost() { lock(); }

void VaultHost::prepare() {
  if (::mkdir(mount_dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    throw SysError("create " + mount_dir_.string());
  }
  // Its own mount, so it can be shared: what is mounted on it reaches every session's bind.
  // Read-only: while locked, a write to the mountpoint fails (EROFS) instead of landing,
  // unencrypted, in a tmpfs that the vault covers on unlock and that ends with the workspace.
  if (::mount("tmpfs", mount_dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
              "mode=0700,size=16k,nr_inodes=8") != 0) {
    throw SysError("mount the vault anchor");
  }
  if (::mount(nullptr, mount_dir_.c_str(), nullptr, MS_SHARED, nullptr) != 0) {
    throw SysError("make the vault anchor shared");
  }
  anchor_.reset(::open(mount_dir_.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!anchor_) throw SysError("open the vault anchor");
}

void VaultHost::begin_unlock(Fd pass_fd, Fd reply_to) {
  auto reply = [&](const std::string& text) {
    try {
      proto::send(reply_to.get(), text);
    } catch (const std::exception&) {
    }
  };
  if (!configured()) return reply("error this profile has no [vault]");
  if (state_ == State::Unlocked) return reply("ok already unlocked");
  if (state_ == State::Unlocking) return reply("error another unlock of this vault is in progress");
  if (!pass_fd) return reply("error no passphrase fd");

  int st[2];
  if (::pipe2(st, O_CLOEXEC) != 0) return reply("error pipe: " + std::string(std::strerror(errno)));
  Fd st_r(st[0]), st_w(st[1]);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return reply("error fork: " + std::string(std::strerror(errno)));
  if (pid == 0) serve(workspace_, cipherdir_, mount_dir_, pass_fd.get(), st_w.get(), parent);
  pid_ = pid;
  pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  status_ = std::move(st_r);
  status_buf_.clear();
  reply_to_ = std::move(reply_to);
  state_ = State::Unlocking;
}

std::vector<int> VaultHost::fds() const {
  std::vector<int> out;
  if (status_) out.push_back(status_.get());
  if (pidfd_) out.push_back(pidfd_.get());
  return out;
}

void VaultHost::on_ready(int fd) {
  if (status_ && fd == status_.get()) {
    char buf[512];
    ssize_t n = ::read(status_.get(), buf, sizeof buf);
    if (n > 0) {
      status_buf_.append(buf, static_cast<size_t>(n));
      if (status_buf_.find('\n') == std::string::npos) return;
    }
    std::string line = status_buf_.substr(0, status_buf_.find('\n'));
    status_.reset();
    std::string answer;
    if (line == "ok") {
      state_ = State::Unlocked;
      answer = "ok unlocked";
    } else if (line.rfind("wrong ", 0) == 0) {
      answer = "error wrong-passphrase: " + line.substr(6);
    } else if (line.rfind("error ", 0) == 0) {
      answer = line;
    } else {
      answer = "error the vault server exited before mounting";
    }
    Fd to = std::move(reply_to_);
    if (state_ != State::Unlocked) {
      // A failed unlock is answered once its server is gone: "error" means nothing is left.
      // It has said all it will; it mounted nothing.
      ::kill(pid_, SIGKILL);
      reap(false);
    }
    if (to) {
      try {
        proto::send(to.get(), answer);
      } catch (const std::exception&) {
      }
    }
    return;
  }
  if (pidfd_ && fd == pidfd_.get()) reap(true);
}

void VaultHost::reap(bool report) {
  if (pid_ > 0) {
    int st;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
  pidfd_.reset();
  status_.reset();
  if (report && reply_to_) {
    try {
      proto::send(reply_to_.get(), "error the vault server exited before mounting");
    } catch (const std::exception&) {
    }
  }
  reply_to_.reset();
  state_ = State::Locked;
  sweep_mounts();
}

void VaultHost::lock() {
  if (pid_ > 0) {
    flush_before_stop();
    ::kill(pid_, SIGTERM);
    struct pollfd p = {pidfd_.get(), POLLIN, 0};
    int r;
    do {
      r = ::poll(&p, 1, kStopGraceMs);
    } while (r < 0 && errno == EINTR);
    if (r == 0) ::kill(pid_, SIGKILL);
    reap(true);
  }
  sweep_mounts();
}

// Data written to files still open in a session sits in the kernel's writeback cache
// until they are closed or synced; stopping the server first would throw it away. A
// child syncs the filesystem, which sends that data to the server, still running; a
// server that does not answer within the grace period is stopped all the same (the
// child's waiting requests are then aborted, and it is reaped).
void VaultHost::flush_before_stop() {
  if (mount_dir_.empty()) return;
  const pid_t child = ::fork();
  if (child < 0) return;
  if (child == 0) {
    const int fd = ::open(mount_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) ::syncfs(fd);
    _exit(0);
  }
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, child, 0)));
  struct pollfd p = {pidfd.get(), POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, kStopGraceMs);
  } while (r < 0 && errno == EINTR);
  if (r <= 0) {
    ::kill(child, SIGKILL);
    ::kill(pid_, SIGKILL);  // a server that does not sync would not stop on SIGTERM either
  }
  while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
  }
}

// Whatever is still stacked on the anchor (a server that was killed leaves its mount, now
// answering ENOTCONN) is detached; propagation removes it from every session.
void VaultHost::sweep_mounts() {
  if (mount_dir_.empty()) return;
  for (int i = 0; i < 8; ++i) {
    struct statfs sfs {};
    if (::statfs(mount_dir_.c_str(), &sfs) != 0) {
      if (errno != ENOTCONN) return;
    } else if (sfs.f_type != kFuseSuperMagic) {
      return;
    }
    if (::umount2(mount_dir_.c_str(), MNT_DETACH) != 0) return;
  }
}

}  // namespace pw
