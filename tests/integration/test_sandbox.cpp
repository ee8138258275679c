// What a session can read, write, see and call, asked from inside real sessions of both
// postures of the same project (profiles written by `pw new` from the shipped templates).
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <sstream>

#include "harness.hpp"

namespace fs = std::filesystem;
using it::World;

namespace {

const char* kPostures[] = {"demo", "demo-llm"};

bool not_ok(const std::string& r) { return r.rfind("OK", 0) != 0 && r.rfind("PW-FAILED", 0) != 0; }

}  // namespace

TEST_CASE("home credentials are hidden in both postures", "[sandbox]") {
  auto& w = World::get();
  // The agent posture hides the whole home; the human one hides cloud credentials.
  CHECK(w.probe("demo-llm", {"read", (w.home / ".ssh/id_ed25519").string()}) == "ENOENT");
  CHECK(w.probe("demo-llm", {"read", (w.home / ".aws/credentials").string()}) == "ENOENT");
  CHECK(w.probe("demo-llm", {"read", (w.home / ".bashrc").string()}) == "ENOENT");
  CHECK(w.probe("demo", {"read", (w.home / ".aws/credentials").string()}) == "ENOENT");
  // Granted to the human posture (whitelist "~"): readable, so the check above is not vacuous.
  CHECK(w.probe("demo", {"read", (w.home / ".ssh/id_ed25519").string()}) == "OK");
  CHECK(w.probe("demo", {"read", (w.home / ".bashrc").string()}) == "OK");
}

TEST_CASE("another project is invisible", "[sandbox]") {
  auto& w = World::get();
  for (const char* p : kPostures) {
    INFO(p);
    CHECK(w.probe(p, {"read", (w.other / "secret.txt").string()}) == "ENOENT");
    CHECK(w.probe(p, {"read", (w.project / "README").string()}) == "OK");
  }
}

TEST_CASE("pw's config and runtime dirs are hidden even under a whitelisted home", "[sandbox]") {
  auto& w = World::get();
  for (const char* p : kPostures) {
    INFO(p);
    CHECK(w.probe(p, {"read", (w.config / "pw/demo/profile.toml").string()}) == "ENOENT");
    // Absent, or an empty read-only dir where a bound parent shows its name; the human
    // posture sees exactly one entry of the runtime dir: its own control socket.
    for (const auto& dir : {w.config / "pw", w.runtime / "pw", w.home / ".local/share/pw"}) {
      std::string r = w.probe(p, {"ls", dir.string()});
      if (dir == w.runtime / "pw" && std::string(p) == "demo") {
        CHECK(r == "OK n=1");
      } else {
        CHECK((r == "ENOENT" || r == "OK n=0"));
      }
    }
    CHECK(w.probe(p, {"read", (w.runtime / "pw" / "demo.lock").string()}) == "ENOENT");
  }
  // Control: the human posture sees the rest of ~/.config's parent (home is whitelisted).
  CHECK(w.probe("demo", {"ls", w.home.string()}).rfind("OK", 0) == 0);
}

TEST_CASE("the project is writable, the rest is not", "[sandbox]") {
  auto& w = World::get();
  for (const char* p : kPostures) {
    INFO(p);
    CHECK(w.probe(p, {"write", (w.project / "written-inside").string()}) == "OK");
    CHECK(w.probe(p, {"write", "/usr/pw-test-file"}) == "EROFS");
    CHECK(w.probe(p, {"write", "/etc/pw-test-file"}) == "EROFS");
    CHECK(w.probe(p, {"mkdir", "/pw-test-dir"}) == "EROFS");
  }
  // Home is read-only for the human posture: the file is the user's own, so only the mount
  // can refuse this.
  CHECK(w.probe("demo", {"write", (w.home / ".bashrc").string()}) == "EROFS");
  // The agent's home is a private tmpfs: writable, and the host's home is untouched.
  CHECK(w.probe("demo-llm", {"write", (w.home / "agent-scratch").string()}) == "OK");
  CHECK_FALSE(fs::exists(w.home / "agent-scratch"));
}

TEST_CASE("agent posture keeps git hooks and config read-only", "[sandbox]") {
  auto& w = World::get();
  CHECK(w.probe("demo-llm", {"write", (w.project / ".git/hooks/pre-commit").string()}) == "EROFS");
  CHECK(w.probe("demo-llm", {"write", (w.project / ".git/config").string()}) == "EROFS");
  CHECK(w.probe("demo", {"write", (w.project / ".git/hooks/pre-commit").string()}) == "OK");
}

