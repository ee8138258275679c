// The network decision log: $XDG_STATE_HOME/pw/NAME/net.log (default ~/.local/state), one
// line per decision:
//
//   2025-06-01T10:00:00.123Z "api.anthropic.com:443" allow connect matches "api.anthropic.com"
//
// time (UTC), the target quoted with every byte outside printable ASCII, '"' and '\'
// escaped (so a hostile name cannot end the line or fake a verdict), the verdict (allow,
// deny, or fail for an allowed target that could not be reached), what was asked
// (connect, http, tls, ssh-agent) and the reason.
#pragma once

#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#include "util/fd.hpp"

namespace pw::net {

enum class Verdict { Allow, Deny, Fail };

// $XDG_STATE_HOME/pw/NAME/net.log, XDG_STATE_HOME only if absolute, else
// $HOME/.local/state/pw/NAME/net.log.
std::filesystem::path log_path(const std::string& workspace);

// One log line, with the trailing newline. `unix_ms` is the time in ms since the epoch.
std::string format_log_line(long long unix_ms, std::string_view target, Verdict v,
                            std::string_view kind, std::string_view reason);

// The log's size bound: past this many bytes net.log becomes net.log.1 (replacing the one
// before) and a new net.log begins, so a session cannot fill the disk through it, however
// many requests it makes.
constexpr std::size_t kLogRotateBytes = 4u << 20;
// What is kept of a client-sent target or reason on one line.
constexpr std::size_t kLogFieldBytes = 512;

class NetLog {
 public:
  NetLog() = default;  // logs nowhere
  // Opens (creating the dir 0700 and the file 0600) for appending. Throws pw::SysError.
  explicit NetLog(const std::filesystem::path& path);
  void write(std::string_view target, Verdict v, std::string_view kind, std::string_view reason);
  int fd() const { return fd_.get(); }

 private:
  void open_log();
  std::filesystem::path path_;
  Fd fd_;
  std::size_t size_ = 0;
};

// `pw log NAME`: copies the workspace's log to `out`. Returns 0, or 1 with a message on
// stderr when there is no log yet.
int print_log(const std::string& workspace, std::FILE* out = stdout);

}  // namespace pw::net
