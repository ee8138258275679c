// The ssh-agent filter: the protocol rules on hand-built messages, then a real ssh-agent
// holding two keys with one allowed, driven by ssh-add and ssh-keygen through the filter.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "net/ssh_agent.hpp"
#include "net_helpers.hpp"

using namespace nettest;
using namespace pw::net;
using namespace std::chrono_literals;

namespace {

std::string u32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
std::string str(const std::string& s) { return u32(static_cast<std::uint32_t>(s.size())) + s; }
std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// An ed25519 public key blob with a given 32-byte key.
std::string ed25519_blob(char fill) { return str("ssh-ed25519") + str(std::string(32, fill)); }

}  // namespace

TEST_CASE("net agent: fingerprints are ssh-keygen's", "[net][agent]") {
  // `ssh-keygen -lf` of this key prints SHA256:ycecTFElO4tMaWgqfHQDEUjUete0Tsl0wmvU/kkDXFc
  // (the key below: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB").
  CHECK(agent::fingerprint(bytes(ed25519_blob('A'))) == "SHA256:ycecTFElO4tMaWgqfHQDEUjUete0Tsl0wmvU/kkDXFc");
  CHECK(agent::valid_fingerprint("SHA256:ycecTFElO4tMaWgqfHQDEUjUete0Tsl0wmvU/kkDXFc"));
  CHECK_FALSE(agent::valid_fingerprint("SHA256:ycecTFElO4tMaWgqfHQDEUjUete0Tsl0wmvU/kkDXF"));
  CHECK_FALSE(agent::valid_fingerprint("SHA256:ycecTFElO4tMaWgqfHQDEUjUete0Tsl0wmvU/kkDXFc="));
  CHECK_FALSE(agent::valid_fingerprint("MD5:aa:bb"));
  CHECK_FALSE(agent::valid_fingerprint("sha256:DJ0Qy8tu2jRVyDWjM7FKiwwBoEYp8t9KSGNAc8Q9uDg"));
}

TEST_CASE("net agent: only listing and signing with allowed keys pass", "[net][agent]") {
  const std::string allowed = ed25519_blob('A'), other = ed25519_blob('B');
  const agent::Filter f({agent::fingerprint(bytes(allowed))});
  CHECK(f.check_request(bytes("\x0b")).forward);
  CHECK_FALSE(f.check_request(bytes(std::string("\x0b", 1) + "x")).forward);
  const std::string sign_ok = "\x0d" + str(allowed) + str("data") + u32(0);
  const std::string sign_other = "\x0d" + str(other) + str("data") + u32(0);
  CHECK(f.check_request(bytes(sign_ok)).forward);
  const agent::Verdict v = f.check_request(bytes(sign_other));
  CHECK_FALSE(v.forward);
  CHECK(v.what == "sign with " + agent::fingerprint(bytes(other)));
  CHECK_FALSE(f.check_request(bytes(sign_ok.substr(0, sign_ok.size() - 1))).forward);  // truncated
  CHECK_FALSE(f.check_request(bytes(sign_ok + "x")).forward);                           // trailing
  for (int type : {1, 3, 7, 8, 9, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 99}) {
    INFO(type);
    CHECK_FALSE(f.check_request(bytes(std::string(1, static_cast<char>(type)) + "rest")).forward);
  }
  CHECK(f.check_request(bytes("\x13")).what == "remove all keys");
  CHECK(f.check_request(bytes("\x1b")).what == "extension");
  CHECK_FALSE(f.check_request({}).forward);

  const std::string answer = "\x0c" + u32(2) + str(other) + str("other key") + str(allowed) + str("allowed key");
  std::size_t held, shown;
  auto filtered = f.filter_identities(bytes(answer), held, shown);
  REQUIRE(filtered);
  CHECK(held == 2);
  CHECK(shown == 1);
  CHECK(*filtered == "\x0c" + u32(1) + str(allowed) + str("allowed key"));
  CHECK_FALSE(f.filter_identities(bytes("\x0c" + u32(3) + str(allowed) + str("c")), held, shown));
  CHECK_FALSE(f.filter_identities(bytes(answer + "x"), held, shown));
  CHECK_FALSE(f.filter_identities(bytes(std::string("\x05")), held, shown));
  CHECK(agent::failure_message() == std::string("\0\0\0\1\5", 5));
}

