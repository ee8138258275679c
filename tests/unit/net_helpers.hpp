// Loopback test servers and clients for the network proxy tests.
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include "net/process.hpp"
#include "net/proxy.hpp"
#include "util/fd.hpp"

namespace nettest {

using pw::Fd;

inline int count_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (struct dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n - 1;  // the directory's own fd
}

inline std::uint16_t port_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// A tool the test needs: missing means skip, or fail under PW_MUST_WORK=1.
inline bool have_tool(const std::string& name) {
  const std::string cmd = "command -v " + name + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) == 0) return true;
  const char* must = std::getenv("PW_MUST_WORK");
  if (must && std::string(must) == "1") FAIL(name << " is needed (PW_MUST_WORK=1)");
  WARN("skipped: " << name << " is not installed");
  return false;
}

// Runs a shell command, returns its exit status and (stdout+stderr) output.
inline int run(const std::string& cmd, std::string* out = nullptr) {
  std::FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p);
  std::string s;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) s.append(buf, n);
  const int st = ::pclose(p);
  if (out) *out = s;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

// Kills and reaps a helper process (a test server, an ssh-agent) when the test ends.
struct KillOnExit {
  pid_t pid;
  ~KillOnExit() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

inline Fd connect_to(std::uint16_t port) {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  timeval tv{10, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return s;
}

inline void send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    REQUIRE(n > 0);
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Reads until EOF (or error/timeout).
inline std::string read_all(int fd) {
  std::string s;
  char buf[65536];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) s.append(buf, static_cast<std::size_t>(n));
  return s;
}

inline std::string read_n(int fd, std::size_t want) {
  std::string s;
  char buf[65536];
  while (s.size() < want) {
    ssize_t n = ::recv(fd, buf, std::min(sizeof buf, want - s.size()), 0);
    if (n <= 0) break;
    s.append(buf, static_cast<std::size_t>(n));
  }
  return s;
}

// Reads an HTTP response head (through CRLFCRLF), byte by byte so nothing after it is lost.
inline std::string read_head(int fd) {
  std::string s;
  char c;
  while (!s.ends_with("\r\n\r\n") && ::recv(fd, &c, 1, 0) == 1) s += c;
  return s;
}

// An epoll echo server on 127.0.0.1: echoes everything, and answers a client's EOF with
// its own once the echo is out. Optionally speaks first with a banner.
class EchoServer {
 public:
  explicit EchoServer(std::string banner = {}) : banner_(std::move(banner)) {
    listener_ = pw::net::listen_loopback(0);
    port_ = port_of(listener_.get());
    REQUIRE(::pipe2(stop_, O_CLOEXEC) == 0);
    ep_.reset(::epoll_create1(EPOLL_CLOEXEC));  // here, not in the thread: fd counts stay exact
    thread_ = std::thread([this] { serve(); });
  }
  ~EchoServer() {
    if (::write(stop_[1], "x", 1) != 1) std::abort();
    thread_.join();
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  std::uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }
  std::size_t bytes_received() const { return received_total_.load(); }

 private:
  void serve() {
    Fd& ep = ep_;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listener_.get();
    ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, listener_.get(), &ev);
    ev.data.fd = stop_[0];
    ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, stop_[0], &ev);
    std::map<int, std::string> pending;
    for (;;) {
      epoll_event evs[64];
      int n = ::epoll_wait(ep.get(), evs, 64, -1);
      for (int i = 0; i < n; ++i) {
        const int fd = evs[i].data.fd;
        if (fd == stop_[0]) {
          for (auto& [c, _] : pending) ::close(c);
          return;
        }
        if (fd == listener_.get()) {
          int c = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
          if (c < 0) continue;
          ++accepted_;
          if (!banner_.empty()) ::send(c, banner_.data(), banner_.size(), MSG_NOSIGNAL);
          ev.events = EPOLLIN;
          ev.data.fd = c;
          ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, c, &ev);
          pending[c];
          continue;
        }
        char buf[65536];
        ssize_t r = ::recv(fd, buf, sizeof buf, 0);
        if (r > 0) {
          received_total_ += static_cast<std::size_t>(r);
          // Blocking echo: the proxy drains its side, so this never stalls for long.
          std::string_view s(buf, static_cast<std::size_t>(r));
          while (!s.empty()) {
            ssize_t w = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
            if (w <= 0) break;
            s.remove_prefix(static_cast<std::size_t>(w));
          }
          continue;
        }
        ::shutdown(fd, SHUT_WR);
        ::epoll_ctl(ep.get(), EPOLL_CTL_DEL, fd, nullptr);
        ::close(fd);
        pending.erase(fd);
      }
    }
  }

  std::string banner_;
  Fd listener_, ep_;
  std::uint16_t port_ = 0;
  int stop_[2] = {-1, -1};
  std::thread thread_;
  std::atomic<int> accepted_{0};
  std::atomic<std::size_t> received_total_{0};
};

// An in-process proxy on its own thread, serving one HTTP listener on 127.0.0.1.
class TestProxy {
 public:
  explicit TestProxy(pw::net::ProxyOptions opts, const std::filesystem::path& log = {}) {
    if (!log.empty()) log_ = pw::net::NetLog(log);
    proxy_ = std::make_unique<pw::net::Proxy>(std::move(opts), &log_);
    Fd l = pw::net::listen_loopback(0);
    port_ = port_of(l.get());
    proxy_->add_listener(std::move(l), pw::net::ListenerKind::Http);
  }
  void start() {
    thread_ = std::thread([this] { proxy_->run(); });
  }
  ~TestProxy() {
    proxy_->stop();
    if (thread_.joinable()) thread_.join();
  }
  pw::net::Proxy& proxy() { return *proxy_; }
  std::uint16_t port() const { return port_; }

 private:
  pw::net::NetLog log_;
  std::unique_ptr<pw::net::Proxy> proxy_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

inline std::string read_file(const std::filesystem::path& p) {
  std::string s;
  if (std::FILE* f = std::fopen(p.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    std::fclose(f);
  }
  return s;
}

// Waits until a unix socket at `path` accepts connections.
inline bool wait_for_socket(const std::string& path) {
  for (int i = 0; i < 500; ++i) {
    Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// A minimal TLS 1.3-shaped ClientHello naming `sni` (none if empty), in one record.
inline std::string client_hello(const std::string& sni) {
  auto put16 = [](std::string& v, std::size_t n) {
    v += static_cast<char>(n >> 8);
    v += static_cast<char>(n);
  };
  std::string ext;
  if (!sni.empty()) {
    std::string list;
    list += '\0';
    put16(list, sni.size());
    list += sni;
    std::string data;
    put16(data, list.size());
    data += list;
    put16(ext, 0);
    put16(ext, data.size());
    ext += data;
  }
  std::string body = "\x03\x03" + std::string(32, '\x5a') + std::string("\x00\x00\x02\x13\x01\x01\x00", 7);
  put16(body, ext.size());
  body += ext;
  std::string hs = "\x01";
  hs += '\0';
  put16(hs, body.size());
  hs += body;
  std::string rec = "\x16\x03\x01";
  put16(rec, hs.size());
  return rec + hs;
}

// A private temp dir removed at the end of the scope.
class TempDir {
 public:
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "pw-test-net.XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace nettest
