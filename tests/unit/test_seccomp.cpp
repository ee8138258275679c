// The syscall wall: decisions of the exported BPF evaluated in-process for every posture and
// mode, then the agent program installed for real in a child.
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "sandbox/bpf_eval.hpp"
#include "sandbox/seccomp.hpp"

namespace {

using pw::NetMode;
using pw::Posture;
using pw::ProfileSpec;
using pw::SeccompMode;

constexpr std::uint32_t kAllow = SECCOMP_RET_ALLOW;
constexpr std::uint32_t kEperm = SECCOMP_RET_ERRNO | EPERM;
constexpr std::uint32_t kEnosys = SECCOMP_RET_ERRNO | ENOSYS;
constexpr int kX32Bit = 0x40000000;

ProfileSpec spec_for(Posture posture, SeccompMode mode = SeccompMode::Default) {
  ProfileSpec s;
  s.posture = posture;
  s.seccomp = mode;
  return s;
}

struct Eval {
  pw::seccomp::Program program;
  explicit Eval(const ProfileSpec& s, bool interactive = false) : program(pw::seccomp::build(s, interactive)) {}

  std::uint32_t call(long nr, std::uint64_t a0 = 0, std::uint64_t a1 = 0,
                     std::uint32_t arch = AUDIT_ARCH_X86_64) const {
    return pw::seccomp::bpf_eval_call(program.insns, nr, a0, a1, arch);
  }
};

// A syscall the filter must not let through, whatever it does instead.
bool refused(std::uint32_t action) { return (action & SECCOMP_RET_ACTION_FULL) != SECCOMP_RET_ALLOW; }

const std::array<long, 10> kEverydaySyscalls = {SYS_read,   SYS_write,     SYS_openat,
                                                SYS_close,  SYS_execve,    SYS_mmap,
                                                SYS_getpid, SYS_exit_group, SYS_wait4,
                                                SYS_socket};

const std::array<long, 37> kAgentDenied = {
    SYS_ptrace,       SYS_process_vm_readv, SYS_process_vm_writev, SYS_keyctl,
    SYS_add_key,      SYS_request_key,      SYS_mount,             SYS_umount2,
    SYS_pivot_root,   SYS_fsopen,           SYS_fsconfig,          SYS_fsmount,
    SYS_fspick,       SYS_move_mount,       SYS_open_tree,         SYS_mount_setattr,
    SYS_bpf,          SYS_perf_event_open,  SYS_userfaultfd,       SYS_kexec_load,
    SYS_kexec_file_load, SYS_init_module,   SYS_finit_module,      SYS_delete_module,
    SYS_reboot,       SYS_swapon,           SYS_swapoff,           SYS_acct,
    SYS_quotactl,     SYS_quotactl_fd,      SYS_syslog,            SYS_settimeofday,
    SYS_clock_settime, SYS_clock_adjtime,   SYS_adjtimex,          SYS_iopl,
    SYS_ioperm};

const std::array<long, 10> kHumanDenied = {
    SYS_keyctl,      SYS_add_key,     SYS_request_key, SYS_bpf,           SYS_kexec_load,
    SYS_kexec_file_load, SYS_init_module, SYS_finit_module, SYS_delete_module, SYS_userfaultfd};

}  // namespace

TEST_CASE("seccomp off builds no program", "[seccomp]") {
  for (Posture p : {Posture::Human, Posture::Agent}) {
    ProfileSpec s = spec_for(p, SeccompMode::Off);
    CHECK(pw::seccomp::build(s).insns.empty());
    CHECK(pw::seccomp::describe(s).size() == 1);
  }
  pw::seccomp::load(pw::seccomp::Program{});  // empty: a no-op, so the test survives it
}

TEST_CASE("agent default denies the DESIGN §5 list with EPERM", "[seccomp]") {
  const Eval f(spec_for(Posture::Agent));
  REQUIRE(!f.program.insns.empty());
  for (long nr : kAgentDenied) {
    INFO("syscall " << nr);
    CHECK(f.call(nr) == kEperm);
  }
  for (long nr : {SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register}) {
    INFO("syscall " << nr);
    CHECK(f.call(nr) == kEperm);
  }
  for (long nr : kEverydaySyscalls) {
    INFO("syscall " << nr);
    CHECK(f.call(nr) == kAllow);
  }
  // Not walls of the default mode.
  CHECK(f.call(SYS_setns) == kAllow);
  CHECK(f.call(SYS_chroot) == kAllow);
  CHECK(f.call(SYS_personality, 0xffffffff) == kAllow);
}

