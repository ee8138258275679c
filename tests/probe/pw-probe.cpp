// pw-probe: the program integration tests run *inside* a pw session to ask one question of
// the sandbox ("can I read this?", "is ptrace denied?") and get a machine-checkable answer.
//
// Contract: `pw-probe OP [ARGS...]` prints exactly one line to stdout and exits 0 once the
// operation was attempted, whatever its outcome; bad usage exits 2. The line is `OK`
// (possibly followed by data), the errno name of the failure (`EACCES`, `EPERM`, ...), an
// `EAI_*` name for `resolve`, or a signal name (`SIGSYS`) when an operation run in a child
// was killed. `envdump` alone prints further lines after `OK`; `exit N` exits N.
//
// Only libc and kernel headers: it must run in whatever minimal view a profile gives.

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
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

extern char** environ;

namespace {

// A table rather than strerrorname_np(): tests compare these strings, so they must not depend
// on the libc the probe happens to be built against.
const char* errno_name(int e) {
  switch (e) {
#define PW_E(x) \
  case x:       \
    return #x;
    PW_E(EPERM) PW_E(ENOENT) PW_E(ESRCH) PW_E(EINTR) PW_E(EIO) PW_E(ENXIO) PW_E(E2BIG)
    PW_E(ENOEXEC) PW_E(EBADF) PW_E(ECHILD) PW_E(EAGAIN) PW_E(ENOMEM) PW_E(EACCES) PW_E(EFAULT)
    PW_E(ENOTBLK) PW_E(EBUSY) PW_E(EEXIST) PW_E(EXDEV) PW_E(ENODEV) PW_E(ENOTDIR) PW_E(EISDIR)
    PW_E(EINVAL) PW_E(ENFILE) PW_E(EMFILE) PW_E(ENOTTY) PW_E(ETXTBSY) PW_E(EFBIG) PW_E(ENOSPC)
    PW_E(ESPIPE) PW_E(EROFS) PW_E(EMLINK) PW_E(EPIPE) PW_E(EDOM) PW_E(ERANGE) PW_E(EDEADLK)
    PW_E(ENAMETOOLONG) PW_E(ENOLCK) PW_E(ENOSYS) PW_E(ENOTEMPTY) PW_E(ELOOP) PW_E(ENOMSG)
    PW_E(ENOKEY) PW_E(EKEYEXPIRED) PW_E(EKEYREVOKED) PW_E(EKEYREJECTED) PW_E(ENODATA)
    PW_E(ENOTSOCK) PW_E(EDESTADDRREQ) PW_E(EMSGSIZE) PW_E(EPROTOTYPE) PW_E(ENOPROTOOPT)
    PW_E(EPROTONOSUPPORT) PW_E(ESOCKTNOSUPPORT) PW_E(EOPNOTSUPP) PW_E(EPFNOSUPPORT)
    PW_E(EAFNOSUPPORT) PW_E(EADDRINUSE) PW_E(EADDRNOTAVAIL) PW_E(ENETDOWN) PW_E(ENETUNREACH)
    PW_E(ENETRESET) PW_E(ECONNABORTED) PW_E(ECONNRESET) PW_E(ENOBUFS) PW_E(EISCONN)
    PW_E(ENOTCONN) PW_E(ETIMEDOUT) PW_E(ECONNREFUSED) PW_E(EHOSTDOWN) PW_E(EHOSTUNREACH)
    PW_E(EALREADY) PW_E(EINPROGRESS) PW_E(ESTALE) PW_E(EDQUOT) PW_E(ECANCELED)
    PW_E(EOWNERDEAD) PW_E(ENOTRECOVERABLE) PW_E(ENOMEDIUM) PW_E(EOVERFLOW) PW_E(ENOTUNIQ)
    PW_E(EBADFD) PW_E(ENOLINK) PW_E(EPROTO) PW_E(EBADMSG) PW_E(EILSEQ) PW_E(EUSERS)
#undef PW_E
    default:
      return nullptr;
  }
}

std::string result(int err) {
  if (err == 0) return "OK";
  if (const char* n = errno_name(err)) return n;
  return "E" + std::to_string(err);
}

struct SignalName {
  int sig;
  const char* name;
};

const SignalName kSignals[] = {
    {SIGHUP, "SIGHUP"},     {SIGINT, "SIGINT"},       {SIGQUIT, "SIGQUIT"},
    {SIGILL, "SIGILL"},     {SIGTRAP, "SIGTRAP"},     {SIGABRT, "SIGABRT"},
    {SIGBUS, "SIGBUS"},     {SIGFPE, "SIGFPE"},       {SIGKILL, "SIGKILL"},
    {SIGUSR1, "SIGUSR1"},   {SIGSEGV, "SIGSEGV"},     {SIGUSR2, "SIGUSR2"},
    {SIGPIPE, "SIGPIPE"},   {SIGALRM, "SIGALRM"},     {SIGTERM, "SIGTERM"},
    {SIGCHLD, "SIGCHLD"},   {SIGCONT, "SIGCONT"},     {SIGSTOP, "SIGSTOP"},
    {SIGTSTP, "SIGTSTP"},   {SIGTTIN, "SIGTTIN"},     {SIGTTOU, "SIGTTOU"},
    {SIGURG, "SIGURG"},     {SIGXCPU, "SIGXCPU"},     {SIGXFSZ, "SIGXFSZ"},
    {SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"},   {SIGWINCH, "SIGWINCH"},
    {SIGIO, "SIGIO"},       {SIGPWR, "SIGPWR"},       {SIGSYS, "SIGSYS"},
};

std::string signal_name(int sig) {
  for (const SignalName& s : kSignals)
    if (s.sig == sig) return s.name;
  return "SIG" + std::to_string(sig);
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "pw-probe: %s\n"
               "usage: pw-probe OP [ARGS...]\n"
               "  files:   read|write|mkdir|stat|ls|exec PATH [ARGS...]\n"
               "  walls:   ptrace | ptrace-pid PID | mount | umount PATH | keyctl | bpf |\n"
               "           userns | io_uring | x32 | i386 | tiocsti | tcsetpgrp | tiocsti-fd PATH |\n"
               "           perf | kexec\n"
               "  process: env NAME | envdump | uid | caps | pidcount | pid | hostname | cwd\n"
               "  network: connect HOST PORT | udp HOST PORT | resolve NAME | listen PORT SECONDS | vsock |\n"
               "           uconnect PATH|@ABSTRACT | ctl SOCKET MESSAGE\n"
               "  control: kill-self SIG | exit N | sleep SECONDS\n",
               why);
  std::exit(2);
}

long parse_long(const std::string& s, long lo, long hi, const char* what) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0 || v < lo || v > hi)
    usage((std::string("bad ") + what + ": " + s).c_str());
  return v;
}

