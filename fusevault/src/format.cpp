#include "format.hpp"

#include <cstring>

#include "crypto.hpp"

namespace fusevault::format {
namespace {

void put16(std::vector<std::uint8_t>& v, std::uint16_t x) {
  for (int i = 0; i < 2; i++) v.push_back(static_cast<std::uint8_t>(x >> (8 * i)));
}
void put32(std::vector<std::uint8_t>& v, std::uint32_t x) {
  for (int i = 0; i < 4; i++) v.push_back(static_cast<std::uint8_t>(x >> (8 * i)));
}
void put64(std::vector<std::uint8_t>& v, std::uint64_t x) {
  for (int i = 0; i < 8; i++) v.push_back(static_cast<std::uint8_t>(x >> (8 * i)));
}
template <std::size_t N>
void putarr(std::vector<std::uint8_t>& v, const std::array<std::uint8_t, N>& a) {
  v.insert(v.end(), a.begin(), a.end());
}
std::uint64_t getle(const std::uint8_t* p, int n) {
  std::uint64_t x = 0;
  for (int i = n - 1; i >= 0; i--) x = (x << 8) | p[i];
  return x;
}

void block_ad(std::uint8_t* ad, const FileId& id, std::uint64_t idx, bool last) {
  std::memcpy(ad, id.data(), id.size());
  for (int i = 0; i < 8; i++) ad[16 + i] = static_cast<std::uint8_t>(idx >> (8 * i));
  ad[24] = last ? 1 : 0;
}
constexpr std::size_t kBlockAdSize = 25;

}  // namespace

std::vector<std::uint8_t> config_ad(const Config& c) {
  std::vector<std::uint8_t> v;
  v.reserve(kConfigSize);
  v.insert(v.end(), kConfigMagic, kConfigMagic + 8);
  put16(v, c.version);
  put16(v, c.reserved);
  put32(v, c.flags);
  putarr(v, c.vault_id);
  put32(v, c.kdf_alg);
  put64(v, c.opslimit);
  put64(v, c.memlimit);
  putarr(v, c.salt);
  return v;
}

std::vector<std::uint8_t> serialize(const Config& c) {
  auto v = config_ad(c);
  putarr(v, c.nonce);
  putarr(v, c.wrapped_key);
  return v;
}

Config parse_config(const std::uint8_t* p, std::size_t n, std::uint64_t min_ops, std::uint64_t min_mem) {
  if (n != kConfigSize) throw FormatError("config has the wrong size");
  if (std::memcmp(p, kConfigMagic, 8) != 0) throw FormatError("not a fusevault config (bad magic)");
  Config c;
  std::size_t o = 8;
  c.version = static_cast<std::uint16_t>(getle(p + o, 2)); o += 2;
  c.reserved = static_cast<std::uint16_t>(getle(p + o, 2)); o += 2;
  c.flags = static_cast<std::uint32_t>(getle(p + o, 4)); o += 4;
  std::memcpy(c.vault_id.data(), p + o, 16); o += 16;
  c.kdf_alg = static_cast<std::uint32_t>(getle(p + o, 4)); o += 4;
  c.opslimit = getle(p + o, 8); o += 8;
  c.memlimit = getle(p + o, 8); o += 8;
  std::memcpy(c.salt.data(), p + o, 16); o += 16;
  std::memcpy(c.nonce.data(), p + o, 24); o += 24;
  std::memcpy(c.wrapped_key.data(), p + o, 48); o += 48;
  if (!layout_for(c.version))
    throw FormatError("unsupported vault format version " + std::to_string(c.version));
  if (c.reserved != 0) throw FormatError("config reserved field is not zero");
  if (c.flags & ~kKnownFlags) throw FormatError("config has unknown feature flags");
  if (c.kdf_alg != kKdfArgon2id13) throw FormatError("config names an unknown KDF");
  if (c.opslimit < min_ops || c.memlimit < min_mem)
    throw FormatError("config KDF parameters are below the accepted floor");
  if (c.opslimit > 1000 || c.memlimit > (std::uint64_t{1} << 36))
    throw FormatError("config KDF parameters are implausibly large");
  return c;
}

void wrap_master(Config& c, const SecureBytes& master, const SecureBytes& pass,
                 const std::uint8_t* nonce_or_null) {
  SecureBytes kek(32);
  if (!crypto::argon2id(kek.data(), 32, reinterpret_cast<const char*>(pass.data()), pass.size(),
                        c.salt.data(), c.opslimit, c.memlimit))
    throw FormatError("Argon2id failed (out of memory?)");
  if (nonce_or_null)
    std::memcpy(c.nonce.data(), nonce_or_null, 24);
  else
    crypto::random_bytes(c.nonce.data(), 24);
  const auto ad = config_ad(c);
  crypto::aead_seal(c.wrapped_key.data(), master.data(), 32, ad.data(), ad.size(), c.nonce.data(),
                    kek.data());
}

bool unwrap_master(const Config& c, const SecureBytes& pass, SecureBytes& master_out) {
  SecureBytes kek(32);
  if (!crypto::argon2id(kek.data(), 32, reinterpret_cast<const char*>(pass.data()), pass.size(),
                        c.salt.data(), c.opslimit, c.memlimit))
    throw FormatError("Argon2id failed (out of memory?)");
  SecureBytes m(32);
  const auto ad = config_ad(c);
  if (!crypto::aead_open(m.data(), c.wrapped_key.data(), 48, ad.data(), ad.size(), c.nonce.data(),
                         kek.data()))
    return false;
  master_out = std::move(m);
  return true;
}

const Layout* layout_for(std::uint16_t version) {
  switch (version) {
    case kFormatV1: return &kLayoutV1;
    case kFormatV2: return &kLayoutV2;
    default: return nullptr;
  }
}

Keys::Keys(const std::uint8_t* master32, std::uint16_t version) : buf_(32 * 5), layout_(layout_for(version)) {
  if (!layout_) throw FormatError("unsupported vault format version " + std::to_string(version));
  if (version == kFormatV2 && !crypto::aes256gcm_available())
    throw FormatError("format 2 (AES-256-GCM) needs a CPU that libsodium can run AES-GCM on");
  std::memcpy(buf_.data(), master32, 32);
  crypto::kdf_subkey(buf_.data() + 32, master32, kCtxContent, 1);
  crypto::kdf_subkey(buf_.data() + 64, master32, kCtxNameSiv, 1);
  crypto::kdf_subkey(buf_.data() + 96, master32, kCtxNameEnc, 1);
  crypto::kdf_subkey(buf_.data() + 128, master32, kCtxSymlink, 1);
}

void encode_header(const Header& h, std::uint8_t* out) {
  out[0] = static_cast<std::uint8_t>(h.version);
  out[1] = static_cast<std::uint8_t>(h.version >> 8);
  out[2] = out[3] = 0;
  std::memcpy(out + 4, h.file_id.data(), kFileIdBytes);
}

std::optional<Header> decode_header(const std::uint8_t* p, std::uint16_t version) {
  Header h;
  h.version = static_cast<std::uint16_t>(p[0] | (p[1] << 8));
  if (h.version != version || p[2] != 0 || p[3] != 0) return std::nullopt;
  std::memcpy(h.file_id.data(), p + 4, kFileIdBytes);
  return h;
}

std::optional<std::uint64_t> plain_size(std::uint64_t csize, const Layout& l) {
  if (csize == 0) return 0;
  if (csize < kHeaderSize) return std::nullopt;
  const std::uint64_t body = csize - kHeaderSize;
  const std::uint64_t full = body / l.cipher_block();
  const std::uint64_t rem = body % l.cipher_block();
  if (rem == 0) return full * kBlockSize;
  if (rem <= l.overhead) return std::nullopt;
  return full * kBlockSize + (rem - l.overhead);
}

std::uint64_t cipher_size(std::uint64_t psize, const Layout& l) {
  if (psize == 0) return 0;
  const std::uint64_t full = psize / kBlockSize;
  const std::uint64_t rem = psize % kBlockSize;
  return kHeaderSize + full * l.cipher_block() + (rem ? rem + l.overhead : 0);
}

void seal_block(std::uint8_t* out, const std::uint8_t* plain, std::size_t len, const FileId& id,
                std::uint64_t idx, bool last, const std::uint8_t* nonce, const std::uint8_t* key) {
  std::uint8_t ad[kBlockAdSize];
  block_ad(ad, id, idx, last);
  if (out != nonce) std::memmove(out, nonce, 24);
#ifdef FUSEVAULT_BENCH_NOCRYPT
  (void)key;
  std::memmove(out + 24, plain, len);
  std::memset(out + 24 + len, 0, 16);
#else
  crypto::aead_seal(out + 24, plain, len, ad, sizeof ad, out, key);
#endif
}

bool open_block(std::uint8_t* out, const std::uint8_t* in, std::size_t len, const FileId& id,
                std::uint64_t idx, bool last, const std::uint8_t* key) {
  std::uint8_t ad[kBlockAdSize];
  block_ad(ad, id, idx, last);
#ifdef FUSEVAULT_BENCH_NOCRYPT
  (void)key;
  std::memmove(out, in + 24, len);
  return true;
#else
  return crypto::aead_open(out, in + 24, len + 16, ad, sizeof ad, in, key);
#endif
}

std::uint8_t* KeySlab::take() {
  std::lock_guard g(mu_);
  if (free_.empty()) {
    // Room first, so that nothing below can throw once the slab's slots are listed, and so
    // that give() never allocates.
    slabs_.reserve(slabs_.size() + 1);
    free_.reserve((slabs_.size() + 1) * kSlotsPerSlab);
    SecureBytes slab(kSlot * kSlotsPerSlab);
    // sodium_malloc places the region right before a guard page; with a size that is a
    // multiple of 16 it starts 16-aligned, as the AES state needs.
    if (reinterpret_cast<std::uintptr_t>(slab.data()) % 16 != 0) throw FormatError("unaligned key slab");
    std::uint8_t* base = slab.data();
    slabs_.push_back(std::move(slab));
    for (std::size_t i = kSlotsPerSlab; i-- > 0;) free_.push_back(base + i * kSlot);
  }
  std::uint8_t* p = free_.back();
  free_.pop_back();
  return p;
}

void KeySlab::give(std::uint8_t* slot) noexcept {
  crypto::wipe(slot, kSlot);
  std::lock_guard g(mu_);
  free_.push_back(slot);  // within the capacity reserved when its slab was made
}

void KeySlab::wipe_all() noexcept {
  std::lock_guard g(mu_);
  for (auto& s : slabs_) crypto::wipe(s.data(), s.size());
}

std::size_t KeySlab::slabs() const {
  std::lock_guard g(mu_);
  return slabs_.size();
}

SessionKey::SessionKey(const Keys& k, const FileId& file, const KeyId& key_id, std::shared_ptr<KeySlab> slab)
    : id_(key_id), slab_(std::move(slab)), state_(slab_->take()) {
  static_assert(KeySlab::kSlot == crypto::kAesStateBytes + crypto::kKeyBytes && KeySlab::kSlot % 16 == 0);
  std::uint8_t in[8 + kFileIdBytes + kKeyIdBytes] = {'f', 'v', 'b', 'l', 'k', 'k', 'e', 'y'};
  std::memcpy(in + 8, file.data(), kFileIdBytes);
  std::memcpy(in + 8 + kFileIdBytes, key_id.data(), kKeyIdBytes);
  // The raw key lives in the slot's tail only while it is expanded.
  std::uint8_t* key = state_ + crypto::kAesStateBytes;
  crypto::keyed_hash(key, crypto::kKeyBytes, in, sizeof in, k.content());
#ifdef FUSEVAULT_BENCH_NOCRYPT
  std::memset(state_, 0, crypto::kAesStateBytes);
#else
  crypto::aes256gcm_expand(state_, key);
#endif
  crypto::wipe(key, crypto::kKeyBytes);
}

SessionKey::~SessionKey() { slab_->give(state_); }

namespace {
constexpr std::size_t kV2Nonce = kKeyIdBytes;  // offset of the nonce in a v2 block
constexpr std::size_t kV2Ct = kKeyIdBytes + crypto::kAesNonceBytes;
}  // namespace

void seal_block_v2(std::uint8_t* out, const std::uint8_t* plain, std::size_t len, const FileId& id,
                   std::uint64_t idx, bool last, const SessionKey& key, std::uint64_t counter) {
  std::uint8_t ad[kBlockAdSize];
  block_ad(ad, id, idx, last);
  std::memcpy(out, key.id().data(), kKeyIdBytes);
  for (int i = 0; i < 8; i++) out[kV2Nonce + i] = static_cast<std::uint8_t>(counter >> (8 * i));
  std::memset(out + kV2Nonce + 8, 0, 4);
#ifdef FUSEVAULT_BENCH_NOCRYPT
  std::memmove(out + kV2Ct, plain, len);
  std::memset(out + kV2Ct + len, 0, 16);
#else
  crypto::aes256gcm_seal(out + kV2Ct, plain, len, ad, sizeof ad, out + kV2Nonce, key.state());
#endif
}

bool open_block_v2(std::uint8_t* out, const std::uint8_t* in, std::size_t len, const FileId& id,
                   std::uint64_t idx, bool last, const SessionKey& key) {
  if (!crypto::equal_ct(in, key.id().data(), kKeyIdBytes)) return false;
  std::uint8_t ad[kBlockAdSize];
  block_ad(ad, id, idx, last);
#ifdef FUSEVAULT_BENCH_NOCRYPT
  std::memmove(out, in + kV2Ct, len);
  return true;
#else
  return crypto::aes256gcm_open(out, in + kV2Ct, len + 16, ad, sizeof ad, in + kV2Nonce, key.state());
#endif
}

KeyId block_key_id(const std::uint8_t* in) {
  KeyId k;
  std::memcpy(k.data(), in, kKeyIdBytes);
  return k;
}

bool valid_plain_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes || name == "." || name == "..") return false;
  return name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

