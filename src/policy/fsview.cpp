#include "policy/fsview.hpp"

#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace pw {

NodeType HostFs::type(const std::filesystem::path& p) const {
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) return NodeType::Missing;
  if (S_ISDIR(st.st_mode)) return NodeType::Dir;
  if (S_ISREG(st.st_mode)) return NodeType::File;
  if (S_ISLNK(st.st_mode)) return NodeType::Symlink;
  return NodeType::Other;
}

std::optional<std::string> HostFs::readlink(const std::filesystem::path& p) const {
  std::vector<char> buf(4096);
  ssize_t n = ::readlink(p.c_str(), buf.data(), buf.size());
  if (n < 0 || static_cast<size_t>(n) >= buf.size()) return std::nullopt;
  return std::string(buf.data(), static_cast<size_t>(n));
}

std::vector<std::filesystem::path> HostFs::glob(const std::string& pattern) const {
  std::vector<std::filesystem::path> out;
  glob_t g{};
  if (::glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  ::globfree(&g);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace pw
