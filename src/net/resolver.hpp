// Name resolution off the proxy's event loop: getaddrinfo() blocks, so a few worker threads
// run it and hand results back through an eventfd. Lives only in the proxy process (threads
// and the supervisor's fork() must never meet).
#pragma once

#include <sys/socket.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "util/fd.hpp"

namespace pw::net {

// Test-only name table: when set, it is the only source of addresses (names not in it fail
// to resolve), so tests never touch real DNS. Parsed from "name=addr,name=addr,...".
using ResolveOverride = std::map<std::string, std::vector<std::string>>;
std::optional<ResolveOverride> parse_resolve_override(const std::string& text, std::string& err);

// Whether this build honours PW_TEST_RESOLVE (the PW_TEST_HOOKS CMake option; on when the
// test suite is built, off in release and package builds).
bool test_hooks_enabled();

struct Resolved {
  std::uint64_t id = 0;
  std::vector<sockaddr_storage> addrs;  // in getaddrinfo's preference order, port filled in
  std::string error;                    // set when addrs is empty
};

class Resolver {
 public:
  explicit Resolver(int threads = 4, std::optional<ResolveOverride> table = std::nullopt);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Becomes readable when results are waiting.
  int event_fd() const { return event_.get(); }
  // Queues a lookup; false when too many are pending already.
  bool submit(std::uint64_t id, const std::string& host, std::uint16_t port);
  // Takes every finished lookup (and clears the eventfd).
  std::vector<Resolved> take();

  // The lookup itself, synchronous (used by the workers; public for tests).
  Resolved resolve(std::uint64_t id, const std::string& host, std::uint16_t port) const;

 private:
  struct Job {
    std::uint64_t id;
    std::string host;
    std::uint16_t port;
  };
  void work();

  int nthreads_;
  std::optional<ResolveOverride> table_;
  Fd event_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  std::vector<Resolved> done_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
};

}  // namespace pw::net
