// The fs layer without FUSE: every operation and its edges, tamper detection, and the
// golden vaults of formats 1 and 2.
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "format.hpp"
#include "fs.hpp"
#include "fusevault/vault.hpp"
#include "helpers.hpp"

using namespace fusevault;
using fvtest::pattern;

namespace {

// The format the fs tests run on: FV_TEST_FORMAT (ctest runs them for both), else the
// default. The layout gives the ciphertext sizes and offsets the tests inspect.
unsigned test_format() {
  const char* f = std::getenv("FV_TEST_FORMAT");
  return f ? static_cast<unsigned>(std::atoi(f)) : default_format();
}

struct VaultFixture {
  fvtest::TempDir dir{"unit"};
  std::unique_ptr<Vault> vault;
  Fs* fs = nullptr;
  const format::Layout& layout = *format::layout_for(static_cast<std::uint16_t>(test_format()));
  VaultFixture() {
    Vault::create(dir.path, SecureBytes::from("pw"), minimum_kdf(), test_format());
    REQUIRE(Vault::info(dir.path).format_version == test_format());
    reopen();
  }
  void reopen() {
    vault.reset();
    vault = Vault::open(dir.path, SecureBytes::from("pw"));
    fs = &vault->fs();
  }
  std::uint64_t create(std::uint64_t parent, const std::string& name, const std::string& data = "") {
    std::uint64_t fh = 0;
    auto e = fs->create(parent, name, 0644, O_RDWR | O_EXCL, fh);
    if (!data.empty()) REQUIRE(fs->write(fh, 0, data.data(), data.size()) == data.size());
    fs->release(fh);
    return e.ino;
  }
  std::string read_all(std::uint64_t ino) {
    auto fh = fs->open(ino, O_RDONLY);
    std::string out(static_cast<std::size_t>(fs->getattr(ino).st_size) + 10000, '\0');
    auto n = fs->read(fh, 0, out.size(), out.data());
    fs->release(fh);
    out.resize(n);
    return out;
  }
  std::string read_name(std::uint64_t parent, const std::string& name) { return read_all(fs->lookup(parent, name).ino); }
  std::set<std::string> list(std::uint64_t ino) {
    std::set<std::string> s;
    for (auto& e : fs->readdir(ino))
      if (e.name != "." && e.name != "..") s.insert(e.name);
    return s;
  }
  // Cipher files in the root of the cipherdir that belong to plaintext entries.
  std::vector<std::string> disk_entries(const std::string& sub = "") {
    std::vector<std::string> v;
    DIR* d = ::opendir((dir.path + sub).c_str());
    while (dirent* de = ::readdir(d)) {
      std::string n = de->d_name;
      if (n != "." && n != ".." && n != "fusevault.conf" && n != "fusevault.dirid") v.push_back(n);
    }
    ::closedir(d);
    return v;
  }
  int err_of(const std::function<void()>& f) {
    try {
      f();
    } catch (const FsError& e) {
      return e.err;
    }
    return 0;
  }
};

}  // namespace

TEST_CASE_METHOD(VaultFixture, "fs: files of every size around block boundaries round-trip", "[fs]") {
  const std::vector<std::size_t> sizes = {0, 1, 4095, 4096, 4097, 8191, 8192, 8193, 3 * 4096 + 5, 300000};
  for (std::size_t n : sizes) {
    CAPTURE(n);
    const auto data = pattern(n, static_cast<std::uint32_t>(n));
    auto ino = create(Fs::kRoot, "f" + std::to_string(n), data);
    CHECK(fs->getattr(ino).st_size == static_cast<off_t>(n));
    CHECK(read_all(ino) == data);
  }
  // Ciphertext sizes follow the format exactly, and a fresh fs reads everything back.
  std::multiset<std::uint64_t> disk_sizes, want_sizes;
  for (auto& d : disk_entries()) {
    struct stat st{};
    REQUIRE(::stat((dir.path + "/" + d).c_str(), &st) == 0);
    disk_sizes.insert(static_cast<std::uint64_t>(st.st_size));
  }
  for (auto n : sizes) want_sizes.insert(format::cipher_size(n, layout));
  CHECK(disk_sizes == want_sizes);
  reopen();
  for (std::size_t n : sizes) {
    auto e = fs->lookup(Fs::kRoot, "f" + std::to_string(n));
    CHECK(e.st.st_size == static_cast<off_t>(n));
    CHECK(read_all(e.ino) == pattern(n, static_cast<std::uint32_t>(n)));
  }
}

TEST_CASE_METHOD(VaultFixture, "fs: random-access writes and truncates match a model", "[fs]") {
  const unsigned seed = 4242;
  CAPTURE(seed);
  std::mt19937 rng(seed);
  std::uint64_t fh = 0;
  auto e = fs->create(Fs::kRoot, "model", 0600, O_RDWR, fh);
  std::string model;
  for (int step = 0; step < 3000; step++) {
    CAPTURE(step);
    const int op = static_cast<int>(rng() % 10);
    if (op < 6) {
      const std::size_t off = rng() % 50000, len = 1 + rng() % 9000;
      const auto d = pattern(len, static_cast<std::uint32_t>(step));
      if (model.size() < off + len) model.resize(off + len, '\0');
      model.replace(off, len, d);
      REQUIRE(fs->write(fh, off, d.data(), d.size()) == len);
    } else if (op < 8) {
      const std::size_t ns = rng() % 2 ? rng() % 60000 : (rng() % 14) * 4096;
      model.resize(ns, '\0');
      SetAttrRequest r;
      r.set_size = true;
      r.size = ns;
      REQUIRE(fs->setattr(e.ino, fh, r).st_size == static_cast<off_t>(ns));
    } else {
      const std::size_t off = rng() % 60000, len = rng() % 20000;
      std::string buf(len, '\0');
      const auto n = fs->read(fh, off, len, buf.data());
      const std::string want = off < model.size() ? model.substr(off, len) : "";
      REQUIRE(std::string(buf.data(), n) == want);
    }
    REQUIRE(fs->getattr(e.ino).st_size == static_cast<off_t>(model.size()));
  }
  fs->release(fh);
  CHECK(read_all(e.ino) == model);
  reopen();  // and from disk, with a fresh fs
  CHECK(read_name(Fs::kRoot, "model") == model);
}

