// The on-disk format (docs/vault-format.md): pure functions, no I/O.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
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

inline constexpr std::uint16_t kFormatVersion = 1;
inline constexpr std::uint32_t kKnownFlags = 0;  // no optional features in version 1
inline constexpr std::uint32_t kKdfArgon2id13 = 1;

inline constexpr char kConfigName[] = "fusevault.conf";
inline constexpr char kConfigTmpName[] = "fusevault.conf.tmp";
inline constexpr char kDirIdName[] = "fusevault.dirid";
inline constexpr char kLongPrefix[] = "fusevault.long.";
inline constexpr char kLongSuffix[] = ".name";
inline constexpr char kTmpPrefix[] = "fusevault.tmp.";

inline constexpr std::size_t kBlockSize = 4096;
inline constexpr std::size_t kBlockOverhead = 24 + 16;  // nonce + tag
inline constexpr std::size_t kCipherBlockSize = kBlockSize + kBlockOverhead;
inline constexpr std::size_t kHeaderSize = 20;  // u16 version, u16 reserved, 16-byte file id
inline constexpr std::size_t kFileIdBytes = 16;
inline constexpr std::size_t kDirIdBytes = 16;
inline constexpr std::size_t kMaxNameBytes = 255;
inline constexpr std::size_t kMaxSymlinkBytes = 3000;

using FileId = std::array<std::uint8_t, kFileIdBytes>;
using DirId = std::array<std::uint8_t, kDirIdBytes>;

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
  explicit Keys(const std::uint8_t* master32);
  const std::uint8_t* master() const { return buf_.data(); }
  const std::uint8_t* content() const { return buf_.data() + 32; }
  const std::uint8_t* name_siv() const { return buf_.data() + 64; }
  const std::uint8_t* name_enc() const { return buf_.data() + 96; }
  const std::uint8_t* symlink() const { return buf_.data() + 128; }
  void relock() { buf_.relock(); }
  void wipe() { buf_.wipe(); }

private:
  SecureBytes buf_;
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
std::optional<Header> decode_header(const std::uint8_t* p);

// Plaintext size of a content file of csize bytes; nullopt if csize is impossible.
std::optional<std::uint64_t> plain_size(std::uint64_t csize);
std::uint64_t cipher_size(std::uint64_t psize);
inline std::uint64_t block_offset(std::uint64_t idx) { return kHeaderSize + idx * kCipherBlockSize; }

// out receives 24 + len + 16 bytes: nonce || ciphertext || tag.
void seal_block(std::uint8_t* out, const std::uint8_t* plain, std::size_t len, const FileId& id,
                std::uint64_t idx, bool last, const std::uint8_t* nonce, const std::uint8_t* key);
// in is 24 + len + 16 bytes; out receives len bytes; false if it does not authenticate.
bool open_block(std::uint8_t* out, const std::uint8_t* in, std::size_t len, const FileId& id,
                std::uint64_t idx, bool last, const std::uint8_t* key);

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
