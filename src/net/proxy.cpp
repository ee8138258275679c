#include "net/proxy.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <unordered_map>

#include "net/http.hpp"
#include "net/tls.hpp"
#include "util/error.hpp"

namespace fs = std::filesystem;

namespace pw::net {
namespace {

using Clock = std::chrono::steady_clock;

// epoll with one callback per fd. Events carry (generation, fd), so an event for an fd
// that was closed and reused within the same epoll_wait batch is dropped, not misrouted.
class Loop {
 public:
  Loop() : ep_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (!ep_) throw SysError("epoll_create1");
  }

  void add(int fd, std::uint32_t events, std::function<void(std::uint32_t)> cb) {
    Reg& r = regs_[fd];
    r.gen = next_gen_++;
    r.events = 0;
    r.in_epoll = false;
    r.cb = std::move(cb);
    set(fd, events);
  }

  // Interest 0 takes the fd out of epoll altogether: a hung-up socket would otherwise
  // report EPOLLHUP on every round while we have nothing to do with it.
  void set(int fd, std::uint32_t events) {
    auto it = regs_.find(fd);
    if (it == regs_.end()) return;
    Reg& r = it->second;
    if (r.in_epoll && r.events == events) return;
    struct epoll_event ev {};
    ev.events = events;
    ev.data.u64 = (std::uint64_t{r.gen} << 32) | static_cast<std::uint32_t>(fd);
    if (events == 0) {
      if (r.in_epoll) ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
      r.in_epoll = false;
    } else if (r.in_epoll) {
      ::epoll_ctl(ep_.get(), EPOLL_CTL_MOD, fd, &ev);
    } else {
      if (::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) throw SysError("epoll_ctl add");
      r.in_epoll = true;
    }
    r.events = events;
  }

  void del(int fd) {
    auto it = regs_.find(fd);
    if (it == regs_.end()) return;
    if (it->second.in_epoll) ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
    regs_.erase(it);
  }

  void wait(int timeout_ms) {
    struct epoll_event evs[256];
    int n = ::epoll_wait(ep_.get(), evs, 256, timeout_ms);
    for (int i = 0; i < n; ++i) {
      const int fd = static_cast<int>(evs[i].data.u64 & 0xffffffffu);
      const auto gen = static_cast<std::uint32_t>(evs[i].data.u64 >> 32);
      auto it = regs_.find(fd);
      if (it == regs_.end() || it->second.gen != gen) continue;
      auto cb = it->second.cb;  // the callback may unregister itself
      cb(evs[i].events);
    }
  }

 private:
  struct Reg {
    std::uint32_t gen = 0;
    std::uint32_t events = 0;
    bool in_epoll = false;
    std::function<void(std::uint32_t)> cb;
  };
  Fd ep_;
  std::unordered_map<int, Reg> regs_;
  std::uint32_t next_gen_ = 1;
};

// A fixed-capacity byte buffer, allocated on first use.
class Buffer {
 public:
  explicit Buffer(std::size_t cap) : cap_(cap) {}
  std::size_t size() const { return end_ - start_; }
  bool empty() const { return end_ == start_; }
  std::size_t space() const { return cap_ - size(); }
  char* write_ptr(std::size_t& avail) {
    if (!data_) data_ = std::make_unique<char[]>(cap_);
    if (end_ == cap_ && start_ > 0) compact();
    avail = cap_ - end_;
    return data_.get() + end_;
  }
  void produced(std::size_t n) { end_ += n; }
  const char* read_ptr() const { return data_.get() + start_; }
  void consumed(std::size_t n) {
    start_ += n;
    if (start_ == end_) start_ = end_ = 0;
  }
  std::string_view view() const { return data_ ? std::string_view(read_ptr(), size()) : std::string_view(); }
  void clear() { start_ = end_ = 0; }
  void append(std::string_view s) {  // callers keep s within space()
    std::size_t avail;
    char* p = write_ptr(avail);
    if (avail < s.size()) {
      compact();
      p = write_ptr(avail);
    }
    const std::size_t n = std::min(avail, s.size());
    std::memcpy(p, s.data(), n);
    produced(n);
  }

