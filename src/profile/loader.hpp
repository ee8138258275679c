// Profile files: locating, parsing (toml++), validating and resolving them into ProfileSpec,
// rendering a spec back to TOML, and writing new profiles from the templates in profiles/.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "profile/spec.hpp"
#include "util/error.hpp"

namespace pw {

// A problem in a profile file. what() is "FILE:LINE:COL: [section.]key: problem[; did you
// mean 'x'?]" so editors and terminals can jump to the spot.
class ProfileError : public Error {
 public:
  explicit ProfileError(const std::string& what) : Error(what) {}
  ProfileError(const std::string& where, const std::string& key, const std::string& problem)
      : Error(key.empty() ? where + ": " + problem : where + ": " + key + ": " + problem) {}
};

// Throws ProfileError ("FILE:LINE:COL: TOML syntax error: ...") for text toml++ must not
// parse (profile_detail::check_toml_text): to be called on every user-written TOML text
// before toml::parse (profiles, pwrap profiles being imported).
void refuse_unsafe_toml(std::string_view text, const std::string& file);

// $XDG_CONFIG_HOME/pw if XDG_CONFIG_HOME is set and absolute, else $HOME/.config/pw.
std::filesystem::path config_dir();

// pw's data dir: $XDG_DATA_HOME/pw, default ~/.local/share/pw. Vault cipherdirs live in
// its vaults/ subdir by default; no session of any posture ever sees it.
std::filesystem::path data_dir();

// True if NAME may name a profile: [A-Za-z0-9][A-Za-z0-9._-]*.
bool valid_profile_name(std::string_view name);

// Parses, validates and resolves profile text; `file` is used for messages and spec.file.
// Throws ProfileError.
ProfileSpec parse_profile(std::string_view text, const std::filesystem::path& file,
                          const std::string& name);

// Reads FILE and parse_profile()s it. Throws ProfileError (or Error if unreadable).
ProfileSpec load_profile_file(const std::filesystem::path& file, const std::string& name);

// config_dir()/NAME/profile.toml, which exists. Throws Error for a bad or unknown name
// (with a "did you mean" or how to create it).
std::filesystem::path profile_path(const std::string& name);

// Loads profile_path(NAME).
ProfileSpec load_profile(const std::string& name);

// Every section and key the loader accepts, one per entry: "section" for each section, then
// "section.key" for each of its keys ([env] takes any variable name, so it has none). The
// reference the man page pw-profile(5) is checked against (`pw __keys`).
std::vector<std::string> profile_keys();

// Names under config_dir() that have a profile.toml, sorted.
std::vector<std::string> list_profiles();

// The resolved profile as TOML (every key with its effective value, paths expanded).
// parse_profile(render_profile(s)) has the same settings as s.
std::string render_profile(const ProfileSpec& spec);

struct NewProfileOptions {
  std::string name;
  std::filesystem::path dir;
  std::string shell;              // both profiles; empty: human gets $SHELL if executable
                                  // (else /bin/bash), agent gets /bin/bash
  std::string agent = "generic";  // template preset: one of agent_presets()
};

// The agent presets of `pw new --agent`, sorted: aider, claude, codex, generic, opencode.
const std::vector<std::string>& agent_presets();

// Writes config_dir()/NAME/profile.toml (human) and config_dir()/NAME-llm/profile.toml
// (agent) from the templates; refuses (writing nothing) if either profile dir exists.
// Returns the two files written.
std::vector<std::filesystem::path> create_profiles(const NewProfileOptions& opts);

// The template directory create_profiles() reads: $PW_TEMPLATE_DIR, else the installed
// templates, else the source tree's profiles/.
std::filesystem::path template_dir();

}  // namespace pw