std::string encrypt_name(const Keys& k, const DirId& dir, std::string_view name) {
  // SIV: nonce = BLAKE2b-192(name_siv key, dir id || name); then AEAD under a separate key
  // with the dir id as associated data. Equal names in one directory encrypt identically.
  std::vector<std::uint8_t> in(dir.begin(), dir.end());
  in.insert(in.end(), name.begin(), name.end());
  std::vector<std::uint8_t> out(24 + name.size() + 16);
  crypto::keyed_hash(out.data(), 24, in.data(), in.size(), k.name_siv());
  crypto::aead_seal(out.data() + 24, reinterpret_cast<const std::uint8_t*>(name.data()), name.size(),
                    dir.data(), dir.size(), out.data(), k.name_enc());
  return crypto::b64url(out.data(), out.size());
}

std::optional<std::string> decrypt_name(const Keys& k, const DirId& dir, std::string_view encoded) {
  std::vector<std::uint8_t> raw;
  if (!crypto::b64url_decode(encoded, raw) || raw.size() < 24 + 16 + 1) return std::nullopt;
  std::string name(raw.size() - 40, '\0');
  if (!crypto::aead_open(reinterpret_cast<std::uint8_t*>(name.data()), raw.data() + 24, raw.size() - 24,
                         dir.data(), dir.size(), raw.data(), k.name_enc()))
    return std::nullopt;
  std::vector<std::uint8_t> in(dir.begin(), dir.end());
  in.insert(in.end(), name.begin(), name.end());
  std::uint8_t siv[24];
  crypto::keyed_hash(siv, 24, in.data(), in.size(), k.name_siv());
  if (!crypto::equal_ct(siv, raw.data(), 24) || !valid_plain_name(name)) return std::nullopt;
  return name;
}

