// Workspaces: joining, listing, teardown on last exit and after kill -9 of any pw process,
// and the terminal: job control and TIOCSTI on a real pty.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <sstream>
#include <thread>

#include "harness.hpp"

namespace fs = std::filesystem;
using it::World;

namespace {

// The supervisor of workspace `name`, from `pw ps`.
pid_t supervisor_pid(const World& w, const std::string& name) {
  auto r = w.pw({"ps"});
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + "  supervisor pid ", 0) == 0) {
      return static_cast<pid_t>(std::stol(line.substr(name.size() + 16)));
    }
  }
  return 0;
}

bool alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

// Host mounts that mention a path: sessions must never leave any.
bool host_has_mount_under(const fs::path& p) {
  return it::read_file("/proc/self/mountinfo").find(p.string()) != std::string::npos;
}

std::vector<std::string> bg_env(const World& w) { return w.env; }

}  // namespace

TEST_CASE("a second session joins the workspace; ps lists both; last exit ends it", "[workspace]") {
  auto& w = World::get();
  std::string tag = "join-" + std::to_string(::getpid());
  fs::path flag = w.project / (tag + ".ready");
  // Session 1 writes into the workspace's /tmp, signals through the project, then waits.
  pid_t s1 = it::spawn_bg({PW_BIN, "demo-llm", "--", "/bin/sh", "-c",
                           "echo shared > /tmp/" + tag + "; touch " + flag.string() + "; sleep 29." + std::to_string(::getpid())},
                          bg_env(w));
  REQUIRE(it::wait_for([&] { return fs::exists(flag); }, 10000));
  // Session 2, from "another terminal": sees session 1's /tmp.
  auto r = w.pw({"demo-llm", "--", "/bin/cat", "/tmp/" + tag});
  CHECK(r.rc == 0);
  CHECK(r.out == "shared\n");
  // ... which another workspace (the human posture of the same project) does not.
  CHECK(w.probe("demo", {"read", "/tmp/" + tag}) == "ENOENT");

  auto ps = w.pw({"ps"});
  CHECK(ps.out.find("demo-llm  supervisor pid") != std::string::npos);
  CHECK(ps.out.find(tag) != std::string::npos);
  pid_t sup = supervisor_pid(w, "demo-llm");
  CHECK(alive(sup));
  CHECK_FALSE(host_has_mount_under(w.runtime));

  ::kill(s1, SIGTERM);  // forwarded into the session; its sh dies of it
  int st;
  REQUIRE(::waitpid(s1, &st, 0) == s1);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 128 + SIGTERM);
  CHECK(it::wait_for([&] { return !alive(sup); }));
  CHECK(it::pids_with("sleep 29." + std::to_string(::getpid())).empty());
  CHECK_FALSE(fs::exists(w.runtime / "pw" / "demo-llm.sock"));
  // A fresh session starts a fresh workspace whose /tmp is empty.
  CHECK(w.probe("demo-llm", {"read", "/tmp/" + tag}) == "ENOENT");
}

namespace {

struct Running {
  pid_t client = 0;
  pid_t sup = 0;
  std::string tag;
};

Running start_sleeper(const World& w, const std::string& what) {
  Running r;
  // A fractional sleep makes a command line no other process has.
  static int n = 0;
  r.tag = "sleep 299." + std::to_string(::getpid()) + std::to_string(++n);
  fs::path flag = w.project / (what + "-" + std::to_string(::getpid()) + ".ready");
  fs::remove(flag);
  r.client = it::spawn_bg({PW_BIN, "demo", "--", "/bin/sh", "-c",
                           "touch " + flag.string() + "; " + r.tag + "; echo after"},
                          w.env);
  REQUIRE(it::wait_for([&] { return fs::exists(flag); }, 10000));
  r.sup = supervisor_pid(w, "demo");
  REQUIRE(alive(r.sup));
  return r;
}

}  // namespace

TEST_CASE("kill -9 of any pw process leaves no sandboxed process and no mount", "[workspace]") {
  auto& w = World::get();
  SECTION("the client") {
    Running r = start_sleeper(w, "kill-client");
    REQUIRE_FALSE(it::pids_with(r.tag).empty());
    ::kill(r.client, SIGKILL);
    ::waitpid(r.client, nullptr, 0);
    CHECK(it::wait_for([&] { return it::pids_with(r.tag).empty(); }));
    CHECK(it::wait_for([&] { return !alive(r.sup); }));
  }
  SECTION("the supervisor") {
    Running r = start_sleeper(w, "kill-supervisor");
    ::kill(r.sup, SIGKILL);
    int st;
    REQUIRE(::waitpid(r.client, &st, 0) == r.client);
    CHECK(it::wait_for([&] { return it::pids_with(r.tag).empty(); }));
  }
  SECTION("the sandboxed command") {
    Running r = start_sleeper(w, "kill-payload");
    auto pids = it::pids_with(r.tag);
    REQUIRE_FALSE(pids.empty());
    for (pid_t p : pids) ::kill(p, SIGKILL);
    int st;
    REQUIRE(::waitpid(r.client, &st, 0) == r.client);
    CHECK(WEXITSTATUS(st) == 128 + SIGKILL);
    CHECK(it::wait_for([&] { return !alive(r.sup); }));
  }
  CHECK_FALSE(host_has_mount_under(w.runtime));
  CHECK_FALSE(host_has_mount_under(w.home));
  // And the next session starts cleanly.
  CHECK(w.pw({"demo", "--", "/bin/true"}).rc == 0);
}

