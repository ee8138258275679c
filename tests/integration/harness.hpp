// Integration harness: runs the real `pw` binary, as the unprivileged user running the
// tests, against profiles in a throwaway home, and asks pw-probe questions from inside.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace it {

struct Result {
  int rc = -1;  // exit status, or 128+N if killed by signal N, or -1 on timeout
  std::string out, err;
};

// A throwaway world: HOME with credentials in it, two projects, pw config and runtime dirs.
// Created once per test run; removed at exit.
struct World {
  std::filesystem::path home, config, runtime, project, other, probe_bin;
  std::vector<std::string> env;  // the environment pw runs with

  static World& get();

  // Runs pw with `args`; `input` is fed to stdin.
  Result pw(const std::vector<std::string>& args, const std::string& input = "",
            int timeout_s = 60) const;
  // `pw PROFILE -- pw-probe ARGS...` and returns the probe's first output line (or the
  // whole stderr prefixed with "PW-FAILED rc=N:" when pw itself failed).
  std::string probe(const std::string& profile, const std::vector<std::string>& args) const;
  // Writes a profile file config/NAME/profile.toml with `text`.
  void write_profile(const std::string& name, const std::string& text) const;
};

Result run(const std::vector<std::string>& argv, const std::vector<std::string>& env,
           const std::string& input = "", int timeout_s = 60);

// Starts `argv` in the background with stdio on /dev/null; returns its pid.
pid_t spawn_bg(const std::vector<std::string>& argv, const std::vector<std::string>& env);

// Processes (pid) whose command line contains `needle`.
std::vector<pid_t> pids_with(const std::string& needle);

// Polls `pred` every 20 ms up to `timeout_ms`; returns its last value.
bool wait_for(const std::function<bool()>& pred, int timeout_ms = 5000);

std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, const std::string& text, mode_t mode = 0644);

// A program on a fresh pseudo-terminal (its controlling terminal), for what needs a tty.
struct Pty {
  int master = -1;
  pid_t pid = -1;
  std::string seen;

  Pty(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    int slave;
    struct winsize ws = {24, 100, 0, 0};
    REQUIRE(::openpty(&master, &slave, nullptr, nullptr, &ws) == 0);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::setsid();
      ::ioctl(slave, TIOCSCTTY, 0);
      ::dup2(slave, 0);
      ::dup2(slave, 1);
      ::dup2(slave, 2);
      ::close(master);
      std::vector<char*> a, e;
      for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      for (auto& s : env) e.push_back(const_cast<char*>(s.c_str()));
      e.push_back(nullptr);
      ::execve(a[0], a.data(), e.data());
      _exit(127);
    }
    ::close(slave);
  }
  ~Pty() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    ::close(master);
  }
  void send(const std::string& s) { REQUIRE(::write(master, s.data(), s.size()) == static_cast<ssize_t>(s.size())); }
  // Reads until `needle` shows up in the output (since the last expect) or timeout.
  bool expect(const std::string& needle, int timeout_ms = 10000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      auto pos = seen.find(needle);
      if (pos != std::string::npos) {
        seen.erase(0, pos + needle.size());
        return true;
      }
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now()).count());
      if (left <= 0) return false;
      struct pollfd p = {master, POLLIN, 0};
      if (::poll(&p, 1, left) <= 0) return false;
      char buf[4096];
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n <= 0) return false;
      seen.append(buf, static_cast<size_t>(n));
    }
  }
  int wait() {
    int st;
    ::waitpid(pid, &st, 0);
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
};

// Skips (or, with PW_MUST_WORK=1, fails) when the kernel lacks something the test needs.
bool require(bool ok, const std::string& what);

}  // namespace it
