// The vault in the human posture, as the unprivileged user with real namespaces and FUSE:
// plaintext only inside the workspace's human sessions, gone on lock and on teardown.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <chrono>
#include <thread>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "harness.hpp"

namespace fs = std::filesystem;
using it::World;

namespace {

const std::vector<std::string> kFastKdf = {"--kdf-ops", "1", "--kdf-mem-mib", "8"};

bool workspace_running(const World& w, const std::string& name) {
  auto r = w.pw({"ps"});
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + "  ", 0) == 0) return true;
  }
  return false;
}

// Pids of our processes named `comm` whose command line contains `needle`.
// Processes named `comm` whose command line holds `needle`, leaving out children they forked
// an instant ago (same name and command line until their exec: a shell's `sleep`, libfuse's
// helpers).
std::vector<pid_t> pids_of(const std::string& comm, const std::string& needle) {
  std::vector<pid_t> out;
  for (pid_t p : it::pids_with(needle)) {
    std::string c = it::read_file("/proc/" + std::to_string(p) + "/comm");
    if (c == comm + "\n") out.push_back(p);
  }
  auto parent = [](pid_t p) {
    std::string st = it::read_file("/proc/" + std::to_string(p) + "/stat");
    auto at = st.rfind(')');
    if (at == std::string::npos) return pid_t{0};
    std::string fields = st.substr(at + 2);  // "S PPID ..."
    return static_cast<pid_t>(std::atoi(fields.c_str() + fields.find(' ') + 1));
  };
  std::vector<pid_t> firsts;
  for (pid_t p : out) {
    if (std::find(out.begin(), out.end(), parent(p)) == out.end()) firsts.push_back(p);
  }
  return firsts;
}

// errno name of reading `p`, or "OK:<content>".
std::string try_read(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == EACCES ? "EACCES" : errno == ENOENT ? "ENOENT" : std::strerror(errno);
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  return n < 0 ? std::string(std::strerror(errno)) : "OK:" + std::string(buf, static_cast<size_t>(n));
}

// A human profile with its own vault; returns the passphrase file.
struct VaultWorld {
  const World& w = World::get();
  std::string name;
  fs::path project, cipherdir, mnt, pass;

  explicit VaultWorld(const std::string& n) : name(n) {
    project = w.home / "projects" / n;
    cipherdir = w.home / ".local/share/pw/vaults" / n;
    mnt = project / ".vault";
    pass = w.home / ("pass-" + n);
    fs::create_directories(project);
    it::write_file(pass, "correct horse " + n + "\n", 0600);
    auto r = w.pw({"new", n, "--dir", project.string(), "--shell", "/bin/sh"});
    INFO(r.err);
    REQUIRE(r.rc == 0);
    std::vector<std::string> args = {"vault", "init", n, "--passphrase-file", pass.string()};
    args.insert(args.end(), kFastKdf.begin(), kFastKdf.end());
    r = w.pw(args);
    INFO(r.err);
    REQUIRE(r.rc == 0);
  }
  ~VaultWorld() {
    // Stop whatever a failed test left running.
    std::error_code ec;
    it::write_file(project / ".stop", "");
    it::wait_for([&] { return !workspace_running(w, name); }, 10000);
    fs::remove(project / ".stop", ec);
  }

  // A session that lives until project/.stop exists; on project/.probe-N it writes what it
  // sees in the vault to project/.seen-N.
  pid_t long_session(const std::string& tag) const {
    std::string script = "cd " + project.string() + " && while [ ! -e .stop ]; do " +
                         "for t in .probe-*; do [ -e \"$t\" ] || continue; n=${t#.probe-}; " +
                         "rm -f \"$t\"; { ls -A .vault; cat .vault/* 2>/dev/null; } > .seen-$n.tmp; " +
                         "mv .seen-$n.tmp .seen-$n; done; sleep 0.05; done # " + tag;
    return it::spawn_bg({PW_BIN, name, "--", "/bin/sh", "-c", script}, w.env);
  }
  // Asks the long session what it sees in the vault now.
  std::string ask(const std::string& n) const {
    fs::path seen = project / (".seen-" + n);
    std::error_code ec;
    fs::remove(seen, ec);
    it::write_file(project / (".probe-" + n), "");
    if (!it::wait_for([&] { return fs::exists(seen); }, 10000)) return "NO ANSWER";
    return it::read_file(seen);
  }
  // pw-probe ARGS inside a session of `profile` (a copy of the probe in this project).
  std::string probe(const std::string& profile, const std::vector<std::string>& args) const {
    fs::path bin = project / ".probe" / "pw-probe";
    if (!fs::exists(bin)) {
      fs::create_directories(bin.parent_path());
      fs::copy_file(w.probe_bin, bin);
      ::chmod(bin.c_str(), 0755);
    }
    std::vector<std::string> a = {profile, "--", bin.string()};
    a.insert(a.end(), args.begin(), args.end());
    auto r = w.pw(a);
    if (r.rc != 0) return "PW-FAILED rc=" + std::to_string(r.rc) + ": " + r.err;
    return r.out.substr(0, r.out.find('\n'));
  }
  // This vault's server processes (forked from the supervisor: same command line).
  std::vector<pid_t> servers() const { return pids_of("pw-vault", "__supervise " + name + " "); }
  it::Result unlock() const { return w.pw({"vault", "unlock", name, "--passphrase-file", pass.string()}); }
  it::Result in_session(const std::string& sh) const {
    return w.pw({name, "--", "/bin/sh", "-c", "cd " + project.string() + " && " + sh});
  }
  void stop_all(pid_t bg) const {
    it::write_file(project / ".stop", "");
    int st;
    ::waitpid(bg, &st, 0);
    CHECK(it::wait_for([&] { return !workspace_running(w, name); }, 10000));
    std::error_code ec;
    fs::remove(project / ".stop", ec);
  }
};

}  // namespace

