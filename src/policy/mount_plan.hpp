// The mount plan: what a session sees, as an ordered list of typed operations.
//
// Planning is pure (profile + a view of the host filesystem in, operations out) and happens
// before any namespace is entered; src/sandbox/mounts.cpp executes the operations in order.
// The rules, in words:
//   - The sandbox root is an empty tmpfs; only what a rule names appears in it.
//   - Deepest rule wins for its subtree, so an allow under a denied parent re-exposes exactly
//     that path and a deny under an allowed parent hides it. Rules on the same path resolve
//     by strength, never by list order: forced hide > staging > hide > read-only > writable.
//   - pw's config dir, runtime dir and workspace staging dir are hidden with nothing
//     re-exposable beneath them, whatever the lists say.
//   - Symlinks in a rule's path are resolved as the user; the rule applies to the target and
//     each link is recreated at its own path when the view would not already show it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "policy/fsview.hpp"
#include "profile/spec.hpp"

namespace pw {

enum class Access {
  ReadWrite,  // bind of the host path, writable
  ReadOnly,   // bind of the host path, read-only (recursively)
  Hidden,     // empty read-only tmpfs (dir) or empty read-only file (anything else)
  Staging,    // writable bind of a workspace-private dir (e.g. /tmp, the agent's home)
  Forced,     // hidden, and nothing beneath may be re-exposed
};

enum class OpKind {
  BindRo,     // recursive bind, then every mount in it made ro,nosuid,nodev
  BindRw,     // recursive bind, nosuid,nodev
  HideDir,    // tmpfs (made read-only at the end)
  HideFile,   // empty read-only file bound over a file, socket, fifo or device
  Symlink,    // create a symlink `target` -> `source`
  Proc,       // fresh procfs of the session's pid namespace
  Dev,        // minimal /dev: null zero full random urandom tty, devpts, shm, the devices list
  RemountRo,  // make the tmpfs at `target` read-only (after its children are in place)
  Vault,      // attach the workspace's vault anchor (empty, or the plaintext while unlocked)
};

const char* to_string(Access);
const char* to_string(OpKind);

struct Rule {
  std::filesystem::path path;  // canonical (symlinks resolved) sandbox path
  Access access;
  std::string why;              // the profile entry or built-in reason that made it
  std::filesystem::path source; // host path to bind; equals `path` except for Staging
  bool pw_own = false;          // pw's own exposure (control socket, pw itself): survives forced hides
  // Bound even where its parent shows it alike: a mountpoint cannot be renamed or removed,
  // so what is bound beneath it (a read-only guard) cannot be moved out of its place.
  bool pinned = false;
};

struct MountOp {
  OpKind kind;
  std::filesystem::path target;  // path inside the sandbox
  std::filesystem::path source;  // host path for binds, link text for symlinks
  std::string why;
};

// Host facts the plan depends on that are not in the profile.
struct PlanContext {
  std::filesystem::path home;           // the user's home (same path inside)
  std::filesystem::path config_dir;     // pw's config dir: always hidden
  std::filesystem::path runtime_dir;    // pw's runtime dir: always hidden
  std::filesystem::path workspace_dir;  // this workspace's staging dir (has tmp/, home/)
  std::filesystem::path data_dir;       // pw's data dir (vault cipherdirs): always hidden
  std::vector<std::filesystem::path> always_hidden;  // more forced hides (vault cipherdirs)
  // Human posture only: the workspace's vault socket (not its control socket) and pw
  // itself, each at its own path (so `pw vault` works inside the session), and the vault's
  // mountpoint, bound from the workspace's shared vault dir (empty while locked). Empty
  // paths: not planned.
  std::filesystem::path control_socket;
  std::filesystem::path self_exe;
  std::filesystem::path vault_source;  // <workspace_dir>/vault
};

struct MountPlan {
  std::vector<MountOp> ops;
  std::vector<Rule> rules;  // the normalised rule set the ops were made from (for explain)
  std::vector<std::string> warnings;
};

// System directories every session sees read-only (those that exist).
const std::vector<std::filesystem::path>& system_dirs();

// Files under the project an agent must not be able to change, because the human posture
// would later run them (git hooks and config, shell rc files): relative to the project dir.
const std::vector<std::string>& agent_guarded_paths();

MountPlan plan_mounts(const ProfileSpec& spec, const PlanContext& ctx, const FsView& fs);

// For `pw explain NAME PATH`: whether PATH is writable, read-only or hidden, and why.
struct PathVerdict {
  std::string state;  // "writable", "read-only", "hidden", "private tmpfs", "pw-managed"
  std::string why;
  std::filesystem::path resolved;  // PATH with symlinks resolved
};
PathVerdict explain_path(const MountPlan& plan, const std::filesystem::path& path,
                         const FsView& fs);

// One line per operation, nsjail-style: "bind-ro   /usr  <- /usr   (system)".
std::string describe(const MountOp& op);

// Resolves symlinks in an absolute path as `fs` sees them; appends each link met
// (its own path, its text) to `links` when given. Lexical result if a loop is found.
std::filesystem::path resolve_path(const FsView& fs, const std::filesystem::path& p,
                                   std::vector<std::pair<std::filesystem::path, std::string>>* links);

}  // namespace pw
