// The planner's only window onto the host filesystem, so planning stays a pure function of
// (profile, what the filesystem looks like) and unit tests can hand it a fake tree.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace pw {

enum class NodeType { Missing, Dir, File, Symlink, Other /* socket, fifo, device */ };

class FsView {
 public:
  virtual ~FsView() = default;
  // lstat-like: does not follow a final symlink.
  virtual NodeType type(const std::filesystem::path& p) const = 0;
  virtual std::optional<std::string> readlink(const std::filesystem::path& p) const = 0;
  // Absolute paths matching a glob(7) pattern, sorted; dotfiles match only explicit dots.
  virtual std::vector<std::filesystem::path> glob(const std::string& pattern) const = 0;
};

// The real filesystem, queried as the calling user (before any namespace is entered).
class HostFs final : public FsView {
 public:
  NodeType type(const std::filesystem::path& p) const override;
  std::optional<std::string> readlink(const std::filesystem::path& p) const override;
  std::vector<std::filesystem::path> glob(const std::string& pattern) const override;
};

}  // namespace pw
