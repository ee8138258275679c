#include "policy/env_plan.hpp"

#include <algorithm>
#include <map>

namespace pw {

const std::vector<std::string>& clean_env_keep() {
  static const std::vector<std::string> keep = {"PATH", "HOME", "USER", "SHELL", "TERM", "LANG"};
  return keep;
}

const std::vector<std::string>& agent_state_vars() {
  // Each agent CLI keeps config, credentials and history under its own variable's dir.
  static const std::vector<std::string> vars = {"CLAUDE_CONFIG_DIR", "CODEX_HOME"};
  return vars;
}

const std::vector<std::pair<std::string, std::string>>& agent_xdg_vars() {
  // Tools that follow the XDG base dir spec (opencode keeps config, sessions, logs and
  // caches there) find all four inside the state dir, one subdir each.
  static const std::vector<std::pair<std::string, std::string>> vars = {
      {"XDG_CONFIG_HOME", "config"},
      {"XDG_DATA_HOME", "data"},
      {"XDG_STATE_HOME", "state"},
      {"XDG_CACHE_HOME", "cache"}};
  return vars;
}

bool agent_state_var(const std::string& name) {
  const auto& s = agent_state_vars();
  const auto& x = agent_xdg_vars();
  return std::find(s.begin(), s.end(), name) != s.end() ||
         std::find_if(x.begin(), x.end(), [&](const auto& v) { return v.first == name; }) != x.end();
}

std::vector<std::string> plan_env(const ProfileSpec& spec, const EnvContext& ctx) {
  std::map<std::string, std::string> env;
  for (const auto& kv : ctx.host_env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    std::string name = kv.substr(0, eq);
    if (spec.clean_env && std::find(clean_env_keep().begin(), clean_env_keep().end(), name) ==
                              clean_env_keep().end()) {
      continue;
    }
    // pw's runtime dir is hidden in every session, so a pointer into it would dangle; and a
    // session must not inherit the variables of an outer pw session.
    if (name == "XDG_RUNTIME_DIR" || name.rfind("PW_", 0) == 0) continue;
    env[name] = kv.substr(eq + 1);
  }
  env["HOME"] = ctx.home;
  if (!ctx.user.empty()) env["USER"] = ctx.user;
  env["SHELL"] = spec.shell;
  if (!env.count("PATH")) env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  env["PW_PROFILE"] = spec.name;
  env["PW_POSTURE"] = to_string(spec.posture);
  env["PW_PROJECT_DIR"] = spec.dir.string();
  if (spec.state_dir) {
    std::string dir = (spec.dir / *spec.state_dir).lexically_normal().string();
    for (const auto& v : agent_state_vars()) env[v] = dir;
    if (spec.xdg) {
      for (const auto& [v, sub] : agent_xdg_vars()) env[v] = dir + "/" + sub;
    }
  }
  for (const auto& [k, v] : spec.env) env[k] = v;

  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

}  // namespace pw
