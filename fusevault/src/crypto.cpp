#include "crypto.hpp"

#include <sodium.h>

#include <cstdlib>
#include <stdexcept>

namespace fusevault::crypto {

void init() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium initialisation failed");
}

void random_bytes(void* out, std::size_t n) { randombytes_buf(out, n); }

void aead_seal(std::uint8_t* out, const std::uint8_t* m, std::size_t mlen, const std::uint8_t* ad,
               std::size_t adlen, const std::uint8_t* nonce, const std::uint8_t* key) {
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out, &clen, m, mlen, ad, adlen, nullptr, nonce, key);
}

bool aead_open(std::uint8_t* out, const std::uint8_t* c, std::size_t clen, const std::uint8_t* ad,
               std::size_t adlen, const std::uint8_t* nonce, const std::uint8_t* key) {
  if (clen < kTagBytes) return false;
  unsigned long long mlen = 0;
  return crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, nullptr, c, clen, ad, adlen, nonce,
                                                    key) == 0;
}

bool aes256gcm_available() { return crypto_aead_aes256gcm_is_available() == 1; }

static_assert(sizeof(crypto_aead_aes256gcm_state) == kAesStateBytes);
static_assert(crypto_aead_aes256gcm_NPUBBYTES == kAesNonceBytes);

void aes256gcm_expand(void* state, const std::uint8_t* key32) {
  if (crypto_aead_aes256gcm_beforenm(static_cast<crypto_aead_aes256gcm_state*>(state), key32) != 0) std::abort();
}

void aes256gcm_seal(std::uint8_t* out, const std::uint8_t* m, std::size_t mlen, const std::uint8_t* ad,
                    std::size_t adlen, const std::uint8_t* nonce12, const void* state) {
  unsigned long long clen = 0;
  // Never write a block whose sealing failed: that would be unauthenticated garbage on disk.
  if (crypto_aead_aes256gcm_encrypt_afternm(out, &clen, m, mlen, ad, adlen, nullptr, nonce12,
                                            static_cast<const crypto_aead_aes256gcm_state*>(state)) != 0)
    std::abort();
}

bool aes256gcm_open(std::uint8_t* out, const std::uint8_t* c, std::size_t clen, const std::uint8_t* ad,
                    std::size_t adlen, const std::uint8_t* nonce12, const void* state) {
  if (clen < kTagBytes) return false;
  unsigned long long mlen = 0;
  return crypto_aead_aes256gcm_decrypt_afternm(out, &mlen, nullptr, c, clen, ad, adlen, nonce12,
                                               static_cast<const crypto_aead_aes256gcm_state*>(state)) == 0;
}

void keyed_hash(std::uint8_t* out, std::size_t outlen, const std::uint8_t* in, std::size_t inlen,
                const std::uint8_t* key) {
  crypto_generichash(out, outlen, in, inlen, key, kKeyBytes);
}

void hash(std::uint8_t* out, std::size_t outlen, const std::uint8_t* in, std::size_t inlen) {
  crypto_generichash(out, outlen, in, inlen, nullptr, 0);
}

bool argon2id(std::uint8_t* out, std::size_t outlen, const char* pass, std::size_t passlen,
              const std::uint8_t* salt16, std::uint64_t opslimit, std::uint64_t memlimit) {
  return crypto_pwhash(out, outlen, pass, passlen, salt16, opslimit, static_cast<size_t>(memlimit),
                       crypto_pwhash_ALG_ARGON2ID13) == 0;
}

void kdf_subkey(std::uint8_t* out32, const std::uint8_t* master32, const char* ctx8, std::uint64_t id) {
  crypto_kdf_derive_from_key(out32, 32, id, ctx8, master32);
}

std::string b64url(const std::uint8_t* p, std::size_t n) {
  const int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  std::string s(sodium_base64_ENCODED_LEN(n, variant), '\0');
  sodium_bin2base64(s.data(), s.size(), p, n, variant);
  s.resize(std::char_traits<char>::length(s.c_str()));
  return s;
}

bool b64url_decode(std::string_view s, std::vector<std::uint8_t>& out) {
  out.resize(s.size() * 3 / 4 + 3);
  size_t bin_len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), s.data(), s.size(), nullptr, &bin_len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
    return false;
  if (end != s.data() + s.size()) return false;
  out.resize(bin_len);
  // Reject non-canonical encodings so that one name has exactly one spelling.
  return b64url(out.data(), out.size()) == s;
}

std::string hex(const std::uint8_t* p, std::size_t n) {
  std::string s(n * 2 + 1, '\0');
  sodium_bin2hex(s.data(), s.size(), p, n);
  s.pop_back();
  return s;
}

void wipe(void* p, std::size_t n) { sodium_memzero(p, n); }

bool equal_ct(const std::uint8_t* a, const std::uint8_t* b, std::size_t n) {
  return sodium_memcmp(a, b, n) == 0;
}

}  // namespace fusevault::crypto
