// `pw doctor`'s pure parts: parsing what the kernel reports and the advice for each failure.
// The probes themselves run for real in the integration tests.
#include <catch2/catch.hpp>
#include <cerrno>
#include <string>

#include "cli/doctor.hpp"

using namespace pw::doctor;

namespace {

bool any_fix_has(const Check& c, const std::string& needle) {
  for (const auto& f : c.fix) {
    if (f.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("doctor: kernel versions", "[doctor]") {
  CHECK(kernel_version("6.1.0-18-amd64") == std::pair{6, 1});
  CHECK(kernel_version("5.15.0") == std::pair{5, 15});
  CHECK(kernel_version("6.18.44-fc-v769") == std::pair{6, 18});
  CHECK_FALSE(kernel_version("linux"));
  CHECK_FALSE(kernel_version("6"));
  CHECK(kernel_check("6.1.0-18-amd64").status == Status::Ok);
  CHECK(kernel_check("5.13.0").status == Status::Warn);
  auto old = kernel_check("5.10.0-28-amd64");
  CHECK(old.status == Status::Fail);
  CHECK_FALSE(old.fix.empty());
  CHECK(kernel_check("weird").status == Status::Warn);
}

TEST_CASE("doctor: user namespace failures name the sysctl and its fix", "[doctor]") {
  const std::string exe = "/usr/bin/pw";
  SECTION("all steps worked") {
    auto c = userns_verdict({UsernsStep::Done, 0}, {}, exe, false);
    CHECK(c.status == Status::Ok);
    CHECK(c.fix.empty());
    // As root the probe proves nothing about the user.
    CHECK(userns_verdict({UsernsStep::Done, 0}, {}, exe, true).status == Status::Warn);
  }
  SECTION("Debian's unprivileged_userns_clone = 0") {
    UsernsSysctls s;
    s.unprivileged_userns_clone = 0;
    s.max_user_namespaces = 1000;
    auto c = userns_verdict({UsernsStep::Create, EPERM}, s, exe, false);
    CHECK(c.status == Status::Fail);
    CHECK(c.detail.find("kernel.unprivileged_userns_clone is 0") != std::string::npos);
    CHECK(any_fix_has(c, "sysctl -w kernel.unprivileged_userns_clone=1"));
    CHECK(any_fix_has(c, "/etc/sysctl.d/"));
  }
  SECTION("user.max_user_namespaces = 0") {
    UsernsSysctls s;
    s.max_user_namespaces = 0;
    auto c = userns_verdict({UsernsStep::Create, ENOSPC}, s, exe, false);
    CHECK(c.status == Status::Fail);
    CHECK(c.detail.find("user.max_user_namespaces is 0") != std::string::npos);
    CHECK(any_fix_has(c, "sysctl -w user.max_user_namespaces="));
  }
  SECTION("Ubuntu's AppArmor restriction: created, but no capability inside") {
    UsernsSysctls s;
    s.max_user_namespaces = 1000;
    s.apparmor_restrict_unprivileged = 1;
    auto c = userns_verdict({UsernsStep::Mount, EPERM}, s, "/opt/pw/bin/pw", false);
    CHECK(c.status == Status::Fail);
    CHECK(c.detail.find("cannot mount a tmpfs in it") != std::string::npos);
    CHECK(c.detail.find("apparmor_restrict_unprivileged_userns") != std::string::npos);
    // Both ways out: a profile for pw's own path, or the sysctl.
    CHECK(any_fix_has(c, "profile pw /opt/pw/bin/pw flags=(unconfined)"));
    CHECK(any_fix_has(c, "userns,"));
    CHECK(any_fix_has(c, "apparmor_parser -r /etc/apparmor.d/pw"));
    CHECK(any_fix_has(c, "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"));
    // The same restriction is fine when pw is allowed (a profile exists).
    auto ok = userns_verdict({UsernsStep::Done, 0}, s, exe, false);
    CHECK(ok.status == Status::Ok);
    CHECK(ok.detail.find("AppArmor") != std::string::npos);
  }
  SECTION("no sysctl explains it: a container's policy") {
    UsernsSysctls s;
    s.max_user_namespaces = 1000;
    auto c = userns_verdict({UsernsStep::Create, EPERM}, s, exe, false);
    CHECK(c.status == Status::Fail);
    CHECK(any_fix_has(c, "container"));
    auto nokernel = userns_verdict({UsernsStep::Create, EINVAL}, s, exe, false);
    CHECK(any_fix_has(nokernel, "CONFIG_USER_NS"));
  }
}

TEST_CASE("doctor: Landlock ABI and what it gives", "[doctor]") {
  auto v7 = landlock_verdict(7);
  CHECK(v7.status == Status::Ok);
  CHECK(v7.detail.find("ABI 7") != std::string::npos);
  CHECK(v7.detail.find("TCP bind/connect") != std::string::npos);
  CHECK(v7.detail.find("scoping of abstract unix sockets and signals") != std::string::npos);
  auto v3 = landlock_verdict(3);
  CHECK(v3.status == Status::Ok);
  CHECK(v3.detail.find("no network rules (ABI 4") != std::string::npos);
  CHECK(v3.detail.find("no scoping") != std::string::npos);
  auto v4 = landlock_verdict(4);
  CHECK(v4.detail.find("TCP bind/connect") != std::string::npos);
  CHECK(v4.detail.find("no scoping") != std::string::npos);
  auto off = landlock_verdict(-EOPNOTSUPP);
  CHECK(off.status == Status::Warn);
  CHECK(any_fix_has(off, "lsm="));
  auto none = landlock_verdict(-ENOSYS);
  CHECK(none.status == Status::Warn);
  CHECK(any_fix_has(none, "CONFIG_SECURITY_LANDLOCK"));
}

TEST_CASE("doctor: seccomp from /proc/self/status", "[doctor]") {
  const std::string status = "Name:\tpw\nNoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t3\nSpeculation_Store_Bypass:\tx\n";
  auto st = parse_seccomp_status(status);
  CHECK(st.mode == 2);
  CHECK(st.filters == 3);
  auto c = seccomp_verdict(st, 0);
  CHECK(c.status == Status::Ok);
  CHECK(c.detail.find("3 filter(s)") != std::string::npos);
  CHECK(seccomp_verdict(parse_seccomp_status("Seccomp:\t0\n"), 0).detail == "filter mode available");
  CHECK(seccomp_verdict(parse_seccomp_status("Name:\tpw\n"), 0).status == Status::Fail);
  CHECK(seccomp_verdict(parse_seccomp_status("Seccomp:\t0\n"), EINVAL).status == Status::Fail);
}

TEST_CASE("doctor: cgroup2 mount and path", "[doctor]") {
  const std::string hybrid =
      "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
      "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n";
  CHECK(cgroup2_mount(hybrid) == "/sys/fs/cgroup/unified");
  const std::string unified =
      "25 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
      "28 24 0:24 / /sys/fs/cgroup rw,nosuid shared:4 master:1 - cgroup2 cgroup2 rw,nsdelegate\n";
  CHECK(cgroup2_mount(unified) == "/sys/fs/cgroup");
  CHECK(cgroup2_mount("40 30 0:37 / /mnt/my\\040cg rw - cgroup2 none rw\n") == "/mnt/my cg");
  CHECK_FALSE(cgroup2_mount("31 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"));
  CHECK_FALSE(cgroup2_mount("garbage\n\n- cgroup2\n"));
  CHECK(cgroup2_path("1:name=systemd:/x\n0::/user.slice/user-1000.slice/session-2.scope\n") ==
        "/user.slice/user-1000.slice/session-2.scope");
  CHECK_FALSE(cgroup2_path("4:memory:/x\n"));
}

TEST_CASE("doctor: lines are plain, with fixes under failures", "[doctor]") {
  Check c{Status::Fail, "profile x", "f.toml:1:2: bad", {"edit it", "then retry"}};
  CHECK(render(c, false) == "FAIL  profile x: f.toml:1:2: bad\n      fix: edit it\n           then retry\n");
  CHECK(render({Status::Ok, "seccomp", "fine", {}}, false) == "ok    seccomp: fine\n");
  // Colour only on request (a terminal): escape codes never reach a pipe.
  CHECK(render(c, true).find("\033[") != std::string::npos);
  CHECK(render(c, false).find('\033') == std::string::npos);
}

TEST_CASE("doctor: the vault cipher, and vaults this CPU cannot open", "[doctor]") {
  auto ok = vault_cipher_verdict(2, {{"a", 1}, {"b", 2}});
  CHECK(ok.status == Status::Ok);
  CHECK(ok.detail == "new vaults: fusevault format 2, AES-256-GCM, a key per write session");
  CHECK(vault_cipher_verdict(1, {{"a", 1}}).status == Status::Ok);
  CHECK(vault_cipher_verdict(1, {}).detail == "new vaults: fusevault format 1, XChaCha20-Poly1305, random nonces");
  // Without AES-GCM a format-2 vault is out of reach: named, with what to do.
  auto bad = vault_cipher_verdict(1, {{"a", 1}, {"okb", 2}});
  CHECK(bad.status == Status::Fail);
  CHECK(bad.detail.find("the vault of okb is format 2 (AES-256-GCM") != std::string::npos);
  CHECK(bad.detail.find("vault of a ") == std::string::npos);
  REQUIRE(bad.fix.size() == 1);
  CHECK(bad.fix[0].find("AES-NI") != std::string::npos);
}
