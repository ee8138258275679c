// pw: per-project workspaces with a human and an agent posture.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <sched.h>
#include <sstream>
#include <string_view>

#include "check/wallcheck.hpp"
#include "cli/doctor.hpp"
#include "cli/edit.hpp"
#include "cli/session.hpp"
#include "cli/vault_cmd.hpp"
#include "net/log.hpp"
#include "policy/env_plan.hpp"
#include "policy/mount_plan.hpp"
#include "profile/loader.hpp"
#include "profile/pwrap_import.hpp"
#include "sandbox/landlock.hpp"
#include "sandbox/seccomp.hpp"
#include "util/error.hpp"
#include "util/output.hpp"
#include "util/proctitle.hpp"
#include "workspace/protocol.hpp"
#include "workspace/workspace.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace pw;

namespace {

int cmd_list(bool names_only) {
  for (const auto& n : list_profiles()) {
    if (names_only) {  // for shell completion: no loading, one name per line
      std::printf("%s\n", n.c_str());
      continue;
    }
    char posture[8];
    try {
      ProfileSpec s = load_profile(n);
      std::snprintf(posture, sizeof posture, "%-6s", to_string(s.posture));
      const auto style = s.posture == Posture::Human ? out::Style::Green : out::Style::Cyan;
      std::printf("%-24s %s %s\n", n.c_str(), out::paint(stdout, style, posture).c_str(), s.dir.c_str());
    } catch (const std::exception& e) {
      std::snprintf(posture, sizeof posture, "%-6s", "error");
      std::printf("%-24s %s %s\n", n.c_str(), out::paint(stdout, out::Style::Red, posture).c_str(),
                  e.what());
    }
  }
  return 0;
}

int cmd_show(const std::string& name) {
  ProfileSpec s = load_profile(name);
  for (const auto& w : s.warnings) out::warn(w);
  std::fputs(render_profile(s).c_str(), stdout);
  return 0;
}

int cmd_explain(const std::string& name, const std::string& path) {
  ProfileSpec spec = load_profile(name);
  for (const auto& w : spec.warnings) out::warn(w);
  HostFacts host = host_facts();
  PlanContext ctx = plan_context(spec, host);
  HostFs hostfs;
  MountPlan plan = plan_mounts(spec, ctx, hostfs);
  for (const auto& w : plan.warnings) out::warn(w);
  if (!path.empty()) {
    fs::path p = fs::absolute(path).lexically_normal();
    PathVerdict v = explain_path(plan, p, hostfs);
    std::printf("%s: %s\n  because: %s\n", p.c_str(), v.state.c_str(), v.why.c_str());
    if (v.resolved != p) std::printf("  (resolves to %s)\n", v.resolved.c_str());
    return 0;
  }
  std::printf("# profile %s (%s posture), project %s\n", name.c_str(), to_string(spec.posture),
              spec.dir.c_str());
  std::printf("# namespaces: user (root for setup, then the user), mount, pid, uts%s%s\n",
              spec.ipc ? ", ipc" : "", spec.net != NetMode::Host ? ", net (loopback only)" : "");
  std::printf("# mounts, in order, on a fresh tmpfs root:\n");
  for (const auto& op : plan.ops) std::printf("%s\n", describe(op).c_str());
  if (spec.landlock == LandlockMode::Off) {
    std::printf("# landlock: off\n");
  } else {
    int abi = landlock::abi();
    std::printf("# landlock (%s, kernel ABI %d): rights granted beneath each path\n", to_string(spec.landlock), abi);
    for (const auto& r : plan_landlock(plan)) std::printf("%s\n", describe(r).c_str());
    try {
      if (std::string w = landlock::check(spec.landlock, abi); !w.empty()) std::printf("#   %s\n", w.c_str());
    } catch (const std::exception& e) {
      std::printf("#   refused at start: %s\n", e.what());
    }
  }
  std::printf("# seccomp (%s):\n", to_string(spec.seccomp));
  for (const auto& d : seccomp::describe(spec)) std::printf("  %s\n", d.c_str());
  std::printf("# environment%s:\n", spec.clean_env ? " (clean: host variables dropped but the kept few)" : "");
  std::vector<std::string> env;
  std::vector<std::string> host_env;
  for (char** e = environ; *e; ++e) host_env.emplace_back(*e);
  for (const auto& kv : plan_env(spec, {host_env, host.home, host.user})) {
    std::string k = kv.substr(0, kv.find('='));
    bool from_profile = false;
    for (const auto& [n, v] : spec.env) from_profile |= n == k;
    // Values of [env] may be secrets: show names only.
    if (from_profile || k.rfind("PW_", 0) == 0 || agent_state_var(k) || spec.clean_env) {
      std::printf("  %s\n", from_profile ? (k + "=<from [env]>").c_str() : kv.c_str());
    }
  }
  return 0;
}

std::string ago(long t) {
  long d = static_cast<long>(::time(nullptr)) - t;
  if (d < 120) return std::to_string(d) + "s";
  if (d < 7200) return std::to_string(d / 60) + "m";
  return std::to_string(d / 3600) + "h";
}

int cmd_ps() {
  auto ws = list_workspaces();
  if (ws.empty()) {
    std::printf("no running workspaces\n");
    return 0;
  }
  for (const auto& w : ws) {
    std::printf("%s  supervisor pid %ld, up %s, %zu session(s)%s\n", w.name.c_str(), w.supervisor_pid,
                ago(w.started).c_str(), w.sessions.size(),
                w.vault.empty() ? "" : (", vault " + w.vault).c_str());
    for (const auto& s : w.sessions) {
      std::printf("  pid %-8ld %-6s %s\n", s.pid, ago(s.started).c_str(), s.summary.c_str());
    }
  }
  return 0;
}

// The top-level subcommands, for the fast path of main().
constexpr std::string_view kSubcommands[] = {"new",  "import-pwrap", "list",   "show",
                                             "explain", "edit",     "ps",     "check",
                                             "doctor",  "log",      "vault",  "help"};
bool is_subcommand(std::string_view word) {
  return std::find(std::begin(kSubcommands), std::end(kSubcommands), word) != std::end(kSubcommands);
}

// `pw __supervise NAME made NET CPUS RUNDIR`, exec'd by a client's workspace helper
// (maker.cpp) with the lock, the client's registration socket, the user and mount
// namespaces and the staging tmpfs as descriptors 3 to 7, then the network namespace and
// the proxy's listener as the network mode has them. CPUS: the client's CPU mask as a
// list ("0,1"), or "-"; RUNDIR: the client's runtime dir.
int supervise_made(const std::string& name, const std::string& net, const std::string& cpus,
                   const std::string& runtime) {
  MadeWorkspace made;
  made.runtime = runtime;
  if (net.size() != 1 || !proto::net_from_code(net[0], made.net_mode)) return 2;
  made.starter.reset(4);
  made.userns.reset(5);
  made.mntns.reset(6);
  made.stage_root.reset(7);
  if (made.net_mode != NetMode::Host) made.netns.reset(8);
  if (made.net_mode == NetMode::Allowlist) made.http.reset(9);
  for (const Fd* fd : {&made.starter, &made.userns, &made.mntns, &made.stage_root, &made.netns, &made.http}) {
    if (*fd) ::fcntl(fd->get(), F_SETFD, FD_CLOEXEC);  // for nothing we start (the proxy)
  }
  CPU_ZERO(&made.cpus);
  if (cpus != "-") {
    std::istringstream in(cpus);
    std::string cpu;
    while (std::getline(in, cpu, ',')) {
      const int n = std::stoi(cpu);
      if (n >= 0 && n < CPU_SETSIZE) CPU_SET(n, &made.cpus);
    }
    made.restore_cpus = CPU_COUNT(&made.cpus) > 0;
  }
  return supervisor_main(name, 3, -1, nullptr, {}, &made);
}

}  // namespace

