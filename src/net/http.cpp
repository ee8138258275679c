#include "net/http.hpp"

#include <algorithm>
#include <cctype>

#include "net/policy.hpp"

namespace pw::net {
namespace {

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

ParseResult bad(int status, std::string why) {
  ParseResult r;
  r.status = ParseResult::Bad;
  r.http_status = status;
  r.error = std::move(why);
  return r;
}

std::optional<std::uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  unsigned v = 0;
  for (char c : s) v = v * 10 + static_cast<unsigned>(c - '0');
  if (v == 0 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

// "host:port", "host", "[v6]:port" -> host (brackets kept: the policy refuses them) and port.
bool split_authority(std::string_view a, std::string& host, std::uint16_t& port, bool port_required,
                     std::uint16_t default_port, std::string& err) {
  std::string_view h = a, p;
  if (a.starts_with('[')) {
    auto close = a.find(']');
    if (close == std::string_view::npos) {
      err = "unterminated '[' in authority";
      return false;
    }
    h = a.substr(0, close + 1);
    std::string_view rest = a.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') {
        err = "bad authority";
        return false;
      }
      p = rest.substr(1);
    }
  } else if (auto colon = a.rfind(':'); colon != std::string_view::npos) {
    h = a.substr(0, colon);
    p = a.substr(colon + 1);
  }
  if (h.empty()) {
    err = "no host in request target";
    return false;
  }
  if (p.empty() && a.ends_with(':')) {
    err = "empty port";
    return false;
  }
  if (p.empty()) {
    if (port_required) {
      err = "CONNECT needs host:port";
      return false;
    }
    port = default_port;
  } else {
    auto v = parse_port(p);
    if (!v) {
      err = "bad port '" + escape(p) + "'";
      return false;
    }
    port = *v;
  }
  host = std::string(h);
  return true;
}

}  // namespace

ParseResult parse_request_head(std::string_view data) {
  const std::size_t end = data.substr(0, kMaxRequestHead).find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (data.size() >= kMaxRequestHead) return bad(431, "request head larger than 16 KiB");
    return {};
  }
  ParseResult res;
  res.status = ParseResult::Ok;
  res.head_size = end + 4;
  std::string_view head = data.substr(0, end + 2);  // every line ends in CRLF
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    auto eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    if (line.find_first_of("\r\n") != std::string_view::npos) return bad(400, "bare CR or LF in the request head");
    lines.push_back(line);
    head.remove_prefix(eol + 2);
  }
  if (lines.empty()) return bad(400, "empty request");

  // Request line: METHOD SP TARGET SP VERSION.
  std::string_view rl = lines[0];
  auto sp1 = rl.find(' ');
  auto sp2 = rl.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == sp2) return bad(400, "malformed request line");
  std::string_view method = rl.substr(0, sp1), target = rl.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = rl.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), is_tchar)) return bad(400, "malformed method");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return bad(505, "only HTTP/1.0 and HTTP/1.1 are spoken here");
  if (target.empty() || std::any_of(target.begin(), target.end(), [](char c) {
        return static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f;
      })) {
    return bad(400, "malformed request target");
  }
  Request& req = res.req;
  req.method = std::string(method);
  req.version = std::string(version);

  bool have_cl = false, have_te = false;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::string_view l = lines[i];
    if (l.empty() || l[0] == ' ' || l[0] == '\t') return bad(400, "folded or empty header line");
    auto colon = l.find(':');
    if (colon == std::string_view::npos || colon == 0) return bad(400, "header line without a name");
    std::string_view name = l.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_tchar)) return bad(400, "malformed header name");
    std::string_view value = trim(l.substr(colon + 1));
    if (std::any_of(value.begin(), value.end(), [](char c) { return c == '\0'; })) return bad(400, "NUL in a header");
    if (iequals(name, "Content-Length")) {
      auto digits = std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (value.empty() || value.size() > 15 || !digits) return bad(400, "malformed Content-Length");
      const std::uint64_t v = std::stoull(std::string(value));
      if (have_cl && v != req.content_length) return bad(400, "conflicting Content-Length headers");
      have_cl = true;
      req.content_length = v;
    }
    if (iequals(name, "Transfer-Encoding")) have_te = true;
    req.headers.emplace_back(std::string(name), std::string(value));
  }

  std::string err;
  if (method == "CONNECT") {
    req.connect = true;
    if (!split_authority(target, req.host, req.port, true, 443, err)) return bad(400, err);
    return res;
  }
  constexpr std::string_view kHttp = "http://";
  if (target.size() >= 8 && iequals(target.substr(0, 8), "https://")) {
    return bad(400, "https:// URIs go through CONNECT (set HTTPS_PROXY)");
  }
  if (target.size() < kHttp.size() || !iequals(target.substr(0, kHttp.size()), kHttp)) {
    return bad(400, "not a proxy request: expected CONNECT host:port or an absolute http:// URI");
  }
  std::string_view rest = target.substr(kHttp.size());
  const auto auth_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, auth_end);
  if (authority.find('@') != std::string_view::npos) return bad(400, "user info in the URI is not accepted");
  if (!split_authority(authority, req.host, req.port, false, 80, err)) return bad(400, err);
  std::string_view path = auth_end == std::string_view::npos ? std::string_view() : rest.substr(auth_end);
  path = path.substr(0, path.find('#'));
  req.origin_target = (path.empty() || path[0] != '/') ? "/" + std::string(path) : std::string(path);
  if (have_te) {
    return bad(501, "request bodies with Transfer-Encoding are not supported for plain http; send Content-Length");
  }
  return res;
}

std::string origin_request_head(const Request& req) {
  std::string out = req.method + " " + req.origin_target + " " + req.version + "\r\n";
  out += "Host: " + req.host + (req.port == 80 ? "" : ":" + std::to_string(req.port)) + "\r\n";
  // Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
  std::vector<std::string> drop = {"host", "connection", "proxy-connection", "keep-alive",
                                   "proxy-authorization", "proxy-authenticate", "te",
                                   "trailer", "upgrade"};
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  for (const auto& [name, value] : req.headers) {
    if (lower(name) != "connection") continue;
    std::string_view v = value;
    while (!v.empty()) {
      auto comma = v.find(',');
      drop.push_back(lower(std::string(trim(v.substr(0, comma)))));
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  for (const auto& [name, value] : req.headers) {
    if (std::find(drop.begin(), drop.end(), lower(name)) != drop.end()) continue;
    out += name + ": " + value + "\r\n";
  }
  out += "Connection: close\r\n\r\n";
  return out;
}

std::string refusal_response(int status, std::string_view reason) {
  const char* text = "Forbidden";
  switch (status) {
    case 400: text = "Bad Request"; break;
    case 403: text = "Forbidden"; break;
    case 431: text = "Request Header Fields Too Large"; break;
    case 501: text = "Not Implemented"; break;
    case 502: text = "Bad Gateway"; break;
    case 503: text = "Service Unavailable"; break;
    case 504: text = "Gateway Timeout"; break;
    case 505: text = "HTTP Version Not Supported"; break;
    default: break;
  }
  const std::string r = escape(reason);
  const std::string body = "pw: " + std::string(status == 403 ? "refused" : "proxy error") + ": " + r + "\n";
  return "HTTP/1.1 " + std::to_string(status) + " " + text +
         "\r\nContent-Type: text/plain\r\nConnection: close\r\nX-Pw-Refused: " + r +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace pw::net
