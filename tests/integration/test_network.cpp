// The agent posture's network allowlist, through real sessions: the only way out is the
// workspace's proxy, which lets through exactly what the profile allows and logs it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <sstream>
#include <thread>

#include "harness.hpp"

namespace fs = std::filesystem;
using it::World;

namespace {

// A tiny HTTP server on the host's loopback: every request gets "hello from PORT".
struct TestServer {
  int fd = -1;
  int port = 0;
  std::atomic<bool> stop{false};
  std::thread th;

  TestServer() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    REQUIRE(::listen(fd, 16) == 0);
    th = std::thread([this] {
      while (!stop) {
        pollfd p = {fd, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        char buf[4096];
        pollfd q = {c, POLLIN, 0};
        if (::poll(&q, 1, 2000) > 0 && ::read(c, buf, sizeof buf) > 0) {
          std::string body = "hello from " + std::to_string(port);
          std::string r = "HTTP/1.0 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\nConnection: close\r\n\r\n" + body;
          (void)!::write(c, r.data(), r.size());
        }
        ::close(c);
      }
    });
  }
  ~TestServer() {
    stop = true;
    th.join();
    ::close(fd);
  }
};

}  // namespace

TEST_CASE("network allowlist: only allowed hosts, only through the proxy, every decision logged",
          "[network]") {
  auto& w = World::get();
  if (!it::require(fs::exists("/usr/bin/curl"), "curl (packaging/install-deps.sh installs it)")) return;
  TestServer srv;
  const std::string port = std::to_string(srv.port);
  w.write_profile("net-llm", "[project]\ndir = \"" + w.project.string() +
                                 "\"\nposture = \"agent\"\nshell = \"/bin/sh\"\n"
                                 "[network]\nmode = \"allowlist\"\nallow = [\"allowed.test:" + port +
                                 "\"]\nallow_private = true\n");
  // The test servers stand in for real hosts: a test-only name table maps them to loopback.
  std::vector<std::string> env = w.env;
  env.push_back("PW_TEST_RESOLVE=allowed.test=127.0.0.1,denied.test=127.0.0.1");
  auto in = [&](const std::string& sh) { return it::run({PW_BIN, "net-llm", "--", "/bin/sh", "-c", sh}, env); };

  // Allowed, through the proxy the environment points at.
  auto r = in("curl -sS -m 10 http://allowed.test:" + port + "/");
  INFO(r.err);
  CHECK(r.out == "hello from " + port);
  CHECK(in("echo $HTTPS_PROXY $http_proxy").out == "http://127.0.0.1:3128 http://127.0.0.1:3128\n");
  // Not on the list; an IP literal; the right name on another port.
  CHECK(in("curl -sS -m 10 -o /dev/null -w '%{http_code}' http://denied.test:" + port + "/").out == "403");
  CHECK(in("curl -sS -m 10 -o /dev/null -w '%{http_code}' -x http://127.0.0.1:3128 --noproxy '' http://127.0.0.1:" +
           port + "/")
            .out == "403");
  CHECK(in("curl -sS -m 10 -o /dev/null -w '%{http_code}' http://allowed.test:1/").out == "403");
  // A CONNECT tunnel to an allowed host whose TLS ClientHello names another host is cut.
  if (it::require(fs::exists("/usr/bin/openssl"), "openssl (packaging/install-deps.sh installs it)")) {
    r = in("openssl s_client -proxy 127.0.0.1:3128 -connect allowed.test:" + port +
           " -servername evil.test </dev/null >/dev/null 2>&1; echo rc=$?");
    CHECK(r.out != "rc=0\n");
  }
  // Around the proxy there is nothing: the host's loopback, any address, UDP, DNS.
  fs::path probe = w.probe_bin;
  r = in(probe.string() + " connect 127.0.0.1 " + port + "; " + probe.string() + " connect 1.1.1.1 443; " +
         probe.string() + " udp 8.8.8.8 53");
  std::istringstream lines(r.out);
  std::string l;
  std::vector<std::string> got;
  while (std::getline(lines, l)) got.push_back(l);
  REQUIRE(got.size() == 3);
  CHECK(got[0] != "OK");
  CHECK(got[1] != "OK");
  CHECK(got[2] != "OK");
  CHECK(in("getent hosts example.com; echo rc=$?").out.find("rc=0") == std::string::npos);

  // The log names each decision, host quoted.
  auto log = w.pw({"log", "net-llm"}).out;
  INFO(log);
  CHECK(log.find("\"allowed.test:" + port + "\" allow") != std::string::npos);
  CHECK(log.find("\"denied.test:" + port + "\" deny") != std::string::npos);
  CHECK(log.find("\"127.0.0.1:" + port + "\" deny") != std::string::npos);
  CHECK(log.find("\"allowed.test:1\" deny") != std::string::npos);
  CHECK(log.find("deny tls TLS server name \"evil.test\" differs from the CONNECT host") != std::string::npos);
}

