#include "net/ssh_agent.hpp"

#include <sodium.h>

#include <algorithm>

namespace pw::net::agent {
namespace {

bool read_u32(std::span<const std::uint8_t>& d, std::uint32_t& v) {
  if (d.size() < 4) return false;
  v = (std::uint32_t{d[0]} << 24) | (std::uint32_t{d[1]} << 16) | (std::uint32_t{d[2]} << 8) | d[3];
  d = d.subspan(4);
  return true;
}

bool read_string(std::span<const std::uint8_t>& d, std::span<const std::uint8_t>& out) {
  std::uint32_t n;
  if (!read_u32(d, n) || d.size() < n) return false;
  out = d.subspan(0, n);
  d = d.subspan(n);
  return true;
}

void put_u32(std::string& out, std::uint32_t v) {
  out += static_cast<char>(v >> 24);
  out += static_cast<char>(v >> 16);
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v);
}

const char* request_name(std::uint8_t type) {
  switch (type) {
    case 1: return "list keys (protocol 1)";
    case 3: return "sign (protocol 1)";
    case 7: return "add key (protocol 1)";
    case 8: return "remove key (protocol 1)";
    case 9: return "remove all keys (protocol 1)";
    case 17: return "add key";
    case 18: return "remove key";
    case 19: return "remove all keys";
    case 20: return "add smartcard key";
    case 21: return "remove smartcard key";
    case 22: return "lock agent";
    case 23: return "unlock agent";
    case 24: return "add key (protocol 1, constrained)";
    case 25: return "add constrained key";
    case 26: return "add constrained smartcard key";
    case 27: return "extension";
    default: return nullptr;
  }
}

}  // namespace

std::string fingerprint(std::span<const std::uint8_t> key_blob) {
  unsigned char hash[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(hash, key_blob.data(), key_blob.size());
  char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES, sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];
  sodium_bin2base64(b64, sizeof b64, hash, sizeof hash, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
  return std::string("SHA256:") + b64;
}

bool valid_fingerprint(std::string_view fp) {
  if (!fp.starts_with("SHA256:")) return false;
  fp.remove_prefix(7);
  return fp.size() == 43 && std::all_of(fp.begin(), fp.end(), [](char c) {
           return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/';
         });
}

std::string failure_message() { return std::string("\0\0\0\1", 4) + static_cast<char>(kFailure); }

bool Filter::allows_key(std::span<const std::uint8_t> key_blob) const {
  const std::string fp = fingerprint(key_blob);
  return std::find(allowed_.begin(), allowed_.end(), fp) != allowed_.end();
}

Verdict Filter::check_request(std::span<const std::uint8_t> payload) const {
  if (payload.empty()) return {false, "empty message", "malformed"};
  const std::uint8_t type = payload[0];
  if (type == kRequestIdentities) {
    if (payload.size() != 1) return {false, "list keys", "malformed"};
    return {true, "list keys", "filtered to the allowed keys"};
  }
  if (type == kSignRequest) {
    std::span<const std::uint8_t> d = payload.subspan(1), blob, data;
    std::uint32_t flags;
    if (!read_string(d, blob) || !read_string(d, data) || !read_u32(d, flags) || !d.empty()) {
      return {false, "sign", "malformed sign request"};
    }
    const std::string fp = fingerprint(blob);
    if (std::find(allowed_.begin(), allowed_.end(), fp) == allowed_.end()) {
      return {false, "sign with " + fp, "key not in ssh_agent.keys"};
    }
    return {true, "sign with " + fp, "key in ssh_agent.keys"};
  }
  const char* name = request_name(type);
  return {false, name ? name : "message " + std::to_string(type),
          "only listing and signing with allowed keys is forwarded"};
}

std::optional<std::string> Filter::filter_identities(std::span<const std::uint8_t> payload,
                                                     std::size_t& held, std::size_t& shown) const {
  held = shown = 0;
  if (payload.empty() || payload[0] != kIdentitiesAnswer) return std::nullopt;
  std::span<const std::uint8_t> d = payload.subspan(1);
  std::uint32_t n;
  if (!read_u32(d, n)) return std::nullopt;
  std::string keys;
  for (std::uint32_t i = 0; i < n; ++i) {
    std::span<const std::uint8_t> blob, comment;
    if (!read_string(d, blob) || !read_string(d, comment)) return std::nullopt;
    ++held;
    if (!allows_key(blob)) continue;
    ++shown;
    put_u32(keys, static_cast<std::uint32_t>(blob.size()));
    keys.append(blob.begin(), blob.end());
    put_u32(keys, static_cast<std::uint32_t>(comment.size()));
    keys.append(comment.begin(), comment.end());
  }
  if (!d.empty()) return std::nullopt;
  std::string out(1, static_cast<char>(kIdentitiesAnswer));
  put_u32(out, static_cast<std::uint32_t>(shown));
  return out + keys;
}

}  // namespace pw::net::agent
