// The syscall wall (DESIGN §5). The filter is compiled with libseccomp in the parent, where
// allocation and error reporting are cheap, and handed to the child as raw classic BPF so
// the child's last step before exec is a single prctl with nothing that can allocate.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "profile/spec.hpp"

namespace pw::seccomp {

// An exported filter. Empty means "no filter" (seccomp = "off").
struct Program {
  std::vector<sock_filter> insns;
};

// Compiles the policy for the profile's posture and [walls] settings, for a session that
// runs a command or, `interactive`, the profile's shell (whose job control needs the
// terminal's foreground). Throws pw::Error if libseccomp rejects the policy; never returns
// a silently weaker filter.
Program build(const ProfileSpec& spec, bool interactive = false);

// Child side, between clone and exec, after PR_SET_NO_NEW_PRIVS: installs the program.
// Allocation-free; on failure writes a short line to fd 2 and _exit(125). Empty: no-op.
void load(const Program& program) noexcept;

// One human-readable line per rule of build(spec) (a command session), for `pw explain`.
std::vector<std::string> describe(const ProfileSpec& spec);

}  // namespace pw::seccomp
