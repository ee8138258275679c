#include "net/process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "profile/spec.hpp"
#include "util/error.hpp"
#include "workspace/protocol.hpp"

namespace fs = std::filesystem;

namespace pw::net {
namespace {

constexpr std::size_t kMaxControlMessage = 4096;


}  // namespace

Fd listen_loopback(std::uint16_t port) {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) throw SysError("socket for the proxy listener");
  int one = 1;
  ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    throw SysError("bind 127.0.0.1:" + std::to_string(port));
  }
  if (::listen(s.get(), 1024) != 0) throw SysError("listen");
  return s;
}

Fd listen_unix(const fs::path& path) {
  struct sockaddr_un a {};
  a.sun_family = AF_UNIX;
  if (path.string().size() >= sizeof a.sun_path) throw Error("socket path too long: " + path.string());
  std::strcpy(a.sun_path, path.c_str());
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) throw SysError("socket");
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
  // The mode is set before the name exists: nobody can connect in between.
  if (::fchmod(s.get(), 0600) != 0) throw SysError("fchmod socket");
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw SysError("bind " + path.string());
  ::chmod(path.c_str(), 0600);
  if (::listen(s.get(), 64) != 0) throw SysError("listen");
  return s;
}

std::vector<std::pair<std::string, std::string>> proxy_env(std::uint16_t port) {
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  const std::string no_proxy = "localhost,127.0.0.1,::1";
  std::vector<std::pair<std::string, std::string>> env;
  for (const char* name : {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}) {
    env.emplace_back(name, url);
    std::string lower(name);
    for (char& c : lower) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    env.emplace_back(lower, url);
  }
  env.emplace_back("NO_PROXY", no_proxy);
  env.emplace_back("no_proxy", no_proxy);
  return env;
}

ProxyProcessConfig proxy_config(const ProfileSpec& spec) {
  ProxyProcessConfig c;
  c.workspace = spec.name;
  try {
    c.options.policy = Policy::from_strings(spec.allow, spec.allow_private);
  } catch (const std::invalid_argument& e) {
    throw Error(spec.file.string() + ": network.allow: " + e.what());
  }
  c.options.ssh_filter = agent::Filter(spec.ssh_keys);
  if (const char* sock = std::getenv("SSH_AUTH_SOCK"); sock && sock[0] == '/') c.options.ssh_upstream = sock;
  if (const char* t = std::getenv("PW_TEST_RESOLVE"); t && test_hooks_enabled()) {
    std::string err;
    auto table = parse_resolve_override(t, err);
    if (!table) throw Error("PW_TEST_RESOLVE: " + err);
    c.options.resolve_override = std::move(table);
  }
  c.log = log_path(spec.name);
  return c;
}

ProxyProcess start_proxy_process(const ProxyProcessConfig& config) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) throw SysError("socketpair");
  Fd parent_end(sv[0]), child_end(sv[1]);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw SysError("fork the proxy process");
  if (pid == 0) {
    // Before anything else: die with the supervisor, and close the race with a parent
    // that is already gone.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(1);
    parent_end.reset();
    // Keep 0-2 and the control socket (as fd 3); the supervisor's other fds (namespace
    // fds, its listener, clients) are none of the proxy's business.
    if (child_end.get() != 3) {
      if (::dup2(child_end.get(), 3) < 0) _exit(1);
      child_end.reset();
    } else {
      (void)child_end.release();
    }
    ::close_range(4, ~0U, 0);
    int rc = 1;
    try {
      rc = run_proxy_process(config, 3);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "pw: network proxy of %s: %s\n", config.workspace.c_str(), e.what());
    }
    _exit(rc);
  }
  return {pid, std::move(parent_end)};
}

void send_listener(int control, ListenerKind kind, int listen_fd, int lifeline, const std::string& ssh_upstream) {
  std::string text = kind == ListenerKind::Http ? "listen http" : "listen ssh-agent";
  if (kind == ListenerKind::SshAgent && !ssh_upstream.empty()) text += " " + ssh_upstream;
  if (text.size() > kMaxControlMessage) throw Error("proxy control: message too long");
  std::vector<int> fds = {listen_fd};
  if (lifeline >= 0) fds.push_back(lifeline);
  proto::send(control, text, fds);
}

int run_proxy_process(const ProxyProcessConfig& config, int control) {
  ::prctl(PR_SET_NAME, "pw-netproxy");
  ::signal(SIGPIPE, SIG_IGN);
  // Two fds per tunnel: take the hard limit.
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (sodium_init() < 0) throw Error("libsodium failed to initialise");
  NetLog log;
  if (!config.log.empty()) log = NetLog(config.log);
  Proxy proxy(config.options, &log);
  proxy.watch(control, [&] {
    std::string text;
    std::vector<Fd> fds;
    bool alive = false;
    try {
      alive = proto::recv(control, text, &fds);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "pw: network proxy of %s: %s\n", config.workspace.c_str(), e.what());
    }
    if (!alive) {
      proxy.stop();
      return;
    }
    try {
      if (fds.empty()) throw Error("control message without a socket: " + text);
      Fd lifeline = fds.size() > 1 ? std::move(fds[1]) : Fd();
      if (text == "listen http") {
        proxy.add_listener(std::move(fds[0]), ListenerKind::Http, std::move(lifeline));
      } else if (text == "listen ssh-agent" || text.starts_with("listen ssh-agent /")) {
        const std::string up = text.size() > 17 ? text.substr(17) : std::string();
        proxy.add_listener(std::move(fds[0]), ListenerKind::SshAgent, std::move(lifeline), up);
      } else {
        throw Error("unknown control message: " + text);
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "pw: network proxy of %s: %s\n", config.workspace.c_str(), e.what());
    }
  });
  proxy.run();
  return 0;
}

}  // namespace pw::net
