// fusevault's config parser (fusevault.conf: magic, version, flags, vault id, KDF, wrapped
// key). Any bytes are parsed or refused with FormatError; what parses is canonical: it
// serializes back to the very same bytes, and its associated data is their first part, so
// no two configs unwrap the same key (docs/vault-format.md).
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.hpp"
#include "format.hpp"
#include "fusevault/vault.hpp"

using namespace fusevault;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const KdfParams floor = minimum_kdf();
  for (const bool enforce : {false, true}) {
    format::Config c;
    try {
      c = format::parse_config(data, size, enforce ? floor.opslimit : 0, enforce ? floor.memlimit : 0);
    } catch (const format::FormatError&) {
      continue;
    }
    FUZZ_ASSERT(size == format::kConfigSize);
    const std::vector<std::uint8_t> bytes = format::serialize(c);
    FUZZ_ASSERT(bytes.size() == size && std::memcmp(bytes.data(), data, size) == 0);
    const std::vector<std::uint8_t> ad = format::config_ad(c);
    FUZZ_ASSERT(ad.size() == format::kConfigAdSize && std::memcmp(ad.data(), data, ad.size()) == 0);
    FUZZ_ASSERT(format::layout_for(c.version) && c.kdf_alg == format::kKdfArgon2id13);
    if (enforce) FUZZ_ASSERT(c.opslimit >= floor.opslimit && c.memlimit >= floor.memlimit);
  }
  return 0;
}