TEST_CASE_METHOD(VaultFixture, "fs: sparse growth and truncation read as zeros", "[fs]") {
  std::uint64_t fh = 0;
  auto e = fs->create(Fs::kRoot, "sparse", 0600, O_RDWR, fh);
  REQUIRE(fs->write(fh, 10000, "abc", 3) == 3);
  auto s = read_all(e.ino);
  CHECK(s.size() == 10003);
  CHECK(s.substr(0, 10000) == std::string(10000, '\0'));
  CHECK(s.substr(10000) == "abc");
  SetAttrRequest r;
  r.set_size = true;
  r.size = 5000;  // into the middle of block 1
  fs->setattr(e.ino, fh, r);
  CHECK(read_all(e.ino) == std::string(5000, '\0'));
  r.size = 3 * 4096 + 1;  // grow: holes are real encrypted zero blocks
  fs->setattr(e.ino, fh, r);
  CHECK(read_all(e.ino) == std::string(3 * 4096 + 1, '\0'));
  struct stat st{};
  REQUIRE(::stat((dir.path + "/" + disk_entries()[0]).c_str(), &st) == 0);
  CHECK(static_cast<std::uint64_t>(st.st_size) == format::cipher_size(3 * 4096 + 1, layout));
  r.size = 8192;  // to a block boundary
  fs->setattr(e.ino, fh, r);
  CHECK(fs->getattr(e.ino).st_size == 8192);
  REQUIRE(fs->write(fh, 8192, "z", 1) == 1);
  CHECK(read_all(e.ino) == std::string(8192, '\0') + "z");
  // A large write (sealed before the lock) past the end with no write on its way to fill
  // the gap: it waits a moment for one, then the gap becomes zero blocks.
  const auto big = pattern(200000, 5);
  REQUIRE(fs->write(fh, 1 << 20, big.data(), big.size()) == big.size());
  const std::string want = std::string(8192, '\0') + "z" + std::string((1 << 20) - 8193, '\0') + big;
  CHECK(read_all(e.ino) == want);
  fs->release(fh);
  reopen();
  CHECK(read_name(Fs::kRoot, "sparse") == want);
}

TEST_CASE_METHOD(VaultFixture, "fs: emptying a file gives it a new file id", "[fs]") {
  std::uint64_t fh = 0;
  auto e = fs->create(Fs::kRoot, "f", 0600, O_RDWR, fh);
  fs->write(fh, 0, "hello", 5);
  const std::string p = dir.path + "/" + disk_entries()[0];
  const auto before = fvtest::read_path(p).substr(4, 16);
  SetAttrRequest r;
  r.set_size = true;
  r.size = 0;
  fs->setattr(e.ino, fh, r);
  fs->write(fh, 0, "hello", 5);
  fs->release(fh);
  CHECK(fvtest::read_path(p).substr(4, 16) != before);
  CHECK(read_all(e.ino) == "hello");
}

TEST_CASE_METHOD(VaultFixture, "fs: directories, rename within and across, over existing", "[fs]") {
  auto a = fs->mkdir(Fs::kRoot, "a", 0755).ino;
  auto b = fs->mkdir(Fs::kRoot, "b", 0755).ino;
  create(a, "x", "xxx");
  create(b, "y", "yyy");
  CHECK(err_of([&] { fs->mkdir(Fs::kRoot, "a", 0755); }) == EEXIST);
  fs->rename(a, "x", b, "y", 0);  // across dirs, over an existing file
  CHECK(list(a).empty());
  CHECK(list(b) == std::set<std::string>{"y"});
  CHECK(read_name(b, "y") == "xxx");
  create(a, "z", "zzz");
  CHECK(err_of([&] { fs->rename(a, "z", b, "y", RENAME_NOREPLACE); }) == EEXIST);
  fs->rename(a, "z", b, "y", RENAME_EXCHANGE);
  CHECK(read_name(b, "y") == "zzz");
  CHECK(read_name(a, "z") == "xxx");
  // Directory rename keeps its children readable (names are bound to the dir's own id).
  auto sub = fs->mkdir(a, "sub", 0700).ino;
  create(sub, "deep", "deep data");
  fs->rename(a, "sub", b, "moved", 0);
  CHECK(read_name(sub, "deep") == "deep data");
  CHECK(read_name(fs->lookup(b, "moved").ino, "deep") == "deep data");
  // Over an empty directory; not over a non-empty one.
  fs->mkdir(Fs::kRoot, "empty", 0755);
  fs->rename(b, "moved", Fs::kRoot, "empty", 0);
  CHECK(read_name(fs->lookup(Fs::kRoot, "empty").ino, "deep") == "deep data");
  fs->mkdir(Fs::kRoot, "other", 0755);
  CHECK(err_of([&] { fs->rename(Fs::kRoot, "other", Fs::kRoot, "empty", 0); }) == ENOTEMPTY);
  CHECK(err_of([&] { fs->rmdir(Fs::kRoot, "empty"); }) == ENOTEMPTY);
  CHECK(err_of([&] { fs->rmdir(Fs::kRoot, "nope"); }) == ENOENT);
  CHECK(err_of([&] { fs->unlink(Fs::kRoot, "other"); }) == EISDIR);
  fs->rmdir(Fs::kRoot, "other");
  CHECK(list(Fs::kRoot) == std::set<std::string>{"a", "b", "empty"});
  reopen();
  CHECK(list(Fs::kRoot) == std::set<std::string>{"a", "b", "empty"});
  CHECK(read_name(fs->lookup(Fs::kRoot, "empty").ino, "deep") == "deep data");
}