TEST_CASE("agent posture keeps a worktree's .git file read-only", "[sandbox]") {
  auto& w = World::get();
  // A git worktree (or a submodule checkout): `.git` is a file naming the git dir, which
  // an agent could otherwise point at a config of its own for the human posture's git.
  const fs::path wt = w.home / "wt-project";
  fs::create_directories(wt);
  it::write_file(wt / ".git", "gitdir: /nonexistent/.git/worktrees/wt\n", 0644);
  fs::copy_file(w.probe_bin, wt / "probe", fs::copy_options::overwrite_existing);
  w.write_profile("wt-llm", "[project]\ndir = \"" + wt.string() + "\"\nposture = \"agent\"\n");
  auto probe = [&](const std::string& what) {
    auto r = w.pw({"wt-llm", "--", (wt / "probe").string(), what, (wt / ".git").string()});
    INFO(r.err);
    return r.out.substr(0, r.out.find('\n'));
  };
  CHECK(probe("write") == "EROFS");
  CHECK(w.pw({"wt-llm", "--", "/bin/rm", "-f", (wt / ".git").string()}).rc != 0);
  CHECK(w.pw({"wt-llm", "--", "/bin/mv", (wt / "probe").string(), (wt / ".git").string()}).rc != 0);
  CHECK(it::read_file(wt / ".git") == "gitdir: /nonexistent/.git/worktrees/wt\n");
  // The project beside it stays writable.
  auto r = w.pw({"wt-llm", "--", (wt / "probe").string(), "write", (wt / "notes").string()});
  CHECK(r.out == "OK\n");
}

TEST_CASE("/tmp is private to the workspace", "[sandbox]") {
  auto& w = World::get();
  std::string marker = "/tmp/pw-host-marker-" + std::to_string(::getpid());
  it::write_file(marker, "host\n");
  for (const char* p : kPostures) {
    INFO(p);
    CHECK(w.probe(p, {"read", marker}) == "ENOENT");
    std::string inside = "/tmp/pw-inside-" + std::to_string(::getpid()) + "-" + p;
    CHECK(w.probe(p, {"write", inside}) == "OK");
    CHECK_FALSE(fs::exists(inside));
  }
  fs::remove(marker);
}

TEST_CASE("host processes are invisible", "[sandbox]") {
  auto& w = World::get();
  for (const char* p : kPostures) {
    INFO(p);
    std::string r = w.probe(p, {"pidcount"});
    REQUIRE(r.rfind("OK n=", 0) == 0);
    // pid 1 (pw's init) and the probe; nothing of the host.
    CHECK(std::stoi(r.substr(5)) <= 3);
    CHECK(w.probe(p, {"pid"}) != "OK 1");
    CHECK(w.probe(p, {"ptrace-pid", std::to_string(::getpid())}) != "OK");
  }
}

TEST_CASE("sessions run as the user with no capabilities", "[sandbox]") {
  auto& w = World::get();
  for (const char* p : kPostures) {
    INFO(p);
    CHECK(w.probe(p, {"uid"}) == "OK uid=" + std::to_string(::getuid()) + " gid=" +
                                     std::to_string(::getgid()) + " euid=" + std::to_string(::getuid()));
    CHECK(w.probe(p, {"caps"}) == "OK eff=0000000000000000 prm=0000000000000000 bnd=0000000000000000");
    // Even with CAP_SYS_ADMIN gone, the mount syscall is refused before it gets that far
    // (agent) or by the kernel (human): masks cannot be unmounted.
    CHECK(not_ok(w.probe(p, {"umount", (w.project).string()})));
  }
}

TEST_CASE("the agent posture's seccomp wall denies the dangerous syscalls", "[sandbox][seccomp]") {
  auto& w = World::get();
  for (const char* op : {"ptrace", "mount", "keyctl", "bpf", "userns", "io_uring", "perf"}) {
    INFO(op);
    CHECK(w.probe("demo-llm", {op}) == "EPERM");
  }
  // Non-native ABIs are refused outright (the process dies or gets an error, never runs it).
  CHECK(w.probe("demo-llm", {"x32"}) != "OK");
  CHECK(w.probe("demo-llm", {"i386"}) != "OK");
  // The human posture's lighter list: keyrings are denied, tracing own children is not.
  CHECK(w.probe("demo", {"keyctl"}) == "EPERM");
  CHECK(w.probe("demo", {"ptrace"}) == "OK");
}

