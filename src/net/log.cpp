#include "net/log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "net/policy.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

namespace fs = std::filesystem;

namespace pw::net {

fs::path log_path(const std::string& workspace) {
  const char* state = std::getenv("XDG_STATE_HOME");
  fs::path base;
  if (state && state[0] == '/') {
    base = state;
  } else {
    const char* home = std::getenv("HOME");
    base = fs::path(home && home[0] == '/' ? home : "/") / ".local" / "state";
  }
  return base / "pw" / workspace / "net.log";
}

namespace {

// A client chooses the target (and what reasons quote): kept to a bounded length.
std::string_view clip(std::string_view text, std::string& store) {
  if (text.size() <= kLogFieldBytes) return text;
  store = std::string(text.substr(0, kLogFieldBytes)) + "...(" + std::to_string(text.size()) + " bytes)";
  return store;
}

}  // namespace

std::string format_log_line(long long unix_ms, std::string_view target_in, Verdict v,
                            std::string_view kind, std::string_view reason_in) {
  std::string target_store, reason_store;
  const std::string_view target = clip(target_in, target_store);
  const std::string_view reason = clip(reason_in, reason_store);
  const std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  struct tm tm {};
  ::gmtime_r(&secs, &tm);
  char when[96];
  std::snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(unix_ms % 1000));
  const char* verdict = v == Verdict::Allow ? "allow" : v == Verdict::Deny ? "deny" : "fail";
  std::string line = std::string(when) + " \"" + escape(target) + "\" " + verdict + " " +
                     escape(kind) + " ";
  // The reason is last on the line and ours, but it quotes what clients sent: escape any
  // control or non-ASCII byte, keep quotes readable.
  for (unsigned char c : reason) {
    if (c >= 0x20 && c < 0x7f) {
      line += static_cast<char>(c);
    } else {
      line += escape(std::string_view(reinterpret_cast<const char*>(&c), 1));
    }
  }
  line += '\n';
  return line;
}

NetLog::NetLog(const fs::path& path) : path_(path) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  ::chmod(path.parent_path().c_str(), 0700);
  open_log();
}

void NetLog::open_log() {
  fd_.reset(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd_) throw SysError("open " + path_.string());
  struct stat st {};
  size_ = ::fstat(fd_.get(), &st) == 0 ? static_cast<std::size_t>(st.st_size) : 0;
}

void NetLog::write(std::string_view target, Verdict v, std::string_view kind, std::string_view reason) {
  if (!fd_) return;
  using namespace std::chrono;
  const long long ms = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  const std::string line = format_log_line(ms, target, v, kind, reason);
  if (size_ + line.size() > kLogRotateBytes && size_ > 0) {
    // The workspace's proxy is the log's one writer. A failed rotation keeps the old file.
    const fs::path old = path_.string() + ".1";
    if (::rename(path_.c_str(), old.c_str()) == 0) {
      try {
        open_log();
      } catch (const std::exception&) {
        fd_.reset();  // logs nowhere rather than stop the proxy
        return;
      }
    } else {
      size_ = 0;  // try again after another bound's worth
    }
  }
  // O_APPEND and one write per line: lines from several processes never interleave.
  ssize_t n;
  do {
    n = ::write(fd_.get(), line.data(), line.size());
  } while (n < 0 && errno == EINTR);
  if (n > 0) size_ += static_cast<std::size_t>(n);
}

int print_log(const std::string& workspace, std::FILE* out) {
  const fs::path p = log_path(workspace);
  int err = 0;
  // The part rotated out first (it is older), then the current one.
  const auto old = read_text_file(p.string() + ".1", err);
  const auto now = read_text_file(p, err);
  if (!now) {
    if (err == ENOENT) {
      std::fprintf(stderr, "pw: %s: no network log yet (%s)\n", workspace.c_str(), p.c_str());
    } else {
      std::fprintf(stderr, "pw: %s: %s\n", p.c_str(), std::strerror(err));
    }
    return 1;
  }
  if (old) std::fwrite(old->data(), 1, old->size(), out);
  std::fwrite(now->data(), 1, now->size(), out);
  std::fflush(out);
  return 0;
}

}  // namespace pw::net
