// Network policy (pure): allow entries, host names, IP literals in every spelling, address
// classes, the decision log's line format, and the proxy's HTTP head parsing.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <string>

#include "net/http.hpp"
#include "net/log.hpp"
#include "net/policy.hpp"
#include "net/process.hpp"
#include "net/resolver.hpp"
#include "net_helpers.hpp"

using namespace pw::net;

namespace {

sockaddr_storage addr(const std::string& s) {
  sockaddr_storage ss{};
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, s.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
  } else {
    REQUIRE(::inet_pton(AF_INET6, s.c_str(), &a6->sin6_addr) == 1);
    a6->sin6_family = AF_INET6;
  }
  return ss;
}

std::string entry_error(const std::string& text) {
  std::string err;
  auto e = parse_allow_entry(text, err);
  CHECK_FALSE(e);
  return err;
}

Policy policy(bool allow_private = false) {
  return Policy::from_strings({"api.anthropic.com", "*.npmjs.org", "github.com:22", "Example.ORG."},
                              allow_private);
}

}  // namespace

TEST_CASE("net: allow entries", "[net]") {
  std::string err;
  auto e = parse_allow_entry("api.anthropic.com", err);
  REQUIRE(e);
  CHECK(e->host == "api.anthropic.com");
  CHECK_FALSE(e->wildcard);
  CHECK_FALSE(e->port);
  e = parse_allow_entry("*.NPMJS.org.:8443", err);
  REQUIRE(e);
  CHECK(e->host == "npmjs.org");
  CHECK(e->wildcard);
  CHECK(e->port == 8443);
  CHECK(e->text == "*.NPMJS.org.:8443");

  CHECK(entry_error("").find("empty") != std::string::npos);
  CHECK(entry_error("127.0.0.1").starts_with("IP literals are not allowed"));
  CHECK(entry_error("2130706433").starts_with("IP literals"));
  CHECK(entry_error("[::1]:443").starts_with("IP literals"));
  CHECK(entry_error("::1").starts_with("IP literals"));
  CHECK(entry_error("0x7f000001:80").starts_with("IP literals"));
  CHECK(entry_error("localhost") == "loopback names are never reachable through the proxy");
  CHECK(entry_error("a.localhost") == "loopback names are never reachable through the proxy");
  CHECK(entry_error("*.localhost") == "loopback names are never reachable through the proxy");
  CHECK(entry_error("*.com").find("whole top-level domain") != std::string::npos);
  CHECK(entry_error("*").find("'*'") != std::string::npos);
  CHECK(entry_error("a.*.com").find("'*'") != std::string::npos);
  CHECK(entry_error("github.com:0").starts_with("port must be"));
  CHECK(entry_error("github.com:65536").starts_with("port must be"));
  CHECK(entry_error("github.com:").starts_with("port must be"));
  CHECK(entry_error("github.com:+1").starts_with("port must be"));
  CHECK(entry_error("git hub.com").find("not allowed in a host name") != std::string::npos);
  CHECK(entry_error("a..com") == "empty label in host name");
  CHECK(entry_error("-a.com").find("'-'") != std::string::npos);
  CHECK(entry_error(std::string(64, 'a') + ".com").find("63") != std::string::npos);
  CHECK(entry_error("bücher.de").find("xn--") != std::string::npos);
  // A wildcard suffix must leave room for a name below it (253 bytes in all): fuzz_allowlist
  // found "*." + a 252-byte suffix accepted, an entry no host could ever match.
  const std::string l63(63, 'a');
  const std::string s251 = l63 + "." + l63 + "." + l63 + "." + std::string(59, 'b');
  const std::string s252 = s251 + "b";
  REQUIRE(s251.size() == 251);
  auto w251 = parse_allow_entry("*." + s251, err);
  REQUIRE(w251);
  CHECK(Policy({*w251}, false).decide("x." + s251, 443).allow);
  CHECK(entry_error("*." + s252).find("matches nothing") != std::string::npos);
  CHECK(entry_error("*." + s252 + ".:443").find("matches nothing") != std::string::npos);
  CHECK(parse_allow_entry(s252, err));  // the same name without the wildcard is fine
  CHECK_THROWS_WITH(Policy::from_strings({"ok.com", "1.2.3.4"}, false),
                    Catch::Contains("allow entry \"1.2.3.4\": IP literals"));
}

