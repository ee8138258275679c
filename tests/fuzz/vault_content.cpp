// fusevault's decoders of what an attacker with the cipherdir controls: a content file
// (header, then 4 KiB blocks of nonce || ciphertext || tag) read and written through the
// filesystem layer exactly as the FUSE server does, an encrypted name, an encrypted symlink
// target. Keys are the checked-in golden vaults' (their seeds decrypt), so inputs reach both
// the structural checks and the authenticated paths: an input whose first byte is 2 (a
// format-2 header) goes to the format-2 vault, every other to the format-1 vault. Any input must end in data or an
// errno, never in a crash; what decrypts is consistent (sizes; names re-encrypt to
// themselves, one spelling per name).
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common.hpp"
#include "crypto.hpp"
#include "format.hpp"
#include "fs.hpp"

namespace fs = std::filesystem;
using namespace fusevault;

namespace {

struct Golden {
  fs::path dir;                                // a copy of the golden vault's root files
  int root = -1;                               // O_DIRECTORY fd of it
  std::shared_ptr<const format::Keys> keys;
  format::DirId root_id{};
  std::string disk;                            // on-disk name of the plaintext name "f"
};
Golden* goldens = nullptr;  // [0]: format 1, [1]: format 2

std::vector<std::uint8_t> slurp(const fs::path& p) {
  std::vector<std::uint8_t> out;
  FILE* f = std::fopen(p.c_str(), "rbe");
  if (!f) {
    std::perror(p.c_str());
    std::abort();
  }
  std::uint8_t buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.insert(out.end(), buf, buf + n);
  std::fclose(f);
  return out;
}

void cleanup() {
  std::error_code ec;
  if (goldens)
    for (int i = 0; i < 2; i++) fs::remove_all(goldens[i].dir, ec);
}

void setup(Golden* g, const fs::path& golden) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/pw-fuzz-vault-XXXXXX";
  if (!::mkdtemp(tmpl.data())) {
    std::perror("mkdtemp");
    std::abort();
  }
  g->dir = tmpl;
  fs::copy_file(golden / format::kConfigName, g->dir / format::kConfigName);
  fs::copy_file(golden / format::kDirIdName, g->dir / format::kDirIdName);
  const auto conf = slurp(golden / format::kConfigName);
  const auto config = format::parse_config(conf.data(), conf.size(), 0, 0);
  SecureBytes master;
  if (!format::unwrap_master(config, SecureBytes::from("golden"), master)) {
    std::fprintf(stderr, "the golden vault's passphrase no longer unlocks it\n");
    std::abort();
  }
  g->keys = std::make_shared<const format::Keys>(master.data(), config.version);
  const auto id = slurp(golden / format::kDirIdName);
  FUZZ_ASSERT(id.size() == g->root_id.size());
  std::copy(id.begin(), id.end(), g->root_id.begin());
  g->disk = format::encrypt_name(*g->keys, g->root_id, "f");
  g->root = ::open(g->dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  FUZZ_ASSERT(g->root >= 0);
}

// Reads the whole file in uneven chunks, then a slice in the middle; returns bytes read.
std::uint64_t read_all(Fs& f, std::uint64_t fh, std::uint64_t size) {
  std::vector<char> buf(5000);
  std::uint64_t off = 0;
  for (;;) {
    const std::size_t n = f.read(fh, off, buf.size(), buf.data());
    if (n == 0) break;
    FUZZ_ASSERT(n <= buf.size());
    off += n;
    FUZZ_ASSERT(off <= size);
  }
  FUZZ_ASSERT(off == size);
  if (size > 2) {
    const std::size_t n = f.read(fh, size / 3, 100, buf.data());
    FUZZ_ASSERT(n == std::min<std::uint64_t>(100, size - size / 3));
  }
  return off;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  crypto::init();
  goldens = new Golden[2];
  std::atexit(cleanup);
  setup(&goldens[0], FV_GOLDEN_DIR "/vault");
  if (!crypto::aes256gcm_available()) {
    std::fprintf(stderr, "libsodium has no AES-GCM on this CPU: format 2 cannot be fuzzed\n");
    std::abort();
  }
  setup(&goldens[1], FV_GOLDEN_DIR "/vault-v2");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Golden* g = &goldens[size > 0 && data[0] == 2 ? 1 : 0];
  // The bytes as the content file "f".
  ::unlinkat(g->root, g->disk.c_str(), 0);
  int fd = ::openat(g->root, g->disk.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  FUZZ_ASSERT(fd >= 0);
  FUZZ_ASSERT(::write(fd, data, size) == static_cast<ssize_t>(size));
  ::close(fd);
  {
    Fs f(::fcntl(g->root, F_DUPFD_CLOEXEC, 0), g->keys);
    std::uint64_t ino = 0;
    try {
      const Fs::Entry e = f.lookup(Fs::kRoot, "f");
      ino = e.ino;
      const auto plain = static_cast<std::uint64_t>(e.st.st_size);
      std::uint64_t fh = f.open(ino, O_RDONLY);
      try {
        read_all(f, fh, plain);
      } catch (const FsError& err) {
        FUZZ_ASSERT(err.err == EIO);
      }
      f.release(fh);
      // Writing into it reads and re-seals the blocks around the write (or refuses: EIO).
      // Gated on a file-id byte: the first byte picks the format and must be 2 for format 2.
      if (size > 4 && (data[4] & 1)) {
        fh = f.open(ino, O_RDWR);
        try {
          f.write(fh, plain / 2, "abc", 3);
          SetAttrRequest r;
          r.set_size = true;
          r.size = plain / 3;
          f.setattr(ino, fh, r);
          const auto now = static_cast<std::uint64_t>(f.getattr(ino).st_size);
          FUZZ_ASSERT(now == plain / 3);
          read_all(f, fh, now);  // what it wrote itself decrypts
        } catch (const FsError& err) {
          FUZZ_ASSERT(err.err == EIO);
        }
        f.release(fh);
      }
    } catch (const FsError& err) {
      FUZZ_ASSERT(err.err == EIO);
    }
    if (ino) f.forget(ino, 1);
  }

  // The bytes as an encrypted name in the root dir and as an encrypted symlink target.
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto name = format::decrypt_name(*g->keys, g->root_id, text)) {
    FUZZ_ASSERT(format::valid_plain_name(*name));
    FUZZ_ASSERT(format::encrypt_name(*g->keys, g->root_id, *name) == text);
  }
  if (auto target = format::decrypt_symlink(*g->keys, text)) {
    FUZZ_ASSERT(format::symlink_plain_size(size) == target->size());
  }
  return 0;
}
