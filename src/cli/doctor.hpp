// `pw doctor`: can pw work on this machine, for this user, with these profiles? One line per
// check (ok / warn / FAIL) and, for what fails, the concrete fix. The probes that touch the
// kernel live in doctor.cpp; the parsing and the advice are pure and exposed here for tests.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pw::doctor {

enum class Status { Ok, Warn, Fail };

struct Check {
  Status status = Status::Ok;
  std::string name;               // "user namespaces", "profile okb", ...
  std::string detail;             // one line
  std::vector<std::string> fix;   // what to do about a warn or a FAIL, one step a line
};

// "ok", "warn" or "FAIL".
const char* to_string(Status s);

// One check as printed: "STATUS  name: detail" and indented "fix:" lines. With `color`,
// the status word is coloured (terminals only).
std::string render(const Check& c, bool color);

// Runs every check and prints them to stdout; returns 0 if pw can work here, 1 if not.
int run();

// ---- pure parts (unit-tested) ----------------------------------------------------------

// "6.1.0-18-amd64" -> {6, 1}; nothing if it does not start with MAJOR.MINOR.
std::optional<std::pair<int, int>> kernel_version(std::string_view release);
Check kernel_check(std::string_view release);

// The steps of the user-namespace probe, in the order they run in a forked child.
enum class UsernsStep {
  Create,       // unshare(CLONE_NEWUSER)
  Map,          // setgroups deny, uid_map and gid_map mapping us to root
  Namespaces,   // unshare(mount, pid, uts, ipc, net) inside it
  Mount,        // create and mount a tmpfs there (needs CAP_SYS_ADMIN in the namespace)
  Nested,       // a nested user namespace mapping back to us, as sessions use
  Done,
};
const char* describe(UsernsStep s);

struct UsernsProbe {
  UsernsStep failed = UsernsStep::Done;  // Done: every step worked
  int err = 0;                           // errno of the failed step
};

// The sysctls that restrict unprivileged user namespaces; nothing where the file is absent.
struct UsernsSysctls {
  std::optional<long> unprivileged_userns_clone;        // kernel.unprivileged_userns_clone (Debian, older)
  std::optional<long> max_user_namespaces;              // user.max_user_namespaces
  std::optional<long> apparmor_restrict_unprivileged;   // kernel.apparmor_restrict_unprivileged_userns (Ubuntu)
};

// The verdict on the probe, naming the sysctl or policy that explains a failure and its fix.
// `exe` is pw's own path (for an AppArmor profile); `as_root` when doctor runs as root.
Check userns_verdict(const UsernsProbe& probe, const UsernsSysctls& sysctls,
                     const std::string& exe, bool as_root);

// landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION): the ABI, or -errno.
Check landlock_verdict(long abi_or_neg_errno);

// "Seccomp:" and "Seccomp_filters:" of /proc/self/status (nothing if absent).
struct SeccompStatus {
  std::optional<int> mode;
  std::optional<int> filters;
};
SeccompStatus parse_seccomp_status(std::string_view proc_status);
// `filter_err`: 0 if a test filter loaded in a child, else its errno.
Check seccomp_verdict(const SeccompStatus& st, int filter_err);

// The vault cipher: which fusevault format new vaults get here (`default_format`, with its
// cipher), and whether every existing vault's format can be opened on this machine.
struct VaultFormat {
  std::string profile;
  unsigned format;  // from the vault's config
};
Check vault_cipher_verdict(unsigned default_format, const std::vector<VaultFormat>& vaults);

// Where cgroup2 is mounted, from /proc/self/mountinfo text (the first one); nothing if not.
std::optional<std::string> cgroup2_mount(std::string_view mountinfo);
// The cgroup v2 path ("0::PATH") from /proc/self/cgroup text.
std::optional<std::string> cgroup2_path(std::string_view proc_cgroup);

}  // namespace pw::doctor
