#include "profile/loader.hpp"

#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <system_error>

#include "net/policy.hpp"
#include "net/ssh_agent.hpp"
#include "profile/text.hpp"
#include "util/file.hpp"

namespace pw {

namespace fs = std::filesystem;
using profile_detail::did_you_mean;

namespace {

const std::vector<std::string> kSections = {"project",   "sandbox", "agent", "network",
                                            "ssh_agent", "vault",   "walls", "env"};

// [env] takes any variable name, so it has no entry here.
const std::map<std::string, std::vector<std::string>> kKeys = {
    {"project", {"name", "dir", "shell", "posture"}},
    {"sandbox",
     {"enabled", "clean_env", "blacklist", "whitelist", "writable", "mask", "readonly", "devices",
      "pid", "ipc"}},
    {"agent", {"state_dir", "home", "xdg"}},
    {"network", {"mode", "allow", "allow_private"}},
    {"ssh_agent", {"mode", "keys"}},
    {"vault", {"cipherdir", "mountpoint", "unlock"}},
    {"walls", {"seccomp", "allow_userns", "allow_io_uring", "landlock"}},
};

const std::vector<std::string> kReservedEnv = {"PW_PROFILE", "PW_POSTURE", "PW_PROJECT_DIR",
                                               "PW_CONTROL_SOCKET"};

const char* type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::none:
      return "nothing";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
  }
  return "an unknown type";
}

bool valid_env_name(std::string_view n) {
  if (n.empty()) return false;
  auto start = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!start(n[0])) return false;
  return std::all_of(n.begin(), n.end(),
                     [&](char c) { return start(c) || (c >= '0' && c <= '9'); });
}

template <class E>
struct EnumValue {
  const char* name;
  E value;
};

struct Item {
  std::string value;
  std::string where;
  std::string key;  // "section.key[i]"
};

// Loads one document into a ProfileSpec, remembering where each value came from so every
// message can point at it.
class Reader {
 public:
  Reader(std::string file, ProfileSpec& spec) : file_(std::move(file)), spec_(spec) {}

  std::string at(const toml::source_region& r) const {
    if (r.begin.line == 0) return file_ + ":1:1";
    return file_ + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
  }
  std::string at(const toml::node& n) const { return at(n.source()); }

  [[noreturn]] void fail(const std::string& where, const std::string& key,
                         const std::string& problem) const {
    throw ProfileError(where, key, problem);
  }
  void warn(const std::string& where, const std::string& key, const std::string& text) {
    spec_.warnings.push_back(where + ": " + key + ": " + text);
  }

  // Where "section.key" was given, for checks made after reading (the not-yet-supported list).
  std::string where(const std::string& key) const {
    auto it = where_.find(key);
    return it == where_.end() ? file_ + ":1:1" : it->second;
  }
  void note(const std::string& key, const std::string& where) { where_[key] = where; }

