#include "net/resolver.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include "util/error.hpp"

namespace pw::net {
namespace {

constexpr std::size_t kMaxPending = 1024;
constexpr std::size_t kMaxAddresses = 8;

std::optional<sockaddr_storage> numeric(const std::string& addr, std::uint16_t port) {
  sockaddr_storage ss{};
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, addr.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    return ss;
  }
  ss = {};
  if (::inet_pton(AF_INET6, addr.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    return ss;
  }
  return std::nullopt;
}

}  // namespace

bool test_hooks_enabled() {
#ifdef PW_TEST_HOOKS
  return true;
#else
  return false;
#endif
}

std::optional<ResolveOverride> parse_resolve_override(const std::string& text, std::string& err) {
  ResolveOverride table;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      err = "expected name=address, got '" + item + "'";
      return std::nullopt;
    }
    const std::string addr = item.substr(eq + 1);
    if (!numeric(addr, 0)) {
      err = "not an IP address: '" + addr + "'";
      return std::nullopt;
    }
    table[item.substr(0, eq)].push_back(addr);
  }
  return table;
}

Resolver::Resolver(int threads, std::optional<ResolveOverride> table)
    : nthreads_(threads < 1 ? 1 : threads), table_(std::move(table)) {
  event_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!event_) throw SysError("eventfd");
}

Resolver::~Resolver() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

bool Resolver::submit(std::uint64_t id, const std::string& host, std::uint16_t port) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (jobs_.size() >= kMaxPending) return false;
    jobs_.push_back({id, host, port});
    // Threads start on first use: the proxy process is forked before any exist.
    if (threads_.size() < static_cast<std::size_t>(nthreads_)) {
      threads_.emplace_back([this] { work(); });
    }
  }
  cv_.notify_one();
  return true;
}

std::vector<Resolved> Resolver::take() {
  std::uint64_t v;
  while (::read(event_.get(), &v, sizeof v) > 0) {
  }
  std::lock_guard<std::mutex> g(mu_);
  return std::exchange(done_, {});
}

Resolved Resolver::resolve(std::uint64_t id, const std::string& host, std::uint16_t port) const {
  Resolved r;
  r.id = id;
  if (table_) {
    auto it = table_->find(host);
    if (it == table_->end()) {
      r.error = "not in the test resolver table";
      return r;
    }
    for (const auto& a : it->second) {
      if (auto ss = numeric(a, port)) r.addrs.push_back(*ss);
    }
    return r;
  }
  struct addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_ADDRCONFIG;
  struct addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    r.error = rc == EAI_SYSTEM ? std::string(std::strerror(errno)) : ::gai_strerror(rc);
    return r;
  }
  for (auto* ai = res; ai && r.addrs.size() < kMaxAddresses; ai = ai->ai_next) {
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    sockaddr_storage ss{};
    std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    r.addrs.push_back(ss);
  }
  ::freeaddrinfo(res);
  if (r.addrs.empty()) r.error = "no IPv4 or IPv6 address";
  return r;
}

void Resolver::work() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [this] { return stop_ || !jobs_.empty(); });
      if (stop_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    Resolved r = resolve(job.id, job.host, job.port);
    {
      std::lock_guard<std::mutex> g(mu_);
      done_.push_back(std::move(r));
    }
    const std::uint64_t one = 1;
    ssize_t n = ::write(event_.get(), &one, sizeof one);
    (void)n;
  }
}

}  // namespace pw::net
