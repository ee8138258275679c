// `pw import-pwrap`: the mapping of every pwrap key, the notes on what does not map, errors
// with file:line:col, and the refusal to replace an existing profile.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include "profile/loader.hpp"
#include "profile/pwrap_import.hpp"

namespace fs = std::filesystem;
using namespace pw;

namespace {

struct Scratch {
  fs::path root;
  std::optional<std::string> old_home, old_xdg;
  Scratch() {
    std::string t = (fs::temp_directory_path() / "pw-test-pwrap.XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    root = t;
    if (const char* h = std::getenv("HOME")) old_home = h;
    if (const char* x = std::getenv("XDG_CONFIG_HOME")) old_xdg = x;
    ::setenv("HOME", root.c_str(), 1);
    ::setenv("XDG_CONFIG_HOME", (root / ".config").c_str(), 1);
    fs::create_directories(root / "projects" / "okb");
    fs::create_directories(root / ".claude.json.lock");
    fs::create_directories(root / ".config" / "pwrap");
  }
  ~Scratch() {
    if (old_home) ::setenv("HOME", old_home->c_str(), 1); else ::unsetenv("HOME");
    if (old_xdg) ::setenv("XDG_CONFIG_HOME", old_xdg->c_str(), 1); else ::unsetenv("XDG_CONFIG_HOME");
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  fs::path pwrap() const { return root / ".config" / "pwrap"; }
  fs::path file(const std::string& name) const { return pwrap() / name / "project.toml"; }
  PwrapImport convert(const std::string& name, const std::string& text) const {
    return convert_pwrap(text, file(name), name, pwrap(), root / ".local/share/pw/vaults");
  }
  void write(const std::string& name, const std::string& text) const {
    fs::create_directories(pwrap() / name);
    std::ofstream(file(name)) << text;
  }
};

bool has_note(const PwrapImport& imp, const std::string& prefix_after_file, const std::string& needle = "") {
  return std::any_of(imp.notes.begin(), imp.notes.end(), [&](const std::string& n) {
    return n.find(prefix_after_file) != std::string::npos && n.find(needle) != std::string::npos;
  });
}

std::vector<std::string> paths(const std::vector<PathEntry>& v) {
  std::vector<std::string> out;
  for (const auto& e : v) out.push_back(e.path.string());
  return out;
}

const char* kEveryKey = R"([project]
name = "okb"
dir = "~/projects/okb"
shell = "/bin/sh"

[sandbox]
enabled = true
clean_env = true
blacklist = ["~", "/mnt"]
whitelist = ["~/.pyenv/"]
writable = ["~/.claude.json.lock/", "/nonexistent/wslg/runtime-dir"]
devices = ["/dev/null"]
unshare_net = true
unshare_pid = false
new_session = true

[encrypted]
cipherdir = "encrypted"
mountpoint = "~/.local/share/okb-secrets"
shared = false

[env]
CLAUDE_CONFIG_DIR = ".claude-okb"
EDITOR = "vim"
DATA = "~/data"
PW_PROFILE = "nope"
)";

}  // namespace

TEST_CASE("pwrap import: every key of an agent-pattern project", "[pwrap]") {
  Scratch s;
  PwrapImport imp = s.convert("okb-llm", kEveryKey);
  CHECK(imp.posture == Posture::Agent);
  CHECK(imp.posture_reason.find("clean_env = true and \"~\" blacklisted") != std::string::npos);

  const fs::path dest = s.root / ".config/pw/okb-llm/profile.toml";
  ProfileSpec spec = parse_profile(imp.text, dest, "okb-llm");
  const std::string h = s.root.string();
  CHECK(spec.project_name == "okb");
  CHECK(spec.dir == s.root / "projects/okb");
  CHECK(spec.shell == "/bin/sh");
  CHECK(spec.posture == Posture::Agent);
  CHECK(spec.clean_env);
  CHECK(paths(spec.blacklist) == std::vector<std::string>{h, "/mnt"});
  CHECK(paths(spec.whitelist) == std::vector<std::string>{h + "/.pyenv"});
  CHECK(paths(spec.writable) == std::vector<std::string>{h + "/.claude.json.lock"});
  CHECK(paths(spec.devices) == std::vector<std::string>{"/dev/null"});
  CHECK(spec.net == NetMode::None);
  CHECK(spec.pid);
  REQUIRE(spec.state_dir);
  CHECK(*spec.state_dir == ".claude-okb");
  CHECK(spec.home == "tmpfs");
  CHECK(!spec.vault);
  using Env = std::vector<std::pair<std::string, std::string>>;
  CHECK(spec.env == Env{{"EDITOR", "vim"}, {"DATA", h + "/data"}});
  // The missing writable path stays in the file, commented out.
  CHECK(imp.text.find("# \"/nonexistent/wslg/runtime-dir\",") != std::string::npos);

  // What does not map, each note at its file:line:col and key.
  const std::string f = s.file("okb-llm").string();
  CHECK(has_note(imp, f + ":14:15: sandbox.unshare_pid: false cannot be honoured"));
  CHECK(has_note(imp, f + ":15:15: sandbox.new_session: true", "seccomp"));
  CHECK(has_note(imp, f + ":11:37: sandbox.writable: '/nonexistent/wslg/runtime-dir' does not exist"));
  CHECK(has_note(imp, f + ":17:1: [encrypted]: not mapped", "agent posture"));
  CHECK(has_note(imp, f + ":23:1: env.CLAUDE_CONFIG_DIR: becomes [agent] state_dir = \".claude-okb\""));
  CHECK(has_note(imp, f + ":25:1: env.DATA:", "expanded"));
  CHECK(has_note(imp, f + ":26:1: env.PW_PROFILE: reserved"));
  CHECK(!has_note(imp, "sandbox.enabled"));
  CHECK(!has_note(imp, "sandbox.whitelist"));  // ~ is hidden: nothing implicit to add
  CHECK(imp.notes.size() == 7);
}

TEST_CASE("pwrap import: a human project with a gocryptfs volume", "[pwrap]") {
  Scratch s;
  PwrapImport imp = s.convert("okb", R"([project]
dir = "~/projects/okb"
shell = "/bin/sh"

[sandbox]
blacklist = ["~/projects/", "~/.aws"]
new_session = false

[encrypted]
cipherdir = "encrypted"
mountpoint = "~/.local/share/okb-secrets"
shared = false
)");
  CHECK(imp.posture == Posture::Human);
  CHECK(imp.posture_reason.rfind("human: ", 0) == 0);
  ProfileSpec spec = parse_profile(imp.text, s.root / ".config/pw/okb/profile.toml", "okb");
  const std::string h = s.root.string();
  CHECK(spec.project_name == "okb");
  CHECK(spec.posture == Posture::Human);
  CHECK(!spec.clean_env);
  CHECK(paths(spec.blacklist) == std::vector<std::string>{h + "/projects", h + "/.aws", h + "/.config/pwrap"});
  CHECK(paths(spec.whitelist) == std::vector<std::string>{h});
  CHECK(spec.net == NetMode::Host);
  REQUIRE(spec.vault);
  CHECK(spec.vault->cipherdir == s.root / ".local/share/pw/vaults/okb");
  CHECK(spec.vault->mountpoint == s.root / ".local/share/okb-secrets");
  REQUIRE(imp.old_cipherdir);
  CHECK(*imp.old_cipherdir == s.pwrap() / "okb" / "encrypted");
  const std::string f = s.file("okb").string();
  CHECK(has_note(imp, f + ":5:1: sandbox.enabled: not set (pwrap's default is false) cannot be honoured"));
  CHECK(has_note(imp, f + ":7:15: sandbox.new_session: false", "[walls] seccomp"));
  CHECK(has_note(imp, f + ":10:13: encrypted.cipherdir: the gocryptfs cipherdir " + imp.old_cipherdir->string() +
                          " is not converted"));
  CHECK(has_note(imp, f + ":12:10: encrypted.shared: false"));
  CHECK(has_note(imp, "sandbox.whitelist: added \"~\""));
  CHECK(has_note(imp, "sandbox.blacklist: added ~/.config/pwrap"));
}

TEST_CASE("pwrap import: posture by name; unknown keys are noted", "[pwrap]") {
  Scratch s;
  PwrapImport imp = s.convert("tool-llm", "[project]\ndir = \"~/projects/okb\"\nshell = \"/bin/sh\"\ncolour = 1\n"
                                          "[sandbox]\nenabled = true\nunshare_net = false\n");
  CHECK(imp.posture == Posture::Agent);
  CHECK(imp.posture_reason == "agent: the name ends in -llm (pwrap's agent pattern)");
  CHECK(has_note(imp, s.file("tool-llm").string() + ":4:1: project.colour: not a pwrap key"));
  CHECK(has_note(imp, "sandbox.unshare_net: false: the host's network", "allowlist"));
  ProfileSpec spec = parse_profile(imp.text, s.root / "x.toml", "tool-llm");
  CHECK(spec.net == NetMode::Host);
}

TEST_CASE("pwrap import: bad TOML and wrong types carry file:line:col", "[pwrap]") {
  Scratch s;
  const std::string f = s.file("bad").string();
  try {
    s.convert("bad", "[project]\nname = \"x\"\ndir = = \"y\"\n");
    FAIL("no error");
  } catch (const ProfileError& e) {
    CHECK(std::string(e.what()).rfind(f + ":3:", 0) == 0);
    CHECK(std::string(e.what()).find("TOML syntax error") != std::string::npos);
  }
  try {
    s.convert("bad", "[project]\ndir = \"/\"\n[sandbox]\nblacklist = \"~\"\n");
    FAIL("no error");
  } catch (const ProfileError& e) {
    CHECK(std::string(e.what()) == f + ":4:13: sandbox.blacklist: expected an array of strings");
  }
  try {
    s.convert("bad", "[project]\ndir = \"/\"\n[env]\nX = 3\n");
    FAIL("no error");
  } catch (const ProfileError& e) {
    CHECK(std::string(e.what()) == f + ":4:5: env.X: expected a string");
  }
  // A pwrap file goes through the same pre-check as a profile: text on which toml++ 3.3
  // reaches undefined behaviour is refused before it parses it (under UBSan the parse
  // itself would abort).
  try {
    s.convert("bad", "[prc\xc5\x8fs/ll");
    FAIL("no error");
  } catch (const ProfileError& e) {
    CHECK(std::string(e.what()) == f + ":1:5: TOML syntax error: character U+014F outside a string or "
                                       "comment (TOML allows non-ASCII text only there)");
  }
}

TEST_CASE("pwrap import: writes profiles, never replaces one, dry-run writes nothing", "[pwrap]") {
  Scratch s;
  s.write("okb", "[project]\ndir = \"~/projects/okb\"\nshell = \"/bin/sh\"\n[sandbox]\nenabled = true\n");
  std::ofstream(s.pwrap() / "okb" / "init.sh") << "export FOO=bar\n";
  const fs::path dest = s.root / ".config/pw/okb/profile.toml";

  CHECK(import_pwrap(s.pwrap(), true) == 0);
  CHECK(!fs::exists(dest));

  CHECK(import_pwrap(s.pwrap(), false) == 0);
  REQUIRE(fs::exists(dest));
  CHECK(fs::exists(s.root / ".config/pw/okb/pwrap-init.sh"));
  ProfileSpec spec = load_profile("okb");
  CHECK(spec.posture == Posture::Human);
  std::stringstream before;
  before << std::ifstream(dest).rdbuf();

  // A second import refuses: non-zero, the profile untouched.
  s.write("okb", "[project]\ndir = \"~/projects/okb\"\nshell = \"/bin/bash\"\n");
  CHECK(import_pwrap(s.pwrap(), false) == 1);
  std::stringstream after;
  after << std::ifstream(dest).rdbuf();
  CHECK(after.str() == before.str());

  // A project whose profile would not load writes nothing.
  s.write("broken", "[project]\ndir = \"~/projects/missing\"\nshell = \"/bin/sh\"\n");
  CHECK(import_pwrap(s.pwrap(), false) == 1);
  CHECK(!fs::exists(s.root / ".config/pw/broken"));
}