namespace {

// A pty whose slave is the controlling terminal of the process run on it, as in a real
// terminal emulator.
struct Pty {
  int master = -1;
  pid_t pid = -1;
  std::string seen;

  Pty(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    int slave;
    struct winsize ws = {24, 100, 0, 0};
    REQUIRE(::openpty(&master, &slave, nullptr, nullptr, &ws) == 0);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::setsid();
      ::ioctl(slave, TIOCSCTTY, 0);
      ::dup2(slave, 0);
      ::dup2(slave, 1);
      ::dup2(slave, 2);
      ::close(master);
      std::vector<char*> a, e;
      for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      for (auto& s : env) e.push_back(const_cast<char*>(s.c_str()));
      e.push_back(nullptr);
      ::execve(a[0], a.data(), e.data());
      _exit(127);
    }
    ::close(slave);
  }
  ~Pty() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    ::close(master);
  }
  void send(const std::string& s) { REQUIRE(::write(master, s.data(), s.size()) == static_cast<ssize_t>(s.size())); }
  // Reads until `needle` shows up in the output (since the last expect) or timeout.
  bool expect(const std::string& needle, int timeout_ms = 10000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      auto pos = seen.find(needle);
      if (pos != std::string::npos) {
        seen.erase(0, pos + needle.size());
        return true;
      }
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now()).count());
      if (left <= 0) return false;
      struct pollfd p = {master, POLLIN, 0};
      if (::poll(&p, 1, left) <= 0) return false;
      char buf[4096];
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n <= 0) return false;
      seen.append(buf, static_cast<size_t>(n));
    }
  }
  int wait() {
    int st;
    ::waitpid(pid, &st, 0);
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
};

}  // namespace

TEST_CASE("on a terminal: TIOCSTI is denied, Ctrl-C and job control reach the sandboxed job",
          "[workspace][tty]") {
  auto& w = World::get();
  SECTION("TIOCSTI on the controlling terminal") {
    // Outside pw the same call is allowed (or disabled by the kernel), so EPERM is pw's doing.
    Pty p({PW_BIN, "demo-llm", "--", w.probe_bin.string(), "tiocsti"}, w.env);
    CHECK(p.expect("EPERM"));
    CHECK(p.wait() == 0);
    Pty h({PW_BIN, "demo", "--", w.probe_bin.string(), "tiocsti"}, w.env);
    CHECK(h.expect("EPERM"));
    CHECK(h.wait() == 0);
  }
  SECTION("Ctrl-C ends the foreground command, not pw") {
    Pty p({PW_BIN, "demo-llm", "--", "/bin/sh", "-c", "echo started; sleep 60"}, w.env);
    REQUIRE(p.expect("started"));
    p.send("\x03");
    CHECK(p.wait() == 128 + SIGINT);
  }
  SECTION("interactive shell: Ctrl-Z stops the job, fg resumes it, Ctrl-C reaches it") {
    std::vector<std::string> env = w.env;
    env.push_back("PS1=pw-prompt$ ");
    env.push_back("TERM=dumb");
    Pty p({PW_BIN, "demo", "--", "/bin/bash", "--norc", "--noprofile", "-i"}, env);
    REQUIRE(p.expect("pw-prompt$ "));
    p.send("sleep 60\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    p.send("\x1a");
    CHECK(p.expect("Stopped"));
    REQUIRE(p.expect("pw-prompt$ "));
    p.send("jobs\n");
    CHECK(p.expect("sleep 60"));
    REQUIRE(p.expect("pw-prompt$ "));
    p.send("fg\n");
    CHECK(p.expect("sleep 60"));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    p.send("\x03");
    REQUIRE(p.expect("pw-prompt$ "));
    p.send("echo status=$?\n");
    CHECK(p.expect("status=130"));
    p.send("exit 3\n");
    CHECK(p.wait() == 3);
  }
}

TEST_CASE("a runtime dir open to others is refused", "[workspace]") {
  auto& w = World::get();
  fs::path dir = w.runtime / "pw";
  fs::create_directories(dir);
  ::chmod(dir.c_str(), 0755);
  auto r = w.pw({"demo", "--", "/bin/true"});
  ::chmod(dir.c_str(), 0700);
  CHECK(r.rc != 0);
  CHECK(r.err.find("accessible to other users") != std::string::npos);
  CHECK(w.pw({"demo", "--", "/bin/true"}).rc == 0);
}
