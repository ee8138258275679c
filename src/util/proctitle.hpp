// The process's command line as `ps` shows it. A process forked to become something else
// (the workspace supervisor, forked from the client that starts it) names itself with it.
#pragma once

#include <string_view>

namespace pw::proctitle {

// Called first thing in main: where the kernel put the arguments (and, right after them,
// the environment strings).
void remember(int argc, char** argv);

// Rewrites the command line to `title` (words separated by spaces). The environment
// strings, whose space it may take, are copied out first, so getenv() keeps working. A
// title longer than the space there is cut.
void set(std::string_view title);

}  // namespace pw::proctitle
