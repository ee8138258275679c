// The profile loader, from TOML text. Whatever the bytes, parse_profile() returns a spec or
// throws ProfileError: any other exception, a crash or a sanitizer report is a bug. A spec
// that loads must also survive its own rendering: parse_profile(render_profile(s)) loads
// and has the same settings (the promise loader.hpp makes).
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#include "common.hpp"
#include "profile/loader.hpp"

namespace fs = std::filesystem;

namespace {

fs::path g_home;

void cleanup() {
  std::error_code ec;
  if (!g_home.empty()) fs::remove_all(g_home, ec);
}

}  // namespace

// A home holding what the seed profiles name (tests/data/profiles and the templates), so
// inputs get past the existence checks into the rest of the loader.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/pw-fuzz-profile-XXXXXX";
  if (!::mkdtemp(tmpl.data())) {
    std::perror("mkdtemp");
    std::abort();
  }
  g_home = tmpl;
  for (const char* d : {"projects/okb/.git/hooks", "projects/other", ".aws", ".ssh", ".config/gcloud",
                        ".pyenv", ".cache/pip", ".local/share/pw/vaults/okb", "dotfiles"}) {
    fs::create_directories(g_home / d);
  }
  ::setenv("HOME", g_home.c_str(), 1);
  ::setenv("XDG_CONFIG_HOME", (g_home / ".config").c_str(), 1);
  ::setenv("XDG_DATA_HOME", (g_home / ".local/share").c_str(), 1);
  ::setenv("PROJECTS", (g_home / "projects").c_str(), 1);
  ::unsetenv("EMPTY");
  std::atexit(cleanup);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const fs::path file = g_home / ".config/pw/okb/profile.toml";
  pw::ProfileSpec spec;
  try {
    spec = pw::parse_profile(text, file, "okb");
  } catch (const pw::ProfileError& e) {
    // Every message says where: "FILE:LINE:COL: ..." (or "FILE: ..." for the file itself).
    FUZZ_ASSERT(std::string_view(e.what()).starts_with(file.string() + ":"));
    return 0;
  }
  const std::string rendered = pw::render_profile(spec);
  try {
    const pw::ProfileSpec back = pw::parse_profile(rendered, file, "okb");
    if (!back.same_settings(spec)) {
      std::fprintf(stderr, "rendered:\n%s\n", rendered.c_str());
      FUZZ_ASSERT(back.same_settings(spec));
    }
  } catch (const pw::ProfileError& e) {
    std::fprintf(stderr, "rendered:\n%s\nfails to load: %s\n", rendered.c_str(), e.what());
    FUZZ_ASSERT(!"a loaded profile's rendering loads");
  }
  return 0;
}
