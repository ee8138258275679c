// Profile layer: parsing, validation, resolution, rendering and `pw new`.
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>

#include "profile/loader.hpp"
#include "profile/text.hpp"

namespace fs = std::filesystem;
using namespace pw;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "pw-test-profile.XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Sets (or unsets) one environment variable for the scope of a test.
class EnvVar {
 public:
  EnvVar(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value->c_str(), 1);
    else
      ::unsetenv(name);
  }
  ~EnvVar() {
    if (old_)
      ::setenv(name_.c_str(), old_->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }
  EnvVar(const EnvVar&) = delete;
  EnvVar& operator=(const EnvVar&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A sandboxed world: HOME, XDG_CONFIG_HOME and a project dir, all under one temp dir.
struct World {
  TempDir tmp;
  fs::path home = tmp.path() / "home";
  fs::path cfg = tmp.path() / "cfg";
  fs::path proj = home / "projects" / "okb";
  EnvVar env_home{"HOME", home.string()};
  EnvVar env_cfg{"XDG_CONFIG_HOME", cfg.string()};
  EnvVar env_tpl{"PW_TEMPLATE_DIR", std::nullopt};

  World() { fs::create_directories(proj); }

  // "[project]\ndir = ...\n" (two lines) followed by `rest`.
  std::string doc(const std::string& rest = "", const std::string& posture = "") const {
    std::string s = "[project]\ndir = \"" + proj.string() + "\"\n";
    if (!posture.empty())
      s = "[project]\ndir = \"" + proj.string() + "\"\nposture = \"" + posture + "\"\n";
    return s + rest;
  }
  ProfileSpec parse(const std::string& text, const std::string& name = "okb") const {
    return parse_profile(text, "p.toml", name);
  }
  // The ProfileError message for `text`; fails the test if it loads.
  std::string error(const std::string& text) const {
    try {
      parse(text);
    } catch (const ProfileError& e) {
      return e.what();
    }
    FAIL("profile loaded but should not have:\n" << text);
    return {};
  }
};

}  // namespace

TEST_CASE("profile: defaults of a minimal human profile", "[profile]") {
  World w;
  const ProfileSpec s = w.parse(w.doc());
  CHECK(s.name == "okb");
  CHECK(s.project_name == "okb");
  CHECK(s.file == "p.toml");
  CHECK(s.dir == w.proj);
  CHECK(s.shell == "/bin/bash");
  CHECK(s.posture == Posture::Human);
  CHECK_FALSE(s.clean_env);
  CHECK(s.blacklist.empty());
  CHECK(s.pid);
  CHECK(s.ipc);
  CHECK(s.net == NetMode::Host);
  CHECK(s.ssh_agent == SshAgentMode::None);
  CHECK_FALSE(s.vault);
  CHECK(s.seccomp == SeccompMode::Default);
  CHECK(s.landlock == LandlockMode::BestEffort);
  CHECK_FALSE(s.allow_userns);
  CHECK_FALSE(s.allow_io_uring);
  CHECK(s.env.empty());
  CHECK(s.warnings.empty());
}

TEST_CASE("profile: defaults of a minimal agent profile", "[profile]") {
  World w;
  const ProfileSpec s = w.parse(w.doc("", "agent"));
  CHECK(s.posture == Posture::Agent);
  CHECK(s.net == NetMode::None);
  CHECK(s.home == "tmpfs");
  CHECK_FALSE(s.state_dir);
  CHECK_FALSE(s.xdg);
  CHECK(s.seccomp == SeccompMode::Default);
}

TEST_CASE("profile: a full agent profile resolves", "[profile]") {
  World w;
  fs::create_directories(w.home / ".cache" / "pip");
  fs::create_directories(w.tmp.path() / "out");
  EnvVar x("PW_TEST_OUT", (w.tmp.path() / "out").string());
  const ProfileSpec s = w.parse(w.doc(R"(name = "OKB"
shell = "/bin/sh"

[sandbox]
enabled = true
clean_env = true
blacklist = ["~", "/mnt/"]
whitelist = ["~/.cache/pip/", "${HOME}/.cache/../.cache/pip"]
writable = ["$PW_TEST_OUT"]
mask = [".env", "./secrets/*", "config/"]
readonly = [".", "docs/"]
devices = ["/dev/null"]
pid = false
ipc = false

[agent]
state_dir = ".claude-okb/"
home = ".agent-home"

[network]
mode = "host"
allow_private = true

[ssh_agent]
mode = "forward"
keys = ["SHA256:ycecTFElO4tMaWgqfHQDEUjUete0Tsl0wmvU/kkDXFc"]

[walls]
seccomp = "strict"
allow_userns = true
allow_io_uring = true
landlock = "off"

[env]
ZED = "1"
ALPHA = "two words"
MIDDLE = "$NOT_EXPANDED"
)",
                                      "agent"));
  CHECK(s.project_name == "OKB");
  CHECK(s.shell == "/bin/sh");
  CHECK(s.clean_env);
  REQUIRE(s.blacklist.size() == 2);
  CHECK(s.blacklist[0].path == w.home);
  CHECK(s.blacklist[0].origin == "p.toml:10:14");
  CHECK(s.blacklist[1].path == "/mnt");
  REQUIRE(s.whitelist.size() == 2);
  CHECK(s.whitelist[0].path == w.home / ".cache/pip");
  CHECK(s.whitelist[1].path == w.home / ".cache/pip");
  REQUIRE(s.writable.size() == 1);
  CHECK(s.writable[0].path == w.tmp.path() / "out");
  CHECK(s.mask == std::vector<std::string>{".env", "secrets/*", "config"});
  CHECK(s.readonly == std::vector<std::string>{".", "docs"});
  REQUIRE(s.devices.size() == 1);
  CHECK_FALSE(s.pid);
  CHECK_FALSE(s.ipc);
  CHECK(s.state_dir == ".claude-okb");
  CHECK(s.home == ".agent-home");
  CHECK(s.net == NetMode::Host);
  CHECK(s.allow_private);
  CHECK(s.ssh_agent == SshAgentMode::Forward);
  CHECK(s.ssh_keys == std::vector<std::string>{"SHA256:ycecTFElO4tMaWgqfHQDEUjUete0Tsl0wmvU/kkDXFc"});
  CHECK(s.seccomp == SeccompMode::Strict);
  CHECK(s.allow_userns);
  CHECK(s.allow_io_uring);
  CHECK(s.landlock == LandlockMode::Off);
  // File order, values literal.
  using P = std::pair<std::string, std::string>;
  CHECK(s.env == std::vector<P>{{"ZED", "1"}, {"ALPHA", "two words"}, {"MIDDLE", "$NOT_EXPANDED"}});
  // /mnt does not exist in a test box, and a missing blacklist path only warns.
  for (const auto& warn : s.warnings) CHECK(warn.find("blacklist") != std::string::npos);
}

