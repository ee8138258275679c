#include "profile/pwrap_import.hpp"

#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

#include "profile/loader.hpp"
#include "profile/text.hpp"

namespace pw {

namespace fs = std::filesystem;
using profile_detail::toml_basic_escape;

namespace {

// pwrap's schema (project_wrap/validate.py plus devices and clean_env); [env] is free-form.
const std::map<std::string, std::vector<std::string>> kPwrapKeys = {
    {"project", {"name", "dir", "shell"}},
    {"sandbox",
     {"enabled", "blacklist", "whitelist", "writable", "devices", "unshare_net", "unshare_pid", "new_session",
      "clean_env"}},
    {"encrypted", {"cipherdir", "mountpoint", "shared"}},
    {"env", {}},
};

// Variables pw points at [agent] state_dir.
const std::vector<std::string> kAgentStateVars = {"CLAUDE_CONFIG_DIR", "CODEX_HOME"};
const std::vector<std::string> kReservedEnv = {"PW_PROFILE", "PW_POSTURE", "PW_PROJECT_DIR", "PW_CONTROL_SOCKET"};

std::string quote(const std::string& s) { return "\"" + toml_basic_escape(s) + "\""; }

bool valid_env_name(std::string_view n) {
  if (n.empty()) return false;
  auto start = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!start(n[0])) return false;
  return std::all_of(n.begin(), n.end(), [&](char c) { return start(c) || (c >= '0' && c <= '9'); });
}

std::string home_dir() {
  const char* h = std::getenv("HOME");
  return h && h[0] == '/' ? profile_detail::normalise(h).string() : std::string();
}

// "~", "~/" or $HOME itself.
bool is_home(const std::string& raw) {
  if (raw == "~" || raw == "~/") return true;
  const std::string h = home_dir();
  return !h.empty() && profile_detail::normalise(raw).string() == h;
}

struct Str {
  std::string value;
  std::string where;
};

class Reader {
 public:
  Reader(const fs::path& file, PwrapImport& out) : file_(file.string()), out_(out) {}

  std::string at(const toml::source_region& r) const {
    if (r.begin.line == 0) return file_ + ":1:1";
    return file_ + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
  }
  std::string at(const toml::node& n) const { return at(n.source()); }
  [[noreturn]] void fail(const std::string& where, const std::string& key, const std::string& what) const {
    throw ProfileError(where, key, what);
  }
  void note(const std::string& where, const std::string& key, const std::string& text) {
    out_.notes.push_back(where + ": " + key + ": " + text);
  }

  const toml::node* get(const toml::table* t, const std::string& key) const { return t ? t->get(key) : nullptr; }

  std::optional<bool> boolean(const toml::table* t, const std::string& sec, const std::string& key) {
    const toml::node* n = get(t, key);
    if (!n) return std::nullopt;
    if (!n->is_boolean()) fail(at(*n), sec + "." + key, "expected a boolean (true or false)");
    return n->as_boolean()->get();
  }
  std::optional<Str> string(const toml::table* t, const std::string& sec, const std::string& key) {
    const toml::node* n = get(t, key);
    if (!n) return std::nullopt;
    if (!n->is_string()) fail(at(*n), sec + "." + key, "expected a string");
    return Str{n->as_string()->get(), at(*n)};
  }
  std::vector<Str> strings(const toml::table* t, const std::string& sec, const std::string& key) {
    std::vector<Str> out;
    const toml::node* n = get(t, key);
    if (!n) return out;
    if (!n->is_array()) fail(at(*n), sec + "." + key, "expected an array of strings");
    std::size_t i = 0;
    for (const toml::node& el : *n->as_array()) {
      if (!el.is_string()) fail(at(el), sec + "." + key + "[" + std::to_string(i) + "]", "expected a string");
      out.push_back({el.as_string()->get(), at(el)});
      ++i;
    }
    return out;
  }
  std::string where(const toml::table* t, const std::string& key) const {
    const toml::node* n = get(t, key);
    return n ? at(*n) : (t ? at(*t) : file_ + ":1:1");
  }
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  PwrapImport& out_;
};

// One line per array entry; entries that cannot be kept are written commented out.
struct ListLine {
  std::string value;
  std::string comment;
  bool active = true;
};

std::string array(const std::vector<ListLine>& lines) {
  if (lines.empty()) return "[]";
  std::string s = "[\n";
  for (const auto& l : lines) {
    s += std::string(l.active ? "  " : "  # ") + quote(l.value) + ",";
    if (!l.comment.empty()) s += "  # " + l.comment;
    s += "\n";
  }
  return s + "]";
}

bool exists_expanded(const std::string& raw, bool& expanded_ok) {
  std::string err;
  auto e = profile_detail::expand(raw, err);
  expanded_ok = e.has_value();
  if (!e) return true;  // let the loader report it with its position
  std::error_code ec;
  return fs::symlink_status(*e, ec).type() != fs::file_type::not_found;
}

}  // namespace

