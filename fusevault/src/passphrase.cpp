// Passphrase input: terminal with echo off, an fd, or a file. Never argv or environment.
#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>

#include "fusevault/vault.hpp"

namespace fusevault {
namespace {
constexpr std::size_t kMaxPass = 1024;

// A signal that arrived during a terminal prompt: the prompt gives up, restores the
// terminal's echo and then lets the signal do what it would have done.
volatile sig_atomic_t g_prompt_signal = 0;
void on_prompt_signal(int sig) { g_prompt_signal = sig; }
constexpr int kPromptSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

// Reads one byte at a time so that the rest of a pipe stays for the next reader
// (passwd reads the old and the new passphrase from one fd).
SecureBytes read_line(int fd) {
  SecureBytes b(kMaxPass);
  std::size_t n = 0;
  for (;;) {
    char c;
    ssize_t r = ::read(fd, &c, 1);
    if (r < 0 && errno == EINTR && g_prompt_signal != 0) throw VaultError("interrupted");
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw VaultError(std::string("cannot read passphrase: ") + std::strerror(errno));
    if (r == 0 || c == '\n') break;
    if (n == kMaxPass) throw VaultError("passphrase too long (max 1024 bytes)");
    b.data()[n++] = static_cast<std::uint8_t>(c);
  }
  if (n > 0 && b.data()[n - 1] == '\r') n--;
  b.set_size(n);
  if (n == 0) throw VaultError("empty passphrase");
  return b;
}
}  // namespace

SecureBytes read_passphrase_fd(int fd) { return read_line(fd); }

SecureBytes read_passphrase_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw VaultError("cannot open passphrase file " + path + ": " + std::strerror(errno));
  try {
    auto b = read_line(fd);
    ::close(fd);
    return b;
  } catch (...) {
    ::close(fd);
    throw;
  }
}

SecureBytes read_passphrase_tty(const char* prompt, int tty_fd) {
  const bool own = tty_fd < 0;
  if (own) tty_fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (tty_fd < 0)
    throw VaultError("no terminal to ask for the passphrase; use --passphrase-fd or --passphrase-file");
  termios old{};
  const bool is_tty = ::tcgetattr(tty_fd, &old) == 0;
  if (is_tty) {
    termios t = old;
    t.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL);
    t.c_lflag |= ICANON;
    ::tcsetattr(tty_fd, TCSAFLUSH, &t);
  }
  // Ctrl-C (or a hangup, or a kill) during the prompt must not leave the terminal without
  // echo: caught here (no SA_RESTART, so the read returns), undone below, then re-raised.
  struct sigaction catcher {}, saved[std::size(kPromptSignals)];
  catcher.sa_handler = on_prompt_signal;
  sigemptyset(&catcher.sa_mask);
  g_prompt_signal = 0;
  for (std::size_t i = 0; i < std::size(kPromptSignals); ++i) {
    ::sigaction(kPromptSignals[i], &catcher, &saved[i]);
  }
  if (prompt) (void)!::write(tty_fd, prompt, std::strlen(prompt));
  SecureBytes b;
  std::exception_ptr err;
  try {
    b = read_line(tty_fd);
  } catch (...) {
    err = std::current_exception();
  }
  if (is_tty) ::tcsetattr(tty_fd, TCSAFLUSH, &old);
  (void)!::write(tty_fd, "\n", 1);
  if (own) ::close(tty_fd);
  for (std::size_t i = 0; i < std::size(kPromptSignals); ++i) {
    ::sigaction(kPromptSignals[i], &saved[i], nullptr);
  }
  if (const int sig = g_prompt_signal; sig != 0) {
    g_prompt_signal = 0;
    ::raise(sig);  // its own disposition again: by default, the end of the process
  }
  if (err) std::rethrow_exception(err);
  return b;
}

}  // namespace fusevault
