// The command line around the sandbox: `pw edit` with scripted editors, --quiet, --verbose,
// and colour (terminal only, NO_COLOR honoured).
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <sstream>
#include <string>

#include <fusevault/vault.hpp>

#include "harness.hpp"

namespace fs = std::filesystem;
using it::World;

namespace {

const char* const kEsc = "\033[";

fs::path profile_file(const World& w, const std::string& name) {
  return w.config / "pw" / name / "profile.toml";
}

std::string valid_profile(const World& w, const std::string& extra = "") {
  return "[project]\ndir = \"" + w.project.string() + "\"\nshell = \"/bin/sh\"\n" + extra;
}

// w.env without the variables these tests set themselves, plus `add`.
std::vector<std::string> env_with(const World& w, const std::vector<std::string>& add) {
  std::vector<std::string> env;
  for (const auto& kv : w.env) {
    bool ours = false;
    for (const char* v : {"VISUAL=", "EDITOR=", "NO_COLOR=", "TERM="}) ours |= kv.rfind(v, 0) == 0;
    if (!ours) env.push_back(kv);
  }
  env.insert(env.end(), add.begin(), add.end());
  return env;
}

// An "editor": a script that replaces the file it is given ($last argument) with `text`.
// It also records its arguments, so tests can see how it was called.
fs::path editor_script(const World& w, const std::string& name, const std::string& text) {
  fs::path body = w.home / "editors" / (name + ".body");
  it::write_file(body, text);
  fs::path script = w.home / "editors" / name;
  it::write_file(script,
                 "#!/bin/sh\n"
                 "echo \"$@\" > '" + script.string() + ".args'\n"
                 "for f; do :; done\n"
                 "cat '" + body.string() + "' > \"$f\"\n",
                 0755);
  return script;
}

std::vector<std::string> leftovers(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (n != "profile.toml" && n != "profile.toml.rejected") out.push_back(n);
  }
  return out;
}

std::string all_output(it::Pty& p) {
  p.expect("\x01 never printed \x01", 20000);  // reads to EOF (or times out)
  return p.seen;
}

}  // namespace

