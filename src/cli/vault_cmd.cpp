#include "cli/vault_cmd.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include <cerrno>
#include <cstdio>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fusevault/tree.hpp>
#include <fusevault/vault.hpp>
#include <optional>

#include "profile/loader.hpp"
#include "util/error.hpp"
#include "util/output.hpp"
#include "workspace/protocol.hpp"
#include "workspace/runtime.hpp"
#include "workspace/workspace.hpp"

namespace fs = std::filesystem;

namespace pw {
namespace {

constexpr int kTerminalTries = 3;

struct Target {
  std::string name;
  fs::path socket;  // empty: the host's runtime dir
  bool in_session = false;
  std::optional<ProfileSpec> spec;
};

void check_vault_profile(const ProfileSpec& spec) {
  if (spec.posture == Posture::Agent) {
    std::string human = spec.name;
    if (human.size() > 4 && human.ends_with("-llm")) human.resize(human.size() - 4);
    throw Error("profile '" + spec.name + "' is an agent profile: the agent posture never gets a vault " +
                "(the project's vault belongs to its human profile, e.g. '" + human + "')");
  }
  if (!spec.vault) {
    throw Error("profile '" + spec.name + "' has no [vault] section (" + spec.file.string() +
                "); add one, e.g.\n  [vault]\n  cipherdir = \"~/.local/share/pw/vaults/" + spec.name +
                "\"\n  mountpoint = \".vault\"");
  }
}

// NAME, or inside a human session the session's own profile. `host_only`: the command needs
// the profile and the cipherdir, which no session can see.
Target resolve(const std::string& name, bool host_only) {
  const char* ctl = std::getenv("PW_CONTROL_SOCKET");
  const char* prof = std::getenv("PW_PROFILE");
  const bool in_session = ctl && *ctl && prof && *prof;
  Target t;
  t.name = !name.empty() ? name : (in_session ? prof : "");
  if (t.name.empty()) {
    throw Error("which vault? name the profile (pw vault ... NAME); inside a human session the "
                "session's own profile is the default");
  }
  if (in_session) {
    if (t.name != prof) {
      throw Error("inside a session of '" + std::string(prof) + "' only its own vault can be managed");
    }
    if (host_only) {
      throw Error("run this on the host, outside the session: the vault's encrypted files are "
                  "hidden inside every session");
    }
    t.socket = ctl;
    t.in_session = true;
    return t;
  }
  t.spec = load_profile(t.name);
  check_vault_profile(*t.spec);
  return t;
}

bool vault_exists(const fs::path& cipherdir) {
  struct stat st;
  return ::stat((cipherdir / "fusevault.conf").c_str(), &st) == 0;
}

fs::path config_file(const fs::path& cipherdir) { return cipherdir / "fusevault.conf"; }

fusevault::KdfParams kdf_params(const KdfChoice& k) {
  fusevault::KdfParams p = fusevault::default_kdf();
  if (k.ops) p.opslimit = k.ops;
  if (k.mem_mib) p.memlimit = k.mem_mib << 20;
  fusevault::KdfParams floor = fusevault::minimum_kdf();
  if (p.opslimit < floor.opslimit || p.memlimit < floor.memlimit) {
    throw Error("--kdf-ops/--kdf-mem-mib below the minimum (" + std::to_string(floor.opslimit) +
                " passes, " + std::to_string(floor.memlimit >> 20) + " MiB)");
  }
  return p;
}

// Key derivation takes about a second by design: say so, and on a terminal count the time
// while it runs. Quiet mode prints nothing.
class KdfProgress {
 public:
  explicit KdfProgress(const std::string& what) : what_(what) {
    if (out::level() == out::Level::Quiet) return;
    if (!::isatty(2)) {
      std::fprintf(stderr, "pw: %s...\n", what_.c_str());
      return;
    }
    ticker_ = std::thread([this] {
      auto start = std::chrono::steady_clock::now();
      std::unique_lock l(mu_);
      do {
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "\rpw: %s... %.1f s", what_.c_str(), s);
      } while (!cv_.wait_for(l, std::chrono::milliseconds(100), [this] { return done_; }));
      std::fprintf(stderr, "\n");
    });
  }
  ~KdfProgress() {
    if (!ticker_.joinable()) return;
    {
      std::lock_guard l(mu_);
      done_ = true;
    }
    cv_.notify_all();
    ticker_.join();
  }