TEST_CASE("vault: unlock shares the plaintext among the workspace's sessions; lock removes it",
          "[vault]") {
  VaultWorld v("vone");
  auto& w = v.w;
  CHECK(fs::exists(v.cipherdir / "fusevault.conf"));
  // A second init changes nothing.
  auto again = w.pw({"vault", "init", v.name, "--passphrase-file", v.pass.string()});
  CHECK(again.rc != 0);
  CHECK(again.err.find("already exists") != std::string::npos);
  // Unlock needs a running workspace.
  auto early = v.unlock();
  CHECK(early.rc != 0);
  CHECK(early.err.find("not running") != std::string::npos);

  pid_t bg = v.long_session("vone-long");
  REQUIRE(it::wait_for([&] { return workspace_running(w, v.name); }, 10000));
  CHECK(w.pw({"vault", "status", v.name}).out.find("state:           locked") != std::string::npos);
  CHECK(v.ask("a") == "");
  // Locked, the mountpoint takes no writes: nothing lands in plaintext where the vault
  // will appear (and hide it).
  CHECK(v.in_session("echo x > .vault/early.txt 2>/dev/null && echo WROTE || echo REFUSED").out == "REFUSED\n");

  auto u = v.unlock();
  INFO(u.err);
  REQUIRE(u.rc == 0);
  CHECK(w.pw({"ps"}).out.find("vault unlocked") != std::string::npos);
  // Written in the long session (started before the unlock), read in a second one.
  CHECK(v.in_session("echo from-session-2 > .vault/two.txt").rc == 0);
  CHECK(v.ask("b") == "two.txt\nfrom-session-2\n");
  auto r = v.in_session("cat .vault/two.txt");
  CHECK(r.out == "from-session-2\n");
  auto st = w.pw({"vault", "status", v.name});
  CHECK(st.out.find("unlocked, seen by 1 session(s)") != std::string::npos);

  // The one socket a session reaches serves vault requests and nothing else: asked for a
  // session (the workspace's namespaces and staging dir, a way out of the view) or a
  // listing, it refuses and hands over no descriptor. The control socket is not there.
  const fs::path vsock = w.runtime / "pw" / (v.name + ".vault.sock");
  CHECK(v.in_session("echo $PW_CONTROL_SOCKET").out == vsock.string() + "\n");
  CHECK(v.probe(v.name, {"ctl", vsock.string(), "hello 3 session x"}) == "REPLY error fds=0");
  CHECK(v.probe(v.name, {"ctl", vsock.string(), "hello 3 ps"}) == "REPLY error fds=0");
  CHECK(v.probe(v.name, {"ctl", vsock.string(), "hello 3 vault status"}) == "REPLY ok fds=0");
  CHECK(v.probe(v.name, {"stat", (w.runtime / "pw" / (v.name + ".sock")).string()}) == "ENOENT");

  // Nothing outside the workspace sees it.
  CHECK(try_read(v.mnt / "two.txt") == "ENOENT");
  CHECK(fs::is_empty(v.mnt));
  CHECK(v.probe(v.name + "-llm", {"read", (v.mnt / "two.txt").string()}) == "ENOENT");
  CHECK(w.probe("demo", {"read", (v.mnt / "two.txt").string()}) == "ENOENT");
  // Through /proc/PID/root and /proc/PID/cwd of every process of the workspace: the
  // session's own processes show the project (so the path works) but not the vault.
  std::vector<pid_t> pids = it::pids_with("vone-long");
  for (pid_t p : v.servers()) pids.push_back(p);
  for (pid_t p : it::pids_with("__supervise vone")) pids.push_back(p);
  REQUIRE(pids.size() >= 3);
  REQUIRE(v.servers().size() == 1);
  int shown = 0;
  for (pid_t p : pids) {
    INFO("pid " << p);
    fs::path root = "/proc/" + std::to_string(p) + "/root";
    std::string readme = try_read(root / v.project.relative_path() / ".seen-a");
    if (readme.rfind("OK:", 0) == 0) ++shown;
    CHECK(try_read(root / v.mnt.relative_path() / "two.txt").rfind("OK:", 0) != 0);
  }
  CHECK(shown >= 1);  // at least the session's shell: the /proc path itself is usable
  for (pid_t p : pids_of("sh", "vone-long")) {
    CHECK(try_read("/proc/" + std::to_string(p) + "/cwd/.vault/two.txt") == "EACCES");
  }

  // A file still open for writing when the lock comes: what was written is kept (it sits
  // in the kernel's writeback cache until the file is closed or synced).
  pid_t writer = it::spawn_bg(
      {PW_BIN, v.name, "--", "/usr/bin/python3", "-c",
       "import os, time\n"
       "os.chdir('" + v.project.string() + "')\n"
       "fd = os.open('.vault/open.txt', os.O_WRONLY | os.O_CREAT, 0o600)\n"
       "os.write(fd, b'held-open' * 4000)\n"
       "open('open-written', 'w').close()\n"
       "time.sleep(30)\n"},
      w.env);
  // (Not read back meanwhile: a reader's close would flush it.)
  CHECK(it::wait_for([&] { return fs::exists(v.project / "open-written"); }, 10000));

  // Lock: gone from the running session and from new ones; the server is gone too.
  auto l = w.pw({"vault", "lock", v.name});
  CHECK(l.rc == 0);
  CHECK(v.ask("c") == "");
  CHECK(v.in_session("ls -A .vault").out == "");
  CHECK(v.in_session("touch .vault/after-lock 2>/dev/null && echo WROTE || echo REFUSED").out == "REFUSED\n");
  CHECK(v.servers().empty());
  CHECK(w.pw({"vault", "status", v.name}).out.find("state:           locked") != std::string::npos);

  // Unlock again: the data is intact, in the same long session.
  REQUIRE(v.unlock().rc == 0);
  CHECK(v.in_session("ls .vault").out == "open.txt\ntwo.txt\n");
  CHECK(v.in_session("cat .vault/two.txt").out == "from-session-2\n");
  std::string held;
  for (int i = 0; i < 4000; ++i) held += "held-open";
  CHECK(v.in_session("cat .vault/open.txt").out == held);
  ::kill(writer, SIGTERM);
  int wst;
  ::waitpid(writer, &wst, 0);

  // Last session gone: no server, nothing left; a fresh start sees the vault locked.
  v.stop_all(bg);
  CHECK(v.servers().empty());
  CHECK(v.in_session("ls -A .vault").out == "");
}