PwrapImport convert_pwrap(std::string_view text, const fs::path& file, const std::string& name,
                          const fs::path& pwrap_dir, const fs::path& vault_base) {
  PwrapImport out;
  out.name = name;
  out.source = file;
  Reader r(file, out);

  refuse_unsafe_toml(text, file.string());
  toml::table root;
  try {
    root = toml::parse(text, file.string());
  } catch (const toml::parse_error& e) {
    throw ProfileError(r.at(e.source()), "", "TOML syntax error: " + std::string(e.description()));
  }

  std::map<std::string, const toml::table*> sec;
  for (auto&& [k, v] : root) {
    const std::string key(k.str());
    if (!kPwrapKeys.count(key)) {
      r.note(r.at(k.source()), key, "not a pwrap section; not mapped");
      continue;
    }
    if (!v.is_table()) r.fail(r.at(v), key, "expected a table ([" + key + "])");
    sec[key] = v.as_table();
  }
  auto table = [&](const std::string& s) -> const toml::table* {
    auto it = sec.find(s);
    return it == sec.end() ? nullptr : it->second;
  };
  for (const auto& [s, t] : sec) {
    if (s == "env") continue;
    const auto& known = kPwrapKeys.at(s);
    for (auto&& [k, v] : *t) {
      const std::string key(k.str());
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        r.note(r.at(k.source()), s + "." + key, "not a pwrap key; not mapped" + profile_detail::did_you_mean(key, known));
      }
    }
  }

  const toml::table* project = table("project");
  const toml::table* sandbox = table("sandbox");
  const toml::table* encrypted = table("encrypted");
  const toml::table* env = table("env");

  // [project]
  const auto pname = r.string(project, "project", "name");
  auto dir = r.string(project, "project", "dir");
  if (!dir) {
    dir = Str{"~/projects/" + name, r.where(project, "dir")};
    r.note(dir->where, "project.dir", "not set: pwrap's default \"~/projects/" + name + "\" is written");
  }
  auto shell = r.string(project, "project", "shell");
  if (!shell) {
    const char* sh = std::getenv("SHELL");
    std::string s = sh && sh[0] == '/' && ::access(sh, X_OK) == 0 ? sh : "/bin/bash";
    shell = Str{s, r.where(project, "shell")};
    r.note(shell->where, "project.shell", "not set: pwrap used $SHELL; written as \"" + s + "\"");
  }

  // [sandbox]
  const auto enabled = r.boolean(sandbox, "sandbox", "enabled");
  const bool clean_env = r.boolean(sandbox, "sandbox", "clean_env").value_or(false);
  const auto blacklist = r.strings(sandbox, "sandbox", "blacklist");
  const auto whitelist = r.strings(sandbox, "sandbox", "whitelist");
  const auto writable = r.strings(sandbox, "sandbox", "writable");
  const auto devices = r.strings(sandbox, "sandbox", "devices");
  const auto unshare_net = r.boolean(sandbox, "sandbox", "unshare_net");
  const auto unshare_pid = r.boolean(sandbox, "sandbox", "unshare_pid");
  const auto new_session = r.boolean(sandbox, "sandbox", "new_session");

  if (!enabled || !*enabled) {
    r.note(r.where(sandbox, "enabled"), "sandbox.enabled",
           std::string(enabled ? "false" : "not set (pwrap's default is false)") +
               " cannot be honoured: pwrap ran this project without a sandbox, pw always sandboxes; "
               "the profile below is sandboxed");
  }
  const bool home_hidden =
      std::any_of(blacklist.begin(), blacklist.end(), [](const Str& s) { return is_home(s.value); });

  // Posture.
  if (clean_env && home_hidden) {
    out.posture = Posture::Agent;
    out.posture_reason = "agent: clean_env = true and \"~\" blacklisted (pwrap's agent pattern)";
  } else if (name.size() > 4 && name.ends_with("-llm")) {
    out.posture = Posture::Agent;
    out.posture_reason = "agent: the name ends in -llm (pwrap's agent pattern)";
  } else {
    out.posture = Posture::Human;
    out.posture_reason =
        "human: not pwrap's agent pattern (clean_env = true with \"~\" blacklisted, or a name ending in -llm)";
  }
  const bool agent = out.posture == Posture::Agent;

  if (unshare_pid && !*unshare_pid) {
    r.note(r.where(sandbox, "unshare_pid"), "sandbox.unshare_pid",
           "false cannot be honoured: every pw session has its own pid namespace (so killing pw ends "
           "everything the session started)");
  }
  if (new_session) {
    r.note(r.where(sandbox, "new_session"), "sandbox.new_session",
           std::string(*new_session ? "true" : "false") +
               ": pw needs no new session against TIOCSTI: its seccomp wall refuses TIOCSTI (and TIOCLINUX) in "
               "every session, and taking the terminal's foreground (TIOCSPGRP) in agent command sessions, "
               "so job control keeps working" +
               (*new_session ? "" : "; that cannot be turned off short of [walls] seccomp = \"off\""));
  }

  // Lists.
  std::vector<ListLine> bl, wl, wr, dv;
  for (const auto& s : blacklist) bl.push_back({s.value, ""});
  if (!home_hidden) {
    // pwrap hid its own config dir in every sandbox; pw hides only its own.
    bl.push_back({profile_detail::display_path(pwrap_dir), "pwrap's config dir, which pwrap always hid"});
    r.note(r.where(sandbox, "blacklist"), "sandbox.blacklist",
           "added " + profile_detail::display_path(pwrap_dir) + ": pwrap always hid its config dir");
  }
  if (!home_hidden && std::none_of(whitelist.begin(), whitelist.end(), [](const Str& s) { return is_home(s.value); })) {
    wl.push_back({"~", "pwrap showed your home read-only without being asked; pw shows only what is listed"});
    r.note(r.where(sandbox, "whitelist"), "sandbox.whitelist",
           "added \"~\": pwrap bound the whole host (your home included) read-only; pw starts from system dirs "
           "only. Other host dirs pwrap showed (/srv, /data, ...) must be listed to be seen");
  }
  for (const auto& s : whitelist) wl.push_back({s.value, ""});
  for (const auto& s : writable) {
    bool ok = true;
    if (!exists_expanded(s.value, ok)) {
      wr.push_back({s.value, "does not exist here: pw refuses a missing writable path", false});
      r.note(s.where, "sandbox.writable", "'" + s.value +
                                              "' does not exist on this machine; written commented out (pw refuses "
                                              "a missing writable path)");
    } else {
      wr.push_back({s.value, ""});
    }
  }
  for (const auto& s : devices) dv.push_back({s.value, ""});

  // [env]
  std::vector<std::pair<std::string, std::string>> env_out;
  std::optional<std::string> state_dir;
  if (env) {
    struct Var {
      toml::source_position pos;
      std::string key, value, where;
    };
    std::vector<Var> vars;
    for (auto&& [k, v] : *env) {
      const std::string key(k.str());
      if (!v.is_string()) r.fail(r.at(v), "env." + key, "expected a string");
      vars.push_back({k.source().begin, key, v.as_string()->get(), r.at(k.source())});
    }
    std::sort(vars.begin(), vars.end(), [](const Var& a, const Var& b) {
      return a.pos.line != b.pos.line ? a.pos.line < b.pos.line : a.pos.column < b.pos.column;
    });
    const std::string h = home_dir();
    for (auto& v : vars) {
      const std::string key = "env." + v.key;
      if (!valid_env_name(v.key)) {
        r.note(v.where, key, "not a valid variable name for pw (letters, digits and '_'); not mapped");
        continue;
      }
      if (std::find(kReservedEnv.begin(), kReservedEnv.end(), v.key) != kReservedEnv.end()) {
        r.note(v.where, key, "reserved: pw sets it itself; not mapped");
        continue;
      }
      if (std::find(kAgentStateVars.begin(), kAgentStateVars.end(), v.key) != kAgentStateVars.end()) {
        std::string rel = v.value;
        // An absolute path inside the project is project-relative too.
        std::string derr;
        if (auto d = profile_detail::expand(dir->value, derr); d && !v.value.empty() && v.value[0] == '/') {
          fs::path rp = profile_detail::normalise(v.value).lexically_relative(profile_detail::normalise(*d));
          rel = rp.empty() || *rp.begin() == ".." ? v.value : rp.string();
        }
        std::string err;
        auto pr = profile_detail::project_relative(rel, false, err);
        if (pr && agent && (!state_dir || *state_dir == *pr)) {
          if (!state_dir) {
            r.note(v.where, key,
                   "becomes [agent] state_dir = \"" + *pr + "\" (pw points CLAUDE_CONFIG_DIR and CODEX_HOME there)");
          }
          state_dir = *pr;
          continue;
        }
        if (pr && !agent) {
          r.note(v.where, key,
                 "kept in [env]: [agent] state_dir exists in the agent posture only (a relative value is "
                 "relative to the session's working directory, the project dir)");
        }
      }
      std::string value = v.value;
      if (value.starts_with("~/") && !h.empty()) {
        value = h + value.substr(1);
        r.note(v.where, key, "\"" + v.value + "\" expanded to \"" + value + "\" (pw takes [env] values literally)");
      }
      env_out.emplace_back(v.key, value);
    }
  }

  // [encrypted]
  std::optional<std::string> vault_mountpoint;
  bool shared_note = false;
  if (encrypted) {
    const auto cipher = r.string(encrypted, "encrypted", "cipherdir");
    const auto mnt = r.string(encrypted, "encrypted", "mountpoint");
    const auto shared = r.boolean(encrypted, "encrypted", "shared");
    const std::string ew = r.at(*encrypted);
    if (!cipher || !mnt) {
      r.note(ew, "[encrypted]", "needs cipherdir and mountpoint (pwrap refuses it too); not mapped");
    } else if (agent) {
      r.note(ew, "[encrypted]",
             "not mapped: pw never gives the agent posture a vault; the project's vault belongs in its human "
             "profile");
    } else {
      std::string err;
      fs::path old = cipher->value;
      if (auto e = profile_detail::expand(cipher->value, err)) old = *e;
      if (!old.is_absolute()) old = file.parent_path() / old;  // pwrap: relative to the project's config dir
      out.old_cipherdir = profile_detail::normalise(old);
      out.new_cipherdir = vault_base / name;
      vault_mountpoint = mnt->value;
      r.note(cipher->where, "encrypted.cipherdir",
             "the gocryptfs cipherdir " + out.old_cipherdir->string() +
                 " is not converted: pw's vault is its own format, at " + out.new_cipherdir->string() +
                 "; migrate the files (see below)");
      shared_note = shared.has_value() && !*shared;
      if (shared_note) {
        r.note(r.where(encrypted, "shared"), "encrypted.shared",
               "false: pw's vault is unlocked for the running workspace and seen by all of its human sessions "
               "(no per-terminal mounts); nothing ends with the first terminal");
      }
    }
  }

  // Network.
  const bool net_none = unshare_net.value_or(false);
  if (agent && !net_none) {
    r.note(r.where(sandbox, "unshare_net"), "sandbox.unshare_net",
           std::string(unshare_net ? "false" : "not set") +
               ": the host's network, as in pwrap; pw can limit an agent to a hostname allowlist: [network] mode = "
               "\"allowlist\"");
  }

  // The profile.
  std::ostringstream o;
  o << "# pw profile \"" << name << "\", imported from pwrap (" << file.string() << ") by `pw import-pwrap`.\n"
    << "# Posture " << out.posture_reason << ".\n";
  o << "\n[project]\n";
  o << "name = " << quote(pname ? pname->value : name) << "\n";
  o << "dir = " << quote(dir->value) << "\n";
  o << "shell = " << quote(shell->value) << "\n";
  o << "posture = " << quote(agent ? "agent" : "human") << "\n";
  o << "\n[sandbox]\n";
  o << "clean_env = " << (clean_env ? "true" : "false") << "\n";
  o << "blacklist = " << array(bl) << "\n";
  o << "whitelist = " << array(wl) << "\n";
  o << "writable = " << array(wr) << "\n";
  o << "devices = " << array(dv) << "\n";
  if (agent) {
    o << "\n[agent]\n";
    if (state_dir) o << "state_dir = " << quote(*state_dir) << "\n";
    o << "home = \"tmpfs\"\n";
  }
  o << "\n[network]\n";
  o << "mode = " << quote(net_none ? "none" : "host") << "  # pwrap: unshare_net = " << (net_none ? "true" : "false")
    << "\n";
  if (vault_mountpoint) {
    o << "\n[vault]\n";
    o << "cipherdir = " << quote(profile_detail::display_path(*out.new_cipherdir))
      << "  # new; the gocryptfs one was " << toml_basic_escape(out.old_cipherdir->string()) << "\n";
    o << "mountpoint = " << quote(*vault_mountpoint) << "\n";
    o << "unlock = \"manual\"\n";
  }
  o << "\n[env]\n";
  for (const auto& [k, v] : env_out) o << k << " = " << quote(v) << "\n";
  out.text = o.str();
  return out;
}

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw Error(p.string() + ": cannot read: " + std::generic_category().message(err));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The init script pwrap sources: init.<shell name>, else init.sh.
std::optional<fs::path> find_init_script(const fs::path& project_dir, const std::string& shell) {
  std::error_code ec;
  for (const auto& c : {project_dir / ("init." + fs::path(shell).filename().string()), project_dir / "init.sh"}) {
    if (fs::is_regular_file(c, ec)) return c;
  }
  return std::nullopt;
}