  void check_keys(const toml::table& t, const std::string& sec) {
    const auto& known = kKeys.at(sec);
    for (auto&& [k, v] : t) {
      const std::string key(k.str());
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        fail(at(k.source()), sec + "." + key,
             "unknown key in [" + sec + "]" + did_you_mean(key, known));
      }
    }
  }

  const toml::node* node(const toml::table* t, const std::string& sec, const std::string& key) {
    if (!t) return nullptr;
    const toml::node* n = t->get(key);
    if (n) where_[sec + "." + key] = at(*n);
    return n;
  }

  void expect(const toml::node& n, toml::node_type type, const std::string& key) const {
    if (n.type() != type) {
      fail(at(n), key, std::string("expected ") + type_name(type) + ", got " + type_name(n.type()));
    }
  }

  std::optional<bool> get_bool(const toml::table* t, const std::string& sec,
                               const std::string& key) {
    const toml::node* n = node(t, sec, key);
    if (!n) return std::nullopt;
    expect(*n, toml::node_type::boolean, sec + "." + key);
    return n->as_boolean()->get();
  }

  std::optional<std::string> get_string(const toml::table* t, const std::string& sec,
                                        const std::string& key) {
    const toml::node* n = node(t, sec, key);
    if (!n) return std::nullopt;
    expect(*n, toml::node_type::string, sec + "." + key);
    return n->as_string()->get();
  }

  std::vector<Item> get_strings(const toml::table* t, const std::string& sec,
                                const std::string& key) {
    std::vector<Item> out;
    const toml::node* n = node(t, sec, key);
    if (!n) return out;
    const std::string full = sec + "." + key;
    if (n->type() != toml::node_type::array) {
      fail(at(*n), full, std::string("expected an array of strings, got ") + type_name(n->type()));
    }
    std::size_t i = 0;
    for (const toml::node& el : *n->as_array()) {
      const std::string ek = full + "[" + std::to_string(i++) + "]";
      expect(el, toml::node_type::string, ek);
      out.push_back({el.as_string()->get(), at(el), ek});
    }
    return out;
  }

  template <class E>
  std::optional<E> get_enum(const toml::table* t, const std::string& sec, const std::string& key,
                            std::initializer_list<EnumValue<E>> values) {
    const toml::node* n = node(t, sec, key);
    if (!n) return std::nullopt;
    std::vector<std::string> names;
    std::string list;
    for (const auto& v : values) {
      names.emplace_back(v.name);
      list += (list.empty() ? "\"" : ", \"") + std::string(v.name) + "\"";
    }
    if (n->type() != toml::node_type::string) {
      fail(at(*n), sec + "." + key,
           "expected a string (one of " + list + "), got " + type_name(n->type()));
    }
    const std::string s = n->as_string()->get();
    for (const auto& v : values) {
      if (s == v.name) return v.value;
    }
    fail(at(*n), sec + "." + key,
         "expected one of " + list + ", got \"" + s + "\"" + did_you_mean(s, names));
  }

  // A path that must end up absolute: ~ and $VAR expanded, normalised.
  fs::path abs_path(const Item& it) const {
    std::string err;
    auto e = profile_detail::expand(it.value, err);
    if (!e) fail(it.where, it.key, err);
    if (e->empty() || (*e)[0] != '/') {
      fail(it.where, it.key,
           "must be an absolute path (after expanding ~ and $VARs), got '" + *e + "'");
    }
    return profile_detail::normalise(*e);
  }

  std::vector<PathEntry> abs_paths(const toml::table* t, const std::string& sec,
                                   const std::string& key) {
    std::vector<PathEntry> out;
    for (const auto& it : get_strings(t, sec, key)) out.push_back({abs_path(it), it.where});
    return out;
  }

  std::vector<std::string> rel_paths(const toml::table* t, const std::string& sec,
                                     const std::string& key, bool allow_dot) {
    std::vector<std::string> out;
    for (const auto& it : get_strings(t, sec, key)) {
      std::string err;
      auto r = profile_detail::project_relative(it.value, allow_dot, err);
      if (!r) fail(it.where, it.key, err);
      out.push_back(*r);
    }
    return out;
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  ProfileSpec& spec_;
  std::map<std::string, std::string> where_;
};

enum class Presence { Missing, Present };

// Missing means "no such entry"; anything we cannot even stat counts as present, since the
// sandbox will not be able to use it either and a warning would mislead.
Presence presence(const fs::path& p) {
  std::error_code ec;
  const auto st = fs::symlink_status(p, ec);
  if (st.type() == fs::file_type::not_found) return Presence::Missing;
  return Presence::Present;
}

// True when `p` is `base` or lies beneath it (both absolute and lexically normal).
bool is_under_or_equal(const fs::path& p, const fs::path& base) {
  auto rel = p.lexically_relative(base);
  return !rel.empty() && *rel.begin() != "..";
}

bool is_executable_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

}  // namespace

void refuse_unsafe_toml(std::string_view text, const std::string& file) {
  if (auto issue = profile_detail::check_toml_text(text)) {
    throw ProfileError(file + ":" + std::to_string(issue->line) + ":" + std::to_string(issue->col), "",
                       "TOML syntax error: " + issue->problem);
  }
}

std::vector<std::string> profile_keys() {
  std::vector<std::string> out;
  for (const auto& sec : kSections) {
    out.push_back(sec);
    if (auto it = kKeys.find(sec); it != kKeys.end()) {
      for (const auto& k : it->second) out.push_back(sec + "." + k);
    }
  }
  return out;
}

