#include "cli/doctor.hpp"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fusevault/vault.hpp>

#include "cli/session.hpp"
#include "profile/loader.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/file.hpp"
#include "workspace/runtime.hpp"

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444  // the same number on every architecture
#endif

namespace fs = std::filesystem;

namespace pw::doctor {

const char* to_string(Status s) {
  switch (s) {
    case Status::Ok:
      return "ok";
    case Status::Warn:
      return "warn";
    case Status::Fail:
      return "FAIL";
  }
  return "?";
}

std::string render(const Check& c, bool color) {
  const char* word = to_string(c.status);
  std::string status = word;
  status.append(6 - status.size(), ' ');
  if (color) {
    const char* on = c.status == Status::Ok ? "\033[32m" : c.status == Status::Warn ? "\033[33m" : "\033[1;31m";
    status = std::string(on) + word + "\033[0m" + std::string(6 - std::strlen(word), ' ');
  }
  std::string out = status + c.name + ": " + c.detail + "\n";
  for (std::size_t i = 0; i < c.fix.size(); ++i) {
    out += (i == 0 ? "      fix: " : "           ") + c.fix[i] + "\n";
  }
  return out;
}

// ---- kernel ------------------------------------------------------------------------------

std::optional<std::pair<int, int>> kernel_version(std::string_view release) {
  int major = 0, minor = 0;
  const char* b = release.data();
  const char* e = b + release.size();
  auto r1 = std::from_chars(b, e, major);
  if (r1.ec != std::errc() || r1.ptr == e || *r1.ptr != '.') return std::nullopt;
  auto r2 = std::from_chars(r1.ptr + 1, e, minor);
  if (r2.ec != std::errc()) return std::nullopt;
  return std::pair{major, minor};
}

Check kernel_check(std::string_view release) {
  Check c{Status::Ok, "kernel", "Linux " + std::string(release), {}};
  auto v = kernel_version(release);
  if (!v) {
    c.status = Status::Warn;
    c.detail += " (cannot tell the version; pw needs 5.12 or later)";
    return c;
  }
  // mount_setattr(2), which makes every bind read-only atomically, came in 5.12.
  if (*v < std::pair{5, 12}) {
    c.status = Status::Fail;
    c.detail += ": too old; pw needs 5.12 or later (mount_setattr)";
    c.fix = {"upgrade the kernel (Debian 12 ships 6.1; bookworm-backports has newer)"};
  } else if (*v < std::pair{5, 15}) {
    c.status = Status::Warn;
    c.detail += ": pw is tested on 5.15 and later";
    c.fix = {"a 5.15 or later kernel is recommended"};
  }
  return c;
}

// ---- user namespaces -----------------------------------------------------------------------

const char* describe(UsernsStep s) {
  switch (s) {
    case UsernsStep::Create:
      return "create a user namespace";
    case UsernsStep::Map:
      return "map your uid and gid to root in it";
    case UsernsStep::Namespaces:
      return "create mount, pid, uts, ipc and network namespaces in it";
    case UsernsStep::Mount:
      return "mount a tmpfs in it";
    case UsernsStep::Nested:
      return "create a nested user namespace in it";
    case UsernsStep::Done:
      return "done";
  }
  return "?";
}

Check userns_verdict(const UsernsProbe& probe, const UsernsSysctls& s, const std::string& exe,
                     bool as_root) {
  Check c{Status::Ok, "user namespaces", "", {}};
  const bool apparmor = s.apparmor_restrict_unprivileged.value_or(0) != 0;
  if (probe.failed == UsernsStep::Done) {
    c.detail = "usable: created one, mapped to root, mounted inside, nested";
    if (apparmor) c.detail += " (AppArmor restricts user namespaces here, but not pw's)";
    if (as_root) {
      c.status = Status::Warn;
      c.detail += "; but doctor runs as root, which proves nothing for your user";
      c.fix = {"run pw doctor as the user who will run pw"};
    }
    return c;
  }
  c.status = Status::Fail;
  c.detail = std::string("cannot ") + describe(probe.failed) + ": " +
             (probe.err ? std::strerror(probe.err) : "the probe died");
  const auto persist = [](const std::string& kv) {
    return "to keep it after a reboot: echo '" + kv + "' | sudo tee /etc/sysctl.d/60-pw-userns.conf";
  };
  if (s.unprivileged_userns_clone && *s.unprivileged_userns_clone == 0) {
    c.detail += " (kernel.unprivileged_userns_clone is 0)";
    c.fix = {"sudo sysctl -w kernel.unprivileged_userns_clone=1",
             persist("kernel.unprivileged_userns_clone=1")};
  } else if ((s.max_user_namespaces && *s.max_user_namespaces == 0) || probe.err == ENOSPC) {
    c.detail += s.max_user_namespaces && *s.max_user_namespaces == 0
                    ? " (user.max_user_namespaces is 0)"
                    : " (the user.max_user_namespaces limit is reached)";
    c.fix = {"sudo sysctl -w user.max_user_namespaces=15000", persist("user.max_user_namespaces=15000")};
  } else if (apparmor) {
    // Ubuntu 23.10+: unshare succeeds, but the namespace holds no capability unless an
    // AppArmor profile for the program grants `userns`.
    c.detail += " (AppArmor restricts unprivileged user namespaces: "
                "kernel.apparmor_restrict_unprivileged_userns = 1)";
    c.fix = {"give pw an AppArmor profile that allows them (pw alone):",
             "printf 'abi <abi/4.0>,\\ninclude <tunables/global>\\nprofile pw " + exe +
                 " flags=(unconfined) {\\n  userns,\\n}\\n' | sudo tee /etc/apparmor.d/pw",
             "sudo apparmor_parser -r /etc/apparmor.d/pw",
             "or lift the restriction for every program: sudo sysctl -w "
             "kernel.apparmor_restrict_unprivileged_userns=0"};
  } else if (probe.failed == UsernsStep::Create && probe.err == EINVAL) {
    c.fix = {"this kernel has no user namespaces (CONFIG_USER_NS): pw needs a kernel with them"};
  } else {
    c.fix = {"no sysctl explains it; in a container, its seccomp or AppArmor policy forbids "
             "user namespaces (Docker: --security-opt seccomp=unconfined --security-opt "
             "apparmor=unconfined), or run pw in a VM"};
  }
  return c;
}

namespace {

bool write_proc(const char* path, const std::string& text) {
  Fd fd(::open(path, O_WRONLY | O_CLOEXEC));
  return fd && ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

// The whole sequence pw's workspace and sessions go through, in a child we throw away.
UsernsProbe probe_userns() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return {UsernsStep::Create, errno};
  Fd rd(p[0]), wr(p[1]);
  const uid_t uid = ::geteuid();
  const gid_t gid = ::getegid();
  const std::string self_uid = "0 " + std::to_string(uid) + " 1\n";
  const std::string self_gid = "0 " + std::to_string(gid) + " 1\n";
  const std::string back_uid = std::to_string(uid) + " 0 1\n";
  const std::string back_gid = std::to_string(gid) + " 0 1\n";
  const pid_t pid = ::fork();
  if (pid < 0) return {UsernsStep::Create, errno};
  if (pid == 0) {
    auto report = [&](UsernsStep s, int e) {
      const int msg[2] = {static_cast<int>(s), e};
      (void)!::write(wr.get(), msg, sizeof msg);
      ::_exit(0);
    };
    if (::unshare(CLONE_NEWUSER) != 0) report(UsernsStep::Create, errno);
    if (!write_proc("/proc/self/setgroups", "deny") || !write_proc("/proc/self/uid_map", self_uid) ||
        !write_proc("/proc/self/gid_map", self_gid)) {
      report(UsernsStep::Map, errno);
    }
    if (::unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET) != 0) {
      report(UsernsStep::Namespaces, errno);
    }
    Fd ctx(::fsopen("tmpfs", FSOPEN_CLOEXEC));
    if (!ctx) report(UsernsStep::Mount, errno);
    if (::fsconfig(ctx.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) report(UsernsStep::Mount, errno);
    Fd mnt(::fsmount(ctx.get(), FSMOUNT_CLOEXEC, 0));
    if (!mnt) report(UsernsStep::Mount, errno);
    if (::unshare(CLONE_NEWUSER) != 0) report(UsernsStep::Nested, errno);
    if (!write_proc("/proc/self/setgroups", "deny") || !write_proc("/proc/self/uid_map", back_uid) ||
        !write_proc("/proc/self/gid_map", back_gid)) {
      report(UsernsStep::Nested, errno);
    }
    report(UsernsStep::Done, 0);
  }
  wr.reset();
  int msg[2] = {static_cast<int>(UsernsStep::Create), 0};
  ssize_t n;
  do {
    n = ::read(rd.get(), msg, sizeof msg);
  } while (n < 0 && errno == EINTR);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (n != sizeof msg || msg[0] < 0 || msg[0] > static_cast<int>(UsernsStep::Done)) {
    return {UsernsStep::Create, 0};
  }
  return {static_cast<UsernsStep>(msg[0]), msg[1]};
}

std::optional<std::string> read_text(const char* path) {
  int err = 0;
  return read_text_file(path, err);
}

std::optional<long> read_sysctl(const char* path) {
  auto t = read_text(path);
  if (!t) return std::nullopt;
  long v = 0;
  auto r = std::from_chars(t->data(), t->data() + t->size(), v);
  if (r.ec != std::errc()) return std::nullopt;
  return v;
}

Check userns_check() {
  UsernsSysctls s;
  s.unprivileged_userns_clone = read_sysctl("/proc/sys/kernel/unprivileged_userns_clone");
  s.max_user_namespaces = read_sysctl("/proc/sys/user/max_user_namespaces");
  s.apparmor_restrict_unprivileged = read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return userns_verdict(probe_userns(), s, ec ? "/usr/bin/pw" : exe.string(), ::geteuid() == 0);
}

// ---- /dev/fuse ---------------------------------------------------------------------------

Check fuse_check(bool needed) {
  Check c{Status::Ok, "/dev/fuse", "", {}};
  const Status bad = needed ? Status::Fail : Status::Warn;
  const std::string why = needed ? "a profile has a [vault], which needs it"
                                 : "no profile has a [vault] yet; vaults need it";
  struct stat st;
  if (::stat("/dev/fuse", &st) != 0) {
    c.status = bad;
    c.detail = std::string("missing (") + std::strerror(errno) + "); " + why;
    c.fix = {"sudo modprobe fuse (in a container: pass the device, e.g. docker run --device /dev/fuse)"};
    return c;
  }
  if (!S_ISCHR(st.st_mode)) {
    c.status = bad;
    c.detail = "is not a character device; " + why;
    c.fix = {"sudo rm /dev/fuse && sudo mknod -m 0666 /dev/fuse c 10 229"};
    return c;
  }
  Fd fd(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!fd) {
    c.status = bad;
    c.detail = std::string("cannot be opened read-write: ") + std::strerror(errno) + "; " + why;
    c.fix = {"sudo chmod 0666 /dev/fuse (Debian's default mode; the fuse3 package keeps it so)"};
    return c;
  }
  c.detail = "present and opens read-write (vaults can be mounted)";
  return c;
}

// ---- Landlock -----------------------------------------------------------------------------

}  // namespace

Check landlock_verdict(long abi) {
  Check c{Status::Ok, "landlock", "", {}};
  if (abi <= 0) {
    c.status = Status::Warn;
    if (-abi == EOPNOTSUPP) {
      c.detail = "built into the kernel but disabled at boot";
      c.fix = {"add landlock to the kernel's lsm= parameter (the current list is in "
               "/sys/kernel/security/lsm, e.g. lsm=landlock,<that list>) and reboot"};
    } else {
      c.detail = std::string("not available (") + std::strerror(static_cast<int>(-abi)) +
                 "): pw runs without its second wall";
      c.fix = {"a kernel with CONFIG_SECURITY_LANDLOCK (Linux 5.13 or later)"};
    }
    return c;
  }
  c.detail = "ABI " + std::to_string(abi) + ": filesystem rules";
  if (abi >= 2) c.detail += ", cross-directory rename/link (refer)";
  if (abi >= 3) c.detail += ", truncate";
  c.detail += abi >= 4 ? ", TCP bind/connect rules" : "; no network rules (ABI 4, Linux 6.7)";
  if (abi >= 5) c.detail += ", device ioctl";
  c.detail += abi >= 6 ? ", scoping of abstract unix sockets and signals"
                       : "; no scoping of abstract unix sockets and signals (ABI 6, Linux 6.12)";
  return c;
}

// ---- seccomp ------------------------------------------------------------------------------

SeccompStatus parse_seccomp_status(std::string_view text) {
  SeccompStatus st;
  auto field = [&](std::string_view key) -> std::optional<int> {
    std::size_t pos = 0;
    while (pos < text.size()) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string_view::npos) end = text.size();
      std::string_view line = text.substr(pos, end - pos);
      pos = end + 1;
      if (!line.starts_with(key) || line.size() <= key.size() || line[key.size()] != ':') continue;
      line.remove_prefix(key.size() + 1);
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
      int v = 0;
      auto r = std::from_chars(line.data(), line.data() + line.size(), v);
      if (r.ec == std::errc()) return v;
      return std::nullopt;
    }
    return std::nullopt;
  };
  st.mode = field("Seccomp");
  st.filters = field("Seccomp_filters");
  return st;
}

