#include "sandbox/spawn.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "net/process.hpp"
#include "sandbox/landlock.hpp"
#include "sandbox/userns.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/output.hpp"
#include "util/sanitizer.hpp"
#include "workspace/protocol.hpp"

extern char** environ;

namespace pw {
namespace {

constexpr int kSetupFailed = 125;

// --verbose: one line per setup step on stderr (still the user's terminal after pivot_root).
// A plain write, so a step line never sits in a stdio buffer that fork would duplicate.
void step(const SessionSpec& spec, const std::string& what) {
  if (!spec.verbose) return;
  const std::string line = "pw: session: " + what + out::elapsed_suffix() + "\n";
  if (::write(STDERR_FILENO, line.data(), line.size()) < 0) {
  }
}

// Child-side error report: the parent prints it. Short writes are fine (best effort).
[[noreturn]] void fail(int errfd, const std::string& msg, int code = kSetupFailed) {
  std::string line = msg + "\n";
  if (::write(errfd, line.data(), line.size()) < 0) {
  }
  _exit(code);
}

// If the parent is already gone, PR_SET_PDEATHSIG set after its death never fires: check
// the lifeline pipe, whose write end only the parent holds.
void die_with_parent(int lifeline) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) _exit(kSetupFailed);
  struct pollfd p = {lifeline, POLLIN, 0};
  if (::poll(&p, 1, 0) > 0) _exit(kSetupFailed);
}

// The payload's process shares pid 1's memory until its exec (vfork), so from here on it
// only makes system calls: no allocation, no exceptions, no stdio.
[[noreturn]] void payload_fail(int errfd, const char* what, int err, int code = kSetupFailed) {
  const char* why = ::strerrordesc_np(err);
  if (why == nullptr) why = "unknown error";
  struct iovec v[3] = {{const_cast<char*>(what), std::strlen(what)},
                       {const_cast<char*>(why), std::strlen(why)},
                       {const_cast<char*>("\n"), 1}};
  if (::writev(errfd, v, 3) < 0) {
  }
  _exit(code);
}

// 0, or the errno of the call that failed.
int drop_capabilities() noexcept {
  for (int cap = 0; cap <= 63; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL) break;
  }
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  return ::syscall(SYS_capset, &hdr, data) == 0 ? 0 : errno;
}

void reset_signals() noexcept {
  sigset_t all;
  sigemptyset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  for (int s = 1; s < NSIG; ++s) {
    if (s == SIGKILL || s == SIGSTOP) continue;
    ::signal(s, SIG_DFL);
  }
}

// The client's CPU mask while the session starts on the client's CPU alone (run_session):
// pid 1 and the payload's process take it back before anything of the user's runs.
struct StartCpus {
  cpu_set_t all;
  bool pinned = false;
  void restore() const {
    if (pinned) ::sched_setaffinity(0, sizeof all, &all);
  }
};

// What the payload's process needs, made by pid 1 before the vfork.
struct PayloadExec {
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::string step_line;  // empty unless --verbose
  std::string cwd_error;  // "pw: cannot enter DIR: "
  std::string run_error;  // "pw: cannot run CMD: "
};

PayloadExec prepare_payload(const SessionSpec& spec) {
  PayloadExec p;
  for (const auto& a : spec.argv) p.argv.push_back(const_cast<char*>(a.c_str()));
  p.argv.push_back(nullptr);
  for (const auto& e : spec.env) p.envp.push_back(const_cast<char*>(e.c_str()));
  p.envp.push_back(nullptr);
  if (spec.verbose) {
    p.step_line = "pw: session: " +
                  (spec.seccomp.insns.empty()
                       ? "no seccomp filter (seccomp = \"off\"); exec " + spec.argv[0]
                       : "seccomp filter (" + std::to_string(spec.seccomp.insns.size()) +
                             " BPF instructions), then exec " + spec.argv[0]) +
                  out::elapsed_suffix() + "\n";
  }
  p.cwd_error = "pw: cannot enter " + spec.cwd.string() + ": ";
  p.run_error = "pw: cannot run " + spec.argv[0] + ": ";
  return p;
}