TEST_CASE("environment: clean for the agent, agent state in the project", "[sandbox]") {
  auto& w = World::get();
  CHECK(w.probe("demo-llm", {"env", "TEST_SECRET_TOKEN"}) == "UNSET");
  CHECK(w.probe("demo", {"env", "TEST_SECRET_TOKEN"}) == "OK leaked-if-you-see-this");
  auto r = w.pw({"demo-llm", "--", w.probe_bin.string(), "envdump"});
  REQUIRE(r.rc == 0);
  std::string allowed = " PATH HOME USER SHELL TERM LANG PW_PROFILE PW_POSTURE PW_PROJECT_DIR "
                        "CLAUDE_CONFIG_DIR CODEX_HOME ";
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);
  CHECK(line == "OK");
  int count = 0;
  while (std::getline(lines, line)) {
    INFO(line);
    CHECK(allowed.find(" " + line + " ") != std::string::npos);
    ++count;
  }
  CHECK(count >= 6);
  std::string cfg = w.probe("demo-llm", {"env", "CLAUDE_CONFIG_DIR"});
  REQUIRE(cfg.rfind("OK " + w.project.string() + "/", 0) == 0);
  fs::path state = cfg.substr(3);
  CHECK(fs::is_directory(state));
  CHECK(w.probe("demo-llm", {"write", (state / "settings.json").string()}) == "OK");
  CHECK(w.probe("demo-llm", {"env", "PW_POSTURE"}) == "OK agent");
  CHECK(w.probe("demo", {"env", "PW_POSTURE"}) == "OK human");
}

TEST_CASE("exit status and signals pass through", "[sandbox]") {
  auto& w = World::get();
  for (const char* p : kPostures) {
    INFO(p);
    CHECK(w.pw({p, "--", w.probe_bin.string(), "exit", "42"}).rc == 42);
    CHECK(w.pw({p, "--", w.probe_bin.string(), "kill-self", "TERM"}).rc == 128 + SIGTERM);
    CHECK(w.pw({p, "--", w.probe_bin.string(), "kill-self", "KILL"}).rc == 128 + SIGKILL);
    auto r = w.pw({p, "--", "/nonexistent/cmd"});
    CHECK(r.rc == 127);
    CHECK(r.err.find("cannot run /nonexistent/cmd") != std::string::npos);
  }
  // stdin and stdout pass through.
  auto r = w.pw({"demo-llm", "--", "/bin/cat"}, "through the sandbox\n");
  CHECK(r.rc == 0);
  CHECK(r.out == "through the sandbox\n");
}

TEST_CASE("the agent posture has no network but loopback", "[sandbox][net]") {
  auto& w = World::get();
  CHECK(w.probe("demo-llm", {"connect", "127.0.0.1", "22"}) == "ECONNREFUSED");
  CHECK(w.probe("demo-llm", {"udp", "192.0.2.1", "53"}) == "ENETUNREACH");
  // vsock ignores network namespaces (a VM guest's line to its host): refused by seccomp,
  // whether or not this machine has it (here, outside, it would be OK or EAFNOSUPPORT).
  CHECK(w.probe("demo-llm", {"vsock"}) == "EPERM");
}