TEST_CASE("pw edit: a valid edit replaces the profile atomically and keeps its mode", "[cli]") {
  auto& w = World::get();
  w.write_profile("edit-ok", valid_profile(w));
  REQUIRE(::chmod(profile_file(w, "edit-ok").c_str(), 0640) == 0);
  const std::string edited = valid_profile(w, "\n[sandbox]\nipc = false\n");
  fs::path ed = editor_script(w, "valid", edited);

  // EDITOR carries an argument (it runs through the shell, as for git).
  auto r = it::run({PW_BIN, "edit", "edit-ok"}, env_with(w, {"EDITOR=" + ed.string() + " --wait"}));
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(it::read_file(profile_file(w, "edit-ok")) == edited);
  CHECK(r.out.find("updated " + profile_file(w, "edit-ok").string()) != std::string::npos);
  struct stat st;
  REQUIRE(::stat(profile_file(w, "edit-ok").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  // The editor got a copy beside the profile, ending in .toml, and it is gone now.
  const std::string args = it::read_file(ed.string() + ".args");
  CHECK(args.rfind("--wait " + (w.config / "pw" / "edit-ok" / ".profile.toml.edit-").string(), 0) == 0);
  CHECK(args.find(".toml\n") != std::string::npos);
  CHECK(leftovers(w.config / "pw" / "edit-ok").empty());
  // And the new settings are what pw now loads.
  CHECK(w.pw({"show", "edit-ok"}).out.find("ipc = false") != std::string::npos);

  // VISUAL wins over EDITOR; an editor that changes nothing changes nothing.
  fs::path same = editor_script(w, "same", edited);
  fs::path never = editor_script(w, "never", "garbage");
  r = it::run({PW_BIN, "edit", "edit-ok"},
              env_with(w, {"VISUAL=" + same.string(), "EDITOR=" + never.string()}));
  CHECK(r.rc == 0);
  CHECK(r.out.find("no changes") != std::string::npos);
  CHECK(fs::exists(same.string() + ".args"));
  CHECK_FALSE(fs::exists(never.string() + ".args"));
}

TEST_CASE("pw edit: without VISUAL or EDITOR, `editor` from PATH, else vi", "[cli]") {
  auto& w = World::get();
  w.write_profile("edit-fallback", valid_profile(w));
  fs::path bin = w.home / "fallback-bin";
  fs::create_directories(bin);
  auto fake = [&](const std::string& name) {
    it::write_file(bin / name,
                   "#!/bin/sh\n/bin/echo \"# by " + name + "\" >> \"$1\"\n", 0755);
  };
  std::vector<std::string> env;
  for (const auto& kv : env_with(w, {})) {
    if (kv.rfind("PATH=", 0) != 0) env.push_back(kv);
  }
  env.push_back("PATH=" + bin.string());  // nothing else: no system editor or vi in reach

  fake("vi");
  auto r = it::run({PW_BIN, "edit", "edit-fallback"}, env);
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(it::read_file(profile_file(w, "edit-fallback")).find("# by vi\n") != std::string::npos);
  fake("editor");
  r = it::run({PW_BIN, "edit", "edit-fallback"}, env);
  CHECK(r.rc == 0);
  CHECK(it::read_file(profile_file(w, "edit-fallback")).find("# by editor\n") != std::string::npos);
}

TEST_CASE("pw edit: an edit that does not load keeps the old profile and says where", "[cli]") {
  auto& w = World::get();
  const std::string before = valid_profile(w);
  w.write_profile("edit-bad", before);
  fs::path ed = editor_script(w, "invalid", valid_profile(w, "\n[walls]\nseccomp = \"strct\"\n"));

  // stdin is not a terminal: no offer to edit again, a failure.
  auto r = it::run({PW_BIN, "edit", "edit-bad"}, env_with(w, {"EDITOR=" + ed.string()}));
  INFO(r.err);
  CHECK(r.rc == 1);
  CHECK(it::read_file(profile_file(w, "edit-bad")) == before);
  // file:line:col of the profile itself (not of the temporary copy), the key, a suggestion.
  CHECK(r.err.find(profile_file(w, "edit-bad").string() + ":6:11: walls.seccomp:") != std::string::npos);
  CHECK(r.err.find("did you mean 'strict'?") != std::string::npos);
  CHECK(r.err.find("Edit again") == std::string::npos);
  // The rejected version is kept for the user, and nothing else is left behind.
  fs::path rejected = w.config / "pw" / "edit-bad" / "profile.toml.rejected";
  CHECK(it::read_file(rejected).find("strct") != std::string::npos);
  CHECK(r.err.find(rejected.string()) != std::string::npos);
  CHECK(leftovers(w.config / "pw" / "edit-bad").empty());

  // A failing editor changes nothing either.
  r = it::run({PW_BIN, "edit", "edit-bad"}, env_with(w, {"EDITOR=/bin/false"}));
  CHECK(r.rc == 1);
  CHECK(r.err.find("exited with status 1") != std::string::npos);
  CHECK(it::read_file(profile_file(w, "edit-bad")) == before);

  // Neither does a TOML syntax error, nor an unknown profile.
  fs::path syntax = editor_script(w, "syntax", "[project\n");
  r = it::run({PW_BIN, "edit", "edit-bad"}, env_with(w, {"EDITOR=" + syntax.string()}));
  CHECK(r.rc == 1);
  CHECK(r.err.find(profile_file(w, "edit-bad").string() + ":1:") != std::string::npos);
  CHECK(it::read_file(profile_file(w, "edit-bad")) == before);
  r = it::run({PW_BIN, "edit", "edit-badd"}, env_with(w, {"EDITOR=" + syntax.string()}));
  CHECK(r.rc == 1);
  CHECK(r.err.find("did you mean 'edit-bad'?") != std::string::npos);
}

TEST_CASE("pw edit: on a terminal, a rejected edit can be edited again", "[cli]") {
  auto& w = World::get();
  const std::string before = valid_profile(w);
  const std::string good = valid_profile(w, "\n[env]\nFIXED = \"1\"\n");
  // First call writes a broken profile, the next ones a good one.
  fs::path bad_body = w.home / "editors" / "twice.bad";
  fs::path good_body = w.home / "editors" / "twice.good";
  fs::path count = w.home / "editors" / "twice.count";
  it::write_file(bad_body, valid_profile(w, "\n[sandbox]\nwhitelist = \"~\"\n"));
  it::write_file(good_body, good);
  fs::path ed = w.home / "editors" / "twice";
  it::write_file(ed,
                 "#!/bin/sh\n"
                 "if [ -e '" + count.string() + "' ]; then cat '" + good_body.string() + "' > \"$1\";\n"
                 "else touch '" + count.string() + "'; cat '" + bad_body.string() + "' > \"$1\"; fi\n",
                 0755);

  SECTION("yes: the second edit is saved") {
    w.write_profile("edit-tty", before);
    fs::remove(count);
    it::Pty p({PW_BIN, "edit", "edit-tty"}, env_with(w, {"EDITOR=" + ed.string(), "TERM=dumb"}));
    REQUIRE(p.expect("sandbox.whitelist: expected an array of strings, got a string"));
    REQUIRE(p.expect("Edit again? [Y/n]"));
    p.send("y\n");
    CHECK(p.expect("updated "));
    CHECK(p.wait() == 0);
    CHECK(it::read_file(profile_file(w, "edit-tty")) == good);
  }
  SECTION("no: the profile stays as it was") {
    w.write_profile("edit-tty", before);
    fs::remove(count);
    it::Pty p({PW_BIN, "edit", "edit-tty"}, env_with(w, {"EDITOR=" + ed.string(), "TERM=dumb"}));
    REQUIRE(p.expect("Edit again? [Y/n]"));
    p.send("n\n");
    CHECK(p.expect("is unchanged"));
    CHECK(p.wait() == 1);
    CHECK(it::read_file(profile_file(w, "edit-tty")) == before);
  }
}

TEST_CASE("control characters in what pw prints are shown, not sent to the terminal", "[cli]") {
  auto& w = World::get();
  // A name an agent could choose (a file or link in the project) ends up in messages; here
  // through the profile name, the shortest way to an error that repeats it.
  auto r = w.pw({"bad\x1b]0;title\x07\x1b[2J\r\xc2\x9bname"});
  CHECK(r.rc != 0);
  CHECK(r.err.find("bad\\x1b]0;title\\x07\\x1b[2J\\x0d\\x9bname") != std::string::npos);
  CHECK(r.err.find('\x1b') == std::string::npos);
  CHECK(r.err.find('\r') == std::string::npos);
  CHECK(r.err.find("\xc2\x9b") == std::string::npos);
}

TEST_CASE("--quiet drops informational lines, not errors or asked-for output", "[cli]") {
  auto& w = World::get();
  auto r = w.pw({"new", "loud", "--dir", w.project.string(), "--shell", "/bin/sh"});
  CHECK(r.rc == 0);
  CHECK(r.out.find("wrote ") != std::string::npos);
  CHECK(r.out.find("enter with: pw loud") != std::string::npos);

  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--quiet", "new", "hush", "--dir", w.project.string(), "--shell", "/bin/sh"},
           {"new", "hush2", "--dir", w.project.string(), "--shell", "/bin/sh", "-q"}}) {
    r = w.pw(args);
    INFO(args[1]);
    CHECK(r.rc == 0);
    CHECK(r.out.empty());
    CHECK(r.err.empty());
  }
  CHECK(fs::exists(profile_file(w, "hush")));
  CHECK(fs::exists(profile_file(w, "hush2-llm")));

  fs::path ed = editor_script(w, "quiet", valid_profile(w, "# quietly\n"));
  r = it::run({PW_BIN, "-q", "edit", "hush"}, env_with(w, {"EDITOR=" + ed.string()}));
  CHECK(r.rc == 0);
  CHECK(r.out.empty());
  CHECK(it::read_file(profile_file(w, "hush")).find("# quietly") != std::string::npos);

  // What was asked for still comes, and so do errors.
  r = w.pw({"-q", "list", "--names"});
  CHECK(r.out.find("hush\nhush-llm\n") != std::string::npos);
  r = w.pw({"-q", "show", "no-such-profile"});
  CHECK(r.rc == 1);
  CHECK(r.err.find("no profile 'no-such-profile'") != std::string::npos);
  r = w.pw({"-q", "-v", "list"});
  CHECK(r.rc != 0);
}

