// `pw NAME [-- CMD...]`: from a profile to a running session.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "policy/mount_plan.hpp"
#include "profile/spec.hpp"
#include "sandbox/spawn.hpp"

namespace pw {

struct HostFacts {
  std::string home;
  std::string user;
  uid_t uid;
  gid_t gid;
};
HostFacts host_facts();

// `for_check`: `pw check` sessions also see pw itself (read-only, at its own path), which
// runs the wall checks inside; nothing else differs.
PlanContext plan_context(const ProfileSpec& spec, const HostFacts& host, bool for_check = false);

// Refuses settings this build cannot honour (throws Error naming the file and key).
void check_runnable(const ProfileSpec& spec);

// Everything a session needs, computed as the user before any namespace is entered.
SessionSpec make_session_spec(const ProfileSpec& spec, const std::vector<std::string>& cmd,
                              bool verbose, bool for_check = false);

// Loads the profile, joins (or starts) its workspace and runs the session; returns the exit
// status pw should exit with.
// `for_check`: a `pw check` session (pw itself visible; no vault unlock on enter).
int run_profile(const std::string& name, const std::vector<std::string>& cmd, bool verbose,
                bool for_check = false);

}  // namespace pw
