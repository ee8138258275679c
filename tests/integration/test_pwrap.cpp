// `pw import-pwrap` with the article's two projects, and `pw vault migrate`, with the real
// pw binary as the unprivileged user.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <sstream>

#include "harness.hpp"

namespace fs = std::filesystem;
using it::World;

namespace {

const std::vector<std::string> kFastKdf = {"--kdf-ops", "1", "--kdf-mem-mib", "8"};

// The two configs from the pwrap article ("AI agents belong in prison"), verbatim but for
// the shell of okb where fish is not installed.
std::string okb_toml() {
  std::string shell = ::access("/usr/bin/fish", X_OK) == 0 ? "/usr/bin/fish" : "/bin/bash";
  return R"(# ~/.config/pwrap/okb/project.toml
[project]
name = "okb"
dir = "~/projects/okb"
shell = ")" + shell + R"("

[sandbox]
enabled = true
blacklist = [
    "~/projects/",           # other projects, none of this one's business
    "~/.aws",                # different AWS account lives here
    "~/.config/gcloud",      # same story for GCP
    "/mnt",                  # escalation path on WSL2
]
whitelist = [
    "/mnt/wsl",              # I want WSL integration to work
]
writable = [
  "/tmp/.X11-unix",          # X11 display socket
  "/mnt/wslg/runtime-dir",   # Wayland
]
)";
}

const char* kOkbLlm = R"(# ~/.config/pwrap/okb-llm/project.toml
[project]
name = "okb-llm"
dir = "~/projects/okb"          # same directory as the shell config
shell = "/usr/bin/bash"

[sandbox]
enabled = true
clean_env = true                  # only PATH/HOME/USER/SHELL/TERM/LANG survive
blacklist = [
    "~",                          # hide everything under home
    "/mnt",                       # WSL drives, doesn't hurt on native Linux
]
whitelist = [
    "~/.pyenv/",                  # python runtimes, read-only
    "~/.cache/pip",               # so pip installs still work
]
writable = [
    "~/.claude.json.lock/",      # Claude Code won't run without it (dir)
    "/tmp/.X11-unix",            # X11 display socket
    "/mnt/wslg/runtime-dir",     # Wayland + PulseAudio
]
[env]
CLAUDE_CONFIG_DIR = ".claude-okb"   # relative to project dir, doesn't touch ~/.claude
)";

bool workspace_running(const World& w, const std::string& name) {
  std::istringstream in(w.pw({"ps"}).out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + "  ", 0) == 0) return true;
  }
  return false;
}

std::string stat_of(const fs::path& p) {
  struct stat st{};
  if (::lstat(p.c_str(), &st) != 0) return "missing";
  char mode[16];
  std::snprintf(mode, sizeof mode, "%o", static_cast<unsigned>(st.st_mode & 07777));
  return std::string(mode) + " " + std::to_string(st.st_mtim.tv_sec);
}

}  // namespace

TEST_CASE("pwrap: the article's okb and okb-llm import, load and start", "[pwrap]") {
  const World& w = World::get();
  const fs::path src = w.home / "pwrap-article";
  fs::create_directories(src / "okb");
  fs::create_directories(src / "okb-llm");
  fs::create_directories(w.home / "projects" / "okb");
  fs::create_directories(w.home / ".claude.json.lock");
  it::write_file(src / "okb" / "project.toml", okb_toml());
  it::write_file(src / "okb-llm" / "project.toml", kOkbLlm);
  it::write_file(src / "okb-llm" / "init.sh", "exec claude\n");
  const fs::path human = w.config / "pw" / "okb" / "profile.toml";
  const fs::path agent = w.config / "pw" / "okb-llm" / "profile.toml";

  auto r = w.pw({"import-pwrap", src.string(), "--dry-run"});
  INFO(r.out << r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.out.find("would write " + agent.string()) != std::string::npos);
  CHECK(!fs::exists(human));
  CHECK(!fs::exists(agent));

  r = w.pw({"import-pwrap", src.string()});
  INFO(r.out << r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.out.find("-> pw profile okb, posture human: ") != std::string::npos);
  CHECK(r.out.find("-> pw profile okb-llm, posture agent: clean_env = true and \"~\" blacklisted") !=
        std::string::npos);
  CHECK(r.out.find("sandbox.writable: '/mnt/wslg/runtime-dir' does not exist") != std::string::npos);
  CHECK(r.out.find("env.CLAUDE_CONFIG_DIR: becomes [agent] state_dir = \".claude-okb\"") != std::string::npos);
  CHECK(r.out.find("init script: pw sources no init script") != std::string::npos);
  REQUIRE(fs::exists(human));
  REQUIRE(fs::exists(agent));
  CHECK(fs::exists(w.config / "pw" / "okb-llm" / "pwrap-init.sh"));

  auto show = w.pw({"show", "okb-llm"});
  INFO(show.err);
  REQUIRE(show.rc == 0);
  CHECK(show.out.find("posture = \"agent\"") != std::string::npos);
  CHECK(show.out.find("state_dir = \".claude-okb\"") != std::string::npos);
  CHECK(show.out.find("clean_env = true") != std::string::npos);

  auto run = w.pw({"okb-llm", "--", "true"});
  INFO(run.err);
  CHECK(run.rc == 0);
  run = w.pw({"okb-llm", "--", "/bin/sh", "-c", "echo \"$CLAUDE_CONFIG_DIR\"; ls -A \"$HOME\""});
  INFO(run.err);
  CHECK(run.rc == 0);
  // The hidden home shows only the writable entry the config re-exposes and the way to the project.
  CHECK(run.out == (w.home / "projects/okb/.claude-okb").string() + "\n.claude.json.lock\nprojects\n");
  run = w.pw({"okb", "--", "true"});
  INFO(run.err);
  CHECK(run.rc == 0);
  // The human posture keeps other projects hidden, as the pwrap config asked.
  run = w.pw({"okb", "--", "/bin/sh", "-c", "ls -A " + (w.home / "projects").string()});
  CHECK(run.rc == 0);
  CHECK(run.out == "okb\n");

  // Never over an existing profile: refused, non-zero, the file untouched.
  const std::string before = it::read_file(agent);
  r = w.pw({"import-pwrap", src.string()});
  CHECK(r.rc == 1);
  CHECK(r.err.find("pw profile 'okb-llm' already exists") != std::string::npos);
  CHECK(it::read_file(agent) == before);
}

