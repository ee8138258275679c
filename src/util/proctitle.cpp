#include "util/proctitle.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace pw::proctitle {
namespace {

char* g_start = nullptr;  // argv[0]
char* g_end = nullptr;    // one past the last argument or environment string that follows

}  // namespace

void remember(int argc, char** argv) {
  if (argc <= 0 || argv[0] == nullptr) return;
  char* end = argv[0];
  // The kernel lays the argument strings out one after another, then the environment's.
  for (int i = 0; i < argc; ++i) {
    if (argv[i] != end) return;  // not the kernel's layout: leave the title alone
    end = argv[i] + std::strlen(argv[i]) + 1;
  }
  for (char** e = environ; e && *e; ++e) {
    if (*e != end) break;
    end = *e + std::strlen(*e) + 1;
  }
  g_start = argv[0];
  g_end = end;
}

void set(std::string_view title) {
  if (g_start == nullptr) return;
  // The environment may live in the space the title takes: copy it out (for the life of
  // the process, as the kernel's copy would have been).
  auto* copy = new std::vector<char*>();
  for (char** e = environ; e && *e; ++e) copy->push_back(::strdup(*e));
  copy->push_back(nullptr);
  environ = copy->data();
  // A title longer than the arguments runs on into the environment's space; the kernel
  // then shows it up to its NUL (the setproctitle convention).
  const std::size_t room = static_cast<std::size_t>(g_end - g_start);
  const std::size_t n = std::min(title.size(), room - 1);
  std::memcpy(g_start, title.data(), n);
  std::memset(g_start + n, 0, room - n);
}

}  // namespace pw::proctitle
