// The environment a session's first process gets. Built from the profile and the host
// environment; passed to execve() only, never through any argv.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "profile/spec.hpp"

namespace pw {

struct EnvContext {
  std::vector<std::string> host_env;  // "NAME=value" entries of the calling process
  std::string home;
  std::string user;
};

// Variables a clean environment keeps from the host.
const std::vector<std::string>& clean_env_keep();

// Variables pointing agents' state at `state_dir` (CLAUDE_CONFIG_DIR, CODEX_HOME, ...).
const std::vector<std::string>& agent_state_vars();

// With [agent] xdg = true: XDG_CONFIG_HOME, XDG_DATA_HOME, XDG_STATE_HOME, XDG_CACHE_HOME and
// the subdir of `state_dir` each one points at.
const std::vector<std::pair<std::string, std::string>>& agent_xdg_vars();

// True if pw sets NAME to a path in the agent's state dir (either list above).
bool agent_state_var(const std::string& name);

// "NAME=value" entries, sorted by name, each name once.
std::vector<std::string> plan_env(const ProfileSpec& spec, const EnvContext& ctx);

}  // namespace pw