TEST_CASE_METHOD(VaultFixture, "fs: long and unicode names, sidecars follow the name", "[fs]") {
  const std::string n255(255, 'L');
  const std::string n200 = std::string(190, 'M') + "ünï";
  const std::string uni = "日本語-ファイル-ünïcödé-🙂";
  create(Fs::kRoot, n255, "long");
  create(Fs::kRoot, uni, "uni");
  fs->mkdir(Fs::kRoot, n200, 0755);
  CHECK(list(Fs::kRoot) == std::set<std::string>{n255, n200, uni});
  CHECK(read_name(Fs::kRoot, n255) == "long");
  CHECK(err_of([&] { create(Fs::kRoot, std::string(256, 'x')); }) == ENAMETOOLONG);
  for (auto& d : disk_entries()) CHECK(d.size() <= 255);
  CHECK(disk_entries().size() == 5);  // 2 long names + 2 sidecars + 1 short
  fs->rename(Fs::kRoot, n255, Fs::kRoot, "short", 0);
  CHECK(disk_entries().size() == 4);  // the old name and its sidecar are gone, "short" is new
  fs->rename(Fs::kRoot, "short", Fs::kRoot, n255 + "", 0);
  auto l = fs->link(fs->lookup(Fs::kRoot, n255).ino, Fs::kRoot, std::string(250, 'H'));
  CHECK(l.st.st_nlink == 2);
  fs->unlink(Fs::kRoot, n255);
  fs->unlink(Fs::kRoot, std::string(250, 'H'));
  fs->rmdir(Fs::kRoot, n200);
  CHECK(disk_entries().size() == 1);
  reopen();
  CHECK(list(Fs::kRoot) == std::set<std::string>{uni});
}

TEST_CASE_METHOD(VaultFixture, "fs: hard links share content and count", "[fs]") {
  auto d = fs->mkdir(Fs::kRoot, "d", 0755).ino;
  auto ino = create(Fs::kRoot, "orig", "shared");
  auto e = fs->link(ino, d, "link");
  CHECK(e.ino == ino);
  CHECK(e.st.st_nlink == 2);
  std::uint64_t fh = fs->open(ino, O_RDWR);
  fs->write(fh, 0, "SH", 2);
  fs->release(fh);
  CHECK(read_name(d, "link") == "SHared");
  fs->unlink(Fs::kRoot, "orig");
  CHECK(fs->getattr(ino).st_nlink == 1);
  CHECK(read_name(d, "link") == "SHared");
  CHECK(err_of([&] { fs->link(d, Fs::kRoot, "dirlink"); }) == EPERM);
}

TEST_CASE_METHOD(VaultFixture, "fs: unlink or rename while open; rmdir after unlinking an open child", "[fs]") {
  auto d = fs->mkdir(Fs::kRoot, "d", 0755).ino;
  std::uint64_t fh = 0;
  auto e = fs->create(d, "open", 0600, O_RDWR, fh);
  fs->write(fh, 0, "before", 6);
  fs->rename(d, "open", Fs::kRoot, "renamed", 0);
  fs->write(fh, 6, "-after-rename", 13);
  CHECK(read_name(Fs::kRoot, "renamed") == "before-after-rename");
  fs->unlink(Fs::kRoot, "renamed");
  fs->write(fh, 0, "B", 1);
  std::string buf(64, '\0');
  CHECK(std::string(buf.data(), fs->read(fh, 0, 64, buf.data())) == "Before-after-rename");
  CHECK(fs->getattr(e.ino).st_nlink == 0);
  SetAttrRequest r;
  r.set_size = true;
  r.size = 3;
  CHECK(fs->setattr(e.ino, fh, r).st_size == 3);
  // A second open of the unlinked inode works too.
  auto fh2 = fs->open(e.ino, O_RDONLY);
  CHECK(std::string(buf.data(), fs->read(fh2, 0, 64, buf.data())) == "Bef");
  fs->release(fh2);
  std::uint64_t fh3 = 0;
  fs->create(d, "child", 0600, O_RDWR, fh3);
  fs->unlink(d, "child");
  fs->rmdir(Fs::kRoot, "d");
  fs->write(fh3, 0, "still", 5);
  CHECK(std::string(buf.data(), fs->read(fh3, 0, 64, buf.data())) == "still");
  fs->release(fh3);
  fs->release(fh);
  CHECK(disk_entries().empty());
}

