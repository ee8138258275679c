// The second wall's rules (DESIGN §5): Landlock rights that mirror the mount plan, so a
// path the mounts would show by mistake still cannot be written (or read) unless a rule
// of the profile grants it. Pure: computed from the MountPlan's operations, before any
// namespace exists; src/sandbox/landlock.cpp turns them into a ruleset at the kernel's ABI.
//
// Landlock only adds rights down a hierarchy: it cannot take back below a path what it
// grants on the path. A read-only or hidden path under a writable one (.git/hooks in the
// agent posture, ~/.ssh under a whitelisted home) is therefore the mounts' job alone; the
// Landlock wall guarantees that nothing outside the profile's grants is writable, and that
// nothing outside its binds is readable or executable.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "policy/mount_plan.hpp"

namespace pw {

enum class LandlockGrant {
  List,      // list directories only (the session's root, so `ls /` works)
  ReadExec,  // read files, list directories, execute (read-only binds)
  Write,     // everything, including create, remove, rename, truncate, execute
  Device,    // read, write, truncate and ioctl on device files (/dev)
  Proc,      // read, list and write (procfs of the session)
};

struct LandlockRule {
  std::filesystem::path path;  // inside the session
  LandlockGrant grant;
  std::string why;
};

const char* to_string(LandlockGrant);

// One rule per bind, tmpfs or vault the plan makes visible; hides grant nothing.
std::vector<LandlockRule> plan_landlock(const MountPlan& plan);

// "landlock  write  /home/u/proj   (project dir)", for `pw explain`.
std::string describe(const LandlockRule& r);

}  // namespace pw
