#include "workspace/runtime.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "util/error.hpp"

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

void check_private_dir(const fs::path& dir) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) throw SysError("stat " + dir.string());
  if (!S_ISDIR(st.st_mode)) throw Error(dir.string() + " is not a directory (refusing to use it)");
  if (st.st_uid != ::getuid()) {
    throw Error(dir.string() + " belongs to uid " + std::to_string(st.st_uid) +
                ", not to you (refusing to use it)");
  }
  if ((st.st_mode & 077) != 0) {
    throw Error(dir.string() + " is accessible to other users (mode " +
                std::to_string(st.st_mode & 0777) + "); expected 0700");
  }
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

WorkspacePaths workspace_paths(const std::string& name) {
  fs::path dir = runtime_dir();
  return {dir / (name + ".sock"), dir / (name + ".lock"), dir / (name + ".ws")};
}

}  // namespace pw
