// The network policy's parsers: `[network] allow` entries and the host names a client
// sends. Beyond not crashing: an accepted entry is normalised, admits exactly what it names
// (a name below a wildcard, on its port or the default ones) and parses again to itself;
// refusals and log text stay one printable line.
#include <cstdint>
#include <string>
#include <string_view>

#include "common.hpp"
#include "net/policy.hpp"

using namespace pw::net;

namespace {

bool printable_line(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

void check_entry(const AllowEntry& e) {
  std::string err;
  FUZZ_ASSERT(!e.host.empty());
  auto n = normalise_host(e.host, err);
  FUZZ_ASSERT(n && *n == e.host);
  FUZZ_ASSERT(!is_ip_literal(e.host));
  FUZZ_ASSERT(!is_loopback_name(e.host));
  if (e.port) FUZZ_ASSERT(*e.port != 0);

  const Policy p({e}, false);
  const std::uint16_t port = e.port.value_or(443);
  const std::string name = e.wildcard ? "x." + e.host : e.host;
  // What the entry names is reachable, as the client may spell it (case, trailing dot).
  FUZZ_ASSERT(p.decide(name, port).allow);
  std::string upper = name;
  for (char& c : upper) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  FUZZ_ASSERT(p.decide(upper + ".", port).allow);
  if (!e.port) FUZZ_ASSERT(p.decide(name, 80).allow);
  // ... and nothing next to it: another port, the wildcard's own domain, a look-alike.
  FUZZ_ASSERT(!p.decide(name, e.port ? static_cast<std::uint16_t>(*e.port == 1 ? 2 : 1) : 22).allow);
  if (e.wildcard) FUZZ_ASSERT(!p.decide(e.host, port).allow);
  FUZZ_ASSERT(!p.decide("x" + e.host, port).allow);

  auto again = parse_allow_entry(e.text, err);
  FUZZ_ASSERT(again && *again == e);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string err;
  if (auto e = parse_allow_entry(text, err)) {
    check_entry(*e);
  } else {
    FUZZ_ASSERT(!err.empty());
    FUZZ_ASSERT(printable_line(err));
  }

  // The same bytes as a client's host name, against a small policy.
  static const Policy policy = Policy::from_strings(
      {"api.anthropic.com", "*.githubusercontent.com:443", "registry.npmjs.org:8443"}, false);
  const Decision d = policy.decide(text, 443);
  FUZZ_ASSERT(printable_line(d.reason));
  if (d.allow) {
    auto n = normalise_host(text, err);
    FUZZ_ASSERT(n && !is_ip_literal(text));
  }
  (void)is_ip_literal(text);
  FUZZ_ASSERT(printable_line(escape(text)));
  return 0;
}
