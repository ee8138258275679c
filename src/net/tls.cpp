#include "net/tls.hpp"

#include <vector>

namespace pw::net {
namespace {

constexpr std::uint8_t kHandshakeRecord = 22;
constexpr std::uint8_t kClientHelloType = 1;
constexpr std::uint16_t kExtServerName = 0;
constexpr std::uint16_t kExtEch = 0xfe0d;   // draft-ietf-tls-esni encrypted_client_hello
constexpr std::uint16_t kExtEsni = 0xffce;  // the older encrypted_server_name
constexpr std::size_t kMaxRecord = (1u << 14) + 2048;  // TLSCiphertext bound (RFC 8446 §5.2)

// A bounds-checked big-endian reader over a byte span.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> d) : d_(d) {}
  bool u8(std::uint8_t& v) {
    if (left() < 1) return false;
    v = d_[pos_++];
    return true;
  }
  bool u16(std::uint16_t& v) {
    if (left() < 2) return false;
    v = static_cast<std::uint16_t>((d_[pos_] << 8) | d_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool u24(std::uint32_t& v) {
    if (left() < 3) return false;
    v = (std::uint32_t{d_[pos_]} << 16) | (std::uint32_t{d_[pos_ + 1]} << 8) | d_[pos_ + 2];
    pos_ += 3;
    return true;
  }
  bool bytes(std::size_t n, std::span<const std::uint8_t>& out) {
    if (left() < n) return false;
    out = d_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool skip(std::size_t n) {
    if (left() < n) return false;
    pos_ += n;
    return true;
  }
  // A vector with a length prefix of `width` bytes.
  bool vec(int width, std::span<const std::uint8_t>& out) {
    std::size_t n = 0;
    if (width == 1) {
      std::uint8_t v;
      if (!u8(v)) return false;
      n = v;
    } else {
      std::uint16_t v;
      if (!u16(v)) return false;
      n = v;
    }
    return bytes(n, out);
  }
  std::size_t left() const { return d_.size() - pos_; }

 private:
  std::span<const std::uint8_t> d_;
  std::size_t pos_ = 0;
};

ClientHello malformed(std::string why) {
  ClientHello h;
  h.status = HelloStatus::Malformed;
  h.error = std::move(why);
  return h;
}

ClientHello parse_body(std::span<const std::uint8_t> body) {
  Reader r(body);
  std::uint16_t version;
  std::span<const std::uint8_t> skip;
  if (!r.u16(version) || !r.skip(32)) return malformed("ClientHello too short");
  if ((version >> 8) != 3) return malformed("ClientHello of an unknown protocol version");
  if (!r.vec(1, skip)) return malformed("bad session id");
  if (!r.vec(2, skip) || skip.size() % 2 != 0 || skip.empty()) return malformed("bad cipher suites");
  if (!r.vec(1, skip) || skip.empty()) return malformed("bad compression methods");
  ClientHello h;
  h.status = HelloStatus::Ok;
  if (r.left() == 0) return h;  // no extensions (TLS <= 1.2 allows it): no SNI
  std::span<const std::uint8_t> exts;
  if (!r.vec(2, exts) || r.left() != 0) return malformed("bad extensions block");
  Reader e(exts);
  std::vector<std::uint16_t> seen;
  while (e.left() > 0) {
    std::uint16_t type;
    std::span<const std::uint8_t> data;
    if (!e.u16(type) || !e.vec(2, data)) return malformed("truncated extension");
    for (auto t : seen) {
      if (t == type) return malformed("extension " + std::to_string(type) + " appears twice");
    }
    seen.push_back(type);
    if (type == kExtEch || type == kExtEsni) h.encrypted_hello = true;
    if (type != kExtServerName) continue;
    Reader s(data);
    std::span<const std::uint8_t> list;
    if (!s.vec(2, list) || s.left() != 0 || list.empty()) return malformed("bad server_name list");
    Reader l(list);
    while (l.left() > 0) {
      std::uint8_t name_type;
      std::span<const std::uint8_t> name;
      if (!l.u8(name_type) || !l.vec(2, name)) return malformed("bad server_name entry");
      if (name_type != 0) continue;  // only host_name (0) is defined
      if (h.sni) return malformed("more than one host_name in server_name");
      if (name.empty()) return malformed("empty host_name");
      h.sni = std::string(name.begin(), name.end());
    }
  }
  return h;
}

}  // namespace

ClientHello parse_client_hello(std::span<const std::uint8_t> stream) {
  if (stream.empty()) return {};
  if (stream[0] != kHandshakeRecord) return {HelloStatus::NotTls, {}, false, {}};
  // Reassemble the handshake layer from consecutive handshake records.
  std::vector<std::uint8_t> hs;
  Reader r(stream);
  while (true) {
    if (r.left() < 5) {
      // A record header that could still become TLS: a wrong version byte is decided early,
      // so plain protocols starting with 0x16 are not held for long.
      if (r.left() >= 2 && stream[stream.size() - r.left() + 1] != 3) return {HelloStatus::NotTls, {}, false, {}};
      return {};
    }
    std::uint8_t type = 0;
    std::uint16_t version = 0, len = 0;
    if (!r.u8(type) || !r.u16(version) || !r.u16(len)) return {};
    if (type != kHandshakeRecord) {
      return hs.empty() ? ClientHello{HelloStatus::NotTls, {}, false, {}}
                        : malformed("non-handshake record inside the ClientHello");
    }
    if ((version >> 8) != 3) {
      return hs.empty() ? ClientHello{HelloStatus::NotTls, {}, false, {}}
                        : malformed("bad record version");
    }
    if (len == 0 || len > kMaxRecord) return malformed("bad record length");
    std::span<const std::uint8_t> frag;
    if (!r.bytes(len, frag)) return {};  // NeedMore
    hs.insert(hs.end(), frag.begin(), frag.end());
    if (hs.size() < 4) continue;
    if (hs[0] != kClientHelloType) return malformed("first handshake message is not a ClientHello");
    const std::size_t body = (std::size_t{hs[1]} << 16) | (std::size_t{hs[2]} << 8) | hs[3];
    if (body > kMaxClientHello) return malformed("ClientHello larger than " + std::to_string(kMaxClientHello) + " bytes");
    if (hs.size() < 4 + body) continue;
    return parse_body(std::span<const std::uint8_t>(hs).subspan(4, body));
  }
}

}  // namespace pw::net
