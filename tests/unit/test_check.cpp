// pw check's pure pieces: how observations are judged and how operations travel in argv.
#include <unistd.h>

#include <catch2/catch.hpp>

#include "check/wallcheck.hpp"

using namespace pw::check;

TEST_CASE("check: judging observations", "[check]") {
  CHECK(judge("allowed", "OK"));
  CHECK_FALSE(judge("allowed", "EACCES"));
  CHECK(judge("denied", "ENOENT"));
  CHECK(judge("denied", "EMPTY"));
  CHECK(judge("denied", "SIGSYS"));
  CHECK_FALSE(judge("denied", "OK"));
  // No answer is never a pass, whatever was expected.
  CHECK_FALSE(judge("denied", "NO-ANSWER"));
  CHECK_FALSE(judge("denied", ""));
  CHECK(judge("EPERM", "EPERM"));
  CHECK_FALSE(judge("EPERM", "ENOSYS"));
  CHECK(judge("unset", "unset"));
}

TEST_CASE("check: operations round-trip through one argv element", "[check]") {
  std::vector<std::string> op = {"tcp", "127.0.0.1", "3128"};
  CHECK(decode(encode(op)) == op);
  CHECK(decode(encode({"read", "/path with spaces/and\ttab"})) ==
        std::vector<std::string>{"read", "/path with spaces/and\ttab"});
  CHECK(decode(encode({"uid"})) == std::vector<std::string>{"uid"});
}

TEST_CASE("check: operations observe the real outcome", "[check]") {
  CHECK(run_op({"read", "/nonexistent/pw-check"}) == "ENOENT");
  CHECK(run_op({"read", "/dev/null"}) == "EMPTY");
  CHECK(run_op({"read", "/proc/self/status"}) == "OK");
  CHECK(run_op({"env", "PW_CHECK_SURELY_UNSET_VARIABLE"}) == "unset");
  CHECK(run_op({"uid"}) == "uid=" + std::to_string(::getuid()) + " gid=" + std::to_string(::getgid()));
  CHECK(run_op({"nosuid", "/nonexistent/pw-check"}) == "ENOENT");
  CHECK(run_op({"no-such-op"}) == "EINVAL");
}
