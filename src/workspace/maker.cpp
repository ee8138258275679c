#include "workspace/maker.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "net/process.hpp"
#include "util/error.hpp"
#include "util/sanitizer.hpp"
#include "workspace/protocol.hpp"
#include "workspace/runtime.hpp"

extern char** environ;

namespace pw {
namespace {

// System calls that report failure as a negative errno and never touch `errno`: the helper
// runs beside the client on the client's memory, thread-local storage included, and must
// not write anything the client may be reading (errno above all). Nor may it allocate:
// the C library's allocator believes the process single-threaded and takes no locks.
#if defined(__x86_64__)
constexpr bool kRawSyscalls = true;
long sys(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
constexpr bool kRawSyscalls = true;
long sys(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory", "cc");
  return x0;
}
#else
// Elsewhere the helper is not used (WorkspaceMaker::usable), and make_namespaces runs only
// in a forked supervisor's own process, where the C library's errno is its own.
constexpr bool kRawSyscalls = false;
long sys(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  const long r = ::syscall(n, a, b, c, d, e, f);
  return r < 0 ? -errno : r;
}
#endif

template <typename T>
long arg(T v) {
  return (long)v;  // NOLINT: pointers and ints alike, as the kernel takes them
}

long write_file(const char* path, const char* text) {
  const long fd = sys(SYS_openat, AT_FDCWD, arg(path), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fd;
  const long len = static_cast<long>(std::strlen(text));
  const long n = sys(SYS_write, fd, arg(text), len);
  sys(SYS_close, fd);
  return n < 0 ? n : (n == len ? 0 : -EIO);
}

// The network namespace's side, in a child cloned into it that shares our memory and
// descriptors and runs while we wait (CLONE_VFORK): we stay in the host's network
// namespace, where the supervisor we become forks the proxy that dials out.
int net_child(void* p) {
  auto& r = *static_cast<NsRequest*>(p);
  auto fail = [&](const char* step, long e) {
    r.failed = step;
    r.err = static_cast<int>(-e);
    return 0;
  };
  const long s = sys(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return fail("socket for loopback setup", s);
  struct ifreq ifr {};
  std::memcpy(ifr.ifr_name, "lo", 3);
  long rc = sys(SYS_ioctl, s, SIOCGIFFLAGS, arg(&ifr));
  if (rc == 0) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    rc = sys(SYS_ioctl, s, SIOCSIFFLAGS, arg(&ifr));
  }
  sys(SYS_close, s);
  if (rc < 0) return fail("bring lo up", rc);
  if (r.http) {
    const long l = sys(SYS_socket, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0) return fail("socket for the proxy listener", l);
    int one = 1;
    sys(SYS_setsockopt, l, SOL_SOCKET, SO_REUSEADDR, arg(&one), sizeof one);
    struct sockaddr_in a {};
    a.sin_family = AF_INET;
    a.sin_port = htons(net::kProxyPort);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = sys(SYS_bind, l, arg(&a), sizeof a);
    if (rc == 0) rc = sys(SYS_listen, l, 1024);
    if (rc < 0) {
      sys(SYS_close, l);
      return fail("listen on 127.0.0.1:3128 for the proxy", rc);
    }
    r.http_fd = static_cast<int>(l);
  }
  const long ns = sys(SYS_openat, AT_FDCWD, arg("/proc/self/ns/net"), O_RDONLY | O_CLOEXEC);
  if (ns < 0) return fail("open the new network namespace", ns);
  r.netns = static_cast<int>(ns);
  return 0;
}

constexpr const char* kStageChanged = "the staging dir changed";

}  // namespace

void NsRequest::throw_failure(const std::string& who) const {
  if (failed == kStageChanged) {
    throw Error(who + stage_path + " changed while the workspace started (replaced, or a symlink); refusing it");
  }
  if (err == 0) throw Error(who + (failed ? failed : "the namespaces were not made"));
  throw SysError(who + failed, err);
}

bool make_namespaces(NsRequest& r) noexcept {
  auto fail = [&](const char* step, long e) {
    r.failed = step;
    r.err = static_cast<int>(-e);
    return false;
  };
  long rc = sys(SYS_unshare, CLONE_NEWUSER | CLONE_NEWNS);
  if (rc < 0) return fail("create a user namespace (are unprivileged user namespaces enabled? try: pw doctor)", rc);
  // An unprivileged process may map exactly its own euid/egid, and only after it gave up
  // setgroups(2) (otherwise it could drop a supplementary group that denies it access).
  if ((rc = write_file("/proc/self/setgroups", "deny")) < 0) return fail("write /proc/self/setgroups", rc);
  if ((rc = write_file("/proc/self/uid_map", r.uid_map)) < 0) return fail("write /proc/self/uid_map", rc);
  if ((rc = write_file("/proc/self/gid_map", r.gid_map)) < 0) return fail("write /proc/self/gid_map", rc);
  // Mount events flow from the host into the workspace, never back.
  rc = sys(SYS_mount, 0, arg("/"), 0, MS_REC | MS_SLAVE, 0);
  if (rc < 0) return fail("make mounts slave", rc);

  // A tmpfs over the staging dir, invisible to the host, holding what the sessions share
  // (/tmp, the agent home) and where each session builds its root. Mounted by fd on the
  // very dir the host side checked (check_stage), reached without following a symlink.
  struct open_how how {};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  const long target = sys(SYS_openat2, AT_FDCWD, arg(r.stage), arg(&how), sizeof how);
  if (target < 0) return fail("open the staging dir", target);
  struct stat st {};
  rc = sys(SYS_fstat, target, arg(&st));
  if (rc < 0 || st.st_dev != r.stage_dev || st.st_ino != r.stage_ino) {
    sys(SYS_close, target);
    return fail(kStageChanged, 0);
  }
  auto fail_closing = [&](const char* step, long e) {
    sys(SYS_close, target);
    return fail(step, e);
  };
  const long ctx = sys(SYS_fsopen, arg("tmpfs"), FSOPEN_CLOEXEC);
  if (ctx < 0) return fail_closing("create the workspace tmpfs", ctx);
  rc = sys(SYS_fsconfig, ctx, FSCONFIG_SET_STRING, arg("mode"), arg("0700"), 0);
  if (rc == 0) rc = sys(SYS_fsconfig, ctx, FSCONFIG_CMD_CREATE, 0, 0, 0);
  const long mnt = rc < 0 ? rc : sys(SYS_fsmount, ctx, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
  sys(SYS_close, ctx);
  if (mnt < 0) return fail_closing("create the workspace tmpfs", mnt);
  r.stage_root = static_cast<int>(mnt);
  static constexpr struct {
    const char* name;
    int mode;
  } kDirs[] = {{"tmp", 01777}, {"home", 0700}, {"root", 0755}};
  for (const auto& d : kDirs) {
    rc = sys(SYS_mkdirat, mnt, arg(d.name), d.mode);
    if (rc == 0) rc = sys(SYS_fchmodat, mnt, arg(d.name), d.mode, 0);  // past the umask
    if (rc < 0) return fail_closing("create the workspace tmpfs's dirs", rc);
  }
  rc = sys(SYS_move_mount, mnt, arg(""), target, arg(""), MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
  sys(SYS_close, target);
  if (rc < 0) return fail("mount the workspace tmpfs on the staging dir", rc);

  if (r.net) {
    // The child's stack: it uses a few hundred bytes of it.
    alignas(16) char stack[16 * 1024];
    const pid_t pid = ::clone(net_child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_NEWNET | SIGCHLD, &r);
    if (pid < 0) return fail("create the workspace's network namespace", -EAGAIN);
    int status = 0;
    while (sys(SYS_wait4, pid, arg(&status), __WALL, 0) == -EINTR) {
    }
    if (r.failed) return false;
    // A child killed on the way made nothing: fail closed, never a session on the host's
    // network for want of a namespace.
    if (!WIFEXITED(status) || r.netns < 0 || (r.http && r.http_fd < 0)) {
      return fail("make the workspace's network namespace (its maker was killed)", -ECHILD);
    }
  }
  const long user = sys(SYS_openat, AT_FDCWD, arg("/proc/self/ns/user"), O_RDONLY | O_CLOEXEC);
  if (user < 0) return fail("open the user namespace", user);
  r.userns = static_cast<int>(user);
  const long mntns = sys(SYS_openat, AT_FDCWD, arg("/proc/self/ns/mnt"), O_RDONLY | O_CLOEXEC);
  if (mntns < 0) return fail("open the mount namespace", mntns);
  r.mntns = static_cast<int>(mntns);
  return true;
}

void NsRequest::prepare(const std::filesystem::path& stage_dir, const struct stat& checked) {
  stage_path = stage_dir.string();
  stage = stage_path.c_str();
  stage_dev = checked.st_dev;
  stage_ino = checked.st_ino;
  std::snprintf(uid_map, sizeof uid_map, "0 %u 1\n", static_cast<unsigned>(::geteuid()));
  std::snprintf(gid_map, sizeof gid_map, "0 %u 1\n", static_cast<unsigned>(::getegid()));
}

// What the client and its helper share: the request, then the supervisor's command line.
struct WorkspaceMaker::Shared {
  std::string name;
  NsRequest ns;
  Fd lock;         // the workspace lock (ours until the supervisor has it)
  Fd conn_ours;    // our end of the registration socket
  Fd conn_theirs;  // the supervisor's end
  Fd made_r, made_w;  // the helper writes a byte when the namespaces are made (or not)
  Fd done_r, done_w;  // close-on-exec, then held by the helper alone: EOF once it has exec'd
  Fd go_r, go_w;      // EOF when the client is gone (`go_w` is never written)
  std::vector<std::string> argv_text;
  std::vector<char*> argv;
  std::vector<char*> envp;  // our environment's strings, in an array the helper alone reads
  Fd pidfd;                 // the helper's
  pid_t pid = -1;
  void* stack = MAP_FAILED;
};

namespace {

constexpr std::size_t kHelperStack = 256 * 1024;
constexpr long kSupervisorDelayMs = 10;

int ns_child(void* p) {
  make_namespaces(*static_cast<NsRequest*>(p));
  return 0;
}

// The helper: makes the namespaces, tells the client, becomes the supervisor. Everything
// it needs of `s` after telling the client is read before: the client takes the
// descriptors over (and closes its own) from there.
int helper_entry(void* p) {
  auto& s = *static_cast<WorkspaceMaker::Shared*>(p);
  // Off the client's terminal at once: a Ctrl-C or a hangup there is not ours.
  sys(SYS_setsid);
  // The namespaces are made by a child of ours that shares our memory and descriptors and
  // runs while we wait (CLONE_VFORK), so that we exec the supervisor from the host's user
  // namespace, which then owns its memory: made inside the workspace's, the user's every
  // process would hold CAP_SYS_PTRACE over it, non-dumpable or not. (It joins the
  // namespaces after its exec.)
  alignas(16) char ns_stack[64 * 1024];
  const long child = ::clone(ns_child, ns_stack + sizeof ns_stack, CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, &s.ns);
  if (child > 0) {
    while (sys(SYS_wait4, child, 0, __WALL, 0) == -EINTR) {
    }
  } else if (!s.ns.failed) {
    s.ns.failed = "start the child that makes the namespaces";
    s.ns.err = EAGAIN;
  }
  const bool ok = child > 0 && !s.ns.failed && s.ns.userns >= 0 && s.ns.mntns >= 0;
  // A table of our own from here: what we close and renumber below stays the client's.
  if (ok && sys(SYS_unshare, CLONE_FILES) < 0) {
    s.ns.failed = "unshare the descriptor table";
    s.ns.err = EAGAIN;
  }
  const bool made = ok && !s.ns.failed;
  // The supervisor's descriptors, in order from 3: lock, registration socket, user and
  // mount namespaces, staging tmpfs, then (unless the network is the host's) the network
  // namespace and (allowlist) the proxy's listener; then `done_w`, closed by the exec.
  int from[8];
  int n = 0;
  for (int fd : {s.lock.get(), s.conn_theirs.get(), s.ns.userns, s.ns.mntns, s.ns.stage_root, s.ns.netns,
                 s.ns.http_fd, s.done_w.get()}) {
    if (fd >= 0) from[n++] = fd;
  }
  const int go_r = s.go_r.get(), go_w = s.go_w.get();
  char* const* const argv = s.argv.data();
  char* const* const envp = s.envp.data();
  const char byte = made ? '1' : '0';
  sys(SYS_write, s.made_w.get(), arg(&byte), 1);
  if (!made) sys(SYS_exit, 1);
  // The supervisor is not needed before someone else wants to join, and a session that is
  // over in a few milliseconds (a one-off command) never needs one: we wait, and give the
  // session's start the machine. A supervisor starting beside it (the exec, the loader,
  // the profile) slowed it by more than the supervisor's own start-up on the other CPU
  // (docs/benchmarks.md; likely the RCU grace periods its pivot_root and unmounts wait for).
  sys(SYS_close, go_w);  // the copy in our own table: EOF must mean the client's is gone
  struct pollfd gone = {go_r, POLLIN, 0};
  struct timespec wait = {0, kSupervisorDelayMs * 1000000L};
  if (sys(SYS_ppoll, arg(&gone), 1, arg(&wait), 0, 0) != 0 && gone.revents != 0) {
    // The client has left (its session is over): a workspace nobody holds ends here; the
    // descriptors go with us.
    sys(SYS_exit, 0);
  }
  int high[8];
  for (int i = 0; i < n; ++i) {
    const long h = sys(SYS_fcntl, from[i], F_DUPFD, 3 + n);
    if (h < 0) sys(SYS_exit, 1);
    high[i] = static_cast<int>(h);
  }
  for (int i = 0; i < n; ++i) {
    if (sys(SYS_dup3, high[i], 3 + i, i == n - 1 ? O_CLOEXEC : 0) < 0) sys(SYS_exit, 1);
  }
  sys(SYS_close_range, 3 + n, ~0U, 0);
  sys(SYS_execve, arg("/proc/self/exe"), arg(argv), arg(envp));
  sys(SYS_exit, 127);
  return 0;
}

}  // namespace

bool WorkspaceMaker::usable(const ProfileSpec& spec) {
  // A vault the sessions mount needs its anchor in the mount namespace before the first
  // session: the supervisor makes it, and the client waits for that.
  const bool vault = spec.vault && spec.posture == Posture::Human;
  return kRawSyscalls && !kSanitizerBuild && !vault;
}

std::unique_ptr<WorkspaceMaker> WorkspaceMaker::begin(const std::string& name, const ProfileSpec& spec,
                                                      const std::filesystem::path& runtime, Fd lock) {
  std::unique_ptr<WorkspaceMaker> m(new WorkspaceMaker());
  m->shared_ = std::make_unique<Shared>();
  Shared& s = *m->shared_;
  s.name = name;
  const WorkspacePaths paths = workspace_paths_in(runtime, name);
  s.ns.prepare(paths.stage, check_stage(paths.stage));
  s.ns.net = spec.net != NetMode::Host;
  s.ns.http = spec.net == NetMode::Allowlist;
  s.lock = std::move(lock);
  int sp[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) throw SysError("socketpair");
  s.conn_ours.reset(sp[0]);
  s.conn_theirs.reset(sp[1]);
  for (auto [r, w] : {std::pair{&s.made_r, &s.made_w}, std::pair{&s.go_r, &s.go_w}, std::pair{&s.done_r, &s.done_w}}) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw SysError("pipe");
    r->reset(p[0]);
    w->reset(p[1]);
  }
  // The supervisor restores our CPU mask (see below), given as a list ("0,1").
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  const bool have_mask = ::sched_getaffinity(0, sizeof cpus, &cpus) == 0;
  std::string mask;
  if (have_mask) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &cpus)) continue;
      if (!mask.empty()) mask += ',';
      mask += std::to_string(cpu);
    }
  }
  s.argv_text = {"pw", "__supervise", name, "made", std::string(1, proto::net_code(spec.net)),
                 mask.empty() ? "-" : mask, runtime.string()};
  for (auto& a : s.argv_text) s.argv.push_back(a.data());
  s.argv.push_back(nullptr);
  for (char** e = environ; e && *e; ++e) s.envp.push_back(*e);
  s.envp.push_back(nullptr);