TEST_CASE_METHOD(VaultFixture, "fs: symlinks, chmod, utimens, statfs", "[fs]") {
  auto s = fs->symlink(Fs::kRoot, "ln", "../some/where");
  CHECK(S_ISLNK(s.st.st_mode));
  CHECK(s.st.st_size == 13);
  CHECK(fs->readlink(s.ino) == "../some/where");
  CHECK(err_of([&] { fs->symlink(Fs::kRoot, "big", std::string(5000, 'x')); }) == ENAMETOOLONG);
  char target[256];
  auto n = ::readlink((dir.path + "/" + disk_entries()[0]).c_str(), target, sizeof target);
  CHECK(std::string(target, static_cast<std::size_t>(n)).find("some") == std::string::npos);
  auto f = create(Fs::kRoot, "f", "x");
  SetAttrRequest r;
  r.set_mode = true;
  r.mode = 0640;
  r.set_mtime = true;
  r.mtime = {1000000000, 5};
  auto st = fs->setattr(f, 0, r);
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(st.st_mtim.tv_sec == 1000000000);
  CHECK(fs->statfs().f_namemax == 255);
}

TEST_CASE_METHOD(VaultFixture, "fs: lookups and forgets leave no nodes behind", "[fs]") {
  auto d = fs->mkdir(Fs::kRoot, "d", 0755).ino;
  for (int i = 0; i < 50; i++) {
    auto ino = create(d, "f" + std::to_string(i), "x");
    fs->forget(ino, 1);
  }
  CHECK(fs->stats().nodes == 2);
  for (int i = 0; i < 50; i++) fs->forget(fs->lookup(d, "f" + std::to_string(i)).ino, 1);
  fs->forget(d, 1);
  CHECK(fs->stats().nodes == 1);
  CHECK(list(Fs::kRoot) == std::set<std::string>{"d"});
}

TEST_CASE("fs: many directories stay within the dir fd cache (RLIMIT_NOFILE respected)", "[fs]") {
  rlimit old{};
  ::getrlimit(RLIMIT_NOFILE, &old);
  rlimit low = old;
  low.rlim_cur = 256;  // cache capacity becomes 32
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  {
    VaultFixture f;
    std::uint64_t parent = Fs::kRoot;
    for (int i = 0; i < 40; i++) parent = f.fs->mkdir(parent, "level" + std::to_string(i), 0755).ino;
    f.create(parent, "leaf", "deep");
    for (int i = 0; i < 300; i++) {
      auto d = f.fs->mkdir(Fs::kRoot, "wide" + std::to_string(i), 0755).ino;
      f.create(d, "x", "w" + std::to_string(i));
    }
    CHECK(f.fs->stats().cached_dir_fds <= 32);
    CHECK(f.read_name(parent, "leaf") == "deep");  // 40 levels re-opened through evictions
    for (int i = 0; i < 300; i += 37)
      CHECK(f.read_name(f.fs->lookup(Fs::kRoot, "wide" + std::to_string(i)).ino, "x") == "w" + std::to_string(i));
  }
  ::setrlimit(RLIMIT_NOFILE, &old);
}