TEST_CASE("pwrap: vault migrate copies a tree into the vault, verified, seen inside a session", "[pwrap]") {
  const World& w = World::get();
  const std::string name = "migr";
  const fs::path project = w.home / "projects" / name;
  const fs::path pass = w.home / "pass-migr";
  const fs::path src = w.home / "migr-plain";
  fs::create_directories(project);
  it::write_file(pass, "migrate me\n", 0600);
  auto r = w.pw({"new", name, "--dir", project.string(), "--shell", "/bin/sh"});
  INFO(r.err);
  REQUIRE(r.rc == 0);

  // Before init: refused.
  fs::create_directories(src / "nested" / "deeper");
  r = w.pw({"vault", "migrate", name, "--from", src.string(), "--passphrase-file", pass.string()});
  CHECK(r.rc == 1);
  CHECK(r.err.find("pw vault init " + name) != std::string::npos);

  std::vector<std::string> init = {"vault", "init", name, "--passphrase-file", pass.string()};
  init.insert(init.end(), kFastKdf.begin(), kFastKdf.end());
  r = w.pw(init);
  INFO(r.err);
  REQUIRE(r.rc == 0);

  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 2654435761u) >> 13);
  it::write_file(src / "big.bin", big, 0640);
  it::write_file(src / "empty", "", 0600);
  it::write_file(src / "nested" / "deeper" / "note.txt", "deep secret\n", 0400);
  REQUIRE(::symlink("nested/deeper/note.txt", (src / "link").c_str()) == 0);
  struct timespec ts[2] = {{1500000000, 0}, {1500000000, 0}};
  REQUIRE(::utimensat(AT_FDCWD, (src / "nested" / "deeper" / "note.txt").c_str(), ts, 0) == 0);

  r = w.pw({"vault", "migrate", name, "--from", src.string(), "--passphrase-file", pass.string()});
  INFO(r.out << r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.err.find("copied 4/4 files, 1.0/1.0 MiB") != std::string::npos);
  CHECK(r.err.find("verified 4/4 files") != std::string::npos);
  CHECK(r.out.find("3 file(s), 2 dir(s), 1 symlink(s)") != std::string::npos);

  // Inside a human session, after unlock: the same bytes, modes and mtimes.
  const std::string script = "cd " + project.string() + " && while [ ! -e .stop ]; do sleep 0.05; done";
  pid_t bg = it::spawn_bg({PW_BIN, name, "--", "/bin/sh", "-c", script}, w.env);
  REQUIRE(it::wait_for([&] { return workspace_running(w, name); }, 10000));
  r = w.pw({"vault", "unlock", name, "--passphrase-file", pass.string()});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const fs::path mnt = project / ".vault";
  auto in = w.pw({name, "--", "/bin/sh", "-c",
                  "cd " + mnt.string() + " && cmp big.bin " + (src / "big.bin").string() + " && cmp empty " +
                      (src / "empty").string() + " && cmp nested/deeper/note.txt " +
                      (src / "nested/deeper/note.txt").string() + " && readlink link && cat link && " +
                      "stat -c '%a %Y' nested/deeper/note.txt big.bin && stat -c %s empty"});
  INFO(in.err);
  CHECK(in.rc == 0);
  CHECK(in.out == "nested/deeper/note.txt\ndeep secret\n400 1500000000\n" + stat_of(src / "big.bin") + "\n0\n");

  // Running and unlocked: refused (two writers must never share a cipherdir).
  r = w.pw({"vault", "migrate", name, "--from", src.string(), "--passphrase-file", pass.string()});
  CHECK(r.rc == 1);
  CHECK(r.err.find("running with the vault unlocked") != std::string::npos);

  it::write_file(project / ".stop", "");
  int st;
  ::waitpid(bg, &st, 0);
  REQUIRE(it::wait_for([&] { return !workspace_running(w, name); }, 10000));
  fs::remove(project / ".stop");

  // Again: everything already there is identical and skipped.
  r = w.pw({"vault", "migrate", name, "--from", src.string(), "--passphrase-file", pass.string()});
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(r.out.find("0 file(s), 0 dir(s), 0 symlink(s), 0 bytes written; 4 identical entries skipped") !=
        std::string::npos);

  // A changed source file is never written over.
  it::write_file(src / "empty", "not empty now\n", 0600);
  r = w.pw({"vault", "migrate", name, "--from", src.string(), "--passphrase-file", pass.string()});
  CHECK(r.rc == 1);
  CHECK(r.err.find("empty: exists in the vault with different size") != std::string::npos);
  CHECK(r.err.find("nothing copied") != std::string::npos);

  // A wrong passphrase copies nothing.
  it::write_file(w.home / "wrong-migr", "wrong\n", 0600);
  r = w.pw({"vault", "migrate", name, "--from", src.string(), "--passphrase-file", (w.home / "wrong-migr").string()});
  CHECK(r.rc == 1);
  CHECK(r.err.find("wrong passphrase") != std::string::npos);
}