  s.stack = ::mmap(nullptr, kHelperStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE,
                   -1, 0);
  if (s.stack == MAP_FAILED) throw SysError("map the workspace helper's stack");
  ::mprotect(s.stack, 4096, PROT_NONE);  // a guard page
  std::fflush(nullptr);
  const pid_t pid = ::clone(helper_entry, static_cast<char*>(s.stack) + kHelperStack, CLONE_VM | CLONE_FILES | SIGCHLD, &s);
  if (pid < 0) throw SysError("start the workspace helper");
  m->started_ = true;
  s.pid = pid;
  s.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  // The supervisor it becomes takes back our mask once it has our hello, sent after this.
  if (have_mask) start_elsewhere(pid, cpus);
  return m;
}

bool WorkspaceMaker::await_made() {
  Shared& s = *shared_;
  if (made_ < 0) {
    // Its byte, or its end: we hold `made_w` too (one table), so a helper killed before it
    // wrote would leave the pipe open.
    struct pollfd fds[2] = {{s.made_r.get(), POLLIN, 0}, {s.pidfd.get(), POLLIN, 0}};
    while (::poll(fds, s.pidfd ? 2 : 1, -1) < 0 && errno == EINTR) {
    }
    char byte = 0;
    ssize_t n = 0;
    if (fds[0].revents != 0) {
      while ((n = ::read(s.made_r.get(), &byte, 1)) < 0 && errno == EINTR) {
      }
    }
    made_ = n == 1 && byte == '1';
    // The helper's own descriptor table holds `done_w` now (or it is gone): ours goes, so
    // that EOF on `done_r` means it has exec'd or exited.
    s.done_w.reset();
  }
  return made_ == 1;
}