int main(int argc, char** argv) {
  proctitle::remember(argc, argv);
  try {
    if (argc >= 2 && std::string(argv[1]) == "__supervise") {
      if (argc == 7 && std::string(argv[3]) == "made") return supervise_made(argv[2], argv[4], argv[5], argv[6]);
      if (argc != 5) return 2;
      return supervisor_main(argv[2], std::stoi(argv[3]), std::stoi(argv[4]));
    }
    // `pw check`'s two halves: the session it starts, and the checks run inside it.
    // _exit: no exit-time handlers (a sanitizer's leak check needs ptrace, which the walls
    // being checked may deny).
    if (argc >= 2 && std::string(argv[1]) == "__wallcheck") _exit(check::agent_main(argc - 2, argv + 2));
    if (argc >= 5 && std::string(argv[1]) == "__check-session" && std::string(argv[3]) == "--") {
      return run_profile(argv[2], std::vector<std::string>(argv + 4, argv + argc), false, true);
    }
    // The common case, `pw NAME` or `pw NAME -- CMD ARGS`, without building the command
    // line parser: setting up its dozens of options costs more instructions than the rest
    // of a start until the supervisor is asked. Anything else (flags, a subcommand, a
    // name that is not one) goes through the parser below, which says what is wrong.
    if (argc >= 2 && valid_profile_name(argv[1]) && !is_subcommand(argv[1]) &&
        (argc == 2 || std::string_view(argv[2]) == "--")) {
      return run_profile(argv[1], std::vector<std::string>(argv + std::min(argc, 3), argv + argc), false);
    }
    if (argc == 2 && std::string(argv[1]) == "__keys") {  // the profile keys, for pw-profile(5)'s test
      for (const auto& k : profile_keys()) std::printf("%s\n", k.c_str());
      return 0;
    }

    CLI::App app{"pw: per-project workspaces with a human and an agent posture.\n"
                 "  pw NAME              a shell in profile NAME's sandbox\n"
                 "  pw NAME -- CMD ARGS  one command in it; exits with its status",
                 "pw"};
    app.set_version_flag("--version", std::string("pw ") + PW_VERSION);
    bool verbose = false;
    app.add_flag("-v,--verbose", verbose, "show the mount plan and each setup step");
    bool quiet = false;
    app.add_flag("-q,--quiet", quiet, "print only errors, warnings and what was asked for");
    std::string profile;
    std::vector<std::string> command;
    app.add_option("profile", profile, "profile to enter");
    app.add_option("command", command, "command to run instead of the shell (after --)");
    app.require_subcommand(0, 1);

    auto* c_new = app.add_subcommand("new", "create profiles NAME (human) and NAME-llm (agent)");
    NewProfileOptions nopts;
    c_new->add_option("name", nopts.name, "profile name")->required();
    c_new->add_option("--dir", nopts.dir, "the project directory")->required();
    c_new->add_option("--shell", nopts.shell, "shell for interactive sessions");
    c_new->add_option("--agent", nopts.agent, "agent preset for NAME-llm (default: generic)")
        ->check(CLI::IsMember(agent_presets()));

    auto* c_import = app.add_subcommand("import-pwrap", "convert pwrap projects (DIR/NAME/project.toml) into pw profiles");
    std::string import_dir;
    bool import_dry = false;
    c_import->add_option("dir", import_dir, "pwrap's config dir (default $XDG_CONFIG_HOME/pwrap or ~/.config/pwrap)");
    c_import->add_flag("--dry-run", import_dry, "print what would be written; write nothing");

    auto* c_list = app.add_subcommand("list", "list profiles");
    bool list_names = false;
    c_list->add_flag("--names", list_names, "profile names only, one per line");
    auto* c_show = app.add_subcommand("show", "print the resolved profile");
    std::string show_name;
    c_show->add_option("name", show_name, "profile")->required();
    auto* c_explain = app.add_subcommand("explain", "print the mount plan, or why PATH is visible");
    std::string ex_name, ex_path;
    c_explain->add_option("name", ex_name, "profile")->required();
    c_explain->add_option("path", ex_path, "a path to explain");
    auto* c_edit = app.add_subcommand("edit", "edit profile NAME in $VISUAL/$EDITOR; saved only if it loads");
    std::string edit_name;
    c_edit->add_option("name", edit_name, "profile")->required();
    app.add_subcommand("ps", "list running workspaces and their sessions");
    auto* c_check = app.add_subcommand("check", "test every wall of profile NAME from inside a fresh session");
    std::string check_name;
    c_check->add_option("name", check_name, "profile")->required();
    app.add_subcommand("doctor", "check that pw can work here: kernel, namespaces, FUSE, walls, profiles");
    auto* c_log = app.add_subcommand("log", "the network decisions of profile NAME's sessions (net.log)");
    std::string log_name;
    c_log->add_option("name", log_name, "profile")->required();

    auto* c_vault = app.add_subcommand("vault", "the project's encrypted vault (human posture)");
    c_vault->require_subcommand(1);
    std::string v_name;
    PassSource v_pass, v_new;
    KdfChoice v_kdf;
    auto pass_opts = [&](CLI::App* c, PassSource& p, const std::string& prefix) {
      auto* f = c->add_option("--" + prefix + "passphrase-fd", p.fd,
                              "read the " + prefix + "passphrase (one line) from this inherited fd");
      auto* g = c->add_option("--" + prefix + "passphrase-file", p.file,
                              "read the " + prefix + "passphrase (first line) from this file");
      f->excludes(g);
    };
    auto kdf_opts = [&](CLI::App* c) {
      c->add_option("--kdf-ops", v_kdf.ops, "Argon2id passes (default 3)");
      c->add_option("--kdf-mem-mib", v_kdf.mem_mib, "Argon2id memory in MiB (default 256)");
    };
    auto* v_init = c_vault->add_subcommand("init", "create the vault of profile NAME");
    auto* v_unlock = c_vault->add_subcommand("unlock", "decrypt it into the running workspace's sessions");
    auto* v_lock = c_vault->add_subcommand("lock", "remove the plaintext from every session; wipe the key");
    auto* v_status = c_vault->add_subcommand("status", "locked or unlocked, and which sessions see it");
    auto* v_passwd = c_vault->add_subcommand("passwd", "change the passphrase (no re-encryption)");
    auto* v_migrate = c_vault->add_subcommand("migrate", "copy a plaintext tree into the vault and verify it");
    std::string v_from;
    v_migrate->add_option("--from", v_from, "the plaintext tree (e.g. a mounted gocryptfs volume)")->required();
    for (auto* c : {v_init, v_unlock, v_lock, v_status, v_passwd, v_migrate}) {
      c->add_option("name", v_name, "profile (default inside a human session: its own)");
    }
    pass_opts(v_init, v_pass, "");
    pass_opts(v_unlock, v_pass, "");
    pass_opts(v_passwd, v_pass, "");
    pass_opts(v_migrate, v_pass, "");
    pass_opts(v_passwd, v_new, "new-");
    kdf_opts(v_init);
    kdf_opts(v_passwd);

    // The fast path above must know every subcommand: one missing would be taken for a
    // profile name there.
    for (const CLI::App* sub : app.get_subcommands({})) {
      if (!is_subcommand(sub->get_name())) throw std::logic_error("subcommand " + sub->get_name() + " not in kSubcommands");
    }

    // --verbose and --quiet are global: accepted after any subcommand as well.
    std::vector<CLI::App*> subs = app.get_subcommands({});
    while (!subs.empty()) {
      CLI::App* sub = subs.back();
      subs.pop_back();
      sub->add_flag("-v,--verbose", verbose, "show the mount plan and each setup step");
      sub->add_flag("-q,--quiet", quiet, "print only errors, warnings and what was asked for");
      for (CLI::App* s : sub->get_subcommands({})) subs.push_back(s);
    }

    CLI11_PARSE(app, argc, argv);
    if (verbose && quiet) throw Error("--verbose and --quiet exclude each other");
    out::set_level(quiet ? out::Level::Quiet : verbose ? out::Level::Verbose : out::Level::Normal);

    if (*c_new) {
      if (nopts.dir.is_relative()) nopts.dir = fs::absolute(nopts.dir);
      for (const auto& f : create_profiles(nopts)) out::info("wrote " + f.string());
      out::info("enter with: pw " + nopts.name + "   (human)   or   pw " + nopts.name +
                "-llm   (agent)");
      return 0;
    }
    if (*c_import) {
      fs::path d = import_dir;
      if (d.empty()) {
        const char* x = std::getenv("XDG_CONFIG_HOME");
        const char* h = std::getenv("HOME");
        if (x && *x) d = fs::path(x) / "pwrap";
        else if (h && *h) d = fs::path(h) / ".config" / "pwrap";
        else throw Error("no pwrap dir given and neither XDG_CONFIG_HOME nor HOME is set");
      }
      return import_pwrap(d, import_dry);
    }
    if (*c_list) return cmd_list(list_names);
    if (*c_edit) return edit_profile(edit_name);
    if (*c_show) return cmd_show(show_name);
    if (*c_explain) return cmd_explain(ex_name, ex_path);
    if (app.got_subcommand("ps")) return cmd_ps();
    if (*c_check) return check::run(check_name, verbose);
    if (app.got_subcommand("doctor")) return doctor::run();
    if (*c_log) return net::print_log(log_name);
    if (*c_vault) {
      if (*v_init) return vault_init(v_name, v_pass, v_kdf);
      if (*v_unlock) return vault_unlock(v_name, v_pass);
      if (*v_lock) return vault_lock(v_name);
      if (*v_status) return vault_status(v_name);
      if (*v_passwd) return vault_passwd(v_name, v_pass, v_new, v_kdf);
      if (*v_migrate) return vault_migrate(v_name, v_from, v_pass);
    }
    if (profile.empty()) {
      std::fputs(app.help().c_str(), stdout);
      return 2;
    }
    return run_profile(profile, command, verbose);
  } catch (const Error& e) {
    out::error(e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    out::error(e.what());
    return 1;
  }
}