int import_one(const fs::path& pdir, const std::string& name, bool dry_run) {
  const fs::path file = pdir / "project.toml";
  const fs::path cfg = config_dir();
  const fs::path dest_dir = cfg / name, dest = dest_dir / "profile.toml";
  std::printf("pwrap project %s (%s)\n", name.c_str(), file.c_str());
  if (!valid_profile_name(name)) {
    throw Error("'" + name + "' is not a valid pw profile name (letters, digits, '.', '_' and '-'); rename " +
                pdir.string() + " and import again; nothing written for it");
  }
  std::error_code ec;
  if (fs::exists(fs::symlink_status(dest_dir, ec))) {
    throw Error("pw profile '" + name + "' already exists (" + dest_dir.string() +
                "); nothing written for it. Remove or rename it to import again");
  }
  PwrapImport imp = convert_pwrap(slurp(file), file, name, pdir.parent_path(), data_dir() / "vaults");

  // The init script: pw runs none. Look for the one pwrap would have sourced.
  {
    std::string shell = "/bin/bash";
    try {
      toml::table t = toml::parse(imp.text, dest.string());
      shell = t["project"]["shell"].value_or(shell);
    } catch (const toml::parse_error&) {
    }
    imp.init_script = find_init_script(pdir, shell);
    if (imp.init_script) {
      imp.notes.push_back(imp.init_script->string() + ": init script: pw sources no init script; " +
                          (dry_run ? "it would be copied" : "copied") + " next to the profile as " +
                          (dest_dir / ("pwrap-" + imp.init_script->filename().string())).string() +
                          " for reference. Move its exports into [env]; a final `exec claude` becomes `pw " +
                          name + " -- claude`");
    }
  }

  // pw's own loader decides whether the profile is valid, before anything is written.
  ProfileSpec spec;
  try {
    spec = parse_profile(imp.text, dest, name);
  } catch (const ProfileError& e) {
    throw Error(std::string("the converted profile does not load: ") + e.what() +
                "\n  (from " + file.string() + "; nothing written for it)");
  }

  std::printf("  -> pw profile %s, posture %s\n", name.c_str(), imp.posture_reason.c_str());
  if (dry_run) {
    std::printf("  would write %s:\n", dest.c_str());
    std::istringstream in(imp.text);
    for (std::string line; std::getline(in, line);) std::printf("    | %s\n", line.c_str());
  } else {
    profile_detail::make_private_dirs(cfg);
    if (::mkdir(dest_dir.c_str(), 0700) != 0) {
      throw SysError("cannot create " + dest_dir.string() + "; nothing written for " + name);
    }
    try {
      profile_detail::write_atomic(dest, imp.text);
      if (imp.init_script) {
        const fs::path copy = dest_dir / ("pwrap-" + imp.init_script->filename().string());
        profile_detail::write_atomic(copy, slurp(*imp.init_script));
        ::chmod(copy.c_str(), 0600);
      }
      load_profile_file(dest, name);
    } catch (...) {
      fs::remove_all(dest_dir, ec);
      throw;
    }
    std::printf("  wrote %s\n", dest.c_str());
  }
  for (const auto& w : spec.warnings) std::printf("  warning: %s\n", w.c_str());
  if (!imp.notes.empty()) {
    std::printf("  not mapped, or mapped differently:\n");
    for (const auto& n : imp.notes) std::printf("    %s\n", n.c_str());
  }
  if (imp.old_cipherdir) {
    std::printf(
        "  vault: move the files of the gocryptfs volume into pw's vault:\n"
        "    pw vault init %s\n"
        "    mkdir -p /tmp/%s-plain && gocryptfs %s /tmp/%s-plain\n"
        "    pw vault migrate %s --from /tmp/%s-plain\n"
        "    fusermount -u /tmp/%s-plain\n"
        "  (the gocryptfs cipherdir is left as it is; delete it once you are satisfied)\n",
        name.c_str(), name.c_str(), imp.old_cipherdir->c_str(), name.c_str(), name.c_str(), name.c_str(),
        name.c_str());
  }
  return 0;
}

}  // namespace

int import_pwrap(const fs::path& dir, bool dry_run) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error("no pwrap config dir at " + dir.string());
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (fs::is_regular_file(it->path() / "project.toml", ec2)) names.push_back(it->path().filename().string());
  }
  if (ec) throw Error("cannot list " + dir.string() + ": " + ec.message());
  std::sort(names.begin(), names.end());
  if (names.empty()) throw Error("no pwrap projects in " + dir.string() + " (expected NAME/project.toml)");
  int failed = 0;
  for (const auto& n : names) {
    try {
      import_one(dir / n, n, dry_run);
    } catch (const std::exception& e) {
      std::fflush(stdout);
      std::fprintf(stderr, "pw: %s: %s\n", n.c_str(), e.what());
      ++failed;
    }
  }
  std::fflush(stdout);
  if (failed) {
    std::fprintf(stderr, "pw: %d of %zu pwrap project(s) not imported\n", failed, names.size());
    return 1;
  }
  return 0;
}

}  // namespace pw
