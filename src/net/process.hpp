// How the proxy joins a workspace (DESIGN §6). Listening sockets are made inside the
// workspace's network namespace (the HTTP one by the supervisor's netns child, once) or a
// session's view (the ssh-agent one); the workspace supervisor, in the host's network
// namespace, hands them to a proxy process it forked; the proxy accepts on them and dials
// out. Nothing is routed, so the sessions reach nothing but the proxy.
//
//   workspace netns (lo only)     listen_loopback(kProxyPort) ──fd──┐  supervisor's child
//   session                       listen_unix(ssh socket)     ──fd──┤  client's connection
//   supervisor (host netns)       send_listener(proxy.control, ...) ◄┘
//   proxy process (its child)     accepts, checks, dials out, logs to net.log
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "net/proxy.hpp"
#include "util/fd.hpp"

namespace pw {
struct ProfileSpec;
}

namespace pw::net {

// ---- inside the workspace's network namespace -------------------------------------------

// The proxy's address inside every allowlist session: 127.0.0.1:kProxyPort. Fixed, since
// each workspace's namespace is new and empty.
constexpr std::uint16_t kProxyPort = 3128;

// Where the filtered ssh-agent socket appears inside a session.
constexpr const char* kSshAgentSocketName = "pw-ssh-agent.sock";

// A listening TCP socket on 127.0.0.1:port in the caller's network namespace
// (close-on-exec). Throws pw::SysError.
Fd listen_loopback(std::uint16_t port = kProxyPort);

// A listening unix stream socket at `path` (mode 0600, replacing a stale socket there).
Fd listen_unix(const std::filesystem::path& path);

// HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY and their lowercase forms for a proxy at
// 127.0.0.1:port. NO_PROXY keeps loopback direct: the session's own servers live there.
std::vector<std::pair<std::string, std::string>> proxy_env(std::uint16_t port = kProxyPort);

// ---- supervisor side ------------------------------------------------------------------

struct ProxyProcessConfig {
  std::string workspace;              // profile name, for messages
  ProxyOptions options;
  std::filesystem::path log;          // net.log; empty: no log
};

// The configuration for a profile: its [network] policy and [ssh_agent] keys, the log at
// log_path(NAME), $SSH_AUTH_SOCK as the real agent, and (only in builds with test hooks)
// the PW_TEST_RESOLVE name table. Throws pw::Error on a bad allow entry or override.
ProxyProcessConfig proxy_config(const ProfileSpec& spec);

struct ProxyProcess {
  pid_t pid = -1;
  Fd control;  // SOCK_SEQPACKET; closing it ends the proxy process
};

// Forks the proxy process. Call from a single-threaded process (the supervisor): the
// child starts threads (name lookups) and must never be forked from. The child keeps only
// stdin/out/err and its end of the control socket, dies with its parent
// (PR_SET_PDEATHSIG), and exits when the control socket closes. The caller reaps `pid`.
ProxyProcess start_proxy_process(const ProxyProcessConfig& config);

// Hands a listening socket to the proxy process. `lifeline` (or -1): an fd that becomes
// readable or hangs up when the session ends (a pidfd, or a pipe's read end); the proxy
// then closes the listener. `ssh_upstream`: the real agent for an ssh-agent listener
// (empty: the proxy's default). Throws pw::SysError.
void send_listener(int control, ListenerKind kind, int listen_fd, int lifeline = -1,
                   const std::string& ssh_upstream = {});

// The proxy process's main: serves `control` until it closes. Returns the exit status.
int run_proxy_process(const ProxyProcessConfig& config, int control);

}  // namespace pw::net
