#include "check/wallcheck.hpp"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

#include "cli/session.hpp"
#include "net/log.hpp"
#include "policy/env_plan.hpp"
#include "policy/fsview.hpp"
#include "policy/mount_plan.hpp"
#include "profile/loader.hpp"
#include "sandbox/bpf_eval.hpp"
#include "sandbox/landlock.hpp"
#include "sandbox/seccomp.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "workspace/runtime.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace pw::check {

bool judge(const std::string& expect, const std::string& observed) {
  if (expect == "allowed") return observed == "OK";
  if (expect == "denied") return observed != "OK" && observed != "NO-ANSWER" && !observed.empty();
  return observed == expect;
}

namespace {

// Host-side things the session must not reach; removed when the check ends.
struct Canaries {
  std::string token;
  fs::path tmp_file, tmp_sock, runtime_sock, left_inside;
  std::string abstract_name, comm;
  int tcp_port = 0;
  std::vector<Fd> fds;
  pid_t proc = -1;

  Canaries() {
    token = std::to_string(::getpid());
    tmp_file = "/tmp/pw-check-" + token;
    left_inside = "/tmp/pw-check-inside-" + token;
    comm = "pwchk-" + token.substr(0, 9);
  }
  ~Canaries() {
    if (proc > 0) {
      ::kill(proc, SIGKILL);
      ::waitpid(proc, nullptr, 0);
    }
    std::error_code ec;
    for (const auto& p : {tmp_file, tmp_sock, runtime_sock}) {
      if (!p.empty()) fs::remove(p, ec);
    }
  }

  static Fd listen_unix(const std::string& name) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (name.size() >= sizeof a.sun_path) return Fd();
    std::memcpy(a.sun_path, name.data(), name.size());
    socklen_t len = sizeof a;
    if (name[0] == '@') {
      a.sun_path[0] = '\0';
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    }
    Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s || ::bind(s.get(), reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(s.get(), 16) != 0) {
      return Fd();
    }
    return s;
  }

  void plant() {
    {
      std::ofstream f(tmp_file);
      f << "pw check canary\n";
    }
    tmp_sock = "/tmp/pw-check-" + token + ".sock";
    if (Fd s = listen_unix(tmp_sock); s) fds.push_back(std::move(s));
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg && fs::is_directory(xdg)) {
      runtime_sock = fs::path(xdg) / ("pw-check-" + token + ".sock");
      if (Fd s = listen_unix(runtime_sock); s) {
        fds.push_back(std::move(s));
      } else {
        runtime_sock.clear();
      }
    }
    abstract_name = "@pw-check-" + token;
    if (Fd s = listen_unix(abstract_name); s) fds.push_back(std::move(s));
    Fd t(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof in;
    if (t && ::bind(t.get(), reinterpret_cast<sockaddr*>(&in), sizeof in) == 0 && ::listen(t.get(), 16) == 0 &&
        ::getsockname(t.get(), reinterpret_cast<sockaddr*>(&in), &len) == 0) {
      tcp_port = ntohs(in.sin_port);
      fds.push_back(std::move(t));
    }
    proc = ::fork();
    if (proc == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::prctl(PR_SET_NAME, comm.c_str());
      for (;;) ::pause();
    }
  }
};

bool host_connectable(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) return false;
  std::memcpy(a.sun_path, path.data(), path.size());
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  return s && ::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

int read_int(const char* path, int dflt) {
  std::ifstream in(path);
  int v;
  return (in >> v) ? v : dflt;
}

std::string errname(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "E" + std::to_string(e);
}

class Builder {
 public:
  Builder(const ProfileSpec& spec, const MountPlan& plan, const FsView& fs, const Canaries& c,
          const fs::path& home)
      : spec_(spec), plan_(plan), fs_(fs), c_(c), home_(home), program_(seccomp::build(spec)) {}

  std::vector<Check> build();

