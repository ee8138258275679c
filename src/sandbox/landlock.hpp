// Landlock, applied by the session's init after it became the user and set no_new_privs,
// so the payload and everything it starts inherit the domain. The rules come from
// policy/landlock_plan.hpp; this file knows the kernel's ABI versions.
#pragma once

#include <string>
#include <vector>

#include "policy/landlock_plan.hpp"
#include "profile/spec.hpp"

namespace pw::landlock {

// The highest ABI pw uses: 6 (Linux 6.12) adds scoping of abstract unix sockets and signals.
constexpr int kWantedAbi = 6;

// The kernel's Landlock ABI version; 0 when Landlock is absent or disabled.
int abi();

// What pw's wall lacks at `abi`, one phrase per missing feature ("" list: nothing).
std::vector<std::string> missing_features(int abi);

// Client side, before anything starts: Required with missing features throws pw::Error
// naming them; BestEffort returns one warning line (empty if nothing is missing); Off "".
std::string check(LandlockMode mode, int abi);

// Child side: builds the ruleset at `abi` from `rules` (paths opened as they appear in the
// session; missing ones skipped), scopes abstract unix sockets and signals when the ABI
// allows, and restricts the calling thread. Needs no_new_privs. Throws SysError.
void apply(const std::vector<LandlockRule>& rules, int abi);

}  // namespace pw::landlock