TEST_CASE("ssh-agent forward: only the allowed key is listed and signs; the agent cannot be changed",
          "[network][ssh]") {
  auto& w = World::get();
  if (!it::require(fs::exists("/usr/bin/ssh-agent") && fs::exists("/usr/bin/ssh-keygen"),
                   "openssh-client (packaging/install-deps.sh installs it)")) {
    return;
  }
  fs::path dir = w.home / "sshtest";
  fs::create_directories(dir);
  fs::path sock = dir / "agent.sock";
  auto host = [&](const std::string& sh) { return it::run({"/bin/sh", "-c", sh}, w.env); };
  auto setup = host("cd " + dir.string() +
                    " && ssh-keygen -q -t ed25519 -N '' -C one -f k1 && ssh-keygen -q -t ed25519 -N '' -C two -f k2"
                    " && ssh-agent -a " + sock.string() + " | sed -n 's/.*SSH_AGENT_PID=\\([0-9]*\\);.*/\\1/p'");
  INFO(setup.err);
  REQUIRE(setup.rc == 0);
  const std::string agent_pid = setup.out.substr(0, setup.out.find('\n'));
  REQUIRE(!agent_pid.empty());
  std::vector<std::string> env = w.env;
  env.push_back("SSH_AUTH_SOCK=" + sock.string());
  REQUIRE(it::run({"/bin/sh", "-c", "ssh-add -q " + (dir / "k1").string() + " " + (dir / "k2").string()}, env).rc == 0);
  std::string fp1 = host("ssh-keygen -lf " + (dir / "k1.pub").string() + " | cut -d' ' -f2").out;
  fp1 = fp1.substr(0, fp1.find('\n'));
  fs::copy_file(dir / "k1.pub", w.project / "k1.pub", fs::copy_options::overwrite_existing);
  it::write_file(w.project / "data.txt", "sign me\n");

  w.write_profile("ssh-llm", "[project]\ndir = \"" + w.project.string() +
                                 "\"\nposture = \"agent\"\nshell = \"/bin/sh\"\n"
                                 "[ssh_agent]\nmode = \"forward\"\nkeys = [\"" + fp1 + "\"]\n");
  auto in = [&](const std::string& sh) { return it::run({PW_BIN, "ssh-llm", "--", "/bin/sh", "-c", sh}, env); };
  auto r = in("ssh-add -l");
  INFO(r.out << r.err);
  CHECK(r.rc == 0);
  CHECK(r.out.find(fp1) != std::string::npos);
  CHECK(r.out.find("two") == std::string::npos);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  r = in("cd " + w.project.string() + " && rm -f data.txt.sig && ssh-keygen -q -Y sign -f k1.pub -n file data.txt"
         " && test -s data.txt.sig && echo signed");
  CHECK(r.out == "signed\n");
  CHECK(in("ssh-add -D").rc != 0);
  CHECK(in("ssh-add " + (dir / "k2").string()).rc != 0);
  // The key files and the real agent's socket are out of reach.
  CHECK(in("cat " + (dir / "k1").string() + " || echo hidden").out.find("hidden") != std::string::npos);
  CHECK(in("SSH_AUTH_SOCK=" + sock.string() + " ssh-add -l; echo rc=$?").out.find("rc=0") == std::string::npos);
  // Both keys are still in the real agent.
  CHECK(it::run({"/bin/sh", "-c", "ssh-add -l | wc -l"}, env).out == "2\n");
  host("kill " + agent_pid);
}