Joined WorkspaceMaker::finish(const std::string& summary) {
  Shared& s = *shared_;
  if (!await_made()) {
    if (s.ns.failed) s.ns.throw_failure("workspace " + s.name + ": ");
    throw Error("workspace " + s.name + ": the helper that makes its namespaces ended early");
  }
  proto::send(s.conn_ours.get(), "hello " + std::to_string(proto::kVersion) + " session " + summary);
  Joined j;
  j.conn = std::move(s.conn_ours);
  j.userns = Fd(s.ns.userns);
  j.mntns = Fd(s.ns.mntns);
  j.stage = s.ns.stage_path;
  j.stage_fd = Fd(s.ns.stage_root);
  if (s.ns.netns >= 0) j.netns = Fd(s.ns.netns);
  if (s.ns.http_fd >= 0) ::close(s.ns.http_fd);  // the supervisor's, for the proxy
  handed_over_ = true;
  j.net_mode = s.ns.http ? NetMode::Allowlist : (s.ns.net ? NetMode::None : NetMode::Host);
  // The lock and the registration socket's other end are the supervisor's now.
  s.lock.reset();
  s.conn_theirs.reset();
  return j;
}

WorkspaceMaker::~WorkspaceMaker() {
  if (!shared_) return;
  Shared& s = *shared_;
  if (started_) {
    // The helper reads its command line from our memory until its exec: nothing of it is
    // freed before then. Told we are gone, it exits rather than exec the supervisor.
    await_made();
    s.go_w.reset();
    if (made_ == 1) {
      // Its own table holds `done_w`: EOF once it has exec'd or exited.
      char byte;
      while (::read(s.done_r.get(), &byte, 1) < 0 && errno == EINTR) {
      }
    } else if (s.pidfd) {
      // It failed in our table: only its end says it is off its stack.
      struct pollfd end = {s.pidfd.get(), POLLIN, 0};
      while (::poll(&end, 1, -1) < 0 && errno == EINTR) {
      }
    } else {
      while (::waitpid(s.pid, nullptr, __WALL) < 0 && errno == EINTR) {
      }
    }
    if (!handed_over_) {
      for (int fd : {s.ns.userns, s.ns.mntns, s.ns.stage_root, s.ns.netns, s.ns.http_fd}) {
        if (fd >= 0) ::close(fd);
      }
    }
  }
  if (s.stack != MAP_FAILED) ::munmap(s.stack, kHelperStack);
}

}  // namespace pw
