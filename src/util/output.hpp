// What pw prints besides the output a command was asked for: informational lines (hidden by
// --quiet), setup steps (shown by --verbose), warnings and errors; and colour, used only on a
// terminal and never when NO_COLOR is set (https://no-color.org).
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace pw::out {

enum class Level { Quiet, Normal, Verbose };

// Set once by main from --quiet / --verbose; Normal until then.
void set_level(Level level);
Level level();
inline bool verbose() { return level() == Level::Verbose; }

enum class Style { Bold, Red, Green, Yellow, Cyan, Dim };

// True when text written to `stream` may carry colour: the stream is a terminal, NO_COLOR is
// unset or empty and TERM is not "dumb". Decided once per stream.
bool colour(std::FILE* stream);

// `text` wrapped in the escape sequences of `style` when colour(stream), else as is.
std::string paint(std::FILE* stream, Style style, std::string_view text);

// "what pw did" on stdout (e.g. "wrote FILE"); nothing with --quiet.
void info(std::string_view line);
// A setup step on stderr ("pw: " + line + " (+T ms)", T the time since this pw process
// started, forked children counting from their parent's start); only with --verbose.
void step(std::string_view line);
// " (+T ms)" for a step line: where the start-up time goes.
std::string elapsed_suffix();
// "pw: warning: " + text on stderr, whatever the level.
void warn(std::string_view text);
// "pw: " + text on stderr, whatever the level.
// `text` with its control characters (but line breaks and tabs) shown as \xNN, as every
// line above prints it: for text that reaches the terminal some other way.
std::string printable(std::string_view text);
// `text` with line breaks and tabs shown as \xNN too: for a name an agent session can
// choose (a link in the project and its target), put into a message, so that it cannot
// start a line of its own there.
std::string one_line(std::string_view text);

void error(std::string_view text);

}  // namespace pw::out