TEST_CASE("--verbose shows the mount plan and each namespace step; off, nothing", "[cli]") {
  auto& w = World::get();
  auto r = w.pw({"--verbose", "demo-llm", "--", "/bin/true"});
  INFO(r.err);
  CHECK(r.rc == 0);
  for (const char* step : {"pw: profile demo-llm: ", "pw: plan: ", "pw: joined workspace demo-llm",
                           "pw: entered the workspace's user namespace",
                           "pw: session: clone: new pid, mount, uts, ipc namespaces",
                           "pw: session: entered the workspace's network namespace (loopback only)",
                           "pw: session: root built at ",
                           "pw: session: hostname demo-llm; pivot_root",
                           "pw: session: nested user namespace: uid ", "pw: session: no_new_privs set",
                           "pw: session: seccomp filter (", "then exec /bin/true"}) {
    CHECK(r.err.find(step) != std::string::npos);
  }
  // In the order they happen.
  CHECK(r.err.find("pw: plan: ") < r.err.find("pw: session: clone"));
  CHECK(r.err.find("pw: session: clone") < r.err.find("pw: session: root built"));
  CHECK(r.err.find("pw: session: root built") < r.err.find("pw: session: nested user namespace"));
  CHECK(r.err.find("pw: session: no_new_privs") < r.err.find("pw: session: seccomp"));
  // Every step line ends with the time since pw started, which never goes back (the
  // session's lines come from its forked processes, timed from the same start).
  std::istringstream lines(r.err);
  std::string line;
  double last = -1;
  int timed = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("pw: ", 0) != 0 || line.rfind("pw: warning: ", 0) == 0) continue;
    INFO(line);
    const auto at = line.rfind(" (+");
    REQUIRE(at != std::string::npos);
    REQUIRE(line.size() > 4);
    CHECK(line.substr(line.size() - 4) == " ms)");
    const double ms = std::stod(line.substr(at + 3));
    CHECK(ms >= last);
    CHECK(ms < 60000);
    last = ms;
    ++timed;
  }
  CHECK(timed >= 10);

  for (const auto& args : std::vector<std::vector<std::string>>{{"demo-llm", "--", "/bin/true"},
                                                                {"-q", "demo-llm", "--", "/bin/true"}}) {
    r = w.pw(args);
    CHECK(r.rc == 0);
    CHECK(r.err.empty());
    CHECK(r.out.empty());
  }
}

