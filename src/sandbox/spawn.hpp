// The session recipe: clone into fresh namespaces, build the root, drop to the user, walls,
// exec. One ordered function a reader can follow; each step lives in its own file.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "policy/landlock_plan.hpp"
#include "policy/mount_plan.hpp"
#include "sandbox/mounts.hpp"
#include "sandbox/seccomp.hpp"

namespace pw {

struct SessionSpec {
  MountPlan plan;
  DevOptions dev;
  std::filesystem::path newroot;  // empty dir in the workspace where the root is built
  std::vector<std::string> argv;  // what to run (argv[0] looked up in the session's PATH)
  std::vector<std::string> env;   // "NAME=value"
  std::filesystem::path cwd;      // inside the session
  std::filesystem::path fallback_cwd;
  std::string hostname;
  uid_t uid = 0;  // the user's real ids on the host: what the session runs as
  gid_t gid = 0;
  // The workspace's network namespace (loopback only, shared by its sessions), which the
  // session's pid 1 enters; -1 ("host" mode): the host's network.
  int net_fd = -1;
  bool new_ipc = true;
  seccomp::Program seccomp;
  // The second wall: applied at `landlock_abi` (0: not at all) by the session's init.
  std::vector<LandlockRule> landlock;
  int landlock_abi = 0;
  bool verbose = false;
  // Agent posture: the command gets stdin, stdout and stderr only, none of the other
  // descriptors pw's caller passed on (a directory fd would lead outside the view).
  bool only_stdio = false;
  int vault_tree = -1;  // detached clone of the workspace's vault anchor (human posture)
  // Forward mode: the filtered ssh-agent socket, made inside the session at this path.
  std::filesystem::path ssh_agent_socket;
  int control_fd = -1;
};

// Runs a session to completion from a process that is root in the workspace's user
// namespace and inside its mount namespace (see workspace/client.cpp). `watch_fd`, when
// >= 0, is the supervisor connection: if it closes, the session is killed. Returns what pw
// should exit with: the command's status, 128+N if it died of signal N, 125 if the sandbox
// could not be set up, 126/127 if the command could not be run.
int run_session(const SessionSpec& spec, int watch_fd);

}  // namespace pw