// Large writes seal the blocks they cover whole before they take the file's lock, so
// several writes to one file seal at once; their commits (edges, size) stay serialized.
// Pieces of 40 blocks and 1000 bytes share their edge blocks with their neighbours.
TEST_CASE_METHOD(VaultFixture, "fs: large writes to one file from several threads commit whole, readers never see EIO",
                 "[fs][concurrency]") {
  constexpr std::size_t kPiece = 40 * 4096 + 1000;
  constexpr int kPieces = 8, kRounds = 12;
  auto seed = [](int piece, int round) { return static_cast<std::uint32_t>(piece * 1000 + round); };
  auto ino = create(Fs::kRoot, "shared");
  std::atomic<bool> writing{true};
  std::atomic<int> read_errors{0};
  std::thread reader([&] {
    auto fh = fs->open(ino, O_RDONLY);
    std::string buf(kPiece * kPieces, '\0');
    while (writing.load()) {
      if (err_of([&] { fs->read(fh, 0, buf.size(), buf.data()); }) != 0) read_errors++;
    }
    fs->release(fh);
  });
  // n threads, thread t writing pieces t, t + n, ... in every round.
  auto start_writers = [&](int n) {
    std::vector<std::thread> ws;
    for (int t = 0; t < n; t++)
      ws.emplace_back([&, t, n] {
        auto fh = fs->open(ino, O_WRONLY);
        for (int round = 0; round < kRounds; round++)
          for (int piece = t; piece < kPieces; piece += n) {
            const auto d = pattern(kPiece, seed(piece, round));
            fs->write(fh, static_cast<std::uint64_t>(piece) * kPiece, d.data(), d.size());
          }
        fs->release(fh);
      });
    return ws;
  };
  SECTION("writers of their own pieces") {
    auto ws = start_writers(4);
    for (auto& w : ws) w.join();
    writing = false;
    reader.join();
    CHECK(read_errors == 0);
    std::string want;
    for (int piece = 0; piece < kPieces; piece++) want += pattern(kPiece, seed(piece, kRounds - 1));
    CHECK(read_all(ino) == want);
    reopen();
    CHECK(read_name(Fs::kRoot, "shared") == want);
  }
  SECTION("with the file emptied meanwhile (a new file id under a presealing write)") {
    auto ws = start_writers(2);
    ws.emplace_back([&] {
      auto fh = fs->open(ino, O_WRONLY);
      SetAttrRequest r;
      r.set_size = true;
      r.size = 0;
      for (int i = 0; i < 40; i++) {
        fs->setattr(ino, fh, r);
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
      fs->release(fh);
    });
    for (auto& w : ws) w.join();
    writing = false;
    reader.join();
    CHECK(read_errors == 0);
    // Every piece inside the file is whole: zeros (grown over) or one write's pattern.
    const std::string got = read_all(ino);
    CHECK(got.size() % kPiece == 0);
    const std::string zeros(kPiece, '\0');
    for (std::size_t piece = 0; piece < got.size() / kPiece; piece++) {
      CAPTURE(piece);
      const std::string part = got.substr(piece * kPiece, kPiece);
      bool known = part == zeros;
      for (int round = 0; round < kRounds && !known; round++) known = part == pattern(kPiece, seed(static_cast<int>(piece), round));
      CHECK(known);
    }
    reopen();
    CHECK(read_name(Fs::kRoot, "shared") == got);
  }
}

// The disk refusing a write part-way (here the file size limit: EFBIG; a full disk gives
// ENOSPC the same way) must not cost the data that was there. Extending a file re-seals its
// old last block without the last-block flag, so before the file was put back this lost
// the old last block (EIO) and left a tail of new blocks past the old size.
TEST_CASE_METHOD(VaultFixture, "fs: a write or growth the disk refuses part-way leaves the file as it was",
                 "[fs]") {
  struct sigaction ign {}, old_sa{};
  ign.sa_handler = SIG_IGN;
  REQUIRE(::sigaction(SIGXFSZ, &ign, &old_sa) == 0);
  rlimit old_lim{};
  ::getrlimit(RLIMIT_FSIZE, &old_lim);
  auto limit = [&](std::uint64_t bytes) {
    rlimit r = old_lim;
    r.rlim_cur = bytes;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &r) == 0);
  };
  const auto more = pattern(1 << 20, 99);
  for (std::size_t n : {std::size_t{0}, std::size_t{5000}, std::size_t{8192}, std::size_t{300000}}) {
    for (bool by_truncate : {false, true}) {
      CAPTURE(n, by_truncate);
      const std::string name = "f" + std::to_string(n) + (by_truncate ? "t" : "w");
      const auto data = pattern(n, static_cast<std::uint32_t>(n));
      const auto before = disk_entries();
      auto ino = create(Fs::kRoot, name, data);
      std::string disk;
      for (auto& d : disk_entries())
        if (std::find(before.begin(), before.end(), d) == before.end()) disk = dir.path + "/" + d;
      REQUIRE(!disk.empty());
      auto fh = fs->open(ino, O_RDWR);
      limit(format::cipher_size(n, layout) + 200 * 1024);  // room for part of the extension
      const int err = err_of([&] {
        if (by_truncate) {
          SetAttrRequest r;
          r.set_size = true;
          r.size = n + more.size();
          fs->setattr(ino, fh, r);
        } else {
          fs->write(fh, n, more.data(), more.size());
        }
      });
      limit(old_lim.rlim_cur);
      CHECK(err == EFBIG);
      CHECK(fs->getattr(ino).st_size == static_cast<off_t>(n));
      struct stat st{};
      REQUIRE(::stat(disk.c_str(), &st) == 0);
      CHECK(static_cast<std::uint64_t>(st.st_size) <= std::max<std::uint64_t>(format::cipher_size(n, layout), format::kHeaderSize));
      CHECK(read_all(ino) == data);
      // The file goes on: the same extension succeeds once the disk takes it.
      REQUIRE(fs->write(fh, n, more.data(), more.size()) == more.size());
      fs->release(fh);
      CHECK(read_all(ino) == data + more);
    }
  }
  ::sigaction(SIGXFSZ, &old_sa, nullptr);
  reopen();
  for (std::size_t n : {std::size_t{0}, std::size_t{5000}, std::size_t{8192}, std::size_t{300000}})
    for (const char* k : {"t", "w"})
      CHECK(read_name(Fs::kRoot, "f" + std::to_string(n) + k) == pattern(n, static_cast<std::uint32_t>(n)) + more);
}

namespace {
// On-disk tamper helpers operating on the raw ciphertext files.
std::string raw(const std::string& p) { return fvtest::read_path(p); }
void put(const std::string& p, const std::string& d) {
  ::chmod(p.c_str(), 0600);
  fvtest::write_path(p, d);
}
}  // namespace