TEST_CASE("colour only on a terminal, and never with NO_COLOR", "[cli]") {
  auto& w = World::get();
  w.write_profile("colour-bad", "[project]\ndir = 42\n");
  // A terminal: the error's prefix and `pw list`'s postures are coloured.
  {
    it::Pty p({PW_BIN, "show", "colour-bad"}, env_with(w, {"TERM=xterm"}));
    std::string seen = all_output(p);
    CHECK(p.wait() == 1);
    CHECK(seen.find(kEsc) != std::string::npos);
    CHECK(seen.find("project.dir: expected a string") != std::string::npos);
  }
  {
    it::Pty p({PW_BIN, "list"}, env_with(w, {"TERM=xterm"}));
    std::string seen = all_output(p);
    CHECK(p.wait() == 0);
    CHECK(seen.find(std::string(kEsc) + "32mhuman ") != std::string::npos);
  }
  // NO_COLOR (any non-empty value), TERM=dumb, or no terminal: plain text.
  for (const auto& extra : std::vector<std::vector<std::string>>{{"TERM=xterm", "NO_COLOR=1"},
                                                                 {"TERM=dumb"}}) {
    INFO(extra.back());
    it::Pty show({PW_BIN, "show", "colour-bad"}, env_with(w, extra));
    std::string seen = all_output(show);
    CHECK(show.wait() == 1);
    CHECK(seen.find("project.dir: expected a string") != std::string::npos);
    CHECK(seen.find(kEsc) == std::string::npos);
    it::Pty list({PW_BIN, "list"}, env_with(w, extra));
    seen = all_output(list);
    CHECK(list.wait() == 0);
    CHECK(seen.find("human") != std::string::npos);
    CHECK(seen.find(kEsc) == std::string::npos);
  }
  auto r = it::run({PW_BIN, "show", "colour-bad"}, env_with(w, {"TERM=xterm"}));
  CHECK(r.rc == 1);
  CHECK(r.err.find("pw: ") == 0);
  CHECK(r.err.find(kEsc) == std::string::npos);
  r = it::run({PW_BIN, "list"}, env_with(w, {"TERM=xterm"}));
  CHECK(r.out.find(kEsc) == std::string::npos);
}

TEST_CASE("key derivation says what it is doing, unless quiet", "[cli]") {
  auto& w = World::get();
  for (const char* n : {"kdfp", "kdfq"}) {
    auto r = w.pw({"new", n, "--dir", w.project.string(), "--shell", "/bin/sh"});
    REQUIRE(r.rc == 0);
  }
  fs::path pass = w.home / "kdf-pass";
  it::write_file(pass, "a passphrase\n", 0600);
  auto r = w.pw({"vault", "init", "kdfp", "--passphrase-file", pass.string(), "--kdf-ops", "1", "--kdf-mem-mib", "8"});
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(r.err.find("pw: deriving the key (Argon2id, 1 passes, 8 MiB)...") != std::string::npos);
  // The format the vault was made with, and its cipher (format 2 where the CPU has AES).
  INFO(r.out);
  CHECK((r.out + r.err).find(fusevault::default_format() == 2 ? "fusevault format 2, AES-256-GCM"
                                                                : "fusevault format 1, XChaCha20-Poly1305") !=
        std::string::npos);
  r = w.pw({"-q", "vault", "init", "kdfq", "--passphrase-file", pass.string(), "--kdf-ops", "1", "--kdf-mem-mib", "8"});
  CHECK(r.rc == 0);
  CHECK(r.err.empty());
  // On a terminal the time counts up while Argon2id runs.
  it::Pty t({PW_BIN, "vault", "passwd", "kdfp", "--passphrase-file", pass.string(), "--new-passphrase-file",
             pass.string(), "--kdf-ops", "1", "--kdf-mem-mib", "8"}, w.env);
  CHECK(t.expect("deriving the key (Argon2id, 1 passes, 8 MiB)... 0.0 s"));
  CHECK(t.wait() == 0);
}