int print(const std::string& line) {
  std::printf("%s\n", line.c_str());
  return 0;
}

int errno_of(long rc) { return rc < 0 ? errno : 0; }

// Runs `fn` in a forked child and reports how it went: for calls that change the caller
// (TRACEME, unshare) or may kill it (x32/i386 under seccomp), so the probe itself survives
// to print the answer. `fn` returns an errno, 0 for success.
std::string in_child(const std::function<int()>& fn) {
  std::fflush(stdout);
  const pid_t pid = ::fork();
  if (pid < 0) return result(errno);
  if (pid == 0) ::_exit(fn() & 0xff);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return result(errno);
  }
  if (WIFSIGNALED(status)) return signal_name(WTERMSIG(status));
  return result(WEXITSTATUS(status));
}

// ---- files ----------------------------------------------------------------------------------

int op_read(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return print(result(errno));
  char c;
  const int err = errno_of(::read(fd, &c, 1));
  ::close(fd);
  return print(result(err));
}

int op_write(const std::string& path) {
  // O_EXCL first so "did I create it" is known exactly and only a file made here is removed.
  bool created = true;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    created = false;
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  }
  if (fd < 0) return print(result(errno));
  const int err = errno_of(::write(fd, "x", 1));
  ::close(fd);
  if (created) ::unlink(path.c_str());
  return print(result(err));
}

int op_mkdir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0) return print(result(errno));
  ::rmdir(path.c_str());
  return print("OK");
}

int op_stat(const std::string& path) {
  struct stat st;
  return print(result(errno_of(::lstat(path.c_str(), &st))));
}

int op_ls(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return print(result(errno));
  long n = 0;
  errno = 0;
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ++n;
  }
  const int err = errno;
  ::closedir(d);
  if (err != 0) return print(result(err));
  return print("OK n=" + std::to_string(n));
}

