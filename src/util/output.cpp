#include "util/output.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

namespace pw::out {

namespace {

Level g_level = Level::Normal;

// Set during static initialisation, before main: close enough to the process's start.
const auto g_start = std::chrono::steady_clock::now();

bool decide_colour(std::FILE* stream) {
  const char* no = std::getenv("NO_COLOR");
  if (no && *no) return false;
  const char* term = std::getenv("TERM");
  if (term && std::strcmp(term, "dumb") == 0) return false;
  return ::isatty(::fileno(stream)) == 1;
}

const char* code(Style s) {
  switch (s) {
    case Style::Bold:
      return "\033[1m";
    case Style::Red:
      return "\033[1;31m";
    case Style::Green:
      return "\033[32m";
    case Style::Yellow:
      return "\033[33m";
    case Style::Cyan:
      return "\033[36m";
    case Style::Dim:
      return "\033[2m";
  }
  return "";
}

// Messages carry names from the filesystem (a link's target, a file name in the
// project), which an agent session can choose: their control characters are shown as
// \xNN rather than sent to the terminal (no escape sequence of theirs clears the screen,
// retitles the window or fakes a line of pw's). Line breaks and tabs are pw's own, unless
// `all`. C1 controls (U+0080..U+009F, ESC's 8-bit twins, 0xC2 0x80..0x9F in UTF-8) are
// shown as their code point; a byte that does not belong to valid UTF-8 (a lone 0x9B is
// CSI to a terminal reading 8-bit controls) is shown as itself.
void append_printable(std::string& s, std::string_view text, bool all = false) {
  static const char hex[] = "0123456789abcdef";
  auto shown = [&](unsigned char b) {
    s += "\\x";
    s += hex[b >> 4];
    s += hex[b & 0xf];
  };
  auto byte = [&](std::size_t i) { return i < text.size() ? static_cast<unsigned char>(text[i]) : 0u; };
  for (std::size_t i = 0; i < text.size();) {
    const unsigned c = byte(i);
    if (c < 0x80) {
      if ((c < 0x20 && (all || (c != '\n' && c != '\t'))) || c == 0x7f)
        shown(static_cast<unsigned char>(c));
      else
        s += static_cast<char>(c);
      ++i;
      continue;
    }
    // The length of a well-formed sequence led by c, and the range of its second byte
    // (which rules out overlong forms and surrogates); 0 if c cannot lead one.
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      lo = c == 0xe0 ? 0xa0 : 0x80;
      hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      lo = c == 0xf0 ? 0x90 : 0x80;
      hi = c == 0xf4 ? 0x8f : 0xbf;
    }
    bool ok = len > 0 && byte(i + 1) >= lo && byte(i + 1) <= hi;
    for (std::size_t k = 2; ok && k < len; ++k) ok = (byte(i + k) & 0xc0) == 0x80;
    if (!ok) {
      shown(static_cast<unsigned char>(c));
      ++i;
    } else if (c == 0xc2 && byte(i + 1) < 0xa0) {
      shown(static_cast<unsigned char>(byte(i + 1)));
      i += 2;
    } else {
      s.append(text.substr(i, len));
      i += len;
    }
  }
}

void line_to(std::FILE* f, const std::string& prefix, std::string_view text) {
  std::string s = prefix;
  append_printable(s, text);
  s += '\n';
  std::fputs(s.c_str(), f);
}

}  // namespace

void set_level(Level level) { g_level = level; }
Level level() { return g_level; }

bool colour(std::FILE* stream) {
  // Decided once: the environment and the streams do not change under a running pw.
  static const bool out = decide_colour(stdout);
  static const bool err = decide_colour(stderr);
  if (stream == stdout) return out;
  if (stream == stderr) return err;
  return decide_colour(stream);
}

std::string paint(std::FILE* stream, Style style, std::string_view text) {
  if (!colour(stream)) return std::string(text);
  std::string s = code(style);
  s.append(text);
  s += "\033[0m";
  return s;
}

void info(std::string_view line) {
  if (g_level == Level::Quiet) return;
  line_to(stdout, "", line);
}

std::string elapsed_suffix() {
  const std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - g_start;
  char buf[32];
  std::snprintf(buf, sizeof buf, " (+%.1f ms)", ms.count());
  return buf;
}

void step(std::string_view line) {
  if (g_level != Level::Verbose) return;
  line_to(stderr, paint(stderr, Style::Cyan, "pw:") + " ", std::string(line) + elapsed_suffix());
}

void warn(std::string_view text) {
  line_to(stderr, "pw: " + paint(stderr, Style::Yellow, "warning:") + " ", text);
}

std::string printable(std::string_view text) {
  std::string s;
  append_printable(s, text);
  return s;
}

std::string one_line(std::string_view text) {
  std::string s;
  append_printable(s, text, true);
  return s;
}

void error(std::string_view text) { line_to(stderr, paint(stderr, Style::Red, "pw:") + " ", text); }

}  // namespace pw::out