 private:
  std::string what_;
  std::thread ticker_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

std::string kdf_words(const fusevault::KdfParams& k) {
  return "deriving the key (Argon2id, " + std::to_string(k.opslimit) + " passes, " +
         std::to_string(k.memlimit >> 20) + " MiB)";
}

fusevault::SecureBytes read_once(const PassSource& src, const std::string& prompt) {
  if (src.fd >= 0) return fusevault::read_passphrase_fd(src.fd);
  if (!src.file.empty()) return fusevault::read_passphrase_file(src.file);
  return fusevault::read_passphrase_tty(prompt.c_str());
}

// A new passphrase: asked twice on a terminal.
fusevault::SecureBytes read_new(const PassSource& src, const std::string& what) {
  fusevault::SecureBytes a = read_once(src, "New passphrase for " + what + ": ");
  if (!src.from_terminal()) return a;
  fusevault::SecureBytes b = fusevault::read_passphrase_tty(("Repeat it: "));
  if (a.size() != b.size() || sodium_memcmp(a.data(), b.data(), a.size()) != 0) {
    throw Error("the two passphrases differ; nothing changed");
  }
  return a;
}

Fd connect_target(const Target& t) { return connect_workspace(t.name, t.socket); }

std::string request(const Target& t, const std::string& what, const std::vector<int>& fds = {}) {
  Fd conn = connect_target(t);
  if (!conn) return {};
  proto::send(conn.get(), "hello " + std::to_string(proto::kVersion) + " " + what, fds);
  std::string reply;
  if (!proto::recv(conn.get(), reply)) throw Error("the workspace of '" + t.name + "' closed the connection");
  return reply;
}

// Hands the passphrase to the supervisor through a pipe: it never sits in a message buffer
// of ours or the supervisor's, only in the pipe until the vault server reads it.
std::string send_unlock(const Target& t, const fusevault::SecureBytes& pass) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw SysError("pipe");
  Fd r(p[0]), w(p[1]);
  const char nl = '\n';
  if (::write(w.get(), pass.data(), pass.size()) != static_cast<ssize_t>(pass.size()) ||
      ::write(w.get(), &nl, 1) != 1) {
    throw SysError("pass the passphrase on");
  }
  w.reset();
  return request(t, "vault unlock", {r.get()});
}

[[noreturn]] void not_running(const Target& t) {
  throw Error("the workspace of '" + t.name + "' is not running: the vault opens only inside it. " +
              "Start it with `pw " + t.name + "`, then unlock from inside or from here" +
              " (with [vault] unlock = \"on-enter\" it asks when the first session starts)");
}

// Returns true when unlocked.
bool unlock(const Target& t, const PassSource& src) {
  const int tries = src.from_terminal() ? kTerminalTries : 1;
  for (int i = 1; i <= tries; ++i) {
    fusevault::SecureBytes pass = read_once(src, "Passphrase for the vault of " + t.name + ": ");
    std::string reply = send_unlock(t, pass);
    pass.wipe();
    if (reply.empty()) not_running(t);
    if (reply.rfind("ok", 0) == 0) return true;
    std::string msg = reply.rfind("error ", 0) == 0 ? reply.substr(6) : reply;
    if (msg.rfind("wrong-passphrase: ", 0) == 0) {
      std::fprintf(stderr, "pw: %s%s\n", msg.substr(18).c_str(),
                   i < tries ? "; try again" : "");
      if (i < tries) continue;
      throw Error("vault of '" + t.name + "' stays locked");
    }
    throw Error("vault of '" + t.name + "' stays locked: " + msg);
  }
  return false;
}

}  // namespace

