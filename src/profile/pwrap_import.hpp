// `pw import-pwrap`: pwrap projects (DIR/NAME/project.toml, plus an init script) into pw
// profiles. The conversion is pure (text in, profile text and notes out) so it can be unit
// tested; writing refuses to replace an existing profile and validates with pw's loader.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "profile/spec.hpp"

namespace pw {

struct PwrapImport {
  std::string name;                   // the pw profile name (the pwrap project's dir name)
  std::filesystem::path source;       // the pwrap project.toml
  Posture posture = Posture::Human;
  std::string posture_reason;         // why that posture was chosen
  std::string text;                   // the pw profile to write
  // What could not be mapped, or maps with a difference worth knowing:
  // "FILE:LINE:COL: key: text".
  std::vector<std::string> notes;
  std::optional<std::filesystem::path> init_script;    // the init script pwrap would source
  std::optional<std::filesystem::path> old_cipherdir;  // the gocryptfs cipherdir, to migrate
  std::optional<std::filesystem::path> new_cipherdir;  // the pw vault's cipherdir
};

// Converts the text of `file` (pwrap project NAME under `pwrap_dir`). `vault_base` is where
// pw keeps vault cipherdirs (data_dir()/vaults). Throws ProfileError ("FILE:LINE:COL: key:
// problem") for TOML syntax errors and values of the wrong type; never touches the disk
// except to look for the init script and for writable paths that do not exist.
PwrapImport convert_pwrap(std::string_view text, const std::filesystem::path& file, const std::string& name,
                          const std::filesystem::path& pwrap_dir, const std::filesystem::path& vault_base);

// The command: converts every DIR/NAME/project.toml. Returns the exit status (0 only if
// every project was imported, or would be with dry_run).
int import_pwrap(const std::filesystem::path& dir, bool dry_run);

}  // namespace pw