TEST_CASE("vault: kill -9 of the supervisor, the client or the shell leaves nothing behind",
          "[vault]") {
  VaultWorld v("vkill");
  auto& w = v.w;
  for (std::string victim : {"supervisor", "client", "shell"}) {
    INFO(victim);
    pid_t bg = v.long_session("vkill-long");
    REQUIRE(it::wait_for([&] { return workspace_running(w, v.name); }, 10000));
    REQUIRE(v.unlock().rc == 0);
    CHECK(v.in_session("echo " + victim + " >> .vault/log").rc == 0);
    REQUIRE(v.servers().size() == 1);
    pid_t target = -1;
    if (victim == "supervisor") {
      auto s = pids_of("pw-supervisor", "__supervise vkill");
      REQUIRE(s.size() == 1);
      target = s[0];
    } else if (victim == "client") {
      target = bg;
    } else {
      auto s = pids_of("sh", "vkill-long");
      REQUIRE(s.size() == 1);
      target = s[0];
    }
    REQUIRE(::kill(target, SIGKILL) == 0);
    int st;
    ::waitpid(bg, &st, 0);
    CHECK(it::wait_for([&] { return !workspace_running(w, v.name) && v.servers().empty(); },
                       10000));
    CHECK(it::pids_with("vkill-long").empty());
    CHECK(fs::is_empty(v.mnt));
  }
  // A fresh unlock works and every write survived.
  pid_t bg = v.long_session("vkill-long");
  REQUIRE(it::wait_for([&] { return workspace_running(w, v.name); }, 10000));
  REQUIRE(v.unlock().rc == 0);
  CHECK(v.in_session("cat .vault/log").out == "supervisor\nclient\nshell\n");
  v.stop_all(bg);
}

