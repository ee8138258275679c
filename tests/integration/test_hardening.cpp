// Symlinks (and look-alikes) planted where pw looks do not redirect it: in the runtime dir
// (the staging dir, the control socket) and in a blacklisted path's place. Each test
// asserts where data went or who was contacted, not only what pw printed.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>

#include "harness.hpp"

namespace fs = std::filesystem;
using it::World;

namespace {

// A session of `profile` that keeps its workspace alive until stop().
struct Sleeper {
  pid_t pid = -1;
  Sleeper(const World& w, const std::string& profile, const std::string& tag) {
    fs::path flag = w.project / (tag + "-" + std::to_string(::getpid()) + ".ready");
    fs::remove(flag);
    pid = it::spawn_bg({PW_BIN, profile, "--", "/bin/sh", "-c",
                        "touch " + flag.string() + "; sleep 298." + std::to_string(::getpid())},
                       w.env);
    REQUIRE(it::wait_for([&] { return fs::exists(flag); }, 10000));
    fs::remove(flag);
  }
  void stop() {
    if (pid <= 0) return;
    ::kill(pid, SIGTERM);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
  }
  ~Sleeper() { stop(); }
};

// A unix socket someone else listens on: did anybody connect?
struct Listener {
  int fd = -1;
  fs::path path;
  explicit Listener(fs::path p) : path(std::move(p)) {
    fs::remove(path);
    fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    REQUIRE(path.string().size() < sizeof addr.sun_path);
    std::strcpy(addr.sun_path, path.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 8) == 0);
  }
  bool contacted() const {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) {
      ::close(c);
      return true;
    }
    return errno != EAGAIN;
  }
  ~Listener() {
    ::close(fd);
    fs::remove(path);
  }
};

fs::path runtime_pw(const World& w) {
  fs::path d = w.runtime / "pw";
  fs::create_directories(d);
  ::chmod(d.c_str(), 0700);
  return d;
}

// An attacker's dir laid out like a staging dir, so nothing fails for lack of a subdir.
fs::path decoy(const World& w, const std::string& name) {
  fs::path d = w.home / name;
  fs::remove_all(d);
  for (const char* sub : {"tmp", "home", "root"}) fs::create_directories(d / sub);
  ::chmod(d.c_str(), 0700);
  ::chmod((d / "tmp").c_str(), 01777);
  return d;
}

std::size_t entries(const fs::path& dir) {
  std::size_t n = 0;
  for (auto it = fs::directory_iterator(dir); it != fs::directory_iterator(); ++it) ++n;
  return n;
}

}  // namespace

TEST_CASE("hardening: a symlink in place of the staging dir is refused, its target untouched",
          "[hardening]") {
  auto& w = World::get();
  const fs::path ws = runtime_pw(w) / "demo.ws";
  const fs::path attacker = decoy(w, "attacker-stage");
  fs::remove(ws);  // an earlier workspace's (empty) dir
  fs::create_directory_symlink(attacker, ws);

  auto r = w.pw({"demo", "--", "/bin/sh", "-c", "echo planted > /tmp/planted"});
  INFO(r.out << r.err);
  CHECK(r.rc != 0);
  CHECK(r.err.find(ws.string() + " is a symlink") != std::string::npos);
  // Nothing was made, mounted or written through the link.
  CHECK(fs::is_symlink(ws));
  CHECK(entries(attacker) == 3);
  CHECK(fs::is_empty(attacker / "tmp"));
  CHECK(fs::is_empty(attacker / "root"));

  fs::remove(ws);
  auto ok = w.pw({"demo", "--", "/bin/sh", "-c", "echo fine > /tmp/x && cat /tmp/x"});
  CHECK(ok.rc == 0);
  CHECK(ok.out == "fine\n");
  fs::remove_all(attacker);
}