int vault_init(const std::string& name, const PassSource& pass, const KdfChoice& kdf) {
  Target t = resolve(name, true);
  const VaultSpec& v = *t.spec->vault;
  fusevault::KdfParams params = kdf_params(kdf);
  if (vault_exists(v.cipherdir)) {
    throw Error("a vault already exists at " + v.cipherdir.string() +
                "; nothing changed (pw vault passwd " + t.name + " changes its passphrase)");
  }
  std::error_code ec;
  if (fs::exists(v.cipherdir, ec) && !fs::is_empty(v.cipherdir, ec)) {
    throw Error(v.cipherdir.string() + " exists and is not empty; nothing changed");
  }
  fusevault::SecureBytes p = read_new(pass, "the vault of " + t.name);
  bool created = false;
  if (!fs::exists(v.cipherdir, ec)) {
    fs::path parent = v.cipherdir.parent_path();
    fs::create_directories(parent, ec);
    if (ec) throw Error("cannot create " + parent.string() + ": " + ec.message());
    if (::mkdir(v.cipherdir.c_str(), 0700) != 0) throw SysError("create " + v.cipherdir.string());
    created = true;
  }
  try {
    KdfProgress progress(kdf_words(params));
    fusevault::Vault::create(v.cipherdir.string(), p, params);
  } catch (const std::exception& e) {
    if (created) fs::remove_all(v.cipherdir, ec);
    throw Error("cannot create the vault at " + v.cipherdir.string() + ": " + e.what());
  }
  if (::mkdir(v.mountpoint.c_str(), 0700) != 0 && errno != EEXIST) {
    out::warn("cannot create the mountpoint " + v.mountpoint.string() + ": " + std::strerror(errno));
  }
  const unsigned format = fusevault::Vault::info(v.cipherdir.string()).format_version;
  // pw's data dir is hidden in every session; a cipherdir elsewhere only in its profile's.
  std::error_code dec;
  const fs::path data = fs::weakly_canonical(data_dir(), dec);
  const fs::path real = fs::weakly_canonical(v.cipherdir, dec);
  const auto rel = real.lexically_relative(data);
  const bool in_data = !dec && !rel.empty() && *rel.begin() != "..";
  const std::string seen =
      in_data ? "never visible in any session"
              : "hidden from this profile's sessions; other profiles' sessions can read it (pw hides "
                "only its data dir, " + data.string() + ", from all of them)";
  out::info("created the vault of " + t.name + "\n  encrypted files: " + v.cipherdir.string() +
            " (" + seen + "; fusevault format " + std::to_string(format) + ", " +
            fusevault::content_cipher(format) + ")\n  plaintext at:    " + v.mountpoint.string() +
            ", inside `pw " + t.name + "` sessions, after `pw vault unlock " + t.name + "`");
  return 0;
}

int vault_passwd(const std::string& name, const PassSource& old_pass, const PassSource& new_pass,
                 const KdfChoice& kdf) {
  Target t = resolve(name, true);
  const VaultSpec& v = *t.spec->vault;
  if (!vault_exists(v.cipherdir)) {
    throw Error("no vault at " + v.cipherdir.string() + ": create it with pw vault init " + t.name);
  }
  fusevault::SecureBytes oldp = read_once(old_pass, "Current passphrase for the vault of " + t.name + ": ");
  fusevault::SecureBytes newp = read_new(new_pass, "the vault of " + t.name);
  std::optional<fusevault::KdfParams> params;
  if (kdf.ops || kdf.mem_mib) params = kdf_params(kdf);
  try {
    KdfProgress progress(params ? kdf_words(*params) : "deriving the old and the new key (Argon2id)");
    fusevault::Vault::change_passphrase(v.cipherdir.string(), oldp, newp, params ? &*params : nullptr);
  } catch (const fusevault::WrongPassphrase&) {
    throw Error("wrong passphrase for the vault at " + v.cipherdir.string() + "; nothing changed");
  } catch (const fusevault::VaultError& e) {
    throw Error(config_file(v.cipherdir).string() + ": " + e.what() + "; nothing changed");
  }
  out::info("changed the passphrase of the vault of " + t.name + " (the data was not re-encrypted)");
  return 0;
}

int vault_unlock(const std::string& name, const PassSource& pass) {
  Target t = resolve(name, false);
  if (t.spec && !vault_exists(t.spec->vault->cipherdir)) {
    throw Error("no vault at " + t.spec->vault->cipherdir.string() + ": create it with pw vault init " + t.name);
  }
  std::string status = request(t, "vault status");
  if (status.empty()) not_running(t);
  WorkspaceInfo w = parse_workspace_info(status);
  if (w.vault == "unlocked") {
    out::info(t.name + ": already unlocked");
    return 0;
  }
  unlock(t, pass);
  out::info(t.name + ": unlocked" +
            (t.spec ? ", at " + t.spec->vault->mountpoint.string() + " inside its sessions" : ""));
  return 0;
}