 private:
  std::string state(const fs::path& p) const { return explain_path(plan_, p, fs_).state; }
  static bool visible(const std::string& st) { return st == "writable" || st == "read-only"; }
  static bool writable(const std::string& st) { return st == "writable" || st == "private tmpfs"; }

  void add(std::string group, std::string name, std::vector<std::string> op, std::string expect,
           std::string why, std::string skip = "") {
    checks_.push_back({std::move(group), std::move(name), std::move(op), std::move(expect),
                       std::move(why), std::move(skip), "", false});
  }

  // Reading a host path: expected only where a bind shows it and the user can read it there.
  void read_check(const std::string& group, const fs::path& p) {
    struct stat st;
    std::string name = "read " + p.string();
    if (::lstat(p.c_str(), &st) != 0) return add(group, name, {}, "", "", "absent on this host");
    std::string s = state(p);
    bool dir = S_ISDIR(st.st_mode);
    if (dir) {
      std::error_code ec;
      if (fs::is_empty(p, ec) || ec) return add(group, "list " + p.string(), {}, "", "", "empty or unreadable on this host");
    } else if (st.st_size == 0 && S_ISREG(st.st_mode)) {
      return add(group, name, {}, "", "", "empty on this host");
    }
    bool readable = ::access(p.c_str(), R_OK) == 0;
    std::string expect = visible(s) && readable ? "allowed" : "denied";
    std::string why = "profile: " + s + (readable ? "" : "; unreadable by you on the host");
    add(group, dir ? "list " + p.string() : name, {dir ? "ls" : "read", p.string()}, expect, why);
  }

  // Creating a new file in `dir`, or opening an existing `file` for writing.
  void write_check(const std::string& group, const fs::path& p, bool existing) {
    std::string s = state(p);
    if (s == "pw-managed") {
      return add(group, "write " + p.string(), {"write", p.string()},
                 p.parent_path() == "/dev/shm" ? "allowed" : "denied", "pw's own /dev and /proc");
    }
    std::error_code ec;
    if (existing && !fs::exists(p, ec)) return add(group, "write " + p.string(), {}, "", "", "absent on this host");
    if (!existing && !writable(s) && !fs::exists(p.parent_path(), ec)) {
      return add(group, "write " + p.string(), {}, "", "", "parent absent on this host");
    }
    bool host_ok = s == "private tmpfs" || ::access((existing ? p : p.parent_path()).c_str(), W_OK) == 0;
    add(group, "write " + p.string(), {"write", p.string()}, writable(s) && host_ok ? "allowed" : "denied",
        "profile: " + s + (host_ok ? "" : "; not writable by you on the host"));
  }

  // Syscalls: the compiled filter decides; where it lets the call through, `fallback` says
  // what the kernel is expected to do (or that the profile grants it: skipped).
  enum class Fallback { KernelDenies, Granted, Yama };
  void syscall_check(const std::string& name, const std::string& op, long nr, uint64_t a0, uint64_t a1,
                     uint32_t arch, Fallback fb) {
    uint32_t ret = program_.insns.empty() ? SECCOMP_RET_ALLOW
                                          : seccomp::bpf_eval_call(program_.insns, nr, a0, a1, arch);
    uint32_t action = ret & SECCOMP_RET_ACTION_FULL;
    if (action == SECCOMP_RET_ERRNO) {
      return add("syscalls", name, {op}, errname(static_cast<int>(ret & SECCOMP_RET_DATA)),
                 "seccomp (" + std::string(to_string(spec_.seccomp)) + ") returns this errno");
    }
    if (action == SECCOMP_RET_KILL_PROCESS || action == SECCOMP_RET_KILL_THREAD || action == SECCOMP_RET_TRAP) {
      return add("syscalls", name, {op}, "SIGSYS", "seccomp kills the caller");
    }
    switch (fb) {
      case Fallback::KernelDenies:
        return add("syscalls", name, {op}, "denied", "allowed by seccomp; the session holds no capability");
      case Fallback::Yama:
        if (read_int("/proc/sys/kernel/yama/ptrace_scope", 0) >= 1) {
          return add("syscalls", name, {op}, "denied", "allowed by seccomp; Yama ptrace_scope >= 1");
        }
        return add("syscalls", name, {op}, "", "", "granted: seccomp allows it and Yama is off");
      case Fallback::Granted:
        return add("syscalls", name, {op}, "", "", "granted by the profile's walls");
    }
  }

