// The supervisor: holds the workspace's namespaces, hands them to same-uid clients, and ends
// the workspace when its last session disconnects.
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "net/process.hpp"
#include "profile/loader.hpp"
#include "sandbox/netns.hpp"
#include "sandbox/userns.hpp"
#include "util/error.hpp"
#include "workspace/protocol.hpp"
#include "workspace/runtime.hpp"
#include "workspace/vault_host.hpp"
#include "workspace/workspace.hpp"

namespace fs = std::filesystem;

namespace pw {
namespace {

constexpr int kIdleTimeoutMs = 10'000;  // a supervisor nobody joined gives up after this

struct Client {
  Fd fd;
  SessionInfo info;
  bool is_session = false;
};

Fd listen_on(const fs::path& path) {
  Fd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!s) throw SysError("socket");
  struct sockaddr_un addr = proto::address(path);
  ::unlink(path.c_str());  // stale (we hold the lock, so no live supervisor owns it), or planted
  // Created 0600 by bind itself: a chmod by path afterwards could be steered by a symlink
  // swapped in meanwhile. (bind never follows a symlink in the last component.)
  const mode_t old_mask = ::umask(0177);
  const int rc = ::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const int err = errno;
  ::umask(old_mask);
  if (rc != 0) throw SysError("bind " + path.string(), err);
  if (::listen(s.get(), 32) != 0) throw SysError("listen");
  return s;
}

// The staging dir as found on the host, checked on the inode itself (never through a
// symlink). Returns its identity, which the namespace side checks again.
struct stat make_stage(const fs::path& stage) {
  if (::mkdir(stage.c_str(), 0700) != 0 && errno != EEXIST) throw SysError("create " + stage.string());
  Fd fd = open_private_dir(stage);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw SysError("stat " + stage.string());
  return st;
}

// Inside the workspace's mount namespace: a tmpfs over the staging dir, invisible to the
// host, holding what the sessions share (/tmp, the agent home) and where each session
// builds its root. Mounted by fd on the very dir make_stage() checked; returns the tmpfs
// (its root), which clients use to verify the path they are given.
Fd populate_stage(const fs::path& stage, const struct stat& checked) {
  struct open_how how {};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  Fd target(static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, stage.c_str(), &how, sizeof how)));
  struct stat st {};
  if (!target || ::fstat(target.get(), &st) != 0 || st.st_dev != checked.st_dev ||
      st.st_ino != checked.st_ino) {
    throw Error(stage.string() + " changed while the workspace started (replaced, or a symlink); refusing it");
  }
  Fd ctx(::fsopen("tmpfs", FSOPEN_CLOEXEC));
  if (!ctx || ::fsconfig(ctx.get(), FSCONFIG_SET_STRING, "mode", "0700", 0) != 0 ||
      ::fsconfig(ctx.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    throw SysError("create the workspace tmpfs");
  }
  Fd mnt(::fsmount(ctx.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
  if (!mnt) throw SysError("mount the workspace tmpfs");
  for (auto [sub, mode] : {std::pair{"tmp", 01777}, std::pair{"home", 0700}, std::pair{"root", 0755}}) {
    if (::mkdirat(mnt.get(), sub, static_cast<mode_t>(mode)) != 0 ||
        ::fchmodat(mnt.get(), sub, static_cast<mode_t>(mode), 0) != 0) {
      throw SysError("create " + (stage / sub).string());
    }
  }
  if (::move_mount(mnt.get(), "", target.get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
    throw SysError("mount the workspace tmpfs on " + stage.string());
  }
  return mnt;
}

// The workspace's network namespace (every mode but "host"): loopback only, shared by its
// sessions as they share /tmp, so a server started in one terminal answers on localhost in
// another, and made once per workspace rather than at every session start. With the
// allowlist, it also holds the proxy's listener on 127.0.0.1:3128.
struct WorkspaceNet {
  Fd ns;
  Fd http;  // listening on 127.0.0.1:3128 inside it (allowlist mode), else empty
};

// Made by a child cloned into the new namespace that shares our memory and descriptor
// table and runs while we wait (as with vfork): the supervisor itself stays in the host's
// network namespace, where the proxy it forks later dials out, and pays no fork.
WorkspaceNet make_workspace_net(bool proxy_listener) {
  struct Job {
    bool listen = false;
    int ns = -1, http = -1;
    std::string error;
  } job;
  job.listen = proxy_listener;
  auto child = [](void* arg) -> int {
    Job& j = *static_cast<Job*>(arg);
    try {
      bring_up_loopback();
      if (j.listen) j.http = net::listen_loopback().release();
      j.ns = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
      if (j.ns < 0) throw SysError("open the new network namespace");
    } catch (const std::exception& e) {
      j.error = e.what();
    }
    return 0;
  };
  constexpr std::size_t kStack = 64 * 1024;
  std::unique_ptr<char[]> stack(new char[kStack]);  // not zero-filled: only what it uses faults in
  const pid_t pid = ::clone(+child, stack.get() + kStack,
                            CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_NEWNET | SIGCHLD, &job);
  if (pid < 0) throw SysError("create the workspace's network namespace");
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  WorkspaceNet net{Fd(job.ns), Fd(job.http)};
  if (!job.error.empty()) throw Error("workspace network namespace: " + job.error);
  return net;
}

std::string ps_reply(const std::string& name, long started, const std::map<int, Client>& clients,
                     const VaultHost& vault) {
  std::ostringstream out;
  out << "ok workspace " << name << " pid=" << ::getpid() << " started=" << started;
  if (vault.configured()) out << " vault=" << to_string(vault.state());
  out << "\n";
  for (const auto& [fd, c] : clients) {
    if (!c.is_session) continue;
    out << "session pid=" << c.info.pid << " started=" << c.info.started << " " << c.info.summary << "\n";
  }
  return out.str();
}

// Before it is ready, a supervisor's failure goes to the client that started it, through
// the ready pipe ("1" is success), for the client to report as its own error: the client
// loads the same profile meanwhile, and one mistake must not be reported twice. A client
// already gone (its own check failed) closed the pipe, and the write just fails (EPIPE:
// SIGPIPE is ignored from the start).
void report_failure(const Fd& ready, const std::string& name, const char* what) {
  const std::string msg = "workspace " + name + ": " + what;
  if (::write(ready.get(), msg.data(), msg.size()) < 0) {
  }
}

}  // namespace

int supervisor_main(const std::string& name, int lock_fd, int ready_fd, const ProfileSpec* loaded,
                    SupervisorPlacement placement) {
  Fd lock(lock_fd), ready(ready_fd), settled(placement.settled);
  ::fcntl(lock.get(), F_SETFD, FD_CLOEXEC);
  ::fcntl(ready.get(), F_SETFD, FD_CLOEXEC);
  if (settled) ::fcntl(settled.get(), F_SETFD, FD_CLOEXEC);
  ::setsid();  // off the client's terminal: its Ctrl-C and hangup are not ours
  // A client gone before we are ready must not kill us at the write to the ready pipe: we
  // still have sockets to take down.
  ::signal(SIGPIPE, SIG_IGN);
  ::prctl(PR_SET_NAME, "pw-supervisor");  // exec'd through /proc/self/exe, it would show as "exe"
  Fd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  ::dup2(devnull.get(), 0);
  ::dup2(devnull.get(), 1);

  long started = static_cast<long>(::time(nullptr));
  WorkspacePaths paths = workspace_paths(name);
  Fd listener, vault_listener, userns, mntns, stage_root;
  // The vault's settings are read once, as the user, before entering the namespace.
  fs::path cipherdir;
  // The network proxy (allowlist and ssh-agent forward modes): forked below, as the user in
  // the host's network namespace; it serves the workspace's 127.0.0.1:3128 and the ssh-agent
  // sockets the sessions hand over.
  net::ProxyProcess proxy;
  std::optional<net::ProxyProcessConfig> proxy_config;
  NetMode net_mode = NetMode::Host;
  WorkspaceNet net;
  try {
    // The client's copy, read in place: a copy cost 0.3 ms of our start-up (each page it
    // writes is a copy-on-write fault after the fork).
    std::optional<ProfileSpec> read;
    if (!loaded) read = load_profile(name);
    const ProfileSpec& spec = loaded ? *loaded : *read;
    net_mode = spec.net;
    if (spec.vault && spec.posture == Posture::Human) cipherdir = spec.vault->cipherdir;
    if (spec.net == NetMode::Allowlist || spec.ssh_agent == SshAgentMode::Forward) {
      proxy_config = net::proxy_config(spec);  // a bad entry is reported to the client
    }
  } catch (const std::exception& e) {
    report_failure(ready, name, e.what());
    return 1;
  }
  VaultHost vault(name, cipherdir, paths.stage / "vault");
  try {
    const struct stat stage_st = make_stage(paths.stage);
    enter_user_namespace_as_root(CLONE_NEWNS);
    // Mount events flow from the host into the workspace, never back.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) throw SysError("make mounts slave");
    stage_root = populate_stage(paths.stage, stage_st);
    if (vault.configured()) vault.prepare();
    if (net_mode != NetMode::Host) net = make_workspace_net(net_mode == NetMode::Allowlist);
    // After the id maps are written: nothing of this process may be read through ptrace or
    // /proc by other processes of the user, and no core dump.
    ::prctl(PR_SET_DUMPABLE, 0);
    struct rlimit no_core = {0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    userns.reset(::open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC));
    mntns.reset(::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC));
    if (!userns || !mntns) throw SysError("open namespace files");
    listener = listen_on(paths.sock);
    if (vault.configured()) vault_listener = listen_on(paths.vault_sock);
    // Our client kept us off its CPU for the start; it has closed `settled` by now (right
    // after moving us, milliseconds ago), so this read returns at once. Back on its mask
    // before the proxy and the vault's threads inherit ours.
    if (settled) {
      char byte;
      while (::read(settled.get(), &byte, 1) < 0 && errno == EINTR) {
      }
      if (placement.cpus) ::sched_setaffinity(0, sizeof *placement.cpus, placement.cpus);
      settled.reset();
    }
  } catch (const std::exception& e) {
    if (listener) ::unlink(paths.sock.c_str());  // bound just now: ours
    report_failure(ready, name, e.what());
    return 1;
  }
  struct stat sock_st {}, vault_sock_st {};
  ::lstat(paths.sock.c_str(), &sock_st);
  if (vault_listener) ::lstat(paths.vault_sock.c_str(), &vault_sock_st);
  // The ready pipe stays open until the first session: the client that started us closes
  // it when it leaves, having joined or not. Not joined means its own checks refused the
  // profile (or it was killed), and a workspace built from a refused profile must not wait
  // out the idle timeout for someone to join it. Gone already: we end now.
  const bool client_left = ::write(ready.get(), "1", 1) != 1;
  ::dup2(devnull.get(), 2);
  // Forked only now: it must not hold the client's stderr open. Without its proxy the
  // workspace ends before any session: they fail to reach us rather than run without it.
  bool failed = false;
  if (proxy_config && !client_left) {
    try {
      proxy = net::start_proxy_process(*proxy_config);
      if (net.http) {
        // The workspace's one listener: lives as long as the proxy (no lifeline).
        net::send_listener(proxy.control.get(), net::ListenerKind::Http, net.http.get());
        net.http.reset();
      }
    } catch (const std::exception&) {
      failed = true;
    }
  }

  std::map<int, Client> clients;
  bool had_session = false;
  while (!client_left && !failed) {
    std::vector<struct pollfd> fds;
    fds.push_back({listener.get(), POLLIN, 0});
    fds.push_back({vault_listener ? vault_listener.get() : -1, POLLIN, 0});  // -1: ignored
    for (const auto& [fd, c] : clients) fds.push_back({fd, POLLIN, 0});
    const size_t first_vault = fds.size();
    for (int fd : vault.fds()) fds.push_back({fd, POLLIN, 0});
    // The proxy never writes to its control socket: any event there is its end.
    const size_t proxy_at = fds.size();
    if (proxy.control) fds.push_back({proxy.control.get(), POLLIN, 0});
    // The pipe's write end reports POLLERR once its reader is gone.
    const size_t ready_at = fds.size();
    if (ready) fds.push_back({ready.get(), 0, 0});
    int timeout = had_session ? -1 : kIdleTimeoutMs;
    int r = ::poll(fds.data(), fds.size(), timeout);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0 && !had_session) break;
    if (ready && fds[ready_at].revents) {
      if (!had_session) break;  // the client that started us left without joining
      ready.reset();
    }

    if (proxy.control && fds[proxy_at].revents) {
      // The proxy died (killed, out of memory): its listener went with it, and a session
      // could take 127.0.0.1:3128 to hear the others' requests. The workspace ends; its
      // sessions are told the supervisor went away.
      break;
    }
    for (size_t i = first_vault; i < proxy_at; ++i) {
      if (fds[i].revents) vault.on_ready(fds[i].fd);
    }
    for (size_t i = 2; i < first_vault; ++i) {
      if (!fds[i].revents) continue;
      Client& c = clients[fds[i].fd];
      std::string msg;
      std::vector<Fd> passed;
      bool alive = false;
      try {
        alive = proto::recv(c.fd.get(), msg, &passed);
      } catch (const std::exception&) {
      }
      if (!alive) {
        clients.erase(fds[i].fd);
        continue;
      }
      // A session's ssh-agent socket for the proxy, sent by its pid 1. It lives as long as
      // the session's client (the lifeline); anything else is ignored.
      if (c.is_session && proxy.control && msg == "net-listen ssh-agent" && passed.size() == 1) {
        Fd lifeline(static_cast<int>(::syscall(SYS_pidfd_open, c.info.pid, 0)));
        try {
          net::send_listener(proxy.control.get(), net::ListenerKind::SshAgent, passed[0].get(), lifeline.get());
        } catch (const std::exception&) {
        }
      }
    }
    for (size_t l = 0; l < 2; ++l) {
      if (!(fds[l].revents & POLLIN)) continue;
      // The vault socket is the one sessions can reach: it serves vault requests and
      // nothing else (a session that got the namespaces or the staging tmpfs would be out
      // of its view).
      const bool vault_only = l == 1;
      Fd conn(::accept4(fds[l].fd, nullptr, nullptr, SOCK_CLOEXEC));
      if (conn) {
        // The one wait on a single peer in this loop: its first message. A peer that
        // connects and sends nothing (any process of a human session can reach the vault
        // socket) is dropped after a second instead of holding every other client, and a
        // lock, waiting.
        const struct timeval hello_wait = {1, 0};
        ::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &hello_wait, sizeof hello_wait);
        try {
          // The user appears as our euid inside this namespace; anyone else does not.
          if (proto::peer_uid(conn.get()) != ::geteuid()) throw Error("peer of another uid");
          std::string hello;
          std::vector<Fd> passed;
          if (!proto::recv(conn.get(), hello, &passed)) throw Error("no hello");
          std::istringstream in(hello);
          std::string word, kind;
          int version = 0;
          in >> word >> version >> kind;
          if (word != "hello" || version != proto::kVersion) {
            proto::send(conn.get(), "error protocol version mismatch: restart the workspace");
          } else if (vault_only && kind != "vault") {
            proto::send(conn.get(), "error this socket serves vault requests only");
          } else if (kind == "session") {
            Client c;
            c.is_session = true;
            c.info.pid = proto::peer_pid(conn.get());
            c.info.started = static_cast<long>(::time(nullptr));
            std::getline(in >> std::ws, c.info.summary);
            // "ok NET VAULT STAGE": the network mode the workspace was made with (h, n or a:
            // a namespace follows the three fixed fds unless h) and whether the vault anchor
            // follows (1 or 0). The client refuses a mode its profile no longer has.
            std::vector<int> give = {userns.get(), mntns.get(), stage_root.get()};
            if (net.ns) give.push_back(net.ns.get());
            if (vault.anchor_fd() >= 0) give.push_back(vault.anchor_fd());
            proto::send(conn.get(),
                        std::string("ok ") + proto::net_code(net_mode) + (vault.anchor_fd() >= 0 ? " 1 " : " 0 ") +
                            paths.stage.string(),
                        give);
            int fd = conn.get();
            c.fd = std::move(conn);
            clients.emplace(fd, std::move(c));
            had_session = true;
          } else if (kind == "ps") {
            proto::send(conn.get(), ps_reply(name, started, clients, vault));
          } else if (kind == "vault") {
            std::string op;
            in >> op;
            if (op == "unlock") {
              vault.begin_unlock(passed.empty() ? Fd() : std::move(passed[0]), std::move(conn));
            } else if (op == "lock") {
              vault.lock();
              proto::send(conn.get(), "ok locked " + name);  // the name: the client's may be wrong
            } else if (op == "status") {
              proto::send(conn.get(), vault.configured() ? ps_reply(name, started, clients, vault)
                                                         : "error this profile has no [vault]");
            } else {
              proto::send(conn.get(), "error unknown vault request");
            }
          } else {
            proto::send(conn.get(), "error unknown request");
          }
        } catch (const std::exception&) {
          // Dropping the connection is the whole answer to a bad peer.
        }
      }
    }
    bool any_session = false;
    for (const auto& [fd, c] : clients) any_session |= c.is_session;
    if (had_session && !any_session) break;
  }
  // Last session gone: the plaintext goes with it, and the key.
  vault.lock();
  if (proxy.control) {
    proxy.control.reset();  // the proxy exits when its control socket closes
    while (::waitpid(proxy.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }

  // Remove the socket only if it is still ours; a successor may have replaced it.
  struct stat now {};
  if (::lstat(paths.sock.c_str(), &now) == 0 && now.st_ino == sock_st.st_ino &&
      now.st_dev == sock_st.st_dev) {
    ::unlink(paths.sock.c_str());
  }
  if (vault_listener && ::lstat(paths.vault_sock.c_str(), &now) == 0 &&
      now.st_ino == vault_sock_st.st_ino && now.st_dev == vault_sock_st.st_dev) {
    ::unlink(paths.vault_sock.c_str());
  }
  return failed ? 1 : 0;
}

}  // namespace pw
