#include "cli/session.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "cli/vault_cmd.hpp"
#include "net/log.hpp"
#include "net/process.hpp"
#include "policy/env_plan.hpp"
#include "profile/loader.hpp"
#include "sandbox/landlock.hpp"
#include "sandbox/spawn.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/output.hpp"
#include "workspace/runtime.hpp"
#include "workspace/workspace.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace pw {

HostFacts host_facts() {
  HostFacts h;
  // $HOME and $USER as the caller has them, as a shell passes them on; the passwd entry
  // only for what is missing (its first lookup costs about half a millisecond at every
  // start: the NSS set-up).
  const char* home = std::getenv("HOME");
  const char* user = std::getenv("USER");
  const bool have_home = home && home[0] == '/', have_user = user && user[0];
  struct passwd* pw = have_home && have_user ? nullptr : ::getpwuid(::getuid());
  h.home = have_home ? home : (pw ? pw->pw_dir : "/");
  h.user = have_user ? user : (pw ? pw->pw_name : "");
  h.uid = ::getuid();
  h.gid = ::getgid();
  return h;
}

PlanContext plan_context(const ProfileSpec& spec, const HostFacts& host, bool for_check) {
  PlanContext ctx;
  ctx.home = fs::path(host.home).lexically_normal();
  ctx.config_dir = config_dir();
  ctx.data_dir = data_dir();
  ctx.runtime_dir = runtime_dir_path();
  ctx.workspace_dir = ctx.runtime_dir / (spec.name + ".ws");
  if (spec.vault) ctx.always_hidden.push_back(spec.vault->cipherdir);
  // pw's state dir (every workspace's network log): none of any session's business.
  ctx.always_hidden.push_back(net::log_path(spec.name).parent_path().parent_path());
  if (spec.posture == Posture::Human) {
    // The vault-only socket, never the control socket: that one hands out the workspace's
    // namespaces and staging dir, a way out of any session that could reach it.
    if (spec.vault) ctx.control_socket = ctx.runtime_dir / (spec.name + ".vault.sock");
    std::error_code ec;
    ctx.self_exe = fs::read_symlink("/proc/self/exe", ec);
    if (spec.vault) ctx.vault_source = ctx.workspace_dir / "vault";
  }
  if (for_check) {
    std::error_code ec;
    ctx.self_exe = fs::read_symlink("/proc/self/exe", ec);
  }
  return ctx;
}

void check_runnable(const ProfileSpec& spec) {
  if (!spec.pid) {
    throw Error(spec.file.string() + ": sandbox.pid = false is not supported: without a private "
                "pid namespace pw could not guarantee that no process outlives the session");
  }
}