TEST_CASE("vault: passphrases by file and fd, wrong ones, passwd, a damaged config", "[vault]") {
  VaultWorld v("vpass");
  auto& w = v.w;
  pid_t bg = v.long_session("vpass-long");
  REQUIRE(it::wait_for([&] { return workspace_running(w, v.name); }, 10000));

  fs::path wrong = w.home / "pass-wrong";
  it::write_file(wrong, "not it\n", 0600);
  auto r = w.pw({"vault", "unlock", v.name, "--passphrase-file", wrong.string()});
  CHECK(r.rc != 0);
  CHECK(r.err.find("wrong passphrase") != std::string::npos);
  CHECK(v.servers().empty());
  CHECK(v.ask("a") == "");
  // By fd (here stdin).
  r = w.pw({"vault", "unlock", v.name, "--passphrase-fd", "0"}, "correct horse vpass\n");
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(v.in_session("echo kept > .vault/k").rc == 0);
  // From inside a human session, without naming the profile.
  r = v.in_session(std::string(PW_BIN) + " vault lock && ls -A .vault");
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(r.out.find("locked") != std::string::npos);
  CHECK(r.out.find("\nk") == std::string::npos);
  r = v.in_session(std::string(PW_BIN) + " vault unlock --passphrase-fd 3 3<" + v.pass.string() + " && cat .vault/k");
  CHECK(r.out.find("kept") != std::string::npos);
  // A $PW_PROFILE changed by hand does not change which vault is locked, nor the name shown.
  r = v.in_session("PW_PROFILE=someone-else " + std::string(PW_BIN) + " vault lock");
  INFO(r.err);
  CHECK(r.out == v.name + ": locked\n");
  r = v.in_session(std::string(PW_BIN) + " vault unlock --passphrase-fd 3 3<" + v.pass.string() + " && cat .vault/k");
  CHECK(r.out.find("kept") != std::string::npos);
  // Not from the agent posture: it has no control socket and no pw vault.
  CHECK(w.pw({v.name + "-llm", "--", PW_BIN, "vault", "lock"}).rc != 0);
  CHECK(v.ask("b") == "k\nkept\n");
  REQUIRE(w.pw({"vault", "lock", v.name}).rc == 0);

  // passwd: the old passphrase stops working, the new one opens the same data.
  fs::path newp = w.home / "pass-new";
  it::write_file(newp, "brand new\n", 0600);
  r = w.pw({"vault", "passwd", v.name, "--passphrase-file", wrong.string(), "--new-passphrase-file",
            newp.string()});
  CHECK(r.rc != 0);
  r = w.pw({"vault", "passwd", v.name, "--passphrase-file", v.pass.string(), "--new-passphrase-file",
            newp.string()});
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(v.unlock().rc != 0);
  CHECK(w.pw({"vault", "unlock", v.name, "--passphrase-file", newp.string()}).rc == 0);
  CHECK(v.ask("c") == "k\nkept\n");
  REQUIRE(w.pw({"vault", "lock", v.name}).rc == 0);

  // A damaged config: a clear error naming the file, nothing mounted.
  fs::path conf = v.cipherdir / "fusevault.conf";
  std::string orig = it::read_file(conf);
  std::string bad = orig;
  bad[bad.size() / 2] ^= 0x20;
  ::chmod(conf.c_str(), 0600);
  it::write_file(conf, bad, 0600);
  r = w.pw({"vault", "unlock", v.name, "--passphrase-file", newp.string()});
  CHECK(r.rc != 0);
  CHECK(r.err.find(conf.string() + " was modified") != std::string::npos);
  CHECK(v.servers().empty());
  it::write_file(conf, orig.substr(0, 10), 0600);  // truncated
  r = w.pw({"vault", "unlock", v.name, "--passphrase-file", newp.string()});
  CHECK(r.rc != 0);
  CHECK(r.err.find(conf.string() + ": ") != std::string::npos);
  CHECK(v.servers().empty());
  CHECK(v.ask("d") == "");
  it::write_file(conf, orig, 0600);
  v.stop_all(bg);
}