TEST_CASE("masks hide files, dirs, sockets and fifos; symlinks keep their path", "[sandbox][plan]") {
  auto& w = World::get();
  fs::path proj = w.home / "projects" / "masks";
  fs::create_directories(proj / "secrets");
  it::write_file(proj / ".env", "API_KEY=hunter2\n");
  it::write_file(proj / "secrets" / "db.txt", "db-password\n");
  it::write_file(proj / "code.py", "print(1)\n");
  REQUIRE(::mkfifo((proj / "fifo").c_str(), 0600) == 0);
  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, (proj / "sock").c_str());
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  // A dotfile managed by symlink: ~/.toolrc -> ~/dotfiles/toolrc
  it::write_file(w.home / "dotfiles" / "toolrc", "setting=1\n");
  fs::create_symlink(w.home / "dotfiles" / "toolrc", w.home / ".toolrc");
  fs::create_directories(proj / ".probe");
  fs::copy_file(w.probe_bin, proj / ".probe" / "pw-probe");

  w.write_profile("masks-llm", "[project]\ndir = \"" + proj.string() +
                                   "\"\nposture = \"agent\"\nshell = \"/bin/sh\"\n"
                                   "[sandbox]\nclean_env = true\nblacklist = [\"~\"]\n"
                                   "whitelist = [\"~/.toolrc\"]\n"
                                   "mask = [\".env\", \"secrets\", \"fifo\", \"sock\"]\n");
  auto cat = [&](const fs::path& p) {
    return w.pw({"masks-llm", "--", "/bin/cat", p.string()});
  };
  auto r = cat(proj / ".env");
  CHECK(r.rc == 0);
  CHECK(r.out.empty());
  CHECK(cat(proj / "code.py").out == "print(1)\n");
  std::string probe = (proj / ".probe" / "pw-probe").string();
  auto probe_in = [&](std::vector<std::string> a) {
    a.insert(a.begin(), {"masks-llm", "--", probe});
    auto res = w.pw(a);
    return res.out.substr(0, res.out.find('\n'));
  };
  CHECK(probe_in({"read", (proj / "secrets" / "db.txt").string()}) == "ENOENT");
  CHECK(probe_in({"ls", (proj / "secrets").string()}) == "OK n=0");
  CHECK(probe_in({"write", (proj / ".env").string()}) == "EROFS");
  CHECK(probe_in({"write", (proj / "secrets" / "new").string()}) == "EROFS");
  // The socket and the fifo are now empty regular files: nothing to connect to or block on.
  for (const char* n : {"sock", "fifo"}) {
    auto st = w.pw({"masks-llm", "--", "/usr/bin/stat", "-c", "%F", (proj / n).string()});
    CHECK(st.out == "regular empty file\n");
  }
  CHECK(probe_in({"read", (proj / "fifo").string()}) == "OK");
  // The whitelisted symlink appears at its own path, and its target is readable (read-only).
  CHECK(cat(w.home / ".toolrc").out == "setting=1\n");
  CHECK(probe_in({"stat", (w.home / ".toolrc").string()}) == "OK");
  CHECK(probe_in({"write", (w.home / "dotfiles" / "toolrc").string()}) == "EROFS");
  CHECK(probe_in({"read", (w.home / ".ssh" / "id_ed25519").string()}) == "ENOENT");
  ::close(s);
}

TEST_CASE("bad profiles start nothing and say where", "[sandbox][profile]") {
  auto& w = World::get();
  w.write_profile("broken", "[project]\ndir = \"" + w.project.string() +
                                "\"\n[sandbox]\nblaklist = [\"~\"]\n");
  auto r = w.pw({"broken", "--", "/bin/true"});
  CHECK(r.rc != 0);
  CHECK(r.err.find("profile.toml:4:1") != std::string::npos);
  CHECK(r.err.find("did you mean 'blacklist'") != std::string::npos);
  // Said once: the supervisor started beside the client (a cold start's head start) reads
  // the same file, fails the same way, and leaves the reporting to the client.
  CHECK(r.err.find("did you mean 'blacklist'") == r.err.rfind("did you mean 'blacklist'"));
  CHECK(r.err.find("workspace broken") == std::string::npos);
  CHECK_FALSE(fs::exists(w.runtime / "pw" / "broken.sock"));
  // And it is gone at once: nothing holds the workspace's lock.
  CHECK(it::wait_for(
      [&] {
        int fd = ::open((w.runtime / "pw" / "broken.lock").c_str(), O_RDWR | O_CLOEXEC);
        if (fd < 0) return errno == ENOENT;
        const bool free = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
        ::close(fd);
        return free;
      },
      2000));
  r = w.pw({"nonexistent-profile"});
  CHECK(r.rc != 0);
  CHECK(r.err.find("no profile") != std::string::npos);
}

