// TLS ClientHello parsing: real hellos captured from `openssl s_client` (OpenSSL 3.0),
// hand-built ones for the edges, and every truncation of a real one.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "net/tls.hpp"

using namespace pw::net;

namespace {

// openssl s_client -servername api.example.com (TLS 1.3 offer).
const char* kHello13 =
    "160301013c01000138030329960dd1219ade9a5968c2d14641fc3c7abdd73fdbebf33515a3eb4a509161e9201d2c049f"
    "27c2eed7d07041c46ba9a04e31db0c24e531f743bb03afb445c94779003e130213031301c02cc030009fcca9cca8ccaa"
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000b1"
    "00000014001200000f6170692e6578616d706c652e636f6d000b000403000102000a00160014001d0017001e00190018"
    "01000101010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b08040805"
    "0806040105010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d00"
    "203033371ad753ddda5ce279619b6caba8f6b0a9689540c576983c9cbbf7711722";
// openssl s_client -servername api.example.com -tls1_2.
const char* kHello12 =
    "16030100cf010000cb030350bbb1f5564c905624044c54528ee37d95fdeb3fcca5d1686f903e4be876b2fa000038c02c"
    "c030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c"
    "0035002f00ff0100006a00000014001200000f6170692e6578616d706c652e636f6d000b000403000102000a000c000a"
    "001d0017001e00190018002300000016000000170000000d002a0028040305030603080708080809080a080b08040805"
    "0806040105010601030303010302040205020602";
// openssl s_client -noservername.
const char* kHelloNoSni =
    "1603010124010001200303d73fc929697d9312909cd4d71ba9e6f38d367863248dd06ea1218845aab7dfc820295e4d75"
    "8f7c4ff006e1a9c3e1d813470557948ae1db59d87647b00b20e69d37003e130213031301c02cc030009fcca9cca8ccaa"
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff01000099"
    "000b000403000102000a00160014001d0017001e0019001801000101010201030104002300000016000000170000000d"
    "002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602002b0009"
    "080304030303020301002d00020101003300260024001d0020507ef90fbf0f692d35bc1b0dd0c314840440d5040f4239"
    "35ed6b9d0a1779976e";

std::vector<std::uint8_t> unhex(const std::string& h) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<std::uint8_t>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

void put16(std::vector<std::uint8_t>& v, std::size_t n) {
  v.push_back(static_cast<std::uint8_t>(n >> 8));
  v.push_back(static_cast<std::uint8_t>(n));
}

struct Ext {
  std::uint16_t type;
  std::vector<std::uint8_t> data;
};

Ext sni_ext(const std::vector<std::string>& names) {
  std::vector<std::uint8_t> list;
  for (const auto& n : names) {
    list.push_back(0);
    put16(list, n.size());
    list.insert(list.end(), n.begin(), n.end());
  }
  Ext e{0, {}};
  put16(e.data, list.size());
  e.data.insert(e.data.end(), list.begin(), list.end());
  return e;
}

// A ClientHello body with the given extensions, wrapped in records of at most `frag` bytes.
std::vector<std::uint8_t> hello(const std::vector<Ext>& exts, std::size_t frag = 16384) {
  std::vector<std::uint8_t> body = {3, 3};
  body.insert(body.end(), 32, 0xaa);  // random
  body.push_back(0);                  // session id
  put16(body, 2);
  body.push_back(0x13);
  body.push_back(0x01);
  body.push_back(1);
  body.push_back(0);  // compression: null
  std::vector<std::uint8_t> e;
  for (const auto& x : exts) {
    put16(e, x.type);
    put16(e, x.data.size());
    e.insert(e.end(), x.data.begin(), x.data.end());
  }
  put16(body, e.size());
  body.insert(body.end(), e.begin(), e.end());
  std::vector<std::uint8_t> hs = {1, static_cast<std::uint8_t>(body.size() >> 16),
                                  static_cast<std::uint8_t>(body.size() >> 8), static_cast<std::uint8_t>(body.size())};
  hs.insert(hs.end(), body.begin(), body.end());
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < hs.size(); i += frag) {
    const std::size_t n = std::min(frag, hs.size() - i);
    out.push_back(22);
    out.push_back(3);
    out.push_back(1);
    put16(out, n);
    out.insert(out.end(), hs.begin() + static_cast<long>(i), hs.begin() + static_cast<long>(i + n));
  }
  return out;
}

}  // namespace