Check seccomp_verdict(const SeccompStatus& st, int filter_err) {
  Check c{Status::Ok, "seccomp", "", {}};
  if (!st.mode) {
    c.status = Status::Fail;
    c.detail = "this kernel has no seccomp (no Seccomp: line in /proc/self/status)";
    c.fix = {"a kernel with CONFIG_SECCOMP_FILTER; pw loads a filter into every session"};
    return c;
  }
  if (filter_err != 0) {
    c.status = Status::Fail;
    c.detail = std::string("cannot load a filter: ") + std::strerror(filter_err);
    c.fix = {filter_err == EINVAL ? "a kernel with CONFIG_SECCOMP_FILTER; pw loads a filter into every session"
                                  : "something (a container runtime's policy?) forbids seccomp filters"};
    return c;
  }
  c.detail = "filter mode available";
  if (*st.mode == 2) {
    c.detail += "; pw itself already runs under " + std::to_string(st.filters.value_or(1)) +
                " filter(s) (a container?), which sessions inherit";
  }
  return c;
}

namespace {

// Loads an allow-everything filter in a child: the same prctl/seccomp calls pw makes.
int probe_seccomp_filter() {
  const pid_t pid = ::fork();
  if (pid < 0) return errno;
  if (pid == 0) {
    struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {1, &allow};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(errno & 0xff);
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) ::_exit(errno & 0xff);
    ::_exit(0);
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st)) return ECHILD;
  return WEXITSTATUS(st);
}

