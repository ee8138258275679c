// The validated, resolved form of one profile file. Produced by load_profile(); everything
// downstream (policy, sandbox, workspace) reads only this, never TOML.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pw {

enum class Posture { Human, Agent };
enum class NetMode { None, Host, Allowlist };
enum class SeccompMode { Default, Strict, Off };
enum class LandlockMode { Required, BestEffort, Off };
enum class SshAgentMode { None, Forward };
enum class VaultUnlock { Manual, OnEnter };

const char* to_string(Posture);
const char* to_string(NetMode);
const char* to_string(SeccompMode);
const char* to_string(LandlockMode);
const char* to_string(SshAgentMode);
const char* to_string(VaultUnlock);

// A path from the profile after ~ and $VAR expansion, made absolute and lexically normal.
// `origin` is "file:line:col" of the entry, so later stages can name it in messages.
struct PathEntry {
  std::filesystem::path path;
  std::string origin;

  // Equality is about what the entry grants, not where it was written.
  bool operator==(const PathEntry& o) const { return path == o.path; }
};

struct VaultSpec {
  std::filesystem::path cipherdir;
  std::filesystem::path mountpoint;  // absolute
  VaultUnlock unlock = VaultUnlock::Manual;

  bool operator==(const VaultSpec&) const = default;
};

struct ProfileSpec {
  std::string name;                   // profile name (directory name under the config dir)
  std::filesystem::path file;         // the profile.toml it came from
  std::filesystem::path profile_dir;  // its directory (init.sh lives here)

  // [project]
  std::string project_name;
  std::filesystem::path dir;  // project directory, absolute, exists
  std::string shell = "/bin/bash";
  Posture posture = Posture::Human;

  // [sandbox]
  bool clean_env = false;
  std::vector<PathEntry> blacklist;   // hidden
  std::vector<PathEntry> whitelist;   // visible read-only
  std::vector<PathEntry> writable;    // visible read-write
  std::vector<std::string> mask;      // globs relative to the project dir
  std::vector<std::string> readonly;  // paths relative to the project dir, kept read-only
  std::vector<PathEntry> devices;     // device nodes or dirs under /dev to expose
  bool pid = true;                    // private pid namespace
  bool ipc = true;                    // private ipc namespace

  // [agent]
  std::optional<std::string> state_dir;  // relative to the project dir
  std::string home = "tmpfs";            // "tmpfs" or a dir relative to the project dir
  bool xdg = false;                      // XDG base dirs point into state_dir too

  // [network]
  NetMode net = NetMode::None;
  std::vector<std::string> allow;
  bool allow_private = false;

  // [ssh_agent]
  SshAgentMode ssh_agent = SshAgentMode::None;
  std::vector<std::string> ssh_keys;

  // [vault]
  std::optional<VaultSpec> vault;

  // [walls]
  SeccompMode seccomp = SeccompMode::Default;
  bool allow_userns = false;
  bool allow_io_uring = false;
  LandlockMode landlock = LandlockMode::BestEffort;

  // [env], in file order
  std::vector<std::pair<std::string, std::string>> env;

  // Non-fatal findings (e.g. a whitelist path that does not exist), "file:line:col: text".
  std::vector<std::string> warnings;

  // Same settings: ignores where the profile was read from (file, profile_dir) and the
  // warnings, so a profile and its render_profile() output compare equal.
  bool same_settings(const ProfileSpec& o) const;
  bool operator==(const ProfileSpec&) const = default;
};

}  // namespace pw