bool valid_profile_name(std::string_view name) {
  if (name.empty()) return false;
  auto alnum = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  };
  if (!alnum(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
}

ProfileSpec parse_profile(std::string_view text, const fs::path& file, const std::string& name) {
  ProfileSpec spec;
  spec.name = name;
  spec.file = file;
  spec.profile_dir = file.parent_path();
  Reader r(file.string(), spec);

  refuse_unsafe_toml(text, file.string());
  toml::table root;
  try {
    root = toml::parse(text, file.string());
  } catch (const toml::parse_error& e) {
    throw ProfileError(r.at(e.source()), "", "TOML syntax error: " + std::string(e.description()));
  }

  // Top level: only the known sections, each a table.
  std::map<std::string, const toml::table*> sec;
  for (auto&& [k, v] : root) {
    const std::string key(k.str());
    const bool known = std::find(kSections.begin(), kSections.end(), key) != kSections.end();
    if (!known) {
      if (v.is_table()) {
        r.fail(r.at(k.source()), "[" + key + "]", "unknown section" + did_you_mean(key, kSections));
      }
      // A bare key at the top usually belongs in a section: point at the one that has it.
      std::string hint;
      for (const auto& [s, keys] : kKeys) {
        if (std::find(keys.begin(), keys.end(), key) != keys.end()) {
          hint = "; did you mean '" + s + "." + key + "' (under [" + s + "])?";
          break;
        }
      }
      if (hint.empty()) hint = did_you_mean(key, kSections);
      r.fail(r.at(k.source()), key, "unknown top-level key; keys belong in a section" + hint);
    }
    if (!v.is_table()) {
      r.fail(r.at(v), key,
             std::string("expected a table ([") + key + "]), got " + type_name(v.type()));
    }
    sec[key] = v.as_table();
  }
  auto table = [&](const std::string& s) -> const toml::table* {
    auto it = sec.find(s);
    return it == sec.end() ? nullptr : it->second;
  };
  for (const auto& [s, t] : sec) {
    if (s != "env") r.check_keys(*t, s);
  }

  // [project]
  const toml::table* project = table("project");
  if (!project) {
    r.fail(r.file() + ":1:1", "[project]",
           "required section is missing; it needs at least dir = \"/path/to/project\"");
  }
  if (auto v = r.get_enum<Posture>(project, "project", "posture",
                                   {{"human", Posture::Human}, {"agent", Posture::Agent}})) {
    spec.posture = *v;
  }
  spec.project_name = name;
  if (auto v = r.get_string(project, "project", "name")) {
    if (v->empty()) r.fail(r.where("project.name"), "project.name", "must not be empty");
    spec.project_name = *v;
  }
  {
    auto v = r.get_string(project, "project", "dir");
    if (!v) {
      r.fail(r.at(*project), "project.dir",
             "required key is missing (the project directory, e.g. dir = \"~/projects/" + name +
                 "\")");
    }
    const Item it{*v, r.where("project.dir"), "project.dir"};
    spec.dir = r.abs_path(it);
    std::error_code ec;
    const auto st = fs::status(spec.dir, ec);
    if (st.type() == fs::file_type::not_found) {
      r.fail(it.where, it.key, "'" + spec.dir.string() + "' does not exist");
    }
    if (!fs::is_directory(st)) {
      r.fail(it.where, it.key, "'" + spec.dir.string() + "' is not a directory");
    }
  }
  {
    std::string where = r.at(*project);
    std::string what = "(the default)";
    if (auto v = r.get_string(project, "project", "shell")) {
      where = r.where("project.shell");
      std::string err;
      auto e = profile_detail::expand(*v, err);
      if (!e) r.fail(where, "project.shell", err);
      spec.shell = *e;
      what.clear();
    }
    if (!spec.shell.starts_with('/')) {
      r.fail(where, "project.shell", "must be an absolute path, got '" + spec.shell + "'");
    }
    if (!is_executable_file(spec.shell)) {
      r.fail(
          where, "project.shell",
          "'" + spec.shell + "'" + (what.empty() ? "" : " " + what) + " is not an executable file");
    }
  }

  // [sandbox]
  const toml::table* sandbox = table("sandbox");
  if (auto v = r.get_bool(sandbox, "sandbox", "enabled"); v && !*v) {
    r.fail(r.where("sandbox.enabled"), "sandbox.enabled",
           "false is not possible: pw always sandboxes (pwrap's switch is accepted only as "
           "true); to work without boundaries, run your shell outside pw");
  }
  if (auto v = r.get_bool(sandbox, "sandbox", "clean_env")) spec.clean_env = *v;
  spec.blacklist = r.abs_paths(sandbox, "sandbox", "blacklist");
  spec.whitelist = r.abs_paths(sandbox, "sandbox", "whitelist");
  spec.writable = r.abs_paths(sandbox, "sandbox", "writable");
  spec.devices = r.abs_paths(sandbox, "sandbox", "devices");
  spec.mask = r.rel_paths(sandbox, "sandbox", "mask", false);
  spec.readonly = r.rel_paths(sandbox, "sandbox", "readonly", true);
  if (auto v = r.get_bool(sandbox, "sandbox", "pid")) spec.pid = *v;
  if (auto v = r.get_bool(sandbox, "sandbox", "ipc")) spec.ipc = *v;

  // DESIGN §2 made a missing blacklist path an error. It is a warning instead: there is
  // nothing to hide, and the shipped templates must be able to name ~/.aws and friends on
  // machines that do not have them. (The hidden-always paths are pw's own, not the list's.)
  for (std::size_t i = 0; i < spec.blacklist.size(); ++i) {
    const auto& e = spec.blacklist[i];
    if (presence(e.path) == Presence::Missing) {
      r.warn(e.origin, "sandbox.blacklist[" + std::to_string(i) + "]",
             "'" + e.path.string() + "' does not exist; nothing to hide");
    }
  }
  for (std::size_t i = 0; i < spec.whitelist.size(); ++i) {
    const auto& e = spec.whitelist[i];
    if (presence(e.path) == Presence::Missing) {
      r.warn(e.origin, "sandbox.whitelist[" + std::to_string(i) + "]",
             "'" + e.path.string() + "' does not exist; skipped");
    }
  }
  for (std::size_t i = 0; i < spec.writable.size(); ++i) {
    const auto& e = spec.writable[i];
    std::error_code ec;
    if (!fs::exists(e.path, ec)) {
      r.fail(e.origin, "sandbox.writable[" + std::to_string(i) + "]",
             "'" + e.path.string() + "' does not exist (create it, or remove the entry)");
    }
  }
  for (std::size_t i = 0; i < spec.devices.size(); ++i) {
    const auto& e = spec.devices[i];
    const std::string key = "sandbox.devices[" + std::to_string(i) + "]";
    const std::string s = e.path.string();
    if (s != "/dev" && !s.starts_with("/dev/")) {
      r.fail(e.origin, key, "'" + s + "' is not under /dev");
    }
    if (presence(e.path) == Presence::Missing) {
      r.warn(e.origin, key, "'" + s + "' does not exist; skipped");
    }
  }

  // [agent]
  if (const toml::table* agent = table("agent")) {
    if (spec.posture != Posture::Agent) {
      r.fail(r.at(*agent), "[agent]",
             "only allowed with posture = \"agent\" (this profile's posture is \"" +
                 std::string(to_string(spec.posture)) + "\")");
    }
    if (auto v = r.get_string(agent, "agent", "state_dir")) {
      std::string err;
      auto rel = profile_detail::project_relative(*v, false, err);
      if (!rel) r.fail(r.where("agent.state_dir"), "agent.state_dir", err);
      spec.state_dir = *rel;
    }
    if (auto v = r.get_string(agent, "agent", "home")) {
      if (*v == "tmpfs") {
        spec.home = "tmpfs";
      } else {
        std::string err;
        auto rel = profile_detail::project_relative(*v, false, err);
        if (!rel) {
          r.fail(r.where("agent.home"), "agent.home",
                 "expected \"tmpfs\" or a dir inside the project; " + err);
        }
        // A project dir literally named tmpfs stays distinct from the keyword.
        spec.home = *rel == "tmpfs" ? "./tmpfs" : *rel;
      }
    }
    if (auto v = r.get_bool(agent, "agent", "xdg")) {
      spec.xdg = *v;
      if (spec.xdg && !spec.state_dir) {
        r.fail(r.where("agent.xdg"), "agent.xdg",
               "needs agent.state_dir: the XDG base dirs are made inside it");
      }
    }
  }

  // [network]
  const toml::table* network = table("network");
  spec.net = spec.posture == Posture::Agent ? NetMode::None : NetMode::Host;
  if (auto v = r.get_enum<NetMode>(
          network, "network", "mode",
          {{"none", NetMode::None}, {"host", NetMode::Host}, {"allowlist", NetMode::Allowlist}})) {
    spec.net = *v;
  }
  for (const auto& it : r.get_strings(network, "network", "allow")) {
    std::string err;
    if (!net::parse_allow_entry(it.value, err)) {
      r.fail(it.where, it.key, err + " (entries are \"host\", \"*.domain\", either with an optional \":port\")");
    }
    spec.allow.push_back(it.value);
  }
  if (auto v = r.get_bool(network, "network", "allow_private")) spec.allow_private = *v;
  if (!spec.allow.empty() && spec.net != NetMode::Allowlist) {
    r.warn(
        r.where("network.allow"), "network.allow",
        std::string("ignored: network.mode is \"") + to_string(spec.net) + "\", not \"allowlist\"");
  }
  if (spec.allow.empty() && spec.net == NetMode::Allowlist) {
    r.warn(r.where("network.mode"), "network.allow", "empty: with mode \"allowlist\" nothing is reachable");
  }

  // [ssh_agent]
  const toml::table* ssh = table("ssh_agent");
  if (auto v = r.get_enum<SshAgentMode>(
          ssh, "ssh_agent", "mode",
          {{"none", SshAgentMode::None}, {"forward", SshAgentMode::Forward}})) {
    spec.ssh_agent = *v;
  }
  for (const auto& it : r.get_strings(ssh, "ssh_agent", "keys")) {
    if (!net::agent::valid_fingerprint(it.value)) {
      r.fail(it.where, it.key,
             "expected a key fingerprint as `ssh-add -l` prints it (SHA256: and 43 base64 characters), got \"" +
                 it.value + "\"");
    }
    spec.ssh_keys.push_back(it.value);
  }
  if (!spec.ssh_keys.empty() && spec.ssh_agent != SshAgentMode::Forward) {
    r.warn(r.where("ssh_agent.keys"), "ssh_agent.keys", "ignored: ssh_agent.mode is \"none\", not \"forward\"");
  }
  if (spec.ssh_keys.empty() && spec.ssh_agent == SshAgentMode::Forward) {
    r.warn(r.where("ssh_agent.mode"), "ssh_agent.keys", "empty: with mode \"forward\" the session's agent lists no key");
  }

  // [vault]
  if (const toml::table* vault = table("vault")) {
    const std::string vw = r.at(*vault);
    r.note("vault", vw);
    if (spec.posture == Posture::Agent) {
      r.fail(vw, "[vault]",
             "the agent posture never gets a vault (put it in the human profile of this project)");
    }
    VaultSpec vs;
    for (const char* key : {"cipherdir", "mountpoint"}) {
      auto v = r.get_string(vault, "vault", key);
      if (!v) r.fail(vw, std::string("vault.") + key, "required key is missing");
      const std::string k = std::string("vault.") + key;
      // The mountpoint may be given relative to the project dir (".vault").
      const std::string& raw = *v;
      fs::path p;
      if (std::string_view(key) == "mountpoint" && !raw.empty() && raw[0] != '/' && raw[0] != '~' &&
          raw[0] != '$') {
        std::string err;
        auto rel = profile_detail::project_relative(raw, false, err);
        if (!rel) r.fail(r.where(k), k, err);
        p = profile_detail::normalise(spec.dir / *rel);
      } else {
        p = r.abs_path({raw, r.where(k), k});
      }
      (std::string_view(key) == "cipherdir" ? vs.cipherdir : vs.mountpoint) = p;
    }
    // The agent posture sees the project dir: ciphertext there could be read or tampered
    // with, so the cipherdir lives outside it. The mountpoint must not be the project itself
    // or sit inside the cipherdir.
    // Compared as they resolve as well as they read: a symlink (the cipherdir's, or the
    // project dir's) must not put the ciphertext inside the project after all.
    std::error_code ec1, ec2;
    const fs::path real_cipher = fs::weakly_canonical(vs.cipherdir, ec1);
    const fs::path real_dir = spec.dir.empty() ? fs::path() : fs::weakly_canonical(spec.dir, ec2);
    if (!spec.dir.empty() && (is_under_or_equal(vs.cipherdir, spec.dir) ||
                              (!ec1 && !ec2 && is_under_or_equal(real_cipher, real_dir)))) {
      r.fail(r.where("vault.cipherdir"), "vault.cipherdir",
             "must be outside the project dir " + spec.dir.string() +
                 " (the agent posture can read the project); the default is ~/.local/share/pw/vaults/" +
                 spec.name);
    }
    if (is_under_or_equal(spec.dir, vs.mountpoint)) {
      r.fail(r.where("vault.mountpoint"), "vault.mountpoint",
             "must be a dir inside the project (or elsewhere), not the project dir or one of its parents");
    } else if (!spec.dir.empty()) {
      // Inside the project, only the name every agent session of the project guards: an
      // agent's `rmdir` of another dir that is the vault's mountpoint in the human's
      // namespace detaches the vault there, and a plain dir made in its place would take
      // the human's next writes in plaintext (docs/design.md, "Guards stay where they are").
      std::error_code ec3;
      const fs::path real_mp = fs::weakly_canonical(vs.mountpoint, ec3);
      const bool inside = is_under_or_equal(vs.mountpoint, spec.dir) ||
                          (!ec2 && !ec3 && is_under_or_equal(real_mp, real_dir));
      if (inside && vs.mountpoint != spec.dir / ".vault" && !(!ec2 && !ec3 && real_mp == real_dir / ".vault")) {
        r.fail(r.where("vault.mountpoint"), "vault.mountpoint",
               "inside the project it must be \".vault\", the one dir there that agent sessions of the "
               "project guard (an agent could remove any other and catch what you write next); or "
               "name a dir outside the project");
      }
    }
    if (is_under_or_equal(vs.mountpoint, vs.cipherdir) || is_under_or_equal(vs.cipherdir, vs.mountpoint)) {
      r.fail(r.where("vault.mountpoint"), "vault.mountpoint", "must not overlap vault.cipherdir");
    }
    if (auto v = r.get_enum<VaultUnlock>(
            vault, "vault", "unlock",
            {{"manual", VaultUnlock::Manual}, {"on-enter", VaultUnlock::OnEnter}})) {
      vs.unlock = *v;
    }
    spec.vault = vs;
  }

  // [walls]
  const toml::table* walls = table("walls");
  if (auto v = r.get_enum<SeccompMode>(walls, "walls", "seccomp",
                                       {{"default", SeccompMode::Default},
                                        {"strict", SeccompMode::Strict},
                                        {"off", SeccompMode::Off}})) {
    spec.seccomp = *v;
  }
  if (auto v = r.get_bool(walls, "walls", "allow_userns")) spec.allow_userns = *v;
  if (auto v = r.get_bool(walls, "walls", "allow_io_uring")) spec.allow_io_uring = *v;
  if (auto v = r.get_enum<LandlockMode>(walls, "walls", "landlock",
                                        {{"required", LandlockMode::Required},
                                         {"best-effort", LandlockMode::BestEffort},
                                         {"off", LandlockMode::Off}})) {
    spec.landlock = *v;
  }

  // [env]: values are taken literally (no expansion), in file order.
  if (const toml::table* env = table("env")) {
    struct Var {
      toml::source_position pos;
      std::string name, value;
    };
    std::vector<Var> vars;
    for (auto&& [k, v] : *env) {
      const std::string key(k.str());
      const std::string full = "env." + key;
      if (!valid_env_name(key)) {
        r.fail(r.at(k.source()), full,
               "not a valid variable name (letters, digits and '_', not starting with a digit)");
      }
      if (std::find(kReservedEnv.begin(), kReservedEnv.end(), key) != kReservedEnv.end()) {
        r.fail(r.at(k.source()), full, "reserved: pw sets it itself");
      }
      r.expect(v, toml::node_type::string, full);
      const std::string value = v.as_string()->get();
      if (value.find('\0') != std::string::npos) r.fail(r.at(v), full, "contains a NUL character");
      vars.push_back({k.source().begin, key, value});
    }
    std::sort(vars.begin(), vars.end(), [](const Var& a, const Var& b) {
      return a.pos.line != b.pos.line ? a.pos.line < b.pos.line : a.pos.column < b.pos.column;
    });
    for (auto& v : vars) spec.env.emplace_back(std::move(v.name), std::move(v.value));
  }

  return spec;
}

ProfileSpec load_profile_file(const fs::path& file, const std::string& name) {
  std::error_code ec;
  if (fs::is_directory(file, ec))
    throw ProfileError(file.string() + ": is a directory, not a profile file");
  int err = 0;
  auto text = read_text_file(file, err);
  if (!text) throw ProfileError(file.string() + ": cannot read: " + std::generic_category().message(err));
  return parse_profile(*text, file, name);
}

}  // namespace pw
