#include "net/policy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace pw::net {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

// "a.b." -> "a.b"; only one dot: "a.." stays invalid.
std::string_view strip_trailing_dot(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return s;
}

bool name_matches(const AllowEntry& e, std::string_view host) {
  if (!e.wildcard) return host == e.host;
  // "*.example.com" matches "a.example.com" and "a.b.example.com", not "example.com" and
  // not "badexample.com".
  return host.size() > e.host.size() + 1 && host.ends_with(e.host) &&
         host[host.size() - e.host.size() - 1] == '.';
}

bool port_matches(const AllowEntry& e, std::uint16_t port) {
  if (e.port) return port == *e.port;
  return port == 443 || port == 80;
}

std::optional<std::string> v4_reason(std::uint32_t a) {
  auto in = [a](std::uint32_t net, int bits) {
    const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
    return (a & mask) == net;
  };
  if (in(0x00000000, 8)) return "unspecified (0.0.0.0/8)";
  if (in(0x7f000000, 8)) return "loopback (127.0.0.0/8)";
  if (in(0x0a000000, 8) || in(0xac100000, 12) || in(0xc0a80000, 16)) return "private (RFC 1918)";
  if (in(0x64400000, 10)) return "shared address space (CGNAT, 100.64.0.0/10)";
  if (in(0xa9fe0000, 16)) return "link-local (169.254.0.0/16, cloud metadata)";
  if (in(0xc0000000, 24)) return "IETF protocol assignments (192.0.0.0/24)";
  if (in(0xc0000200, 24) || in(0xc6336400, 24) || in(0xcb007100, 24)) return "documentation range";
  if (in(0xc6120000, 15)) return "benchmarking (198.18.0.0/15)";
  if (in(0xe0000000, 4)) return "multicast (224.0.0.0/4)";
  if (in(0xf0000000, 4)) return "reserved (240.0.0.0/4)";
  return std::nullopt;
}

std::uint32_t v4_at(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

std::optional<std::string> v6_reason(const std::uint8_t* b) {
  auto zero = [b](int from, int to) {
    for (int i = from; i < to; ++i) {
      if (b[i] != 0) return false;
    }
    return true;
  };
  auto embedded = [](const char* what, std::uint32_t v4) -> std::optional<std::string> {
    if (auto r = v4_reason(v4)) return std::string(what) + " " + *r;
    return std::nullopt;
  };
  if (zero(0, 16)) return "unspecified (::)";
  if (zero(0, 15) && b[15] == 1) return "loopback (::1)";
  if (zero(0, 10) && b[10] == 0xff && b[11] == 0xff) return embedded("IPv4-mapped", v4_at(b + 12));
  // ::ffff:0:a.b.c.d (SIIT) and ::a.b.c.d (deprecated IPv4-compatible): nothing public
  // is reached that way, and a stack might route them to the embedded IPv4 address.
  if (zero(0, 8) && b[8] == 0xff && b[9] == 0xff && zero(10, 12)) return "IPv4-translated (::ffff:0:0/96)";
  if (zero(0, 12)) return "IPv4-compatible (::/96, deprecated)";
  if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) {
    if (zero(4, 12)) return embedded("NAT64", v4_at(b + 12));
    if (b[4] == 0 && b[5] == 1) return "local-use NAT64 (64:ff9b:1::/48)";
  }
  if (b[0] == 0x20 && b[1] == 0x02) return embedded("6to4", v4_at(b + 2));
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) return "Teredo (2001::/32)";
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return "documentation (2001:db8::/32)";
  if (b[0] == 0x01 && zero(1, 8)) return "discard-only (100::/64)";
  if ((b[0] & 0xfe) == 0xfc) return "unique local (fc00::/7)";
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return "link-local (fe80::/10)";
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return "site-local (fec0::/10, deprecated)";
  if (b[0] == 0xff) return "multicast (ff00::/8)";
  if (b[0] == 0) return "reserved (::/8)";
  return std::nullopt;
}

}  // namespace

std::string escape(std::string_view text) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

bool is_ip_literal(std::string_view host) {
  if (host.empty()) return false;
  // Names never contain ':' or brackets; every IPv6 form (with zone, bracketed, mapped) does.
  if (host.find_first_of(":[]%") != std::string_view::npos) return true;
  host = strip_trailing_dot(host);
  if (host.empty()) return false;
  // The URL standard's "ends in a number": the last label decides, so 127.1, 0x7f.1,
  // 2130706433, 0177.0.0.1 and 1.2.3.4 are all addresses to someone's parser.
  std::string_view last = host.substr(host.rfind('.') == std::string_view::npos ? 0 : host.rfind('.') + 1);
  if (last.empty()) return false;
  if (std::all_of(last.begin(), last.end(), is_digit)) return true;
  if (last.size() >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') &&
      std::all_of(last.begin() + 2, last.end(), is_hex)) {
    return true;
  }
  // Belt and braces: whatever the C library's own parsers take.
  const std::string s(host);
  struct in_addr a4;
  struct in6_addr a6;
  return ::inet_aton(s.c_str(), &a4) != 0 || ::inet_pton(AF_INET6, s.c_str(), &a6) == 1;
}