TEST_CASE_METHOD(VaultFixture, "fs: tampered ciphertext yields EIO, never wrong bytes", "[fs][tamper]") {
  const auto A = pattern(5 * 4096 + 100, 1), B = pattern(5 * 4096 + 100, 2);
  create(Fs::kRoot, "A", A);
  const std::string pa = dir.path + "/" + disk_entries().at(0);
  create(Fs::kRoot, "B", B);
  std::string pb;
  for (auto& n : disk_entries())
    if (dir.path + "/" + n != pa) pb = dir.path + "/" + n;
  vault.reset();
  fs = nullptr;
  const auto origA = raw(pa), origB = raw(pb);
  auto block_offset = [&](std::uint64_t i) { return static_cast<std::size_t>(format::block_offset(i, layout)); };
  const std::size_t kCipherBlockSize = layout.cipher_block();
  auto expect_eio_range = [&](std::uint64_t off, std::size_t len, bool expect) {
    reopen();
    auto ino = fs->lookup(Fs::kRoot, "A").ino;
    auto fh = fs->open(ino, O_RDONLY);
    std::string buf(len, '\0');
    int err = 0;
    std::size_t n = 0;
    try {
      n = fs->read(fh, off, len, buf.data());
    } catch (const FsError& e) {
      err = e.err;
    }
    fs->release(fh);
    if (expect)
      CHECK(err == EIO);
    else {
      CHECK(err == 0);
      CHECK(std::string(buf.data(), n) == A.substr(off, len));
    }
  };
  SECTION("bit flip in block 2: that range fails, others read") {
    auto t = origA;
    t[block_offset(2) + 100] ^= 0x20;
    put(pa, t);
    expect_eio_range(2 * 4096, 10, true);
    expect_eio_range(0, 8192, false);
    expect_eio_range(3 * 4096, 4096, false);
  }
  // The bytes before the ciphertext: format 1's nonce; format 2's key id, then its nonce
  // (a counter and four zero bytes).
  for (const std::size_t at : layout.version == format::kFormatV1 ? std::vector<std::size_t>{3, 23}
                                                                  : std::vector<std::size_t>{3, 16 + 2, 16 + 10}) {
    SECTION("flip of byte " + std::to_string(at) + " of a block's nonce or key id") {
      auto t = origA;
      t[block_offset(1) + at] ^= 1;
      put(pa, t);
      expect_eio_range(4096, 1, true);
      expect_eio_range(0, 4096, false);
    }
  }
  SECTION("blocks swapped within a file") {
    auto t = origA;
    for (std::size_t i = 0; i < kCipherBlockSize; i++) std::swap(t[block_offset(1) + i], t[block_offset(3) + i]);
    put(pa, t);
    expect_eio_range(4096, 1, true);
    expect_eio_range(3 * 4096, 1, true);
    expect_eio_range(0, 4096, false);
  }
  SECTION("block moved from another file at the same index") {
    auto t = origA;
    t.replace(block_offset(2), kCipherBlockSize, origB.substr(block_offset(2), kCipherBlockSize));
    put(pa, t);
    expect_eio_range(2 * 4096, 4096, true);
  }
  SECTION("header from another file") {
    auto t = origA;
    t.replace(0, format::kHeaderSize, origB.substr(0, format::kHeaderSize));
    put(pa, t);
    expect_eio_range(0, 1, true);
  }
  SECTION("truncated at a block boundary (the last-block flag)") {
    put(pa, origA.substr(0, block_offset(3)));
    expect_eio_range(2 * 4096, 4096, true);
    expect_eio_range(0, 4096, false);
  }
  SECTION("truncated inside a block and to an impossible size") {
    put(pa, origA.substr(0, block_offset(3) + 2000));
    expect_eio_range(3 * 4096, 100, true);
    put(pa, origA.substr(0, block_offset(3) + 20));
    expect_eio_range(0, 1, true);
  }
  SECTION("whole ciphertext of another file under this name is accepted (documented)") {
    put(pa, origB);
    reopen();
    CHECK(read_name(Fs::kRoot, "A") == B);
  }
  SECTION("fsck names exactly the damaged file") {
    auto t = origA;
    t[block_offset(4) + 50] ^= 0x01;
    put(pa, t);
    reopen();
    auto r = fsck(*vault);
    REQUIRE(r.damaged.size() == 1);
    CHECK(r.damaged[0].rfind("/A:", 0) == 0);
  }
}

