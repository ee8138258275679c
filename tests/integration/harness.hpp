// Integration harness: runs the real `pw` binary, as the unprivileged user running the
// tests, against profiles in a throwaway home, and asks pw-probe questions from inside.
#pragma once

#include <sys/types.h>

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

// Skips (or, with PW_MUST_WORK=1, fails) when the kernel lacks something the test needs.
bool require(bool ok, const std::string& what);

}  // namespace it