Check seccomp_check() {
  return seccomp_verdict(parse_seccomp_status(read_text("/proc/self/status").value_or("")),
                         probe_seccomp_filter());
}

// ---- cgroup v2 ----------------------------------------------------------------------------

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto octal = [&](std::size_t k, char hi) { return s[k] >= '0' && s[k] <= hi; };
    if (s[i] == '\\' && i + 3 < s.size() && octal(i + 1, '3') && octal(i + 2, '7') && octal(i + 3, '7')) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> cgroup2_mount(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
    std::vector<std::string_view> f;
    for (std::size_t i = 0; i < line.size();) {
      std::size_t j = line.find(' ', i);
      if (j == std::string_view::npos) j = line.size();
      if (j > i) f.push_back(line.substr(i, j - i));
      i = j + 1;
    }
    std::size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (f.size() < 5 || dash + 1 >= f.size()) continue;
    if (f[dash + 1] == "cgroup2") return unescape_mountinfo(f[4]);
  }
  return std::nullopt;
}

std::optional<std::string> cgroup2_path(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.starts_with("0::")) return std::string(line.substr(3));
  }
  return std::nullopt;
}

// ---- vault cipher ------------------------------------------------------------------------

Check vault_cipher_verdict(unsigned default_format, const std::vector<VaultFormat>& vaults) {
  Check c{Status::Ok, "vault cipher",
          "new vaults: fusevault format " + std::to_string(default_format) + ", " +
              fusevault::content_cipher(default_format),
          {}};
  for (const auto& v : vaults) {
    if (v.format <= default_format) continue;
    // Only format 2 can be out of reach: it needs libsodium's AES-GCM.
    c.status = Status::Fail;
    c.detail += "; the vault of " + v.profile + " is format " + std::to_string(v.format) + " (" +
                fusevault::content_cipher(v.format) + "), which cannot be opened on this CPU";
    if (c.fix.empty()) {
      c.fix = {"open it on an x86 machine with AES-NI and PCLMULQDQ (libsodium runs AES-GCM only there)"};
    }
  }
  return c;
}

