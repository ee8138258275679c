// The on-disk format (docs/vault-format.md): pure functions, no I/O.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fusevault/secure.hpp"

namespace fusevault::format {

class FormatError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Version 1: content blocks sealed with XChaCha20-Poly1305 under random nonces.
// Version 2: content blocks sealed with AES-256-GCM under a key per write session and
// counter nonces (needs AES-NI). Names, symlinks and the config are the same in both.
inline constexpr std::uint16_t kFormatV1 = 1;
inline constexpr std::uint16_t kFormatV2 = 2;
inline constexpr std::uint16_t kFormatVersion = kFormatV2;  // the newest
inline constexpr std::uint32_t kKnownFlags = 0;  // no optional features
inline constexpr std::uint32_t kKdfArgon2id13 = 1;

inline constexpr char kConfigName[] = "fusevault.conf";
inline constexpr char kConfigTmpName[] = "fusevault.conf.tmp";
inline constexpr char kDirIdName[] = "fusevault.dirid";
inline constexpr char kLongPrefix[] = "fusevault.long.";
inline constexpr char kLongSuffix[] = ".name";
inline constexpr char kTmpPrefix[] = "fusevault.tmp.";

inline constexpr std::size_t kBlockSize = 4096;
inline constexpr std::size_t kHeaderSize = 20;  // u16 version, u16 reserved, 16-byte file id
inline constexpr std::size_t kFileIdBytes = 16;
inline constexpr std::size_t kKeyIdBytes = 16;
inline constexpr std::size_t kMaxBlockOverhead = 44;

// What differs between the versions' content files: the bytes each block carries besides
// its ciphertext (v1: 24-byte nonce + tag; v2: key id + 12-byte counter nonce + tag).
struct Layout {
  std::uint16_t version;
  std::size_t overhead;
  constexpr std::size_t cipher_block() const { return kBlockSize + overhead; }
};
inline constexpr Layout kLayoutV1{kFormatV1, 24 + 16};
inline constexpr Layout kLayoutV2{kFormatV2, kKeyIdBytes + 12 + 16};
static_assert(kLayoutV2.overhead == kMaxBlockOverhead);
// nullptr for a version this build does not know.
const Layout* layout_for(std::uint16_t version);
inline constexpr std::size_t kDirIdBytes = 16;
inline constexpr std::size_t kMaxNameBytes = 255;
inline constexpr std::size_t kMaxSymlinkBytes = 3000;

using FileId = std::array<std::uint8_t, kFileIdBytes>;
using DirId = std::array<std::uint8_t, kDirIdBytes>;
using KeyId = std::array<std::uint8_t, kKeyIdBytes>;

// ---- config ---------------------------------------------------------------------------
struct Config {
  std::uint16_t version = kFormatVersion;
  std::uint16_t reserved = 0;
  std::uint32_t flags = 0;
  std::array<std::uint8_t, 16> vault_id{};
  std::uint32_t kdf_alg = kKdfArgon2id13;
  std::uint64_t opslimit = 0;
  std::uint64_t memlimit = 0;
  std::array<std::uint8_t, 16> salt{};
  std::array<std::uint8_t, 24> nonce{};
  std::array<std::uint8_t, 48> wrapped_key{};  // 32-byte master key + 16-byte tag
};
inline constexpr std::size_t kConfigAdSize = 8 + 2 + 2 + 4 + 16 + 4 + 8 + 8 + 16;  // 68
inline constexpr std::size_t kConfigSize = kConfigAdSize + 24 + 48;                // 140
inline constexpr char kConfigMagic[8] = {'f', 'u', 's', 'e', 'v', 'l', 't', '\n'};

std::vector<std::uint8_t> serialize(const Config& c);
// The associated data of the key wrap: every field except nonce and wrapped key.
std::vector<std::uint8_t> config_ad(const Config& c);
// Structural parse; throws FormatError (bad magic/size/version/flags/kdf/floor).
Config parse_config(const std::uint8_t* p, std::size_t n, std::uint64_t min_ops,
                    std::uint64_t min_mem);

// Derives the wrapping key with Argon2id and wraps master (32 bytes) with a fresh nonce.
void wrap_master(Config& c, const SecureBytes& master, const SecureBytes& pass,
                 const std::uint8_t* nonce_or_null = nullptr);
// Returns false on a wrong passphrase or any edited field.
bool unwrap_master(const Config& c, const SecureBytes& pass, SecureBytes& master_out);

// ---- keys -------------------------------------------------------------------------------
class Keys {
public:
  explicit Keys(const std::uint8_t* master32, std::uint16_t version = kFormatVersion);
  const Layout& layout() const { return *layout_; }
  const std::uint8_t* master() const { return buf_.data(); }
  const std::uint8_t* content() const { return buf_.data() + 32; }
  const std::uint8_t* name_siv() const { return buf_.data() + 64; }
  const std::uint8_t* name_enc() const { return buf_.data() + 96; }
  const std::uint8_t* symlink() const { return buf_.data() + 128; }
  void relock() { buf_.relock(); }
  void wipe() { buf_.wipe(); }

private:
  SecureBytes buf_;
  const Layout* layout_;
};
inline constexpr char kCtxContent[] = "fvcontnt";
inline constexpr char kCtxNameSiv[] = "fvnamsiv";
inline constexpr char kCtxNameEnc[] = "fvnamenc";
inline constexpr char kCtxSymlink[] = "fvsymlnk";

// ---- file contents ---------------------------------------------------------------------
struct Header {
  std::uint16_t version = kFormatVersion;
  FileId file_id{};
};
void encode_header(const Header& h, std::uint8_t* out /*kHeaderSize*/);
// nullopt unless the header is well formed and of the given version.
std::optional<Header> decode_header(const std::uint8_t* p, std::uint16_t version);

// Plaintext size of a content file of csize bytes; nullopt if csize is impossible.
std::optional<std::uint64_t> plain_size(std::uint64_t csize, const Layout& l);
std::uint64_t cipher_size(std::uint64_t psize, const Layout& l);
inline std::uint64_t block_offset(std::uint64_t idx, const Layout& l) {
  return kHeaderSize + idx * l.cipher_block();
}

// Version 1. out receives 24 + len + 16 bytes: nonce || ciphertext || tag.
void seal_block(std::uint8_t* out, const std::uint8_t* plain, std::size_t len, const FileId& id,
                std::uint64_t idx, bool last, const std::uint8_t* nonce, const std::uint8_t* key);
// in is 24 + len + 16 bytes; out receives len bytes; false if it does not authenticate.
bool open_block(std::uint8_t* out, const std::uint8_t* in, std::size_t len, const FileId& id,
                std::uint64_t idx, bool last, const std::uint8_t* key);

// Secure memory for session keys, in slots: sodium_malloc costs several mmap/mprotect/mlock
// calls (about 50 us here) and a session key is needed for every file written or read, so
// slots come from slabs of sodium_malloc'd memory (guard pages, mlock'd, no core dumps),
// and a returned slot is wiped at once. Thread-safe.
class KeySlab {
public:
  static constexpr std::size_t kSlot = 512 + 32;  // expanded AES state + the raw key; 16 | kSlot
  static constexpr std::size_t kSlotsPerSlab = 120;  // 16 pages
  std::uint8_t* take();
  void give(std::uint8_t* slot) noexcept;  // wipes it
  std::size_t slabs() const;
  // Wipes every slot, given out or not: for a filesystem that stops while files are still
  // open (their keys can no longer be used, but must not outlive the vault in memory).
  void wipe_all() noexcept;

private:
  mutable std::mutex mu_;
  std::vector<SecureBytes> slabs_;
  std::vector<std::uint8_t*> free_;
};

// Version 2. A write session's AES-256-GCM key: BLAKE2b-256 keyed with the content key
// over "fvblkkey" || file id || key id, expanded once into a slot of the slab.
class SessionKey {
public:
  SessionKey(const Keys& k, const FileId& file, const KeyId& key_id, std::shared_ptr<KeySlab> slab);
  ~SessionKey();
  SessionKey(const SessionKey&) = delete;
  SessionKey& operator=(const SessionKey&) = delete;
  const KeyId& id() const { return id_; }
  const void* state() const { return state_; }

private:
  KeyId id_;
  std::shared_ptr<KeySlab> slab_;  // outlives every slot it gave out
  std::uint8_t* state_;
};
// out receives 16 + 12 + len + 16 bytes: key id || nonce || ciphertext || tag, where the
// nonce is the session's block counter (u64 LE, then 4 zero bytes).
void seal_block_v2(std::uint8_t* out, const std::uint8_t* plain, std::size_t len, const FileId& id,
                   std::uint64_t idx, bool last, const SessionKey& key, std::uint64_t counter);
bool open_block_v2(std::uint8_t* out, const std::uint8_t* in, std::size_t len, const FileId& id,
                   std::uint64_t idx, bool last, const SessionKey& key);
KeyId block_key_id(const std::uint8_t* in);  // the first 16 bytes of a version-2 block

// ---- names -------------------------------------------------------------------------------
// Deterministic authenticated encryption of one name in a directory (SIV construction).
std::string encrypt_name(const Keys& k, const DirId& dir, std::string_view name);
std::optional<std::string> decrypt_name(const Keys& k, const DirId& dir, std::string_view encoded);
// The on-disk name: the encoding itself, or kLongPrefix + hash if it exceeds 255 bytes.
bool needs_long_name(std::string_view encoded);
std::string long_name(std::string_view encoded);
bool is_long_name(std::string_view disk_name);  // fusevault.long.X but not the sidecar
bool is_reserved(std::string_view disk_name);   // anything starting with "fusevault."
bool valid_plain_name(std::string_view name);

// ---- symlink targets --------------------------------------------------------------------
std::string encrypt_symlink(const Keys& k, std::string_view target,
                            const std::uint8_t* nonce_or_null = nullptr);
std::optional<std::string> decrypt_symlink(const Keys& k, std::string_view stored);
std::uint64_t symlink_plain_size(std::uint64_t stored_len);

}  // namespace fusevault::format
