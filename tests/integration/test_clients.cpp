// The real agent clients inside pw. Claude Code and Codex CLI are installed from npm, on the
// host side, the way README.md tells users to (`npm install --global --prefix ~/.local`, so
// ~/.local/bin/claude and ~/.local/lib/node_modules/...: what the presets whitelist), into the
// test world's home. Then, in the agent profile `pw new X --agent claude|codex` writes,
// unedited, each client has to start (`--version`, `--help`, and its auth and MCP
// subcommands, which need no network), write its state under the project's state dir and
// nowhere else (listings of the real home, the session's home and the state dir before and
// after), and not see the user's real ~/.claude or ~/.codex: they hold a marker file, an API
// key and an MCP server that the same client, run outside pw, does pick up — so each "not
// seen" below is a check that can fail.
//
// The one skip: when the npm registry cannot be reached, the test says so on stderr and ctest
// reports it skipped (SKIP_REGULAR_EXPRESSION in CMakeLists.txt), even with PW_MUST_WORK=1.
// PW_MUST_WORK turns a test that would skip for lack of a *machine feature* into a failure;
// the registry is not one: CI runs with no network but Debian's archive, so it is never there,
// and the clients (proprietary, hundreds of MB each) cannot be vendored. Everything else — npm
// missing, an install that fails once the registry answered, a client that does not start or
// sees what it must not — fails.
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <map>
#include <optional>
#include <regex>
#include <sstream>

#include "harness.hpp"

namespace fs = std::filesystem;
using it::World;