TEST_CASE("profile: unknown keys and sections, with did-you-mean", "[profile]") {
  World w;
  CHECK(w.error(w.doc("[sandbox]\nblacklistt = []\n")) ==
        "p.toml:4:1: sandbox.blacklistt: unknown key in [sandbox]; did you mean 'blacklist'?");
  CHECK(w.error(w.doc("[sandbox]\nwritable_paths = []\n")) ==
        "p.toml:4:1: sandbox.writable_paths: unknown key in [sandbox]; did you mean 'writable'?");
  CHECK(w.error(w.doc("[walls]\n  frobnicate = true\n")) ==
        "p.toml:4:3: walls.frobnicate: unknown key in [walls]");
  CHECK(w.error(w.doc("[sandbx]\nclean_env = true\n")) ==
        "p.toml:3:2: [sandbx]: unknown section; did you mean 'sandbox'?");
  CHECK(w.error(w.doc("[whatever]\n")) == "p.toml:3:2: [whatever]: unknown section");
  CHECK(w.error("shell = \"/bin/sh\"\n" + w.doc()) ==
        "p.toml:1:1: shell: unknown top-level key; keys belong in a section; did you mean "
        "'project.shell' (under [project])?");
  CHECK(w.error(w.doc("[project.extra]\n")).find("project.extra: unknown key in [project]") !=
        std::string::npos);
}

TEST_CASE("profile: wrong types name the expected type", "[profile]") {
  World w;
  CHECK(w.error(w.doc("[sandbox]\nclean_env = \"yes\"\n")) ==
        "p.toml:4:13: sandbox.clean_env: expected a boolean, got a string");
  CHECK(w.error("[project]\ndir = 1\n") ==
        "p.toml:2:7: project.dir: expected a string, got an integer");
  CHECK(w.error(w.doc("[sandbox]\nblacklist = \"~\"\n")) ==
        "p.toml:4:13: sandbox.blacklist: expected an array of strings, got a string");
  CHECK(w.error(w.doc("[sandbox]\nblacklist = [\"/tmp\", 2.5]\n")) ==
        "p.toml:4:22: sandbox.blacklist[1]: expected a string, got a floating-point number");
  CHECK(w.error("sandbox = 1\n" + w.doc()) ==
        "p.toml:1:11: sandbox: expected a table ([sandbox]), got an integer");
  CHECK(w.error(w.doc("[[walls]]\n")).find("walls: expected a table ([walls]), got an array") !=
        std::string::npos);
  CHECK(w.error(w.doc("[walls]\nseccomp = true\n")) ==
        "p.toml:4:11: walls.seccomp: expected a string (one of \"default\", \"strict\", \"off\"), "
        "got a boolean");
  CHECK(w.error(w.doc("[env]\nX = 1979-05-27\n")) ==
        "p.toml:4:5: env.X: expected a string, got a date");
  CHECK(w.error(w.doc("[network]\nallow_private = [true]\n")) ==
        "p.toml:4:17: network.allow_private: expected a boolean, got an array");
  CHECK(w.error(w.doc("[agent]\nhome = {}\n", "agent")) ==
        "p.toml:5:8: agent.home: expected a string, got a table");
}

TEST_CASE("profile: enum values are checked against the allowed list", "[profile]") {
  World w;
  CHECK(w.error(w.doc("", "agnet")) ==
        "p.toml:3:11: project.posture: expected one of \"human\", \"agent\", got \"agnet\"; did "
        "you mean 'agent'?");
  CHECK(w.error(w.doc("[network]\nmode = \"off\"\n")) ==
        "p.toml:4:8: network.mode: expected one of \"none\", \"host\", \"allowlist\", got \"off\"");
  CHECK(w.error(w.doc("[walls]\nlandlock = \"besteffort\"\n"))
            .ends_with("did you mean 'best-effort'?"));
  CHECK(w.error(w.doc("[ssh_agent]\nmode = \"fwd\"\n")).find("ssh_agent.mode: expected one of") !=
        std::string::npos);
}

TEST_CASE("profile: TOML syntax errors carry file:line:col", "[profile]") {
  World w;
  const std::string e = w.error(w.doc("[sandbox]\nclean_env = tru\n"));
  CHECK(e.starts_with("p.toml:4:"));
  CHECK(e.find("TOML syntax error: ") != std::string::npos);
  const std::string e2 = w.error("[project]\ndir = \"unterminated\n");
  CHECK(e2.starts_with("p.toml:2:"));
  const std::string e3 = w.error(w.doc("[sandbox]\npid = true\npid = false\n"));
  CHECK(e3.starts_with("p.toml:5:"));
}

