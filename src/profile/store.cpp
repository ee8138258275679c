// The profile store under config_dir(): lookup, listing, rendering and `pw new`.
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <system_error>

#include "profile/loader.hpp"
#include "profile/text.hpp"
#include "util/file.hpp"
#include "util/output.hpp"

namespace pw {

namespace fs = std::filesystem;

fs::path config_dir() {
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && x[0] == '/') {
    return profile_detail::normalise(fs::path(x) / "pw");
  }
  if (const char* h = std::getenv("HOME"); h && h[0] == '/') {
    return profile_detail::normalise(fs::path(h) / ".config" / "pw");
  }
  // No usable HOME (e.g. a stripped service environment): fall back to the passwd entry.
  std::vector<char> buf(16384);
  struct passwd pwd {};
  struct passwd* res = nullptr;
  if (getpwuid_r(getuid(), &pwd, buf.data(), buf.size(), &res) == 0 && res && res->pw_dir &&
      res->pw_dir[0] == '/') {
    return profile_detail::normalise(fs::path(res->pw_dir) / ".config" / "pw");
  }
  throw Error("cannot find pw's config dir: neither XDG_CONFIG_HOME nor HOME is set");
}

fs::path data_dir() {
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && x[0] == '/') {
    return profile_detail::normalise(fs::path(x) / "pw");
  }
  if (const char* h = std::getenv("HOME"); h && h[0] == '/') {
    return profile_detail::normalise(fs::path(h) / ".local" / "share" / "pw");
  }
  struct passwd* pw = ::getpwuid(::getuid());
  if (pw && pw->pw_dir && pw->pw_dir[0] == '/') {
    return profile_detail::normalise(fs::path(pw->pw_dir) / ".local" / "share" / "pw");
  }
  throw Error("cannot find pw's data dir: neither XDG_DATA_HOME nor HOME is set");
}

