// Workspaces: joining, listing, teardown on last exit and after kill -9 of any pw process,
// and the terminal: job control and TIOCSTI on a real pty.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
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
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(r.out == "shared\n");
  // ... which another workspace (the human posture of the same project) does not.
  CHECK(w.probe("demo", {"read", "/tmp/" + tag}) == "ENOENT");

  auto ps = w.pw({"ps"});
  CHECK(ps.out.find("demo-llm  supervisor pid") != std::string::npos);
  CHECK(ps.out.find(tag) != std::string::npos);
  // The session that started the workspace is registered as its client's (maker.cpp hands
  // the supervisor that client's socket).
  CHECK(ps.out.find("pid " + std::to_string(s1) + " ") != std::string::npos);
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

TEST_CASE("sessions of one workspace share its loopback; other workspaces and the host do not",
          "[workspace][net]") {
  auto& w = World::get();
  // Own profiles (same project): no other test joins these workspaces.
  for (const char* name : {"loop-llm", "loop2-llm"}) {
    w.write_profile(name, "[project]\ndir = \"" + w.project.string() +
                              "\"\nposture = \"agent\"\nshell = \"/bin/sh\"\n[network]\nmode = \"none\"\n");
  }
  const std::string port = std::to_string(20000 + ::getpid() % 20000);
  pid_t server = it::spawn_bg({PW_BIN, "loop-llm", "--", w.probe_bin.string(), "listen", port, "60"}, bg_env(w));
  // A second terminal's session reaches the first one's server on localhost...
  std::string got;
  CHECK(it::wait_for([&] { return (got = w.probe("loop-llm", {"connect", "127.0.0.1", port})) == "OK"; }, 10000));
  CHECK(got == "OK");
  // ... while the host (here) and another workspace of the same project are refused.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(port)));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  const int err = errno;
  ::close(fd);
  CHECK(rc != 0);
  CHECK(err == ECONNREFUSED);
  CHECK(w.probe("loop2-llm", {"connect", "127.0.0.1", port}) == "ECONNREFUSED");
  ::kill(server, SIGTERM);
  int st;
  REQUIRE(::waitpid(server, &st, 0) == server);
  // The namespace ends with the workspace: a fresh one has nothing listening.
  CHECK(it::wait_for([&] { return supervisor_pid(w, "loop-llm") == 0; }));
  CHECK(w.probe("loop-llm", {"connect", "127.0.0.1", port}) == "ECONNREFUSED");
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
  // (The session may run before its supervisor does: see workspace/maker.hpp.)
  REQUIRE(it::wait_for([&] { return (r.sup = supervisor_pid(w, "demo")) != 0; }, 10000));
  REQUIRE(alive(r.sup));
  return r;
}

}  // namespace

TEST_CASE("the supervisor keeps none of its starter's descriptors", "[workspace]") {
  // A harness waits for EOF on a pipe it gave a command; a workspace outliving the command
  // must not hold that pipe open (the supervisor outlives the client that started it).
  auto& w = World::get();
  const std::string tag = "fds-" + std::to_string(::getpid());
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  // The starter: a cold start of the workspace with the pipe's write end as its fd 7.
  pid_t starter = ::fork();
  REQUIRE(starter >= 0);
  if (starter == 0) {
    ::dup2(p[1], 7);  // without close-on-exec, like any descriptor a caller passes on
    int dn = ::open("/dev/null", O_RDWR);
    ::dup2(dn, 0);
    ::dup2(dn, 1);
    std::vector<std::string> a = {PW_BIN, "demo-llm", "--", "/bin/sh", "-c", "exec 7>&-; sleep 2." + tag.substr(4)};
    std::vector<char*> av, ev;
    for (auto& x : a) av.push_back(x.data());
    av.push_back(nullptr);
    std::vector<std::string> env = w.env;
    for (auto& x : env) ev.push_back(x.data());
    ev.push_back(nullptr);
    ::execve(av[0], av.data(), ev.data());
    _exit(127);
  }
  ::close(p[1]);
  REQUIRE(it::wait_for([&] { return supervisor_pid(w, "demo-llm") != 0; }, 10000));
  pid_t sup = supervisor_pid(w, "demo-llm");
  // A second session keeps the workspace (and its supervisor) alive after the starter ends.
  pid_t keeper = it::spawn_bg({PW_BIN, "demo-llm", "--", "/bin/sleep", "20." + tag.substr(4)}, bg_env(w));
  REQUIRE(it::wait_for([&] { return !it::pids_with("sleep 20." + tag.substr(4)).empty(); }, 10000));
  int st;
  REQUIRE(::waitpid(starter, &st, 0) == starter);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  // The starter and its session are gone: EOF now, while the supervisor still runs.
  struct pollfd pf = {p[0], POLLIN, 0};
  CHECK(::poll(&pf, 1, 5000) == 1);
  char c;
  CHECK(::read(p[0], &c, 1) == 0);
  CHECK(alive(sup));
  CHECK(supervisor_pid(w, "demo-llm") == sup);
  ::close(p[0]);
  ::kill(keeper, SIGTERM);
  REQUIRE(::waitpid(keeper, &st, 0) == keeper);
  CHECK(it::wait_for([&] { return supervisor_pid(w, "demo-llm") == 0; }));
}

