// The proxy's HTTP/1.1 side: parsing a request head (CONNECT authority-form, or an
// absolute-URI request for plain http), rewriting the latter for the origin server, and
// the refusal responses. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pw::net {

constexpr std::size_t kMaxRequestHead = 16 * 1024;

struct Request {
  std::string method;   // "CONNECT", "GET", ...
  std::string host;     // as written in the request target (not normalised)
  std::uint16_t port = 0;
  bool connect = false;
  std::string origin_target;  // absolute-URI requests: path and query ("/" at least)
  std::string version;        // "HTTP/1.1" or "HTTP/1.0"
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
  std::uint64_t content_length = 0;
};

struct ParseResult {
  enum Status { NeedMore, Ok, Bad } status = NeedMore;
  Request req;
  std::size_t head_size = 0;  // bytes of the head, including the final CRLFCRLF
  int http_status = 400;      // for Bad: what to answer (400, 413, 501)
  std::string error;          // for Bad: one line
};

// Parses the request head at the start of `data`. NeedMore while no CRLFCRLF is seen and
// fewer than kMaxRequestHead bytes arrived.
ParseResult parse_request_head(std::string_view data);

// The head to send to the origin for an absolute-URI request: origin-form target, Host
// set to the URI's authority (whatever the client wrote: a different Host would let a
// shared front end route the request elsewhere), hop-by-hop and Proxy-* headers dropped,
// "Connection: close" so the origin serves exactly this one request.
std::string origin_request_head(const Request& req);

// A complete response refusing the request: status line, X-Pw-Refused header carrying the
// reason, a one-line text body, Connection: close.
std::string refusal_response(int status, std::string_view reason);

}  // namespace pw::net
