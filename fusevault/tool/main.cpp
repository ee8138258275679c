// fusevault: command-line tool over the fusevault library.
#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>

#include "fusevault/vault.hpp"

using namespace fusevault;

namespace {

struct PassOpts {
  int fd = -1;
  std::string file;
};

void add_pass_opts(CLI::App* app, PassOpts& p, const std::string& prefix = "") {
  auto* f = app->add_option("--" + prefix + "passphrase-fd", p.fd, "read the " + prefix + "passphrase from this fd");
  auto* g = app->add_option("--" + prefix + "passphrase-file", p.file, "read the " + prefix + "passphrase from this file");
  f->excludes(g);
}

SecureBytes get_pass(const PassOpts& p, const char* prompt, bool confirm) {
  if (p.fd >= 0) return read_passphrase_fd(p.fd);
  if (!p.file.empty()) return read_passphrase_file(p.file);
  auto a = read_passphrase_tty(prompt);
  if (confirm) {
    auto b = read_passphrase_tty("Repeat passphrase: ");
    if (a.view() != b.view()) throw VaultError("passphrases do not match");
  }
  return a;
}

struct KdfOpts {
  std::optional<std::uint64_t> ops;
  std::optional<std::uint64_t> mem_mib;
};

void add_kdf_opts(CLI::App* app, KdfOpts& k) {
  app->add_option("--kdf-ops", k.ops, "Argon2id passes (default 3)");
  app->add_option("--kdf-mem-mib", k.mem_mib, "Argon2id memory in MiB (default 256)");
}

KdfParams kdf_from(const KdfOpts& k) {
  auto d = default_kdf();
  if (k.ops) d.opslimit = *k.ops;
  if (k.mem_mib) d.memlimit = *k.mem_mib << 20;
  return d;
}

void raise_nofile() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fusevault: an encrypted FUSE filesystem"};
  app.require_subcommand(1);

  std::string dir, mp;
  PassOpts pass, newpass;
  KdfOpts kdf;
  unsigned format = 0;
  bool foreground = false, no_writeback = false, allow_other = false, debug = false;
  unsigned threads = 8;

  auto* init = app.add_subcommand("init", "create a new vault in an empty directory");
  init->add_option("DIR", dir, "cipher directory")->required();
  add_pass_opts(init, pass);
  add_kdf_opts(init, kdf);
  init->add_option("--format", format,
                   "vault format: 2 (AES-256-GCM; default on x86 CPUs with AES-NI) or 1 "
                   "(XChaCha20-Poly1305)")
      ->check(CLI::IsMember({1u, 2u}));

  auto* mount = app.add_subcommand("mount", "mount a vault");
  mount->add_option("DIR", dir, "cipher directory")->required();
  mount->add_option("MOUNTPOINT", mp, "mount point")->required();
  mount->add_flag("-f,--foreground", foreground, "stay in the foreground");
  mount->add_flag("--no-writeback-cache", no_writeback, "disable the kernel writeback cache");
  mount->add_flag("--allow-other", allow_other, "let other users access the mount");
  mount->add_option("--threads", threads, "maximum FUSE worker threads");
  mount->add_flag("-d,--debug", debug, "FUSE debug output (implies -f)");
  add_pass_opts(mount, pass);

  auto* passwd = app.add_subcommand("passwd", "change the passphrase");
  passwd->add_option("DIR", dir, "cipher directory")->required();
  add_pass_opts(passwd, pass);
  add_pass_opts(passwd, newpass, "new-");
  add_kdf_opts(passwd, kdf);

  auto* info = app.add_subcommand("info", "show the vault config (no passphrase needed)");
  info->add_option("DIR", dir, "cipher directory")->required();

  auto* fsck_cmd = app.add_subcommand("fsck", "authenticate every name, block and symlink");
  fsck_cmd->add_option("DIR", dir, "cipher directory")->required();
  add_pass_opts(fsck_cmd, pass);

  CLI11_PARSE(app, argc, argv);

  harden_process();  // before any secret is in memory
  try {
    if (*init) {
      auto p = get_pass(pass, "New passphrase: ", true);
      Vault::create(dir, p, kdf_from(kdf), format);
      std::cout << "created vault in " << dir << " (format " << Vault::info(dir).format_version << ")\n";
      return 0;
    }
    if (*info) {
      auto i = Vault::info(dir);
      std::cout << "format version: " << i.format_version << " (" << content_cipher(i.format_version) << ")\n"
                << "vault id:       " << i.vault_id_hex << "\n"
                << "feature flags:  0x" << std::hex << i.flags << std::dec << "\n"
                << "kdf:            " << i.kdf << " ops=" << i.kdf_params.opslimit
                << " mem=" << (i.kdf_params.memlimit >> 20) << " MiB\n"
                << "block cipher:   XChaCha20-Poly1305, 4096-byte blocks\n";
      return 0;
    }
    if (*passwd) {
      auto oldp = get_pass(pass, "Current passphrase: ", false);
      auto newp = get_pass(newpass, "New passphrase: ", true);
      KdfParams k = kdf_from(kdf);
      Vault::change_passphrase(dir, oldp, newp, (kdf.ops || kdf.mem_mib) ? &k : nullptr);
      std::cout << "passphrase changed\n";
      return 0;
    }
    if (*fsck_cmd) {
      auto p = get_pass(pass, "Passphrase: ", false);
      auto v = Vault::open(dir, p);
      p.wipe();
      auto r = fsck(*v);
      for (auto& d : r.damaged) std::cout << "DAMAGED " << d << "\n";
      std::cout << r.files << " files, " << r.dirs << " directories, " << r.symlinks << " symlinks, " << r.bytes
                << " bytes checked; " << r.damaged.size() << " damaged\n";
      return r.damaged.empty() ? 0 : 1;
    }
    if (*mount) {
      raise_nofile();
      auto p = get_pass(pass, "Passphrase: ", false);
      auto v = Vault::open(dir, p);
      p.wipe();
      MountOptions o;
      o.writeback_cache = !no_writeback;
      o.allow_other = allow_other;
      o.max_threads = threads;
      o.debug = debug;
      // Absolute: the daemon chdirs to / and unmounts by path.
      char* abs = ::realpath(mp.c_str(), nullptr);
      if (!abs) throw VaultError("mount point " + mp + " does not exist");
      const std::string amp = abs;
      ::free(abs);
      Server s(std::move(v), amp, o);
      s.mount();
      if (!foreground && !debug) {
        // Single-threaded here: fork is safe. mlock is not inherited, so relock after.
        if (fuse_daemonize(0) != 0) throw VaultError("cannot daemonize");
        s.vault().relock_keys();
      }
      return s.run();
    }
  } catch (const WrongPassphrase& e) {
    std::cerr << "fusevault: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "fusevault: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