int op_exec(const std::vector<std::string>& args) {
  int pfd[2];
  if (::pipe2(pfd, O_CLOEXEC) != 0) return print(result(errno));
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(stdout);
  const pid_t pid = ::fork();
  if (pid < 0) return print(result(errno));
  if (pid == 0) {
    ::close(pfd[0]);
    // Keep the probe's one-line stdout contract whatever the program prints.
    ::dup2(2, 1);
    ::execve(argv[0], argv.data(), environ);
    const int err = errno;
    [[maybe_unused]] const ssize_t w = ::write(pfd[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(pfd[1]);
  int err = 0;
  ssize_t n;
  do {
    n = ::read(pfd[0], &err, sizeof err);
  } while (n < 0 && errno == EINTR);
  ::close(pfd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // The pipe closes on a successful exec without a word: that is the OK case.
  return print(n == static_cast<ssize_t>(sizeof err) ? result(err) : "OK");
}

// ---- walls ----------------------------------------------------------------------------------

int op_ptrace() {
  return print(in_child([] { return errno_of(::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr)); }));
}

int op_ptrace_pid(const std::string& arg) {
  const auto pid = static_cast<pid_t>(parse_long(arg, 1, 0x7fffffff, "pid"));
  if (::ptrace(PTRACE_ATTACH, pid, nullptr, nullptr) != 0) return print(result(errno));
  int status = 0;
  ::waitpid(pid, &status, __WALL);
  ::ptrace(PTRACE_DETACH, pid, nullptr, nullptr);
  return print("OK");
}

int op_mount() {
  // A fresh empty dir, so a mount that unexpectedly succeeds shadows nothing.
  std::vector<std::string> bases;
  if (const char* t = std::getenv("TMPDIR")) bases.emplace_back(t);
  bases.emplace_back("/tmp");
  bases.emplace_back("/dev/shm");
  bases.emplace_back(".");
  int mkerr = 0;
  for (const std::string& base : bases) {
    std::string tmpl = base + "/pw-probe-mnt.XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
      mkerr = errno;
      continue;
    }
    const int err = errno_of(::mount("tmpfs", tmpl.c_str(), "tmpfs", 0, "size=4k"));
    if (err == 0) ::umount2(tmpl.c_str(), MNT_DETACH);
    ::rmdir(tmpl.c_str());
    return print(result(err));
  }
  std::fprintf(stderr, "pw-probe: no writable directory for a mount point\n");
  return print(result(mkerr));
}

int op_umount(const std::string& path) { return print(result(errno_of(::umount2(path.c_str(), 0)))); }

int op_keyctl() {
  return print(result(errno_of(
      ::syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0))));
}

int op_bpf() {
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = 1;
  const long fd = ::syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
  const int err = errno_of(fd);
  if (fd >= 0) ::close(static_cast<int>(fd));
  return print(result(err));
}

int op_userns() {
  return print(in_child([] { return errno_of(::unshare(CLONE_NEWUSER)); }));
}

int op_io_uring() {
  io_uring_params params;
  std::memset(&params, 0, sizeof params);
  const long fd = ::syscall(SYS_io_uring_setup, 1, &params);
  const int err = errno_of(fd);
  if (fd >= 0) ::close(static_cast<int>(fd));
  return print(result(err));
}

int op_x32() {
#if defined(__x86_64__)
  // getpid through the x32 ABI: a filter keyed on x86_64 numbers must not let it pass.
  return print(in_child([] { return errno_of(::syscall(0x40000000 | 39)); }));
#else
  return print("UNSUPPORTED");
#endif
}

int op_i386() {
#if defined(__x86_64__)
  // getpid through int 0x80, the i386 ABI. Without ia32 emulation the kernel answers SIGSEGV.
  return print(in_child([] {
    long ret = 20;
    asm volatile("int $0x80" : "+a"(ret) : : "memory", "r8", "r9", "r10", "r11");
    return ret < 0 ? static_cast<int>(-ret) : 0;
  }));
#else
  return print("UNSUPPORTED");
#endif
}

int tiocsti(int fd) {
  char c = 'x';
  return errno_of(::ioctl(fd, TIOCSTI, &c));
}

int op_tiocsti() { return print(result(tiocsti(0))); }

int op_tiocsti_fd(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return print(result(errno));
  const int err = tiocsti(fd);
  ::close(fd);
  return print(result(err));
}

// Make our own process group the terminal's foreground one, as a background job stealing
// the terminal would (SIGTTOU ignored, so the kernel does not stop us for trying).
int op_tcsetpgrp() {
  ::signal(SIGTTOU, SIG_IGN);
  if (::setpgid(0, 0) != 0) return print(result(errno));
  return print(result(::tcsetpgrp(0, ::getpgrp()) == 0 ? 0 : errno));
}

int op_perf() {
  perf_event_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.type = PERF_TYPE_SOFTWARE;
  attr.size = sizeof attr;
  attr.config = PERF_COUNT_SW_CPU_CLOCK;
  attr.disabled = 1;
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  const long fd = ::syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
  const int err = errno_of(fd);
  if (fd >= 0) ::close(static_cast<int>(fd));
  return print(result(err));
}

int op_kexec() {
  // More segments than the kernel accepts: EPERM without CAP_SYS_BOOT, EINVAL with it, so
  // even a privileged run never loads or unloads a kernel.
  return print(result(errno_of(::syscall(SYS_kexec_load, 0ul, 1000ul, nullptr, 0ul))));
}

// ---- process --------------------------------------------------------------------------------

int op_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  return print(v ? "OK " + std::string(v) : "UNSET");
}

