// The environment a session's first process gets. Built from the profile and the host
// environment; passed to execve() only, never through any argv.
#pragma once

#include <string>
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

// "NAME=value" entries, sorted by name, each name once.
std::vector<std::string> plan_env(const ProfileSpec& spec, const EnvContext& ctx);

}  // namespace pw
