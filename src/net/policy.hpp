// The agent network policy: which host names a session may reach through the proxy, and
// which resolved addresses count as "public". Pure: no syscalls, no DNS; the proxy feeds it
// names from CONNECT lines, URIs and TLS ClientHellos, and the addresses it resolved.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pw::net {

// One `[network] allow` entry: "host", "*.suffix", either with an optional ":port".
struct AllowEntry {
  std::string host;  // normalised (lower case, no trailing dot); for a wildcard, the suffix
  bool wildcard = false;               // "*.suffix": any name strictly below the suffix
  std::optional<std::uint16_t> port;   // none: the default ports 443 and 80
  std::string text;                    // as written, for messages and logs

  bool operator==(const AllowEntry&) const = default;
};

// Parses an allow entry. On failure returns nothing and sets `err` to a one-line reason
// ("IP literals are not allowed: ...", "port must be 1-65535", ...).
std::optional<AllowEntry> parse_allow_entry(std::string_view text, std::string& err);

// Normalises a host name taken from a request: lower case, one trailing dot removed, then
// checked to be a DNS name (labels of [a-z0-9_-], 1-63 bytes, 253 in all, no leading or
// trailing '-'). Returns nothing and sets `err` when it is not.
std::optional<std::string> normalise_host(std::string_view host, std::string& err);

// True if `host` is an IP address literal in any form a resolver or URL parser accepts:
// dotted quad, short forms (127.1), decimal (2130706433), hex (0x7f000001), octal
// (0177.0.0.1), IPv6 with or without brackets, with a zone, v4-mapped. Following the URL
// standard, any name whose last label is numeric or 0x-hex counts: no TLD is numeric.
bool is_ip_literal(std::string_view host);

// localhost, *.localhost (RFC 6761) and Debian's ip6-localhost / ip6-loopback.
bool is_loopback_name(std::string_view normalised_host);

struct Decision {
  bool allow = false;
  std::string reason;  // one line, printable ASCII
};

class Policy {
 public:
  Policy() = default;
  Policy(std::vector<AllowEntry> allow, bool allow_private)
      : allow_(std::move(allow)), allow_private_(allow_private) {}

  // Builds a policy from profile strings; throws std::invalid_argument naming the bad entry.
  static Policy from_strings(const std::vector<std::string>& allow, bool allow_private);

  // May a client reach host:port? `host` is as the client sent it (not yet normalised).
  Decision decide(std::string_view host, std::uint16_t port) const;

  // Are all the addresses a permitted name resolved to public? Refuses the whole name if
  // any address is loopback, private, CGNAT, link-local, ULA, multicast, unspecified or
  // reserved (in any IPv6 form embedding such an IPv4 address), unless allow_private.
  Decision check_addresses(const std::vector<sockaddr_storage>& addrs) const;

  bool allow_private() const { return allow_private_; }
  const std::vector<AllowEntry>& entries() const { return allow_; }

 private:
  std::vector<AllowEntry> allow_;
  bool allow_private_ = false;
};

// Why an address is not public ("loopback", "private (RFC 1918)", ...), or nothing if it is.
std::optional<std::string> non_public_reason(const sockaddr_storage& addr);

// "1.2.3.4" or "2001:db8::1" (no port).
std::string address_string(const sockaddr_storage& addr);

// Makes text safe for one log line or HTTP header: printable ASCII kept, '"' and '\' and
// everything else escaped (\" \\ \xHH). Never contains CR or LF.
std::string escape(std::string_view text);

}  // namespace pw::net