namespace {

Check cgroup_check() {
  Check c{Status::Ok, "cgroup v2", "", {}};
  auto mnt = cgroup2_mount(read_text("/proc/self/mountinfo").value_or(""));
  if (!mnt) {
    c.status = Status::Warn;
    c.detail = "not mounted (pw does not need it yet; per-workspace resource limits would)";
    c.fix = {"boot with systemd.unified_cgroup_hierarchy=1"};
    return c;
  }
  c.detail = "mounted at " + *mnt;
  if (*mnt != "/sys/fs/cgroup") c.detail += " (hybrid: v1 hierarchies at /sys/fs/cgroup)";
  auto path = cgroup2_path(read_text("/proc/self/cgroup").value_or(""));
  if (!path) {
    c.status = Status::Warn;
    c.detail += "; this process has no cgroup v2 entry in /proc/self/cgroup";
    return c;
  }
  // Delegated: the nearest dir (ours or an ancestor) that we own and may move processes into.
  const fs::path root(*mnt);
  const fs::path rel = fs::path(*path).relative_path();
  fs::path dir = rel.empty() ? root : (root / rel).lexically_normal();
  const std::string mine = dir.string();
  for (;;) {
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0 && st.st_uid == ::geteuid() &&
        ::access((dir / "cgroup.procs").c_str(), W_OK) == 0 &&
        ::access((dir / "cgroup.subtree_control").c_str(), W_OK) == 0) {
      c.detail += "; delegated to you at " + dir.string();
      return c;
    }
    if (dir == root || dir == dir.parent_path() || dir.string().size() <= root.string().size()) break;
    dir = dir.parent_path();
  }
  c.status = Status::Warn;
  c.detail += "; your cgroup " + mine + " is not delegated to you (pw does not need it yet; "
              "per-workspace resource limits would)";
  c.fix = {"with systemd, start pw inside your user manager: systemd-run --user --scope -p Delegate=yes pw ..."};
  return c;
}