TEST_CASE("an agent command session cannot take the terminal's foreground", "[seccomp]") {
  for (SeccompMode m : {SeccompMode::Default, SeccompMode::Strict}) {
    const Eval command(spec_for(Posture::Agent, m));
    CHECK(command.call(SYS_ioctl, 0, TIOCSPGRP) == kEperm);
    CHECK(command.call(SYS_ioctl, 0, 0xffff000000000000ull | TIOCSPGRP) == kEperm);
    CHECK(command.call(SYS_ioctl, 0, TIOCGPGRP) == kAllow);
    // An interactive shell's job control needs it; a human's command keeps it too.
    CHECK(Eval(spec_for(Posture::Agent, m), true).call(SYS_ioctl, 0, TIOCSPGRP) == kAllow);
  }
  CHECK(Eval(spec_for(Posture::Human)).call(SYS_ioctl, 0, TIOCSPGRP) == kAllow);
}

TEST_CASE("terminal injection ioctls are denied on their low 32 bits", "[seccomp]") {
  for (Posture p : {Posture::Human, Posture::Agent}) {
    for (SeccompMode m : {SeccompMode::Default, SeccompMode::Strict}) {
      const Eval f(spec_for(p, m));
      CHECK(f.call(SYS_ioctl, 0, TIOCSTI) == kEperm);
      CHECK(f.call(SYS_ioctl, 0, TIOCLINUX) == kEperm);
      // The kernel truncates cmd to unsigned int: garbage above bit 31 must not bypass.
      CHECK(f.call(SYS_ioctl, 0, 0xdeadbeef00000000ull | TIOCSTI) == kEperm);
      CHECK(f.call(SYS_ioctl, 0, 0xffffffff00000000ull | TIOCLINUX) == kEperm);
      CHECK(f.call(SYS_ioctl, 0, TCGETS) == kAllow);
      CHECK(f.call(SYS_ioctl, 0, TIOCGWINSZ) == kAllow);
      CHECK(f.call(SYS_ioctl, 0, 0x100000000ull | TCGETS) == kAllow);
    }
  }
}

TEST_CASE("vsock is denied unless the network is the host's, on the domain's low 32 bits", "[seccomp]") {
  for (Posture p : {Posture::Human, Posture::Agent}) {
    for (NetMode net : {NetMode::None, NetMode::Allowlist, NetMode::Host}) {
      ProfileSpec s = spec_for(p);
      s.net = net;
      const Eval f(s);
      INFO("posture " << to_string(p) << ", network " << to_string(net));
      const std::uint32_t want = net == NetMode::Host ? kAllow : kEperm;
      CHECK(f.call(SYS_socket, AF_VSOCK, SOCK_STREAM) == want);
      CHECK(f.call(SYS_socket, 0xffffffff00000000ull | AF_VSOCK, SOCK_DGRAM) == want);
      CHECK(f.call(SYS_socket, AF_INET, SOCK_STREAM) == kAllow);
      CHECK(f.call(SYS_socket, AF_UNIX, SOCK_STREAM) == kAllow);
    }
  }
}

TEST_CASE("new user namespaces are opt-in in the agent posture", "[seccomp]") {
  ProfileSpec s = spec_for(Posture::Agent);
  const std::uint64_t fork_flags = CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD;
  const std::uint64_t thread_flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
                                     CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS |
                                     CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
  {
    const Eval f(s);
    CHECK(f.call(SYS_unshare, CLONE_NEWUSER) == kEperm);
    CHECK(f.call(SYS_unshare, CLONE_NEWUSER | CLONE_NEWNS) == kEperm);
    CHECK(f.call(SYS_clone, fork_flags | CLONE_NEWUSER) == kEperm);
    CHECK(f.call(SYS_clone, fork_flags) == kAllow);
    CHECK(f.call(SYS_clone, thread_flags) == kAllow);
    CHECK(f.call(SYS_unshare, CLONE_NEWNS) == kAllow);  // default mode: only userns
    CHECK(f.call(SYS_clone3) == kEnosys);
  }
  s.allow_userns = true;
  {
    const Eval f(s);
    CHECK(f.call(SYS_unshare, CLONE_NEWUSER) == kAllow);
    CHECK(f.call(SYS_clone, fork_flags | CLONE_NEWUSER) == kAllow);
    CHECK(f.call(SYS_clone3) == kAllow);
  }
}

TEST_CASE("io_uring is opt-in", "[seccomp]") {
  ProfileSpec s = spec_for(Posture::Agent);
  s.allow_io_uring = true;
  const Eval f(s);
  CHECK(f.call(SYS_io_uring_setup) == kAllow);
  CHECK(f.call(SYS_io_uring_enter) == kAllow);
  CHECK(f.call(SYS_io_uring_register) == kAllow);
  CHECK(f.call(SYS_ptrace) == kEperm);  // the rest of the wall stays
}

