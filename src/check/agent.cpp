// The inside half of `pw check`: attempts operations and reports what happened, nothing
// else. Each operation runs in its own child (a seccomp kill or a hang costs that operation
// only) and never changes anything it did not create: writes to existing files only open
// them for writing, created files and dirs are removed again (except `leave`, whose file
// must outlive the session to show /tmp stays private).
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "check/wallcheck.hpp"
#include "util/fd.hpp"
#include "workspace/protocol.hpp"

namespace pw::check {
namespace {

std::string errname(int e) {
  if (e == 0) return "OK";
  const char* n = strerrorname_np(e);
  return n ? n : "E" + std::to_string(e);
}

std::string of(long rc) { return rc < 0 ? errname(errno) : "OK"; }

std::string op_read(const std::string& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return errname(errno);
  char c;
  ssize_t n = ::read(fd, &c, 1);
  int e = errno;
  ::close(fd);
  if (n < 0) return errname(e);
  return n == 0 ? "EMPTY" : "OK";
}

// Can it be opened for writing (existing file) or created (new one, removed again)?
std::string op_write(const std::string& p) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) {
    ::close(fd);
    ::unlink(p.c_str());
    return "OK";
  }
  if (errno != EEXIST) return errname(errno);
  fd = ::open(p.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return errname(errno);
  ::close(fd);
  return "OK";
}

std::string op_leave(const std::string& p) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return errname(errno);
  ::close(fd);
  return "OK";
}

std::string op_ls(const std::string& p) {
  DIR* d = ::opendir(p.c_str());
  if (!d) return errname(errno);
  long n = 0;
  while (const dirent* e = ::readdir(d)) n += std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..");
  ::closedir(d);
  return n == 0 ? "EMPTY" : "OK";
}

std::string op_mkdir(const std::string& p) {
  if (::mkdir(p.c_str(), 0700) != 0) return errname(errno);
  ::rmdir(p.c_str());
  return "OK";
}

std::string op_status(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size() + 1, key + ":") == 0) {
      std::string v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "ENODATA";
}

std::string op_comm_visible(const std::string& name) {
  DIR* d = ::opendir("/proc");
  if (!d) return errname(errno);
  std::string found = "absent";
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/comm");
    std::string c;
    if (std::getline(in, c) && c == name) found = "visible";
  }
  ::closedir(d);
  return found;
}

std::string op_nosuid(const std::string& p) {
  struct statvfs s;
  if (::statvfs(p.c_str(), &s) != 0) return errname(errno);
  return (s.f_flag & ST_NOSUID) ? "nosuid" : "suid";
}

std::string op_ptrace_sibling() {
  pid_t a = ::fork();
  if (a < 0) return errname(errno);
  if (a == 0) {
    ::pause();
    _exit(0);
  }
  int pfd[2];
  if (::pipe(pfd) != 0) return errname(errno);
  pid_t b = ::fork();
  if (b == 0) {
    int e = ::ptrace(PTRACE_ATTACH, a, nullptr, nullptr) == 0 ? 0 : errno;
    if (::write(pfd[1], &e, sizeof e) < 0) _exit(1);
    _exit(0);
  }
  ::close(pfd[1]);
  int e = EIO;
  if (::read(pfd[0], &e, sizeof e) != sizeof e) e = EIO;
  ::close(pfd[0]);
  ::waitpid(b, nullptr, 0);
  ::kill(a, SIGKILL);
  ::waitpid(a, nullptr, 0);
  return errname(e);
}

std::string op_mount() {
  char dir[] = "/tmp/pw-check-mnt.XXXXXX";
  if (!::mkdtemp(dir)) return errname(errno);
  long rc = ::mount("tmpfs", dir, "tmpfs", 0, "size=4k");
  std::string r = of(rc);
  if (rc == 0) ::umount2(dir, MNT_DETACH);
  ::rmdir(dir);
  return r;
}

