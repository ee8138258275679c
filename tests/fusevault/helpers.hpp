// Shared helpers for the fusevault tests.
#pragma once
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>

namespace fvtest {

inline std::string make_temp_dir(const char* tag) {
  const char* base = std::getenv("TMPDIR");
  std::string t = std::string(base && *base ? base : "/tmp") + "/fv-" + tag + "-XXXXXX";
  if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
  return t;
}

inline void remove_tree(const std::string& p) {
  ::nftw(
      p.c_str(),
      [](const char* f, const struct stat*, int type, FTW*) {
        if (type == FTW_DP)
          ::rmdir(f);
        else
          ::unlink(f);
        return 0;
      },
      64, FTW_DEPTH | FTW_PHYS);
}

struct TempDir {
  std::string path;
  explicit TempDir(const char* tag) : path(make_temp_dir(tag)) {}
  ~TempDir() { remove_tree(path); }
};

// Deterministic content: different per seed, position dependent.
inline std::string pattern(std::size_t n, std::uint32_t seed) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 12345u;
  for (std::size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

inline std::string slurp_fd(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) throw std::runtime_error("read failed");
    if (r == 0) break;
    out.append(buf, static_cast<std::size_t>(r));
  }
  return out;
}

inline std::string read_path(const std::string& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open failed: " + p);
  auto s = slurp_fd(fd);
  ::close(fd);
  return s;
}

inline void write_path(const std::string& p, const std::string& data, mode_t mode = 0600) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("create failed: " + p);
  if (::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) throw std::runtime_error("write");
  ::close(fd);
}

}  // namespace fvtest