TEST_CASE("human default denies the lighter list only", "[seccomp]") {
  const Eval f(spec_for(Posture::Human));
  for (long nr : kHumanDenied) {
    INFO("syscall " << nr);
    CHECK(f.call(nr) == kEperm);
  }
  CHECK(f.call(SYS_perf_event_open) == kEperm);
  for (long nr : kEverydaySyscalls) CHECK(f.call(nr) == kAllow);
  for (long nr : {SYS_ptrace, SYS_mount, SYS_io_uring_setup, SYS_clone3, SYS_setns}) {
    INFO("syscall " << nr);
    CHECK(f.call(nr) == kAllow);
  }
  CHECK(f.call(SYS_unshare, CLONE_NEWUSER) == kAllow);
}

TEST_CASE("strict adds namespaces, chroot and file handles in either posture", "[seccomp]") {
  for (Posture p : {Posture::Human, Posture::Agent}) {
    const Eval f(spec_for(p, SeccompMode::Strict));
    for (long nr : kAgentDenied) {
      INFO("syscall " << nr);
      CHECK(f.call(nr) == kEperm);
    }
    for (long nr : {SYS_setns, SYS_chroot, SYS_name_to_handle_at, SYS_open_by_handle_at}) {
      INFO("syscall " << nr);
      CHECK(f.call(nr) == kEperm);
    }
    for (std::uint64_t flag : {CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC,
                               CLONE_NEWUTS, CLONE_NEWCGROUP, CLONE_NEWUSER}) {
      INFO("flag " << flag);
      CHECK(f.call(SYS_unshare, flag) == kEperm);
      CHECK(f.call(SYS_clone, flag | SIGCHLD) == kEperm);
    }
    CHECK(f.call(SYS_unshare, CLONE_NEWTIME) == kEperm);
    // In clone() that bit is part of the exit signal, not a flag.
    CHECK(f.call(SYS_clone, CLONE_CHILD_SETTID | SIGCHLD) == kAllow);
    CHECK(f.call(SYS_unshare, CLONE_FILES | CLONE_FS) == kAllow);
    CHECK(f.call(SYS_clone3) == kEnosys);
    for (long nr : kEverydaySyscalls) CHECK(f.call(nr) == kAllow);
  }
}

TEST_CASE("strict with allow_userns still denies the other namespaces", "[seccomp]") {
  ProfileSpec s = spec_for(Posture::Agent, SeccompMode::Strict);
  s.allow_userns = true;
  const Eval f(s);
  CHECK(f.call(SYS_unshare, CLONE_NEWUSER) == kAllow);
  CHECK(f.call(SYS_unshare, CLONE_NEWUSER | CLONE_NEWNS) == kEperm);
  CHECK(f.call(SYS_clone3) == kEnosys);  // its flags still cannot be inspected
}

TEST_CASE("non-native ABIs are refused", "[seccomp]") {
  for (Posture p : {Posture::Human, Posture::Agent}) {
    for (SeccompMode m : {SeccompMode::Default, SeccompMode::Strict}) {
      const Eval f(spec_for(p, m));
      // x32: same audit arch, syscall number with bit 30 set.
      CHECK(refused(f.call(kX32Bit | SYS_getpid)));
      CHECK(refused(f.call(kX32Bit | SYS_read)));
      CHECK(f.call(kX32Bit | SYS_getpid) == SECCOMP_RET_KILL_PROCESS);
      // i386 numbers mean other calls (20 is getpid there); all are refused.
      CHECK(f.call(20, 0, 0, AUDIT_ARCH_I386) == SECCOMP_RET_KILL_PROCESS);
      CHECK(f.call(SYS_read, 0, 0, AUDIT_ARCH_I386) == SECCOMP_RET_KILL_PROCESS);
      CHECK(refused(f.call(SYS_getpid, 0, 0, AUDIT_ARCH_AARCH64)));
    }
  }
}

TEST_CASE("describe names what build enforces", "[seccomp]") {
  auto joined = [](const ProfileSpec& s) {
    std::string all;
    for (const std::string& line : pw::seccomp::describe(s)) all += line + "\n";
    return all;
  };
  const std::string agent = joined(spec_for(Posture::Agent));
  CHECK(agent.find("ptrace") != std::string::npos);
  CHECK(agent.find("TIOCSTI") != std::string::npos);
  CHECK(agent.find("CLONE_NEWUSER") != std::string::npos);
  CHECK(agent.find("clone3 (ENOSYS)") != std::string::npos);
  CHECK(agent.find("x32") != std::string::npos);
  const std::string human = joined(spec_for(Posture::Human));
  CHECK(human.find("ptrace") == std::string::npos);
  CHECK(human.find("keyctl") != std::string::npos);
  ProfileSpec opt = spec_for(Posture::Agent);
  opt.allow_userns = true;
  opt.allow_io_uring = true;
  const std::string permissive = joined(opt);
  CHECK(permissive.find("CLONE_NEWUSER") == std::string::npos);
  CHECK(permissive.find("io_uring") == std::string::npos);
}

