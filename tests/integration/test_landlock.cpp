// The second wall on its own: Landlock rules mirror the mount plan, so where the mounts show
// more than the profile grants (a test build widens the view with PW_TEST_WIDEN_RW, a bind
// the plan and its Landlock rules know nothing of), the write is still refused; and abstract
// unix sockets of the host stay out of reach of a session sharing the host's network.
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstring>

#include "harness.hpp"

namespace fs = std::filesystem;
using it::World;

namespace {

int landlock_abi() {
  long v = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, 1u);
  return v < 0 ? 0 : static_cast<int>(v);
}

// A copy of profile `from` named `to`, with `edits` (old text -> new text) applied.
void derive_profile(const World& w, const std::string& from, const std::string& to,
                    const std::vector<std::pair<std::string, std::string>>& edits) {
  std::string text = it::read_file(w.config / "pw" / from / "profile.toml");
  for (const auto& [a, b] : edits) {
    auto pos = text.find(a);
    REQUIRE(pos != std::string::npos);
    text.replace(pos, a.size(), b);
  }
  w.write_profile(to, text);
}

std::string probe_env(const World& w, const std::string& profile, const std::vector<std::string>& extra_env,
                      const std::vector<std::string>& args) {
  std::vector<std::string> argv = {PW_BIN, profile, "--", w.probe_bin.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto env = w.env;
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  auto r = it::run(argv, env);
  if (r.rc != 0) return "PW-FAILED rc=" + std::to_string(r.rc) + ": " + r.err + r.out;
  return r.out.substr(0, r.out.find('\n'));
}

}  // namespace

TEST_CASE("Landlock refuses what a widened mount view would allow", "[landlock]") {
  auto& w = World::get();
  if (!it::require(landlock_abi() >= 1, "Landlock")) return;
  derive_profile(w, "demo-llm", "ll-off", {{"landlock = \"best-effort\"", "landlock = \"off\""}});
  fs::path wide = "/var/tmp/pw-widen-" + std::to_string(::getpid());
  fs::create_directories(wide);
  it::write_file(wide / "present", "host file\n");
  fs::copy_file("/bin/true", wide / "true-copy", fs::copy_options::overwrite_existing);
  std::vector<std::string> hook = {"PW_TEST_WIDEN_RW=" + wide.string()};

  // Without Landlock the widened bind is fully usable: the hook does widen the view.
  CHECK(probe_env(w, "ll-off", hook, {"write", (wide / "off").string()}) == "OK");
  CHECK(probe_env(w, "ll-off", hook, {"write", (wide / "present").string()}) == "OK");
  CHECK(it::read_file(wide / "present") == "host file\nx");
  CHECK(probe_env(w, "ll-off", hook, {"read", (wide / "present").string()}) == "OK");
  // With it (the template's best-effort), the same bind is a wall: no write, no read, no exec.
  CHECK(probe_env(w, "demo-llm", hook, {"write", (wide / "on").string()}) == "EACCES");
  CHECK(probe_env(w, "demo-llm", hook, {"write", (wide / "present").string()}) == "EACCES");
  CHECK(it::read_file(wide / "present") == "host file\nx");
  CHECK(probe_env(w, "demo-llm", hook, {"read", (wide / "present").string()}) == "EACCES");
  CHECK(probe_env(w, "demo-llm", hook, {"exec", (wide / "true-copy").string()}) == "EACCES");
  // What the profile grants still works under the wall.
  CHECK(probe_env(w, "demo-llm", hook, {"write", (w.project / "ll-granted").string()}) == "OK");
  fs::remove_all(wide);
}

TEST_CASE("everyday work is unaffected by the Landlock wall", "[landlock]") {
  auto& w = World::get();
  if (!it::require(landlock_abi() >= 1, "Landlock")) return;
  for (const char* p : {"demo", "demo-llm"}) {
    INFO(p);
    // Rename across directories (REFER), truncating redirections to /dev/null and /proc,
    // a new pty, executing from the project, listing /.
    auto r = w.pw({p, "--", "/bin/sh", "-c",
                   "cd " + w.project.string() + " && rm -rf lld && mkdir -p lld/a lld/b && "
                   "echo moved > lld/a/f && mv lld/a/f lld/b/f && cat lld/b/f && "
                   "echo x > /dev/null && cat /proc/self/status >/dev/null && "
                   "printf '#!/bin/sh\\necho ran\\n' > lld/s && chmod +x lld/s && ./lld/s && "
                   "ls / >/dev/null && echo hi > /tmp/ll-tmp && cat /tmp/ll-tmp && "
                   "ls -d /dev/pts >/dev/null && rm -rf lld"});
    INFO(r.err);
    CHECK(r.rc == 0);
    CHECK(r.out == "moved\nran\nhi\n");
  }
}

TEST_CASE("Landlock scopes the host's abstract unix sockets away", "[landlock]") {
  auto& w = World::get();
  if (!it::require(landlock_abi() >= 6, "Landlock ABI 6 (abstract socket scoping)")) return;
  derive_profile(w, "demo-llm", "ll-hostnet", {{"mode = \"none\"", "mode = \"host\""}});
  derive_profile(w, "ll-hostnet", "ll-hostnet-off", {{"landlock = \"best-effort\"", "landlock = \"off\""}});
  std::string name = "pw-ll-test-" + std::to_string(::getpid());
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(s >= 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path + 1, name.data(), name.size());
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&a),
                 static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())) == 0);
  REQUIRE(::listen(s, 8) == 0);
  // Host networking shares the abstract namespace: only Landlock stands in the way.
  CHECK(w.probe("ll-hostnet-off", {"uconnect", "@" + name}) == "OK");
  CHECK(w.probe("ll-hostnet", {"uconnect", "@" + name}) == "EPERM");
  CHECK(w.probe("demo", {"uconnect", "@" + name}) == "EPERM");
  ::close(s);
}

TEST_CASE("walls.landlock = required starts here and pw explain lists the rules", "[landlock]") {
  auto& w = World::get();
  if (!it::require(landlock_abi() >= 6, "Landlock ABI 6")) return;
  derive_profile(w, "demo-llm", "ll-required", {{"landlock = \"best-effort\"", "landlock = \"required\""}});
  CHECK(w.probe("ll-required", {"write", (w.project / "ll-req").string()}) == "OK");
  auto r = w.pw({"explain", "ll-required"});
  REQUIRE(r.rc == 0);
  CHECK(r.out.find("# landlock (required, kernel ABI ") != std::string::npos);
  CHECK(r.out.find("landlock  write     " + w.project.string()) != std::string::npos);
  CHECK(r.out.find("landlock  read,exec /usr") != std::string::npos);
  CHECK(r.out.find("landlock  list      /") != std::string::npos);
}