TEST_CASE("a start the client refuses leaves no workspace behind", "[sandbox][profile]") {
  auto& w = World::get();
  // A profile that loads (so the supervisor, started beside the client, gets ready) and that
  // the client then refuses: the supervisor must end with it, sockets and lock, not wait
  // for someone to join a workspace built from a refused profile.
  const std::string head = "[project]\ndir = \"" + w.project.string() + "\"\nshell = \"/bin/sh\"\n";
  w.write_profile("refused", head + "[sandbox]\npid = false\n");
  const fs::path lock = w.runtime / "pw" / "refused.lock", sock = w.runtime / "pw" / "refused.sock";
  auto lock_free = [&] {
    int fd = ::open(lock.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT;
    const bool free = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    ::close(fd);
    return free;
  };
  for (int round = 0; round < 3; ++round) {
    auto r = w.pw({"refused", "--", "/bin/true"});
    CHECK(r.rc != 0);
    CHECK(r.err.find("sandbox.pid = false") != std::string::npos);
    CHECK(it::wait_for(lock_free, 2000));
    CHECK_FALSE(fs::exists(sock));
  }
  // Fixed, it starts a workspace of its own, with the pid namespace it asks for.
  w.write_profile("refused", head);
  auto r = w.pw({"refused", "--", "/bin/sh", "-c", "echo $$"});
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(r.out == "2\n");
}

TEST_CASE("mounts below a read-only bind are read-only too", "[sandbox][plan]") {
  auto& w = World::get();
  // A tmpfs mounted under the (read-only, for the human posture) home, as a FUSE mount or a
  // second disk would be. It lives in a user+mount namespace made for this test; pw runs in
  // a nested user namespace there that maps back to our uid.
  fs::path sub = w.home / "submount";
  fs::create_directories(sub);
  std::string uid = std::to_string(::getuid()), gid = std::to_string(::getgid());
  std::string script =
      "mount -t tmpfs -o mode=0777 pw-test-submount '" + sub.string() + "' || exit 99; "
      "exec unshare --user --map-user=" + uid + " --map-group=" + gid + " -- '" + PW_BIN +
      "' demo -- '" + w.probe_bin.string() + "' write '" + (sub / "x").string() + "'";
  auto r = it::run({"/usr/bin/unshare", "--user", "--map-root-user", "--mount", "--", "/bin/sh",
                    "-c", script},
                   w.env);
  if (!it::require(r.rc != 99, "mounting a tmpfs in a user namespace: " + r.err)) return;
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(r.out == "EROFS\n");
  // Control: the same submount through a writable rule is writable, so EROFS above is the
  // recursive read-only attribute, not the tmpfs.
  w.write_profile("submount", "[project]\ndir = \"" + sub.string() +
                                  "\"\nshell = \"/bin/sh\"\n[sandbox]\nwhitelist = [\"~\"]\n");
  std::string script2 =
      "mount -t tmpfs -o mode=0777 pw-test-submount '" + sub.string() + "' || exit 99; "
      "cp '" + w.probe_bin.string() + "' '" + sub.string() + "/probe'; "
      "exec unshare --user --map-user=" + uid + " --map-group=" + gid + " -- '" + PW_BIN +
      "' submount -- '" + (sub / "probe").string() + "' write '" + (sub / "x").string() + "'";
  r = it::run({"/usr/bin/unshare", "--user", "--map-root-user", "--mount", "--", "/bin/sh", "-c",
               script2},
              w.env);
  INFO(r.err);
  CHECK(r.out == "OK\n");
}

TEST_CASE("the control socket is out of every session's reach", "[sandbox]") {
  auto& w = World::get();
  // Its own workspace's socket (the session is running, so the socket exists on the host),
  // and the human posture's.
  for (const char* s : {"demo-llm", "demo"}) {
    CHECK(w.probe("demo-llm", {"stat", (w.runtime / "pw" / (std::string(s) + ".sock")).string()}) == "ENOENT");
  }
  // Nor from the human posture: it hands out the workspace's namespaces and staging dir.
  // (A profile with a vault gets its vault-only socket instead: test_vault.cpp.)
  CHECK(w.probe("demo", {"stat", (w.runtime / "pw" / "demo.sock").string()}) == "ENOENT");
  pid_t bg = it::spawn_bg({PW_BIN, "other", "--", "/bin/sleep", "5"}, w.env);
  REQUIRE(it::wait_for([&] { return fs::exists(w.runtime / "pw" / "other.sock"); }, 10000));
  CHECK(w.probe("demo", {"stat", (w.runtime / "pw" / "other.sock").string()}) == "ENOENT");
  ::kill(bg, SIGTERM);
  ::waitpid(bg, nullptr, 0);
}

TEST_CASE("[env] values reach the session's environment and no process's argv", "[sandbox]") {
  auto& w = World::get();
  std::string secret = "s3cr3t-" + std::to_string(::getpid());
  w.write_profile("envtest-llm", "[project]\ndir = \"" + w.project.string() +
                                     "\"\nposture = \"agent\"\nshell = \"/bin/sh\"\n"
                                     "[sandbox]\nclean_env = true\n[env]\nAPI_TOKEN = \"" + secret + "\"\n");
  fs::path flag = w.project / ("envtest-" + std::to_string(::getpid()));
  fs::path expect = w.project / ("envtest-expect-" + std::to_string(::getpid()));
  it::write_file(expect, secret);
  // The session compares against a file, so the secret is in no command line of the test's own.
  pid_t bg = it::spawn_bg({PW_BIN, "envtest-llm", "--", "/bin/sh", "-c",
                           "test \"$API_TOKEN\" = \"$(cat " + expect.string() + ")\" && touch " + flag.string() +
                               "; sleep 5"},
                          w.env);
  REQUIRE(it::wait_for([&] { return fs::exists(flag); }, 10000));
  // Every process of the user, pw's and the session's included, by command line.
  CHECK(it::pids_with(secret).empty());
  ::kill(bg, SIGTERM);
  ::waitpid(bg, nullptr, 0);
}

TEST_CASE("walls: user namespaces and io_uring only when the profile allows them", "[sandbox][seccomp]") {
  auto& w = World::get();
  w.write_profile("walls-llm", "[project]\ndir = \"" + w.project.string() +
                                   "\"\nposture = \"agent\"\nshell = \"/bin/sh\"\n"
                                   "[walls]\nallow_userns = true\nallow_io_uring = true\n");
  CHECK(w.probe("walls-llm", {"userns"}) == "OK");
  CHECK(w.probe("walls-llm", {"io_uring"}) != "EPERM");
  CHECK(w.probe("walls-llm", {"keyctl"}) == "EPERM");
  w.write_profile("nowall-llm", "[project]\ndir = \"" + w.project.string() +
                                    "\"\nposture = \"agent\"\nshell = \"/bin/sh\"\n"
                                    "[walls]\nseccomp = \"off\"\n");
  CHECK(w.probe("nowall-llm", {"keyctl"}) != "EPERM");
}

TEST_CASE("agent home as a persistent dir in the project", "[sandbox]") {
  auto& w = World::get();
  w.write_profile("homedir-llm", "[project]\ndir = \"" + w.project.string() +
                                     "\"\nposture = \"agent\"\nshell = \"/bin/sh\"\n"
                                     "[agent]\nhome = \".agent-home\"\n");
  CHECK(w.pw({"homedir-llm", "--", "/bin/sh", "-c", "echo hist > ~/.agent-history"}).rc == 0);
  CHECK(fs::exists(w.project / ".agent-home" / ".agent-history"));
  CHECK_FALSE(fs::exists(w.home / ".agent-history"));
  // A second session finds it: the home persists.
  CHECK(w.probe("homedir-llm", {"stat", (w.home / ".agent-history").string()}) == "OK");
  CHECK(w.probe("homedir-llm", {"read", (w.home / ".ssh" / "id_ed25519").string()}) == "ENOENT");
}

TEST_CASE("the user's terminal has a name inside, and only it comes in", "[sandbox]") {
  auto& w = World::get();
  for (const char* p : kPostures) {
    INFO(p);
    // tty(1) names the terminal; the host's other ptys stay out of the private devpts.
    it::Pty t({PW_BIN, p, "--", "/bin/sh", "-c", "tty; echo pts=$(ls /dev/pts | tr '\\n' ' ')"}, w.env);
    CHECK(t.expect("/dev/console"));
    CHECK(t.expect("pts=ptmx"));
    CHECK(t.wait() == 0);
  }
  // Without a terminal there is nothing to name.
  auto r = w.pw({"demo", "--", "/bin/sh", "-c", "tty; test -e /dev/console && echo console"});
  CHECK(r.out == "not a tty\n");
}

TEST_CASE("pw's state dir (every workspace's network log) is hidden in both postures", "[sandbox]") {
  auto& w = World::get();
  fs::path log = w.home / ".local/state/pw/other-llm/net.log";
  fs::create_directories(log.parent_path());
  it::write_file(log, "2026-01-01T00:00:00Z allow \"secret-host.example\":443\n");
  for (const char* p : kPostures) {
    INFO(p);
    std::string r = w.probe(p, {"read", log.string()});
    CHECK((r == "ENOENT" || r == "EACCES"));
  }
  // Control: the rest of ~/.local stays visible to the human posture (home whitelisted).
  it::write_file(w.home / ".local/state/other-tool.txt", "visible\n");
  CHECK(w.probe("demo", {"read", (w.home / ".local/state/other-tool.txt").string()}) == "OK");
}