// ---- The program installed for real -------------------------------------------------------

namespace {

// Runs `body` in a forked child with no_new_privs and the given program loaded; the child
// reports one errno per check through a pipe (0: success). Returns the errnos, or the
// terminating signal as a negative number in the first slot.
template <std::size_t N, typename Body>
std::array<int, N> run_confined(const pw::seccomp::Program& program, Body body) {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    // Catch's handlers would report a fatal signal as a failure of its own, from the child.
    for (int sig : {SIGSEGV, SIGILL, SIGFPE, SIGABRT, SIGBUS}) ::signal(sig, SIG_DFL);
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(126);
    pw::seccomp::load(program);
    std::array<int, N> results{};
    body(results);
    const ssize_t w = ::write(fds[1], results.data(), sizeof(results));
    // _exit: no atexit handlers (LeakSanitizer would ptrace, which is now denied).
    ::_exit(w == static_cast<ssize_t>(sizeof(results)) ? 0 : 1);
  }
  ::close(fds[1]);
  std::array<int, N> results{};
  const ssize_t r = ::read(fds[0], results.data(), sizeof(results));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status)) {
    results.fill(0);
    results[0] = -WTERMSIG(status);
    return results;
  }
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(r == static_cast<ssize_t>(sizeof(results)));
  return results;
}

int err_of(long rc) { return rc < 0 ? errno : 0; }

}  // namespace

TEST_CASE("the agent program denies syscalls for real", "[seccomp]") {
  const pw::seccomp::Program program = pw::seccomp::build(spec_for(Posture::Agent));
  enum { kKeyctl, kPtrace, kUserns, kTiocsti, kTiocstiHigh, kClone3, kGetpid, kTcgets, kFork, kCount };
  const auto r = run_confined<kCount>(program, [](std::array<int, kCount>& out) {
    out[kKeyctl] = err_of(::syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
    out[kPtrace] = err_of(::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr));
    out[kUserns] = err_of(::unshare(CLONE_NEWUSER));
    // A terminal of our own, made the controlling one, so without the filter TIOCSTI
    // would be allowed by the kernel (or refused with EIO under legacy_tiocsti=0).
    const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
    int slave = -1;
    if (master >= 0 && ::grantpt(master) == 0 && ::unlockpt(master) == 0) {
      ::setsid();
      slave = ::open(::ptsname(master), O_RDWR);
    }
    if (slave < 0) {
      out[kTiocsti] = out[kTiocstiHigh] = out[kTcgets] = -1;
    } else {
      char c = 'x';
      out[kTiocsti] = err_of(::syscall(SYS_ioctl, slave, TIOCSTI, &c));
      out[kTiocstiHigh] = err_of(::syscall(SYS_ioctl, slave, 0xdead000000000000ull | TIOCSTI, &c));
      termios t{};
      out[kTcgets] = err_of(::ioctl(slave, TCGETS, &t));
    }
    // Invalid arguments: unfiltered this is EINVAL, never a new process.
    out[kClone3] = err_of(::syscall(SYS_clone3, nullptr, 0));
    out[kGetpid] = ::getpid() > 0 ? 0 : -1;
    const pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    int st = 0;
    out[kFork] = child > 0 && ::waitpid(child, &st, 0) == child && WIFEXITED(st) ? 0 : errno;
  });
  CHECK(r[kKeyctl] == EPERM);
  CHECK(r[kPtrace] == EPERM);
  CHECK(r[kUserns] == EPERM);
  CHECK(r[kTiocsti] == EPERM);
  CHECK(r[kTiocstiHigh] == EPERM);
  CHECK(r[kClone3] == ENOSYS);
  CHECK(r[kGetpid] == 0);
  CHECK(r[kTcgets] == 0);
  CHECK(r[kFork] == 0);
}

#if defined(__x86_64__)
TEST_CASE("x32 and i386 syscalls kill the process for real", "[seccomp]") {
  const pw::seccomp::Program program = pw::seccomp::build(spec_for(Posture::Human));
  const auto x32 = run_confined<1>(program, [](std::array<int, 1>& out) {
    out[0] = err_of(::syscall(kX32Bit | SYS_getpid));
  });
  CHECK(x32[0] == -SIGSYS);
  const auto i386 = run_confined<1>(program, [](std::array<int, 1>& out) {
    long ret = 20;  // getpid in the i386 table
    asm volatile("int $0x80" : "+a"(ret) : : "memory", "r8", "r9", "r10", "r11");
    out[0] = ret < 0 ? static_cast<int>(-ret) : 0;
  });
  // SIGSEGV when the kernel runs without ia32 emulation: refused before seccomp.
  CHECK((i386[0] == -SIGSYS || i386[0] == -SIGSEGV));
}
#endif
