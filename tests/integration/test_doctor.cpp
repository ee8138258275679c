// `pw doctor` run for real: healthy here, and failing, with the fix, where it should.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <sstream>

#include <fusevault/vault.hpp>

#include "harness.hpp"

namespace fs = std::filesystem;
using it::World;

namespace {

// The line of check `name` ("user namespaces", "profile demo", ...), or "".
std::string line_of(const std::string& out, const std::string& name) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > 6 && line.compare(6, name.size() + 1, name + ":") == 0) return line;
  }
  return "";
}

// The environment of `w` with some variables replaced.
std::vector<std::string> env_with(const World& w, const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (const auto& kv : w.env) {
    bool replaced = false;
    for (const auto& o : overrides) replaced |= kv.substr(0, kv.find('=')) == o.substr(0, o.find('='));
    if (!replaced) env.push_back(kv);
  }
  env.insert(env.end(), overrides.begin(), overrides.end());
  return env;
}

// A config dir of its own for one test, so a broken profile does not leak into others.
struct Config {
  fs::path dir;
  explicit Config(const World& w, const std::string& tag) : dir(w.home / ("doctor-" + tag)) {
    fs::remove_all(dir);
    fs::create_directories(dir / "pw");
  }
  void profile(const std::string& name, const std::string& text) const {
    it::write_file(dir / "pw" / name / "profile.toml", text, 0600);
  }
  it::Result doctor(const World& w) const {
    return it::run({PW_BIN, "doctor"}, env_with(w, {"XDG_CONFIG_HOME=" + dir.string()}));
  }
};

}  // namespace

TEST_CASE("doctor: a healthy setup passes, with user namespaces and /dev/fuse ok", "[doctor]") {
  auto& w = World::get();
  auto r = w.pw({"doctor"});
  INFO(r.out << r.err);
  CHECK(r.rc == 0);
  CHECK(line_of(r.out, "user namespaces").rfind("ok    user namespaces: usable", 0) == 0);
  CHECK(line_of(r.out, "/dev/fuse").rfind("ok    /dev/fuse: present and opens read-write", 0) == 0);
  CHECK(line_of(r.out, "runtime dir").rfind("ok    runtime dir: " + (w.runtime / "pw").string(), 0) == 0);
  CHECK(line_of(r.out, "seccomp").rfind("ok", 0) == 0);
  CHECK(line_of(r.out, "vault cipher").rfind("ok    vault cipher: new vaults: fusevault format " +
                                                 std::to_string(fusevault::default_format()) + ", ",
                                             0) == 0);
  for (const char* p : {"demo", "demo-llm", "other", "other-llm"}) {
    CHECK(line_of(r.out, std::string("profile ") + p).rfind("ok", 0) == 0);
  }
  CHECK(line_of(r.out, "profile demo").find("shell /bin/sh") != std::string::npos);
  CHECK(line_of(r.out, "kernel").rfind("ok    kernel: Linux ", 0) == 0);
  CHECK_FALSE(line_of(r.out, "landlock").empty());
  CHECK_FALSE(line_of(r.out, "cgroup v2").empty());
  CHECK(r.out.find("pw can work here") != std::string::npos);
  // Not a terminal: no escape codes.
  CHECK(r.out.find('\033') == std::string::npos);
}

TEST_CASE("doctor: a profile with a syntax error fails it and names the file and line", "[doctor]") {
  auto& w = World::get();
  Config cfg(w, "syntax");
  cfg.profile("good", "[project]\ndir = \"" + w.project.string() + "\"\nshell = \"/bin/sh\"\n");
  cfg.profile("bad", "[project]\ndir = \"" + w.project.string() + "\"\nshell = \"/bin/sh\"\n"
                     "[sandbox\nblacklist = []\n");
  auto r = cfg.doctor(w);
  INFO(r.out << r.err);
  CHECK(r.rc != 0);
  const std::string bad = line_of(r.out, "profile bad");
  CHECK(bad.rfind("FAIL  profile bad: ", 0) == 0);
  CHECK(bad.find((cfg.dir / "pw" / "bad" / "profile.toml").string() + ":4:") != std::string::npos);
  CHECK(bad.find("TOML syntax error") != std::string::npos);
  CHECK(r.out.find("fix: edit the file at the place named above") != std::string::npos);
  // Only that profile: the good one and the machine are fine.
  CHECK(line_of(r.out, "profile good").rfind("ok", 0) == 0);
  CHECK(line_of(r.out, "user namespaces").rfind("ok", 0) == 0);
  CHECK(r.out.find("pw cannot work here: 1 check(s) failed") != std::string::npos);
  // Repaired, the same config passes.
  cfg.profile("bad", "[project]\ndir = \"" + w.project.string() + "\"\nshell = \"/bin/sh\"\n"
                     "[sandbox]\nblacklist = []\n");
  CHECK(cfg.doctor(w).rc == 0);
}

