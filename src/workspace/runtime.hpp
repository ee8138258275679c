// Where a workspace's socket, lock and staging dir live, with the checks that make it safe
// to trust them: a 0700 dir owned by the user, reached without following symlinks.
#pragma once

#include <filesystem>
#include <string>

namespace pw {

// $XDG_RUNTIME_DIR/pw when XDG_RUNTIME_DIR is a 0700 dir of ours, else /tmp/pw-UID.
// Creates it if missing; throws if it exists with another owner, group/other access, or as
// a symlink.
std::filesystem::path runtime_dir();

// Same choice as runtime_dir() without creating or checking anything (for planning).
std::filesystem::path runtime_dir_path();

struct WorkspacePaths {
  std::filesystem::path sock;   // control socket
  std::filesystem::path lock;   // held (flock) by the live supervisor
  std::filesystem::path stage;  // staging dir; a tmpfs inside the workspace's namespace
};
WorkspacePaths workspace_paths(const std::string& name);

// Verifies `dir` is a real directory owned by us with no group/other permissions.
void check_private_dir(const std::filesystem::path& dir);

}  // namespace pw