TEST_CASE("hardening: a running workspace's staging dir, swapped, does not get the next session",
          "[hardening]") {
  auto& w = World::get();
  const fs::path ws = runtime_pw(w) / "demo.ws";
  for (const bool as_symlink : {false, true}) {
    INFO((as_symlink ? "replaced by a symlink" : "replaced by a directory"));
    Sleeper first(w, "demo", "stage-swap");
    // The live stage is a mount in the workspace's namespace only; on the host it is a
    // plain dir, which can be renamed away and replaced.
    const fs::path moved = ws.string() + ".moved";
    fs::remove_all(moved);
    fs::rename(ws, moved);
    fs::path target;
    if (as_symlink) {
      target = decoy(w, "attacker-live-stage");
      fs::create_directory_symlink(target, ws);
    } else {
      target = ws;
      fs::create_directories(ws);
      for (const char* sub : {"tmp", "home", "root"}) fs::create_directories(ws / sub);
      ::chmod(ws.c_str(), 0700);
      ::chmod((ws / "tmp").c_str(), 01777);
    }
    auto r = w.pw({"demo", "--", "/bin/sh", "-c", "echo planted > /tmp/planted"});
    INFO(r.out << r.err);
    CHECK(r.rc != 0);
    CHECK(r.err.find("is no longer the supervisor's") != std::string::npos);
    // The session's /tmp did not land in the replacement, where its owner would read it.
    CHECK_FALSE(fs::exists(target / "tmp" / "planted"));
    CHECK(fs::is_empty(target / "tmp"));
    CHECK(fs::is_empty(target / "root"));

    first.stop();
    if (as_symlink) {
      fs::remove(ws);
      fs::remove_all(target);
    } else {
      fs::remove_all(ws);
    }
    REQUIRE(it::wait_for([&] { return !fs::exists(runtime_pw(w) / "demo.sock"); }));
    fs::remove_all(moved);
  }
  // A fresh workspace works again.
  CHECK(w.pw({"demo", "--", "/bin/true"}).rc == 0);
}