std::optional<std::string> normalise_host(std::string_view host, std::string& err) {
  std::string_view h = strip_trailing_dot(host);
  if (h.empty()) {
    err = "empty host name";
    return std::nullopt;
  }
  if (h.size() > 253) {
    err = "host name longer than 253 bytes";
    return std::nullopt;
  }
  std::string out = to_lower(h);
  std::size_t label = 0;
  for (std::size_t i = 0; i <= out.size(); ++i) {
    if (i == out.size() || out[i] == '.') {
      const std::string_view l = std::string_view(out).substr(label, i - label);
      if (l.empty()) {
        err = "empty label in host name";
        return std::nullopt;
      }
      if (l.size() > 63) {
        err = "label longer than 63 bytes in host name";
        return std::nullopt;
      }
      if (l.front() == '-' || l.back() == '-') {
        err = "label starts or ends with '-' in host name";
        return std::nullopt;
      }
      label = i + 1;
      continue;
    }
    const char c = out[i];
    const bool ok = (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_';
    if (!ok) {
      err = "character '" + escape(std::string_view(&out[i], 1)) +
            "' is not allowed in a host name (write international names as xn--...)";
      return std::nullopt;
    }
  }
  return out;
}

bool is_loopback_name(std::string_view h) {
  return h == "localhost" || h.ends_with(".localhost") || h == "ip6-localhost" ||
         h == "ip6-loopback" || h == "localhost.localdomain";
}

std::optional<AllowEntry> parse_allow_entry(std::string_view text, std::string& err) {
  AllowEntry e;
  e.text = std::string(text);
  std::string_view host = text;
  if (text.empty()) {
    err = "empty entry";
    return std::nullopt;
  }
  if (text.front() == '[' || std::count(text.begin(), text.end(), ':') > 1) {
    err = "IP literals are not allowed; name a host (the proxy resolves it and checks the address)";
    return std::nullopt;
  }
  if (auto colon = text.find(':'); colon != std::string_view::npos) {
    host = text.substr(0, colon);
    const std::string_view port = text.substr(colon + 1);
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit)) {
      err = "port must be a number 1-65535, got '" + escape(port) + "'";
      return std::nullopt;
    }
    const unsigned long p = std::stoul(std::string(port));
    if (p == 0 || p > 65535) {
      err = "port must be a number 1-65535, got '" + escape(port) + "'";
      return std::nullopt;
    }
    e.port = static_cast<std::uint16_t>(p);
  }
  if (host.starts_with("*.")) {
    e.wildcard = true;
    host.remove_prefix(2);
  }
  if (host.find('*') != std::string_view::npos) {
    err = "'*' is only allowed as a whole first label, as in \"*.example.com\"";
    return std::nullopt;
  }
  if (is_ip_literal(host)) {
    err = "IP literals are not allowed; name a host (the proxy resolves it and checks the address)";
    return std::nullopt;
  }
  std::string herr;
  auto n = normalise_host(host, herr);
  if (!n) {
    err = herr;
    return std::nullopt;
  }
  if (is_loopback_name(*n) || (e.wildcard && *n == "localhost")) {
    err = "loopback names are never reachable through the proxy";
    return std::nullopt;
  }
  if (e.wildcard && n->find('.') == std::string::npos) {
    err = "\"*." + *n + "\" would allow a whole top-level domain; name a domain below it";
    return std::nullopt;
  }
  // A name strictly below the suffix needs a label and a dot more, within 253 bytes: a longer
  // suffix is an entry that can never match (found by fuzzing).
  if (e.wildcard && n->size() > 251) {
    err = "\"*.suffix\" with a suffix of " + std::to_string(n->size()) +
          " bytes matches nothing: a name below it would exceed 253 bytes";
    return std::nullopt;
  }
  e.host = *n;
  return e;
}

Policy Policy::from_strings(const std::vector<std::string>& allow, bool allow_private) {
  std::vector<AllowEntry> entries;
  for (const auto& s : allow) {
    std::string err;
    auto e = parse_allow_entry(s, err);
    if (!e) throw std::invalid_argument("allow entry \"" + escape(s) + "\": " + err);
    entries.push_back(*e);
  }
  return Policy(std::move(entries), allow_private);
}

Decision Policy::decide(std::string_view host, std::uint16_t port) const {
  if (host.empty()) return {false, "empty host"};
  if (is_ip_literal(host)) return {false, "IP literal; only names on the allowlist are reachable"};
  std::string err;
  auto h = normalise_host(host, err);
  if (!h) return {false, "invalid host name: " + err};
  if (is_loopback_name(*h)) return {false, "loopback name"};
  if (port == 0) return {false, "port 0"};
  const AllowEntry* name_only = nullptr;
  for (const auto& e : allow_) {
    if (!name_matches(e, *h)) continue;
    if (port_matches(e, port)) return {true, "matches \"" + escape(e.text) + "\""};
    if (!name_only) name_only = &e;
  }
  if (name_only) {
    return {false, "port " + std::to_string(port) + " is not allowed for this host (\"" +
                       escape(name_only->text) + "\" allows " +
                       (name_only->port ? std::to_string(*name_only->port) : "443 and 80") + ")"};
  }
  return {false, "not on the allowlist"};
}

std::optional<std::string> non_public_reason(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    return v4_reason(ntohl(a->sin_addr.s_addr));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    return v6_reason(a->sin6_addr.s6_addr);
  }
  return "not an IP address";
}

std::string address_string(const sockaddr_storage& addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr, buf, sizeof buf);
  } else if (addr.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr, buf, sizeof buf);
  } else {
    return "?";
  }
  return buf;
}

Decision Policy::check_addresses(const std::vector<sockaddr_storage>& addrs) const {
  if (addrs.empty()) return {false, "the name has no address"};
  for (const auto& a : addrs) {
    auto r = non_public_reason(a);
    if (r && !allow_private_) {
      return {false, "resolves to " + address_string(a) + ", " + *r + " (allow_private is off)"};
    }
  }
  return {true, "resolves to " + address_string(addrs.front())};
}

}  // namespace pw::net
