// import_tree / verify_tree on a real cipherdir, without FUSE.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "fs.hpp"
#include "fusevault/tree.hpp"
#include "fusevault/vault.hpp"
#include "helpers.hpp"

using namespace fusevault;
using fvtest::pattern;

namespace {

struct TreeFixture {
  fvtest::TempDir src{"tree-src"};
  fvtest::TempDir cipher{"tree-vault"};
  std::unique_ptr<Vault> vault;

  TreeFixture() {
    Vault::create(cipher.path, SecureBytes::from("pw"), minimum_kdf());
    vault = Vault::open(cipher.path, SecureBytes::from("pw"));
    REQUIRE(::mkdir((src.path + "/a").c_str(), 0755) == 0);
    REQUIRE(::mkdir((src.path + "/a/b").c_str(), 0750) == 0);
    fvtest::write_path(src.path + "/a/b/big", pattern((1 << 20) + 4097, 7), 0640);
    fvtest::write_path(src.path + "/empty", "", 0600);
    fvtest::write_path(src.path + "/a/x.txt", "hello\n", 0444);
    REQUIRE(::symlink("b/big", (src.path + "/a/link").c_str()) == 0);
    struct timespec ts[2] = {{1000000000, 123456789}, {1000000000, 123456789}};
    REQUIRE(::utimensat(AT_FDCWD, (src.path + "/a/x.txt").c_str(), ts, 0) == 0);
    REQUIRE(::utimensat(AT_FDCWD, (src.path + "/a/b").c_str(), ts, 0) == 0);
  }
  Fs::Entry at(const std::string& rel) {
    std::uint64_t ino = Fs::kRoot;
    Fs::Entry e{Fs::kRoot, vault->fs().getattr(Fs::kRoot)};
    std::size_t pos = 0;
    while (pos <= rel.size()) {
      auto next = rel.find('/', pos);
      if (next == std::string::npos) next = rel.size();
      e = vault->fs().lookup(ino, rel.substr(pos, next - pos));
      ino = e.ino;
      pos = next + 1;
    }
    return e;
  }
  std::string read(const std::string& rel) {
    auto& fs = vault->fs();
    auto e = at(rel);
    auto fh = fs.open(e.ino, O_RDONLY);
    std::string out(static_cast<std::size_t>(e.st.st_size) + 100, '\0');
    std::size_t got = 0;
    for (;;) {
      auto n = fs.read(fh, got, out.size() - got, out.data() + got);
      if (n == 0) break;
      got += n;
    }
    fs.release(fh);
    out.resize(got);
    return out;
  }
  // Ciphertext files (not dirs, not the config) anywhere in the cipherdir.
  std::vector<std::string> cipher_files(const std::string& dir = "") {
    std::vector<std::string> out;
    DIR* d = ::opendir((cipher.path + dir).c_str());
    while (dirent* de = ::readdir(d)) {
      std::string n = de->d_name;
      if (n == "." || n == ".." || n.rfind("fusevault.", 0) == 0) continue;
      struct stat st{};
      ::lstat((cipher.path + dir + "/" + n).c_str(), &st);
      if (S_ISDIR(st.st_mode)) {
        for (auto& s : cipher_files(dir + "/" + n)) out.push_back(s);
      } else if (S_ISREG(st.st_mode)) {
        out.push_back(dir + "/" + n);
      }
    }
    ::closedir(d);
    return out;
  }
};

}  // namespace