TEST_CASE_METHOD(VaultFixture, "fs: format 2 never seals two blocks with one key and nonce", "[fs][v2]") {
  if (layout.version != format::kFormatV2) {
    const char* must = std::getenv("PW_MUST_WORK");
    if (must && std::string(must) == "1") FAIL("format 2 is not this machine's default");
    WARN("format 2 is not this machine's default: not run");
    return;
  }
  // (file id, key id, nonce) of every block -> the block, over every state the file goes
  // through. The same triple may only ever come back as the very same block.
  std::map<std::string, std::string> seen;
  std::set<std::string> sessions;
  std::size_t collisions = 0;
  std::string path;
  auto record = [&] {
    const auto raw = fvtest::read_path(path);
    if (raw.empty()) return;
    REQUIRE(raw.size() > format::kHeaderSize + layout.overhead);
    const std::string fid = raw.substr(4, 16);
    for (std::size_t off = format::kHeaderSize; off < raw.size(); off += layout.cipher_block()) {
      const std::string blk = raw.substr(off, layout.cipher_block());
      REQUIRE(blk.size() > layout.overhead);
      auto [it, fresh] = seen.emplace(fid + blk.substr(0, 28), blk);
      if (!fresh && it->second != blk) collisions++;
      sessions.insert(fid + blk.substr(0, 16));
    }
    CHECK(collisions == 0);
  };
  auto setsize = [&](std::uint64_t ino, std::uint64_t fh, std::uint64_t size) {
    SetAttrRequest r;
    r.set_size = true;
    r.size = size;
    fs->setattr(ino, fh, r);
  };
  std::uint64_t fh = 0;
  auto e = fs->create(Fs::kRoot, "f", 0600, O_RDWR, fh);
  const std::string big = pattern(40 * 4096, 1);  // 40 blocks: sealed by the pool
  fs->write(fh, 0, big.data(), big.size());
  path = dir.path + "/" + disk_entries().at(0);
  record();
  fs->write(fh, 5 * 4096 + 100, big.data(), 2 * 4096 + 200);  // unaligned, over 3 blocks
  record();
  const auto snapshot = fvtest::read_path(path);
  fs->write(fh, 40 * 4096, "tail", 4);  // append at a boundary: block 39 is resealed
  record();
  const auto fh2 = fs->open(e.ino, O_RDWR);  // a second handle writes in the same session
  fs->write(fh2, 100, "second handle", 13);
  fs->write(fh, 200, "first handle", 12);
  record();
  setsize(e.ino, fh, 300 * 4096 + 5);  // grow by more than one chunk of 256 blocks
  record();
  setsize(e.ino, fh, 50 * 4096 + 123);  // into the middle of a block
  record();
  CHECK(sessions.size() == 1);  // all of that in one session: the counter moved on
  // An old copy put back under the open file: the session goes on counting.
  fvtest::write_path(path, snapshot);
  fs->write(fh, 0, big.data(), 4096);
  record();
  fs->release(fh2);
  fs->release(fh);
  CHECK(sessions.size() == 1);
  fh = fs->open(e.ino, O_RDWR | O_TRUNC);  // emptied: a new file id, a new session
  fs->write(fh, 0, "first version", 13);
  record();
  for (int i = 0; i < 5; i++) {
    const std::string d = "rewrite " + std::to_string(i);
    fs->write(fh, 0, d.data(), d.size());
    record();
  }
  fs->release(fh);
  CHECK(sessions.size() == 2);
  const auto old_copy = fvtest::read_path(path);
  fh = fs->open(e.ino, O_RDWR);
  fs->write(fh, 0, "second session", 14);
  record();
  fs->release(fh);
  CHECK(sessions.size() == 3);
  // Restore the old copy (a backup, a snapshot) and write to it again: a new session,
  // so its first counter values cannot collide with the ones the old copy used.
  vault.reset();
  fs = nullptr;
  fvtest::write_path(path, old_copy);
  reopen();
  e = fs->lookup(Fs::kRoot, "f");
  CHECK(read_all(e.ino) == "rewrite 4sion");
  fh = fs->open(e.ino, O_RDWR);
  fs->write(fh, 0, "after restore", 13);
  record();
  fs->release(fh);
  CHECK(sessions.size() == 4);
  CHECK(read_all(e.ino) == "after restore");
  CHECK(collisions == 0);
  CHECK(seen.size() > 300);  // every step sealed the blocks it should
}

TEST_CASE_METHOD(VaultFixture, "fs: tampered names and directory ids are detected", "[fs][tamper]") {
  auto d = fs->mkdir(Fs::kRoot, "dir", 0755).ino;
  create(d, "inner", "data");
  create(Fs::kRoot, "top", "t");
  vault.reset();
  auto ents = disk_entries();
  REQUIRE(ents.size() == 2);
  std::string file, sub;
  for (auto& e : ents) {
    struct stat st{};
    ::lstat((dir.path + "/" + e).c_str(), &st);
    (S_ISDIR(st.st_mode) ? sub : file) = e;
  }
  SECTION("renamed ciphertext name") {
    std::string bad = file;
    bad[10] = bad[10] == 'A' ? 'B' : 'A';
    REQUIRE(::rename((dir.path + "/" + file).c_str(), (dir.path + "/" + bad).c_str()) == 0);
    reopen();
    CHECK(list(Fs::kRoot) == std::set<std::string>{"dir"});
    auto r = fsck(*vault);
    REQUIRE(r.damaged.size() == 1);
    CHECK(r.damaged[0].find("name does not authenticate") != std::string::npos);
  }
  SECTION("entry moved into another directory") {
    REQUIRE(::rename((dir.path + "/" + file).c_str(), (dir.path + "/" + sub + "/" + file).c_str()) == 0);
    reopen();
    CHECK(list(fs->lookup(Fs::kRoot, "dir").ino) == std::set<std::string>{"inner"});
    CHECK(fsck(*vault).damaged.size() == 1);
  }
  SECTION("directory id replaced") {
    const std::string idp = dir.path + "/" + sub + "/fusevault.dirid";
    ::chmod(idp.c_str(), 0600);
    fvtest::write_path(idp, std::string(16, 'x'));
    reopen();
    CHECK(list(fs->lookup(Fs::kRoot, "dir").ino).empty());
    CHECK(fsck(*vault).damaged.size() == 1);
  }
  SECTION("FIFOs put in place of a directory id and of a file's ciphertext") {
    // Neither hangs the filesystem in open(), and fsck names both.
    const std::string idp = dir.path + "/" + sub + "/fusevault.dirid";
    ::chmod(idp.c_str(), 0600);
    REQUIRE(::unlink(idp.c_str()) == 0);
    REQUIRE(::mkfifo(idp.c_str(), 0600) == 0);
    const std::string fp = dir.path + "/" + file;
    REQUIRE(::unlink(fp.c_str()) == 0);
    REQUIRE(::mkfifo(fp.c_str(), 0600) == 0);
    reopen();
    CHECK_THROWS_AS(list(fs->lookup(Fs::kRoot, "dir").ino), FsError);
    auto r = fsck(*vault);
    CHECK(r.damaged.size() == 2);
  }
  SECTION("untampered vault passes fsck") {
    reopen();
    auto r = fsck(*vault);
    CHECK(r.damaged.empty());
    CHECK(r.files == 2);
    CHECK(r.dirs == 1);
  }
}