TEST_CASE("net: IP literals in every spelling", "[net]") {
  for (const char* lit :
       {"127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f000001", "0X7F000001", "0x7f.1",
        "0177.0.0.1", "017700000001", "0x7f.0.0.1", "1.2.3.4.", "169.254.169.254", "0", "0x",
        "::1", "[::1]", "[::ffff:127.0.0.1]", "::ffff:7f00:1", "fe80::1%eth0", "[fe80::1%25eth0]",
        "example.123", "a.b.0x10"}) {
    INFO(lit);
    CHECK(is_ip_literal(lit));
  }
  for (const char* name : {"example.com", "0x.example.com", "123.example.com", "1e100.net",
                           "xn--bcher-kva.de", "a1", "localhost"}) {
    INFO(name);
    CHECK_FALSE(is_ip_literal(name));
  }
}

TEST_CASE("net: host names are normalised and checked", "[net]") {
  std::string err;
  CHECK(normalise_host("API.Anthropic.COM.", err) == "api.anthropic.com");
  CHECK_FALSE(normalise_host("api.anthropic.com..", err));
  CHECK_FALSE(normalise_host(".", err));
  CHECK_FALSE(normalise_host("a b", err));
  CHECK_FALSE(normalise_host(std::string("a\0b", 3), err));
  CHECK_FALSE(normalise_host("a\r\nb", err));
  CHECK(err.find("\\x0d") != std::string::npos);  // the message never carries raw bytes
  CHECK_FALSE(normalise_host(std::string(254, 'a'), err));
  CHECK(normalise_host("under_score.example.com", err));
}

TEST_CASE("net: decisions on names and ports", "[net]") {
  const Policy p = policy();
  auto allow = [&](const std::string& h, std::uint16_t port) { return p.decide(h, port).allow; };
  CHECK(allow("api.anthropic.com", 443));
  CHECK(allow("api.anthropic.com", 80));
  CHECK(allow("API.ANTHROPIC.COM.", 443));  // case and trailing dot
  CHECK_FALSE(allow("api.anthropic.com", 22));
  CHECK(p.decide("api.anthropic.com", 22).reason ==
        "port 22 is not allowed for this host (\"api.anthropic.com\" allows 443 and 80)");
  CHECK_FALSE(allow("anthropic.com", 443));
  CHECK_FALSE(allow("evil-api.anthropic.com", 443));
  CHECK_FALSE(allow("api.anthropic.com.evil.com", 443));
  CHECK(p.decide("evil.com", 443).reason == "not on the allowlist");
  // Wildcards: strictly below the suffix, at any depth, on a label boundary.
  CHECK(allow("registry.npmjs.org", 443));
  CHECK(allow("a.b.npmjs.org", 80));
  CHECK_FALSE(allow("npmjs.org", 443));
  CHECK_FALSE(allow("evilnpmjs.org", 443));
  // An explicit port replaces the defaults.
  CHECK(allow("github.com", 22));
  CHECK_FALSE(allow("github.com", 443));
  CHECK(allow("example.org", 443));
  CHECK_FALSE(allow("example.org", 0));
  // Refusal classes, with their reasons.
  CHECK(p.decide("127.0.0.1", 443).reason == "IP literal; only names on the allowlist are reachable");
  CHECK(p.decide("2130706433", 443).reason.starts_with("IP literal"));
  CHECK(p.decide("[::1]", 443).reason.starts_with("IP literal"));
  CHECK(p.decide("localhost", 443).reason == "loopback name");
  CHECK(p.decide("LOCALHOST.", 443).reason == "loopback name");
  CHECK(p.decide("x.localhost", 443).reason == "loopback name");
  CHECK(p.decide("ip6-localhost", 443).reason == "loopback name");
  CHECK(p.decide("a..b", 443).reason == "invalid host name: empty label in host name");
  CHECK(p.decide("", 443).reason == "empty host");
  // Even an allowlisted name cannot be reached spelled as an address.
  const Policy q = Policy::from_strings({"*.example.com"}, true);
  CHECK_FALSE(q.decide("1.2.3.4", 443).allow);
  CHECK(Policy().decide("api.anthropic.com", 443).reason == "not on the allowlist");
}