TEST_CASE("vault: refused where it does not belong", "[vault]") {
  auto& w = World::get();
  // An agent profile with a vault is an error; so is pw vault on an agent profile.
  w.write_profile("vagent-llm", "[project]\ndir = \"" + w.project.string() +
                                    "\"\nposture = \"agent\"\n[vault]\ncipherdir = \"~/c\"\nmountpoint = \".v\"\n");
  auto r = w.pw({"vagent-llm", "--", "/bin/true"});
  CHECK(r.rc != 0);
  CHECK(r.err.find("the agent posture never gets a vault") != std::string::npos);
  r = w.pw({"vault", "status", "demo-llm"});
  CHECK(r.rc != 0);
  CHECK(r.err.find("agent profile") != std::string::npos);
  // The cipherdir and pw's data dir are hidden in every posture.
  fs::path data = w.home / ".local/share/pw";
  fs::create_directories(data / "vaults" / "demo");
  it::write_file(data / "vaults" / "demo" / "marker", "x");
  for (const char* p : {"demo", "demo-llm"}) {
    INFO(p);
    CHECK(w.probe(p, {"read", (data / "vaults" / "demo" / "marker").string()}) == "ENOENT");
  }
  // pw explain shows the vault line.
  r = w.pw({"explain", "demo"});
  CHECK(r.out.find("vault      " + (w.project / ".vault").string()) != std::string::npos);
}

TEST_CASE("vault: on a terminal: three tries, passphrase asked twice, unlock on enter", "[vault][tty]") {
  VaultWorld v("vtty");
  auto& w = v.w;
  pid_t bg = v.long_session("vtty-long");
  REQUIRE(it::wait_for([&] { return workspace_running(w, v.name); }, 10000));
  {
    it::Pty p({PW_BIN, "vault", "unlock", v.name}, w.env);
    for (int i = 0; i < 2; ++i) {
      REQUIRE(p.expect("Passphrase for the vault of vtty: "));
      p.send("guess" + std::to_string(i) + "\n");
      CHECK(p.expect("try again"));
    }
    REQUIRE(p.expect("Passphrase for the vault of vtty: "));
    p.send("guess2\n");
    CHECK(p.expect("stays locked"));
    CHECK(p.wait() != 0);
  }
  CHECK(v.ask("a") == "");
  {
    // Ctrl-C at the prompt ends pw as Ctrl-C does, with the terminal's echo back on.
    it::Pty p({PW_BIN, "vault", "unlock", v.name}, w.env);
    REQUIRE(p.expect("Passphrase for the vault of vtty: "));
    p.send("half a pass");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    p.send("\x03");
    CHECK(p.wait() == 128 + SIGINT);
    struct termios t {};
    REQUIRE(::tcgetattr(p.master, &t) == 0);
    CHECK((t.c_lflag & ECHO) != 0);
  }
  {
    it::Pty p({PW_BIN, "vault", "unlock", v.name}, w.env);
    REQUIRE(p.expect("Passphrase for the vault of vtty: "));
    p.send("correct horse vtty\n");
    CHECK(p.expect("unlocked"));
    CHECK(p.wait() == 0);
  }
  CHECK(v.in_session("echo on-tty > .vault/t").rc == 0);
  v.stop_all(bg);

  // unlock = "on-enter": the first session asks, and sees the plaintext at once.
  fs::path prof = w.config / "pw" / v.name / "profile.toml";
  std::string text = it::read_file(prof);
  auto at = text.find("unlock = \"manual\"");
  REQUIRE(at != std::string::npos);
  text.replace(at, 17, "unlock = \"on-enter\"");
  it::write_file(prof, text, 0600);
  {
    it::Pty p({PW_BIN, v.name, "--", "/bin/sh", "-c", "cat " + (v.mnt / "t").string()}, w.env);
    REQUIRE(p.expect("Passphrase for the vault of vtty: "));
    p.send("correct horse vtty\n");
    CHECK(p.expect("on-tty"));
    CHECK(p.wait() == 0);
  }

  // init on a terminal asks twice; two different answers create nothing.
  fs::path proj2 = w.home / "projects" / "vtty2";
  fs::create_directories(proj2);
  REQUIRE(w.pw({"new", "vtty2", "--dir", proj2.string()}).rc == 0);
  {
    std::vector<std::string> a = {PW_BIN, "vault", "init", "vtty2"};
    a.insert(a.end(), kFastKdf.begin(), kFastKdf.end());
    it::Pty p(a, w.env);
    REQUIRE(p.expect("New passphrase for the vault of vtty2: "));
    p.send("one\n");
    REQUIRE(p.expect("Repeat it: "));
    p.send("two\n");
    CHECK(p.expect("differ"));
    CHECK(p.wait() != 0);
  }
  CHECK_FALSE(fs::exists(w.home / ".local/share/pw/vaults/vtty2/fusevault.conf"));
}