std::string op_bpf() {
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = 1;
  return of(::syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
}

std::string op_perf() {
  perf_event_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.type = PERF_TYPE_SOFTWARE;
  attr.size = sizeof attr;
  attr.config = PERF_COUNT_SW_CPU_CLOCK;
  attr.disabled = 1;
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  return of(::syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
}

std::string op_io_uring() {
  io_uring_params params;
  std::memset(&params, 0, sizeof params);
  return of(::syscall(SYS_io_uring_setup, 1, &params));
}

std::string op_tiocsti() {
  // On a pty of our own, so a check that fails injects into nothing that matters.
  int m = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) return errname(errno);
  char c = 'x';
  std::string r = of(::ioctl(m, TIOCSTI, &c));
  ::close(m);
  return r;
}

std::string op_uconnect(const std::string& name) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (name.empty() || name.size() >= sizeof a.sun_path) return "EINVAL";
  std::memcpy(a.sun_path, name.data(), name.size());
  socklen_t len = sizeof a;
  if (name[0] == '@') {
    a.sun_path[0] = '\0';
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errname(errno);
  std::string r = of(::connect(fd, reinterpret_cast<sockaddr*>(&a), len));
  ::close(fd);
  return r;
}

// Asks a workspace socket for a session, as `pw NAME` does. "OK" when it answers with the
// workspace's descriptors (namespaces, staging dir: a way out of any view), else why not.
std::string op_ctl_session(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path) return "EINVAL";
  std::memcpy(a.sun_path, path.data(), path.size());
  Fd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!s) return errname(errno);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return errname(errno);
  try {
    pw::proto::send(s.get(), "hello " + std::to_string(pw::proto::kVersion) + " session pw-check");
    std::string reply;
    std::vector<Fd> fds;
    if (!pw::proto::recv(s.get(), reply, &fds)) return "CLOSED";
    return fds.empty() && reply.rfind("ok", 0) != 0 ? "REFUSED" : "OK";
  } catch (const std::exception&) {
    return "CLOSED";
  }
}

std::string op_inet(const std::string& host, const std::string& port, bool udp) {
  addrinfo hints{}, *ai = nullptr;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = udp ? SOCK_DGRAM : SOCK_STREAM;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &ai) != 0 || !ai) return "EINVAL";
  int fd = ::socket(ai->ai_family, hints.ai_socktype | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ::freeaddrinfo(ai);
    return errname(errno);
  }
  std::string r;
  if (udp) {
    r = of(::sendto(fd, "x", 1, 0, ai->ai_addr, ai->ai_addrlen));
  } else {
    r = of(::connect(fd, ai->ai_addr, ai->ai_addrlen));
  }
  ::freeaddrinfo(ai);
  ::close(fd);
  return r;
}

std::string op_resolve(const std::string& name) {
  addrinfo hints{}, *ai = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &ai);
  if (rc != 0) return rc == EAI_SYSTEM ? errname(errno) : "EAI";
  ::freeaddrinfo(ai);
  return "OK";
}

}  // namespace

