// Where a workspace's socket, lock and staging dir live, with the checks that make it safe
// to trust them: a 0700 dir owned by the user, reached without following symlinks.
#pragma once

#include <sched.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "util/fd.hpp"

namespace pw {

// $XDG_RUNTIME_DIR/pw when XDG_RUNTIME_DIR is a 0700 dir of ours, else /tmp/pw-UID.
// Creates it if missing; throws if it exists with another owner, group/other access, or as
// a symlink.
std::filesystem::path runtime_dir();

// Same choice as runtime_dir() without creating or checking anything (for planning).
std::filesystem::path runtime_dir_path();

struct WorkspacePaths {
  std::filesystem::path sock;   // control socket: never reachable from a session
  // The one socket a session may reach (bound into human sessions of a profile with a
  // vault, as $PW_CONTROL_SOCKET): it serves vault requests only, never a namespace or any
  // other descriptor.
  std::filesystem::path vault_sock;
  std::filesystem::path lock;   // held (flock) by the live supervisor
  std::filesystem::path stage;  // staging dir; a tmpfs inside the workspace's namespace
};
// A task the caller has just started (the supervisor, the workspace helper) is queued on
// the caller's CPU, where it waited 1-2 ms on the machines measured for the caller to block
// while the other CPUs idled: this moves it to the rest of `mine`, the caller's mask (best
// effort; nothing to do with one CPU). The task takes back `mine` itself, once it knows
// this has happened.
void start_elsewhere(pid_t pid, const cpu_set_t& mine);

WorkspacePaths workspace_paths(const std::string& name);
// The same in a runtime dir found already (by a client, for a supervisor whose ids are
// those of the workspace's user namespace, where runtime_dir() would name another).
WorkspacePaths workspace_paths_in(const std::filesystem::path& dir, const std::string& name);

// Verifies `dir` is a real directory owned by us with no group/other permissions.
void check_private_dir(const std::filesystem::path& dir);

// Opens `dir` (O_PATH) without following a symlink in its last component and makes the
// check_private_dir() checks on the inode it opened, so what was checked is what the fd
// names. Throws Error (a symlink is named as such).
Fd open_private_dir(const std::filesystem::path& dir);

// A workspace's staging dir, created if missing and checked as a private dir on the inode
// itself (never through a symlink). Returns its identity, which the namespace side checks
// again before it mounts the workspace's tmpfs there (make_namespaces).
struct stat check_stage(const std::filesystem::path& stage);

// Connects (SOCK_SEQPACKET) to the unix socket at `path` if it is a socket of ours: a
// symlink or anything else there is refused with an Error naming it, and the connection
// goes to the very inode checked (through /proc/self/fd), not to whatever the path names a
// moment later. Returns an empty Fd when nothing is there or nobody listens.
Fd connect_own_socket(const std::filesystem::path& path);

}  // namespace pw
