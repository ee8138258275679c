// Client side of a workspace: find or start the supervisor, join its namespaces.
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>

#include "util/error.hpp"
#include "util/proctitle.hpp"
#include "workspace/maker.hpp"
#include "workspace/protocol.hpp"
#include "workspace/runtime.hpp"
#include "workspace/workspace.hpp"

namespace fs = std::filesystem;

namespace pw {
namespace {

// Starts the workspace's supervisor, handing it the lock we hold; returns the read end of
// its readiness pipe. Forked, not exec'd: a second exec of pw (the loader, the relocations,
// the C++ run-time's start-up and their page faults) was the longest part of a cold start,
// and a fork this early copies little (the caller has loaded the profile, which the child
// then uses, and read no passphrase; a join that must restart a supervisor forks after
// planning, which holds nothing secret either). The child retitles itself `pw __supervise NAME`, as `ps` showed
// the exec'd one. It is our child until we exit and outlives us (it serves this very
// session), so there is nothing to reap.
Fd spawn_supervisor(const std::string& name, int lock_fd, const ProfileSpec* loaded) {
  int ready[2], settled[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) throw SysError("pipe");
  Fd ready_r(ready[0]), ready_w(ready[1]);
  if (::pipe2(settled, O_CLOEXEC) != 0) throw SysError("pipe");
  Fd settled_r(settled[0]), settled_w(settled[1]);
  // Started elsewhere than our CPU (start_elsewhere), it takes back our mask (a `taskset`
  // of the user's stays in force) once it sees `settled` close, which we do only after the
  // move, so the two cannot cross.
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  const bool have_mask = ::sched_getaffinity(0, sizeof cpus, &cpus) == 0;
  const std::string title = "pw __supervise " + name;
  std::fflush(nullptr);  // nothing buffered is written twice
  const pid_t pid = ::fork();
  if (pid < 0) throw SysError("start the workspace supervisor");
  if (pid == 0) {
    // Only these three fds stay, as 3, 4 and 5: none of the caller's other descriptors (a
    // harness's pipe, say) stays open for the workspace's life.
    const int lfd = ::fcntl(lock_fd, F_DUPFD, 10), rfd = ::fcntl(ready_w.get(), F_DUPFD, 10),
              sfd = ::fcntl(settled_r.get(), F_DUPFD, 10);
    if (lfd < 0 || rfd < 0 || sfd < 0 || ::dup2(lfd, 3) < 0 || ::dup2(rfd, 4) < 0 || ::dup2(sfd, 5) < 0) _exit(1);
    ::close_range(6, ~0U, 0);
    // In a session of its own: a Ctrl-C at the terminal reaches our process group, not it.
    ::setsid();
    proctitle::set(title);
    // Nothing may unwind from here into the caller's frames (the client's code).
    try {
      _exit(supervisor_main(name, 3, 4, loaded, SupervisorPlacement{5, &cpus}));
    } catch (...) {
      _exit(1);
    }
  }
  if (have_mask) start_elsewhere(pid, cpus);
  settled_w.reset();
  return ready_r;
}

// Waits for a supervisor we started to listen, or throws with its error.
// A supervisor that fails writes why instead of "1".
void await_supervisor(const std::string& name, const Fd& ready) {
  std::string got;
  char buf[512];
  for (;;) {
    const ssize_t n = ::read(ready.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
    if (got == "1" || got.size() > 4096) break;
  }
  if (got == "1") return;
  if (!got.empty()) throw Error(got);
  throw Error("could not start the workspace supervisor for '" + name + "'");
}

}  // namespace

WorkspaceStart::WorkspaceStart() = default;
WorkspaceStart::WorkspaceStart(WorkspaceStart&&) noexcept = default;
WorkspaceStart& WorkspaceStart::operator=(WorkspaceStart&&) noexcept = default;
WorkspaceStart::~WorkspaceStart() = default;

WorkspaceStart prestart_workspace(const std::string& name, const ProfileSpec* loaded) {
  const fs::path runtime = runtime_dir();
  WorkspacePaths paths = workspace_paths_in(runtime, name);
  Fd lock(::open(paths.lock.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!lock) throw SysError("open " + paths.lock.string());
  WorkspaceStart start;
  // Whoever holds the lock is (or is about to be) the live supervisor.
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) return start;
  if (loaded && WorkspaceMaker::usable(*loaded)) {
    start.maker = WorkspaceMaker::begin(name, *loaded, runtime, std::move(lock));
  } else {
    start.ready = spawn_supervisor(name, lock.get(), loaded);
  }
  return start;
}

Joined join_workspace(const std::string& name, const std::string& summary, WorkspaceStart starting) {
  // Made beside us: no supervisor to wait for.
  if (starting.maker) {
    Joined j = starting.maker->finish(summary);
    j.keep = std::shared_ptr<WorkspaceMaker>(std::move(starting.maker));
    return j;
  }
  WorkspacePaths paths = workspace_paths(name);
  // The ready pipe of a supervisor we started stays open until it has our hello (it goes
  // at our return): one that sees the pipe close with no session yet ends, its client gone.
  Fd ready = std::move(starting.ready);
  if (ready) await_supervisor(name, ready);
  for (int attempt = 0; attempt < 200; ++attempt) {
    if (WorkspaceStart fresh = prestart_workspace(name)) {
      await_supervisor(name, fresh.ready);
      ready = std::move(fresh.ready);
    }
    Fd conn = connect_own_socket(paths.sock);
    if (conn) {
      std::string reply;
      std::vector<Fd> fds;
      // A supervisor that ends while our connection waits to be accepted resets it
      // (ECONNRESET, or EPIPE for the hello): like EOF, a supervisor shutting down.
      bool answered = false;
      try {
        proto::send(conn.get(), "hello " + std::to_string(proto::kVersion) + " session " + summary);
        answered = proto::recv(conn.get(), reply, &fds);
      } catch (const SysError& e) {
        if (e.err() != ECONNRESET && e.err() != EPIPE) throw;
      }
      if (answered) {
        // "ok NET VAULT STAGE" (protocol 3): the workspace's network mode (h, n, a: a
        // namespace fd follows the fixed three unless h) and whether the vault anchor follows.
        NetMode mode = NetMode::Host;
        const bool ok = reply.size() > 7 && reply.compare(0, 3, "ok ") == 0 && reply[4] == ' ' &&
                        reply[6] == ' ' && proto::net_from_code(reply[3], mode) &&
                        (reply[5] == '0' || reply[5] == '1');
        if (ok) {
          const bool net = mode != NetMode::Host, vault = reply[5] == '1';
          if (fds.size() == 3u + net + vault) {
            Joined j{std::move(conn), std::move(fds[0]), std::move(fds[1]), reply.substr(7),
                     std::move(fds[2]), Fd(), Fd(), mode};
            if (net) j.netns = std::move(fds[3]);
            if (vault) j.vault_anchor = std::move(fds[3 + net]);
            return j;
          }
        }
        throw Error("workspace '" + name + "' refused the session: " + reply);
      }
      // EOF without a reply: that supervisor was shutting down. Try again.
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(attempt < 20 ? 5 : 25));
  }
  throw Error("could not reach the workspace supervisor of '" + name + "' at " + paths.sock.string());
}

void enter_workspace(const Joined& ws) {
  // The supervisor's user owns this namespace, so we (same uid) get all capabilities in it.
  if (::setns(ws.userns.get(), CLONE_NEWUSER) != 0) throw SysError("join the workspace's user namespace");
  if (::setns(ws.mntns.get(), CLONE_NEWNS) != 0) throw SysError("join the workspace's mount namespace");
  // The session is built under the staging dir and binds its /tmp and home from there, by
  // path. The path must still lead, without a symlink, to the supervisor's own tmpfs: a
  // stage renamed away and replaced (by a symlink or a dir of someone's choosing) would
  // otherwise put the session's /tmp where that someone reads it.
  struct open_how how {};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  Fd here(static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, ws.stage.c_str(), &how, sizeof how)));
  struct stat want {}, got {};
  if (::fstat(ws.stage_fd.get(), &want) != 0) throw SysError("stat the workspace's staging dir");
  if (!here || ::fstat(here.get(), &got) != 0 || got.st_dev != want.st_dev || got.st_ino != want.st_ino) {
    throw Error("the workspace's staging dir " + ws.stage.string() +
                " is no longer the supervisor's (replaced, or a symlink); refusing to start a "
                "session there (end the workspace's sessions to start afresh)");
  }
}