namespace {

void mkdir_p_as_user(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create " + dir.string() + ": " + ec.message());
}

// Creates root/rel and the dirs on its way without following a symlink beneath root: an
// agent session can write in the project, and a link it planted there (`.git -> ~/.kube`)
// would otherwise have pw, as the user, create directories wherever it points.
void mkdir_beneath(const fs::path& root, const fs::path& rel, mode_t mode = 0777) {
  Fd dir(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) throw SysError("open " + root.string());
  fs::path at = root;
  for (const auto& c : rel.lexically_normal()) {
    if (c.empty() || c == ".") continue;
    if (c == ".." || c.is_absolute()) throw Error(rel.string() + " is not a path inside " + root.string());
    at /= c;
    if (::mkdirat(dir.get(), c.c_str(), mode) != 0 && errno != EEXIST) throw SysError("create " + at.string());
    struct open_how how {};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH;
    Fd next(static_cast<int>(::syscall(SYS_openat2, dir.get(), c.c_str(), &how, sizeof how)));
    if (!next) {
      if (errno == ELOOP) {
        throw Error(at.string() + " is a symlink inside " + root.string() +
                    ": pw does not follow links an agent session could have planted; replace it "
                    "with a directory, or remove it");
      }
      throw SysError("open " + at.string());
    }
    dir = std::move(next);
  }
}

// Dirs the plan relies on that the user's own tree should hold before the session starts.
void prepare_project(const ProfileSpec& spec) {
  if (spec.state_dir) mkdir_beneath(spec.dir, *spec.state_dir);
  // The vault's mountpoint: an empty private dir on the host, where the plaintext appears
  // inside the human posture's sessions only.
  if (spec.vault && spec.posture == Posture::Human) {
    const fs::path& mp = spec.vault->mountpoint;
    if (auto rel = mp.lexically_relative(spec.dir); !rel.empty() && *rel.begin() != "..") {
      mkdir_beneath(spec.dir, rel, 0700);
    } else {
      mkdir_p_as_user(mp.parent_path());
      if (::mkdir(mp.c_str(), 0700) != 0 && errno != EEXIST) {
        throw SysError("create the vault mountpoint " + mp.string());
      }
    }
  }
  if (spec.posture == Posture::Agent && spec.home != "tmpfs") mkdir_beneath(spec.dir, spec.home);
  // Without a hooks dir an agent could create one the human posture's git would then run;
  // an existing (read-only) one closes that door.
  struct stat st;
  if (spec.posture == Posture::Agent && ::lstat((spec.dir / ".git").c_str(), &st) == 0 &&
      S_ISDIR(st.st_mode)) {
    mkdir_beneath(spec.dir, ".git/hooks");
  }
}

std::string summarize(const std::vector<std::string>& cmd, const std::string& shell) {
  std::string s;
  for (const auto& a : cmd.empty() ? std::vector<std::string>{shell} : cmd) {
    if (!s.empty()) s += ' ';
    s += a;
    if (s.size() > 120) break;
  }
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

}  // namespace

SessionSpec make_session_spec(const ProfileSpec& spec, const std::vector<std::string>& cmd,
                              bool verbose, bool for_check) {
  HostFacts host = host_facts();
  PlanContext ctx = plan_context(spec, host, for_check);
  HostFs hostfs;
  SessionSpec ss;
  ss.plan = plan_mounts(spec, ctx, hostfs);
  if (verbose) {
    for (const auto& w : ss.plan.warnings) out::warn(w);
  }
  ss.dev.devices.reserve(spec.devices.size());
  for (const auto& d : spec.devices) ss.dev.devices.push_back(d.path);
  ss.dev.host_shm = !spec.ipc;
  if (const char* t = ::isatty(0) ? ::ttyname(0) : nullptr; t && std::string_view(t).starts_with("/dev/pts/")) {
    ss.dev.console = t;
  }
  ss.newroot = ctx.workspace_dir / "root";
  ss.argv = cmd.empty() ? std::vector<std::string>{spec.shell} : cmd;
  std::vector<std::string> host_env;
  for (char** e = environ; *e; ++e) host_env.emplace_back(*e);
  ss.env = plan_env(spec, {host_env, host.home, host.user});
  if (spec.net == NetMode::Allowlist) {
    for (const auto& [k, v] : net::proxy_env()) ss.env.push_back(k + "=" + v);
  }
  if (spec.ssh_agent == SshAgentMode::Forward) {
    // In the workspace's /tmp, named for this client so sessions do not collide.
    ss.ssh_agent_socket = fs::path("/tmp") / ("pw-ssh-agent-" + std::to_string(::getpid()) + ".sock");
    std::erase_if(ss.env, [](const std::string& e) { return e.rfind("SSH_AUTH_SOCK=", 0) == 0; });
    ss.env.push_back("SSH_AUTH_SOCK=" + ss.ssh_agent_socket.string());
  }
  std::sort(ss.env.begin(), ss.env.end());
  if (!ctx.control_socket.empty()) {
    // `pw vault` inside a human session finds its workspace through these.
    ss.env.push_back("PW_CONTROL_SOCKET=" + ctx.control_socket.string());
    std::sort(ss.env.begin(), ss.env.end());
  }
  fs::path project = resolve_path(hostfs, spec.dir, nullptr);
  std::error_code ec;
  fs::path cwd = fs::current_path(ec);
  auto rel = cwd.lexically_relative(project);
  bool inside = !ec && !rel.empty() && *rel.begin() != "..";
  ss.cwd = inside ? cwd : project;
  ss.fallback_cwd = project;
  ss.hostname = spec.name;
  ss.uid = host.uid;
  ss.gid = host.gid;
  ss.new_ipc = spec.ipc;
  ss.seccomp = seccomp::build(spec, cmd.empty());
  if (spec.landlock != LandlockMode::Off) {
    ss.landlock = plan_landlock(ss.plan);
    ss.landlock_abi = landlock::abi();
  }
#ifdef PW_TEST_HOOKS
  // Test builds only: a writable bind the plan (and so the Landlock rules) knows nothing
  // of, to show the second wall holding where the first one was widened by mistake.
  if (const char* w = std::getenv("PW_TEST_WIDEN_RW"); w && *w) {
    ss.plan.ops.insert(ss.plan.ops.begin(), MountOp{OpKind::BindRw, w, w, "test hook: widened view"});
  }
#endif
  ss.only_stdio = spec.posture == Posture::Agent;
  ss.verbose = verbose;
  return ss;
}

int run_profile(const std::string& name, const std::vector<std::string>& cmd, bool verbose,
                bool for_check) {
  // A cold start waits for the supervisor's set-up (its namespaces, the network one above
  // all) longer than for anything of its own, so the supervisor starts as soon as the
  // profile has loaded, forked with it (it does not read the file a second time), and runs
  // beside our checks and planning. A profile that does not load starts nothing. If a check
  // below refuses it, leaving closes the ready pipe, and the supervisor, ready or not, ends
  // when it sees that no one who started it will join.
  ProfileSpec spec = load_profile(name);
  WorkspaceStart starting = prestart_workspace(name, &spec);
  // Profile warnings (paths that do not exist) are for `pw show`/`explain` and --verbose;
  // repeating them at every start would train users to ignore pw's output.
  // Everything printed here is behind `if (verbose)`, so a plain start pays nothing for it.
  if (verbose) {
    for (const auto& w : spec.warnings) out::warn(w);
    out::step("profile " + name + ": " + spec.file.string() + " (" + to_string(spec.posture) +
              " posture), project " + spec.dir.string());
  }
  check_runnable(spec);
  // Refused (required) or warned about (best-effort) before anything starts.
  if (std::string w = landlock::check(spec.landlock, landlock::abi()); !w.empty()) {
    std::fprintf(stderr, "pw: warning: %s\n", w.c_str());
  }
  prepare_project(spec);
  if (verbose) {
    out::step(starting ? "starting the workspace's supervisor (pw __supervise " + name + ")"
                       : "a supervisor of workspace " + name + " is running: joining it");
  }
  SessionSpec ss = make_session_spec(spec, cmd, verbose, for_check);
  if (verbose) {
    for (const auto& op : ss.plan.ops) out::step("plan: " + describe(op));
  }
  Joined ws = join_workspace(name, summarize(cmd, spec.shell), std::move(starting));
  if (!for_check && spec.vault && spec.posture == Posture::Human && spec.vault->unlock == VaultUnlock::OnEnter) {
    vault_unlock_on_enter(name);
  }
  if (verbose) out::step("joined workspace " + name + " (staging " + ws.stage.string() + ")");
  enter_workspace(ws);
  if (verbose) {
    out::step("entered the workspace's user namespace (root there) and its mount namespace");
  }
  ss.newroot = ws.stage / "root";
  ss.control_fd = ws.conn.get();
  // The network is the workspace's, made from the profile as it was when the workspace
  // started: a session whose profile now says another mode is refused rather than given
  // the old one ("none" joining a workspace whose proxy leads out, say).
  if (ws.net_mode != spec.net) {
    throw Error(std::string("workspace ") + name + " runs with network mode \"" + to_string(ws.net_mode) +
                "\", but its profile now says \"" + to_string(spec.net) +
                "\": end its sessions (pw ps) to start it afresh with the new settings");
  }
  if (ws.netns) {
    ss.net_fd = ws.netns.get();
  } else if (ws.net_mode != NetMode::Host) {
    throw Error("workspace " + name + " handed over no network namespace; refusing to run on the host's network");
  }
  // Cloned here, in the workspace's mount namespace, where the anchor lives; the session
  // attaches the clone in its own namespace.
  Fd vault_tree;
  if (ws.vault_anchor && spec.posture == Posture::Human) {
    vault_tree.reset(::open_tree(ws.vault_anchor.get(), "",
                                 OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH));
    if (!vault_tree) throw SysError("clone the vault anchor");
    ss.vault_tree = vault_tree.get();
  }
  const int rc = run_session(ss, ws.conn.get());
  // Straight out, without unwinding: since the session's clone every page of this process
  // is write-protected, and the destructors and exit handlers touched enough of them to
  // cost a fault each, about 1.3 ms of every start. Nothing here holds state the kernel
  // does not release (the connection's close is what ends the session for the supervisor).
  std::fflush(nullptr);
  ::_exit(rc);
}

}  // namespace pw
