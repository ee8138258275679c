// Shared by the fuzz targets: a property that does not hold is a crash, with the input's
// failing property named on stderr (libFuzzer then saves the input as a crash artifact).
#pragma once

#include <cstdio>
#include <cstdlib>

namespace pwfuzz {

[[noreturn]] inline void violated(const char* what, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: property violated: %s\n", file, line, what);
  std::abort();
}

}  // namespace pwfuzz

#define FUZZ_ASSERT(cond) \
  do {                    \
    if (!(cond)) ::pwfuzz::violated(#cond, __FILE__, __LINE__); \
  } while (0)