int vault_lock(const std::string& name) {
  Target t = resolve(name, false);
  std::string reply = request(t, "vault lock");
  if (reply.empty()) {
    out::info(t.name + ": locked (its workspace is not running)");
    return 0;
  }
  if (reply.rfind("ok", 0) != 0) throw Error("vault of '" + t.name + "': " + reply);
  // Named as the workspace that answered: inside a session the socket is $PW_CONTROL_SOCKET,
  // whatever $PW_PROFILE says.
  const std::string locked = "ok locked ";
  out::info((reply.rfind(locked, 0) == 0 ? reply.substr(locked.size()) : t.name) + ": locked");
  return 0;
}

int vault_status(const std::string& name) {
  Target t = resolve(name, false);
  if (t.spec) {
    const VaultSpec& v = *t.spec->vault;
    std::printf("vault of %s\n  encrypted files: %s%s\n  mountpoint:      %s\n  unlock:          %s\n",
                t.name.c_str(), v.cipherdir.c_str(),
                vault_exists(v.cipherdir) ? "" : " (none yet: pw vault init)", v.mountpoint.c_str(),
                to_string(v.unlock));
  }
  std::string reply = request(t, "vault status");
  if (reply.empty()) {
    std::printf("  state:           locked (workspace not running)\n");
    return 0;
  }
  if (reply.rfind("ok", 0) != 0) throw Error("vault of '" + t.name + "': " + reply);
  WorkspaceInfo w = parse_workspace_info(reply);
  std::printf("  state:           %s", w.vault.c_str());
  if (w.vault == "unlocked") {
    std::printf(", seen by %zu session(s):\n", w.sessions.size());
    for (const auto& s : w.sessions) std::printf("    pid %-8ld %s\n", s.pid, s.summary.c_str());
  } else {
    std::printf(" (workspace running, %zu session(s))\n", w.sessions.size());
  }
  return 0;
}

namespace {

// Progress on stderr: rewritten in place on a terminal, a line every few seconds otherwise.
class Progress {
 public:
  explicit Progress(const char* verb) : verb_(verb), tty_(::isatty(STDERR_FILENO) == 1) {}
  void operator()(const fusevault::TreeProgress& p, bool last = false) {
    last_ = p;
    const auto now = std::chrono::steady_clock::now();
    if (!last && now - shown_ < (tty_ ? std::chrono::milliseconds(100) : std::chrono::seconds(5))) return;
    shown_ = now;
    std::fprintf(stderr, "%spw: %s %llu/%llu files, %.1f/%.1f MiB%s", tty_ ? "\r" : "", verb_,
                 static_cast<unsigned long long>(p.files), static_cast<unsigned long long>(p.total_files),
                 static_cast<double>(p.bytes) / (1 << 20), static_cast<double>(p.total_bytes) / (1 << 20),
                 tty_ && !last ? "\033[K" : "\n");
  }
  void done() { (*this)(last_, true); }

 private:
  const char* verb_;
  bool tty_;
  std::chrono::steady_clock::time_point shown_{};
  fusevault::TreeProgress last_;
};

}  // namespace