TEST_CASE("a supervisor runs on the CPUs its starter may use", "[workspace]") {
  // The client keeps the supervisor it forks off its own CPU while it starts; once ready,
  // the supervisor must be back on the client's mask: neither left on the narrowed set nor
  // widened past a `taskset` of the user's.
  auto& w = World::get();
  cpu_set_t mine;
  REQUIRE(::sched_getaffinity(0, sizeof mine, &mine) == 0);
  int first = 0;
  while (!CPU_ISSET(first, &mine)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  for (const cpu_set_t* want : {&mine, &one}) {
    std::vector<std::string> cmd = {PW_BIN, "demo-llm", "--", "/bin/sleep", "30"};
    if (want == &one) cmd.insert(cmd.begin(), {"/usr/bin/taskset", "-c", std::to_string(first)});
    pid_t client = it::spawn_bg(cmd, bg_env(w));
    REQUIRE(it::wait_for([&] { return supervisor_pid(w, "demo-llm") != 0; }, 10000));
    cpu_set_t got;
    CPU_ZERO(&got);
    REQUIRE(::sched_getaffinity(supervisor_pid(w, "demo-llm"), sizeof got, &got) == 0);
    CHECK(CPU_COUNT(&got) == CPU_COUNT(want));
    CHECK(CPU_EQUAL(&got, want));
    ::kill(client, SIGTERM);
    int st;
    REQUIRE(::waitpid(client, &st, 0) == client);
    REQUIRE(it::wait_for([&] { return supervisor_pid(w, "demo-llm") == 0; }, 10000));
  }
}

TEST_CASE("the user's other processes cannot reach a workspace through its pw processes",
          "[workspace]") {
  // The supervisor and the client hold the workspace's namespaces (as root there) and its
  // staging tmpfs. Both are non-dumpable and own their memory from the host's user
  // namespace, so a process of the same user outside gets nothing through /proc: not the
  // namespaces (to setns into), not the session's /tmp through their root.
  auto& w = World::get();
  const std::string tag = "reach-" + std::to_string(::getpid());
  fs::path flag = w.project / (tag + ".ready");
  pid_t client = it::spawn_bg({PW_BIN, "demo-llm", "--", "/bin/sh", "-c",
                               "echo secret > /tmp/" + tag + "; touch " + flag.string() + "; sleep 28." +
                                   std::to_string(::getpid())},
                              bg_env(w));
  REQUIRE(it::wait_for([&] { return fs::exists(flag); }, 10000));
  pid_t sup = 0;
  REQUIRE(it::wait_for([&] { return (sup = supervisor_pid(w, "demo-llm")) != 0; }, 10000));
  const std::string stage_tmp = (w.runtime / "pw" / "demo-llm.ws" / "tmp" / tag).relative_path().string();
  for (pid_t p : {sup, client}) {
    INFO("pid " << p);
    const std::string proc = "/proc/" + std::to_string(p);
    for (const char* ns : {"user", "mnt", "net"}) {
      errno = 0;
      CHECK(::open((proc + "/ns/" + ns).c_str(), O_RDONLY | O_CLOEXEC) < 0);
      CHECK(errno == EACCES);
    }
    errno = 0;
    CHECK(::open((proc + "/root/" + stage_tmp).c_str(), O_RDONLY | O_CLOEXEC) < 0);
    CHECK(errno == EACCES);
  }
  ::kill(client, SIGTERM);
  int st;
  REQUIRE(::waitpid(client, &st, 0) == client);
  CHECK(it::wait_for([&] { return supervisor_pid(w, "demo-llm") == 0; }, 10000));
}

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

}  // namespace

