// `pw check NAME`: the walls tested from inside a fresh session of NAME.
//
// The host side (wallcheck.cpp) derives every expectation from the profile through the same
// code that builds the session: the mount plan (explain_path), the environment plan, the
// compiled seccomp filter (evaluated in-process) and the network mode. It plants canaries
// (a /tmp file, unix sockets, a loopback listener, a process, secret-looking variables),
// then runs `pw __wallcheck OPS...` (agent.cpp) inside a session of NAME, which attempts
// each operation and prints one outcome per line. A check whose premise is not met on this
// host (a credential file that does not exist, a syscall the profile grants) is reported as
// skipped with the reason, never as passed.
#pragma once

#include <string>
#include <vector>

namespace pw::check {

struct Check {
  std::string group;
  std::string name;
  std::vector<std::string> op;  // what the agent runs: op name and arguments
  // How the observation is judged: "allowed" (outcome OK), "denied" (anything else), or an
  // exact outcome ("EPERM", "SIGSYS", "unset", "0000000000000000", ...).
  std::string expect;
  std::string why;          // where the expectation comes from
  std::string skip;         // non-empty: not run, and why
  std::string observed;
  bool pass = false;
};

// True if `observed` meets `expect`.
bool judge(const std::string& expect, const std::string& observed);

// Runs the checks for profile `name`; prints the table; returns the exit status (0 only if
// every check that ran passed).
int run(const std::string& name, bool verbose);

// Inside the session: runs each encoded operation in a child process and prints
// "INDEX<TAB>OUTCOME" per line. Returns the exit status.
int agent_main(int argc, char** argv);

// One operation as the agent runs it (exposed for tests): returns the outcome string.
std::string run_op(const std::vector<std::string>& op);

// The argv element that carries one operation (fields joined by \x1f) and back.
std::string encode(const std::vector<std::string>& op);
std::vector<std::string> decode(const std::string& s);

}  // namespace pw::check