int vault_migrate(const std::string& name, const std::string& from, const PassSource& pass) {
  Target t = resolve(name, true);
  const VaultSpec& v = *t.spec->vault;
  if (!vault_exists(v.cipherdir)) {
    throw Error("no vault at " + v.cipherdir.string() + ": create it first with pw vault init " + t.name);
  }
  std::error_code ec;
  const fs::path src = fs::canonical(from, ec);
  if (ec || !fs::is_directory(src, ec)) throw Error("--from " + from + ": not a directory");
  for (const fs::path& p : {v.cipherdir, v.mountpoint}) {
    const fs::path c = fs::weakly_canonical(p, ec);
    auto rel = src.lexically_relative(c);
    if (!rel.empty() && *rel.begin() != "..") {
      throw Error("--from " + src.string() + " is inside " + p.string() + ", the vault itself");
    }
  }
  // Two writers must never share a cipherdir: the live supervisor holds this lock for its
  // whole life, and holding it here keeps a workspace (and with it an unlock) from starting
  // until the copy is done.
  const WorkspacePaths paths = workspace_paths(t.name);
  runtime_dir();
  Fd lock(::open(paths.lock.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!lock) throw SysError("open " + paths.lock.string());
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    std::string state;
    try {
      state = parse_workspace_info(request(t, "vault status")).vault;
    } catch (const std::exception&) {
    }
    if (state == "unlocked") {
      throw Error("the workspace of '" + t.name + "' is running with the vault unlocked: its server writes to " +
                  v.cipherdir.string() + " and two writers must never share a cipherdir. Lock it and end its " +
                  "sessions (pw vault lock " + t.name + "; exit every `pw " + t.name + "`), then migrate");
    }
    throw Error("the workspace of '" + t.name + "' is running (vault " + (state.empty() ? "state unknown" : state) +
                "): it could be unlocked while the copy runs. End its sessions (pw ps), then migrate");
  }

  fusevault::SecureBytes p = read_once(pass, "Passphrase for the vault of " + t.name + ": ");
  std::unique_ptr<fusevault::Vault> vault;
  try {
    vault = fusevault::Vault::open(v.cipherdir.string(), p);
  } catch (const fusevault::WrongPassphrase&) {
    throw Error("wrong passphrase for the vault at " + v.cipherdir.string() + "; nothing copied");
  } catch (const fusevault::VaultError& e) {
    throw Error(v.cipherdir.string() + ": " + e.what() + "; nothing copied");
  }
  p.wipe();

  Progress copying("copied");
  fusevault::ImportReport rep;
  try {
    rep = fusevault::import_tree(*vault, src.string(), [&](const fusevault::TreeProgress& pr) { copying(pr); });
  } catch (const fusevault::VaultError& e) {
    throw Error(std::string(e.what()) + " (what was copied stays; a rerun skips it as identical)");
  }
  for (const auto& s : rep.skipped) std::fprintf(stderr, "pw: skipped %s\n", s.c_str());
  if (!rep.conflicts.empty()) {
    std::fprintf(stderr, "pw: %zu entr%s already in the vault of %s and differ%s from %s:\n", rep.conflicts.size(),
                 rep.conflicts.size() == 1 ? "y is" : "ies are", t.name.c_str(),
                 rep.conflicts.size() == 1 ? "s" : "", src.c_str());
    for (const auto& c : rep.conflicts) std::fprintf(stderr, "  %s\n", c.c_str());
    throw Error("nothing copied: existing vault entries are never overwritten (remove them inside a session, or "
                "copy into an empty vault)");
  }
  copying.done();

  Progress checking("verified");
  fusevault::VerifyReport ver =
      fusevault::verify_tree(*vault, src.string(), [&](const fusevault::TreeProgress& pr) { checking(pr); });
  checking.done();
  vault->close();
  if (!ver.mismatches.empty()) {
    std::fprintf(stderr, "pw: verification failed for %zu entr%s:\n", ver.mismatches.size(),
                 ver.mismatches.size() == 1 ? "y" : "ies");
    for (const auto& m : ver.mismatches) std::fprintf(stderr, "  %s\n", m.c_str());
    return 1;
  }
  std::printf("migrated %s into the vault of %s: %llu file(s), %llu dir(s), %llu symlink(s), %llu bytes written; "
              "%llu identical entr%s skipped; every file read back and verified\n",
              src.c_str(), t.name.c_str(), static_cast<unsigned long long>(rep.files),
              static_cast<unsigned long long>(rep.dirs), static_cast<unsigned long long>(rep.symlinks),
              static_cast<unsigned long long>(rep.bytes), static_cast<unsigned long long>(rep.identical),
              rep.identical == 1 ? "y" : "ies");
  return 0;
}

void vault_unlock_on_enter(const std::string& name) {
  try {
    Target t;
    t.name = name;
    t.spec = load_profile(name);
    if (!t.spec->vault || t.spec->vault->unlock != VaultUnlock::OnEnter) return;
    if (!vault_exists(t.spec->vault->cipherdir)) {
      std::fprintf(stderr, "pw: no vault yet at %s (create it with pw vault init %s)\n",
                   t.spec->vault->cipherdir.c_str(), name.c_str());
      return;
    }
    std::string status = request(t, "vault status");
    if (parse_workspace_info(status).vault != "locked") return;
    if (!::isatty(STDIN_FILENO)) {
      std::fprintf(stderr, "pw: vault stays locked: no terminal to ask for the passphrase "
                           "(pw vault unlock %s --passphrase-fd N)\n", name.c_str());
      return;
    }
    unlock(t, PassSource{});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pw: %s\n", e.what());
  }
}

}  // namespace pw
