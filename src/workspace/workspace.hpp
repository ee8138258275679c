// A running profile is a workspace: one supervisor process that owns the workspace's user
// and mount namespaces and lives as long as any session of it does. Clients (`pw NAME`)
// join it over a unix socket and run their session inside its namespaces.
#pragma once

#include <sched.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "profile/spec.hpp"
#include "util/fd.hpp"

namespace pw {

struct Joined {
  Fd conn;    // kept open for the session's life: the supervisor counts these
  Fd userns;  // the workspace's user namespace (we are root in it)
  Fd mntns;   // the workspace's mount namespace
  std::filesystem::path stage;  // staging dir as seen inside the workspace
  Fd stage_fd;                  // the supervisor's staging tmpfs: what `stage` must lead to
  Fd vault_anchor;              // O_PATH fd of the vault anchor, when the profile has a vault
  Fd netns;                     // the workspace's network namespace, unless the mode is "host"
  NetMode net_mode = NetMode::Host;  // the network mode it was made with
  // The helper that made the workspace (maker.hpp): it reads its command line from our
  // memory until its exec, so it is kept, not waited for, while the session starts.
  std::shared_ptr<void> keep;
};

class WorkspaceMaker;  // maker.hpp

// A workspace being started by this client: a forked supervisor's readiness pipe, or the
// helper making its namespaces (maker.hpp); neither when one runs already.
struct WorkspaceStart {
  Fd ready;
  std::unique_ptr<WorkspaceMaker> maker;

  WorkspaceStart();
  WorkspaceStart(WorkspaceStart&&) noexcept;
  WorkspaceStart& operator=(WorkspaceStart&&) noexcept;
  ~WorkspaceStart();
  explicit operator bool() const { return ready || maker; }
};

// Starts the workspace of `name` if none runs, without waiting for it, so that the caller
// plans its session meanwhile: with the profile it has just loaded (`loaded`), a helper
// makes the namespaces beside it and becomes the supervisor (maker.hpp); without, or where
// that cannot be used, a supervisor is forked, which the join then awaits. A forked
// supervisor ends, without waiting for anyone else, if the client leaves before joining.
WorkspaceStart prestart_workspace(const std::string& name, const ProfileSpec* loaded = nullptr);

// Connects to the workspace of profile `name`, starting its supervisor if none runs.
// `summary` describes the session for `pw ps`; `starting` is prestart_workspace()'s result.
Joined join_workspace(const std::string& name, const std::string& summary, WorkspaceStart starting = {});

// Enters the joined workspace's namespaces (the calling process must be single-threaded)
// and verifies that its staging dir path leads, without symlinks, to the supervisor's tmpfs.
void enter_workspace(const Joined& ws);

struct SessionInfo {
  long pid = 0;           // the client's pid on the host
  long started = 0;       // unix time
  std::string summary;
};
struct WorkspaceInfo {
  std::string name;
  long supervisor_pid = 0;
  long started = 0;
  std::string vault;  // "locked", "unlocking", "unlocked", or empty: no vault
  std::vector<SessionInfo> sessions;
};

// Every live workspace of this user (stale sockets are skipped).
std::vector<WorkspaceInfo> list_workspaces();

// Connects to the running workspace `name` (never starts one); an empty Fd if none runs.
// `socket` overrides where to look (inside a session: $PW_CONTROL_SOCKET).
Fd connect_workspace(const std::string& name, const std::filesystem::path& socket = {});

// Parses a "ps"/"vault status" reply.
WorkspaceInfo parse_workspace_info(const std::string& reply);

// How a supervisor forked by its client was placed (spawn_supervisor): kept off the
// client's CPU until `settled` reaches EOF, then given back `cpus`, the client's own mask.
struct SupervisorPlacement {
  int settled = -1;
  const cpu_set_t* cpus = nullptr;
};

// What a supervisor exec'd by a client's workspace helper is handed (maker.hpp): the
// workspace's namespaces, made already, and the registration socket of that client, whose
// session runs already; the network mode they were made for; the client's CPU mask.
struct MadeWorkspace {
  Fd starter;
  Fd userns, mntns, stage_root, netns, http;
  NetMode net_mode = NetMode::Host;
  cpu_set_t cpus;
  bool restore_cpus = false;
  std::filesystem::path runtime;  // the client's runtime dir
};

// The supervisor's main (the hidden `pw __supervise NAME LOCKFD READYFD`, or `pw
// __supervise NAME made NET CPUS RUNDIR` with the descriptors of MadeWorkspace from 3 on).
int supervisor_main(const std::string& name, int lock_fd, int ready_fd, const ProfileSpec* loaded = nullptr,
                    SupervisorPlacement placement = {}, MadeWorkspace* made = nullptr);

}  // namespace pw
