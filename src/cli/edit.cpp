#include "cli/edit.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "profile/loader.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/output.hpp"

namespace pw {

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  Fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw SysError("cannot read " + p.string());
  std::string text;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SysError("cannot read " + p.string());
    if (n == 0) return text;
    text.append(buf, static_cast<std::size_t>(n));
  }
}

void write_all(int fd, std::string_view text, const fs::path& p) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw SysError("cannot write " + p.string());
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

bool on_path(const std::string& prog) {
  const char* path = std::getenv("PATH");
  std::string_view rest = path ? path : "/usr/bin:/bin";
  while (true) {
    const auto colon = rest.find(':');
    const std::string_view dir = rest.substr(0, colon);
    if (!dir.empty()) {
      const std::string cand = std::string(dir) + "/" + prog;
      struct stat st;
      if (::stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(cand.c_str(), X_OK) == 0) {
        return true;
      }
    }
    if (colon == std::string_view::npos) return false;
    rest.remove_prefix(colon + 1);
  }
}

// Runs `cmd FILE` through /bin/sh and waits; returns its status (128+N for signal N).
int run_editor(const std::string& cmd, const fs::path& file) {
  // The editor owns the terminal meanwhile: a Ctrl-C there is the editor's, not ours.
  struct sigaction ign {}, old_int {}, old_quit {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ign, &old_int);
  ::sigaction(SIGQUIT, &ign, &old_quit);
  const std::string script = cmd + " \"$@\"";
  const pid_t pid = ::fork();
  if (pid < 0) throw SysError("fork");
  if (pid == 0) {
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGQUIT, &old_quit, nullptr);
    const char* argv[] = {"/bin/sh", "-c", script.c_str(), cmd.c_str(), file.c_str(), nullptr};
    ::execv("/bin/sh", const_cast<char* const*>(argv));
    _exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGQUIT, &old_quit, nullptr);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

bool ask_again() {
  std::fputs("Edit again? [Y/n] ", stderr);
  std::fflush(stderr);
  std::string answer;
  char c;
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // end of input: take it as a no
      std::fputc('\n', stderr);
      return false;
    }
    if (c == '\n') break;
    answer += c;
  }
  return answer.empty() || answer == "y" || answer == "Y" || answer == "yes";
}

void sync_dir(const fs::path& dir) {
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d) ::fsync(d.get());
}

// The edited copy; removed on the way out unless it was renamed into place or kept.
struct TempCopy {
  fs::path path;
  ~TempCopy() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

}  // namespace

std::string editor_command() {
  for (const char* var : {"VISUAL", "EDITOR"}) {
    const char* e = std::getenv(var);
    if (e && std::string_view(e).find_first_not_of(" \t") != std::string_view::npos) return e;
  }
  return on_path("editor") ? "editor" : "vi";
}

int edit_profile(const std::string& name) {
  const fs::path shown = profile_path(name);  // what messages name, as `pw NAME` would
  std::error_code ec;
  const fs::path target = fs::canonical(shown, ec);
  if (ec) throw Error("cannot resolve " + shown.string() + ": " + ec.message());
  struct stat st;
  if (::stat(target.c_str(), &st) != 0) throw SysError("cannot stat " + target.string());
  if (!S_ISREG(st.st_mode)) throw Error(target.string() + " is not a regular file");
  const mode_t mode = st.st_mode & 07777;
  const std::string original = slurp(target);

  // Beside the target, so that the final rename is atomic and on the same filesystem; the
  // .toml suffix lets editors pick the right syntax.
  TempCopy copy;
  {
    std::string tmpl = (target.parent_path() / ".profile.toml.edit-XXXXXX.toml").string();
    Fd fd(::mkstemps(tmpl.data(), 5));
    if (!fd) throw SysError("cannot create a copy in " + target.parent_path().string());
    copy.path = tmpl;
    write_all(fd.get(), original, copy.path);
    if (::fchmod(fd.get(), mode) != 0) throw SysError("cannot chmod " + copy.path.string());
  }

  const std::string editor = editor_command();
  for (;;) {
    const int rc = run_editor(editor, copy.path);
    if (rc != 0) {
      throw Error("the editor (" + editor + ") exited with status " + std::to_string(rc) + "; " +
                  shown.string() + " is unchanged");
    }
    std::error_code ec2;
    if (!fs::exists(copy.path, ec2)) {
      copy.path.clear();
      throw Error("the editor removed the copy; " + shown.string() + " is unchanged");
    }
    const std::string edited = slurp(copy.path);
    if (edited == original) {
      out::info("no changes to " + shown.string());
      return 0;
    }
    try {
      const ProfileSpec spec = parse_profile(edited, shown, name);
      for (const auto& w : spec.warnings) out::warn(w);
    } catch (const Error& e) {
      out::error(e.what());
      if (::isatty(STDIN_FILENO) == 1 && ask_again()) continue;
      const fs::path rejected = target.parent_path() / "profile.toml.rejected";
      std::string kept = copy.path.string();
      if (::rename(copy.path.c_str(), rejected.c_str()) == 0) kept = rejected.string();
      copy.path.clear();
      throw Error(shown.string() + " is unchanged; your version is in " + kept);
    }
    // Someone else (another `pw edit`, say) changed the profile meanwhile: theirs would be
    // lost without a word.
    if (slurp(target) != original) {
      const fs::path rejected = target.parent_path() / "profile.toml.rejected";
      std::string kept = copy.path.string();
      if (::rename(copy.path.c_str(), rejected.c_str()) == 0) kept = rejected.string();
      copy.path.clear();
      throw Error(shown.string() + " changed while you were editing it; it is left as it is now, "
                  "your version is in " + kept);
    }
    // The editor may have replaced the copy by a new file (write to a new file and rename
    // is a common way to save): set the mode on what is there now.
    {
      Fd fd(::open(copy.path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd) throw SysError("cannot open " + copy.path.string());
      if (::fchmod(fd.get(), mode) != 0) throw SysError("cannot chmod " + copy.path.string());
      if (::fsync(fd.get()) != 0) throw SysError("cannot sync " + copy.path.string());
    }
    if (::rename(copy.path.c_str(), target.c_str()) != 0) {
      throw SysError("cannot replace " + target.string());
    }
    copy.path.clear();
    sync_dir(target.parent_path());
    out::info("updated " + shown.string());
    return 0;
  }
}

}  // namespace pw