int op_envdump() {
  std::vector<std::string> names;
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    names.emplace_back(*e, eq ? static_cast<std::size_t>(eq - *e) : std::strlen(*e));
  }
  std::sort(names.begin(), names.end());
  print("OK");
  for (const std::string& n : names) print(n);
  return 0;
}

int op_uid() {
  return print("OK uid=" + std::to_string(::getuid()) + " gid=" + std::to_string(::getgid()) +
               " euid=" + std::to_string(::geteuid()));
}

int op_caps() {
  std::ifstream in("/proc/self/status");
  if (!in) return print(result(errno ? errno : ENOENT));
  std::string eff, prm, bnd, line;
  while (std::getline(in, line)) {
    auto value = [&](const char* key, std::string& out) {
      const std::size_t n = std::strlen(key);
      if (line.compare(0, n, key) == 0) {
        out = line.substr(n);
        out.erase(0, out.find_first_not_of(" \t"));
      }
    };
    value("CapEff:", eff);
    value("CapPrm:", prm);
    value("CapBnd:", bnd);
  }
  if (eff.empty() || prm.empty() || bnd.empty()) return print(result(ENODATA));
  return print("OK eff=" + eff + " prm=" + prm + " bnd=" + bnd);
}

int op_pidcount() {
  DIR* d = ::opendir("/proc");
  if (!d) return print(result(errno));
  long n = 0;
  while (const dirent* e = ::readdir(d)) {
    const char* s = e->d_name;
    if (*s != '\0' && std::all_of(s, s + std::strlen(s), [](char c) { return c >= '0' && c <= '9'; }))
      ++n;
  }
  ::closedir(d);
  return print("OK n=" + std::to_string(n));
}

int op_pid() {
  return print("OK pid=" + std::to_string(::getpid()) + " ppid=" + std::to_string(::getppid()));
}

int op_hostname() {
  utsname u;
  if (::uname(&u) != 0) return print(result(errno));
  return print(std::string("OK ") + u.nodename);
}

int op_cwd() {
  char buf[4096];
  if (!::getcwd(buf, sizeof buf)) return print(result(errno));
  return print(std::string("OK ") + buf);
}

// ---- network --------------------------------------------------------------------------------

const char* eai_name(int rc) {
  switch (rc) {
    case EAI_NONAME: return "EAI_NONAME";
    case EAI_AGAIN: return "EAI_AGAIN";
    case EAI_FAIL: return "EAI_FAIL";
    case EAI_FAMILY: return "EAI_FAMILY";
    case EAI_SOCKTYPE: return "EAI_SOCKTYPE";
    case EAI_SERVICE: return "EAI_SERVICE";
    case EAI_MEMORY: return "EAI_MEMORY";
    case EAI_SYSTEM: return "EAI_SYSTEM";
    case EAI_BADFLAGS: return "EAI_BADFLAGS";
    case EAI_OVERFLOW: return "EAI_OVERFLOW";
#ifdef EAI_NODATA
    case EAI_NODATA: return "EAI_NODATA";
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY: return "EAI_ADDRFAMILY";
#endif
    default: return "EAI_UNKNOWN";
  }
}

// Numeric addresses only: a name here would make the answer depend on DNS, which is what
// `resolve` is for.
addrinfo* numeric_address(const std::string& host, const std::string& port, int socktype) {
  parse_long(port, 1, 65535, "port");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res)
    usage(("not a numeric IPv4/IPv6 address: " + host).c_str());
  return res;
}

