#include "profile/text.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
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

namespace {

// One UTF-8 sequence at text[i]: its code point and length, or nothing if it is malformed
// (overlong, surrogate, beyond U+10FFFF, truncated).
std::optional<std::pair<char32_t, std::size_t>> decode_utf8(std::string_view text, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return std::pair{static_cast<char32_t>(c), std::size_t{1}};
  std::size_t len;
  char32_t cp;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return std::nullopt;
  }
  if (i + len > text.size()) return std::nullopt;
  for (std::size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  return std::pair{cp, len};
}

std::string code_point_name(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

}  // namespace

std::optional<TextIssue> check_toml_text(std::string_view text) {
  enum class State { Normal, Comment, Basic, MlBasic, Literal, MlLiteral };
  // Whether the next string is a key or a value, and the open arrays ('[') and inline
  // tables ('{') of the value being read: enough of TOML's grammar to know which strings
  // toml++ reads as keys (it stops at its first error; so may this).
  enum class Ctx { Key, Value };
  // In a multi-line basic string: after a backslash (Escape), then skipping the whitespace
  // and line breaks of a line-ending backslash (Trim).
  enum class Backslash { None, Escape, Trim };
  std::string nesting;
  Ctx ctx = Ctx::Key;
  State st = State::Normal;
  Backslash bs = Backslash::None;
  bool string_is_key = false;
  std::size_t line = 1, col = 1;
  auto issue = [&](std::string problem) { return TextIssue{line, col, std::move(problem)}; };
  auto starts = [&](std::size_t i, std::string_view what) { return text.substr(i).starts_with(what); };
  auto non_ascii = [](char32_t cp) { return "character " + code_point_name(cp); };
  bool token_start = true;  // in Normal: only blanks since the line or a '=[{,.' began
  // In Normal: inside a bare value (a number, boolean, date or an invalid token): toml++
  // scans it up to a value terminator, classifying every character, '=' and quotes included.
  bool bare_value = false;
  auto end_of_line = [&] {
    bare_value = false;
    if (nesting.empty()) ctx = Ctx::Key;
    token_start = true;
  };

  // A byte-order mark at the start is allowed (toml++ skips it).
  for (std::size_t i = text.starts_with("\xEF\xBB\xBF") ? 3 : 0; i < text.size();) {
    auto d = decode_utf8(text, i);
    if (!d) return issue("invalid UTF-8 (profiles are UTF-8 text)");
    const auto [cp, len] = *d;
    const bool ascii = cp < 0x80;
    const bool blank = cp == ' ' || cp == '\t' || cp == '\r' || cp == '\n';
    std::size_t next = i + len;
    // TOML allows no control character anywhere but tab (and line breaks between lines).
    if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7f) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
      return issue(std::string("control character ") + buf + " (TOML allows none but tab)");
    }
    if (!ascii && string_is_key && st != State::Normal && st != State::Comment) {
      return issue(non_ascii(cp) + " in a quoted key (pw's keys are ASCII)");
    }
    switch (st) {
      case State::Normal:
        if (!ascii) return issue(non_ascii(cp) + " outside a string or comment (TOML allows non-ASCII text only there)");
        if (bare_value) {
          if (!(blank || cp == ',' || cp == ']' || cp == '}' || cp == '#')) break;
          bare_value = false;
        }
        if (ctx == Ctx::Value && token_start && !blank && cp != '"' && cp != '\'' && cp != '[' &&
            cp != '{' && cp != '#' && cp != '=' && cp != ',' && cp != ']' && cp != '}') {
          bare_value = true;
          token_start = false;
          break;
        }
        if (cp == ' ' || cp == '\t' || cp == '\r') break;
        if (cp == '\n') {
          end_of_line();
          break;
        }
        if (cp == '#') {
          st = State::Comment;
          break;
        }
        // A quote opens a string only where a token starts; inside a bare token ("3x\"...")
        // toml++ reads on, classifying every character, so neither may this.
        if ((cp == '"' || cp == '\'') && token_start) {
          const bool multi = starts(i, cp == '"' ? "\"\"\"" : "\'\'\'");
          st = cp == '"' ? (multi ? State::MlBasic : State::Basic) : (multi ? State::MlLiteral : State::Literal);
          string_is_key = ctx == Ctx::Key;
          token_start = false;
          if (multi) next = i + 3;
          break;
        }
        if (cp == '=') {
          ctx = Ctx::Value;
        } else if (ctx == Ctx::Value && (cp == '[' || cp == '{')) {
          nesting += static_cast<char>(cp);
          ctx = cp == '{' ? Ctx::Key : Ctx::Value;
        } else if (!nesting.empty() && (cp == ']' || cp == '}')) {
          nesting.pop_back();
          ctx = Ctx::Value;
        } else if (cp == ',' && !nesting.empty()) {
          ctx = nesting.back() == '{' ? Ctx::Key : Ctx::Value;
        }
        token_start = cp == '=' || cp == '[' || cp == '{' || cp == ',' || cp == '.';
        break;
      case State::Comment:
        if (cp == '\n') {
          st = State::Normal;
          end_of_line();
        }
        break;
      case State::Basic:
      case State::Literal:
        if (cp == '\n') {  // unterminated: toml++ reports it
          st = State::Normal;
          string_is_key = false;
          end_of_line();
        } else if (st == State::Basic && cp == '\\' && next < text.size()) {
          auto e = decode_utf8(text, next);
          if (e && e->first >= 0x80) {
            ++col;
            return issue(non_ascii(e->first) + " after a backslash (no escape starts so)");
          }
          if (e && e->first != '\n') next += e->second;  // the escaped character
        } else if (cp == (st == State::Basic ? U'"' : U'\'')) {
          st = State::Normal;
          string_is_key = false;
        }
        break;
      case State::MlBasic:
      case State::MlLiteral: {
        // toml++ classifies the character after a backslash, and after a line-ending
        // backslash every character up to the first one that is not whitespace.
        if (bs == Backslash::Escape) {
          if (blank) {
            bs = Backslash::Trim;
            break;
          }
          bs = Backslash::None;
          if (!ascii) return issue(non_ascii(cp) + " after a backslash (no escape starts so)");
          break;  // the escaped character itself: never a delimiter
        }
        if (bs == Backslash::Trim) {
          if (blank) break;
          bs = Backslash::None;
          if (!ascii) {
            return issue(non_ascii(cp) + " right after a line-ending backslash (and the line break and "
                         "spaces it trims); start the text there with an ASCII character or a \\u escape");
          }
        }
        const char quote = st == State::MlBasic ? '"' : '\'';
        if (st == State::MlBasic && cp == '\\') {
          bs = Backslash::Escape;
        } else if (cp == static_cast<char32_t>(quote) && starts(i, std::string(3, quote))) {
          // Up to two more quotes belong to the string: """a""""" is a, two quotes.
          std::size_t run = 3;
          while (run < 5 && i + run < text.size() && text[i + run] == quote) ++run;
          next = i + run;
          st = State::Normal;
          string_is_key = false;
        }
        break;
      }
    }
    // Columns count code points, as toml++'s do; [i, next) is valid UTF-8 here.
    for (std::size_t k = i; k < next; k += decode_utf8(text, k)->second) {
      if (text[k] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    i = next;
  }
  return std::nullopt;
}

}  // namespace pw::profile_detail