std::string run_op(const std::vector<std::string>& op) {
  if (op.empty()) return "EINVAL";
  const std::string& o = op[0];
  auto arg = [&](size_t i) -> const std::string& {
    static const std::string none;
    return i < op.size() ? op[i] : none;
  };
  if (o == "read") return op_read(arg(1));
  if (o == "write") return op_write(arg(1));
  if (o == "leave") return op_leave(arg(1));
  if (o == "ls") return op_ls(arg(1));
  if (o == "mkdir") return op_mkdir(arg(1));
  if (o == "status") return op_status(arg(1));
  if (o == "uid") return "uid=" + std::to_string(::getuid()) + " gid=" + std::to_string(::getgid());
  if (o == "comm-visible") return op_comm_visible(arg(1));
  if (o == "nosuid") return op_nosuid(arg(1));
  if (o == "env") return std::getenv(arg(1).c_str()) ? "set" : "unset";
  if (o == "ptrace-traceme") return of(::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr));
  if (o == "ptrace-sibling") return op_ptrace_sibling();
  if (o == "mount") return op_mount();
  if (o == "remount-root") return of(::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND, nullptr));
  if (o == "umount") return of(::umount2(arg(1).c_str(), MNT_DETACH));
  if (o == "keyctl") return of(::syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
  if (o == "add_key") return of(::syscall(SYS_add_key, "user", "pw-check", "x", 1, KEY_SPEC_PROCESS_KEYRING));
  if (o == "bpf") return op_bpf();
  if (o == "perf") return op_perf();
  if (o == "userns") return of(::unshare(CLONE_NEWUSER));
  if (o == "mountns") return of(::unshare(CLONE_NEWNS));
  if (o == "io_uring") return op_io_uring();
  if (o == "kexec") return of(::syscall(SYS_kexec_load, 0ul, 1000ul, nullptr, 0ul));
  if (o == "init_module") return of(::syscall(SYS_finit_module, -1, "", 0));
  if (o == "open_by_handle") return of(::syscall(SYS_open_by_handle_at, AT_FDCWD, nullptr, O_RDONLY));
  if (o == "chroot") return of(::chroot("/tmp"));
  if (o == "tiocsti") return op_tiocsti();
#if defined(__x86_64__)
  if (o == "x32") return of(::syscall(0x40000000 | 39));
  if (o == "i386") {
    ::signal(SIGSEGV, SIG_DFL);  // a kernel without ia32 emulation faults; report it as such
    long ret = 20;                // getpid through int 0x80
    asm volatile("int $0x80" : "+a"(ret) : : "memory", "r8", "r9", "r10", "r11");
    return ret < 0 ? errname(static_cast<int>(-ret)) : "OK";
  }
#endif
  if (o == "uconnect") return op_uconnect(arg(1));
  if (o == "ctl-session") return op_ctl_session(arg(1));
  if (o == "tcp") return op_inet(arg(1), arg(2), false);
  if (o == "udp") return op_inet(arg(1), arg(2), true);
  if (o == "vsock") {
    const int fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const std::string r = of(fd);
    if (fd >= 0) ::close(fd);
    return r;
  }
  if (o == "resolve") return op_resolve(arg(1));
  return "EINVAL";
}

std::string encode(const std::vector<std::string>& op) {
  std::string s;
  for (size_t i = 0; i < op.size(); i++) s += (i ? "\x1f" : "") + op[i];
  return s;
}

std::vector<std::string> decode(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t i = s.find('\x1f', start);
    out.push_back(s.substr(start, i == std::string::npos ? std::string::npos : i - start));
    if (i == std::string::npos) return out;
    start = i + 1;
  }
}

int agent_main(int argc, char** argv) {
  for (int i = 0; i < argc; i++) {
    std::vector<std::string> op = decode(argv[i]);
    int pfd[2];
    if (::pipe2(pfd, O_CLOEXEC) != 0) return 1;
    std::fflush(stdout);
    pid_t pid = ::fork();
    if (pid < 0) return 1;
    if (pid == 0) {
      ::close(pfd[0]);
      ::alarm(5);
      std::string r = run_op(op);
      if (::write(pfd[1], r.data(), r.size()) < 0) _exit(1);
      _exit(0);
    }
    ::close(pfd[1]);
    std::string r;
    char buf[256];
    ssize_t n;
    while ((n = ::read(pfd[0], buf, sizeof buf)) > 0) r.append(buf, static_cast<size_t>(n));
    ::close(pfd[0]);
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(st)) r = sigabbrev_np(WTERMSIG(st)) ? std::string("SIG") + sigabbrev_np(WTERMSIG(st)) : "SIGNAL";
    if (r.empty()) r = "NO-ANSWER";
    std::printf("%d\t%s\n", i, r.c_str());
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace pw::check