// In the vforked payload process: become the plain user under the filter and exec.
[[noreturn]] void exec_payload(const SessionSpec& spec, const PayloadExec& p, int errfd, const StartCpus& cpus) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) _exit(kSetupFailed);
  cpus.restore();
  if (int err = drop_capabilities()) payload_fail(errfd, "pw: sandbox setup failed: drop capabilities: ", err);
  reset_signals();
  // (CLOSE_RANGE_CLOEXEC: Linux 5.11; pw needs 5.12 for mount_setattr anyway.)
  if (spec.only_stdio && ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    payload_fail(errfd, "pw: sandbox setup failed: close the caller's descriptors: ", errno);
  }
  if (::chdir(spec.cwd.c_str()) != 0 && ::chdir(spec.fallback_cwd.c_str()) != 0) {
    payload_fail(errfd, p.cwd_error.c_str(), errno);
  }
  if (!p.step_line.empty() && ::write(STDERR_FILENO, p.step_line.data(), p.step_line.size()) < 0) {
  }
  seccomp::load(spec.seccomp);
  // execvp() searches the PATH of `environ`, which pid 1 made the session's.
  ::execvp(p.argv[0], p.argv.data());
  const int err = errno;
  payload_fail(errfd, p.run_error.c_str(), err, err == ENOENT ? 127 : 126);
}

// pid 1 of the session's pid namespace. Builds the view, becomes the user, starts the
// payload and mirrors its exit. When it exits the kernel kills everything left in the
// namespace, so no sandboxed process outlives the session.
[[noreturn]] void session_init(const SessionSpec& spec, int errfd, int lifeline, const StartCpus& cpus) {
  try {
    die_with_parent(lifeline);
    // Nothing done here may reach the workspace's other sessions or the host.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
      throw SysError("make mounts private");
    }
    step(spec, "pid 1 of the new pid namespace; mounts made slaves of the workspace's");
    if (spec.net_fd >= 0) {
      // Loopback only (and, with the allowlist, the proxy's listener on 127.0.0.1:3128,
      // which the supervisor made there): nothing in it leads out.
      if (::setns(spec.net_fd, CLONE_NEWNET) != 0) throw SysError("enter the workspace's network namespace");
      step(spec, "entered the workspace's network namespace (loopback only)");
    }
    build_root(spec.newroot, spec.plan, spec.dev, spec.vault_tree);
    step(spec, "root built at " + spec.newroot.string() + " (" +
                   std::to_string(spec.plan.ops.size()) + " mount operations)");
    if (!spec.hostname.empty() && ::sethostname(spec.hostname.data(), spec.hostname.size()) != 0) {
      throw SysError("set hostname");
    }
    enter_root(spec.newroot);
    step(spec, "hostname " + spec.hostname + "; pivot_root into the new root, old root detached");
    // Leave root of the workspace namespace for a nested one where we are the user again:
    // the session then holds no capability over its mounts, so it cannot unmount a mask.
    enter_user_namespace_as(spec.uid, spec.gid);
    die_with_parent(lifeline);  // creds changed: the death signal was reset
    // The payload runs as this same uid, in this same user namespace, and sees us as its
    // pid 1: non-dumpable, our /proc entries (the caller's whole environment in environ,
    // the workspace's namespaces and staging dir in fd/) are closed to it. Only now, with
    // our id maps written.
    if (::prctl(PR_SET_DUMPABLE, 0) != 0) throw SysError("make the session's init non-dumpable");
    step(spec, "nested user namespace: uid " + std::to_string(spec.uid) + ", gid " +
                   std::to_string(spec.gid) + ", no capability over the mounts");
    if (!spec.ssh_agent_socket.empty()) {
      // Made as the user, inside the session's view; served by the supervisor's filter.
      Fd agent = net::listen_unix(spec.ssh_agent_socket);
      proto::send(spec.control_fd, "net-listen ssh-agent", {agent.get()});
    }
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw SysError("set no_new_privs");
    step(spec, "no_new_privs set");
    // Under the mounts, a second wall that does not depend on them being right.
    landlock::apply(spec.landlock, spec.landlock_abi);
    // Never within the payload's reach.
    if (spec.control_fd >= 0) ::close(spec.control_fd);
  } catch (const std::exception& e) {
    fail(errfd, std::string("pw: sandbox setup failed: ") + e.what());
  }

  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGCHLD, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&set, s);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  // Terminal signals reach the payload directly (same process group); init stays out of it.
  for (int s : {SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU}) ::signal(s, SIG_IGN);

  // vfork: no copy of pid 1's page tables, which on some hypervisors costs more than the
  // whole rest of the exec; pid 1 waits until the payload has exec'd (or failed).
  const PayloadExec payload = prepare_payload(spec);
  char** const caller_environ = environ;
  environ = const_cast<char**>(payload.envp.data());
  pid_t main_pid = ::vfork();
  if (main_pid == 0) {
    ::close(lifeline);
    exec_payload(spec, payload, errfd, cpus);
  }
  // Our memory is the client's (see run_session): its environment is its own again.
  environ = caller_environ;
  cpus.restore();
  if (main_pid < 0) fail(errfd, std::string("pw: fork: ") + std::strerror(errno));
  if (drop_capabilities() != 0) {
    ::kill(main_pid, SIGKILL);
    _exit(kSetupFailed);
  }
  // The client wakes up at this close: from here on we make system calls only, and touch
  // no memory but our own stack (see run_session) and errno, which is the client's too (no
  // TLS of our own): the calls below fail only on a stop and continue of pid 1 itself, and
  // the client reads errno only after a failed call of its own.
  ::close(errfd);

  for (;;) {
    siginfo_t si;
    int sig = ::sigwaitinfo(&set, &si);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      ::kill(main_pid, sig);
      continue;
    }
    int status;
    pid_t p;
    while ((p = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (p != main_pid) continue;  // an orphan re-parented to us
      if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
      if (WIFSIGNALED(status)) _exit(128 + WTERMSIG(status));
    }
  }
}