// ---- runtime dir --------------------------------------------------------------------------

Check runtime_check() {
  Check c{Status::Ok, "runtime dir", "", {}};
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  const fs::path chosen = runtime_dir_path();
  const bool uses_xdg = xdg && chosen == fs::path(xdg) / "pw";
  try {
    const fs::path dir = runtime_dir();
    c.detail = dir.string() + " (yours, mode 0700)";
    if (!uses_xdg) {
      if (xdg && *xdg) {
        c.status = Status::Warn;
        c.detail += "; XDG_RUNTIME_DIR=" + std::string(xdg) +
                    " is not a 0700 dir of yours, so pw falls back to /tmp";
        c.fix = {"log in through a session manager that provides /run/user/UID (systemd-logind), "
                 "or point XDG_RUNTIME_DIR at a 0700 dir of yours"};
      } else {
        c.detail += "; XDG_RUNTIME_DIR is not set, so pw uses /tmp";
      }
    }
  } catch (const Error& e) {
    c.status = Status::Fail;
    c.detail = e.what();
    struct stat st;
    if (::lstat(chosen.c_str(), &st) != 0) {
      c.fix = {"make sure " + chosen.parent_path().string() + " exists and is writable by you"};
    } else if (!S_ISDIR(st.st_mode)) {
      c.fix = {"remove " + chosen.string() + " (pw makes the dir itself) if you did not put it there"};
    } else if (st.st_uid != ::geteuid()) {
      c.fix = {chosen.string() + " is someone else's: have root remove it, or set XDG_RUNTIME_DIR to a 0700 dir of yours"};
    } else {
      c.fix = {"chmod 0700 " + chosen.string()};
    }
  }
  return c;
}

