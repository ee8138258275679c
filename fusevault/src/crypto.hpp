// Thin wrappers over libsodium. No cryptographic construction is written here by hand.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fusevault::crypto {

inline constexpr std::size_t kKeyBytes = 32;
inline constexpr std::size_t kNonceBytes = 24;  // XChaCha20-Poly1305
inline constexpr std::size_t kTagBytes = 16;

void init();  // sodium_init(); throws on failure
void random_bytes(void* out, std::size_t n);

// XChaCha20-Poly1305 (IETF), combined mode: out receives mlen + 16 bytes.
void aead_seal(std::uint8_t* out, const std::uint8_t* m, std::size_t mlen, const std::uint8_t* ad,
               std::size_t adlen, const std::uint8_t* nonce, const std::uint8_t* key);
// Returns false if the tag does not verify; out receives clen - 16 bytes.
bool aead_open(std::uint8_t* out, const std::uint8_t* c, std::size_t clen, const std::uint8_t* ad,
               std::size_t adlen, const std::uint8_t* nonce, const std::uint8_t* key);

// AES-256-GCM with a key expanded once (libsodium's precomputation interface). libsodium
// 1.0.18 implements it only with x86 AES-NI and PCLMULQDQ; elsewhere these calls fail, so
// callers check aes256gcm_available() first and a failure here aborts.
bool aes256gcm_available();
inline constexpr std::size_t kAesStateBytes = 512;  // sizeof(crypto_aead_aes256gcm_state)
inline constexpr std::size_t kAesNonceBytes = 12;
// state: kAesStateBytes, 16-byte aligned (sodium_malloc'd memory of that size is).
void aes256gcm_expand(void* state, const std::uint8_t* key32);
void aes256gcm_seal(std::uint8_t* out, const std::uint8_t* m, std::size_t mlen, const std::uint8_t* ad,
                    std::size_t adlen, const std::uint8_t* nonce12, const void* state);
bool aes256gcm_open(std::uint8_t* out, const std::uint8_t* c, std::size_t clen, const std::uint8_t* ad,
                    std::size_t adlen, const std::uint8_t* nonce12, const void* state);

// Keyed BLAKE2b (crypto_generichash) with a 32-byte key.
void keyed_hash(std::uint8_t* out, std::size_t outlen, const std::uint8_t* in, std::size_t inlen,
                const std::uint8_t* key);
void hash(std::uint8_t* out, std::size_t outlen, const std::uint8_t* in, std::size_t inlen);

// Argon2id v1.3 (crypto_pwhash_ALG_ARGON2ID13). Returns false if out of memory.
bool argon2id(std::uint8_t* out, std::size_t outlen, const char* pass, std::size_t passlen,
              const std::uint8_t* salt16, std::uint64_t opslimit, std::uint64_t memlimit);

// crypto_kdf_derive_from_key (BLAKE2b): 32-byte subkey for an 8-byte context and id.
void kdf_subkey(std::uint8_t* out32, const std::uint8_t* master32, const char* ctx8, std::uint64_t id);

std::string b64url(const std::uint8_t* p, std::size_t n);  // URL-safe, no padding
bool b64url_decode(std::string_view s, std::vector<std::uint8_t>& out);
std::string hex(const std::uint8_t* p, std::size_t n);
void wipe(void* p, std::size_t n);  // sodium_memzero
bool equal_ct(const std::uint8_t* a, const std::uint8_t* b, std::size_t n);

}  // namespace fusevault::crypto
