#include "policy/landlock_plan.hpp"

#include <cstdio>

namespace pw {

const char* to_string(LandlockGrant g) {
  switch (g) {
    case LandlockGrant::List: return "list";
    case LandlockGrant::ReadExec: return "read,exec";
    case LandlockGrant::Write: return "write";
    case LandlockGrant::Device: return "device";
    case LandlockGrant::Proc: return "proc";
  }
  return "?";
}

std::vector<LandlockRule> plan_landlock(const MountPlan& plan) {
  std::vector<LandlockRule> out;
  out.push_back({"/", LandlockGrant::List, "the session's root (names only)"});
  for (const MountOp& op : plan.ops) {
    switch (op.kind) {
      case OpKind::BindRo:
        out.push_back({op.target, LandlockGrant::ReadExec, op.why});
        break;
      case OpKind::BindRw:
      case OpKind::Vault:
        out.push_back({op.target, LandlockGrant::Write, op.why});
        break;
      case OpKind::Proc:
        out.push_back({op.target, LandlockGrant::Proc, op.why});
        break;
      case OpKind::Dev:
        out.push_back({op.target, LandlockGrant::Device, op.why});
        out.push_back({op.target / "shm", LandlockGrant::Write, "pw: /dev/shm"});
        break;
      case OpKind::HideDir:
      case OpKind::HideFile:
      case OpKind::Symlink:
      case OpKind::RemountRo:
        break;
    }
  }
  return out;
}

std::string describe(const LandlockRule& r) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "landlock  %-9s ", to_string(r.grant));
  return buf + r.path.string() + "   (" + r.why + ")";
}

}  // namespace pw