TEST_CASE("on a terminal: TIOCSTI is denied, Ctrl-C and job control reach the sandboxed job",
          "[workspace][tty]") {
  auto& w = World::get();
  SECTION("TIOCSTI on the controlling terminal") {
    // Outside pw the same call is allowed (or disabled by the kernel), so EPERM is pw's doing.
    it::Pty p({PW_BIN, "demo-llm", "--", w.probe_bin.string(), "tiocsti"}, w.env);
    CHECK(p.expect("EPERM"));
    CHECK(p.wait() == 0);
    it::Pty h({PW_BIN, "demo", "--", w.probe_bin.string(), "tiocsti"}, w.env);
    CHECK(h.expect("EPERM"));
    CHECK(h.wait() == 0);
  }
  SECTION("a command session cannot take the terminal's foreground") {
    // What a job of it left in the background would do to read what the user types to
    // their own shell. The human posture (and the probe itself) can: the control.
    it::Pty p({PW_BIN, "demo-llm", "--", w.probe_bin.string(), "tcsetpgrp"}, w.env);
    CHECK(p.expect("EPERM"));
    CHECK(p.wait() == 0);
    it::Pty h({PW_BIN, "demo", "--", w.probe_bin.string(), "tcsetpgrp"}, w.env);
    CHECK(h.expect("OK"));
    CHECK(h.wait() == 0);
  }
  SECTION("an interactive shell of the agent posture keeps its job control") {
    w.write_profile("jobs-llm", "[project]\ndir = \"" + w.project.string() +
                                    "\"\nshell = \"/bin/bash\"\nposture = \"agent\"\n"
                                    "[env]\nTERM = \"dumb\"\n");
    // The prompt is the system bashrc's (user@host:dir$), the host being the profile.
    const std::string prompt = "@jobs-llm:";
    it::Pty p({PW_BIN, "jobs-llm"}, w.env);
    REQUIRE(p.expect(prompt));
    p.send("sleep 60\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    p.send("\x1a");
    CHECK(p.expect("Stopped"));
    REQUIRE(p.expect(prompt));
    p.send("fg\n");
    CHECK(p.expect("sleep 60"));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    p.send("\x03");
    REQUIRE(p.expect(prompt));
    p.send("exit 3\n");
    CHECK(p.wait() == 3);
  }
  SECTION("Ctrl-C ends the foreground command, not pw") {
    it::Pty p({PW_BIN, "demo-llm", "--", "/bin/sh", "-c", "echo started; sleep 60"}, w.env);
    REQUIRE(p.expect("started"));
    p.send("\x03");
    CHECK(p.wait() == 128 + SIGINT);
  }
  SECTION("interactive shell: Ctrl-Z stops the job, fg resumes it, Ctrl-C reaches it") {
    std::vector<std::string> env = w.env;
    env.push_back("PS1=pw-prompt$ ");
    env.push_back("TERM=dumb");
    it::Pty p({PW_BIN, "demo", "--", "/bin/bash", "--norc", "--noprofile", "-i"}, env);
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

TEST_CASE("a peer that connects and says nothing holds no one up", "[workspace]") {
  auto& w = World::get();
  // A workspace with a session open, and a silent connection to its socket (as any process
  // of a human session could make to the vault socket): other clients still get in.
  pid_t held = it::spawn_bg({PW_BIN, "demo", "--", "/bin/sleep", "30"}, w.env);
  const std::string sock = (w.runtime / "pw" / "demo.sock").string();
  REQUIRE(it::wait_for([&] { return ::access(sock.c_str(), F_OK) == 0; }, 10000));
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  struct sockaddr_un a {};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", sock.c_str());
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = it::run({"/usr/bin/timeout", "20", PW_BIN, "demo", "--", "/bin/true"}, w.env);
  const auto took = std::chrono::steady_clock::now() - t0;
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(took < std::chrono::seconds(10));
  ::close(fd);
  ::kill(held, SIGTERM);
  int st;
  ::waitpid(held, &st, 0);
}

TEST_CASE("a staging dir open to others is refused at once, and holds nothing up", "[workspace]") {
  // Checked by the client before the helper that makes the workspace starts: an error,
  // not a client waiting forever on a helper that never ran, with the workspace lock.
  auto& w = World::get();
  fs::path stage = w.runtime / "pw" / "demo-llm.ws";
  fs::create_directories(stage);
  ::chmod(stage.parent_path().c_str(), 0700);
  ::chmod(stage.c_str(), 0755);
  auto r = it::run({PW_BIN, "demo-llm", "--", "/bin/true"}, w.env, "", 20);
  ::chmod(stage.c_str(), 0700);
  CHECK(r.rc == 1);
  CHECK(r.err.find("accessible to other users") != std::string::npos);
  auto again = w.pw({"demo-llm", "--", "/bin/true"});
  INFO(again.err);
  CHECK(again.rc == 0);
}

TEST_CASE("a workspace whose supervisor cannot start says why", "[workspace]") {
  // A runtime dir so deep that the control socket's path does not fit a unix address: the
  // supervisor fails after the session started (or, forked, before it), and the session's
  // client reports its reason rather than only that it went away.
  auto& w = World::get();
  fs::path deep = w.home / "run-deep";
  std::string part(40, 'd');
  for (int i = 0; i < 3; ++i) deep /= part;
  fs::create_directories(deep);
  for (fs::path p = deep; p != w.home; p = p.parent_path()) ::chmod(p.c_str(), 0700);
  std::vector<std::string> env;
  for (const auto& e : w.env) {
    if (e.rfind("XDG_RUNTIME_DIR=", 0) != 0) env.push_back(e);
  }
  env.push_back("XDG_RUNTIME_DIR=" + deep.string());
  auto r = it::run({PW_BIN, "demo-llm", "--", "/bin/sh", "-c", "sleep 0.5; echo ran-to-the-end"}, env, "", 20);
  CHECK(r.rc != 0);
  CHECK(r.out.find("ran-to-the-end") == std::string::npos);
  INFO(r.err);
  CHECK(r.err.find("socket path too long") != std::string::npos);
  CHECK(it::pids_with("__supervise demo-llm made").empty());
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