namespace {

struct Clients {
  bool installed = false;
  std::string skip_reason;       // why not, when the registry was unreachable
  fs::path prefix;               // the npm prefix: the test home's ~/.local
  std::vector<std::string> env;  // the world's environment with ~/.local/bin on PATH
  std::vector<std::string> host_env;  // the same for running a client outside pw: no agent
                                      // variables or API keys of whoever runs the tests
};

std::vector<std::string> without_agent_vars(const std::vector<std::string>& env) {
  std::vector<std::string> out;
  for (const auto& kv : env) {
    bool agent = false;
    for (const char* p : {"CLAUDE_", "CODEX_", "ANTHROPIC_", "OPENAI_"}) agent |= kv.rfind(p, 0) == 0;
    if (!agent) out.push_back(kv);
  }
  return out;
}

std::string last_lines(const std::string& s, int n) {
  std::size_t pos = s.size();
  while (n-- > 0 && pos > 0) {
    pos = s.rfind('\n', pos - 1);
    if (pos == std::string::npos) return s;
  }
  return s.substr(pos + 1);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

// Installs both clients once per test run; every test case after the first reuses the result
// (an install that failed is reported again, not repeated).
const Clients& clients() {
  static std::optional<Clients> done;
  static std::string failed;
  if (done) return *done;
  if (!failed.empty()) FAIL(failed);

  auto& w = World::get();
  Clients c;
  c.prefix = w.home / ".local";
  c.env = w.env;
  bool have_path = false;
  for (auto& kv : c.env) {
    if (kv.rfind("PATH=", 0) == 0) {
      kv = "PATH=" + (c.prefix / "bin").string() + ":" + kv.substr(5);
      have_path = true;
    }
  }
  if (!have_path) c.env.push_back("PATH=" + (c.prefix / "bin").string() + ":/usr/local/bin:/usr/bin:/bin");
  c.host_env = without_agent_vars(c.env);
  std::vector<std::string> npm_env = c.host_env;
  for (const char* kv :
       {"npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false"}) {
    npm_env.emplace_back(kv);
  }

  // Is the registry there? One request, no retries, 20 s at most.
  it::Result probe = it::run({"/usr/bin/env", "npm", "view", "--fetch-retries=0", "@openai/codex", "version"},
                             npm_env, "", 20);
  if (probe.rc == 127) {
    failed = "npm is not installed (packaging/install-deps.sh installs it): " + probe.err;
    FAIL(failed);
  }
  const bool network_error =
      std::regex_search(probe.err, std::regex(R"(\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|)"
                                              R"(ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|ERR_SOCKET_TIMEOUT)\b)"));
  if (probe.rc == -1 || (probe.rc != 0 && network_error)) {
    std::string why;
    std::istringstream lines(probe.err);
    for (std::string l; std::getline(lines, l);) {
      if (l.find("error code ") != std::string::npos || l.find("reason:") != std::string::npos) {
        why += (why.empty() ? "" : "; ") + l;
      }
    }
    c.skip_reason = probe.rc == -1 ? "`npm view @openai/codex version` got no answer within 20 s"
                                   : "`npm view @openai/codex version` failed: " + why;
    done = c;
    return *done;
  }
  if (probe.rc != 0 || trim(probe.out).empty()) {
    failed = "npm reached no verdict on the registry (rc=" + std::to_string(probe.rc) + "): " + probe.err;
    FAIL(failed);
  }

  // --prefix also moves npm's global config file to PREFIX/etc/npmrc; keep the machine's
  // (a CA bundle or a proxy may be set there).
  it::Result gc = it::run({"/usr/bin/env", "npm", "config", "get", "globalconfig"}, npm_env, "", 60);
  std::vector<std::string> argv = {"/usr/bin/env", "npm",    "install",
                                   "--global",     "--prefix", c.prefix.string()};
  if (gc.rc == 0 && !trim(gc.out).empty()) {
    argv.push_back("--globalconfig");
    argv.push_back(trim(gc.out));
  }
  argv.insert(argv.end(), {"@anthropic-ai/claude-code", "@openai/codex"});
  std::fprintf(stderr, "installing Claude Code and Codex CLI from npm into %s ...\n", c.prefix.c_str());
  it::Result inst = it::run(argv, npm_env, "", 900);
  if (inst.rc != 0) {
    failed = "npm install failed (rc=" + std::to_string(inst.rc) + "):\n" + last_lines(inst.err, 20);
    FAIL(failed);
  }
  for (const char* bin : {"claude", "codex"}) {
    if (!fs::exists(c.prefix / "bin" / bin)) {
      failed = std::string("npm install made no ~/.local/bin/") + bin + ":\n" + inst.out + inst.err;
      FAIL(failed);
    }
  }
  c.installed = true;
  done = c;
  return *done;
}

// True when the clients are there; else prints the skip (once) and returns false.
bool clients_available() {
  const Clients& c = clients();
  if (c.installed) return true;
  static bool said = false;
  if (!said) {
    std::fprintf(stderr, "SKIP: npm registry unreachable, the real-client tests did not run: %s\n",
                 c.skip_reason.c_str());
    said = true;
  }
  WARN("skipped: npm registry unreachable: " << c.skip_reason);
  return false;
}

// Every entry under `root` but the `skip` subtrees: path -> type (files: size and mtime too).
std::map<std::string, std::string> listing(const fs::path& root, const std::vector<fs::path>& skip) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto i = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       !ec && i != fs::recursive_directory_iterator(); i.increment(ec)) {
    const fs::path p = i->path();
    if (std::find(skip.begin(), skip.end(), p) != skip.end()) {
      i.disable_recursion_pending();
      continue;
    }
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) continue;
    std::string what;
    if (S_ISDIR(st.st_mode)) {
      what = "dir";
    } else if (S_ISLNK(st.st_mode)) {
      what = "link " + fs::read_symlink(p, ec).string();
    } else {
      what = "file " + std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
             std::to_string(st.st_mtim.tv_nsec);
    }
    out[p.lexically_relative(root).string()] = what;
  }
  return out;
}

std::string diff(const std::map<std::string, std::string>& a, const std::map<std::string, std::string>& b) {
  std::string d;
  for (const auto& [k, v] : a) {
    auto f = b.find(k);
    if (f == b.end()) {
      d += "- " + k + " (" + v + ")\n";
    } else if (f->second != v) {
      d += "~ " + k + " (" + v + " -> " + f->second + ")\n";
    }
  }
  for (const auto& [k, v] : b) {
    if (!a.count(k)) d += "+ " + k + " (" + v + ")\n";
  }
  return d;
}