TEST_CASE("net: resolved addresses must be public", "[net]") {
  const Policy p = policy();
  for (const char* a :
       {"127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "100.64.0.1", "100.127.255.255", "169.254.169.254", "0.0.0.0", "224.0.0.1", "239.1.1.1",
        "255.255.255.255", "240.0.0.1", "192.0.0.170", "198.18.0.1", "192.0.2.1", "::", "::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
        "::ffff:0:127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "2002:c0a8:101::1", "fc00::1",
        "fd00:ec2::254", "fe80::1", "febf::1", "fec0::1", "ff02::1", "2001:db8::1", "2001::1",
        "100::1"}) {
    INFO(a);
    const Decision d = p.check_addresses({addr(a)});
    CHECK_FALSE(d.allow);
    CHECK(d.reason.find("(allow_private is off)") != std::string::npos);
    CHECK(non_public_reason(addr(a)));
  }
  for (const char* a : {"1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "169.253.0.1",
                        "2606:4700:4700::1111", "::ffff:1.1.1.1", "64:ff9b::808:808", "2002:0808:0808::"}) {
    INFO(a);
    CHECK(p.check_addresses({addr(a)}).allow);
  }
  CHECK(p.check_addresses({addr("169.254.169.254")}).reason ==
        "resolves to 169.254.169.254, link-local (169.254.0.0/16, cloud metadata) (allow_private is off)");
  CHECK(p.check_addresses({addr("::ffff:127.0.0.1")}).reason.find("IPv4-mapped loopback") != std::string::npos);
  // One private address among public ones refuses the name.
  CHECK_FALSE(p.check_addresses({addr("1.1.1.1"), addr("10.0.0.1")}).allow);
  CHECK_FALSE(p.check_addresses({}).allow);
  // allow_private lets tests (and LAN setups) through.
  CHECK(policy(true).check_addresses({addr("127.0.0.1"), addr("::1")}).allow);
}

TEST_CASE("net: log lines cannot be forged", "[net]") {
  const std::string line = format_log_line(1717236000123LL, "evil\"\n2024 \"x:443\" allow:443", Verdict::Deny,
                                           "connect", "not on the allowlist\nforged");
  CHECK(line == "2024-06-01T10:00:00.123Z \"evil\\\"\\x0a2024 \\\"x:443\\\" allow:443\" deny connect "
                "not on the allowlist\\x0aforged\n");
  CHECK(std::count(line.begin(), line.end(), '\n') == 1);
  CHECK(format_log_line(0, "a:1", Verdict::Allow, "http", "ok") == "1970-01-01T00:00:00.000Z \"a:1\" allow http ok\n");
  CHECK(format_log_line(0, "a:1", Verdict::Fail, "connect", "x").find(" fail ") != std::string::npos);
  CHECK(escape("a\\b\x7f\xff") == "a\\\\b\\x7f\\xff");
}

