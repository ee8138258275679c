// Copying a plaintext directory tree into an open vault and verifying it, directly on the
// cipherdir through the filesystem layer (no FUSE mount, no root): what a migration from
// another encrypted store (a mounted gocryptfs volume, say) needs.
//
// Kinds: regular files, directories and symlinks. Permission bits and modification times
// are kept (files, symlinks, and directories the import created); owners are not (vault
// files belong to whoever serves the vault); hard links become separate files. Anything
// else (FIFOs, sockets, device nodes) is skipped and listed.
//
// Existing entries are never overwritten: an existing directory is merged into; an existing
// file or symlink with the same kind, content (or target), permission bits and mtime is
// skipped as identical; anything else is a conflict. Conflicts are found by a first pass
// over the whole tree, before anything is written: with any conflict nothing is written.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fusevault/vault.hpp"

namespace fusevault {

struct TreeProgress {
  std::uint64_t files = 0, bytes = 0;              // done so far (files includes symlinks)
  std::uint64_t total_files = 0, total_bytes = 0;  // in the source tree
  std::string current;                             // path relative to the source
};
using ProgressFn = std::function<void(const TreeProgress&)>;

struct ImportReport {
  std::uint64_t files = 0, dirs = 0, symlinks = 0, bytes = 0;  // written
  std::uint64_t identical = 0;                                 // already there, skipped
  std::vector<std::string> skipped;    // "path: why" (not a file, dir or symlink)
  std::vector<std::string> conflicts;  // "path: why"; non-empty means nothing was written
};

struct VerifyReport {
  std::uint64_t files = 0, dirs = 0, symlinks = 0, bytes = 0;  // checked
  std::vector<std::string> mismatches;                          // "path: why"
};

// Copies the tree at `source` (a directory; symlinks in it are copied, never followed)
// into the vault's root. Throws VaultError when the source cannot be read or the vault
// cannot be written (what was written by then stays; a rerun skips it as identical).
ImportReport import_tree(Vault& vault, const std::string& source, const ProgressFn& progress = {});

// Reads every file of `source` back through the vault and compares a BLAKE2b hash of both,
// plus kind, size, permission bits, mtime and symlink targets. Directories are checked for
// existence and kind. Entries the vault has beyond the source are not reported.
VerifyReport verify_tree(Vault& vault, const std::string& source, const ProgressFn& progress = {});

}  // namespace fusevault