TEST_CASE("net tls: real ClientHellos from openssl s_client", "[net][tls]") {
  for (const char* hex : {kHello13, kHello12}) {
    const auto b = unhex(hex);
    const ClientHello h = parse_client_hello(b);
    REQUIRE(h.status == HelloStatus::Ok);
    CHECK(h.sni == "api.example.com");
    CHECK_FALSE(h.encrypted_hello);
    // Every proper prefix asks for more; none is mistaken for a complete or bad hello.
    for (std::size_t n = 1; n < b.size(); ++n) {
      INFO(n);
      CHECK(parse_client_hello(std::span(b).first(n)).status == HelloStatus::NeedMore);
    }
    // Bytes after the hello (a following record) do not matter.
    auto more = b;
    more.insert(more.end(), {0x14, 3, 3, 0, 1, 1});
    CHECK(parse_client_hello(more).sni == "api.example.com");
  }
  const ClientHello none = parse_client_hello(unhex(kHelloNoSni));
  CHECK(none.status == HelloStatus::Ok);
  CHECK_FALSE(none.sni);
}

TEST_CASE("net tls: hand-built ClientHellos", "[net][tls]") {
  CHECK(parse_client_hello(hello({sni_ext({"a.example.com"})})).sni == "a.example.com");
  // Split over many small records (legal; some clients and middleboxes do it).
  const auto split = hello({sni_ext({"a.example.com"}), Ext{0x1234, std::vector<std::uint8_t>(300, 7)}}, 17);
  CHECK(parse_client_hello(split).sni == "a.example.com");
  for (std::size_t n = 1; n < split.size(); ++n) {
    INFO(n);
    REQUIRE(parse_client_hello(std::span(split).first(n)).status == HelloStatus::NeedMore);
  }
  // No extensions at all.
  auto h = parse_client_hello(hello({}));
  CHECK(h.status == HelloStatus::Ok);
  CHECK_FALSE(h.sni);
  // ECH / ESNI are flagged.
  CHECK(parse_client_hello(hello({sni_ext({"public.example"}), Ext{0xfe0d, {0, 1, 2}}})).encrypted_hello);
  CHECK(parse_client_hello(hello({Ext{0xffce, {0}}})).encrypted_hello);
  // Malformed: two host names, a repeated extension, an empty name, a truncated list.
  CHECK(parse_client_hello(hello({sni_ext({"a.com", "b.com"})})).status == HelloStatus::Malformed);
  CHECK(parse_client_hello(hello({sni_ext({"a.com"}), sni_ext({"b.com"})})).status == HelloStatus::Malformed);
  CHECK(parse_client_hello(hello({sni_ext({""})})).status == HelloStatus::Malformed);
  CHECK(parse_client_hello(hello({Ext{0, {0, 9, 0}}})).status == HelloStatus::Malformed);
  // Oversized: the claimed length alone decides, before the bytes arrive.
  std::vector<std::uint8_t> big = {22, 3, 1, 0, 4, 1, 0x01, 0x00, 0x00};
  CHECK(parse_client_hello(big).status == HelloStatus::Malformed);
  // A different handshake message first.
  std::vector<std::uint8_t> sh = {22, 3, 3, 0, 4, 2, 0, 0, 0};
  CHECK(parse_client_hello(sh).status == HelloStatus::Malformed);
  // An alert record in the middle of a fragmented hello.
  auto mid = std::vector<std::uint8_t>(split.begin(), split.begin() + 22);
  mid.insert(mid.end(), {21, 3, 3, 0, 2, 2, 40});
  CHECK(parse_client_hello(mid).status == HelloStatus::Malformed);
}

TEST_CASE("net tls: plain protocols are not TLS", "[net][tls]") {
  auto bytes = [](const std::string& s) { return std::vector<std::uint8_t>(s.begin(), s.end()); };
  CHECK(parse_client_hello(bytes("GET / HTTP/1.1\r\n")).status == HelloStatus::NotTls);
  CHECK(parse_client_hello(bytes("SSH-2.0-OpenSSH_9.2\r\n")).status == HelloStatus::NotTls);
  CHECK(parse_client_hello(std::vector<std::uint8_t>{0x16, 0x41}).status == HelloStatus::NotTls);
  CHECK(parse_client_hello(std::vector<std::uint8_t>{0x16}).status == HelloStatus::NeedMore);
  CHECK(parse_client_hello(std::vector<std::uint8_t>{}).status == HelloStatus::NeedMore);
}
