#include "workspace/runtime.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>

#include "util/error.hpp"
#include "workspace/protocol.hpp"

namespace fs = std::filesystem;

namespace pw {
namespace {

bool usable_xdg_runtime(const char* xdg) {
  if (!xdg || xdg[0] != '/') return false;
  struct stat st;
  return ::lstat(xdg, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::getuid() &&
         (st.st_mode & 077) == 0;
}

}  // namespace

Fd open_private_dir(const fs::path& dir) {
  Fd fd(::open(dir.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) throw SysError("open " + dir.string());
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) throw SysError("stat " + dir.string());
  if (S_ISLNK(st.st_mode)) {
    throw Error(dir.string() + " is a symlink (refusing to follow it; remove it if you did not make it)");
  }
  if (!S_ISDIR(st.st_mode)) throw Error(dir.string() + " is not a directory (refusing to use it)");
  if (st.st_uid != ::getuid()) {
    throw Error(dir.string() + " belongs to uid " + std::to_string(st.st_uid) +
                ", not to you (refusing to use it)");
  }
  if ((st.st_mode & 077) != 0) {
    throw Error(dir.string() + " is accessible to other users (mode " +
                std::to_string(st.st_mode & 0777) + "); expected 0700");
  }
  return fd;
}

void check_private_dir(const fs::path& dir) { open_private_dir(dir); }

struct stat check_stage(const fs::path& stage) {
  if (::mkdir(stage.c_str(), 0700) != 0 && errno != EEXIST) throw SysError("create " + stage.string());
  Fd fd = open_private_dir(stage);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw SysError("stat " + stage.string());
  return st;
}

Fd connect_own_socket(const fs::path& path) {
  Fd at(::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!at) {
    if (errno == ENOENT) return Fd();
    throw SysError("open " + path.string());
  }
  struct stat st;
  if (::fstat(at.get(), &st) != 0) throw SysError("stat " + path.string());
  if (S_ISLNK(st.st_mode)) {
    throw Error(path.string() + " is a symlink, not pw's control socket (refusing to follow it; "
                "remove it if you did not make it)");
  }
  if (!S_ISSOCK(st.st_mode)) throw Error(path.string() + " is not a socket (refusing to use it)");
  if (st.st_uid != ::getuid()) {
    throw Error(path.string() + " belongs to uid " + std::to_string(st.st_uid) +
                ", not to you (refusing to use it)");
  }
  Fd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!s) throw SysError("socket");
  struct sockaddr_un addr = proto::address("/proc/self/fd/" + std::to_string(at.get()));
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return Fd();
  return s;
}

fs::path runtime_dir_path() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (usable_xdg_runtime(xdg)) return fs::path(xdg) / "pw";
  return fs::path("/tmp") / ("pw-" + std::to_string(::getuid()));
}

fs::path runtime_dir() {
  fs::path dir = runtime_dir_path();
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw SysError("create " + dir.string());
  check_private_dir(dir);
  return dir;
}

void start_elsewhere(pid_t pid, const cpu_set_t& mine) {
  cpu_set_t elsewhere = mine;
  const int here = ::sched_getcpu();
  if (here >= 0 && here < CPU_SETSIZE) CPU_CLR(here, &elsewhere);
  if (CPU_COUNT(&elsewhere) > 0 && !CPU_EQUAL(&elsewhere, &mine)) ::sched_setaffinity(pid, sizeof elsewhere, &elsewhere);
}

WorkspacePaths workspace_paths(const std::string& name) { return workspace_paths_in(runtime_dir(), name); }

WorkspacePaths workspace_paths_in(const fs::path& dir, const std::string& name) {
  return {dir / (name + ".sock"), dir / (name + ".vault.sock"), dir / (name + ".lock"), dir / (name + ".ws")};
}

}  // namespace pw