 private:
  void compact() {
    if (start_ == 0) return;
    std::memmove(data_.get(), data_.get() + start_, size());
    end_ -= start_;
    start_ = 0;
  }
  std::unique_ptr<char[]> data_;
  std::size_t cap_, start_ = 0, end_ = 0;
};

// recv into a buffer: 1 data, 0 EOF, -1 nothing now (EAGAIN), -2 error.
int recv_into(int fd, Buffer& b, std::size_t limit) {
  std::size_t avail;
  char* p = b.write_ptr(avail);
  avail = std::min(avail, limit);
  if (avail == 0) return -1;
  ssize_t n;
  do {
    n = ::recv(fd, p, avail, 0);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    b.produced(static_cast<std::size_t>(n));
    return 1;
  }
  if (n == 0) return 0;
  return (errno == EAGAIN || errno == EWOULDBLOCK) ? -1 : -2;
}

// send from a buffer: false on error.
bool send_from(int fd, Buffer& b) {
  if (b.empty()) return true;
  ssize_t n;
  do {
    n = ::send(fd, b.read_ptr(), b.size(), MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    b.consumed(static_cast<std::size_t>(n));
    return true;
  }
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

bool send_string(int fd, std::string& s) {
  if (s.empty()) return true;
  ssize_t n;
  do {
    n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    s.erase(0, static_cast<std::size_t>(n));
    return true;
  }
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

// A pipe relaying one direction of a tunnel with splice(2): the bytes move between the two
// sockets as page references, never copied through user space.
struct Pipe {
  Fd r, w;
  std::size_t bytes = 0;  // in the pipe
  std::size_t cap = 0;

  bool open(std::size_t want) {
    int p[2];
    if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return false;
    r.reset(p[0]);
    w.reset(p[1]);
    ::fcntl(p[1], F_SETPIPE_SZ, static_cast<int>(want));
    const int got = ::fcntl(p[1], F_GETPIPE_SZ);
    cap = got > 0 ? static_cast<std::size_t>(got) : 65536;
    return true;
  }
  explicit operator bool() const { return static_cast<bool>(r); }
};

// splice from a socket into the pipe: 1 data, 0 EOF, -1 nothing now, -2 error.
int splice_in(int from, Pipe& p) {
  if (p.bytes >= p.cap) return -1;
  ssize_t n;
  do {
    n = ::splice(from, nullptr, p.w.get(), nullptr, p.cap - p.bytes, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    p.bytes += static_cast<std::size_t>(n);
    return 1;
  }
  if (n == 0) return 0;
  return errno == EAGAIN ? -1 : -2;
}

bool splice_out(Pipe& p, int to) {
  if (p.bytes == 0) return true;
  ssize_t n;
  do {
    n = ::splice(p.r.get(), nullptr, to, nullptr, p.bytes, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    p.bytes -= static_cast<std::size_t>(n);
    return true;
  }
  return errno == EAGAIN;
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

socklen_t addr_len(const sockaddr_storage& a) {
  return a.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

// A fatal TLS alert, access_denied (49): the client's TLS library reports it by name.
constexpr char kTlsAccessDenied[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31};

enum class TState { Head, Resolving, Connecting, Open, Draining };

struct Tunnel {
  Tunnel(std::uint64_t i, Fd c, std::size_t buf) : id(i), client(std::move(c)), c2u(buf), u2c(buf) {}
  std::uint64_t id;
  Fd client, upstream;
  TState state = TState::Head;
  Buffer c2u, u2c;
  Pipe c2u_pipe, u2c_pipe;  // once open, that direction's bytes go through the pipe
  Request req;
  std::string target;  // host:port as asked, for the log
  std::string kind;    // "connect" or "http"
  std::string host;    // normalised
  std::string allow_reason;
  std::vector<sockaddr_storage> addrs;
  std::size_t next_addr = 0;
  int last_error = 0;
  bool client_eof = false, upstream_eof = false, client_shut = false, upstream_shut = false;
  bool gated = false;          // CONNECT: client bytes held until the first flight is checked
  bool hello_started = false;  // a partial ClientHello is being held
  bool http = false;
  std::uint64_t body_left = 0;
  Clock::time_point deadline;
};

struct AgentConn {
  std::uint64_t id;
  Fd client, upstream;
  fs::path upstream_path;
  std::string in, out, up_out, up_in;
  bool waiting = false;  // a request is with the real agent
  bool list_request = false;
  bool client_eof = false;
  Clock::time_point deadline;
};

struct Listener {
  Fd fd;
  ListenerKind kind;
  Fd lifeline;
  fs::path ssh_upstream;
};

}  // namespace

struct Proxy::Impl {
  Impl(ProxyOptions o, NetLog* l)
      : opts(std::move(o)), log(l), resolver(opts.resolver_threads, opts.resolve_override) {
    stop_fd.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!stop_fd) throw SysError("eventfd");
    loop.add(stop_fd.get(), EPOLLIN, [this](std::uint32_t) {
      std::uint64_t v;
      while (::read(stop_fd.get(), &v, sizeof v) > 0) {
      }
      stopping = true;
    });
    loop.add(resolver.event_fd(), EPOLLIN, [this](std::uint32_t) {
      for (auto& r : resolver.take()) on_resolved(r);
    });
    const auto shortest = std::min({opts.timeouts.connect, opts.timeouts.request, opts.timeouts.idle});
    sweep_every = std::clamp(shortest / 4, std::chrono::milliseconds(5), std::chrono::milliseconds(1000));
    next_sweep = Clock::now() + sweep_every;
  }

  ProxyOptions opts;
  NetLog* log;
  Loop loop;
  Resolver resolver;
  Fd stop_fd;
  bool stopping = false;
  std::map<int, std::unique_ptr<Listener>> listeners;
  std::unordered_map<std::uint64_t, std::unique_ptr<Tunnel>> tunnels;
  std::unordered_map<std::uint64_t, std::unique_ptr<AgentConn>> agents;
  std::uint64_t next_id = 1;
  std::size_t accepted = 0;
  std::chrono::milliseconds sweep_every{1000};
  Clock::time_point next_sweep;
  std::optional<Clock::time_point> paused_until;

  void note(const std::string& target, Verdict v, std::string_view kind, const std::string& reason) {
    if (log) log->write(target, v, kind, reason);
  }

  // ---- listeners -------------------------------------------------------------------

  void add_listener(Fd fd, ListenerKind kind, Fd lifeline, fs::path upstream) {
    int acc = 0;
    socklen_t len = sizeof acc;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 || !acc) {
      throw Error("proxy: the socket handed over is not listening");
    }
    // The socket's file status flags are shared with the session that made it; accept4
    // below never blocks because it only runs when epoll says a connection is waiting,
    // but a competing accept could empty the queue first: make ours non-blocking anyway.
    const int fl = ::fcntl(fd.get(), F_GETFL);
    if (fl >= 0) ::fcntl(fd.get(), F_SETFL, fl | O_NONBLOCK);
    auto l = std::make_unique<Listener>();
    l->kind = kind;
    l->ssh_upstream = upstream.empty() ? opts.ssh_upstream : std::move(upstream);
    const int lfd = fd.get();
    l->fd = std::move(fd);
    loop.add(lfd, EPOLLIN, [this, lfd](std::uint32_t) { accept_on(lfd); });
    if (lifeline) {
      const int life = lifeline.get();
      l->lifeline = std::move(lifeline);
      loop.add(life, EPOLLIN, [this, lfd](std::uint32_t) { remove_listener(lfd); });
    }
    listeners.emplace(lfd, std::move(l));
  }

  void remove_listener(int lfd) {
    auto it = listeners.find(lfd);
    if (it == listeners.end()) return;
    loop.del(lfd);
    if (it->second->lifeline) loop.del(it->second->lifeline.get());
    listeners.erase(it);
  }

  void accept_on(int lfd) {
    auto it = listeners.find(lfd);
    if (it == listeners.end()) return;
    Listener& l = *it->second;
    for (int i = 0; i < 64; ++i) {
      Fd c(::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!c) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: stop accepting for a moment instead of spinning on a
          // listener that stays readable.
          for (auto& [fd, _] : listeners) loop.set(fd, 0);
          paused_until = Clock::now() + std::chrono::milliseconds(100);
        }
        return;
      }
      ++accepted;
      if (tunnels.size() + agents.size() >= opts.max_connections) continue;  // closed by ~Fd
      const std::uint64_t id = next_id++;
      if (l.kind == ListenerKind::Http) {
        set_nodelay(c.get());
        auto t = std::make_unique<Tunnel>(id, std::move(c), opts.buffer_size);
        t->deadline = Clock::now() + opts.timeouts.request;
        const int cfd = t->client.get();
        tunnels.emplace(id, std::move(t));
        loop.add(cfd, EPOLLIN, [this, id](std::uint32_t ev) { tunnel_event(id, false, ev); });
      } else {
        auto a = std::make_unique<AgentConn>();
        a->id = id;
        a->client = std::move(c);
        a->upstream_path = l.ssh_upstream;
        a->deadline = Clock::now() + opts.timeouts.idle;
        const int cfd = a->client.get();
        agents.emplace(id, std::move(a));
        loop.add(cfd, EPOLLIN, [this, id](std::uint32_t ev) { agent_event(id, false, ev); });
      }
    }
  }

  // ---- tunnels ---------------------------------------------------------------------

  Tunnel* find_tunnel(std::uint64_t id) {
    auto it = tunnels.find(id);
    return it == tunnels.end() ? nullptr : it->second.get();
  }

  void close_tunnel(Tunnel& t) {
    loop.del(t.client.get());
    if (t.upstream) loop.del(t.upstream.get());
    tunnels.erase(t.id);  // destroys t
  }

  void drop_upstream(Tunnel& t) {
    if (!t.upstream) return;
    loop.del(t.upstream.get());
    t.upstream.reset();
  }

  // Answers with `text` and closes once it is written (and the client had a moment to
  // read it: closing with unread input would reset the connection and lose the answer).
  void respond(Tunnel& t, const std::string& text) {
    drop_upstream(t);
    t.c2u.clear();
    t.u2c.clear();
    t.u2c.append(text);
    t.state = TState::Draining;
    t.client_shut = false;
    t.deadline = Clock::now() + std::chrono::seconds(5);
    drain_event(t, EPOLLOUT);
  }

  void refuse(Tunnel& t, int status, Verdict v, const std::string& reason) {
    note(t.target.empty() ? "?" : t.target, v, t.kind.empty() ? "request" : t.kind, reason);
    respond(t, refusal_response(status, reason));
  }

  // Bytes waiting in one direction, and room for more, whichever way it relays.
  static std::size_t pending(const Buffer& b, const Pipe& p) { return p ? p.bytes : b.size(); }
  static std::size_t room(const Buffer& b, const Pipe& p) { return p ? p.cap - p.bytes : b.space(); }
  static int fill(int from, Buffer& b, Pipe& p, std::size_t limit) {
    return p ? splice_in(from, p) : recv_into(from, b, limit);
  }
  static bool drain(Buffer& b, Pipe& p, int to) { return p ? splice_out(p, to) : send_from(to, b); }

  // A plain CONNECT tunnel past its first flight switches a direction to splice once its
  // buffer is empty. Plain http stays buffered (its body is counted); so does a direction
  // whose pipe cannot be had (out of fds).
  void maybe_splice(Tunnel& t) {
    if (!opts.splice || t.state != TState::Open || t.http || t.gated) return;
    if (!t.c2u_pipe && t.c2u.empty()) t.c2u_pipe.open(opts.buffer_size);
    if (!t.u2c_pipe && t.u2c.empty()) t.u2c_pipe.open(opts.buffer_size);
  }

  bool can_read_client(const Tunnel& t) const {
    if (t.state == TState::Head) return t.c2u.size() < kMaxRequestHead;
    if (t.state == TState::Draining) return t.client_shut;  // discarding until EOF
    if (t.state != TState::Open || t.client_eof || room(t.c2u, t.c2u_pipe) == 0) return false;
    if (t.http && t.body_left == 0) return false;
    return true;
  }

  void update(Tunnel& t) {
    std::uint32_t cev = 0, uev = 0;
    if (can_read_client(t)) cev |= EPOLLIN;
    if ((t.state == TState::Open || t.state == TState::Draining) && pending(t.u2c, t.u2c_pipe) > 0) cev |= EPOLLOUT;
    if (t.state == TState::Connecting) uev = EPOLLOUT;
    if (t.state == TState::Open) {
      if (!t.upstream_eof && room(t.u2c, t.u2c_pipe) > 0) uev |= EPOLLIN;
      if (!t.gated && pending(t.c2u, t.c2u_pipe) > 0) uev |= EPOLLOUT;
    }
    loop.set(t.client.get(), cev);
    if (t.upstream) loop.set(t.upstream.get(), uev);
  }

  void tunnel_event(std::uint64_t id, bool upstream_side, std::uint32_t ev) {
    Tunnel* tp = find_tunnel(id);
    if (!tp) return;
    Tunnel& t = *tp;
    if (upstream_side) return upstream_event(t, ev);
    switch (t.state) {
      case TState::Head:
        return read_head(t);
      case TState::Resolving:
      case TState::Connecting:
        // No interest in the client meanwhile: this is a hangup or an error.
        return close_tunnel(t);
      case TState::Draining:
        return drain_event(t, ev);
      case TState::Open:
        break;
    }
    if (ev & EPOLLOUT) {
      if (!drain(t.u2c, t.u2c_pipe, t.client.get())) return close_tunnel(t);
      t.deadline = Clock::now() + opts.timeouts.idle;
    }
    if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && can_read_client(t)) {
      std::size_t limit = t.http ? static_cast<std::size_t>(std::min<std::uint64_t>(t.body_left, t.c2u.space()))
                                 : t.c2u.space();
      const std::size_t before = t.c2u.size();
      const int r = fill(t.client.get(), t.c2u, t.c2u_pipe, limit);
      if (r == -2) return close_tunnel(t);
      if (r == 0) t.client_eof = true;
      if (r == 1) {
        if (t.http) t.body_left -= t.c2u.size() - before;
        if (!t.gated) t.deadline = Clock::now() + opts.timeouts.idle;
      }
      if (t.gated && !classify(t)) return;
    }
    if (!t.gated && !drain(t.c2u, t.c2u_pipe, t.upstream.get())) return close_tunnel(t);
    settle(t);
  }

  void upstream_event(Tunnel& t, std::uint32_t ev) {
    if (t.state == TState::Connecting) {
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(t.upstream.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err == 0 && (ev & EPOLLERR)) err = ECONNREFUSED;
      if (err != 0) {
        t.last_error = err;
        drop_upstream(t);
        return start_connect(t);
      }
      return on_connected(t);
    }
    if (t.state != TState::Open) return;
    if (ev & EPOLLOUT) {
      if (!t.gated && !drain(t.c2u, t.c2u_pipe, t.upstream.get())) return close_tunnel(t);
      t.deadline = Clock::now() + opts.timeouts.idle;
    }
    if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !t.upstream_eof && room(t.u2c, t.u2c_pipe) > 0) {
      const int r = fill(t.upstream.get(), t.u2c, t.u2c_pipe, t.u2c.space());
      if (r == -2) return close_tunnel(t);
      if (r == 0) t.upstream_eof = true;
      if (r == 1) t.deadline = Clock::now() + opts.timeouts.idle;
      if (!drain(t.u2c, t.u2c_pipe, t.client.get())) return close_tunnel(t);
    }
    settle(t);
  }

  // Propagates EOFs as half-closes once the data before them is delivered, and ends the
  // tunnel when both directions are done.
  void settle(Tunnel& t) {
    if (t.client_eof && t.gated) {
      if (!t.c2u.empty()) return close_tunnel(t);  // left in the middle of a ClientHello
      t.gated = false;
    }
    if (t.client_eof && pending(t.c2u, t.c2u_pipe) == 0 && !t.upstream_shut) {
      ::shutdown(t.upstream.get(), SHUT_WR);
      t.upstream_shut = true;
    }
    if (t.upstream_eof && pending(t.u2c, t.u2c_pipe) == 0 && !t.client_shut) {
      // Plain http: the origin closes after its one response, and so do we.
      if (t.http) return close_tunnel(t);
      ::shutdown(t.client.get(), SHUT_WR);
      t.client_shut = true;
    }
    if (t.client_shut && t.upstream_shut) return close_tunnel(t);
    maybe_splice(t);
    update(t);
  }

  void drain_event(Tunnel& t, std::uint32_t ev) {
    if (ev & EPOLLERR) return close_tunnel(t);
    if (!t.u2c.empty()) {
      if (!send_from(t.client.get(), t.u2c)) return close_tunnel(t);
    }
    if (t.u2c.empty() && !t.client_shut) {
      ::shutdown(t.client.get(), SHUT_WR);
      t.client_shut = true;
      t.deadline = std::min(t.deadline, Clock::now() + std::chrono::seconds(2));
    }
    if (t.client_shut && (ev & (EPOLLIN | EPOLLHUP))) {
      char sink[4096];
      ssize_t n = ::recv(t.client.get(), sink, sizeof sink, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return close_tunnel(t);
    }
    update(t);
  }

  void read_head(Tunnel& t) {
    const int r = recv_into(t.client.get(), t.c2u, kMaxRequestHead - t.c2u.size());
    if (r == 0 || r == -2) return close_tunnel(t);
    if (r == -1) return update(t);
    ParseResult p = parse_request_head(t.c2u.view());
    if (p.status == ParseResult::NeedMore) return update(t);
    if (p.status == ParseResult::Bad) {
      t.kind = "request";
      return refuse(t, p.http_status, Verdict::Deny, p.error);
    }
    t.c2u.consumed(p.head_size);
    t.req = std::move(p.req);
    t.target = t.req.host + ":" + std::to_string(t.req.port);
    t.kind = t.req.connect ? "connect" : "http";
    t.http = !t.req.connect;
    const Decision d = opts.policy.decide(t.req.host, t.req.port);
    if (!d.allow) return refuse(t, 403, Verdict::Deny, d.reason);
    std::string err;
    t.host = normalise_host(t.req.host, err).value_or(t.req.host);
    t.allow_reason = d.reason;
    t.state = TState::Resolving;
    t.deadline = Clock::now() + opts.timeouts.connect;
    if (!resolver.submit(t.id, t.host, t.req.port)) {
      return refuse(t, 503, Verdict::Fail, "too many name lookups in progress");
    }
    update(t);
  }

  void on_resolved(const Resolved& r) {
    Tunnel* tp = find_tunnel(r.id);
    if (!tp || tp->state != TState::Resolving) return;
    Tunnel& t = *tp;
    if (r.addrs.empty()) return refuse(t, 502, Verdict::Fail, "cannot resolve " + t.host + ": " + r.error);
    const Decision a = opts.policy.check_addresses(r.addrs);
    if (!a.allow) return refuse(t, 403, Verdict::Deny, a.reason);
    note(t.target, Verdict::Allow, t.kind, t.allow_reason + "; " + a.reason);
    t.addrs = r.addrs;
    start_connect(t);
  }

  void start_connect(Tunnel& t) {
    while (t.next_addr < t.addrs.size()) {
      const sockaddr_storage& a = t.addrs[t.next_addr++];
      Fd s(::socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (!s) {
        t.last_error = errno;
        continue;
      }
      const int rc = ::connect(s.get(), reinterpret_cast<const sockaddr*>(&a), addr_len(a));
      if (rc != 0 && errno != EINPROGRESS) {
        t.last_error = errno;
        continue;
      }
      const int ufd = s.get();
      t.upstream = std::move(s);
      const std::uint64_t id = t.id;
      loop.add(ufd, 0, [this, id](std::uint32_t ev) { tunnel_event(id, true, ev); });
      if (rc == 0) return on_connected(t);
      t.state = TState::Connecting;
      return update(t);
    }
    refuse(t, 502, Verdict::Fail,
           "cannot connect to " + t.target + ": " + std::strerror(t.last_error ? t.last_error : EHOSTUNREACH));
  }

  void on_connected(Tunnel& t) {
    set_nodelay(t.upstream.get());
    t.state = TState::Open;
    t.deadline = Clock::now() + opts.timeouts.idle;
    if (t.req.connect) {
      t.u2c.append("HTTP/1.1 200 Connection established\r\n\r\n");
      t.gated = true;
      if (!t.c2u.empty() && !classify(t)) return;  // the client did not wait for the 200
    } else {
      const std::string head = origin_request_head(t.req);
      const std::uint64_t have = t.c2u.size();
      const std::uint64_t take = std::min(have, t.req.content_length);
      // Anything past the body would be a second request, perhaps for another host
      // through this connection: it is dropped.
      const std::string body(t.c2u.view().substr(0, static_cast<std::size_t>(take)));
      t.c2u.clear();
      t.c2u.append(head);
      t.c2u.append(body);
      t.body_left = t.req.content_length - take;
    }
    if (!send_from(t.client.get(), t.u2c)) return close_tunnel(t);
    if (!t.gated && !send_from(t.upstream.get(), t.c2u)) return close_tunnel(t);
    settle(t);
  }

  // The first client bytes of a CONNECT tunnel: a TLS ClientHello must name the CONNECT
  // host. Returns false if the tunnel was closed.
  bool classify(Tunnel& t) {
    const std::string_view v = t.c2u.view();
    const ClientHello h = parse_client_hello(
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(v.data()), v.size()));
    std::string why;
    switch (h.status) {
      case HelloStatus::NeedMore:
        if (!t.hello_started) {
          t.hello_started = true;
          t.deadline = Clock::now() + opts.timeouts.request;
        }
        if (t.c2u.space() == 0) why = "TLS ClientHello too large";
        break;
      case HelloStatus::NotTls:
        t.gated = false;
        t.deadline = Clock::now() + opts.timeouts.idle;
        return true;
      case HelloStatus::Malformed:
        why = "malformed TLS ClientHello: " + h.error;
        break;
      case HelloStatus::Ok: {
        std::string err;
        std::optional<std::string> sni;
        if (h.sni) sni = normalise_host(*h.sni, err);
        if (h.encrypted_hello) {
          why = "encrypted ClientHello (ECH) hides the server name";
        } else if (!h.sni) {
          why = "TLS ClientHello without a server name (SNI)";
        } else if (!sni) {
          why = "TLS server name \"" + escape(*h.sni) + "\" is not a host name";
        } else if (*sni != t.host) {
          why = "TLS server name \"" + escape(*h.sni) + "\" differs from the CONNECT host";
        } else {
          t.gated = false;
          t.deadline = Clock::now() + opts.timeouts.idle;
          return true;
        }
        break;
      }
    }
    if (why.empty()) return true;  // wait for the rest
    note(t.target, Verdict::Deny, "tls", why);
    // The 200 is out already: answer in TLS, with a fatal access_denied alert.
    t.u2c.clear();
    respond(t, std::string(kTlsAccessDenied, sizeof kTlsAccessDenied));
    return false;
  }

  // ---- ssh-agent clients -----------------------------------------------------------

  AgentConn* find_agent(std::uint64_t id) {
    auto it = agents.find(id);
    return it == agents.end() ? nullptr : it->second.get();
  }

  void close_agent(AgentConn& a) {
    loop.del(a.client.get());
    if (a.upstream) loop.del(a.upstream.get());
    agents.erase(a.id);
  }

  void agent_upstream_gone(AgentConn& a) {
    if (a.upstream) loop.del(a.upstream.get());
    a.upstream.reset();
    a.up_in.clear();
    a.up_out.clear();
    if (a.waiting) {
      a.waiting = false;
      a.out += agent::failure_message();
      note("ssh-agent", Verdict::Fail, "ssh-agent", "the real agent closed the connection");
    }
  }

  bool connect_agent_upstream(AgentConn& a) {
    if (a.upstream) return true;
    struct sockaddr_un sa {};
    sa.sun_family = AF_UNIX;
    if (a.upstream_path.empty() || a.upstream_path.string().size() >= sizeof sa.sun_path) return false;
    std::strcpy(sa.sun_path, a.upstream_path.c_str());
    Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!s || ::connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return false;
    const int ufd = s.get();
    a.upstream = std::move(s);
    const std::uint64_t id = a.id;
    loop.add(ufd, EPOLLIN, [this, id](std::uint32_t ev) { agent_event(id, true, ev); });
    return true;
  }

  static std::uint32_t be32(const std::string& s) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
  }

  // Handles complete requests from the client while none is at the real agent.
  // Returns false if the connection was closed.
  bool agent_process(AgentConn& a) {
    while (!a.waiting && a.in.size() >= 4 && a.out.size() < agent::kMaxMessage) {
      const std::uint32_t len = be32(a.in);
      if (len == 0 || len > agent::kMaxMessage) {
        note("ssh-agent", Verdict::Deny, "ssh-agent", "message of " + std::to_string(len) + " bytes");
        close_agent(a);
        return false;
      }
      if (a.in.size() < 4 + std::size_t{len}) break;
      const std::string msg = a.in.substr(0, 4 + len);
      a.in.erase(0, 4 + len);
      const auto payload = std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(msg.data()) + 4, len);
      const agent::Verdict v = opts.ssh_filter.check_request(payload);
      if (!v.forward) {
        note("ssh-agent", Verdict::Deny, "ssh-agent", v.what + ": " + v.reason);
        a.out += agent::failure_message();
        continue;
      }
      if (!connect_agent_upstream(a)) {
        note("ssh-agent", Verdict::Fail, "ssh-agent",
             v.what + ": cannot reach the real agent at " + a.upstream_path.string());
        a.out += agent::failure_message();
        continue;
      }
      if (payload[0] != agent::kRequestIdentities) note("ssh-agent", Verdict::Allow, "ssh-agent", v.what);
      a.list_request = payload[0] == agent::kRequestIdentities;
      a.up_out = msg;
      a.waiting = true;
      if (!send_string(a.upstream.get(), a.up_out)) agent_upstream_gone(a);
    }
    return true;
  }