TEST_CASE("profile: non-ASCII text where toml++ 3.3 would hit undefined behaviour is refused", "[profile]") {
  World w;
  // fuzz_profile's find: a non-ASCII character where toml++ looks for whitespace (here in a
  // table header) made its parser reach __builtin_unreachable (UBSan: "execution reached an
  // unreachable program point"). It is a plain error now, with its place.
  const std::string e = w.error("[prc\xc5\x8fs/ll");
  CHECK(e == "p.toml:1:5: TOML syntax error: character U+014F outside a string or comment "
             "(TOML allows non-ASCII text only there)");
  CHECK(w.error(w.doc("[sandbox]\nclean_env = true \xcc\xaa\n")).starts_with("p.toml:4:18: "));
  CHECK(w.error(w.doc("\xd0\x96 = 1\n")).find("U+0416 outside a string") != std::string::npos);
  // A quote inside a bare value opens no string: toml++ reads on through the value.
  CHECK(w.error(w.doc("x =3pult\"a\xc9\x8f\"\n")).find("U+024F outside a string") != std::string::npos);
  // In a quoted key (toml++ records keys character by character).
  CHECK(w.error(w.doc("[env]\n\"caf\xc3\xa9\" = \"x\"\n")).starts_with("p.toml:4:5: "));
  CHECK(w.error(w.doc("[\"s\xc3\xa9\"]\n")).find("in a quoted key") != std::string::npos);
  CHECK(w.error(w.doc("[env]\nA = { \"\xc3\xa9\" = 1 }\n")).find("in a quoted key") != std::string::npos);
  // After a backslash in a multi-line basic string, and after a line-ending one.
  CHECK(w.error(w.doc("[env]\nA = \"\"\"\\\xc2\xa7\"\"\"\n")).find("after a backslash") != std::string::npos);
  const std::string trim = w.error(w.doc("[env]\nA = \"\"\"x\\\n   \xc2\xa7\"\"\"\n"));
  CHECK(trim.starts_with("p.toml:5:4: "));
  CHECK(trim.find("line-ending backslash") != std::string::npos);
  CHECK(w.error(w.doc("[env]\nA = \"\\\xc3\xa9\"\n")).find("after a backslash") != std::string::npos);
  // Not UTF-8 at all.
  CHECK(w.error(w.doc("[env]\nA = \"\xff\"\n")).starts_with("p.toml:4:6: TOML syntax error: invalid UTF-8"));

  // Strings and comments keep any UTF-8, and a profile with them loads as before.
  fs::create_directories(w.home / "caf\xc3\xa9");
  const ProfileSpec s = w.parse(w.doc(
      "# r\xc3\xa9pertoire \xe2\x80\x94 \xe7\x9b\xae\xe5\xbd\x95\n"
      "[sandbox]   # \xc3\xa9\n"
      "whitelist = [\"~/caf\xc3\xa9\", # \xc3\xa9\n  '~/caf\xc3\xa9']\n"
      "[env]\n"
      "A = \"\xc3\xa9\\\"\xc3\xa9\"\n"
      "B = '''\n\xd0\x96\xd0\x96\\'''\n"
      "C = \"\"\"x\\\n   y\xc3\xa9\\\"\xc3\xa9\"\"\"\"\"\n"
      "D = \"\"\"\\\n   \"\"\"\n"));
  CHECK(s.whitelist.size() == 2);
  CHECK(s.whitelist.at(0).path == w.home / "caf\xc3\xa9");
  REQUIRE(s.env.size() == 4);
  CHECK(s.env.at(0) == std::pair<std::string, std::string>{"A", "\xc3\xa9\"\xc3\xa9"});
  CHECK(s.env.at(1) == std::pair<std::string, std::string>{"B", "\xd0\x96\xd0\x96\\"});
  CHECK(s.env.at(2) == std::pair<std::string, std::string>{"C", "xy\xc3\xa9\"\xc3\xa9\"\""});
  CHECK(s.env.at(3) == std::pair<std::string, std::string>{"D", ""});
  // A byte-order mark (some editors write one) is no character of the text.
  CHECK(w.parse("\xef\xbb\xbf" + w.doc()).dir == w.proj);
  CHECK(w.error("\xef\xbb\xbf" + w.doc("\xef\xbb\xbf")).starts_with("p.toml:3:1: "));
}

TEST_CASE("profile: path expansion", "[profile]") {
  World w;
  fs::create_directories(w.home / "x$y");
  EnvVar a("PW_TEST_A", w.home.string());
  EnvVar empty("PW_TEST_EMPTY", "");
  EnvVar undef("PW_TEST_UNDEFINED", std::nullopt);
  auto first_white = [&](const std::string& entry) {
    return w.parse(w.doc("[sandbox]\nwhitelist = [\"" + entry + "\"]\n")).whitelist.at(0).path;
  };
  CHECK(first_white("~") == w.home);
  CHECK(first_white("~/") == w.home);
  CHECK(first_white("~/a/./b/../c/") == w.home / "a/c");
  CHECK(first_white("$PW_TEST_A/q") == w.home / "q");
  CHECK(first_white("${PW_TEST_A}q") == fs::path(w.home.string() + "q"));
  CHECK(first_white("~/x$$y") == w.home / "x$y");
  CHECK(first_white("//usr///lib/") == "/usr/lib");

  CHECK(w.error(w.doc("[sandbox]\nwhitelist = [\"$PW_TEST_UNDEFINED/x\"]\n")) ==
        "p.toml:4:14: sandbox.whitelist[0]: $PW_TEST_UNDEFINED is not defined");
  CHECK(w.error(w.doc("[sandbox]\nwhitelist = [\"${PW_TEST_EMPTY}/.aws\"]\n")) ==
        "p.toml:4:14: sandbox.whitelist[0]: $PW_TEST_EMPTY is empty");
  CHECK(w.error(w.doc("[sandbox]\nwhitelist = [\"${PW_TEST_A\"]\n"))
            .ends_with("'${' without a closing '}'"));
  CHECK(w.error(w.doc("[sandbox]\nwhitelist = [\"/a/$/b\"]\n"))
            .find("write '$$' for a literal '$'") != std::string::npos);
  CHECK(w.error(w.doc("[sandbox]\nwhitelist = [\"~root/x\"]\n")).find("'~user' is not") !=
        std::string::npos);
  {
    EnvVar nohome("HOME", std::nullopt);
    CHECK(w.error(w.doc("[sandbox]\nblacklist = [\"~/.aws\"]\n")) ==
          "p.toml:4:14: sandbox.blacklist[0]: '~' needs HOME, but $HOME is not defined");
  }
}

TEST_CASE("profile: absolute path rules", "[profile]") {
  World w;
  CHECK(w.error(w.doc("[sandbox]\nblacklist = [\"projects\"]\n")) ==
        "p.toml:4:14: sandbox.blacklist[0]: must be an absolute path (after expanding ~ and "
        "$VARs), got 'projects'");
  CHECK(w.error(w.doc("[sandbox]\ndevices = [\"/tmp\"]\n")) ==
        "p.toml:4:12: sandbox.devices[0]: '/tmp' is not under /dev");
  CHECK(w.error("[project]\ndir = \"rel/dir\"\n")
            .starts_with("p.toml:2:7: project.dir: must be an absolute path"));
  CHECK(w.error("[project]\ndir = \"/nonexistent/pw-test\"\n") ==
        "p.toml:2:7: project.dir: '/nonexistent/pw-test' does not exist");
  write_file(w.home / "file", "x");
  CHECK(w.error("[project]\ndir = \"~/file\"\n") ==
        "p.toml:2:7: project.dir: '" + (w.home / "file").string() + "' is not a directory");
  CHECK(w.error("[project]\nname = \"x\"\n") ==
        "p.toml:1:1: project.dir: required key is missing (the project directory, e.g. dir = "
        "\"~/projects/okb\")");
  CHECK(w.error("[sandbox]\n") ==
        "p.toml:1:1: [project]: required section is missing; it needs at least dir = "
        "\"/path/to/project\"");
  CHECK(w.error(w.doc("name = \"\"\n")) == "p.toml:3:8: project.name: must not be empty");
}

TEST_CASE("profile: shell must be an absolute executable", "[profile]") {
  World w;
  CHECK(w.error(w.doc("shell = \"bash\"\n")) ==
        "p.toml:3:9: project.shell: must be an absolute path, got 'bash'");
  write_file(w.home / "notexec", "#!/bin/sh\n");
  CHECK(w.error(w.doc("shell = \"~/notexec\"\n")) == "p.toml:3:9: project.shell: '" +
                                                         (w.home / "notexec").string() +
                                                         "' is not an executable file");
  CHECK(w.error(w.doc("shell = \"/\"\n")).ends_with("is not an executable file"));
  CHECK(w.parse(w.doc("shell = \"/bin/sh\"\n")).shell == "/bin/sh");
}