  const ProfileSpec& spec_;
  const MountPlan& plan_;
  const FsView& fs_;
  const Canaries& c_;
  fs::path home_;
  seccomp::Program program_;
  std::vector<Check> checks_;
};

std::vector<Check> Builder::build() {
  // Home and credentials.
  for (const char* rel : {".ssh", ".ssh/id_ed25519", ".ssh/id_rsa", ".ssh/id_ecdsa", ".aws/credentials",
                          ".aws/config", ".config/gcloud", ".azure", ".kube/config", ".docker/config.json",
                          ".gnupg", ".netrc", ".password-store", ".git-credentials", ".npmrc", ".pypirc",
                          ".config/gh/hosts.yml", ".vault-token", ".terraform.d/credentials.tfrc.json",
                          ".bash_history", ".zsh_history", ".python_history", ".psql_history",
                          ".mysql_history", ".bashrc", ".zshrc", ".profile"}) {
    read_check("home", home_ / rel);
  }
  for (const char* rel : {".bashrc", ".profile", ".zshrc"}) write_check("home", home_ / rel, true);

  // System files.
  for (const char* p : {"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/root", "/var/log", "/boot",
                        "/etc/ssh/ssh_host_ed25519_key"}) {
    read_check("system", p);
  }
  for (const char* dev : {"/dev/mem", "/dev/kmem", "/dev/port", "/dev/sda", "/dev/nvme0n1", "/dev/kvm"}) {
    bool granted = false;
    for (const auto& d : spec_.devices) granted |= d.path == dev;
    add("system", "open " + std::string(dev), {"read", dev}, "denied", "not in pw's minimal /dev",
        granted ? "granted by sandbox.devices" : "");
  }
  add("system", "read /proc/kcore", {"read", "/proc/kcore"}, "denied", "root only");

  // Writes outside the grant.
  const std::string t = c_.token;
  add("writes", "mkdir /pw-check-" + t, {"mkdir", "/pw-check-" + t}, "denied", "the root is read-only");
  write_check("writes", "/usr/pw-check-" + t, false);
  write_check("writes", "/etc/pw-check-" + t, false);
  write_check("writes", spec_.dir / (".pw-check-" + t), false);
  write_check("writes", home_ / (".pw-check-" + t), false);
  write_check("writes", "/tmp/pw-check-w-" + t, false);
  write_check("writes", "/var/tmp/pw-check-" + t, false);
  write_check("writes", "/dev/shm/pw-check-" + t, false);
  for (const auto& w : spec_.writable) write_check("writes", w.path / (".pw-check-" + t), false);

  // /tmp privacy.
  add("tmp", "host /tmp file invisible", {"read", c_.tmp_file.string()}, "denied", "/tmp is the workspace's own");
  add("tmp", "session /tmp file stays inside", {"leave", c_.left_inside.string()}, "allowed",
      "checked on the host afterwards");

  // Processes and identity.
  add("process", "host process invisible", {"comm-visible", c_.comm}, "absent", "private pid namespace");
  add("process", "runs as you", {"uid"}, "uid=" + std::to_string(::getuid()) + " gid=" + std::to_string(::getgid()),
      "nested user namespace maps back to your ids");
  for (const char* cap : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    add("capabilities", std::string(cap) + " empty", {"status", cap}, "0000000000000000",
        "capabilities dropped before exec");
  }
  add("capabilities", "no_new_privs set", {"status", "NoNewPrivs"}, "1", "set before exec");
  add("capabilities", "seccomp filter active", {"status", "Seccomp"}, spec_.seccomp == SeccompMode::Off ? "0" : "2",
      std::string("walls.seccomp = ") + to_string(spec_.seccomp));

  // Setuid binaries have no effect.
  for (const fs::path& p : {fs::path("/usr"), spec_.dir, fs::path("/tmp")}) {
    std::error_code ec;
    if (!fs::exists(p, ec)) continue;
    add("setuid", "nosuid on " + p.string(), {"nosuid", p.string()}, "nosuid", "every bind is nosuid");
  }

  // Mounts.
  add("mounts", "mount tmpfs", {"mount"}, "denied", "no capability over the session's mounts");
  add("mounts", "remount / read-write", {"remount-root"}, "denied", "no capability over the session's mounts");
  add("mounts", "unmount the project", {"umount", spec_.dir.string()}, "denied", "mounts are locked");
  for (const auto& op : plan_.ops) {
    if (op.kind == OpKind::HideDir || op.kind == OpKind::HideFile) {
      add("mounts", "unmount the mask on " + op.target.string(), {"umount", op.target.string()}, "denied",
          "masks cannot be lifted");
      break;
    }
  }

  // Syscalls through seccomp (and what the kernel does when seccomp lets them through).
  constexpr uint32_t x86 = AUDIT_ARCH_X86_64;
  syscall_check("ptrace(TRACEME)", "ptrace-traceme", SYS_ptrace, PTRACE_TRACEME, 0, x86, Fallback::Granted);
  syscall_check("ptrace a sibling", "ptrace-sibling", SYS_ptrace, PTRACE_ATTACH, 0, x86, Fallback::Yama);
  syscall_check("new mount namespace", "mountns", SYS_unshare, CLONE_NEWNS, 0, x86, Fallback::KernelDenies);
  syscall_check("new user namespace", "userns", SYS_unshare, CLONE_NEWUSER, 0, x86, Fallback::Granted);
  syscall_check("keyctl", "keyctl", SYS_keyctl, 0, 0, x86, Fallback::Granted);
  syscall_check("add_key", "add_key", SYS_add_key, 0, 0, x86, Fallback::Granted);
  syscall_check("bpf", "bpf", SYS_bpf, 0, 0, x86, Fallback::Granted);
  syscall_check("perf_event_open", "perf", SYS_perf_event_open, 0, 0, x86, Fallback::Granted);
  syscall_check("io_uring_setup", "io_uring", SYS_io_uring_setup, 1, 0, x86, Fallback::Granted);
  syscall_check("kexec_load", "kexec", SYS_kexec_load, 0, 0, x86, Fallback::KernelDenies);
  syscall_check("finit_module", "init_module", SYS_finit_module, 0, 0, x86, Fallback::KernelDenies);
  syscall_check("open_by_handle_at", "open_by_handle", SYS_open_by_handle_at, 0, 0, x86, Fallback::KernelDenies);
  syscall_check("chroot", "chroot", SYS_chroot, 0, 0, x86, Fallback::KernelDenies);
  syscall_check("TIOCSTI injection", "tiocsti", SYS_ioctl, 0, TIOCSTI, x86, Fallback::KernelDenies);
  // The socket family no network namespace confines: a VM guest's line to its host.
  syscall_check("vsock socket", "vsock", SYS_socket, AF_VSOCK, SOCK_STREAM, x86, Fallback::Granted);
#if defined(__x86_64__)
  if (spec_.seccomp != SeccompMode::Off) {
    syscall_check("x32 ABI syscall", "x32", 0x40000000 | 39, 0, 0, x86, Fallback::KernelDenies);
    // Killed by the filter, or by the kernel itself (SIGSEGV) when it has no ia32 emulation.
    syscall_check("i386 ABI syscall (int 0x80)", "i386", 20, 0, 0, AUDIT_ARCH_I386, Fallback::KernelDenies);
    if (checks_.back().expect == "SIGSYS") checks_.back().expect = "denied";
  }
#endif

  // Environment: secret-looking variables given to pw check's session, and the host's own.
  std::vector<std::string> host_env;
  for (char** e = environ; *e; ++e) host_env.emplace_back(*e);
  host_env.push_back("AWS_SECRET_ACCESS_KEY=pw-check-canary");
  host_env.push_back("GITHUB_TOKEN=pw-check-canary");
  auto planned = plan_env(spec_, {host_env, home_.string(), ""});
  auto in_plan = [&](const std::string& k) {
    for (const auto& kv : planned) {
      if (kv.compare(0, k.size() + 1, k + "=") == 0) return true;
    }
    return false;
  };
  std::vector<std::string> names = {"AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN"};
  for (char** e = environ; *e; ++e) {
    std::string k(*e, std::strcspn(*e, "="));
    for (const char* pat : {"TOKEN", "SECRET", "PASSWORD", "API_KEY", "ACCESS_KEY", "CREDENTIAL"}) {
      if (k.find(pat) != std::string::npos && k.rfind("PW_", 0) != 0 &&
          std::find(names.begin(), names.end(), k) == names.end()) {
        names.push_back(k);
      }
    }
  }
  for (const auto& k : names) {
    add("environment", k, {"env", k}, in_plan(k) ? "set" : "unset",
        spec_.clean_env ? "clean_env drops it unless [env] sets it" : "environment plan");
  }

  // The session's pid 1 is a fork of pw: it holds the caller's whole environment and the
  // workspace's descriptors, which its /proc entries must not show the command.
  add("environment", "the caller's environment via /proc/1/environ", {"read", "/proc/1/environ"}, "denied",
      "the session's init is non-dumpable");
  add("environment", "pid 1's descriptors via /proc/1/fd", {"read", "/proc/1/fd/0"}, "denied",
      "the session's init is non-dumpable");

  // Unix sockets of the host.
  bool net_shared = spec_.net == NetMode::Host;
  bool scoped = spec_.landlock != LandlockMode::Off && landlock::abi() >= 6;
  if (!c_.tmp_sock.empty()) {
    add("sockets", "host socket in /tmp", {"uconnect", c_.tmp_sock.string()}, "denied", "/tmp is the workspace's own");
  }
  if (!c_.runtime_sock.empty()) {
    std::string s = state(c_.runtime_sock);
    add("sockets", "host socket in $XDG_RUNTIME_DIR", {"uconnect", c_.runtime_sock.string()},
        visible(s) ? "allowed" : "denied", "profile: " + s);
  }
  add("sockets", "host abstract socket", {"uconnect", c_.abstract_name},
      net_shared && !scoped ? "allowed" : "denied",
      !net_shared ? "own network namespace" : scoped ? "Landlock scopes abstract sockets" : "shared network, no scoping");
  std::vector<std::string> known = {"/run/user/" + std::to_string(::getuid()) + "/bus", "/tmp/.X11-unix/X0",
                                    "/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock"};
  if (const char* a = std::getenv("SSH_AUTH_SOCK"); a && *a) known.emplace_back(a);
  for (const auto& p : known) {
    if (!host_connectable(p)) continue;
    std::string s = state(p);
    add("sockets", "host socket " + p, {"uconnect", p}, visible(s) ? "allowed" : "denied", "profile: " + s);
  }

  // Network per the profile's mode.
  std::string port = std::to_string(c_.tcp_port);
  const char* mode = spec_.net == NetMode::Host ? "host" : spec_.net == NetMode::None ? "none" : "allowlist";
  if (c_.tcp_port) {
    add("network", "host loopback TCP", {"tcp", "127.0.0.1", port}, net_shared ? "allowed" : "denied",
        std::string("network.mode = ") + mode);
  }
  if (!net_shared) {
    add("network", "TCP to 1.1.1.1:443", {"tcp", "1.1.1.1", "443"}, "denied", "no route out of the namespace");
    add("network", "UDP to 8.8.8.8:53", {"udp", "8.8.8.8", "53"}, "denied", "no route out of the namespace");
    add("network", "resolve a public name", {"resolve", "example.com"}, "denied", "no resolver reachable");
  }
  if (spec_.net == NetMode::Allowlist) {
    add("network", "allowlist proxy reachable", {"tcp", "127.0.0.1", "3128"}, "allowed", "the workspace's proxy");
    add("network", "HTTPS_PROXY set", {"env", "HTTPS_PROXY"}, "set", "points at the proxy");
  }

  // Persistence: what the agent could plant for the human posture to run later.
  std::error_code ec;
  if (fs::exists(spec_.dir / ".git", ec)) {
    write_check("persistence", spec_.dir / ".git/hooks/pw-check-hook", false);
    write_check("persistence", spec_.dir / ".git/config", true);
  }
  // Guards are binds over existing files; one that does not exist yet is not guarded (see
  // docs/design.md), so only existing ones are checked.
  for (const char* rc : {".envrc", ".bashrc", ".profile", ".vscode/tasks.json"}) {
    write_check("persistence", spec_.dir / rc, true);
  }

  // pw's own state.
  add("pw", "profile file", {"read", (spec_.profile_dir / "profile.toml").string()}, "denied", "pw config dir (always hidden)");
  add("pw", "config dir", {"ls", config_dir().string()}, "denied", "pw config dir (always hidden)");
  add("pw", "workspace lock file", {"read", (runtime_dir_path() / (spec_.name + ".lock")).string()}, "denied",
      "pw runtime dir (always hidden)");
  if (fs::exists(data_dir(), ec)) add("pw", "data dir", {"ls", data_dir().string()}, "denied", "pw data dir (always hidden)");
  if (fs::path logs = net::log_path(spec_.name).parent_path().parent_path(); fs::exists(logs, ec)) {
    add("pw", "network logs", {"ls", logs.string()}, "denied", "pw state dir (always hidden)");
  }
  if (spec_.vault) {
    add("pw", "vault cipherdir", {"ls", spec_.vault->cipherdir.string()}, "denied", "vault cipherdirs are always hidden");
  }
  // The control socket answers a session request with the workspace's namespaces and
  // staging dir, a way out of the view: no session reaches it. A human session with a vault
  // reaches the vault socket, which serves vault requests only.
  add("pw", "session request on the control socket",
      {"ctl-session", (runtime_dir_path() / (spec_.name + ".sock")).string()}, "denied", "pw runtime dir (always hidden)");
  if (spec_.vault && spec_.posture == Posture::Human) {
    add("pw", "session request on the vault socket",
        {"ctl-session", (runtime_dir_path() / (spec_.name + ".vault.sock")).string()}, "denied",
        "the vault socket serves vault requests only");
  }
  return std::move(checks_);
}

