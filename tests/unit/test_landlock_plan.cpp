// The Landlock rules mirror the mount plan: every bind gets the rights of its mount, hides
// and symlinks get nothing, and the session's own /proc and /dev get what they need.
#include <catch2/catch.hpp>

#include "policy/landlock_plan.hpp"

using namespace pw;

namespace {

const LandlockRule* find(const std::vector<LandlockRule>& rules, const std::string& path) {
  for (const auto& r : rules) {
    if (r.path == path) return &r;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("landlock plan: rights follow each mount operation", "[landlock]") {
  MountPlan plan;
  plan.ops = {
      {OpKind::BindRo, "/usr", "/usr", "system"},
      {OpKind::BindRw, "/home/u/proj", "/home/u/proj", "project dir"},
      {OpKind::BindRo, "/home/u/proj/.git/hooks", "/home/u/proj/.git/hooks", "agent guard"},
      {OpKind::BindRw, "/tmp", "/run/ws/tmp", "workspace /tmp"},
      {OpKind::HideDir, "/home/u/.ssh", "", "blacklist"},
      {OpKind::HideFile, "/home/u/.netrc", "", "blacklist"},
      {OpKind::Symlink, "/bin", "usr/bin", "link"},
      {OpKind::Proc, "/proc", "", "proc"},
      {OpKind::Dev, "/dev", "", "dev"},
      {OpKind::Vault, "/home/u/proj/secrets", "/run/ws/vault", "vault"},
      {OpKind::RemountRo, "/", "", "root"},
  };
  auto rules = plan_landlock(plan);
  REQUIRE(find(rules, "/") != nullptr);
  CHECK(find(rules, "/")->grant == LandlockGrant::List);
  CHECK(find(rules, "/usr")->grant == LandlockGrant::ReadExec);
  CHECK(find(rules, "/home/u/proj")->grant == LandlockGrant::Write);
  CHECK(find(rules, "/home/u/proj/.git/hooks")->grant == LandlockGrant::ReadExec);
  CHECK(find(rules, "/tmp")->grant == LandlockGrant::Write);
  CHECK(find(rules, "/proc")->grant == LandlockGrant::Proc);
  CHECK(find(rules, "/dev")->grant == LandlockGrant::Device);
  CHECK(find(rules, "/dev/shm")->grant == LandlockGrant::Write);
  CHECK(find(rules, "/home/u/proj/secrets")->grant == LandlockGrant::Write);
  // Hidden paths and links are granted nothing of their own.
  CHECK(find(rules, "/home/u/.ssh") == nullptr);
  CHECK(find(rules, "/home/u/.netrc") == nullptr);
  CHECK(find(rules, "/bin") == nullptr);
  CHECK(rules.size() == 9);
  CHECK(describe(*find(rules, "/usr")) == "landlock  read,exec /usr   (system)");
}

#include "sandbox/landlock.hpp"
#include "util/error.hpp"

TEST_CASE("landlock check: required refuses a partial wall, best-effort warns once", "[landlock]") {
  CHECK(landlock::check(LandlockMode::Off, 0).empty());
  CHECK(landlock::check(LandlockMode::BestEffort, 6).empty());
  CHECK(landlock::check(LandlockMode::Required, 7).empty());
  std::string w = landlock::check(LandlockMode::BestEffort, 3);
  CHECK(w.find("ABI 3") != std::string::npos);
  CHECK(w.find("abstract unix sockets") != std::string::npos);
  CHECK(w.find("device ioctl") != std::string::npos);
  CHECK(w.find("truncate") == std::string::npos);
  CHECK(landlock::check(LandlockMode::BestEffort, 0).find("no Landlock") != std::string::npos);
  CHECK_THROWS_WITH(landlock::check(LandlockMode::Required, 5),
                    Catch::Contains("walls.landlock = \"required\"") && Catch::Contains("ABI 6"));
  CHECK_THROWS_AS(landlock::check(LandlockMode::Required, 0), Error);
}