TEST_CASE("profile: missing paths: writable errs, blacklist and whitelist warn", "[profile]") {
  World w;
  CHECK(w.error(w.doc("[sandbox]\nwritable = [\"~/nope\"]\n")) ==
        "p.toml:4:13: sandbox.writable[0]: '" + (w.home / "nope").string() +
            "' does not exist (create it, or remove the entry)");
  const ProfileSpec s =
      w.parse(w.doc("[sandbox]\nblacklist = [\"~/.aws\"]\nwhitelist = [\"~\", \"~/.pyenv\"]\n"));
  REQUIRE(s.warnings.size() == 2);
  CHECK(s.warnings[0] == "p.toml:4:14: sandbox.blacklist[0]: '" + (w.home / ".aws").string() +
                             "' does not exist; nothing to hide");
  CHECK(s.warnings[1] == "p.toml:5:19: sandbox.whitelist[1]: '" + (w.home / ".pyenv").string() +
                             "' does not exist; skipped");
  REQUIRE(s.blacklist.size() == 1);  // kept: the path may appear later
}

TEST_CASE("profile: project-relative entries", "[profile]") {
  World w;
  CHECK(w.error(w.doc("[sandbox]\nmask = [\"/etc/passwd\"]\n")) ==
        "p.toml:4:9: sandbox.mask[0]: '/etc/passwd' must be relative to the project dir (no "
        "leading '/' or '~', no '..')");
  CHECK(w.error(w.doc("[sandbox]\nmask = [\"a/../../b\"]\n"))
            .starts_with("p.toml:4:9: sandbox.mask[0]: 'a/../../b' must be relative"));
  CHECK(w.error(w.doc("[sandbox]\nmask = [\".\"]\n"))
            .ends_with("names the project dir itself; name a path inside it"));
  CHECK(w.error(w.doc("[sandbox]\nmask = [\"\"]\n"))
            .starts_with("p.toml:4:9: sandbox.mask[0]: is empty"));
  CHECK(w.error(w.doc("[sandbox]\nreadonly = [\"~/.bashrc\"]\n"))
            .starts_with("p.toml:4:13: sandbox.readonly[0]: '~/.bashrc' must be relative"));
  CHECK(w.error(w.doc("[agent]\nstate_dir = \"/tmp/claude\"\n", "agent"))
            .starts_with("p.toml:5:13: agent.state_dir: '/tmp/claude' must be relative"));
  CHECK(w.error(w.doc("[agent]\nhome = \"../home\"\n", "agent")) ==
        "p.toml:5:8: agent.home: expected \"tmpfs\" or a dir inside the project; '../home' must "
        "be relative to the project dir (no leading '/' or '~', no '..')");
  CHECK(w.parse(w.doc("[agent]\nhome = \"tmpfs/\"\n", "agent")).home == "./tmpfs");
  CHECK(w.error(w.doc("[agent]\nxdg = true\n", "agent")) ==
        "p.toml:5:7: agent.xdg: needs agent.state_dir: the XDG base dirs are made inside it");
  CHECK(w.parse(w.doc("[agent]\nstate_dir = \".oc\"\nxdg = true\n", "agent")).xdg);
  CHECK_FALSE(w.parse(w.doc("[agent]\nxdg = false\n", "agent")).xdg);
  CHECK(w.parse(w.doc("[agent]\nhome = \"tmpfs\"\n", "agent")).home == "tmpfs");
}

TEST_CASE("profile: posture rules for [agent] and [vault]", "[profile]") {
  World w;
  CHECK(w.error(w.doc("[agent]\nstate_dir = \".x\"\n")) ==
        "p.toml:3:1: [agent]: only allowed with posture = \"agent\" (this profile's posture is "
        "\"human\")");
  CHECK(w.error(w.doc("[vault]\ncipherdir = \"~/v\"\nmountpoint = \"~/m\"\n", "agent")) ==
        "p.toml:4:1: [vault]: the agent posture never gets a vault (put it in the human profile "
        "of this project)");
  CHECK(
      w.error(w.doc("[sandbox]\nenabled = false\n"))
          .starts_with("p.toml:4:11: sandbox.enabled: false is not possible: pw always sandboxes"));
  CHECK_NOTHROW(w.parse(w.doc("[sandbox]\nenabled = true\n")));
}

TEST_CASE("profile: [env] names and reserved variables", "[profile]") {
  World w;
  CHECK(w.error(w.doc("[env]\nPW_PROFILE = \"x\"\n")) ==
        "p.toml:4:1: env.PW_PROFILE: reserved: pw sets it itself");
  CHECK(w.error(w.doc("[env]\nPW_PROJECT_DIR = \"x\"\n")).find("reserved") != std::string::npos);
  CHECK(w.error(w.doc("[env]\nPW_POSTURE = \"x\"\n")).find("reserved") != std::string::npos);
  CHECK(w.error(w.doc("[env]\n\"1ABC\" = \"x\"\n")) ==
        "p.toml:4:1: env.1ABC: not a valid variable name (letters, digits and '_', not starting "
        "with a digit)");
  CHECK(w.error(w.doc("[env]\n\"A-B\" = \"x\"\n")).find("not a valid variable name") !=
        std::string::npos);
  CHECK(w.error(w.doc("[env]\nA = \"x\\u0000y\"\n")).ends_with("env.A: contains a NUL character"));
  CHECK(w.error(w.doc("[env]\nA = true\n")) ==
        "p.toml:4:5: env.A: expected a string, got a boolean");
  CHECK(w.parse(w.doc("[env]\nPW_OTHER = \"ok\"\n")).env.size() == 1);
}

TEST_CASE("profile: vault and network keys are checked", "[profile]") {
  World w;
  CHECK(w.parse(w.doc("[walls]\nlandlock = \"required\"\n")).landlock == LandlockMode::Required);
  CHECK(w.error(w.doc("[vault]\ncipherdir = 1\nmountpoint = \"~/m\"\n")) ==
        "p.toml:4:13: vault.cipherdir: expected a string, got an integer");
  CHECK(w.error(w.doc("[vault]\nmountpoint = \"~/m\"\n")) ==
        "p.toml:3:1: vault.cipherdir: required key is missing");
  CHECK(w.error(w.doc("[vault]\ncipherdir = \"~/c\"\nmountpoint = \"~/m\"\nunlock = \"auto\"\n"))
            .find("vault.unlock: expected one of \"manual\", \"on-enter\"") != std::string::npos);
  // allow without allowlist only warns.
  const ProfileSpec s = w.parse(w.doc("[network]\nallow = [\"github.com\"]\n"));
  REQUIRE(s.warnings.size() == 1);
  CHECK(s.warnings[0] ==
        "p.toml:4:9: network.allow: ignored: network.mode is \"host\", not \"allowlist\"");
}