int op_connect(const std::string& host, const std::string& port) {
  addrinfo* ai = numeric_address(host, port, SOCK_STREAM);
  const int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ::freeaddrinfo(ai);
    return print(result(errno));
  }
  int err = errno_of(::connect(fd, ai->ai_addr, ai->ai_addrlen));
  ::freeaddrinfo(ai);
  if (err == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int rc;
    do {
      rc = ::poll(&p, 1, 2000);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
      err = ETIMEDOUT;
    } else if (rc < 0) {
      err = errno;
    } else {
      socklen_t len = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    }
  }
  ::close(fd);
  return print(result(err));
}

int op_udp(const std::string& host, const std::string& port) {
  addrinfo* ai = numeric_address(host, port, SOCK_DGRAM);
  const int fd = ::socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int err = fd < 0 ? errno : errno_of(::sendto(fd, "x", 1, 0, ai->ai_addr, ai->ai_addrlen));
  ::freeaddrinfo(ai);
  if (fd >= 0) ::close(fd);
  return print(result(err));
}

// Connects to a unix socket: "@NAME" is abstract, anything else a path.
int op_uconnect(const std::string& name) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (name.empty() || name.size() >= sizeof a.sun_path) usage("bad unix socket name");
  std::memcpy(a.sun_path, name.data(), name.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  if (name[0] == '@') {
    a.sun_path[0] = '\0';
  } else {
    len = sizeof a;
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int err = fd < 0 ? errno : errno_of(::connect(fd, reinterpret_cast<sockaddr*>(&a), len));
  if (fd >= 0) ::close(fd);
  return print(result(err));
}

// Speaks one message to a pw control socket as whoever runs the probe: prints "REPLY <first
// word> fds=N", or "CLOSED" when the other side hung up without an answer.
int op_ctl(const std::string& path, const std::string& message) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) usage("socket path too long");
  std::memcpy(a.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return print(result(errno));
  if (::send(fd, message.data(), message.size(), MSG_NOSIGNAL) < 0) {
    const int err = errno;
    ::close(fd);
    return print(err == EPIPE || err == ECONNRESET ? "CLOSED" : result(err));
  }
  char buf[4096];
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 8)];
  iovec iov{buf, sizeof buf};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof ctl;
  const ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  int nfds = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); n > 0 && c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      nfds += static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    }
  }
  ::close(fd);
  if (n <= 0) return print(n == 0 || errno == ECONNRESET ? "CLOSED" : result(errno));
  std::string reply(buf, static_cast<size_t>(n));
  return print("REPLY " + reply.substr(0, reply.find(' ')) + " fds=" + std::to_string(nfds));
}

int op_resolve(const std::string& name) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &res);
  if (rc != 0) return print(eai_name(rc));
  ::freeaddrinfo(res);
  return print("OK");
}

// ---- control --------------------------------------------------------------------------------

int parse_signal(const std::string& s) {
  if (!s.empty() && s[0] >= '0' && s[0] <= '9') return static_cast<int>(parse_long(s, 1, 64, "signal"));
  const std::string full = s.compare(0, 3, "SIG") == 0 ? s : "SIG" + s;
  for (const SignalName& n : kSignals)
    if (full == n.name) return n.sig;
  usage(("unknown signal: " + s).c_str());
}

int op_kill_self(const std::string& arg) {
  const int sig = parse_signal(arg);
  // Undo whatever disposition and mask were inherited, so the test sees the signal's
  // default effect rather than the launcher's settings.
  std::signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
  std::fflush(stdout);
  ::raise(sig);
  return print("OK");  // the signal's default action is to ignore it, or it stopped us
}

int op_exit(const std::string& arg) {
  const int code = static_cast<int>(parse_long(arg, 0, 255, "exit status"));
  print("OK");
  std::fflush(stdout);
  std::exit(code);
}

int op_sleep(const std::string& arg) {
  unsigned left = static_cast<unsigned>(parse_long(arg, 0, 86400, "seconds"));
  while (left > 0) left = ::sleep(left);
  return print("OK");
}

