// Client side of a workspace: find or start the supervisor, join its namespaces.
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <thread>

#include "util/error.hpp"
#include "workspace/protocol.hpp"
#include "workspace/runtime.hpp"
#include "workspace/workspace.hpp"

namespace fs = std::filesystem;

namespace pw {
namespace {

Fd connect_to(const fs::path& path) {
  Fd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!s) throw SysError("socket");
  struct sockaddr_un addr = proto::address(path);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return Fd();
  return s;
}

// Starts `pw __supervise` detached from us (double fork: it is nobody's child we must reap)
// handing it the lock we hold; returns the read end of its readiness pipe.
Fd spawn_supervisor(const std::string& name, int lock_fd) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) throw SysError("pipe");
  Fd ready_r(ready[0]), ready_w(ready[1]);
  pid_t mid = ::fork();
  if (mid < 0) throw SysError("fork");
  if (mid == 0) {
    if (::fork() != 0) _exit(0);
    // Only these two fds cross the exec.
    int lfd = ::fcntl(lock_fd, F_DUPFD, 10);
    int rfd = ::fcntl(ready_w.get(), F_DUPFD, 10);
    std::string l = std::to_string(lfd), r = std::to_string(rfd);
    const char* argv[] = {"pw", "__supervise", name.c_str(), l.c_str(), r.c_str(), nullptr};
    ::execv("/proc/self/exe", const_cast<char* const*>(argv));
    _exit(127);
  }
  ready_w.reset();
  int st;
  ::waitpid(mid, &st, 0);
  return ready_r;
}

// Waits for a supervisor we started to listen, or throws with its error.
void await_supervisor(const std::string& name, const Fd& ready) {
  char c;
  ssize_t n;
  do {
    n = ::read(ready.get(), &c, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) throw Error("could not start the workspace supervisor for '" + name + "'");
}

}  // namespace

Fd prestart_workspace(const std::string& name) {
  WorkspacePaths paths = workspace_paths(name);
  Fd lock(::open(paths.lock.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!lock) throw SysError("open " + paths.lock.string());
  // Whoever holds the lock is (or is about to be) the live supervisor.
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) return Fd();
  return spawn_supervisor(name, lock.get());
}

Joined join_workspace(const std::string& name, const std::string& summary, Fd starting) {
  WorkspacePaths paths = workspace_paths(name);
  if (starting) await_supervisor(name, starting);
  for (int attempt = 0; attempt < 200; ++attempt) {
    if (Fd ready = prestart_workspace(name)) await_supervisor(name, ready);
    Fd conn = connect_to(paths.sock);
    if (conn) {
      proto::send(conn.get(), "hello " + std::to_string(proto::kVersion) + " session " + summary);
      std::string reply;
      std::vector<Fd> fds;
      if (proto::recv(conn.get(), reply, &fds)) {
        if (reply.rfind("ok ", 0) == 0 && (fds.size() == 2 || fds.size() == 3)) {
          Joined j{std::move(conn), std::move(fds[0]), std::move(fds[1]), reply.substr(3), Fd()};
          if (fds.size() == 3) j.vault_anchor = std::move(fds[2]);
          return j;
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
}

Fd connect_workspace(const std::string& name, const fs::path& socket) {
  fs::path path = socket.empty() ? workspace_paths(name).sock : socket;
  Fd conn = connect_to(path);
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
    if (ent.path().extension() != ".sock") continue;
    Fd conn = connect_to(ent.path());
    if (!conn) continue;
    try {
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