std::vector<std::string> list_profiles() {
  std::vector<std::string> out;
  std::error_code ec;
  const fs::path dir = config_dir();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code ec2;
    if (valid_profile_name(name) && fs::is_regular_file(it->path() / "profile.toml", ec2)) {
      out.push_back(name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

fs::path profile_path(const std::string& name) {
  if (!valid_profile_name(name)) {
    throw Error("'" + name +
                "' is not a valid profile name (letters, digits, '.', '_' and '-', starting "
                "with a letter or digit)");
  }
  const fs::path dir = config_dir();
  const fs::path file = dir / name / "profile.toml";
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    std::string msg = "no profile '" + name + "' (looked in " + dir.string() + ")";
    if (auto c = profile_detail::closest(name, list_profiles())) {
      msg += "; did you mean '" + *c + "'?";
    } else {
      // `pw new X` makes X and X-llm, so suggest the base name for a missing agent profile.
      std::string base = name;
      if (base.size() > 4 && base.ends_with("-llm")) base.resize(base.size() - 4);
      msg += "; create one with: pw new " + base + " --dir DIR";
    }
    throw Error(msg);
  }
  return file;
}

ProfileSpec load_profile(const std::string& name) { return load_profile_file(profile_path(name), name); }

namespace {

// Paths are written with $ doubled, so that loading them expands back to exactly the path.
std::string escape_dollars(const std::string& s) {
  std::string out;
  for (char c : s) {
    out += c;
    if (c == '$') out += '$';
  }
  return out;
}

toml::array path_array(const std::vector<PathEntry>& v) {
  toml::array a;
  for (const auto& e : v) a.push_back(escape_dollars(e.path.string()));
  return a;
}

toml::array string_array(const std::vector<std::string>& v) {
  toml::array a;
  for (const auto& s : v) a.push_back(s);
  return a;
}

// Double-quoted one-line strings, as in the templates and every hand-written profile. Not
// multi-line ones: TOML drops a line break right after the opening """, so a value that
// starts with one would not read back the same (the profile fuzzer found "\nokb").
constexpr toml::format_flags kFlags = toml::toml_formatter::default_flags &
                                      ~toml::format_flags::allow_literal_strings &
                                      ~toml::format_flags::allow_multi_line_strings;

void emit_section(std::ostream& out, const char* name, toml::table t) {
  toml::table root;
  root.insert(name, std::move(t));
  out << '\n' << toml::toml_formatter{root, kFlags} << '\n';
}

}  // namespace

std::string render_profile(const ProfileSpec& s) {
  std::ostringstream out;
  out << "# Resolved profile: every key with its effective value, paths expanded.\n";

  // Sections are emitted one by one because a toml++ table sorts its keys; this keeps the
  // reading order of a hand-written profile.
  emit_section(out, "project",
               toml::table{{"name", s.project_name},
                           {"dir", escape_dollars(s.dir.string())},
                           {"shell", escape_dollars(s.shell)},
                           {"posture", to_string(s.posture)}});
  emit_section(out, "sandbox",
               toml::table{{"clean_env", s.clean_env},
                           {"blacklist", path_array(s.blacklist)},
                           {"whitelist", path_array(s.whitelist)},
                           {"writable", path_array(s.writable)},
                           {"mask", string_array(s.mask)},
                           {"readonly", string_array(s.readonly)},
                           {"devices", path_array(s.devices)},
                           {"pid", s.pid},
                           {"ipc", s.ipc}});
  if (s.posture == Posture::Agent) {
    toml::table agent{{"home", s.home}, {"xdg", s.xdg}};
    if (s.state_dir) agent.insert("state_dir", *s.state_dir);
    emit_section(out, "agent", std::move(agent));
  }
  emit_section(out, "network",
               toml::table{{"mode", to_string(s.net)},
                           {"allow", string_array(s.allow)},
                           {"allow_private", s.allow_private}});
  emit_section(out, "ssh_agent",
               toml::table{{"mode", to_string(s.ssh_agent)}, {"keys", string_array(s.ssh_keys)}});
  if (s.vault) {
    emit_section(out, "vault",
                 toml::table{{"cipherdir", escape_dollars(s.vault->cipherdir.string())},
                             {"mountpoint", escape_dollars(s.vault->mountpoint.string())},
                             {"unlock", to_string(s.vault->unlock)}});
  }
  emit_section(out, "walls",
               toml::table{{"seccomp", to_string(s.seccomp)},
                           {"allow_userns", s.allow_userns},
                           {"allow_io_uring", s.allow_io_uring},
                           {"landlock", to_string(s.landlock)}});
  // [env] keeps file order, which a toml++ table would lose: one line per variable.
  out << "\n[env]\n";
  for (const auto& [k, v] : s.env) {
    out << toml::toml_formatter{toml::table{{k, v}}, kFlags} << '\n';
  }
  return out.str();
}

const std::vector<std::string>& agent_presets() {
  // Each has its template profiles/agent-NAME.toml.
  static const std::vector<std::string> presets = {"aider", "claude", "codex", "generic", "opencode"};
  return presets;
}

fs::path template_dir() {
  if (const char* e = std::getenv("PW_TEMPLATE_DIR"); e && *e) return e;
  // The templates installed with this very binary first (share/pw/profiles beside its bin/),
  // so a relocated install (a package unpacked elsewhere, another prefix) finds its own.
  std::vector<fs::path> dirs;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) dirs.push_back((exe.parent_path() / PW_TEMPLATE_REL_DIR).lexically_normal());
  dirs.emplace_back(PW_TEMPLATE_DIR);
  dirs.emplace_back(PW_SOURCE_TEMPLATE_DIR);
  std::string looked;
  for (const auto& d : dirs) {
    if (fs::is_regular_file(d / "human.toml", ec)) return d;
    looked += (looked.empty() ? "" : ", ") + d.string();
  }
  throw Error("no profile templates found (looked in " + looked +
              "); set PW_TEMPLATE_DIR to the dir with human.toml");
}

namespace {

std::string read_text(const fs::path& p) {
  int err = 0;
  auto text = read_text_file(p, err);
  if (!text) throw Error("cannot read template " + p.string() + ": " + std::generic_category().message(err));
  return *text;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
    s.replace(pos, from.size(), to);
  }
}

// A line containing MARKER is replaced as a whole by `line` (which may be empty).
void replace_line(std::string& s, const std::string& marker, const std::string& line) {
  std::size_t pos = s.find(marker);
  while (pos != std::string::npos) {
    const std::size_t begin = s.rfind('\n', pos) == std::string::npos ? 0 : s.rfind('\n', pos) + 1;
    std::size_t end = s.find('\n', pos);
    end = end == std::string::npos ? s.size() : end + 1;
    const std::string repl = line.empty() ? "" : line + "\n";
    s.replace(begin, end - begin, repl);
    pos = s.find(marker, begin + repl.size());
  }
}

bool executable(const fs::path& p) {
  std::error_code ec;
  return p.is_absolute() && fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

}  // namespace

namespace profile_detail {

// "~/x" for paths under HOME (what a user would write), else the path; $ doubled.
std::string display_path(const fs::path& p) {
  const std::string s = p.string();
  if (const char* h = std::getenv("HOME"); h && h[0] == '/') {
    const std::string home = profile_detail::normalise(h).string();
    if (home != "/" && s.size() > home.size() && s.starts_with(home) && s[home.size()] == '/') {
      return "~" + escape_dollars(s.substr(home.size()));
    }
    if (s == home) return "~";
  }
  return escape_dollars(s);
}

void write_atomic(const fs::path& file, const std::string& text) {
  std::string tmpl = (file.parent_path() / ".profile.toml.XXXXXX").string();
  const int raw = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (raw < 0) throw SysError("cannot create a file in " + file.parent_path().string());
  bool ok = true;
  std::size_t off = 0;
  while (ok && off < text.size()) {
    const ssize_t n = ::write(raw, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      ok = false;
    else
      off += static_cast<std::size_t>(n);
  }
  const int err = ok ? 0 : errno;
  if (ok && ::fsync(raw) != 0) ok = false;
  ::close(raw);
  if (!ok || ::rename(tmpl.c_str(), file.c_str()) != 0) {
    const int e = err ? err : errno;
    ::unlink(tmpl.c_str());
    throw SysError("cannot write " + file.string(), e);
  }
}

// mkdir -p with mode 0700 for every component we create (pw's config is nobody else's).
void make_private_dirs(const fs::path& dir) {
  fs::path cur;
  for (const auto& part : dir) {
    cur /= part;
    if (::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST) {
      throw SysError("cannot create " + cur.string());
    }
  }
}

}  // namespace profile_detail

using profile_detail::display_path;
using profile_detail::make_private_dirs;
using profile_detail::write_atomic;

std::vector<fs::path> create_profiles(const NewProfileOptions& opts) {
  const std::string& name = opts.name;
  if (!valid_profile_name(name)) {
    throw Error("'" + name +
                "' is not a valid profile name (letters, digits, '.', '_' and '-', starting "
                "with a letter or digit)");
  }
  const std::vector<std::string>& presets = agent_presets();
  if (std::find(presets.begin(), presets.end(), opts.agent) == presets.end()) {
    std::string expected;
    for (std::size_t i = 0; i < presets.size(); ++i) {
      expected += (i == 0 ? "" : i + 1 == presets.size() ? " or " : ", ") + presets[i];
    }
    throw Error("unknown agent preset '" + opts.agent + "' (expected " + expected + ")" +
                profile_detail::did_you_mean(opts.agent, presets));
  }
  if (opts.dir.empty()) throw Error("pw new needs --dir: the project directory");
  std::error_code ec;
  const fs::path dir = profile_detail::normalise(fs::absolute(opts.dir, ec));
  if (ec || !fs::is_directory(dir, ec)) {
    throw Error("project dir '" + opts.dir.string() + "' does not exist or is not a directory");
  }
  std::string shell = opts.shell;
  std::string agent_shell = opts.shell;
  if (shell.empty()) {
    const char* sh = std::getenv("SHELL");
    shell = sh && executable(sh) ? sh : "/bin/bash";
    // Agents run their tool calls through bash and, with ~ hidden, never see the user's
    // shell rc files, so without an explicit --shell the agent profile gets bash.
    agent_shell = executable("/bin/bash") ? "/bin/bash" : shell;
  } else if (!executable(shell)) {
    throw Error("--shell '" + shell + "' is not an absolute path to an executable file");
  }

  const fs::path cfg = config_dir();
  const std::string agent_name = name + "-llm";
  const fs::path human_dir = cfg / name, agent_dir = cfg / agent_name;
  for (const auto& d : {human_dir, agent_dir}) {
    if (fs::exists(fs::symlink_status(d, ec))) {
      throw Error("profile '" + d.filename().string() + "' already exists (" + d.string() +
                  "); nothing written. Remove it first to start over");
    }
  }

  const fs::path tdir = template_dir();
  out::step("templates from " + tdir.string());
  std::string human = read_text(tdir / "human.toml");
  std::string agent = read_text(tdir / ("agent-" + opts.agent + ".toml"));

  // Sibling projects: the parent of the project dir, unless that is ~ or / (hiding those
  // would hide everything; the agent hides ~ wholesale anyway). The project dir itself stays
  // visible because the deeper allow of the project re-exposes it.
  const fs::path parent = dir.parent_path();
  std::string home;
  if (const char* h = std::getenv("HOME"); h && h[0] == '/') {
    home = profile_detail::normalise(h).string();
  }
  std::string siblings;
  if (parent != "/" && parent.string() != home) {
    siblings = "  \"" + profile_detail::toml_basic_escape(display_path(parent)) +
               "\",  # sibling projects: none of this one's business";
  }
  for (auto* text : {&human, &agent}) {
    replace_line(*text, "@OTHER_PROJECTS@", siblings);
    replace_all(*text, "@VAULT@",
                profile_detail::toml_basic_escape(display_path(data_dir() / "vaults" / name)));
    replace_all(*text, "@NAME@", name);
    replace_all(*text, "@DIR@", profile_detail::toml_basic_escape(display_path(dir)));
    replace_all(*text, "@SHELL@", profile_detail::toml_basic_escape(escape_dollars(shell)));
    replace_all(*text, "@AGENT_SHELL@",
                profile_detail::toml_basic_escape(escape_dollars(agent_shell)));
  }

  const fs::path human_file = human_dir / "profile.toml";
  const fs::path agent_file = agent_dir / "profile.toml";
  // Validate before touching the disk, so a bad template or an odd machine writes nothing.
  parse_profile(human, human_file, name);
  parse_profile(agent, agent_file, agent_name);

  make_private_dirs(cfg);
  if (::mkdir(human_dir.c_str(), 0700) != 0) {
    throw SysError("cannot create " + human_dir.string() + "; nothing written");
  }
  if (::mkdir(agent_dir.c_str(), 0700) != 0) {
    const int err = errno;
    ::rmdir(human_dir.c_str());
    throw SysError("cannot create " + agent_dir.string() + "; nothing written", err);
  }
  try {
    write_atomic(human_file, human);
    write_atomic(agent_file, agent);
  } catch (...) {
    fs::remove_all(human_dir, ec);
    fs::remove_all(agent_dir, ec);
    throw;
  }
  load_profile_file(human_file, name);
  load_profile_file(agent_file, agent_name);
  return {human_file, agent_file};
}

}  // namespace pw
