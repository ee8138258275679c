// Small pure helpers of the profile layer, exposed for unit tests.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pw::profile_detail {

// Optimal-string-alignment distance (a transposition counts as one edit).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate WORD most plausibly misspells: edit distance <= 2, or one is a prefix of the
// other. nullopt if none is close.
std::optional<std::string> closest(std::string_view word,
                                   const std::vector<std::string>& candidates);

// "; did you mean 'x'?" or "".
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

// Expands a leading ~ or ~/ and $VAR / ${VAR} ($$ is a literal $). Undefined or empty
// variables are errors: "$EMPTY/.aws" silently becoming "/.aws" would hide the wrong thing.
// On failure returns nullopt and sets `error`.
std::optional<std::string> expand(std::string_view raw, std::string& error);

// Lexically normal, without a trailing slash (except "/" itself).
std::filesystem::path normalise(const std::filesystem::path& p);

// A path inside the project: relative, no "..", no leading "~". Returns the normalised
// form (no "./", no trailing slash) or nullopt and sets `error`.
std::optional<std::string> project_relative(std::string_view raw, bool allow_dot,
                                            std::string& error);

// Escapes text for use inside a TOML basic string ("...") using toml++'s own writer.
std::string toml_basic_escape(std::string_view text);

// Why toml++ must not see `text`, and where (1-based line and column, in code points).
struct TextIssue {
  std::size_t line = 1, col = 1;
  std::string problem;
};

// Checks profile text before toml++ parses it. toml++ 3.3 (Debian 12's) classifies code
// points as whitespace with a table that reaches __builtin_unreachable for most non-ASCII
// ones (upstream issues #190 and #295), which it does wherever it skips whitespace: between
// tokens, in keys, and in a multi-line basic string after a backslash. Found by
// fuzz_profile. So non-ASCII text is refused there first, where TOML 1.0 never allows it
// anyway (outside strings and comments; after an escaping backslash) or where pw never
// accepts it (in keys), plus the one legal spot, the first character after a line-ending
// backslash. Strings and comments keep any UTF-8. Invalid UTF-8 is refused too.
std::optional<TextIssue> check_toml_text(std::string_view text);

// "~/x" for paths under HOME (what a user would write), else the path; $ doubled, so that
// loading it as a profile path gives back exactly `p`.
std::string display_path(const std::filesystem::path& p);

// Writes `text` to `file` through a temp file in the same dir, fsync and rename.
void write_atomic(const std::filesystem::path& file, const std::string& text);

// mkdir -p with mode 0700 for every component created.
void make_private_dirs(const std::filesystem::path& dir);

}  // namespace pw::profile_detail
