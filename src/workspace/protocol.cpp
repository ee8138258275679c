#include "workspace/protocol.hpp"

#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "util/error.hpp"

namespace pw::proto {

char net_code(NetMode mode) {
  switch (mode) {
    case NetMode::Host: return 'h';
    case NetMode::None: return 'n';
    case NetMode::Allowlist: return 'a';
  }
  return '?';
}

bool net_from_code(char c, NetMode& mode) {
  for (NetMode m : {NetMode::Host, NetMode::None, NetMode::Allowlist}) {
    if (net_code(m) == c) {
      mode = m;
      return true;
    }
  }
  return false;
}

void send(int sock, const std::string& text, const std::vector<int>& fds) {
  struct iovec iov = {const_cast<char*>(text.data()), text.size()};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> ctl;
  if (!fds.empty()) {
    ctl.resize(CMSG_SPACE(sizeof(int) * fds.size()));
    msg.msg_control = ctl.data();
    msg.msg_controllen = ctl.size();
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw SysError("send to workspace socket");
}

struct sockaddr_un address(const std::filesystem::path& path) {
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (path.string().size() >= sizeof addr.sun_path) throw Error("socket path too long: " + path.string());
  std::strcpy(addr.sun_path, path.c_str());
  return addr;
}

bool recv(int sock, std::string& text, std::vector<Fd>* fds) {
  // Not zero-filled: a start-up receives a few dozen bytes, and clearing 64 KiB first
  // cost 16 page faults on the start path.
  constexpr std::size_t kMax = 65536;
  std::unique_ptr<char[]> buf(new char[kMax]);
  struct iovec iov = {buf.get(), kMax};
  alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 8)];
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof ctl;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw SysError("receive from workspace socket");
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (fds) fds->emplace_back(fd);
      else ::close(fd);  // unexpected fds are never kept
    }
  }
  if (n == 0) return false;
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) throw Error("control message truncated");
  text.assign(buf.get(), static_cast<size_t>(n));
  return true;
}

uid_t peer_uid(int sock) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) throw SysError("SO_PEERCRED");
  return cred.uid;
}

pid_t peer_pid(int sock) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) throw SysError("SO_PEERCRED");
  return cred.pid;
}

}  // namespace pw::proto