TEST_CASE("doctor: a shell that does not exist fails the profile", "[doctor]") {
  auto& w = World::get();
  Config cfg(w, "shell");
  cfg.profile("noshell", "[project]\ndir = \"" + w.project.string() +
                             "\"\nshell = \"/nonexistent/bin/zsh\"\n");
  auto r = cfg.doctor(w);
  INFO(r.out << r.err);
  CHECK(r.rc != 0);
  const std::string l = line_of(r.out, "profile noshell");
  CHECK(l.rfind("FAIL", 0) == 0);
  CHECK(l.find((cfg.dir / "pw" / "noshell" / "profile.toml").string() + ":3:") != std::string::npos);
  CHECK(l.find("project.shell") != std::string::npos);
  CHECK(l.find("/nonexistent/bin/zsh") != std::string::npos);
  CHECK(r.out.find("fix: install that shell") != std::string::npos);
  // An existing file that is not executable is refused the same way.
  it::write_file(w.home / "not-a-shell", "#!/bin/sh\n", 0644);
  cfg.profile("noshell", "[project]\ndir = \"" + w.project.string() + "\"\nshell = \"" +
                             (w.home / "not-a-shell").string() + "\"\n");
  r = cfg.doctor(w);
  CHECK(r.rc != 0);
  CHECK(line_of(r.out, "profile noshell").find("is not an executable file") != std::string::npos);
}

TEST_CASE("doctor: a runtime dir open to others is fatal, with the chmod that fixes it", "[doctor]") {
  auto& w = World::get();
  fs::path run = w.home / "doctor-run";
  fs::create_directories(run / "pw");
  ::chmod(run.c_str(), 0700);
  ::chmod((run / "pw").c_str(), 0755);
  auto env = env_with(w, {"XDG_RUNTIME_DIR=" + run.string()});
  auto r = it::run({PW_BIN, "doctor"}, env);
  INFO(r.out << r.err);
  CHECK(r.rc != 0);
  CHECK(line_of(r.out, "runtime dir").rfind("FAIL  runtime dir: " + (run / "pw").string(), 0) == 0);
  CHECK(r.out.find("fix: chmod 0700 " + (run / "pw").string()) != std::string::npos);
  ::chmod((run / "pw").c_str(), 0700);
  CHECK(it::run({PW_BIN, "doctor"}, env).rc == 0);
}

TEST_CASE("doctor: inside an agent session, whose seccomp wall denies user namespaces, it fails",
          "[doctor]") {
  auto& w = World::get();
  // The agent posture cannot see pw's own binary; a copy in the project it can.
  fs::path copy = w.project / ".probe" / "pw-copy";
  fs::copy_file(PW_BIN, copy, fs::copy_options::overwrite_existing);
  ::chmod(copy.c_str(), 0755);
  // (A sanitizer build's leak checker needs ptrace, which this wall denies: off for the copy,
  // so the exit status is doctor's own.)
  auto r = w.pw({"demo-llm", "--", "/usr/bin/env", "ASAN_OPTIONS=detect_leaks=0", copy.string(), "doctor"});
  INFO(r.out << r.err);
  CHECK(r.err.find("Sanitizer") == std::string::npos);
  CHECK(r.rc == 1);
  CHECK(line_of(r.out, "user namespaces")
            .rfind("FAIL  user namespaces: cannot create a user namespace: Operation not permitted", 0) == 0);
  CHECK(r.out.find("fix: no sysctl explains it") != std::string::npos);
  // The session's /dev has no fuse node and no profile has a vault there (the config dir is
  // hidden): a warning, not a failure.
  CHECK(line_of(r.out, "/dev/fuse").rfind("warn", 0) == 0);
  fs::remove(copy);
}

TEST_CASE("doctor: on a terminal the status words are coloured", "[doctor][tty]") {
  auto& w = World::get();
  auto env = env_with(w, {"TERM=xterm"});
  it::Pty pty({PW_BIN, "doctor"}, env);
  CHECK(pty.expect("\033[32mok\033[0m    user namespaces: usable"));
  CHECK(pty.wait() == 0);
}