struct InitArgs {
  const SessionSpec* spec;
  int errfd, lifeline, err_r, life_w, watch_fd;
  sigset_t mask;
  const StartCpus* cpus;
};

int init_entry(void* p) {
  // Only raw descriptors here: the Fd objects are the client's memory.
  const InitArgs& a = *static_cast<const InitArgs*>(p);
  ::close(a.err_r);
  ::close(a.life_w);
  // pid 1 keeps the supervisor connection only to hand over its listening sockets.
  if (a.watch_fd >= 0 && a.watch_fd != a.spec->control_fd) ::close(a.watch_fd);
  ::sigprocmask(SIG_SETMASK, &a.mask, nullptr);
  session_init(*a.spec, a.errfd, a.lifeline, *a.cpus);
}

// pid 1's stack: its own mapping (reserved, not committed: only what it touches is
// used), with a guard page below. The vfork'd payload runs on it until its exec, and
// execvp's fallback for a script without #! copies the argument list onto it: as large as
// a main thread's usual 8 MiB.
constexpr std::size_t kInitStack = 8u << 20;

}  // namespace

int run_session(const SessionSpec& spec, int watch_fd) {
  int errpipe[2], lifeline[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0 || ::pipe2(lifeline, O_CLOEXEC) != 0) {
    throw SysError("pipe");
  }
  Fd err_r(errpipe[0]), err_w(errpipe[1]), life_r(lifeline[0]), life_w(lifeline[1]);

  // Ignore terminal interrupts while the session runs: they reach the command itself, and
  // pw must stay alive to report its status. SIGTSTP keeps its default so Ctrl-Z stops pw
  // together with a foreground command (the shell that started pw sees it stop).
  struct sigaction ign {}, old_int {}, old_quit {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ign, &old_int);
  ::sigaction(SIGQUIT, &ign, &old_quit);
  sigset_t fwd, old_mask;
  sigemptyset(&fwd);
  for (int s : {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&fwd, s);
  ::sigprocmask(SIG_BLOCK, &fwd, &old_mask);

  unsigned long flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | SIGCHLD;
  if (spec.new_ipc) flags |= CLONE_NEWIPC;
  step(spec, std::string("clone: new pid, mount, uts") + (spec.new_ipc ? ", ipc" : "") + " namespaces");
  // pid 1 shares our memory (CLONE_VM), like a vfork child, on a stack of its own: a copy
  // of the client's page tables, and the copy-on-write faults of both processes after
  // it, cost more than the rest of the clone. What makes the sharing safe: we are single-
  // threaded (entering the workspace's user namespace required it), have no signal handler,
  // and do nothing but wait on the error pipe until pid 1 closes it; by then pid 1 is done
  // with the heap and the globals (it only makes system calls, on its own stack, from
  // there on). Its memory is ours, so it gets no more than the copy fork() gave it.
  // A sanitizer build copies the memory as fork() does (util/sanitizer.hpp).
  constexpr bool share_memory = !kSanitizerBuild;
  // pid 1 starts on our CPU, which is free as soon as we wait below: a new task is queued
  // where the scheduler finds the least load, and behind a workspace's new supervisor
  // (starting on our other CPU, see workspace/maker.hpp) pid 1 waited 1-2 ms to run.
  StartCpus cpus;
  auto pin = [&cpus] {  // just before the clone: nothing may throw between it and the restore
    if (::sched_getaffinity(0, sizeof cpus.all, &cpus.all) == 0 && CPU_COUNT(&cpus.all) > 1) {
      const int here = ::sched_getcpu();
      cpu_set_t one;
      CPU_ZERO(&one);
      if (here >= 0 && here < CPU_SETSIZE && CPU_ISSET(here, &cpus.all)) {
        CPU_SET(here, &one);
        cpus.pinned = ::sched_setaffinity(0, sizeof one, &one) == 0;
      }
    }
  };
  InitArgs args{&spec, err_w.get(), life_r.get(), err_r.get(), life_w.get(), watch_fd, old_mask, &cpus};
  void* stack = MAP_FAILED;
  pid_t pid;
  if (share_memory) {
    stack = ::mmap(nullptr, kInitStack, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (stack == MAP_FAILED) throw SysError("map the session init's stack");
    ::mprotect(stack, 4096, PROT_NONE);
    pin();
    pid = ::clone(init_entry, static_cast<char*>(stack) + kInitStack, static_cast<int>(flags | CLONE_VM), &args);
  } else {
    // Raw clone with no new stack behaves like fork().
    pin();
    pid = static_cast<pid_t>(::syscall(SYS_clone, flags, nullptr, nullptr, nullptr, nullptr));
    if (pid == 0) init_entry(&args);
  }
  cpus.restore();
  if (pid < 0) throw SysError("clone session namespaces");
  // With memory of its own, pid 1 does not need ours dumpable (see below).
  if (!share_memory) ::prctl(PR_SET_DUMPABLE, 0);
  err_w.reset();
  life_r.reset();

  // Setup errors and exec failures arrive on the error pipe; EOF means the command runs.
  std::string err;
  char buf[512];
  ssize_t n;
  while ((n = ::read(err_r.get(), buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    err.append(buf, static_cast<size_t>(n));
  }
  // Setup errors name paths from the profile and the project: printed as pw's own lines are.
  if (!err.empty()) std::fputs(out::printable(err).c_str(), stderr);
  // We hold the workspace's user and mount namespaces (as root there) and its staging dir
  // until the session ends: like the supervisor and the session's pid 1, non-dumpable, so
  // no other process of the user reaches them through our /proc entries. (Not before pid 1
  // is set up: with our memory, it shares this flag, and it must write its own id maps.)
  ::prctl(PR_SET_DUMPABLE, 0);

  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  Fd sigfd(::signalfd(-1, &fwd, SFD_CLOEXEC));
  int status = 0;
  bool done = false;
  while (!done) {
    struct pollfd fds[3] = {{pidfd.get(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}, {watch_fd, POLLIN, 0}};
    int r = ::poll(fds, watch_fd >= 0 ? 3 : 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw SysError("poll");
    }
    if (fds[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (::read(sigfd.get(), &si, sizeof si) == sizeof si) ::kill(pid, static_cast<int>(si.ssi_signo));
    }
    if (watch_fd >= 0 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      // The supervisor says nothing after its answer but why the workspace ends, if it can.
      char msg[1024];
      const ssize_t k = ::recv(watch_fd, msg, sizeof msg, MSG_DONTWAIT);
      const std::string_view said(msg, k > 0 ? static_cast<std::size_t>(k) : 0);
      if (said.starts_with("error ")) {
        std::fputs(("pw: " + out::printable(std::string(said.substr(6))) + "; ending the session\n").c_str(), stderr);
        ::kill(pid, SIGKILL);
        watch_fd = -1;
      } else if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        std::fputs("pw: the workspace supervisor went away; ending the session\n", stderr);
        ::kill(pid, SIGKILL);
        watch_fd = -1;
      }
    }
    if (fds[0].revents & POLLIN) {
      if (::waitpid(pid, &status, 0) == pid) done = true;
    }
  }
  if (stack != MAP_FAILED) ::munmap(stack, kInitStack);  // pid 1 is gone, and its stack unused
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGQUIT, &old_quit, nullptr);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return kSetupFailed;
}

}  // namespace pw