// A listing of the session's home without ~/.cache and what is beneath.
std::string without_cache(const std::string& find_output, const fs::path& home) {
  const std::string cache = (home / ".cache").string();
  std::istringstream in(find_output);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line == cache || line.rfind(cache + "/", 0) == 0) continue;
    out += line + "\n";
  }
  return out;
}

// Output of the session script below: step name -> (output, exit status).
struct Step {
  std::string out;
  int rc = -1;
};

std::map<std::string, Step> steps(const std::string& out) {
  std::map<std::string, Step> m;
  const std::regex head(R"(@@([a-z0-9-]+)\n)");
  std::size_t pos = 0;
  std::smatch h;
  while (std::regex_search(out.cbegin() + static_cast<long>(pos), out.cend(), h, head)) {
    const std::string name = h[1];
    const std::size_t body = pos + static_cast<std::size_t>(h.position(0) + h.length(0));
    const std::string end_marker = "@@" + name + " rc=";
    const std::size_t end = out.find(end_marker, body);
    if (end == std::string::npos) break;
    std::size_t nl = out.find('\n', end);
    Step s;
    s.out = out.substr(body, end - body);
    s.rc = std::stoi(out.substr(end + end_marker.size(), nl - end - end_marker.size()));
    m[name] = s;
    pos = nl == std::string::npos ? out.size() : nl + 1;
  }
  return m;
}

// A shell script: each step's output between "@@NAME" and "@@NAME rc=N".
std::string script(const std::vector<std::pair<std::string, std::string>>& cmds) {
  std::string s = "step() { n=$1; shift; printf '@@%s\\n' \"$n\"; \"$@\" 2>&1 </dev/null; "
                  "r=$?; printf '\\n@@%s rc=%d\\n' \"$n\" \"$r\"; }\n"
                  "listhome() { find \"$HOME\" -xdev | sort; }\n";
  for (const auto& [name, cmd] : cmds) s += "step " + name + " " + cmd + "\n";
  return s;
}

struct ClientCase {
  std::string cmd;        // claude
  std::string package;    // @anthropic-ai/claude-code
  std::string profile;    // pw profile base name
  std::string state_var;  // CLAUDE_CONFIG_DIR
  std::string state_dir;  // .claude-NAME, as the preset names it
  std::string real_dir;   // .claude
  std::map<std::string, std::string> real_files;  // planted in the real home: path -> content
  std::string state_config;                       // where `mcp add` writes, relative to state_dir
  std::vector<std::string> auth;                  // auth status: rc 0 logged in, else not
  std::string mcp_add;                            // adds an MCP server called state-dir-marker
};

