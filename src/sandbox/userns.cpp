#include "sandbox/userns.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <string>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace pw {
namespace {

void write_file(const char* path, const std::string& text) {
  Fd fd(::open(path, O_WRONLY | O_CLOEXEC));
  if (!fd) throw SysError(std::string("open ") + path);
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    throw SysError(std::string("write ") + path);
  }
}

// An unprivileged process may map exactly its own euid/egid, and only after it gave up
// setgroups(2) (otherwise it could drop a supplementary group that denies it access).
void map_self(uid_t inside_uid, uid_t outside_uid, gid_t inside_gid, gid_t outside_gid) {
  write_file("/proc/self/setgroups", "deny");
  write_file("/proc/self/uid_map", std::to_string(inside_uid) + " " + std::to_string(outside_uid) + " 1\n");
  write_file("/proc/self/gid_map", std::to_string(inside_gid) + " " + std::to_string(outside_gid) + " 1\n");
}

}  // namespace

void enter_user_namespace_as(uid_t uid, gid_t gid) {
  uid_t outer_uid = ::geteuid();
  gid_t outer_gid = ::getegid();
  if (::unshare(CLONE_NEWUSER) != 0) throw SysError("create the session's user namespace");
  map_self(uid, outer_uid, gid, outer_gid);
}

}  // namespace pw