// ---- profiles -----------------------------------------------------------------------------

std::vector<Check> profile_checks(bool& any_vault, std::vector<VaultFormat>& formats) {
  std::vector<Check> out;
  std::vector<std::string> names;
  try {
    names = list_profiles();
  } catch (const Error& e) {
    out.push_back({Status::Fail, "profiles", e.what(), {"set HOME or XDG_CONFIG_HOME"}});
    return out;
  }
  if (names.empty()) {
    out.push_back({Status::Warn, "profiles", "none in " + config_dir().string(),
                   {"pw new NAME --dir ~/projects/NAME"}});
    return out;
  }
  for (const auto& name : names) {
    Check c{Status::Ok, "profile " + name, "", {}};
    try {
      ProfileSpec spec = load_profile(name);
      check_runnable(spec);
      // The loader checked the shell; say which one, so a surprise shows.
      c.detail = spec.file.string() + ": " + to_string(spec.posture) + " posture, shell " + spec.shell;
      if (spec.vault && spec.posture == Posture::Human) {
        any_vault = true;
        std::error_code ec;
        if (fs::exists(spec.vault->cipherdir / "fusevault.conf", ec)) {
          try {
            formats.push_back({name, fusevault::Vault::info(spec.vault->cipherdir.string()).format_version});
          } catch (const std::exception&) {
            // An unreadable or damaged config is `pw vault status`'s to report.
          }
        }
      }
    } catch (const ProfileError& e) {
      c.status = Status::Fail;
      c.detail = e.what();
      const std::string msg = e.what();
      if (msg.find("project.shell") != std::string::npos) {
        c.fix = {"install that shell, or set [project] shell to an executable (e.g. shell = \"/bin/bash\")"};
      } else {
        c.fix = {"edit the file at the place named above; `pw show " + name + "` checks it again"};
      }
    } catch (const Error& e) {
      c.status = Status::Fail;
      c.detail = e.what();
      c.fix = {"`pw show " + name + "` checks it again after a change"};
    }
    out.push_back(std::move(c));
  }
  return out;
}

bool use_color() {
  if (!::isatty(STDOUT_FILENO)) return false;
  const char* no = std::getenv("NO_COLOR");
  if (no && *no) return false;
  const char* term = std::getenv("TERM");
  return !(term && std::string_view(term) == "dumb");
}

}  // namespace

int run() {
  std::vector<Check> checks;
  struct utsname u {};
  ::uname(&u);
  checks.push_back(kernel_check(u.release));
  checks.push_back(userns_check());
  bool any_vault = false;
  std::vector<VaultFormat> formats;
  std::vector<Check> profiles = profile_checks(any_vault, formats);
  checks.push_back(fuse_check(any_vault));
  checks.push_back(vault_cipher_verdict(fusevault::default_format(), formats));
  const long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  checks.push_back(landlock_verdict(abi >= 0 ? abi : -errno));
  checks.push_back(seccomp_check());
  checks.push_back(cgroup_check());
  checks.push_back(runtime_check());
  for (auto& p : profiles) checks.push_back(std::move(p));

  const bool color = use_color();
  int fails = 0, warns = 0;
  for (const auto& c : checks) {
    std::fputs(render(c, color).c_str(), stdout);
    fails += c.status == Status::Fail;
    warns += c.status == Status::Warn;
  }
  if (fails) {
    std::printf("pw cannot work here: %d check(s) failed%s\n", fails,
                warns ? (", " + std::to_string(warns) + " warning(s)").c_str() : "");
  } else {
    std::printf("pw can work here%s\n", warns ? (" (" + std::to_string(warns) + " warning(s))").c_str() : "");
  }
  std::fflush(stdout);
  return fails ? 1 : 0;
}

}  // namespace pw::doctor