TEST_CASE("profile: a cipherdir that resolves into the project is refused", "[profile]") {
  World w;
  // A symlink outside the project leading into it...
  fs::create_directories(w.proj / "cv");
  fs::create_directory_symlink(w.proj / "cv", w.home / "cvlink");
  CHECK(w.error(w.doc("[vault]\ncipherdir = \"~/cvlink\"\nmountpoint = \".vault\"\n"))
            .find("vault.cipherdir: must be outside the project dir") != std::string::npos);
  // ...and a project dir named through a symlink, with the cipherdir named by its real path.
  fs::create_directory_symlink(w.proj, w.home / "plink");
  const std::string via_link = "[project]\ndir = \"" + (w.home / "plink").string() + "\"\n";
  CHECK(w.error(via_link + "[vault]\ncipherdir = \"" + (w.proj / "cv2").string() +
                "\"\nmountpoint = \".vault\"\n")
            .find("vault.cipherdir: must be outside the project dir") != std::string::npos);
  // Outside, it loads.
  CHECK(w.parse(w.doc("[vault]\ncipherdir = \"~/vaults/okb\"\nmountpoint = \".vault\"\n")).vault);
}

TEST_CASE("profile: network allowlist and ssh-agent keys are validated", "[profile]") {
  World w;
  const ProfileSpec s = w.parse(w.doc(
      "[network]\nmode = \"allowlist\"\nallow = [\"api.anthropic.com\", \"*.npmjs.org\", \"github.com:22\"]\n"
      "[ssh_agent]\nmode = \"forward\"\nkeys = [\"SHA256:ycecTFElO4tMaWgqfHQDEUjUete0Tsl0wmvU/kkDXFc\"]\n",
      "agent"));
  CHECK(s.net == NetMode::Allowlist);
  CHECK(s.allow == std::vector<std::string>{"api.anthropic.com", "*.npmjs.org", "github.com:22"});
  CHECK(s.ssh_agent == SshAgentMode::Forward);
  CHECK(s.warnings.empty());
  const std::string tail = " (entries are \"host\", \"*.domain\", either with an optional \":port\")";
  CHECK(w.error(w.doc("[network]\nmode = \"allowlist\"\nallow = [\"ok.com\", \"127.0.0.1\"]\n", "agent")) ==
        "p.toml:6:20: network.allow[1]: IP literals are not allowed; name a host (the proxy resolves it and "
        "checks the address)" + tail);
  CHECK(w.error(w.doc("[network]\nallow = [\"localhost:8080\"]\n", "agent")) ==
        "p.toml:5:10: network.allow[0]: loopback names are never reachable through the proxy" + tail);
  CHECK(w.error(w.doc("[network]\nallow = [\"*.com\"]\n", "agent")).find("network.allow[0]: \"*.com\" would allow") !=
        std::string::npos);
  CHECK(w.error(w.doc("[network]\nallow = [\"a.com:99999\"]\n", "agent")).find("network.allow[0]: port must be") !=
        std::string::npos);
  CHECK(w.error(w.doc("[network]\nallow = [\"[::1]:443\"]\n", "agent")).find("IP literals") != std::string::npos);
  CHECK(w.error(w.doc("[ssh_agent]\nmode = \"forward\"\nkeys = [\"SHA256:abc\"]\n")) ==
        "p.toml:5:9: ssh_agent.keys[0]: expected a key fingerprint as `ssh-add -l` prints it (SHA256: and 43 "
        "base64 characters), got \"SHA256:abc\"");
  // Settings that do nothing are warnings.
  auto warns = [&](const std::string& text) { return w.parse(w.doc(text, "agent")).warnings; };
  CHECK(warns("[network]\nmode = \"allowlist\"\n") ==
        std::vector<std::string>{"p.toml:5:8: network.allow: empty: with mode \"allowlist\" nothing is reachable"});
  CHECK(warns("[ssh_agent]\nmode = \"forward\"\n") ==
        std::vector<std::string>{
            "p.toml:5:8: ssh_agent.keys: empty: with mode \"forward\" the session's agent lists no key"});
  CHECK(warns("[ssh_agent]\nkeys = [\"SHA256:ycecTFElO4tMaWgqfHQDEUjUete0Tsl0wmvU/kkDXFc\"]\n") ==
        std::vector<std::string>{"p.toml:5:8: ssh_agent.keys: ignored: ssh_agent.mode is \"none\", not \"forward\""});
}

TEST_CASE("profile: render_profile round-trips", "[profile]") {
  World w;
  fs::create_directories(w.home / "a$b");
  for (const std::string posture : {"human", "agent"}) {
    std::string extra = R"([sandbox]
clean_env = true
blacklist = ["~/.aws", "~/a$$b"]
whitelist = ["~"]
mask = [".env", "s/*.key"]
readonly = ["docs"]
devices = ["/dev/null"]
pid = false

[walls]
seccomp = "off"
allow_userns = true

[env]
Z = "last \"quoted\" \\ value"
A = "first"
M = "$HOME"
N = "\nstarts with a line break\nand has two"
)";
    if (posture == "agent") {
      extra += "\n[agent]\nstate_dir = \".claude-okb\"\nhome = \"tmpfs/\"\nxdg = true\n";
    }
    const ProfileSpec s = w.parse(w.doc(extra, posture));
    const std::string text = render_profile(s);
    INFO(text);
    const ProfileSpec back = parse_profile(text, "rendered.toml", "okb");
    CHECK(back.same_settings(s));
    CHECK(back.env == s.env);  // order kept, a leading line break kept
    CHECK(back.blacklist.at(1).path == w.home / "a$b");
    // Every effective value is spelled out, including defaults.
    for (const char* key : {"posture = ", "shell = ", "ipc = true", "mode = ", "landlock = ",
                            "allow_io_uring = false", "[ssh_agent]", "allow_private = false"}) {
      CHECK(text.find(key) != std::string::npos);
    }
    CHECK((text.find("[agent]") != std::string::npos) == (posture == "agent"));
    // And it is plain TOML.
    CHECK_NOTHROW(toml::parse(text));
  }
  // A vault (human posture) is rendered too.
  ProfileSpec v = w.parse(w.doc());
  v.vault = VaultSpec{w.home / ".vault", w.home / "secrets", VaultUnlock::OnEnter};
  const std::string vt = render_profile(v);
  CHECK(vt.find("[vault]\ncipherdir = \"" + (w.home / ".vault").string() + "\"\nmountpoint = \"" +
                (w.home / "secrets").string() + "\"\nunlock = \"on-enter\"\n") !=
        std::string::npos);
  CHECK(parse_profile(vt, "rendered.toml", "okb").same_settings(v));

  // A rendered spec differs when a setting does.
  ProfileSpec a = w.parse(w.doc());
  ProfileSpec b = a;
  b.pid = false;
  CHECK_FALSE(a.same_settings(b));
  b = a;
  b.warnings.push_back("x");
  b.file = "other.toml";
  CHECK(a.same_settings(b));
}