  void agent_update(AgentConn& a) {
    std::uint32_t cev = 0;
    if (!a.client_eof && a.in.size() < 4 + agent::kMaxMessage) cev |= EPOLLIN;
    if (!a.out.empty()) cev |= EPOLLOUT;
    loop.set(a.client.get(), cev);
    if (a.upstream) loop.set(a.upstream.get(), EPOLLIN | (a.up_out.empty() ? 0u : static_cast<std::uint32_t>(EPOLLOUT)));
  }

  void agent_event(std::uint64_t id, bool upstream_side, std::uint32_t ev) {
    AgentConn* ap = find_agent(id);
    if (!ap) return;
    AgentConn& a = *ap;
    a.deadline = Clock::now() + opts.timeouts.idle;
    if (!upstream_side) {
      if ((ev & EPOLLOUT) && !send_string(a.client.get(), a.out)) return close_agent(a);
      if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        char buf[16384];
        const std::size_t room = std::min(sizeof buf, 4 + agent::kMaxMessage - a.in.size());
        ssize_t n = ::recv(a.client.get(), buf, room, 0);
        if (n == 0) a.client_eof = true;
        if (n < 0 && errno != EAGAIN && errno != EINTR) return close_agent(a);
        if (n > 0) a.in.append(buf, static_cast<std::size_t>(n));
      }
    } else {
      if ((ev & EPOLLOUT) && !send_string(a.upstream.get(), a.up_out)) agent_upstream_gone(a);
      if (a.upstream && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        char buf[16384];
        const std::size_t room = std::min(sizeof buf, 4 + agent::kMaxMessage - a.up_in.size());
        ssize_t n = ::recv(a.upstream.get(), buf, room, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || (n > 0 && !a.waiting)) {
          agent_upstream_gone(a);
        } else if (n > 0) {
          a.up_in.append(buf, static_cast<std::size_t>(n));
          if (a.up_in.size() >= 4) {
            const std::uint32_t len = be32(a.up_in);
            if (len == 0 || len > agent::kMaxMessage) {
              agent_upstream_gone(a);
            } else if (a.up_in.size() >= 4 + std::size_t{len}) {
              agent_answer(a, a.up_in.substr(4, len));
              a.up_in.erase(0, 4 + len);
              a.waiting = false;
            }
          }
        }
      }
    }
    if (!agent_process(a)) return;
    if (!a.out.empty() && !send_string(a.client.get(), a.out)) return close_agent(a);
    if (a.client_eof && !a.waiting && a.out.empty()) return close_agent(a);
    agent_update(a);
  }

  void agent_answer(AgentConn& a, const std::string& payload) {
    const auto p = std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size());
    std::string reply = payload;
    if (a.list_request) {
      std::size_t held = 0, shown = 0;
      auto filtered = opts.ssh_filter.filter_identities(p, held, shown);
      if (!filtered) {
        reply = std::string(1, static_cast<char>(agent::kFailure));
        note("ssh-agent", Verdict::Fail, "ssh-agent", "list keys: malformed answer from the real agent");
      } else {
        reply = *filtered;
        note("ssh-agent", Verdict::Allow, "ssh-agent",
             "list keys: " + std::to_string(shown) + " of " + std::to_string(held) + " shown");
      }
    }
    const auto n = static_cast<std::uint32_t>(reply.size());
    const char len[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                         static_cast<char>(n)};
    a.out.append(len, 4);
    a.out += reply;
  }

  // ---- time ------------------------------------------------------------------------

  void sweep() {
    const auto now = Clock::now();
    std::vector<std::uint64_t> expired;
    for (auto& [id, t] : tunnels) {
      if (now >= t->deadline) expired.push_back(id);
    }
    for (auto id : expired) {
      Tunnel* t = find_tunnel(id);
      if (!t) continue;
      if (t->state == TState::Resolving || t->state == TState::Connecting) {
        refuse(*t, 504, Verdict::Fail, "connect timeout");
      } else {
        close_tunnel(*t);
      }
    }
    expired.clear();
    for (auto& [id, a] : agents) {
      if (now >= a->deadline) expired.push_back(id);
    }
    for (auto id : expired) {
      if (AgentConn* a = find_agent(id)) close_agent(*a);
    }
    if (paused_until && now >= *paused_until) {
      paused_until.reset();
      for (auto& [fd, _] : listeners) loop.set(fd, EPOLLIN);
    }
  }

  void run_once(int timeout_ms) {
    const auto now = Clock::now();
    if (now >= next_sweep) {
      sweep();
      next_sweep = now + sweep_every;
    }
    const auto until_sweep = std::chrono::duration_cast<std::chrono::milliseconds>(next_sweep - now).count() + 1;
    const int t = timeout_ms < 0 ? static_cast<int>(until_sweep)
                                 : static_cast<int>(std::min<long long>(timeout_ms, until_sweep));
    loop.wait(t);
  }
};

Proxy::Proxy(ProxyOptions options, NetLog* log) : impl_(std::make_unique<Impl>(std::move(options), log)) {}
Proxy::~Proxy() = default;

void Proxy::add_listener(Fd listener, ListenerKind kind, Fd lifeline, fs::path ssh_upstream) {
  impl_->add_listener(std::move(listener), kind, std::move(lifeline), std::move(ssh_upstream));
}

void Proxy::watch(int fd, std::function<void()> on_ready) {
  impl_->loop.add(fd, EPOLLIN, [cb = std::move(on_ready)](std::uint32_t) { cb(); });
}

void Proxy::unwatch(int fd) { impl_->loop.del(fd); }

void Proxy::run() {
  while (!impl_->stopping) impl_->run_once(-1);
  impl_->stopping = false;
}

void Proxy::stop() {
  const std::uint64_t one = 1;
  ssize_t n = ::write(impl_->stop_fd.get(), &one, sizeof one);
  (void)n;
}

void Proxy::run_once(int timeout_ms) { impl_->run_once(timeout_ms); }

ProxyStats Proxy::stats() const {
  return {impl_->listeners.size(), impl_->tunnels.size() + impl_->agents.size(), impl_->accepted};
}

}  // namespace pw::net