TEST_CASE("vault: wrong passphrase, passwd, config tamper", "[vault]") {
  fvtest::TempDir dir("vault");
  Vault::create(dir.path, SecureBytes::from("one"), minimum_kdf());
  CHECK_THROWS_AS(Vault::create(dir.path, SecureBytes::from("one"), minimum_kdf()), VaultError);
  CHECK_THROWS_AS(Vault::open(dir.path, SecureBytes::from("two")), WrongPassphrase);
  {
    auto v = Vault::open(dir.path, SecureBytes::from("one"));
    std::uint64_t fh = 0;
    v->fs().create(Fs::kRoot, "keep", 0600, O_RDWR, fh);
    v->fs().write(fh, 0, "kept", 4);
    v->fs().release(fh);
  }
  CHECK_THROWS_AS(Vault::change_passphrase(dir.path, SecureBytes::from("bad"), SecureBytes::from("two")), WrongPassphrase);
  Vault::change_passphrase(dir.path, SecureBytes::from("one"), SecureBytes::from("two"));
  CHECK_THROWS_AS(Vault::open(dir.path, SecureBytes::from("one")), WrongPassphrase);
  auto v = Vault::open(dir.path, SecureBytes::from("two"));
  auto e = v->fs().lookup(Fs::kRoot, "keep");
  CHECK(e.st.st_size == 4);
  v.reset();
  struct stat st{};
  CHECK(::stat((dir.path + "/fusevault.conf.tmp").c_str(), &st) != 0);
  // Lowering the KDF cost in the config is detected, not obeyed.
  const std::string cp = dir.path + "/fusevault.conf";
  auto c = fvtest::read_path(cp);
  c[36] = 2;  // opslimit byte 0: 1 -> 2
  ::chmod(cp.c_str(), 0600);
  fvtest::write_path(cp, c);
  CHECK_THROWS_AS(Vault::open(dir.path, SecureBytes::from("two")), WrongPassphrase);
  CHECK(Vault::info(dir.path).kdf_params.opslimit == 2);
}

// The golden vaults in tests/fusevault/golden (vault: format 1, vault-v2: format 2) were
// made with passphrase "golden" by the manual case below:
//   FV_GOLDEN_OUT=DIR FV_TEST_FORMAT=N fusevault_unit_tests "[.golden-gen]"
// Their plaintext is regenerated here.
namespace {
struct GoldenFile {
  std::string path;
  std::size_t size;
  std::uint32_t seed;
};
const std::vector<GoldenFile> kGolden = {
    {"empty", 0, 0},          {"one", 1, 1},
    {"block-1", 4095, 2},     {"block", 4096, 3},
    {"block+1", 4097, 4},     {"multi", 3 * 4096 + 5, 5},
    {"ünïcödé-目录/inner", 100, 6},
    {"ünïcödé-目录/" + std::string(200, 'n'), 7000, 7},
    {"sub/deeper/file", 12345, 8},
};
}  // namespace

TEST_CASE("golden vault: generate (manual)", "[.golden-gen]") {
  const char* out = std::getenv("FV_GOLDEN_OUT");
  REQUIRE(out);
  Vault::create(out, SecureBytes::from("golden"), minimum_kdf(), test_format());
  auto v = Vault::open(out, SecureBytes::from("golden"));
  auto& fs = v->fs();
  for (auto& g : kGolden) {
    std::uint64_t parent = Fs::kRoot;
    std::string rest = g.path;
    for (auto p = rest.find('/'); p != std::string::npos; p = rest.find('/')) {
      const auto part = rest.substr(0, p);
      try {
        parent = fs.lookup(parent, part).ino;
      } catch (const FsError&) {
        parent = fs.mkdir(parent, part, 0755).ino;
      }
      rest = rest.substr(p + 1);
    }
    std::uint64_t fh = 0;
    fs.create(parent, rest, 0644, O_RDWR, fh);
    const auto d = pattern(g.size, g.seed);
    fs.write(fh, 0, d.data(), d.size());
    fs.release(fh);
  }
  fs.symlink(Fs::kRoot, "link", "sub/deeper/file");
}

TEST_CASE("golden vault: this version reads the checked-in vaults of formats 1 and 2", "[golden]") {
  const unsigned version = GENERATE(1u, 2u);
  CAPTURE(version);
  const std::string src = version == 1 ? FV_GOLDEN_DIR "/vault" : FV_GOLDEN_DIR "/vault-v2";
  REQUIRE(Vault::info(src).format_version == version);
  auto v = Vault::open(src, SecureBytes::from("golden"));
  CHECK_THROWS_AS(Vault::open(src, SecureBytes::from("Golden")), WrongPassphrase);
  auto& fs = v->fs();
  for (auto& g : kGolden) {
    CAPTURE(g.path);
    std::uint64_t ino = Fs::kRoot;
    std::string rest = g.path;
    for (;;) {
      auto p = rest.find('/');
      ino = fs.lookup(ino, rest.substr(0, p)).ino;
      if (p == std::string::npos) break;
      rest = rest.substr(p + 1);
    }
    auto fh = fs.open(ino, O_RDONLY);
    std::string buf(g.size + 10, '\0');
    auto n = fs.read(fh, 0, buf.size(), buf.data());
    fs.release(fh);
    CHECK(std::string(buf.data(), n) == pattern(g.size, g.seed));
  }
  CHECK(fs.readlink(fs.lookup(Fs::kRoot, "link").ino) == "sub/deeper/file");
  auto r = fsck(*v);
  CHECK(r.damaged.empty());
  CHECK(r.files == kGolden.size());
}
