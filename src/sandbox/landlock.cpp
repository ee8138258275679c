#include "sandbox/landlock.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace pw::landlock {
namespace {

// The uapi constants, spelled out: Debian 12's kernel headers stop at ABI 2, and the values
// are fixed by the kernel's ABI.
constexpr uint32_t kCreateVersion = 1u << 0;
constexpr int kRulePathBeneath = 1;

constexpr uint64_t kExecute = 1ull << 0;
constexpr uint64_t kWriteFile = 1ull << 1;
constexpr uint64_t kReadFile = 1ull << 2;
constexpr uint64_t kReadDir = 1ull << 3;
constexpr uint64_t kRemoveDir = 1ull << 4;
constexpr uint64_t kRemoveFile = 1ull << 5;
constexpr uint64_t kMakeChar = 1ull << 6;
constexpr uint64_t kMakeDir = 1ull << 7;
constexpr uint64_t kMakeReg = 1ull << 8;
constexpr uint64_t kMakeSock = 1ull << 9;
constexpr uint64_t kMakeFifo = 1ull << 10;
constexpr uint64_t kMakeBlock = 1ull << 11;
constexpr uint64_t kMakeSym = 1ull << 12;
constexpr uint64_t kRefer = 1ull << 13;     // ABI 2
constexpr uint64_t kTruncate = 1ull << 14;  // ABI 3
constexpr uint64_t kIoctlDev = 1ull << 15;  // ABI 5

constexpr uint64_t kScopeAbstractUnix = 1ull << 0;  // ABI 6
constexpr uint64_t kScopeSignal = 1ull << 1;        // ABI 6

struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;  // ABI 4
  uint64_t scoped;              // ABI 6
};

struct __attribute__((packed)) PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
};

uint64_t handled_fs(int abi) {
  uint64_t all = kExecute | kWriteFile | kReadFile | kReadDir | kRemoveDir | kRemoveFile |
                 kMakeChar | kMakeDir | kMakeReg | kMakeSock | kMakeFifo | kMakeBlock | kMakeSym;
  if (abi >= 2) all |= kRefer;
  if (abi >= 3) all |= kTruncate;
  if (abi >= 5) all |= kIoctlDev;
  return all;
}

uint64_t rights(LandlockGrant g) {
  switch (g) {
    case LandlockGrant::List: return kReadDir;
    case LandlockGrant::ReadExec: return kReadFile | kReadDir | kExecute;
    case LandlockGrant::Write: return ~0ull;
    case LandlockGrant::Device: return kReadFile | kWriteFile | kReadDir | kTruncate | kIoctlDev;
    case LandlockGrant::Proc: return kReadFile | kWriteFile | kReadDir | kTruncate;
  }
  return 0;
}

}  // namespace

int abi() {
  long v = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, kCreateVersion);
  return v < 0 ? 0 : static_cast<int>(v);
}

std::vector<std::string> missing_features(int v) {
  if (v < 1) return {"Landlock itself (Linux 5.13, enabled with lsm=...,landlock)"};
  std::vector<std::string> m;
  if (v < 2) m.push_back("renames and links across directories (ABI 2, Linux 5.19)");
  if (v < 3) m.push_back("the truncate right (ABI 3, Linux 6.2)");
  if (v < 5) m.push_back("the device ioctl right (ABI 5, Linux 6.10)");
  if (v < 6) m.push_back("scoping of abstract unix sockets and signals (ABI 6, Linux 6.12)");
  return m;
}

std::string check(LandlockMode mode, int v) {
  if (mode == LandlockMode::Off) return "";
  auto missing = missing_features(v);
  if (missing.empty()) return "";
  std::string list;
  for (const auto& m : missing) list += (list.empty() ? "" : "; ") + m;
  std::string head = v < 1 ? "this kernel has no Landlock" : "this kernel's Landlock (ABI " +
                                                                   std::to_string(v) + ") lacks";
  if (mode == LandlockMode::Required) {
    throw Error("walls.landlock = \"required\", but " + head + ": " + list +
                " (set walls.landlock = \"best-effort\" to start with what the kernel has)");
  }
  return "Landlock wall is partial: " + head + ": " + list;
}

void apply(const std::vector<LandlockRule>& rules, int v) {
  if (v < 1) return;
  RulesetAttr attr{};
  attr.handled_access_fs = handled_fs(v);
  size_t size = sizeof(uint64_t);
  if (v >= 6) {
    attr.scoped = kScopeAbstractUnix | kScopeSignal;
    size = sizeof attr;
  }
  Fd ruleset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, size, 0)));
  if (!ruleset) throw SysError("create the Landlock ruleset");
  for (const auto& r : rules) {
    Fd dir(::open(r.path.c_str(), O_PATH | O_CLOEXEC));
    if (!dir) {
      // Absent or out of the user's reach in the session: nothing there to grant.
      if (errno == ENOENT || errno == EACCES || errno == ENOTDIR) continue;
      throw SysError("open " + r.path.string() + " for a Landlock rule");
    }
    struct stat st;
    if (::fstat(dir.get(), &st) != 0) throw SysError("stat " + r.path.string() + " for a Landlock rule");
    PathBeneathAttr pb{};
    pb.allowed_access = rights(r.grant) & attr.handled_access_fs;
    // A rule on a file (a bound socket, pw itself) takes only the rights that apply to files.
    if (!S_ISDIR(st.st_mode)) pb.allowed_access &= kExecute | kWriteFile | kReadFile | kTruncate | kIoctlDev;
    pb.parent_fd = dir.get();
    if (pb.allowed_access == 0) continue;
    if (::syscall(SYS_landlock_add_rule, ruleset.get(), kRulePathBeneath, &pb, 0) != 0) {
      throw SysError("add the Landlock rule for " + r.path.string());
    }
  }
  if (::syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0) {
    throw SysError("enforce the Landlock ruleset");
  }
}

}  // namespace pw::landlock