TEST_CASE("profile: to_string spells the profile's values", "[profile]") {
  CHECK(std::string(to_string(Posture::Agent)) == "agent");
  CHECK(std::string(to_string(NetMode::Allowlist)) == "allowlist");
  CHECK(std::string(to_string(SeccompMode::Strict)) == "strict");
  CHECK(std::string(to_string(LandlockMode::BestEffort)) == "best-effort");
  CHECK(std::string(to_string(SshAgentMode::Forward)) == "forward");
  CHECK(std::string(to_string(VaultUnlock::OnEnter)) == "on-enter");
}

TEST_CASE("profile: did-you-mean helpers", "[profile]") {
  using namespace pw::profile_detail;
  CHECK(edit_distance("blacklist", "blacklist") == 0);
  CHECK(edit_distance("blakclist", "blacklist") == 1);  // transposition
  CHECK(edit_distance("", "abc") == 3);
  const std::vector<std::string> keys = {"blacklist", "whitelist", "writable"};
  CHECK(closest("whitelsit", keys) == "whitelist");
  CHECK(closest("black", keys) == "blacklist");
  CHECK(closest("wr", keys) == std::nullopt);
  CHECK(closest("xy", {"a", "b"}) == std::nullopt);  // short words: one edit at most
  CHECK(closest("ab", {"a", "zz"}) == "a");
  CHECK(closest("zzzzzz", keys) == std::nullopt);
  CHECK(did_you_mean("writeable", keys) == "; did you mean 'writable'?");
  CHECK(toml_basic_escape("a\"b\\c") == "a\\\"b\\\\c");
}

TEST_CASE("profile: config_dir follows XDG_CONFIG_HOME, else HOME", "[profile]") {
  {
    EnvVar x("XDG_CONFIG_HOME", "/xdg/conf/");
    CHECK(config_dir() == "/xdg/conf/pw");
  }
  {
    EnvVar x("XDG_CONFIG_HOME", "relative/conf");
    EnvVar h("HOME", "/home/someone");
    CHECK(config_dir() == "/home/someone/.config/pw");
  }
  {
    EnvVar x("XDG_CONFIG_HOME", std::nullopt);
    EnvVar h("HOME", "/home/other");
    CHECK(config_dir() == "/home/other/.config/pw");
  }
}

