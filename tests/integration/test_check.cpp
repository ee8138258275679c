// `pw check` against every template in profiles/: each posture passes its own expectations
// (no false alarms for what it grants), at least 60 checks run, and a wall broken on purpose
// is reported as a failure (so the checks are not ones that can only pass).
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <regex>

#include "harness.hpp"

namespace fs = std::filesystem;
using it::World;

namespace {

struct Summary {
  int passed = -1, failed = -1;
};

Summary summary(const std::string& out) {
  std::smatch m;
  Summary s;
  if (std::regex_search(out, m, std::regex(R"((\d+) checks: (\d+) passed, (\d+) failed)"))) {
    s.passed = std::stoi(m[2]);
    s.failed = std::stoi(m[3]);
  }
  return s;
}

}  // namespace

TEST_CASE("pw check passes on every template, in both postures", "[check]") {
  auto& w = World::get();
  // Every agent template in profiles/, so a new one is checked without touching this test.
  std::vector<std::string> agents;
  for (const auto& e : fs::directory_iterator(PW_TEMPLATES)) {
    const std::string f = e.path().filename().string();
    if (f.starts_with("agent-") && f.ends_with(".toml")) agents.push_back(f.substr(6, f.size() - 11));
  }
  std::sort(agents.begin(), agents.end());
  REQUIRE(agents == std::vector<std::string>{"aider", "claude", "codex", "generic", "opencode"});
  for (const std::string& agent : agents) {
    std::string name = "chk-" + agent;
    if (!fs::exists(w.config / "pw" / name)) {
      auto r = w.pw({"new", name, "--dir", w.project.string(), "--shell", "/bin/sh", "--agent", agent});
      INFO(r.err);
      REQUIRE(r.rc == 0);
    }
    for (const std::string& p : {name + "-llm", name}) {
      if (p == name && agent != "generic") continue;  // one human template
      INFO(p);
      auto r = w.pw({"check", p}, "", 120);
      INFO(r.out << r.err);
      CHECK(r.rc == 0);
      Summary s = summary(r.out);
      CHECK(s.failed == 0);
      CHECK(s.passed >= 60);
      CHECK(r.out.find("FAIL") == std::string::npos);
    }
  }
}

TEST_CASE("pw check's expectations follow the profile", "[check]") {
  auto& w = World::get();
  // The human posture keeps the environment; the agent posture cleans it.
  auto human = w.pw({"check", "demo"}, "", 120);
  auto agent = w.pw({"check", "demo-llm"}, "", 120);
  REQUIRE(human.rc == 0);
  REQUIRE(agent.rc == 0);
  std::regex env_line(R"(environment\s+GITHUB_TOKEN\s+(\w+)\s+(\w+)\s+pass)");
  std::smatch m;
  REQUIRE(std::regex_search(human.out, m, env_line));
  CHECK(m[1] == "set");
  REQUIRE(std::regex_search(agent.out, m, env_line));
  CHECK(m[1] == "unset");
  // Seccomp: keyctl is refused with the filter's errno in both; io_uring is granted to the
  // human posture (skipped) and refused to the agent.
  CHECK(std::regex_search(agent.out, std::regex(R"(syscalls\s+io_uring_setup\s+EPERM\s+EPERM\s+pass)")));
  CHECK_FALSE(std::regex_search(human.out, std::regex(R"(syscalls\s+io_uring_setup)")));
  auto verbose = w.pw({"check", "demo", "--verbose"}, "", 120);
  CHECK(std::regex_search(verbose.out, std::regex(R"(io_uring_setup.*skip \(granted)")));
  // A profile with seccomp off expects no filter, and passes.
  std::string text = it::read_file(w.config / "pw" / "demo-llm" / "profile.toml");
  auto pos = text.find("seccomp = \"default\"");
  REQUIRE(pos != std::string::npos);
  text.replace(pos, 19, "seccomp = \"off\"");
  w.write_profile("chk-noseccomp", text);
  auto off = w.pw({"check", "chk-noseccomp"}, "", 120);
  INFO(off.out << off.err);
  CHECK(off.rc == 0);
  CHECK(std::regex_search(off.out, std::regex(R"(seccomp filter active\s+0\s+0\s+pass)")));
}

TEST_CASE("pw check reports a wall broken on purpose", "[check]") {
  auto& w = World::get();
  // The test build's PW_TEST_WIDEN_RW binds /var/tmp writable behind the plan's back. With
  // Landlock off, pw check must see the write it expects to be refused; with Landlock on,
  // the second wall holds and the check passes.
  std::string text = it::read_file(w.config / "pw" / "demo-llm" / "profile.toml");
  auto pos = text.find("landlock = \"best-effort\"");
  REQUIRE(pos != std::string::npos);
  w.write_profile("chk-ll", text);
  text.replace(pos, 24, "landlock = \"off\"");
  w.write_profile("chk-noll", text);
  auto env = w.env;
  env.push_back("PW_TEST_WIDEN_RW=/var/tmp");
  auto broken = it::run({PW_BIN, "check", "chk-noll"}, env, "", 120);
  INFO(broken.out << broken.err);
  CHECK(broken.rc == 1);
  CHECK(summary(broken.out).failed >= 1);
  CHECK(std::regex_search(broken.out, std::regex(R"(write /var/tmp/pw-check-\d+\s+denied\s+OK\s+FAIL)")));
  if (::syscall(SYS_landlock_create_ruleset, nullptr, 0, 1u) >= 1) {
    auto held = it::run({PW_BIN, "check", "chk-ll"}, env, "", 120);
    INFO(held.out << held.err);
    CHECK(held.rc == 0);
    CHECK(std::regex_search(held.out, std::regex(R"(write /var/tmp/pw-check-\d+\s+denied\s+EACCES\s+pass)")));
  }
  // Without the hook the same profile passes: the failure came from the widened view.
  CHECK(w.pw({"check", "chk-noll"}, "", 120).rc == 0);
}
