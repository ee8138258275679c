// `pw edit NAME`: a profile changed in the user's editor, and replaced only by a version the
// loader accepts.
#pragma once

#include <string>

namespace pw {

// The editor to run: $VISUAL, else $EDITOR (either may carry arguments: it runs through
// /bin/sh, as git runs it), else `editor` (Debian's alternative) when on PATH, else `vi`.
std::string editor_command();

// Opens editor_command() on a copy of NAME's profile beside it. When the editor exits 0, the
// copy is validated with the loader (the same checks `pw NAME` makes, messages naming the
// profile's own file:line:col); if it loads, it replaces the profile atomically (rename in
// the same dir, the profile's mode kept; a symlinked profile.toml stays a symlink and its
// target is replaced). If not, the profile is left as it was and the error printed; on a
// terminal pw offers to edit the copy again, otherwise (or when declined) the copy is kept
// as profile.toml.rejected beside the profile and pw fails. Returns the exit status.
int edit_profile(const std::string& name);

}  // namespace pw