TEST_CASE_METHOD(TreeFixture, "tree: import copies files, dirs, symlinks, modes and mtimes; verify passes",
                 "[tree]") {
  std::uint64_t last_bytes = 0, calls = 0;
  ImportReport r = import_tree(*vault, src.path, [&](const TreeProgress& p) {
    CHECK(p.bytes >= last_bytes);
    CHECK(p.total_files == 4);
    CHECK(p.total_bytes == (1u << 20) + 4097 + 6);
    last_bytes = p.bytes;
    calls++;
  });
  CHECK(r.conflicts.empty());
  CHECK(r.files == 3);
  CHECK(r.dirs == 2);
  CHECK(r.symlinks == 1);
  CHECK(r.bytes == (1u << 20) + 4097 + 6);
  CHECK(last_bytes == r.bytes);
  CHECK(calls >= 4);

  CHECK(read("a/b/big") == pattern((1 << 20) + 4097, 7));
  CHECK(read("empty").empty());
  CHECK(read("a/x.txt") == "hello\n");
  CHECK(vault->fs().readlink(at("a/link").ino) == "b/big");
  CHECK((at("a/x.txt").st.st_mode & 07777) == 0444);
  CHECK((at("a/b/big").st.st_mode & 07777) == 0640);
  CHECK((at("a/b").st.st_mode & 07777) == 0750);
  CHECK(at("a/x.txt").st.st_mtim.tv_sec == 1000000000);
  CHECK(at("a/x.txt").st.st_mtim.tv_nsec == 123456789);
  CHECK(at("a/b").st.st_mtim.tv_sec == 1000000000);

  VerifyReport v = verify_tree(*vault, src.path);
  CHECK(v.mismatches.empty());
  CHECK(v.files == 3);
  CHECK(v.symlinks == 1);
  CHECK(v.dirs == 2);
  CHECK(v.bytes == r.bytes);

  SECTION("a second import skips everything as identical") {
    ImportReport again = import_tree(*vault, src.path);
    CHECK(again.conflicts.empty());
    CHECK(again.identical == 4);
    CHECK(again.files == 0);
  }
  SECTION("a changed source file is a conflict and nothing is written") {
    fvtest::write_path(src.path + "/a/x.txt", "HELLO\n", 0444);
    fvtest::write_path(src.path + "/new", "new", 0644);
    ImportReport again = import_tree(*vault, src.path);
    REQUIRE(again.conflicts.size() == 1);
    CHECK(again.conflicts[0].rfind("a/x.txt: exists in the vault with", 0) == 0);
    CHECK_THROWS(at("new"));
    VerifyReport v2 = verify_tree(*vault, src.path);
    REQUIRE(v2.mismatches.size() == 2);  // a/x.txt differs, new is missing
    CHECK(v2.mismatches[0] == "a/x.txt: content differs (hash mismatch)");
    CHECK(v2.mismatches[1] == "new: missing in the vault");
  }
  SECTION("a flipped ciphertext byte is reported by verify") {
    vault.reset();
    // The big file is the only ciphertext of more than 1 MiB.
    std::string big;
    for (auto& f : cipher_files()) {
      struct stat st{};
      ::stat((cipher.path + f).c_str(), &st);
      if (st.st_size > (1 << 20)) big = cipher.path + f;
    }
    REQUIRE(!big.empty());
    std::string raw = fvtest::read_path(big);
    raw[raw.size() / 2] ^= 0x01;
    ::chmod(big.c_str(), 0600);
    fvtest::write_path(big, raw);
    vault = Vault::open(cipher.path, SecureBytes::from("pw"));
    VerifyReport bad = verify_tree(*vault, src.path);
    REQUIRE(bad.mismatches.size() == 1);
    CHECK(bad.mismatches[0] == "a/b/big: content does not authenticate (damaged)");
  }
}

TEST_CASE_METHOD(TreeFixture, "tree: kind clashes are conflicts; specials are skipped", "[tree]") {
  std::uint64_t fh = 0;
  vault->fs().create(Fs::kRoot, "a", 0644, O_RDWR | O_EXCL, fh);
  vault->fs().release(fh);
  REQUIRE(::mkfifo((src.path + "/fifo").c_str(), 0600) == 0);
  ImportReport r = import_tree(*vault, src.path);
  REQUIRE(r.conflicts.size() == 1);
  CHECK(r.conflicts[0] == "a: exists in the vault as a file, the source has a directory");
  REQUIRE(r.skipped.size() == 1);
  CHECK(r.skipped[0].rfind("fifo: ", 0) == 0);
  CHECK(r.files == 0);
  CHECK_THROWS(at("empty"));
}

TEST_CASE("tree: a source that is not a directory is refused", "[tree]") {
  fvtest::TempDir cipher{"tree-nodir"};
  Vault::create(cipher.path, SecureBytes::from("pw"), minimum_kdf());
  auto vault = Vault::open(cipher.path, SecureBytes::from("pw"));
  CHECK_THROWS_AS(import_tree(*vault, cipher.path + "/fusevault.conf"), VaultError);
  CHECK_THROWS_AS(import_tree(*vault, cipher.path + "/nope"), VaultError);
}
