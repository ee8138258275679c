#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>

namespace pw {

// A user-facing error: the message is printed as "pw: <what>" and pw exits non-zero.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, int exit_code = 1)
      : std::runtime_error(what), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Error for a failed syscall: "<what>: <strerror(errno)>". Captures errno at construction.
class SysError : public Error {
 public:
  explicit SysError(const std::string& what, int err = errno);
  int err() const { return err_; }

 private:
  int err_;
};

}  // namespace pw