Fd connect_workspace(const std::string& name, const fs::path& socket) {
  fs::path path = socket.empty() ? workspace_paths(name).sock : socket;
  Fd conn = connect_own_socket(path);
  if (!conn) return conn;
  // The peer must be a process of ours: anyone else's socket at this path is an impostor.
  if (proto::peer_uid(conn.get()) != ::getuid()) {
    throw Error(path.string() + " is served by another user; refusing to talk to it");
  }
  return conn;
}

WorkspaceInfo parse_workspace_info(const std::string& reply) {
  WorkspaceInfo w;
  std::istringstream in(reply);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    std::string kind;
    l >> kind;
    if (kind == "ok") {
      std::string word, pid, st, extra;
      l >> word >> w.name >> pid >> st;
      if (pid.rfind("pid=", 0) == 0) w.supervisor_pid = std::stol(pid.substr(4));
      if (st.rfind("started=", 0) == 0) w.started = std::stol(st.substr(8));
      while (l >> extra) {
        if (extra.rfind("vault=", 0) == 0) w.vault = extra.substr(6);
      }
    } else if (kind == "session") {
      SessionInfo s;
      std::string pid, st;
      l >> pid >> st;
      if (pid.rfind("pid=", 0) == 0) s.pid = std::stol(pid.substr(4));
      if (st.rfind("started=", 0) == 0) s.started = std::stol(st.substr(8));
      std::getline(l >> std::ws, s.summary);
      w.sessions.push_back(s);
    }
  }
  return w;
}

std::vector<WorkspaceInfo> list_workspaces() {
  std::vector<WorkspaceInfo> out;
  fs::path dir = runtime_dir();
  std::error_code ec;
  for (const auto& ent : fs::directory_iterator(dir, ec)) {
    // NAME.sock only: NAME.vault.sock serves vault requests alone.
    if (ent.path().extension() != ".sock" || ent.path().stem().extension() == ".vault") continue;
    try {
      Fd conn = connect_own_socket(ent.path());  // refuses symlinks and others' sockets
      if (!conn) continue;
      proto::send(conn.get(), "hello " + std::to_string(proto::kVersion) + " ps");
      std::string reply;
      if (!proto::recv(conn.get(), reply) || reply.rfind("ok ", 0) != 0) continue;
      WorkspaceInfo w = parse_workspace_info(reply);
      out.push_back(w);
    } catch (const std::exception&) {
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

}  // namespace pw
