#include "profile/text.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

namespace pw::profile_detail {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

std::optional<std::string> closest(std::string_view word,
                                   const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  // Two edits turn any short word into any other, so short words get one.
  std::size_t best_d = word.size() <= 3 ? 2 : 3;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  if (best) return best;
  // Prefixes catch abbreviations ("black") and decorated names ("writable_paths") that are
  // too far away by edit distance; two characters are too few to mean anything.
  if (word.size() >= 3) {
    for (const auto& c : candidates) {
      if (c.starts_with(word) || (word.starts_with(c) && c.size() >= 3)) return c;
    }
  }
  return std::nullopt;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  auto c = closest(word, candidates);
  return c ? "; did you mean '" + *c + "'?" : std::string();
}

namespace {

bool name_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }

std::optional<std::string> lookup(const std::string& var, std::string& error) {
  const char* v = std::getenv(var.c_str());
  if (!v) {
    error = "$" + var + " is not defined";
    return std::nullopt;
  }
  if (!*v) {
    error = "$" + var + " is empty";
    return std::nullopt;
  }
  return std::string(v);
}

}  // namespace

std::optional<std::string> expand(std::string_view raw, std::string& error) {
  std::string out;
  std::size_t i = 0;
  if (raw.starts_with('~')) {
    if (raw.size() > 1 && raw[1] != '/') {
      error = "only '~' and '~/' are expanded ('~user' is not); write the full path";
      return std::nullopt;
    }
    auto home = lookup("HOME", error);
    if (!home) {
      error = "'~' needs HOME, but " + error;
      return std::nullopt;
    }
    out = *home;
    i = 1;
  }
  while (i < raw.size()) {
    const char c = raw[i];
    if (c == '\0') {
      error = "contains a NUL character";
      return std::nullopt;
    }
    if (c != '$') {
      out += c;
      ++i;
      continue;
    }
    if (i + 1 < raw.size() && raw[i + 1] == '$') {
      out += '$';
      i += 2;
      continue;
    }
    std::string var;
    if (i + 1 < raw.size() && raw[i + 1] == '{') {
      const std::size_t close = raw.find('}', i + 2);
      if (close == std::string_view::npos) {
        error = "'${' without a closing '}'";
        return std::nullopt;
      }
      var = std::string(raw.substr(i + 2, close - i - 2));
      if (var.empty() || !name_start(var[0]) || !std::all_of(var.begin(), var.end(), name_char)) {
        error = "'${" + var + "}' is not a variable name";
        return std::nullopt;
      }
      i = close + 1;
    } else {
      std::size_t j = i + 1;
      if (j < raw.size() && name_start(raw[j])) {
        while (j < raw.size() && name_char(raw[j])) ++j;
      }
      if (j == i + 1) {
        error = "a '$' that starts no variable name (write '$$' for a literal '$')";
        return std::nullopt;
      }
      var = std::string(raw.substr(i + 1, j - i - 1));
      i = j;
    }
    auto val = lookup(var, error);
    if (!val) return std::nullopt;
    out += *val;
  }
  return out;
}

std::filesystem::path normalise(const std::filesystem::path& p) {
  std::string s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::optional<std::string> project_relative(std::string_view raw, bool allow_dot,
                                            std::string& error) {
  const std::string rule = "must be relative to the project dir (no leading '/' or '~', no '..')";
  if (raw.empty()) {
    error = "is empty; it " + rule;
    return std::nullopt;
  }
  if (raw.find('\0') != std::string_view::npos) {
    error = "contains a NUL character";
    return std::nullopt;
  }
  if (raw.starts_with('/') || raw.starts_with('~')) {
    error = "'" + std::string(raw) + "' " + rule;
    return std::nullopt;
  }
  const std::filesystem::path p{std::string(raw)};
  for (const auto& part : p) {
    if (part == "..") {
      error = "'" + std::string(raw) + "' " + rule;
      return std::nullopt;
    }
  }
  std::string s = normalise(p).string();
  if (s.empty()) s = ".";
  if (s == "." && !allow_dot) {
    error = "'" + std::string(raw) + "' names the project dir itself; name a path inside it";
    return std::nullopt;
  }
  return s;
}

std::string toml_basic_escape(std::string_view text) {
  std::ostringstream os;
  os << toml::toml_formatter{toml::value<std::string>{std::string(text)}, toml::format_flags::none};
  std::string s = os.str();
  // The formatter emits a quoted basic string; keep only its inside.
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

}  // namespace pw::profile_detail