TEST_CASE("hardening: a symlink in place of the control socket is never followed", "[hardening]") {
  auto& w = World::get();
  const fs::path sock = runtime_pw(w) / "demo.sock";
  Listener attacker(w.home / "attacker.sock");

  SECTION("while the workspace runs: the client refuses it") {
    Sleeper first(w, "demo", "sock-swap");
    const fs::path real = sock.string() + ".real";
    fs::rename(sock, real);
    fs::create_symlink(attacker.path, sock);
    // Followed, the link would hand the session's request (and our trust) to the listener,
    // which never answers: pw would hang there. It must refuse at once.
    auto r = w.pw({"demo", "--", "/bin/true"}, "", 20);
    INFO(r.out << r.err);
    CHECK(r.rc == 1);
    CHECK(r.err.find(sock.string() + " is a symlink, not pw's control socket") != std::string::npos);
    auto ps = w.pw({"ps"});
    CHECK(ps.rc == 0);
    auto vs = w.pw({"vault", "status", "demo"}, "", 20);
    CHECK(vs.rc != 0);
    CHECK_FALSE(attacker.contacted());
    fs::remove(sock);
    fs::rename(real, sock);
    // Restored, the same workspace is joined again.
    CHECK(w.pw({"demo", "--", "/bin/true"}).rc == 0);
  }
  SECTION("planted before the workspace starts: the new supervisor replaces it") {
    REQUIRE(it::wait_for([&] { return !fs::exists(sock); }));
    fs::create_symlink(attacker.path, sock);
    auto r = w.pw({"demo", "--", "/bin/sh", "-c", "echo inside"}, "", 20);
    INFO(r.out << r.err);
    CHECK(r.rc == 0);
    CHECK(r.out == "inside\n");
    CHECK_FALSE(attacker.contacted());
    // The listener's socket itself was neither removed nor chmod-ed through the link.
    struct stat st {};
    REQUIRE(::lstat(attacker.path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
  }
}

TEST_CASE("hardening: a blacklisted ~/.ssh swapped for a symlink after explain hides the link's target",
          "[hardening]") {
  auto& w = World::get();
  const fs::path ssh = w.home / ".ssh";
  const fs::path other = w.home / ".gnupg-test";
  it::write_file(other / "secring", "GPG-SECRET\n", 0600);
  w.write_profile("swap", "[project]\ndir = \"" + w.project.string() +
                              "\"\nshell = \"/bin/sh\"\n[sandbox]\nwhitelist = [\"~\"]\n"
                              "blacklist = [\"~/.ssh\"]\n");
  auto ex = w.pw({"explain", "swap", ssh.string()});
  CHECK(ex.out.find("hidden") != std::string::npos);
  // Before: the other secret dir is visible (home is whitelisted), ~/.ssh is not.
  CHECK(w.probe("swap", {"read", (other / "secring").string()}) == "OK");
  CHECK(w.probe("swap", {"read", (ssh / "id_ed25519").string()}) == "ENOENT");

  const fs::path orig = w.home / ".ssh.orig";
  fs::rename(ssh, orig);
  fs::create_directory_symlink(other, ssh);
  // Through the link and at its own path, the target is what the blacklist now hides.
  CHECK(w.probe("swap", {"read", (ssh / "secring").string()}) == "ENOENT");
  CHECK(w.probe("swap", {"read", (other / "secring").string()}) == "ENOENT");
  auto cat = w.pw({"swap", "--", "/bin/cat", (ssh / "secring").string()});
  CHECK(cat.rc != 0);
  CHECK(cat.out.find("GPG-SECRET") == std::string::npos);
  auto ex2 = w.pw({"explain", "swap", ssh.string()});
  CHECK(ex2.out.find("hidden") != std::string::npos);
  CHECK(ex2.out.find(other.string()) != std::string::npos);

  fs::remove(ssh);
  fs::rename(orig, ssh);
  fs::remove_all(other);
}

TEST_CASE("hardening: no descriptor of pw's reaches a session's command", "[hardening]") {
  auto& w = World::get();
  // ls lists the fds it has: what its caller passed it, and its own handle on the dir.
  // Started through pw in the human posture it must list exactly the same: any other number
  // is a descriptor pw (client, session init) opened without O_CLOEXEC. The agent posture
  // passes on stdin, stdout and stderr only.
  const auto baseline = it::run({"/bin/ls", "/proc/self/fd"}, w.env);
  REQUIRE(baseline.rc == 0);
  REQUIRE(baseline.out.find("0\n1\n") == 0);
  auto r = w.pw({"demo", "--", "/bin/ls", "/proc/self/fd"});
  CHECK(r.rc == 0);
  CHECK(r.out == baseline.out);
  r = w.pw({"demo-llm", "--", "/bin/ls", "/proc/self/fd"});
  CHECK(r.rc == 0);
  CHECK(r.out == "0\n1\n2\n3\n");
  // Joining a running workspace takes the same path plus the received namespace fds.
  Sleeper first(w, "demo", "fds");
  r = w.pw({"demo", "--", "/bin/ls", "/proc/self/fd"});
  CHECK(r.out == baseline.out);
}

TEST_CASE("hardening: a directory descriptor the caller leaks does not lead the agent out", "[hardening]") {
  auto& w = World::get();
  // A careless parent leaves a descriptor of the home dir open across its exec of pw: in
  // the agent posture the command must not be able to read the credentials through it.
  const fs::path cred = w.home / ".ssh" / "id_ed25519";
  REQUIRE(fs::exists(cred));
  int dir = ::open(w.home.c_str(), O_RDONLY | O_DIRECTORY);  // no O_CLOEXEC: leaked on purpose
  REQUIRE(dir >= 0);
  const std::string via = "/proc/self/fd/" + std::to_string(dir) + "/.ssh/id_ed25519";
  const std::string script = "[ -e /proc/self/fd/" + std::to_string(dir) + " ] && echo HAS || echo NONE; cat " +
                             via + " >/dev/null 2>&1 && echo READ || echo DENIED";
  auto agent = w.pw({"demo-llm", "--", "/bin/sh", "-c", script});
  auto human = w.pw({"demo", "--", "/bin/sh", "-c", "ls /proc/self/fd/" + std::to_string(dir) + "/ >/dev/null && echo OPEN"});
  ::close(dir);
  CHECK(agent.rc == 0);
  CHECK(agent.out == "NONE\nDENIED\n");
  // The human posture passes the caller's descriptors on, as a shell would.
  CHECK(human.out == "OPEN\n");
}

TEST_CASE("hardening: the session's pid 1 shows the command nothing of the caller", "[hardening]") {
  auto& w = World::get();
  // clean_env keeps a secret of the caller's environment from the agent; the session's
  // pid 1 (a fork of pw, so holding that environment and the workspace's descriptors)
  // must not hand it over through /proc.
  std::vector<std::string> env = w.env;
  env.push_back("PW_TEST_CALLER_SECRET=s3cr3t-" + std::to_string(::getpid()));
  const std::string script =
      "env | grep -c PW_TEST_CALLER_SECRET; "
      "for f in /proc/[0-9]*/environ; do cat \"$f\" 2>/dev/null; done | tr '\\0' '\\n' | grep -c s3cr3t-; "
      "ls /proc/1/fd >/dev/null 2>&1 && echo FD-OPEN || echo FD-CLOSED; "
      "ls /proc/1/root/ >/dev/null 2>&1 && echo ROOT-OPEN || echo ROOT-CLOSED";
  auto r = it::run({PW_BIN, "demo-llm", "--", "/bin/sh", "-c", script}, env);
  INFO(r.err);
  CHECK(r.out == "0\n0\nFD-CLOSED\nROOT-CLOSED\n");
}

TEST_CASE("hardening: a link an agent plants at a guarded path is refused at the next start", "[hardening]") {
  auto& w = World::get();
  // Session 1 plants `.bashrc -> ~/.ssh`; following it, session 2's read-only guard on
  // .bashrc would be a bind of ~/.ssh. pw must refuse to start, naming the link.
  const fs::path link = w.project / ".bashrc";
  fs::remove(link);
  auto r = w.pw({"demo-llm", "--", "/bin/ln", "-s", (w.home / ".ssh").string(), link.string()});
  REQUIRE(r.rc == 0);
  REQUIRE(fs::is_symlink(link));
  r = w.pw({"demo-llm", "--", "/bin/cat", (w.home / ".ssh" / "id_ed25519").string()});
  CHECK(r.rc != 0);
  CHECK(r.out.empty());
  CHECK(r.err.find(link.string() + " is a symlink") != std::string::npos);
  // The explanation refuses it too, rather than show a plan with the bind.
  CHECK(w.pw({"explain", "demo-llm"}).rc != 0);
  fs::remove(link);
  CHECK(w.pw({"demo-llm", "--", "/bin/true"}).rc == 0);

  // `.git -> somewhere`: neither shown nor written to (pw creates .git/hooks when missing).
  const fs::path git = w.project / ".git", saved = w.project / ".git-saved";
  const fs::path elsewhere = w.home / "elsewhere";
  fs::create_directories(elsewhere);
  it::write_file(elsewhere / "config", "[core]\n");
  fs::rename(git, saved);
  fs::create_directory_symlink(elsewhere, git);
  r = w.pw({"demo-llm", "--", "/bin/cat", (elsewhere / "config").string()});
  CHECK(r.rc != 0);
  CHECK(r.err.find(git.string() + " is a symlink") != std::string::npos);
  CHECK_FALSE(fs::exists(elsewhere / "hooks"));
  fs::remove(git);
  fs::rename(saved, git);
  fs::remove_all(elsewhere);
}

TEST_CASE("hardening: the agent cannot move a guard away by renaming its parent", "[hardening]") {
  auto& w = World::get();
  // .git/hooks and .git/config are read-only binds; renaming .git would carry them off and
  // leave room for a writable .git. .git is pinned: the rename fails.
  auto r = w.pw({"demo-llm", "--", "/bin/sh", "-c",
                 "cd \"$PW_PROJECT_DIR\" && mv .git .git-moved && echo MOVED || echo REFUSED"});
  CHECK(r.out == "REFUSED\n");
  CHECK(fs::is_directory(w.project / ".git" / "hooks"));
  CHECK_FALSE(fs::exists(w.project / ".git-moved"));
  // The human posture keeps its own .git as it is.
  r = w.pw({"demo", "--", "/bin/sh", "-c", "cd \"$PW_PROJECT_DIR\" && mv .git .git-moved && mv .git-moved .git && echo MOVED"});
  CHECK(r.out == "MOVED\n");
}

TEST_CASE("hardening: the agent cannot remove or replace the vault's mountpoint", "[hardening]") {
  auto& w = World::get();
  // In the human workspace .vault is a mountpoint; in the agent's it is a plain dir, whose
  // rmdir would detach the vault in the human sessions (and a new dir would collect the
  // plaintext). The agent posture guards it.
  const fs::path mp = w.project / ".vault";
  fs::create_directories(mp);
  auto r = w.pw({"demo-llm", "--", "/bin/sh", "-c",
                 "cd \"$PW_PROJECT_DIR\"; rmdir .vault 2>/dev/null && echo REMOVED || echo KEPT; "
                 "mv .vault .vault-x 2>/dev/null && echo RENAMED || echo KEPT"});
  CHECK(r.out == "KEPT\nKEPT\n");
  CHECK(fs::is_directory(mp));
}
