// Child side of the mount plan: builds the session's root from a MountPlan.
//
// Runs inside the session's fresh mount namespace (as root of the workspace's user
// namespace), before pivot_root. Every target is reached through fds opened with
// RESOLVE_NO_SYMLINKS below the new root, so a symlink planted in a bound directory can
// neither move a mount elsewhere nor lead one outside the root.
#pragma once

#include <filesystem>
#include <vector>

#include "policy/mount_plan.hpp"

namespace pw {

struct DevOptions {
  std::vector<std::filesystem::path> devices;  // host device nodes/dirs to expose
  bool host_shm = false;                       // bind the host /dev/shm (ipc = false)
  // The user's terminal (a host /dev/pts node), shown as /dev/console so that tty(1) and
  // ttyname(3) name it inside; empty when stdin is not a terminal.
  std::filesystem::path console;
};

// Mounts a fresh tmpfs on `newroot` and applies `plan` below it. Throws SysError naming the
// operation that failed.
// `vault_tree`: a detached clone of the workspace's vault anchor (see VaultHost), attached
// at the Vault op's target as a slave; -1 leaves that mountpoint as the host has it.
void build_root(const std::filesystem::path& newroot, const MountPlan& plan, const DevOptions& dev,
                int vault_tree = -1);

// chdir into `newroot`, make it `/`, and detach the old root.
void enter_root(const std::filesystem::path& newroot);

}  // namespace pw
