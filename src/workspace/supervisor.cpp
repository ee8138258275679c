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
#include "util/error.hpp"
#include "workspace/maker.hpp"
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
  bool awaiting_hello = false;  // the session that made the workspace, not yet named
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

// A failure that ends the workspace, to its sessions ("error ..."): run_session prints it
// as it ends the session, instead of only seeing us go.
void tell(int fd, const std::string& name, const std::string& what) {
  // Unread messages first (the starter's hello): a unix socket closed with some would
  // reset the peer's, which then sees ECONNRESET instead of our message.
  char unread[4096];
  while (::recv(fd, unread, sizeof unread, MSG_DONTWAIT) > 0) {
  }
  try {
    proto::send(fd, "error workspace " + name + ": " + what);
  } catch (const std::exception&) {
  }
}

}  // namespace

int supervisor_main(const std::string& name, int lock_fd, int ready_fd, const ProfileSpec* loaded,
                    SupervisorPlacement placement, MadeWorkspace* made) {
  Fd lock(lock_fd), ready(ready_fd), settled(placement.settled);
  // Made by a client's helper (maker.cpp), we join the workspace's user namespace below:
  // nothing of this process may be read through ptrace or /proc by other processes of the
  // user, and no core dump, from the start.
  if (made) ::prctl(PR_SET_DUMPABLE, 0);
  ::fcntl(lock.get(), F_SETFD, FD_CLOEXEC);
  if (ready) ::fcntl(ready.get(), F_SETFD, FD_CLOEXEC);
  if (settled) ::fcntl(settled.get(), F_SETFD, FD_CLOEXEC);
  ::setsid();  // off the client's terminal: its Ctrl-C and hangup are not ours
  // A client gone before we are ready must not kill us at the write to the ready pipe: we
  // still have sockets to take down.
  ::signal(SIGPIPE, SIG_IGN);
  ::prctl(PR_SET_NAME, "pw-supervisor");  // exec'd through /proc/self/exe, it would show as "exe"
  Fd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  ::dup2(devnull.get(), 0);
  ::dup2(devnull.get(), 1);
  // Made: nobody reads our errors (the client runs its session already); they end us.
  if (made) ::dup2(devnull.get(), 2);

  long started = static_cast<long>(::time(nullptr));
  // Made: the runtime dir the client found and checked.
  WorkspacePaths paths = made ? workspace_paths_in(made->runtime, name) : workspace_paths(name);
  Fd listener, vault_listener, userns, mntns, stage_root, netns, http;
  // The vault's settings are read once, as the user, before entering the namespace.
  fs::path cipherdir;
  // The network proxy (allowlist and ssh-agent forward modes): forked below, as the user in
  // the host's network namespace; it serves the workspace's 127.0.0.1:3128 and the ssh-agent
  // sockets the sessions hand over.
  net::ProxyProcess proxy;
  std::optional<net::ProxyProcessConfig> proxy_config;
  NetMode net_mode = NetMode::Host;
  try {
    // The client's copy, read in place: a copy cost 0.3 ms of our start-up (each page it
    // writes is a copy-on-write fault after the fork).
    std::optional<ProfileSpec> read;
    if (!loaded) read = load_profile(name);
    const ProfileSpec& spec = loaded ? *loaded : *read;
    // Made: the namespaces are what the client's profile asked for, and sessions mount no
    // vault (WorkspaceMaker::usable), whatever the file says now.
    net_mode = made ? made->net_mode : spec.net;
    if (!made && spec.vault && spec.posture == Posture::Human) cipherdir = spec.vault->cipherdir;
    if (net_mode == NetMode::Allowlist || spec.ssh_agent == SshAgentMode::Forward) {
      proxy_config = net::proxy_config(spec);  // a bad entry is reported to the client
    }
  } catch (const std::exception& e) {
    report_failure(ready, name, e.what());
    if (made) tell(made->starter.get(), name, e.what());
    return 1;
  }
  VaultHost vault(name, cipherdir, paths.stage / "vault");
  try {
    if (made) {
      // Exec'd from the host's user namespace (maker.cpp), we join the workspace's now.
      if (::setns(made->userns.get(), CLONE_NEWUSER) != 0) throw SysError("join the workspace's user namespace");
      if (::setns(made->mntns.get(), CLONE_NEWNS) != 0) throw SysError("join the workspace's mount namespace");
      userns = std::move(made->userns);
      mntns = std::move(made->mntns);
      stage_root = std::move(made->stage_root);
      netns = std::move(made->netns);
      http = std::move(made->http);
    } else {
      NsRequest req;
      req.prepare(paths.stage, check_stage(paths.stage));
      req.net = net_mode != NetMode::Host;
      req.http = net_mode == NetMode::Allowlist;
      const bool ok = make_namespaces(req);
      userns.reset(req.userns);
      mntns.reset(req.mntns);
      stage_root.reset(req.stage_root);
      netns.reset(req.netns);
      http.reset(req.http_fd);
      if (!ok) req.throw_failure("");
      if (vault.configured()) vault.prepare();
      // After the id maps are written: nothing of this process may be read through ptrace
      // or /proc by other processes of the user.
      ::prctl(PR_SET_DUMPABLE, 0);
    }
    struct rlimit no_core = {0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
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
    if (made) tell(made->starter.get(), name, e.what());
    return 1;
  }
  struct stat sock_st {}, vault_sock_st {};
  ::lstat(paths.sock.c_str(), &sock_st);
  if (vault_listener) ::lstat(paths.vault_sock.c_str(), &vault_sock_st);

  std::map<int, Client> clients;
  bool had_session = false;
  // Made: the client that made us runs its session (or is about to) and counts as one from
  // the start; the hello it left on its socket names it. It sent that after moving us off
  // its CPU (maker.cpp): our mask goes back to its own only then, and the proxy, which
  // inherits it, starts only then. A client gone before its hello ends the workspace.
  bool client_left = false;
  if (made) {
    Client c;
    c.is_session = true;
    c.awaiting_hello = true;
    c.info.pid = proto::peer_pid(made->starter.get());
    c.info.started = started;
    const int fd = made->starter.get();
    c.fd = std::move(made->starter);
    clients.emplace(fd, std::move(c));
    had_session = true;
  } else {
    // The ready pipe stays open until the first session: the client that started us
    // closes it when it leaves, having joined or not. Not joined means its own checks
    // refused the profile (or it was killed), and a workspace built from a refused profile
    // must not wait out the idle timeout for someone to join it. Gone already: we end now.
    client_left = ::write(ready.get(), "1", 1) != 1;
    ::dup2(devnull.get(), 2);
  }
  // Forked only now: it must not hold the client's stderr open. Without its proxy the
  // workspace ends: its sessions are told why (made) or fail to reach us, rather than run
  // without it.
  bool failed = false;
  auto start_proxy = [&] {
    if (!proxy_config) return;
    try {
      proxy = net::start_proxy_process(*proxy_config);
      if (http) {
        // The workspace's one listener: lives as long as the proxy (no lifeline).
        net::send_listener(proxy.control.get(), net::ListenerKind::Http, http.get());
        http.reset();
      }
    } catch (const std::exception& e) {
      failed = true;
      for (const auto& [fd, c] : clients) {
        if (c.is_session) tell(fd, name, std::string("the network proxy did not start: ") + e.what());
      }
    }
  };
  if (!made && !client_left) start_proxy();

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
      if (c.awaiting_hello) {
        std::istringstream in(msg);
        std::string word, kind;
        int version = 0;
        in >> word >> version >> kind;
        if (word != "hello" || version != proto::kVersion || kind != "session") {
          clients.erase(fds[i].fd);
          continue;
        }
        c.awaiting_hello = false;
        std::getline(in >> std::ws, c.info.summary);
        if (made->restore_cpus) ::sched_setaffinity(0, sizeof made->cpus, &made->cpus);
        start_proxy();
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
            if (netns) give.push_back(netns.get());
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