TEST_CASE("net: the log is bounded however many requests a session makes", "[net]") {
  // A client chooses the target: a long one is clipped on its line.
  const std::string huge(16000, 'a');
  const std::string line = format_log_line(0, huge + ":443", Verdict::Deny, "connect", "refused " + huge);
  CHECK(line.size() < 2 * kLogFieldBytes + 200);
  CHECK(line.find("...(16004 bytes)") != std::string::npos);
  CHECK(line.find("...(16008 bytes)") != std::string::npos);

  nettest::TempDir dir;
  const std::filesystem::path p = dir.path() / "net.log", old = dir.path() / "net.log.1";
  {
    NetLog log(p);
    for (int i = 0; i < 3 * static_cast<int>(kLogRotateBytes / 1000); ++i) {
      log.write(huge, Verdict::Deny, "connect", "request " + std::to_string(i));
    }
    log.write("last:443", Verdict::Allow, "connect", "the newest line");
  }
  REQUIRE(std::filesystem::exists(old));
  CHECK(std::filesystem::file_size(p) <= kLogRotateBytes);
  CHECK(std::filesystem::file_size(old) <= kLogRotateBytes);
  CHECK(std::filesystem::file_size(old) > kLogRotateBytes - 2000);
  // A new writer (the next workspace's proxy) goes on from the size it finds.
  const auto before = std::filesystem::file_size(p);
  { NetLog(p).write("next:443", Verdict::Allow, "connect", "ok"); }
  CHECK(std::filesystem::file_size(p) > before);
  // `pw log` shows the rotated part first, the newest line last.
  ::setenv("XDG_STATE_HOME", dir.path().c_str(), 1);
  const std::filesystem::path ws = dir.path() / "pw" / "w";
  std::filesystem::create_directories(ws);
  std::filesystem::rename(p, ws / "net.log");
  std::filesystem::rename(old, ws / "net.log.1");
  std::FILE* out = std::tmpfile();
  REQUIRE(print_log("w", out) == 0);
  std::rewind(out);
  std::string all;
  char buf[65536];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, out)) > 0;) all.append(buf, n);
  std::fclose(out);
  ::unsetenv("XDG_STATE_HOME");
  CHECK(all.size() == std::filesystem::file_size(ws / "net.log") + std::filesystem::file_size(ws / "net.log.1"));
  CHECK(all.rfind("the newest line") > all.rfind("request "));
  CHECK(all.substr(all.size() - 30).find("next:443") != std::string::npos);
}

TEST_CASE("net: log path follows XDG_STATE_HOME", "[net]") {
  const char* old = std::getenv("XDG_STATE_HOME");
  const std::string saved = old ? old : "";
  ::setenv("XDG_STATE_HOME", "/st", 1);
  CHECK(log_path("okb-llm") == "/st/pw/okb-llm/net.log");
  ::setenv("XDG_STATE_HOME", "relative", 1);
  const std::string home = std::getenv("HOME") ? std::getenv("HOME") : "/";
  CHECK(log_path("okb-llm") == std::filesystem::path(home) / ".local/state/pw/okb-llm/net.log");
  if (old) ::setenv("XDG_STATE_HOME", saved.c_str(), 1); else ::unsetenv("XDG_STATE_HOME");
}