TEST_CASE("net agent: a real ssh-agent through the filter", "[net][agent][tools]") {
  if (!have_tool("ssh-agent") || !have_tool("ssh-add") || !have_tool("ssh-keygen")) return;
  TempDir tmp;
  const std::string dir = tmp.path().string();
  const std::string real = dir + "/real.sock", filtered = dir + "/filtered.sock";
  std::string out;
  REQUIRE(run("ssh-keygen -q -t ed25519 -N '' -C allowed-key -f " + dir + "/k1") == 0);
  REQUIRE(run("ssh-keygen -q -t ed25519 -N '' -C other-key -f " + dir + "/k2") == 0);
  REQUIRE(run("ssh-keygen -q -t ed25519 -N '' -C third-key -f " + dir + "/k3") == 0);
  REQUIRE(run("ssh-keygen -lf " + dir + "/k1.pub", &out) == 0);
  const std::string fp1 = out.substr(out.find("SHA256:"), 50);
  REQUIRE(agent::valid_fingerprint(fp1));

  const pid_t agent_pid = ::fork();
  REQUIRE(agent_pid >= 0);
  if (agent_pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::execlp("ssh-agent", "ssh-agent", "-D", "-a", real.c_str(), nullptr);
    _exit(127);
  }
  nettest::KillOnExit reap{agent_pid};
  REQUIRE(wait_for_socket(real));
  const std::string as_real = "SSH_AUTH_SOCK=" + real + " ";
  const std::string as_session = "SSH_AUTH_SOCK=" + filtered + " ";
  REQUIRE(run(as_real + "ssh-add " + dir + "/k1 " + dir + "/k2") == 0);
  // Only the agent holds them now: ssh-keygen -Y sign would fall back to a key file.
  ::unlink((dir + "/k1").c_str());
  ::unlink((dir + "/k2").c_str());

  TempDir logdir;
  NetLog log(logdir.path() / "net.log");
  ProxyOptions o;
  o.ssh_filter = agent::Filter({fp1});
  o.ssh_upstream = real;
  Proxy proxy(std::move(o), &log);
  proxy.add_listener(listen_unix(filtered), ListenerKind::SshAgent);
  std::thread loop([&] { proxy.run(); });
  struct Stop {
    Proxy& p;
    std::thread& t;
    ~Stop() {
      p.stop();
      t.join();
    }
  } stop{proxy, loop};

  // The session sees one key of two.
  CHECK(run(as_session + "ssh-add -l", &out) == 0);
  CHECK(out.find(fp1) != std::string::npos);
  CHECK(out.find("allowed-key") != std::string::npos);
  CHECK(out.find("other-key") == std::string::npos);
  CHECK(std::count(out.begin(), out.end(), '\n') == 1);
  CHECK(run(as_session + "ssh-add -L", &out) == 0);
  CHECK(out.find("allowed-key") != std::string::npos);
  CHECK(out.find("other-key") == std::string::npos);

  // Signing works with the allowed key and verifies; the other key cannot sign.
  {
    std::FILE* f = std::fopen((dir + "/msg").c_str(), "w");
    std::fputs("sign me\n", f);
    std::fclose(f);
  }
  CHECK(run(as_session + "ssh-keygen -Y sign -n test -f " + dir + "/k1.pub " + dir + "/msg", &out) == 0);
  INFO(out);
  CHECK(run("ssh-keygen -Y check-novalidate -n test -f " + dir + "/k1.pub -s " + dir + "/msg.sig < " + dir + "/msg",
            &out) == 0);
  ::unlink((dir + "/msg.sig").c_str());
  CHECK(run(as_session + "ssh-keygen -Y sign -n test -f " + dir + "/k2.pub " + dir + "/msg", &out) != 0);

  // Changing the agent is refused; the real agent still holds both keys.
  CHECK(run(as_session + "ssh-add -D", &out) != 0);
  CHECK(run(as_session + "ssh-add -d " + dir + "/k1.pub", &out) != 0);
  CHECK(run(as_session + "ssh-add " + dir + "/k3", &out) != 0);
  CHECK(run(as_real + "ssh-add -l", &out) == 0);
  CHECK(std::count(out.begin(), out.end(), '\n') == 2);

  const std::string text = read_file(logdir.path() / "net.log");
  CHECK(text.find("\"ssh-agent\" allow ssh-agent list keys: 1 of 2 shown\n") != std::string::npos);
  CHECK(text.find("\"ssh-agent\" allow ssh-agent sign with " + fp1 + "\n") != std::string::npos);
  CHECK(text.find("deny ssh-agent remove all keys: only listing and signing with allowed keys is forwarded\n") !=
        std::string::npos);
  CHECK(text.find("deny ssh-agent add key:") != std::string::npos);
}

TEST_CASE("net agent: oversized messages and a missing real agent", "[net][agent]") {
  TempDir tmp;
  const std::string filtered = (tmp.path() / "f.sock").string();
  ProxyOptions o;
  o.ssh_upstream = tmp.path() / "nothing-here.sock";
  Proxy proxy(std::move(o), nullptr);
  proxy.add_listener(listen_unix(filtered), ListenerKind::SshAgent);
  std::thread loop([&] { proxy.run(); });
  auto dial = [&] {
    Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, filtered.c_str());
    REQUIRE(::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    timeval tv{5, 0};
    ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return s;
  };
  {  // list, with no agent behind: failure, connection stays usable
    Fd s = dial();
    send_all(s.get(), u32(1) + "\x0b");
    CHECK(read_n(s.get(), 5) == agent::failure_message());
    send_all(s.get(), u32(1) + "\x13");
    CHECK(read_n(s.get(), 5) == agent::failure_message());
  }
  {  // a length over 256 KiB: dropped
    Fd s = dial();
    send_all(s.get(), u32(256 * 1024 + 1) + "\x0b");
    CHECK(read_all(s.get()).empty());
  }
  {  // pipelined requests in one write, answered in order
    Fd s = dial();
    send_all(s.get(), u32(1) + "\x13" + u32(1) + "\x16" + u32(1) + "\x17");
    CHECK(read_n(s.get(), 15) == agent::failure_message() + agent::failure_message() + agent::failure_message());
  }
  proxy.stop();
  loop.join();
}
