// The proxy engine: one thread, one epoll loop, non-blocking sockets. It accepts on
// listening sockets it is handed (made by sessions inside their network namespaces) and
// dials out from its own namespace:
//
//  - HTTP listeners: CONNECT host:port and absolute-URI http requests, checked against the
//    Policy (name, then every resolved address), tunnels with bounded buffers, half-close,
//    connect/idle timeouts, and an SNI check of a TLS ClientHello at the start of a tunnel;
//  - ssh-agent listeners: the agent protocol, filtered (net/ssh_agent.hpp), relayed to the
//    user's real agent.
//
// Refusals reach the client as one line (an HTTP 403 with X-Pw-Refused, a TLS alert, or
// SSH_AGENT_FAILURE) and the log as one line (net/log.hpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/log.hpp"
#include "net/policy.hpp"
#include "net/resolver.hpp"
#include "net/ssh_agent.hpp"
#include "util/fd.hpp"

namespace pw::net {

struct Timeouts {
  std::chrono::milliseconds connect{10'000};  // name lookup plus TCP connect
  std::chrono::milliseconds request{30'000};  // request head, and a ClientHello after CONNECT
  std::chrono::milliseconds idle{15 * 60'000};  // no byte either way (also ssh-agent)
};

struct ProxyOptions {
  Policy policy;
  Timeouts timeouts;
  // Per direction per tunnel, allocated on first use. 256 KiB relays loopback bulk data
  // about 1.5x faster than 64 KiB here; with max_connections it bounds memory to 512 MiB.
  std::size_t buffer_size = 256 * 1024;
  // Relay established CONNECT tunnels with splice(2) (two pipes each). Off: on loopback it
  // measured no faster than copying (docs/network.md).
  bool splice = false;
  std::size_t max_connections = 1024;  // beyond this new clients are closed at once
  int resolver_threads = 4;
  std::optional<ResolveOverride> resolve_override;  // tests only (see resolver.hpp)
  agent::Filter ssh_filter;
  std::filesystem::path ssh_upstream;  // default real agent socket ($SSH_AUTH_SOCK)
};

enum class ListenerKind { Http, SshAgent };

struct ProxyStats {
  std::size_t listeners = 0;
  std::size_t connections = 0;  // tunnels and ssh-agent clients alive
  std::size_t accepted = 0;     // since start
};

class Proxy {
 public:
  // `log` may be null (no log); it must outlive the proxy.
  Proxy(ProxyOptions options, NetLog* log);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Serves a listening socket (owned from now on). When `lifeline` (optional, owned)
  // becomes readable or hangs up — say a pidfd of the session, or a pipe whose write end
  // the session holds — the listener is closed; its tunnels run on until they end.
  // `ssh_upstream` overrides options.ssh_upstream for an ssh-agent listener.
  void add_listener(Fd listener, ListenerKind kind, Fd lifeline = {},
                    std::filesystem::path ssh_upstream = {});

  // Calls `on_ready` from the loop whenever `fd` (not owned) is readable or hangs up.
  void watch(int fd, std::function<void()> on_ready);
  void unwatch(int fd);

  // Runs the loop until stop(). stop() may be called from any thread or signal handler.
  void run();
  void stop();
  // One round: waits at most `timeout_ms` for events and handles them.
  void run_once(int timeout_ms);

  ProxyStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pw::net
