// Reading the server name out of the first flight of a TLS connection, without terminating
// TLS: the ClientHello travels in the clear (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) and names
// its server in the server_name extension (RFC 6066 §3). Pure and bounded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace pw::net {

enum class HelloStatus {
  NotTls,     // the stream does not start with a TLS handshake record: not TLS at all
  NeedMore,   // a TLS handshake record has begun; the ClientHello is not complete yet
  Ok,         // a complete ClientHello was parsed
  Malformed,  // it starts like TLS but is not a well-formed ClientHello
};

struct ClientHello {
  HelloStatus status = HelloStatus::NeedMore;
  std::optional<std::string> sni;  // the host_name, as sent (not normalised)
  bool encrypted_hello = false;     // carries encrypted_client_hello (ECH) or the old ESNI
  std::string error;                // for Malformed: what was wrong
};

// The largest ClientHello handshake message accepted (real ones are 0.5-2 KiB; with
// post-quantum key shares under 3 KiB). Larger ones are Malformed, so a buffer of this
// size plus record headers always suffices.
constexpr std::size_t kMaxClientHello = 32 * 1024;

// Parses the start of a client-to-server byte stream. The ClientHello may be split over
// several handshake records; any other record type before it completes is Malformed.
ClientHello parse_client_hello(std::span<const std::uint8_t> stream);

}  // namespace pw::net
