#include "sandbox/seccomp.hpp"

#include <linux/sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "util/error.hpp"
#include "util/fd.hpp"

// <linux/sched.h> of older kernels lacks the newest namespace flag; the value is ABI.
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace pw::seccomp {
namespace {

// What a rule inspects besides the syscall number.
enum class Match {
  Always,
  IoctlCmd,  // argument 1 equals one of `values` (low 32 bits)
  AnyFlag,   // argument 0 has at least one of the bits in `values` set
  Arg0Is,    // argument 0 equals one of `values` (low 32 bits: an int argument)
};

struct Value {
  std::uint64_t value;
  const char* name;
};

// One line of policy. build() and describe() both read this table, so what `pw explain`
// prints cannot drift from what is enforced.
struct Rule {
  std::vector<const char*> syscalls;
  Match match = Match::Always;
  std::vector<Value> values;
  int err = EPERM;
  const char* why = "";
};

#define PW_VALUE(x) Value{static_cast<std::uint64_t>(x), #x}

std::vector<Value> namespace_flags(bool include_user, bool include_time) {
  std::vector<Value> v{PW_VALUE(CLONE_NEWNS),  PW_VALUE(CLONE_NEWPID), PW_VALUE(CLONE_NEWNET),
                       PW_VALUE(CLONE_NEWIPC), PW_VALUE(CLONE_NEWUTS), PW_VALUE(CLONE_NEWCGROUP)};
  if (include_user) v.push_back(PW_VALUE(CLONE_NEWUSER));
  if (include_time) v.push_back(PW_VALUE(CLONE_NEWTIME));
  return v;
}

std::vector<Rule> policy(const ProfileSpec& spec, bool interactive) {
  std::vector<Rule> rules;
  if (spec.seccomp == SeccompMode::Off) return rules;
  const bool strict = spec.seccomp == SeccompMode::Strict;
  const bool agent = strict || spec.posture == Posture::Agent;

  // Both postures: walls a human never needs to cross from a project shell, and whose
  // crossing hurts more than the project (the terminal, the kernel, other sessions' keys).
  // ioctl's cmd is compared on its low 32 bits only: the kernel truncates it to unsigned
  // int, so a caller setting high bits must still hit the rule.
  rules.push_back({{"ioctl"},
                   Match::IoctlCmd,
                   {PW_VALUE(TIOCSTI), PW_VALUE(TIOCLINUX)},
                   EPERM,
                   "typing into or driving the terminal the session runs on"});
  rules.push_back({{"keyctl", "add_key", "request_key"}, Match::Always, {}, EPERM,
                   "kernel keyrings are not namespaced: they hold the user's other sessions' keys"});
  rules.push_back({{"bpf"}, Match::Always, {}, EPERM, "loading BPF programs into the kernel"});
  rules.push_back({{"perf_event_open"}, Match::Always, {}, EPERM,
                   "observing other processes and the kernel through performance counters"});
  rules.push_back({{"userfaultfd"}, Match::Always, {}, EPERM,
                   "a staple of kernel exploits (stalling the kernel mid-copy)"});
  rules.push_back({{"kexec_load", "kexec_file_load", "init_module", "finit_module",
                    "delete_module"},
                   Match::Always, {}, EPERM, "replacing the kernel or loading kernel modules"});
  if (spec.net != NetMode::Host) {
    // The one socket family that ignores network namespaces: in a VM guest it reaches the
    // hypervisor's host and its services, around "none" and the allowlist alike.
    rules.push_back({{"socket"}, Match::Arg0Is, {PW_VALUE(AF_VSOCK)}, EPERM,
                     "vsock, which no network namespace confines (a VM guest's line to its host)"});
  }
  if (!agent) return rules;

  // personality() is deliberately not filtered. Its risky bits (ADDR_NO_RANDOMIZE,
  // READ_IMPLIES_EXEC, MMAP_PAGE_ZERO) only weaken the caller and its own descendants, which
  // are inside the same sandbox; the kernel clears them across setuid execs, and
  // no_new_privs rules those out anyway. Filtering it would break setarch, gdb and 32-bit
  // build tooling for no gain at the sandbox boundary.

  if (!interactive) {
    // A process of a command session (how agents run) left in the background (pw started
    // with &, or suspended and resumed with bg) could make itself the terminal's
    // foreground group and read what the user types to their own shell. Job control of the
    // command itself is the user's shell's, which needs nothing from inside; an
    // interactive shell in the sandbox does need this for its own jobs, and keeps it.
    rules.push_back({{"ioctl"},
                     Match::IoctlCmd,
                     {PW_VALUE(TIOCSPGRP)},
                     EPERM,
                     "taking the terminal's foreground, to read what the user types elsewhere "
                     "(allowed for an interactive shell, whose job control needs it)"});
  }
  rules.push_back({{"ptrace", "process_vm_readv", "process_vm_writev"}, Match::Always, {}, EPERM,
                   "reading or changing the memory of other processes"});
  rules.push_back({{"mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick",
                    "move_mount", "open_tree", "mount_setattr"},
                   Match::Always, {}, EPERM,
                   "changing the filesystem view the sandbox was built from"});
  rules.push_back({{"reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog"},
                   Match::Always, {}, EPERM, "system administration"});
  rules.push_back({{"settimeofday", "clock_settime", "clock_adjtime", "adjtimex"}, Match::Always,
                   {}, EPERM, "setting the system clock"});
  rules.push_back({{"iopl", "ioperm"}, Match::Always, {}, EPERM, "raw hardware I/O ports"});
  if (!spec.allow_io_uring) {
    // io_uring performs reads, opens and connects without the corresponding syscalls, so
    // no syscall filter can see what it does; it is opt-in.
    rules.push_back({{"io_uring_setup", "io_uring_enter", "io_uring_register"}, Match::Always,
                     {}, EPERM,
                     "io_uring, whose operations bypass syscall filtering (allow_io_uring "
                     "permits)"});
  }

  if (strict) {
    rules.push_back({{"setns"}, Match::Always, {}, EPERM, "entering other namespaces"});
    rules.push_back({{"chroot"}, Match::Always, {}, EPERM, "changing the root directory"});
    rules.push_back({{"name_to_handle_at", "open_by_handle_at"}, Match::Always, {}, EPERM,
                     "opening files by handle, around path-based checks"});
    rules.push_back({{"unshare"}, Match::AnyFlag, namespace_flags(!spec.allow_userns, true), EPERM,
                     "creating namespaces"});
    // clone() reuses the low byte for the exit signal (CSIGNAL), where CLONE_NEWTIME lives in
    // unshare(); the kernel ignores that bit as a flag there, so it must not be matched.
    rules.push_back({{"clone"}, Match::AnyFlag, namespace_flags(!spec.allow_userns, false), EPERM,
                     "creating namespaces"});
  } else if (!spec.allow_userns) {
    rules.push_back({{"unshare", "clone"}, Match::AnyFlag, {PW_VALUE(CLONE_NEWUSER)}, EPERM,
                     "new user namespaces, the usual way to regain capabilities and reach "
                     "kernel attack surface (allow_userns permits)"});
  }
  if (strict || !spec.allow_userns) {
    // clone3 passes its flags in a struct behind a pointer, which seccomp cannot read. ENOSYS
    // (not EPERM) makes glibc and other runtimes fall back to clone(), where the flags are
    // visible to the rule above.
    rules.push_back({{"clone3"}, Match::Always, {}, ENOSYS,
                     "its flags cannot be inspected; callers fall back to clone()"});
  }
  return rules;
}

#undef PW_VALUE

void check(int rc, const std::string& what) {
  if (rc < 0) throw SysError("seccomp: " + what, -rc);
}

struct FilterCtx {
  scmp_filter_ctx ctx;
  explicit FilterCtx(std::uint32_t def) : ctx(seccomp_init(def)) {
    if (!ctx) throw Error("seccomp: cannot initialise libseccomp");
  }
  FilterCtx(const FilterCtx&) = delete;
  FilterCtx& operator=(const FilterCtx&) = delete;
  ~FilterCtx() { seccomp_release(ctx); }
};

void add_rule(scmp_filter_ctx ctx, const Rule& rule) {
  for (const char* name : rule.syscalls) {
    const int nr = seccomp_syscall_resolve_name(name);
    // An unknown name would otherwise leave a silent hole; refuse to build instead.
    if (nr == __NR_SCMP_ERROR) throw Error(std::string("seccomp: libseccomp does not know ") + name);
    const std::uint32_t action = SCMP_ACT_ERRNO(static_cast<std::uint32_t>(rule.err));
    switch (rule.match) {
      case Match::Always:
        check(seccomp_rule_add_array(ctx, action, nr, 0, nullptr), std::string("rule for ") + name);
        break;
      case Match::IoctlCmd:
      case Match::Arg0Is:
        // An int argument (ioctl's cmd, socket's domain): compared on its low 32 bits.
        for (const Value& v : rule.values) {
          scmp_arg_cmp cmp{};
          cmp.arg = rule.match == Match::IoctlCmd ? 1 : 0;
          cmp.op = SCMP_CMP_MASKED_EQ;
          cmp.datum_a = 0xffffffffu;
          cmp.datum_b = v.value;
          check(seccomp_rule_add_array(ctx, action, nr, 1, &cmp),
                std::string("rule for ") + name + " " + v.name);
        }
        break;
      case Match::AnyFlag:
        // Rules with the same action on one syscall are OR'ed: one per bit is "any bit set".
        for (const Value& v : rule.values) {
          scmp_arg_cmp cmp{};
          cmp.arg = 0;
          cmp.op = SCMP_CMP_MASKED_EQ;
          cmp.datum_a = v.value;
          cmp.datum_b = v.value;
          check(seccomp_rule_add_array(ctx, action, nr, 1, &cmp),
                std::string("rule for ") + name + " " + v.name);
        }
        break;
    }
  }
}

std::string join(const std::vector<const char*>& items, const char* sep) {
  std::string out;
  for (const char* s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

std::string join(const std::vector<Value>& items, const char* sep) {
  std::vector<const char*> names;
  for (const Value& v : items) names.push_back(v.name);
  return join(names, sep);
}

}  // namespace

Program build(const ProfileSpec& spec, bool interactive) {
  const std::vector<Rule> rules = policy(spec, interactive);
  if (spec.seccomp == SeccompMode::Off) return {};

  FilterCtx f(SCMP_ACT_ALLOW);
  // Only the native ABI is in the filter. libseccomp sends other audit arches, and on x86_64
  // also x32 numbers (nr >= 0x40000000) under the native arch, to the bad-arch action.
  // A rule written for x86_64 numbers means nothing for them, so they are refused wholesale.
  // Kill rather than EPERM: a 32-bit program whose every syscall (exit included) fails
  // would spin or crash confusingly, while SIGSYS ("Bad system call") is immediate and
  // names the cause. KILL_PROCESS, not libseccomp's default KILL_THREAD, so no half-dead
  // multi-threaded process is left behind.
  check(seccomp_attr_set(f.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS),
        "bad-arch action");
  for (const Rule& rule : rules) add_rule(f.ctx, rule);

  Fd mem(::memfd_create("pw-seccomp", MFD_CLOEXEC));
  if (!mem) throw SysError("seccomp: memfd_create");
  check(seccomp_export_bpf(f.ctx, mem.get()), "export BPF");
  const off_t size = ::lseek(mem.get(), 0, SEEK_END);
  if (size < 0) throw SysError("seccomp: lseek");
  if (size == 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0)
    throw Error("seccomp: libseccomp exported a malformed program");
  Program program;
  program.insns.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
  // The kernel's limit; checked here so load() in the child never meets it.
  if (program.insns.size() > BPF_MAXINSNS) throw Error("seccomp: filter too long");
  auto* out = reinterpret_cast<char*>(program.insns.data());
  std::size_t done = 0;
  while (done < static_cast<std::size_t>(size)) {
    const ssize_t n = ::pread(mem.get(), out + done, static_cast<std::size_t>(size) - done,
                              static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw SysError("seccomp: read back exported BPF", n < 0 ? errno : EIO);
    done += static_cast<std::size_t>(n);
  }
  return program;
}

void load(const Program& program) noexcept {
  if (program.insns.empty()) return;
  sock_fprog fprog{};
  fprog.len = static_cast<unsigned short>(program.insns.size());
  // The kernel copies the program and never writes through this pointer.
  fprog.filter = const_cast<sock_filter*>(program.insns.data());
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) == 0) return;

  // Between clone and exec: no allocation, no stdio. Format errno by hand.
  const int err = errno;
  char buf[96];
  static const char prefix[] = "pw: cannot install the seccomp filter: errno ";
  std::size_t len = sizeof(prefix) - 1;
  std::memcpy(buf, prefix, len);
  char digits[12];
  int nd = 0;
  unsigned value = err > 0 ? static_cast<unsigned>(err) : 0u;
  do {
    digits[nd++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0 && nd < static_cast<int>(sizeof(digits)));
  while (nd > 0) buf[len++] = digits[--nd];
  if (err == EACCES) {
    static const char hint[] = " (no_new_privs not set)";
    std::memcpy(buf + len, hint, sizeof(hint) - 1);
    len += sizeof(hint) - 1;
  }
  buf[len++] = '\n';
  [[maybe_unused]] const ssize_t ignored = ::write(2, buf, len);
  ::_exit(125);
}

std::vector<std::string> describe(const ProfileSpec& spec) {
  std::vector<std::string> lines;
  if (spec.seccomp == SeccompMode::Off) {
    lines.emplace_back("seccomp off: no syscall filter");
    return lines;
  }
  lines.push_back(std::string("seccomp ") + to_string(spec.seccomp) + " for the " +
                  to_string(spec.posture) + " posture; every syscall not listed is allowed");
  for (const Rule& rule : policy(spec, false)) {
    std::string line = "deny " + join(rule.syscalls, ", ");
    switch (rule.match) {
      case Match::Always:
        break;
      case Match::IoctlCmd:
        line += " " + join(rule.values, ", ");
        break;
      case Match::Arg0Is:
        line += " of " + join(rule.values, ", ");
        break;
      case Match::AnyFlag:
        line += rule.values.size() == 1 ? " with " : " with any of ";
        line += join(rule.values, "|");
        break;
    }
    line += rule.err == ENOSYS ? " (ENOSYS): " : " (EPERM): ";
    line += rule.why;
    lines.push_back(std::move(line));
  }
#if defined(__x86_64__)
  lines.emplace_back(
      "kill process: syscalls through the i386 (int 0x80) or x32 ABI, which a filter keyed on "
      "x86_64 syscall numbers would not see");
#else
  lines.emplace_back(
      "kill process: syscalls through any non-native ABI, which a filter keyed on native "
      "syscall numbers would not see");
#endif
  return lines;
}

}  // namespace pw::seccomp