TEST_CASE("profile: load_profile and list_profiles", "[profile]") {
  World w;
  CHECK(list_profiles().empty());  // no config dir yet
  write_file(w.cfg / "pw/okb/profile.toml", w.doc());
  write_file(w.cfg / "pw/okb-llm/profile.toml", w.doc("", "agent"));
  write_file(w.cfg / "pw/alpha/profile.toml", w.doc());
  fs::create_directories(w.cfg / "pw/empty-dir");
  write_file(w.cfg / "pw/.hidden/profile.toml", w.doc());
  CHECK(list_profiles() == std::vector<std::string>{"alpha", "okb", "okb-llm"});

  const ProfileSpec s = load_profile("okb-llm");
  CHECK(s.name == "okb-llm");
  CHECK(s.posture == Posture::Agent);
  CHECK(s.file == w.cfg / "pw/okb-llm/profile.toml");
  CHECK(s.profile_dir == w.cfg / "pw/okb-llm");

  auto error_of = [](const std::string& name) -> std::string {
    try {
      load_profile(name);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  const std::string dir = (w.cfg / "pw").string();
  CHECK(error_of("okbb") == "no profile 'okbb' (looked in " + dir + "); did you mean 'okb'?");
  CHECK(error_of("zzz-llm") ==
        "no profile 'zzz-llm' (looked in " + dir + "); create one with: pw new zzz --dir DIR");
  CHECK(error_of("../etc").find("is not a valid profile name") != std::string::npos);
  CHECK(error_of("").find("is not a valid profile name") != std::string::npos);
  CHECK(error_of("-x").find("is not a valid profile name") != std::string::npos);

  // Errors inside a stored profile name the real file.
  write_file(w.cfg / "pw/bad/profile.toml", w.doc("[sandbox]\npidd = true\n"));
  CHECK(error_of("bad") == (w.cfg / "pw/bad/profile.toml").string() +
                               ":4:1: sandbox.pidd: unknown key in [sandbox]; did you mean 'pid'?");
  fs::create_directories(w.cfg / "pw/dir/profile.toml");
  CHECK(error_of("dir") ==
        (w.cfg / "pw/dir/profile.toml").string() + ": is a directory, not a profile file");
  CHECK_THROWS_WITH(
      load_profile_file(w.tmp.path() / "none.toml", "none"),
      (w.tmp.path() / "none.toml").string() + ": cannot read: No such file or directory");
  CHECK(valid_profile_name("okb.v2_x-llm"));
  CHECK_FALSE(valid_profile_name("a/b"));
  CHECK_FALSE(valid_profile_name(".a"));
}

TEST_CASE("profile: pw new writes both postures from the templates", "[profile]") {
  World w;
  EnvVar sh("SHELL", "/bin/sh");
  const auto files = create_profiles({"okb", w.proj, "", "claude"});
  REQUIRE(files.size() == 2);
  CHECK(files[0] == w.cfg / "pw/okb/profile.toml");
  CHECK(files[1] == w.cfg / "pw/okb-llm/profile.toml");
  for (const auto& d : {w.cfg / "pw", w.cfg / "pw/okb", w.cfg / "pw/okb-llm"}) {
    struct stat st {};
    REQUIRE(::stat(d.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
  }
  const std::string human = read_file(files[0]);
  const std::string agent = read_file(files[1]);
  // No placeholder is left ("@anthropic-ai/..." in a whitelist is an npm scope, not one).
  const std::regex placeholder("@[A-Z_]+@");
  CHECK_FALSE(std::regex_search(human, placeholder));
  CHECK_FALSE(std::regex_search(agent, placeholder));
  CHECK(human.find("dir = \"~/projects/okb\"") != std::string::npos);
  CHECK(human.find("shell = \"/bin/sh\"") != std::string::npos);
  CHECK(human.find("\"~/projects\",") != std::string::npos);  // sibling projects hidden
  CHECK(agent.find("state_dir = \".claude-okb\"") != std::string::npos);
  CHECK(list_profiles() == std::vector<std::string>{"okb", "okb-llm"});

  const ProfileSpec h = load_profile("okb");
  CHECK(h.posture == Posture::Human);
  CHECK(h.dir == w.proj);
  CHECK(h.project_name == "okb");
  CHECK(h.net == NetMode::Host);
  CHECK_FALSE(h.clean_env);
  REQUIRE_FALSE(h.blacklist.empty());
  CHECK(h.blacklist[0].path == w.home / "projects");
  REQUIRE(h.whitelist.size() == 1);
  CHECK(h.whitelist[0].path == w.home);
  CHECK(h.writable.empty());
  const ProfileSpec a = load_profile("okb-llm");
  CHECK(a.posture == Posture::Agent);
  CHECK(a.dir == w.proj);
  CHECK(a.clean_env);
  CHECK(a.net == NetMode::Allowlist);
  CHECK(a.allow == std::vector<std::string>{"api.anthropic.com", "statsig.anthropic.com", "sentry.io"});
  CHECK_FALSE(a.allow_private);
  CHECK(a.ssh_agent == SshAgentMode::None);
  CHECK(a.warnings.size() == 2);  // the whitelisted install paths do not exist here
  CHECK(a.home == "tmpfs");
  CHECK(a.state_dir == ".claude-okb");
  CHECK(a.seccomp == SeccompMode::Default);
  REQUIRE_FALSE(a.blacklist.empty());
  CHECK(a.blacklist[0].path == w.home);
  // Claude Code where the README installs it; nothing else of the home.
  REQUIRE(a.whitelist.size() == 2);
  CHECK(a.whitelist[0].path == w.home / ".local/bin/claude");
  CHECK(a.whitelist[1].path == w.home / ".local/lib/node_modules/@anthropic-ai/claude-code");
  CHECK(a.writable.empty());

  // A second `pw new` changes nothing, whichever of the two exists.
  CHECK_THROWS_WITH(create_profiles({"okb", w.proj, "", "generic"}),
                    Catch::Contains("already exists") && Catch::Contains("nothing written"));
  CHECK(read_file(files[0]) == human);
  CHECK(read_file(files[1]) == agent);
  write_file(w.cfg / "pw/kb-llm/profile.toml", "# someone else's\n");
  CHECK_THROWS_WITH(create_profiles({"kb", w.proj, "", "generic"}),
                    Catch::Contains("'kb-llm' already exists"));
  CHECK_FALSE(fs::exists(w.cfg / "pw/kb"));
  CHECK(read_file(w.cfg / "pw/kb-llm/profile.toml") == "# someone else's\n");
}

TEST_CASE("profile: pw new presets, options and refusals", "[profile]") {
  World w;
  EnvVar sh("SHELL", "/nonexistent/fish");
  create_profiles({"g", w.proj, "", "generic"});
  CHECK(load_profile("g").shell == "/bin/bash");  // $SHELL not executable
  CHECK(load_profile("g-llm").state_dir == ".pw-agent-g");
  create_profiles({"c", w.proj, "/bin/sh", "codex"});
  CHECK(load_profile("c").shell == "/bin/sh");
  CHECK(load_profile("c-llm").shell == "/bin/sh");  // an explicit --shell is for both
  CHECK(load_profile("g-llm").shell == "/bin/bash");
  CHECK(load_profile("c-llm").state_dir == ".codex-c");
  CHECK(load_profile("c-llm").net == NetMode::Allowlist);
  CHECK(load_profile("c-llm").allow == std::vector<std::string>{"api.openai.com", "chatgpt.com"});
  CHECK(load_profile("g-llm").net == NetMode::None);
  CHECK_FALSE(load_profile("c-llm").xdg);

  // aider: its home is a dir in the project (it keeps ~/.aider), its options come from
  // AIDER_* variables, and its install dirs are whitelisted.
  create_profiles({"ai", w.proj, "", "aider"});
  const ProfileSpec ai = load_profile("ai-llm");
  CHECK(ai.state_dir == ".aider-ai");
  CHECK(ai.home == ".aider-ai/home");
  CHECK_FALSE(ai.xdg);
  CHECK(ai.net == NetMode::Allowlist);
  CHECK(ai.allow == std::vector<std::string>{"api.openai.com", "api.anthropic.com"});
  CHECK(ai.env == std::vector<std::pair<std::string, std::string>>{{"AIDER_CHECK_UPDATE", "false"},
                                                                   {"AIDER_ANALYTICS", "false"}});
  REQUIRE_FALSE(ai.whitelist.empty());
  CHECK(ai.whitelist[0].path == w.home / ".local/bin/aider");
  CHECK(ai.warnings.size() == ai.whitelist.size());  // none installed here: each one warned

  // opencode: XDG base dirs in its state dir.
  create_profiles({"oc", w.proj, "", "opencode"});
  const ProfileSpec oc = load_profile("oc-llm");
  CHECK(oc.state_dir == ".opencode-oc");
  CHECK(oc.xdg);
  CHECK(oc.home == "tmpfs");
  CHECK(oc.allow ==
        std::vector<std::string>{"api.anthropic.com", "api.openai.com", "opencode.ai", "models.dev"});
  REQUIRE_FALSE(oc.whitelist.empty());
  CHECK(oc.whitelist[0].path == w.home / ".local/bin/opencode");
  CHECK(load_profile("oc").posture == Posture::Human);  // one human template for every preset
  for (const auto& [name, preset] : std::vector<std::pair<std::string, std::string>>{
           {"g", "generic"}, {"c", "codex"}, {"ai", "aider"}, {"oc", "opencode"}}) {
    INFO(preset);
    const std::string text = read_file(w.cfg / "pw" / (name + "-llm") / "profile.toml");
    CHECK_FALSE(std::regex_search(text, std::regex("@[A-Z_]+@")));
    CHECK(text.find("pw new " + name + " --agent " + preset) != std::string::npos);
  }

  // A project directly under ~ has no sibling-projects entry.
  fs::create_directories(w.home / "top");
  create_profiles({"top", w.home / "top", "", "generic"});
  CHECK(read_file(w.cfg / "pw/top/profile.toml").find("sibling projects:") == std::string::npos);
  CHECK(load_profile("top").blacklist.at(0).path == w.home / ".aws");

  // Outside home the path is written as is, quoted by toml++.
  const fs::path odd = w.tmp.path() / "we\"ird $dir";
  fs::create_directories(odd);
  create_profiles({"odd", odd, "", "generic"});
  CHECK(load_profile("odd").dir == odd);
  CHECK(load_profile("odd-llm").blacklist.at(1).path == w.tmp.path());

  CHECK_THROWS_WITH(create_profiles({"x", w.proj, "", "claud"}),
                    "unknown agent preset 'claud' (expected aider, claude, codex, generic or "
                    "opencode); did you mean 'claude'?");
  CHECK_THROWS_WITH(create_profiles({"x", w.proj, "", "opencod"}),
                    Catch::EndsWith("did you mean 'opencode'?"));
  CHECK_THROWS_WITH(create_profiles({"x", w.tmp.path() / "missing", "", "generic"}),
                    Catch::Contains("does not exist or is not a directory"));
  CHECK_THROWS_WITH(create_profiles({"x", w.proj, "sh", "generic"}),
                    Catch::Contains("--shell 'sh' is not an absolute path"));
  CHECK_THROWS_WITH(create_profiles({"a/b", w.proj, "", "generic"}),
                    Catch::Contains("not a valid profile name"));
  CHECK_FALSE(fs::exists(w.cfg / "pw/x"));

  // A bad template is caught before anything is written.
  TempDir tpl;
  write_file(tpl.path() / "human.toml", "[project]\ndir = \"@DIR@\"\nbogus = 1\n");
  write_file(tpl.path() / "agent-generic.toml",
             "[project]\ndir = \"@DIR@\"\nposture = \"agent\"\n");
  EnvVar t("PW_TEMPLATE_DIR", tpl.path().string());
  CHECK(template_dir() == tpl.path());
  CHECK_THROWS_WITH(create_profiles({"y", w.proj, "", "generic"}),
                    Catch::Contains("project.bogus: unknown key in [project]"));
  CHECK_FALSE(fs::exists(w.cfg / "pw/y"));
  CHECK_FALSE(fs::exists(w.cfg / "pw/y-llm"));
}

TEST_CASE("profile: shipped templates are valid TOML before substitution", "[profile]") {
  World w;
  const fs::path dir = template_dir();
  for (const char* t : {"human.toml", "agent-generic.toml", "agent-claude.toml", "agent-codex.toml",
                        "agent-aider.toml", "agent-opencode.toml"}) {
    INFO(t);
    const fs::path p = dir / t;
    REQUIRE(fs::exists(p));
    CHECK_NOTHROW(toml::parse_file(p.string()));
  }
}

TEST_CASE("profile: pwrap-style configs load unchanged", "[profile]") {
  World w;
  const fs::path data = fs::path(PW_TEST_DATA) / "profiles";
  const ProfileSpec h = load_profile_file(data / "pwrap-okb.toml", "okb");
  CHECK(h.dir == w.proj);
  CHECK(h.posture == Posture::Human);
  REQUIRE(h.blacklist.size() == 4);
  CHECK(h.blacklist[0].path == w.home / "projects");
  CHECK(h.blacklist[0].origin == (data / "pwrap-okb.toml").string() + ":11:5");
  CHECK(h.whitelist.at(0).path == "/mnt/wsl");
  CHECK(h.writable.at(0).path == "/tmp");
  const ProfileSpec a = load_profile_file(data / "pwrap-okb-llm.toml", "okb-llm");
  CHECK(a.posture == Posture::Agent);
  CHECK(a.clean_env);
  CHECK(a.net == NetMode::None);
  CHECK(a.state_dir == ".claude-okb");
  CHECK(a.whitelist.at(0).path == w.home / ".pyenv");
  CHECK(a.same_settings(parse_profile(render_profile(a), "r.toml", "okb-llm")));
}

TEST_CASE("profile: [vault] paths", "[profile][vault]") {
  World w;
  const fs::path proj = w.home / "projects" / "okb";
  // The mountpoint may be relative to the project dir; the cipherdir is expanded.
  const ProfileSpec s =
      w.parse(w.doc("[vault]\ncipherdir = \"~/.local/share/pw/vaults/okb\"\nmountpoint = \".vault\"\n"));
  REQUIRE(s.vault);
  CHECK(s.vault->mountpoint == proj / ".vault");
  CHECK(s.vault->cipherdir == w.home / ".local/share/pw/vaults/okb");
  CHECK(s.vault->unlock == VaultUnlock::Manual);
  CHECK(w.parse(w.doc("[vault]\ncipherdir = \"~/v\"\nmountpoint = \"~/m\"\nunlock = \"on-enter\"\n"))
            .vault->unlock == VaultUnlock::OnEnter);
  // Inside the project only .vault, the dir agent sessions guard: an agent could remove
  // any other and catch what is written there next. Also when named absolutely, or
  // through a symlink that leads into the project.
  for (const std::string& mp : std::vector<std::string>{"sub/dir/", "secrets", ".vault/inner", (proj / "secrets").string()}) {
    INFO(mp);
    CHECK(w.error(w.doc("[vault]\ncipherdir = \"~/v\"\nmountpoint = \"" + mp + "\"\n"))
              .find("vault.mountpoint: inside the project it must be \".vault\"") != std::string::npos);
  }
  fs::create_directories(proj / "deep");
  fs::create_directory_symlink(proj / "deep", w.home / "intoproj");
  CHECK(w.error(w.doc("[vault]\ncipherdir = \"~/v\"\nmountpoint = \"~/intoproj/m\"\n"))
            .find("vault.mountpoint: inside the project it must be \".vault\"") != std::string::npos);
  CHECK(w.parse(w.doc("[vault]\ncipherdir = \"~/v\"\nmountpoint = \"" + (proj / ".vault").string() + "\"\n")).vault);
  // Refused: ciphertext in the project (the agent posture reads it), a mountpoint that is the
  // project or a parent of it, overlapping dirs, a relative path escaping the project.
  CHECK(w.error(w.doc("[vault]\ncipherdir = \"" + (proj / "enc").string() + "\"\nmountpoint = \".vault\"\n"))
            .find("vault.cipherdir: must be outside the project dir") != std::string::npos);
  CHECK(w.error(w.doc("[vault]\ncipherdir = \"~/v\"\nmountpoint = \"~/projects\"\n"))
            .find("p.toml:5:14: vault.mountpoint: must be a dir inside the project") == 0);
  CHECK(w.error(w.doc("[vault]\ncipherdir = \"~/v\"\nmountpoint = \"~/v/plain\"\n")) ==
        "p.toml:5:14: vault.mountpoint: must not overlap vault.cipherdir");
  CHECK(w.error(w.doc("[vault]\ncipherdir = \"~/v\"\nmountpoint = \"../up\"\n")).find("vault.mountpoint") !=
        std::string::npos);
}

TEST_CASE("profile: a bare value runs to its terminator, control characters are refused", "[profile]") {
  World w;
  // fuzz_profile's second find: toml++ scans an invalid bare value ("-cip...") through '=' and
  // quotes, classifying a non-ASCII character that only looks like it sits in a string.
  std::string e = w.error("a=-cip\"SHA\xd0\x87\"\n");
  CHECK(e.find("U+0407 outside a string or comment") != std::string::npos);
  // The same text as a real string value loads.
  CHECK(w.error("[env]\nA = \"SHA\xd0\x87\"\n").find("U+0407") == std::string::npos);
  CHECK(w.error(std::string("a = 1\x00", 6) + "\n").find("control character U+0000") != std::string::npos);
  CHECK(w.error("a = \"x\x01y\"\n").find("control character U+0001") != std::string::npos);
}
