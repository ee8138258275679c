// Tunnel throughput and connect latency through pw's proxy engine against a direct loopback
// connection. Not a test: prints numbers for docs/network.md. Build and run: bench/proxy/run.sh
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "net/process.hpp"
#include "net/proxy.hpp"

using namespace pw;
using namespace pw::net;
using Clock = std::chrono::steady_clock;

namespace {

std::uint16_t port_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

Fd dial(std::uint16_t port) {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
  return s;
}

void send_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) std::abort();
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void read_exact(int fd, char* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) std::abort();
    p += r;
    n -= static_cast<std::size_t>(r);
  }
}

// Server: first byte 's' = sink (read to EOF, then reply "done"), 'e' = echo one byte.
void serve(int listener, std::atomic<bool>& stop) {
  while (!stop) {
    Fd c(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    if (!c) continue;
    int one = 1;
    ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::thread([c = std::move(c)]() mutable {
      char mode;
      if (::recv(c.get(), &mode, 1, 0) != 1) return;
      if (mode == 'e') {
        ::send(c.get(), "e", 1, MSG_NOSIGNAL);
        return;
      }
      std::vector<char> buf(1 << 20);
      while (::recv(c.get(), buf.data(), buf.size(), 0) > 0) {
      }
      ::send(c.get(), "done", 4, MSG_NOSIGNAL);
    }).detach();
  }
}

Fd open_stream(std::uint16_t server, std::uint16_t proxy) {
  if (proxy == 0) return dial(server);
  Fd c = dial(proxy);
  const std::string req = "CONNECT bench.test:" + std::to_string(server) + " HTTP/1.1\r\n\r\n";
  send_all(c.get(), req.data(), req.size());
  std::string head;
  char ch;
  while (!head.ends_with("\r\n\r\n")) {
    read_exact(c.get(), &ch, 1);
    head += ch;
  }
  if (!head.starts_with("HTTP/1.1 200")) std::abort();
  return c;
}

double throughput_mb_s(std::uint16_t server, std::uint16_t proxy, std::size_t bytes) {
  std::vector<char> chunk(1 << 20, 'x');
  Fd c = open_stream(server, proxy);
  const auto t0 = Clock::now();
  send_all(c.get(), "s", 1);
  for (std::size_t sent = 0; sent < bytes; sent += chunk.size()) send_all(c.get(), chunk.data(), chunk.size());
  ::shutdown(c.get(), SHUT_WR);
  char done[4];
  read_exact(c.get(), done, 4);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return static_cast<double>(bytes) / s / 1e6;
}

double connect_us(std::uint16_t server, std::uint16_t proxy, int rounds) {
  std::vector<double> t;
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = Clock::now();
    Fd c = open_stream(server, proxy);
    send_all(c.get(), "e", 1);
    char e;
    read_exact(c.get(), &e, 1);
    t.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t mib = argc > 1 ? std::stoul(argv[1]) : 1024;
  const int rounds = argc > 2 ? std::stoi(argv[2]) : 2000;
  Fd listener = listen_loopback(0);
  const std::uint16_t server = port_of(listener.get());
  std::atomic<bool> stop{false};
  std::thread srv([&] { serve(listener.get(), stop); });
  srv.detach();

  ProxyOptions o;
  o.splice = !(argc > 3 && std::string(argv[3]) == "copy");
  o.buffer_size = argc > 4 ? std::stoul(argv[4]) << 10 : o.buffer_size;
  o.policy = Policy::from_strings({"bench.test:" + std::to_string(server)}, true);
  o.resolve_override = ResolveOverride{{"bench.test", {"127.0.0.1"}}};
  Proxy proxy(o, nullptr);
  Fd pl = listen_loopback(0);
  const std::uint16_t pport = port_of(pl.get());
  proxy.add_listener(std::move(pl), ListenerKind::Http);
  std::thread loop([&] { proxy.run(); });

  const std::size_t bytes = mib << 20;
  throughput_mb_s(server, pport, 64 << 20);  // warm-up
  double direct = 0, via = 0;
  for (int i = 0; i < 3; ++i) {  // best of three each, interleaved
    direct = std::max(direct, throughput_mb_s(server, 0, bytes));
    via = std::max(via, throughput_mb_s(server, pport, bytes));
  }
  const double lat_direct = connect_us(server, 0, rounds);
  const double lat_via = connect_us(server, pport, rounds);
  std::printf("relay: %s, %zu KiB per direction\n", o.splice ? "splice" : "copy", o.buffer_size >> 10);
  std::printf("throughput, %zu MiB one way: direct %.0f MB/s, through the proxy %.0f MB/s, ratio %.2f\n", mib, direct,
              via, via / direct);
  std::printf("connect + first byte round trip (median of %d): direct %.0f us, through the proxy %.0f us (+%.0f us)\n",
              rounds, lat_direct, lat_via, lat_via - lat_direct);
  proxy.stop();
  loop.join();
  stop = true;
  return 0;
}