// Listens on 127.0.0.1:PORT for SECONDS (connections wait in the backlog), then exits.
int op_listen(const std::string& port, const std::string& seconds) {
  addrinfo* ai = numeric_address("127.0.0.1", port, SOCK_STREAM);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int err = fd < 0 ? errno : errno_of(::bind(fd, ai->ai_addr, ai->ai_addrlen));
  ::freeaddrinfo(ai);
  if (err == 0) err = errno_of(::listen(fd, 64));
  if (err != 0) return print(result(err));
  return op_sleep(seconds);
}

// Creates an AF_VSOCK stream socket (the family network namespaces do not confine).
int op_vsock() {
  const int fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int err = fd < 0 ? errno : 0;
  if (fd >= 0) ::close(fd);
  return print(result(err));
}

struct Op {
  const char* name;
  int min_args;
  int max_args;  // -1: unbounded
  std::function<int(const std::vector<std::string>&)> run;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage("missing OP");
  const std::string op = argv[1];
  const std::vector<std::string> a(argv + 2, argv + argc);
  using V = const std::vector<std::string>&;
  const Op ops[] = {
      {"read", 1, 1, [](V v) { return op_read(v[0]); }},
      {"write", 1, 1, [](V v) { return op_write(v[0]); }},
      {"mkdir", 1, 1, [](V v) { return op_mkdir(v[0]); }},
      {"stat", 1, 1, [](V v) { return op_stat(v[0]); }},
      {"ls", 1, 1, [](V v) { return op_ls(v[0]); }},
      {"exec", 1, -1, [](V v) { return op_exec(v); }},
      {"ptrace", 0, 0, [](V) { return op_ptrace(); }},
      {"ptrace-pid", 1, 1, [](V v) { return op_ptrace_pid(v[0]); }},
      {"mount", 0, 0, [](V) { return op_mount(); }},
      {"umount", 1, 1, [](V v) { return op_umount(v[0]); }},
      {"keyctl", 0, 0, [](V) { return op_keyctl(); }},
      {"bpf", 0, 0, [](V) { return op_bpf(); }},
      {"userns", 0, 0, [](V) { return op_userns(); }},
      {"io_uring", 0, 0, [](V) { return op_io_uring(); }},
      {"x32", 0, 0, [](V) { return op_x32(); }},
      {"i386", 0, 0, [](V) { return op_i386(); }},
      {"tiocsti", 0, 0, [](V) { return op_tiocsti(); }},
      {"tcsetpgrp", 0, 0, [](V) { return op_tcsetpgrp(); }},
      {"tiocsti-fd", 1, 1, [](V v) { return op_tiocsti_fd(v[0]); }},
      {"perf", 0, 0, [](V) { return op_perf(); }},
      {"kexec", 0, 0, [](V) { return op_kexec(); }},
      {"env", 1, 1, [](V v) { return op_env(v[0]); }},
      {"envdump", 0, 0, [](V) { return op_envdump(); }},
      {"uid", 0, 0, [](V) { return op_uid(); }},
      {"caps", 0, 0, [](V) { return op_caps(); }},
      {"pidcount", 0, 0, [](V) { return op_pidcount(); }},
      {"pid", 0, 0, [](V) { return op_pid(); }},
      {"hostname", 0, 0, [](V) { return op_hostname(); }},
      {"cwd", 0, 0, [](V) { return op_cwd(); }},
      {"connect", 2, 2, [](V v) { return op_connect(v[0], v[1]); }},
      {"udp", 2, 2, [](V v) { return op_udp(v[0], v[1]); }},
      {"listen", 2, 2, [](V v) { return op_listen(v[0], v[1]); }},
      {"vsock", 0, 0, [](V) { return op_vsock(); }},
      {"uconnect", 1, 1, [](V v) { return op_uconnect(v[0]); }},
      {"ctl", 2, 2, [](V v) { return op_ctl(v[0], v[1]); }},
      {"resolve", 1, 1, [](V v) { return op_resolve(v[0]); }},
      {"kill-self", 1, 1, [](V v) { return op_kill_self(v[0]); }},
      {"exit", 1, 1, [](V v) { return op_exit(v[0]); }},
      {"sleep", 1, 1, [](V v) { return op_sleep(v[0]); }},
  };
  for (const Op& o : ops) {
    if (op != o.name) continue;
    const int n = static_cast<int>(a.size());
    if (n < o.min_args || (o.max_args >= 0 && n > o.max_args))
      usage(("wrong number of arguments for " + op).c_str());
    return o.run(a);
  }
  usage(("unknown OP: " + op).c_str());
}