TEST_CASE("net: session environment points every client at the proxy", "[net]") {
  const auto env = proxy_env(3128);
  REQUIRE(env.size() == 8);
  for (const char* n : {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"}) {
    INFO(n);
    CHECK(std::find(env.begin(), env.end(), std::pair<std::string, std::string>{n, "http://127.0.0.1:3128"}) != env.end());
  }
  CHECK(std::find(env.begin(), env.end(), std::pair<std::string, std::string>{"NO_PROXY", "localhost,127.0.0.1,::1"}) != env.end());
  CHECK(std::find(env.begin(), env.end(), std::pair<std::string, std::string>{"no_proxy", "localhost,127.0.0.1,::1"}) != env.end());
}

TEST_CASE("net: test resolver table", "[net]") {
  std::string err;
  auto t = parse_resolve_override("a.test=127.0.0.1,a.test=::1,,b.test=10.0.0.1", err);
  REQUIRE(t);
  CHECK(t->at("a.test") == std::vector<std::string>{"127.0.0.1", "::1"});
  CHECK_FALSE(parse_resolve_override("a.test", err));
  CHECK_FALSE(parse_resolve_override("a.test=localhost", err));
  Resolver r(1, t);
  CHECK(r.resolve(1, "a.test", 443).addrs.size() == 2);
  CHECK(r.resolve(1, "c.test", 443).error == "not in the test resolver table");
}

TEST_CASE("net: proxy request heads", "[net]") {
  auto p = parse_request_head("CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: api.anthropic.com:443\r\n\r\nextra");
  REQUIRE(p.status == ParseResult::Ok);
  CHECK(p.req.connect);
  CHECK(p.req.host == "api.anthropic.com");
  CHECK(p.req.port == 443);
  CHECK(p.head_size == std::string("CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: api.anthropic.com:443\r\n\r\n").size());

  CHECK(parse_request_head("CONNECT api.anthropic.com:443 HTTP/1.1\r\n").status == ParseResult::NeedMore);
  CHECK(parse_request_head("CONNECT [::1]:443 HTTP/1.1\r\n\r\n").req.host == "[::1]");
  CHECK(parse_request_head("CONNECT api.anthropic.com HTTP/1.1\r\n\r\n").error == "CONNECT needs host:port");
  CHECK(parse_request_head("CONNECT a.com:99999 HTTP/1.1\r\n\r\n").status == ParseResult::Bad);
  CHECK(parse_request_head("CONNECT a.com:443 HTTP/2\r\n\r\n").http_status == 505);
  CHECK(parse_request_head("CONNECT a.com:443 HTTP/1.1\r\nX: a\nb\r\n\r\n").error == "bare CR or LF in the request head");
  CHECK(parse_request_head("CONNECT a.com:443 HTTP/1.1\r\n folded\r\n\r\n").status == ParseResult::Bad);
  CHECK(parse_request_head(std::string(kMaxRequestHead, 'a')).http_status == 431);

  p = parse_request_head("GET http://Example.com:8080/a/b?c=d#frag HTTP/1.1\r\nHost: evil.com\r\n"
                         "Proxy-Connection: keep-alive\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
                         "Proxy-Authorization: secret\r\nAccept: */*\r\nContent-Length: 3\r\n\r\nabc");
  REQUIRE(p.status == ParseResult::Ok);
  CHECK_FALSE(p.req.connect);
  CHECK(p.req.host == "Example.com");
  CHECK(p.req.port == 8080);
  CHECK(p.req.origin_target == "/a/b?c=d");
  CHECK(p.req.content_length == 3);
  CHECK(origin_request_head(p.req) ==
        "GET /a/b?c=d HTTP/1.1\r\nHost: Example.com:8080\r\nAccept: */*\r\nContent-Length: 3\r\n"
        "Connection: close\r\n\r\n");
  p = parse_request_head("GET http://example.com HTTP/1.0\r\n\r\n");
  CHECK(p.req.port == 80);
  CHECK(p.req.origin_target == "/");
  CHECK(origin_request_head(p.req) == "GET / HTTP/1.0\r\nHost: example.com\r\nConnection: close\r\n\r\n");
  CHECK(parse_request_head("GET http://example.com?q HTTP/1.1\r\n\r\n").req.origin_target == "/?q");

  CHECK(parse_request_head("GET http://allowed.com@evil.com/ HTTP/1.1\r\n\r\n").error ==
        "user info in the URI is not accepted");
  CHECK(parse_request_head("GET https://a.com/ HTTP/1.1\r\n\r\n").error.find("CONNECT") != std::string::npos);
  CHECK(parse_request_head("GET / HTTP/1.1\r\nHost: a.com\r\n\r\n").error.starts_with("not a proxy request"));
  CHECK(parse_request_head("POST http://a.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").http_status == 501);
  CHECK(parse_request_head("POST http://a.com/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").error ==
        "conflicting Content-Length headers");
  CHECK(parse_request_head("POST http://a.com/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n").error == "malformed Content-Length");

  const std::string r = refusal_response(403, "not on the allowlist\r\nSet-Cookie: x");
  CHECK(r.starts_with("HTTP/1.1 403 Forbidden\r\n"));
  CHECK(r.find("X-Pw-Refused: not on the allowlist\\x0d\\x0aSet-Cookie: x\r\n") != std::string::npos);
  CHECK(r.ends_with("\r\n\r\npw: refused: not on the allowlist\\x0d\\x0aSet-Cookie: x\n"));
}
