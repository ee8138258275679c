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
// retitles the window or fakes a line of pw's). Line breaks and tabs are pw's own.
void append_printable(std::string& s, std::string_view text) {
  static const char hex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    // C1 controls, U+0080..U+009F, are 0xC2 0x80..0x9F in UTF-8: ESC's 8-bit twins.
    const bool c1 = c == 0xc2 && i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xe0) == 0x80;
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f || c1) {
      const auto b = c1 ? static_cast<unsigned char>(text[++i]) : c;
      s += "\\x";
      s += hex[b >> 4];
      s += hex[b & 0xf];
    } else {
      s += static_cast<char>(c);
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

void error(std::string_view text) { line_to(stderr, paint(stderr, Style::Red, "pw:") + " ", text); }

}  // namespace pw::out
