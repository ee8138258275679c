// A running profile is a workspace: one supervisor process that owns the workspace's user
// and mount namespaces and lives as long as any session of it does. Clients (`pw NAME`)
// join it over a unix socket and run their session inside its namespaces.
#pragma once

#include <sched.h>

#include <filesystem>
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
};

// Starts the supervisor of `name` if none runs, without waiting for it: returns its
// readiness pipe (to hand to join_workspace), or an empty Fd if one already runs. Lets the
// caller plan its session while the supervisor sets itself up. The supervisor ends, without
// waiting for anyone else, if the pipe closes before a session joins. `loaded`: the profile
// the caller has just loaded, which the (forked) supervisor then uses instead of reading it.
Fd prestart_workspace(const std::string& name, const ProfileSpec* loaded = nullptr);

// Connects to the workspace of profile `name`, starting its supervisor if none runs.
// `summary` describes the session for `pw ps`; `starting` is prestart_workspace()'s result.
Joined join_workspace(const std::string& name, const std::string& summary, Fd starting = Fd());

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

// The supervisor's main (the hidden `pw __supervise NAME LOCKFD READYFD`).
int supervisor_main(const std::string& name, int lock_fd, int ready_fd, const ProfileSpec* loaded = nullptr,
                    SupervisorPlacement placement = {});

}  // namespace pw