std::string package_version(const fs::path& prefix, const std::string& package) {
  const std::string pj = it::read_file(prefix / "lib" / "node_modules" / package / "package.json");
  std::smatch m;
  if (std::regex_search(pj, m, std::regex(R"re("version"\s*:\s*"([^"]+)")re"))) return m[1];
  return "";
}

void run_client_case(const ClientCase& k) {
  auto& w = World::get();
  const Clients& c = clients();
  const fs::path project = w.home / "projects" / (k.profile + "-app");
  const fs::path state = project / k.state_dir;
  const fs::path real = w.home / k.real_dir;
  fs::create_directories(project);
  it::write_file(project / "README", "a project for " + k.cmd + "\n");

  // The user's real client dirs on the host: a marker, an API key, an MCP server.
  it::write_file(real / "marker", "REAL-" + k.real_dir + "-MARKER\n", 0600);
  for (const auto& [p, text] : k.real_files) it::write_file(w.home / p, text, 0600);

  // Control: outside pw, with the same home, the client reads all of that.
  {
    auto mcp = it::run({"/usr/bin/env", k.cmd, "mcp", "list"}, c.host_env, "", 120);
    INFO("outside pw: " << k.cmd << " mcp list: " << mcp.out << mcp.err);
    REQUIRE(mcp.rc == 0);
    REQUIRE(mcp.out.find("real-home-marker") != std::string::npos);
    std::vector<std::string> auth = {"/usr/bin/env"};
    auth.insert(auth.end(), k.auth.begin(), k.auth.end());
    auto a = it::run(auth, c.host_env, "", 120);
    INFO("outside pw: auth status: " << a.out << a.err);
    REQUIRE(a.rc == 0);  // logged in with the real home's key
  }

  // The profile exactly as the preset writes it.
  auto r = it::run({PW_BIN, "new", k.profile, "--dir", project.string(), "--agent", k.cmd}, c.env);
  INFO(r.out << r.err);
  REQUIRE(r.rc == 0);
  const std::string name = k.profile + "-llm";

  // `pw NAME-llm -- CLIENT --version`, as a user would type it.
  const std::string version = package_version(c.prefix, k.package);
  REQUIRE_FALSE(version.empty());
  r = it::run({PW_BIN, name, "--", k.cmd, "--version"}, c.env, "", 120);
  INFO("pw " << name << " -- " << k.cmd << " --version: rc=" << r.rc << "\n" << r.out << r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.out.find(version) != std::string::npos);
  REQUIRE(fs::is_directory(state));  // pw made it; everything below must land in there

  // What may change on the host while the clients run: the state dir, pw's runtime dir (its
  // sockets and staging dirs) and pw's network log.
  const std::vector<fs::path> skip = {state, w.runtime, w.home / ".local" / "state" / "pw"};
  const auto home_before = listing(w.home, skip);
  const auto state_before = listing(state, {});
  const std::string real_files_before = [&] {
    std::string s;
    for (const auto& [p, text] : k.real_files) s += it::read_file(w.home / p);
    return s;
  }();

  std::string auth;
  for (const auto& a : k.auth) auth += (auth.empty() ? "" : " ") + a;
  const std::string sh = script({
      {"home-before", "listhome"},
      {"which", "command -v " + k.cmd},
      {"state-var", "printenv " + k.state_var},
      {"version", k.cmd + " --version"},
      {"help", k.cmd + " --help"},
      {"auth", auth},
      {"mcp-list", k.cmd + " mcp list"},
      {"mcp-add", k.mcp_add},
      {"mcp-list-added", k.cmd + " mcp list"},
      {"real-marker", "cat \"$HOME/" + k.real_dir + "/marker\""},
      {"real-dir", "ls -A \"$HOME/" + k.real_dir + "\""},
      {"home-entries", "ls -A \"$HOME\""},
      {"home-after", "listhome"},
  });
  r = it::run({PW_BIN, name, "--", "/bin/sh", "-c", sh}, c.env, "", 600);
  INFO("session: rc=" << r.rc << "\n" << r.out << r.err);
  REQUIRE(r.rc == 0);
  auto s = steps(r.out);
  for (const char* n : {"home-before", "which", "state-var", "version", "help", "auth", "mcp-list", "mcp-add",
                        "mcp-list-added", "real-marker", "real-dir", "home-entries", "home-after"}) {
    INFO(n);
    REQUIRE(s.count(n));
  }

  // It starts, from where the preset looks, and answers offline commands.
  CHECK(trim(s["which"].out) == (c.prefix / "bin" / k.cmd).string());
  CHECK(trim(s["state-var"].out) == state.string());
  CHECK(s["version"].rc == 0);
  CHECK(s["version"].out.find(version) != std::string::npos);
  CHECK(s["help"].rc == 0);
  CHECK(s["help"].out.find("Usage: " + k.cmd) != std::string::npos);

  // It sees none of the real home: no key (not logged in), no MCP server, no files.
  CHECK(s["auth"].rc != 0);
  CHECK(s["mcp-list"].rc == 0);
  CHECK(s["mcp-list"].out.find("real-home-marker") == std::string::npos);
  CHECK(s["real-marker"].rc != 0);
  CHECK(s["real-marker"].out.find("MARKER") == std::string::npos);
  CHECK(s["real-dir"].rc != 0);
  CHECK(s["home-entries"].out.find(k.real_dir) == std::string::npos);

  // What it writes lands in the state dir: the server it was told to add is listed, and in
  // the state dir's config on the host.
  CHECK(s["mcp-add"].rc == 0);
  CHECK(s["mcp-list-added"].rc == 0);
  CHECK(s["mcp-list-added"].out.find("state-dir-marker") != std::string::npos);
  CHECK(s["mcp-list-added"].out.find("real-home-marker") == std::string::npos);
  CHECK(it::read_file(state / k.state_config).find("state-dir-marker") != std::string::npos);

  // ... and nowhere else: not in the real home or the project, and in the session's own
  // (throwaway) home at most caches: ~/.cache, where Claude Code logs its MCP servers.
  CHECK(without_cache(s["home-before"].out, w.home) == without_cache(s["home-after"].out, w.home));
  const auto home_after = listing(w.home, skip);
  INFO("real home changed:\n" << diff(home_before, home_after));
  CHECK(home_after == home_before);
  const auto state_after = listing(state, {});
  INFO("state dir changed:\n" << diff(state_before, state_after));
  CHECK(state_after != state_before);
  std::string real_files_after;
  for (const auto& [p, text] : k.real_files) real_files_after += it::read_file(w.home / p);
  CHECK(real_files_after == real_files_before);

  // Even with its state variable unset, so that it looks in ~ as it would without pw, the
  // client finds an empty home: the sandbox hides the real one, not just the variable.
  const std::string sh2 = script({
      {"auth", "env -u " + k.state_var + " " + auth},
      {"mcp-list", "env -u " + k.state_var + " " + k.cmd + " mcp list"},
  });
  r = it::run({PW_BIN, name, "--", "/bin/sh", "-c", sh2}, c.env, "", 300);
  INFO("session without " << k.state_var << ": rc=" << r.rc << "\n" << r.out << r.err);
  REQUIRE(r.rc == 0);
  s = steps(r.out);
  REQUIRE(s.count("auth"));
  REQUIRE(s.count("mcp-list"));
  CHECK(s["auth"].rc != 0);
  CHECK(s["mcp-list"].rc == 0);
  CHECK(s["mcp-list"].out.find("real-home-marker") == std::string::npos);
  CHECK(s["mcp-list"].out.find("state-dir-marker") == std::string::npos);
  INFO("real home changed:\n" << diff(home_before, listing(w.home, skip)));
  CHECK(listing(w.home, skip) == home_before);
}

}  // namespace

TEST_CASE("Claude Code from npm starts in pw new --agent claude's profile, its state in the project",
          "[clients]") {
  if (!clients_available()) return;
  run_client_case({
      "claude",
      "@anthropic-ai/claude-code",
      "cl",
      "CLAUDE_CONFIG_DIR",
      ".claude-cl",
      ".claude",
      {{".claude/settings.json", R"({"env": {"ANTHROPIC_API_KEY": "sk-ant-real-home-marker"}})"
                                 "\n"},
       {".claude.json", R"({"mcpServers": {"real-home-marker": )"
                        R"({"type": "stdio", "command": "/bin/true", "args": []}}})"
                        "\n"}},
      ".claude.json",
      {"claude", "auth", "status"},
      "claude mcp add --scope user state-dir-marker -- /bin/true",
  });
}

TEST_CASE("Codex CLI from npm starts in pw new --agent codex's profile, its state in the project",
          "[clients]") {
  if (!clients_available()) return;
  run_client_case({
      "codex",
      "@openai/codex",
      "cx",
      "CODEX_HOME",
      ".codex-cx",
      ".codex",
      {{".codex/auth.json", R"({"OPENAI_API_KEY": "sk-real-home-marker-0000"})" "\n"},
       {".codex/config.toml", "[mcp_servers.real-home-marker]\ncommand = \"/bin/true\"\n"}},
      "config.toml",
      {"codex", "login", "status"},
      "codex mcp add state-dir-marker -- /bin/true",
  });
}