bool needs_long_name(std::string_view encoded) { return encoded.size() > kMaxNameBytes; }

std::string long_name(std::string_view encoded) {
  std::uint8_t h[32];
  crypto::hash(h, 32, reinterpret_cast<const std::uint8_t*>(encoded.data()), encoded.size());
  return std::string(kLongPrefix) + crypto::b64url(h, 32);
}

bool is_long_name(std::string_view n) {
  const std::string_view pre(kLongPrefix), suf(kLongSuffix);
  return n.starts_with(pre) && !n.ends_with(suf);
}

bool is_reserved(std::string_view n) { return n.starts_with("fusevault."); }

std::string encrypt_symlink(const Keys& k, std::string_view target, const std::uint8_t* nonce_or_null) {
  std::vector<std::uint8_t> out(24 + target.size() + 16);
  if (nonce_or_null)
    std::memcpy(out.data(), nonce_or_null, 24);
  else
    crypto::random_bytes(out.data(), 24);
  static constexpr std::uint8_t ad[] = {'s', 'y', 'm', 'l', 'i', 'n', 'k'};
  crypto::aead_seal(out.data() + 24, reinterpret_cast<const std::uint8_t*>(target.data()), target.size(),
                    ad, sizeof ad, out.data(), k.symlink());
  return crypto::b64url(out.data(), out.size());
}

std::optional<std::string> decrypt_symlink(const Keys& k, std::string_view stored) {
  std::vector<std::uint8_t> raw;
  if (!crypto::b64url_decode(stored, raw) || raw.size() < 40) return std::nullopt;
  std::string t(raw.size() - 40, '\0');
  static constexpr std::uint8_t ad[] = {'s', 'y', 'm', 'l', 'i', 'n', 'k'};
  if (!crypto::aead_open(reinterpret_cast<std::uint8_t*>(t.data()), raw.data() + 24, raw.size() - 24, ad,
                         sizeof ad, raw.data(), k.symlink()))
    return std::nullopt;
  return t;
}

std::uint64_t symlink_plain_size(std::uint64_t n) {
  std::uint64_t bytes = n / 4 * 3 + (n % 4 == 2 ? 1 : n % 4 == 3 ? 2 : 0);
  return bytes >= 40 ? bytes - 40 : 0;
}

}  // namespace fusevault::format