namespace {

// The pid of the network proxy of workspace `name` (a fork of its supervisor, named
// pw-netproxy), or 0.
pid_t proxy_pid(const std::string& name) {
  for (pid_t pid : it::pids_with("__supervise " + name + " ")) {
    if (it::read_file("/proc/" + std::to_string(pid) + "/comm") == "pw-netproxy\n") return pid;
  }
  return 0;
}

std::string allowlist_profile(const fs::path& dir) {
  return "[project]\ndir = \"" + dir.string() +
         "\"\nposture = \"agent\"\nshell = \"/bin/sh\"\n"
         "[network]\nmode = \"allowlist\"\nallow = [\"allowed.test:443\"]\n";
}

// Starts a background session of `name` running `sh -c TAG` (a sleep); returns the client
// once the command runs.
pid_t start_held(const World& w, const std::string& name, const std::string& tag) {
  pid_t bg = it::spawn_bg({PW_BIN, name, "--", "/bin/sh", "-c", tag}, w.env);
  REQUIRE(it::wait_for([&] { return !it::pids_with(tag).empty(); }, 10000));
  return bg;
}

}  // namespace

TEST_CASE("a workspace's network mode is fixed at its start: a session whose profile changed is refused",
          "[network]") {
  auto& w = World::get();
  const std::string name = "netmode-llm";
  w.write_profile(name, allowlist_profile(w.project));
  const std::string tag = "sleep 31." + std::to_string(::getpid());
  pid_t bg = start_held(w, name, tag);
  // Same mode: joins.
  CHECK(w.pw({name, "--", "/bin/true"}).rc == 0);
  // Now "none": joining would hand the session the workspace's way out through its proxy.
  w.write_profile(name, "[project]\ndir = \"" + w.project.string() +
                            "\"\nposture = \"agent\"\nshell = \"/bin/sh\"\n[network]\nmode = \"none\"\n");
  auto r = w.pw({name, "--", "/bin/echo", "ran"});
  INFO(r.err);
  CHECK(r.rc != 0);
  CHECK(r.out.empty());
  CHECK(r.err.find("runs with network mode \"allowlist\", but its profile now says \"none\"") != std::string::npos);
  ::kill(bg, SIGTERM);
  int st;
  REQUIRE(::waitpid(bg, &st, 0) == bg);
  // Once it has ended, the new mode applies.
  CHECK(it::wait_for([&] { return w.pw({name, "--", "/bin/true"}).rc == 0; }, 10000));
}

TEST_CASE("the workspace ends when its network proxy dies", "[network]") {
  auto& w = World::get();
  const std::string name = "proxydeath-llm";
  w.write_profile(name, allowlist_profile(w.project));
  const std::string tag = "sleep 32." + std::to_string(::getpid());
  pid_t bg = start_held(w, name, tag);
  pid_t proxy = 0;
  REQUIRE(it::wait_for([&] { return (proxy = proxy_pid(name)) != 0; }, 10000));
  // Killed from outside (an agent cannot reach it): its 127.0.0.1:3128 listener is gone,
  // and a session could otherwise bind that port to hear the others' requests.
  REQUIRE(::kill(proxy, SIGKILL) == 0);
  int st = 0;
  const bool ended = it::wait_for([&] { return ::waitpid(bg, &st, WNOHANG) == bg; }, 10000);
  if (!ended) {
    ::kill(bg, SIGKILL);
    ::waitpid(bg, &st, 0);
  }
  REQUIRE(ended);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) != 0);
  CHECK(it::pids_with(tag).empty());
  CHECK(it::wait_for([&] { return it::pids_with("__supervise " + name + " ").empty(); }, 10000));
}