// Runs `argv` with stdout and stderr captured; stdin is /dev/null.
int run_captured(const std::vector<std::string>& argv, const std::vector<std::string>& env, std::string& out,
                 std::string& err) {
  int po[2];
  if (::pipe2(po, O_CLOEXEC) != 0) throw SysError("pipe");
  Fd errf(::memfd_create("pw-check-stderr", MFD_CLOEXEC));
  if (!errf) throw SysError("memfd_create");
  pid_t pid = ::fork();
  if (pid < 0) throw SysError("fork");
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(po[1], 1);
    ::dup2(errf.get(), 2);
    std::vector<char*> a, e;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    for (const auto& s : env) e.push_back(const_cast<char*>(s.c_str()));
    e.push_back(nullptr);
    ::execve(a[0], a.data(), e.data());
    _exit(127);
  }
  ::close(po[1]);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(po[0], buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(po[0]);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  ::lseek(errf.get(), 0, SEEK_SET);
  while ((n = ::read(errf.get(), buf, sizeof buf)) > 0) err.append(buf, static_cast<size_t>(n));
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

}  // namespace

int run(const std::string& name, bool verbose) {
  ProfileSpec spec = load_profile(name);
  HostFacts host = host_facts();
  PlanContext ctx = plan_context(spec, host, true);
  HostFs hostfs;
  MountPlan plan = plan_mounts(spec, ctx, hostfs);

  Canaries canaries;
  canaries.plant();
  std::vector<Check> checks = Builder(spec, plan, hostfs, canaries, host.home).build();

  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find pw's own binary: " + ec.message());
  std::vector<std::string> argv = {self.string(), "__check-session", name, "--", self.string(), "__wallcheck"};
  std::vector<size_t> index;
  for (size_t i = 0; i < checks.size(); i++) {
    if (!checks[i].skip.empty()) continue;
    argv.push_back(encode(checks[i].op));
    index.push_back(i);
  }
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    if (std::strncmp(*e, "AWS_SECRET_ACCESS_KEY=", 22) && std::strncmp(*e, "GITHUB_TOKEN=", 13)) env.emplace_back(*e);
  }
  env.push_back("AWS_SECRET_ACCESS_KEY=pw-check-canary");
  env.push_back("GITHUB_TOKEN=pw-check-canary");
  std::string out, err;
  int rc = run_captured(argv, env, out, err);
  if (rc != 0) {
    throw Error("the check session of " + name + " failed (exit " + std::to_string(rc) + "): " + err);
  }
  std::map<size_t, std::string> got;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t nl = out.find('\n', pos);
    std::string line = out.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? out.size() : nl + 1;
    size_t tab = line.find('\t');
    if (tab == std::string::npos) continue;
    size_t k = std::stoul(line.substr(0, tab));
    if (k < index.size()) got[index[k]] = line.substr(tab + 1);
  }
  // What the session left in its /tmp must not be on the host's.
  bool leaked = fs::exists(canaries.left_inside, ec);
  if (leaked) fs::remove(canaries.left_inside, ec);

  size_t passed = 0, failed = 0, skipped = 0;
  std::printf("pw check %s (%s posture): each wall tested from inside a fresh session\n\n", name.c_str(),
              to_string(spec.posture));
  std::printf("%-12s %-44s %-18s %-18s %s\n", "GROUP", "CHECK", "EXPECTED", "OBSERVED", "RESULT");
  for (size_t i = 0; i < checks.size(); i++) {
    Check& c = checks[i];
    std::string res;
    if (!c.skip.empty()) {
      ++skipped;
      if (!verbose) continue;
      res = "skip (" + c.skip + ")";
      c.observed = "-";
      c.expect = "-";
    } else {
      c.observed = got.count(i) ? got[i] : "NO-ANSWER";
      c.pass = judge(c.expect, c.observed);
      if (c.op[0] == "leave" && c.pass && leaked) {
        c.pass = false;
        c.observed = "on the host";
      }
      (c.pass ? passed : failed)++;
      res = c.pass ? "pass" : "FAIL (" + c.why + ")";
      if (c.pass && verbose) res += "  [" + c.why + "]";
    }
    std::string nm = c.name.size() > 44 ? "…" + c.name.substr(c.name.size() - 42) : c.name;
    std::printf("%-12s %-44s %-18s %-18s %s\n", c.group.c_str(), nm.c_str(), c.expect.c_str(), c.observed.c_str(),
                res.c_str());
  }
  std::printf("\n%zu checks: %zu passed, %zu failed, %zu skipped (not applicable here%s)\n", passed + failed + skipped,
              passed, failed, skipped, verbose ? "" : "; --verbose lists them");
  return failed == 0 ? 0 : 1;
}

}  // namespace pw::check
