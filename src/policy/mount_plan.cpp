#include "policy/mount_plan.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "util/error.hpp"
#include "util/output.hpp"

namespace fs = std::filesystem;

namespace pw {

const char* to_string(Access a) {
  switch (a) {
    case Access::ReadWrite: return "writable";
    case Access::ReadOnly: return "read-only";
    case Access::Hidden: return "hidden";
    case Access::Staging: return "private";
    case Access::Forced: return "hidden (always)";
  }
  return "?";
}

const char* to_string(OpKind k) {
  switch (k) {
    case OpKind::BindRo: return "bind-ro";
    case OpKind::BindRw: return "bind-rw";
    case OpKind::HideDir: return "hide-dir";
    case OpKind::HideFile: return "hide-file";
    case OpKind::Symlink: return "symlink";
    case OpKind::Proc: return "proc";
    case OpKind::Dev: return "dev";
    case OpKind::RemountRo: return "remount-ro";
    case OpKind::Vault: return "vault";
  }
  return "?";
}

const std::vector<fs::path>& system_dirs() {
  static const std::vector<fs::path> dirs = {
      "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
      "/nix/store", "/sys",
  };
  return dirs;
}

const std::vector<std::string>& agent_guarded_paths() {
  static const std::vector<std::string> paths = {
      ".git/hooks", ".git/config", ".envrc",   ".bashrc",  ".bash_profile", ".profile",
      ".zshrc",     ".zprofile",   ".zshenv",  ".config/fish", ".vscode/tasks.json",
      // The human posture's vault mountpoint (pw new's default): a mountpoint in the human
      // workspace only, so an agent could rmdir it, which detaches the vault there, and
      // put a plain dir in its place for the plaintext to land in.
      ".vault",
  };
  return paths;
}

namespace {

// Strength of a rule when two name the same path: the stronger one wins, whatever the order
// of the lists in the profile (deny wins over a later allow).
int strength(Access a) {
  switch (a) {
    case Access::Forced: return 5;
    case Access::Staging: return 4;
    case Access::Hidden: return 3;
    case Access::ReadOnly: return 2;
    case Access::ReadWrite: return 1;
  }
  return 0;
}

// The next name of a path, as fs::path iterates them: a run of non-separators. (Walking
// the string: iterating an fs::path allocates its components, and the planner asks these
// questions thousands of times per start.)
bool next_name(std::string_view& rest, std::string_view& name) {
  const std::size_t b = rest.find_first_not_of('/');
  if (b == std::string_view::npos) return false;
  rest.remove_prefix(b);
  const std::size_t e = std::min(rest.find('/'), rest.size());
  name = rest.substr(0, e);
  rest.remove_prefix(e);
  return true;
}

bool is_under(const fs::path& p, const fs::path& dir) {  // p == dir or below it
  std::string_view ps = p.native(), ds = dir.native();
  // The root directory is a component of its own: "/x" is not under "x", nor "x" under "/".
  if (!ds.empty() && (ds.front() == '/') != (!ps.empty() && ps.front() == '/')) return false;
  std::string_view dn, pn;
  while (next_name(ds, dn)) {
    if (!next_name(ps, pn) || pn != dn) return false;
  }
  return true;
}

size_t depth(const fs::path& p) {
  std::string_view rest = p.native(), name;
  size_t n = 0;
  while (next_name(rest, name)) ++n;
  return n;
}

}  // namespace

fs::path resolve_path(const FsView& view, const fs::path& p,
                      std::vector<std::pair<fs::path, std::string>>* links) {
  fs::path todo = p.lexically_normal();
  for (int hops = 0; hops < 40; ++hops) {
    fs::path cur = "/";
    bool restarted = false;
    for (auto it = std::next(todo.begin()); it != todo.end(); ++it) {
      if (it->empty()) continue;
      fs::path next = cur / *it;
      if (view.type(next) == NodeType::Symlink) {
        auto text = view.readlink(next);
        if (!text) return todo;
        if (links) links->emplace_back(next, *text);
        fs::path target = fs::path(*text).is_absolute() ? fs::path(*text) : cur / *text;
        fs::path rest;
        for (auto r = std::next(it); r != todo.end(); ++r) rest /= *r;
        todo = (rest.empty() ? target : target / rest).lexically_normal();
        restarted = true;
        break;
      }
      cur = next;
    }
    if (!restarted) {
      std::string s = todo.string();
      if (s.size() > 1 && s.back() == '/') s.pop_back();
      return s;
    }
  }
  return p.lexically_normal();  // symlink loop: plan the lexical path; it will not exist
}

MountPlan plan_mounts(const ProfileSpec& spec, const PlanContext& ctx, const FsView& view) {
  MountPlan plan;
  std::map<fs::path, Rule> rules;                  // canonical path -> strongest rule
  std::map<fs::path, std::string> links;           // symlink path -> text, met on rule paths
  std::vector<fs::path> forced;

  // What an agent session can write: the project and the profile's writable dirs. A symlink
  // beneath one of them, met on the way to a path this plan shows (read-only or writable),
  // may have been planted by an agent session to make the next session show what it names:
  // a `.bashrc -> ~/.ssh` would otherwise turn the guard on .bashrc into a bind of ~/.ssh.
  // Such a plan is refused, naming the link (hides and masks follow links: that fails safe).
  std::vector<fs::path> agent_writable = {resolve_path(view, spec.dir, nullptr)};
  for (const auto& e : spec.writable) agent_writable.push_back(resolve_path(view, e.path, nullptr));

  auto add = [&](const fs::path& raw, Access access, const std::string& why,
                 std::optional<fs::path> staging_source = std::nullopt, bool pw_own = false) {
    std::vector<std::pair<fs::path, std::string>> met;
    fs::path path = resolve_path(view, raw, &met);
    for (auto& [at, text] : met) {
      if (access == Access::ReadOnly || access == Access::ReadWrite) {
        for (const auto& root : agent_writable) {
          if (at == root || !is_under(at, root)) continue;
          throw Error(out::one_line(at.string()) + " is a symlink (-> " + out::one_line(text) + ") inside " + root.string() +
                      ", on the way to " + raw.string() + " (" + why + "): an agent session can "
                      "write there, so pw does not follow it (it could lead this session to what "
                      "the profile hides); replace the link with what it points to, or remove it");
        }
      }
      links.emplace(at, text);
    }
    if (access == Access::Forced) {
      forced.push_back(path);
      // The lexical path too: a symlink elsewhere must not lead around the hide.
      if (path != raw.lexically_normal()) forced.push_back(raw.lexically_normal());
    }
    Rule r{path, access, why, staging_source ? *staging_source : path, pw_own};
    auto [it, inserted] = rules.emplace(path, r);
    if (!inserted && strength(access) > strength(it->second.access)) it->second = r;
  };

  for (const auto& d : system_dirs()) {
    if (view.type(d) != NodeType::Missing) add(d, Access::ReadOnly, "system directory");
  }
  add("/tmp", Access::Staging, "workspace /tmp (shared by this workspace's sessions only)",
      ctx.workspace_dir / "tmp");
  add(spec.dir, Access::ReadWrite, "project directory");

  if (spec.posture == Posture::Agent) {
    if (spec.home == "tmpfs") {
      add(ctx.home, Access::Staging, "agent home: empty tmpfs private to this workspace",
          ctx.workspace_dir / "home");
    } else {
      add(ctx.home, Access::Staging, "agent home: private dir " + spec.home + " in the project",
          spec.dir / spec.home);
    }
  }

  for (const auto& e : spec.blacklist) add(e.path, Access::Hidden, "blacklist (" + e.origin + ")");
  for (const auto& e : spec.whitelist) {
    if (view.type(e.path) == NodeType::Missing) {
      plan.warnings.push_back(e.origin + ": whitelist path " + e.path.string() +
                              " does not exist; skipped");
      continue;
    }
    add(e.path, Access::ReadOnly, "whitelist (" + e.origin + ")");
  }
  for (const auto& e : spec.writable) add(e.path, Access::ReadWrite, "writable (" + e.origin + ")");
  for (const auto& g : spec.mask) {
    for (const auto& m : view.glob((spec.dir / g).string())) {
      add(m, Access::Hidden, "mask '" + g + "'");
    }
  }
  // The dirs between the project and a read-only path inside it are pinned: renaming
  // `.git` (or `.vscode`) would otherwise carry the read-only binds beneath it away and let
  // an agent put writable ones in their place.
  std::vector<fs::path> pins;
  auto pin_parents = [&](const std::string& rel) {
    fs::path at = spec.dir;
    fs::path r = fs::path(rel).lexically_normal();
    for (auto it = r.begin(); it != r.end() && std::next(it) != r.end(); ++it) {
      if (it->empty() || *it == ".") continue;
      at /= *it;
      if (view.type(at) == NodeType::Dir) pins.push_back(at);
    }
  };
  for (const auto& r : spec.readonly) {
    if (view.type(spec.dir / r) != NodeType::Missing) {
      add(spec.dir / r, Access::ReadOnly, "readonly '" + r + "'");
      pin_parents(r);
    }
  }
  if (spec.posture == Posture::Agent) {
    std::vector<std::string> guarded = agent_guarded_paths();
    // A worktree's or submodule's `.git` is a file naming the git dir: rewritten, it would
    // send the human posture's git to a config (and hooks) the agent wrote.
    if (view.type(spec.dir / ".git") == NodeType::File) guarded.emplace_back(".git");
    // Submodules' own configs and hooks, which git runs in them as in the project. A
    // submodule's git dir is .git/modules/NAME, its name its path by default (vendor/lib),
    // and a nested one's .git/modules/A/modules/B: every depth up to five names.
    std::string under = ".git/modules";
    for (int depth = 1; depth <= 5; ++depth) {
      under += "/*";
      for (const char* leaf : {"/config", "/hooks"}) {
        for (const auto& m : view.glob((spec.dir / (under + leaf)).string())) {
          guarded.push_back(m.lexically_relative(spec.dir).string());
        }
      }
    }
    for (const auto& r : guarded) {
      if (view.type(spec.dir / r) != NodeType::Missing) {
        add(spec.dir / r, Access::ReadOnly,
            "agent guard: the human posture would run what an agent writes here");
        pin_parents(r);
      }
    }
  }
  for (const auto& p : pins) {
    add(p, Access::ReadWrite, "pinned: holds a read-only path, so it cannot be renamed away");
    if (auto it = rules.find(resolve_path(view, p, nullptr)); it != rules.end()) it->second.pinned = true;
  }
  add(ctx.config_dir, Access::Forced, "pw config dir (never visible in a session)");
  add(ctx.runtime_dir, Access::Forced, "pw runtime dir (never visible in a session)");
  if (!ctx.data_dir.empty()) add(ctx.data_dir, Access::Forced, "pw data dir (vaults; never visible in a session)");
  for (const auto& p : ctx.always_hidden) add(p, Access::Forced, "pw-owned (a vault cipherdir or pw's state dir)");
  if (spec.posture == Posture::Human) {
    if (spec.vault && !ctx.vault_source.empty()) {
      add(spec.vault->mountpoint, Access::Staging,
          "vault mountpoint: the plaintext appears here while unlocked (pw vault unlock)",
          ctx.vault_source);
    }
    if (!ctx.control_socket.empty()) {
      add(ctx.control_socket, Access::ReadWrite, "pw: this workspace's vault socket (pw vault; vault requests only)",
          std::nullopt, true);
    }
  }
  // Human sessions run `pw vault` with it; `pw check` sessions of either posture run the
  // wall checks with it.
  if (!ctx.self_exe.empty()) {
    add(ctx.self_exe, Access::ReadOnly, "pw itself (pw vault, pw check)", std::nullopt, true);
  }

  // Nothing is re-exposed beneath a forced hide; /proc and /dev belong to pw.
  for (auto it = rules.begin(); it != rules.end();) {
    const fs::path& p = it->first;
    bool drop = false;
    for (const auto& f : forced) {
      if (is_under(p, f) && p != f && !it->second.pw_own) drop = true;
    }
    if (is_under(p, "/proc") || is_under(p, "/dev")) {
      plan.warnings.push_back(it->second.why + ": " + p.string() +
                              " is managed by pw (use [sandbox] devices for /dev); ignored");
      drop = true;
    }
    it = drop ? rules.erase(it) : std::next(it);
  }

  for (auto& [p, r] : rules) plan.rules.push_back(r);

  // Walk rules shallow to deep; each rule's effective parent decides whether it needs a mount.
  std::vector<std::pair<size_t, const Rule*>> by_depth;
  for (auto& [p, r] : rules) by_depth.emplace_back(depth(p), &r);
  std::stable_sort(by_depth.begin(), by_depth.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  auto parent_rule = [&](const fs::path& p) -> const Rule* {
    // The deepest rule above p (the first of equal depth, in path order).
    const Rule* best = nullptr;
    size_t best_depth = 0;
    for (const auto& [d, r] : by_depth) {
      if ((!best || d > best_depth) && r->path != p && is_under(p, r->path)) {
        best = r;
        best_depth = d;
      }
    }
    return best;
  };
  // True when `p` is shown by a host bind reaching it unchanged (so it exists there as on
  // the host), false when its nearest ancestor is a tmpfs pw made or nothing at all.
  auto shown_by_host_bind = [&](const fs::path& p) {
    const Rule* pr = parent_rule(p);
    return pr && (pr->access == Access::ReadOnly || pr->access == Access::ReadWrite);
  };

  plan.ops.push_back({OpKind::Proc, "/proc", {}, "pw: procfs of the session's pid namespace"});
  plan.ops.push_back({OpKind::Dev, "/dev", {}, "pw: minimal /dev"});
  std::vector<MountOp> remounts;
  for (const auto& [d, r] : by_depth) {
    const Rule* pr = parent_rule(r->path);
    NodeType t = r->access == Access::Staging ? NodeType::Dir : view.type(r->source);
    switch (r->access) {
      case Access::ReadOnly:
      case Access::ReadWrite: {
        // pw's own exposures exist by the time the session is built (the control socket
        // appears when the supervisor starts, after planning).
        if (t == NodeType::Missing && !r->pw_own) {
          plan.warnings.push_back(r->why + ": " + r->path.string() + " does not exist; skipped");
          break;
        }
        // A bind identical to what its parent bind already shows adds nothing.
        if (pr && pr->access == r->access && pr->source == pr->path && !r->pinned) break;
        plan.ops.push_back({r->access == Access::ReadOnly ? OpKind::BindRo : OpKind::BindRw,
                            r->path, r->source, r->why});
        break;
      }
      case Access::Staging:
        plan.ops.push_back({!ctx.vault_source.empty() && r->source == ctx.vault_source ? OpKind::Vault
                                                                                       : OpKind::BindRw,
                            r->path, r->source, r->why});
        break;
      case Access::Hidden:
      case Access::Forced: {
        // Hiding matters only where a host bind would show the path; under pw's own tmpfs
        // (or nothing) the path is absent already.
        bool host_bound = pr && (pr->access == Access::ReadOnly || pr->access == Access::ReadWrite);
        if (!host_bound || t == NodeType::Missing) break;
        if (t == NodeType::Dir) {
          plan.ops.push_back({OpKind::HideDir, r->path, {}, r->why});
          remounts.push_back({OpKind::RemountRo, r->path, {}, "hidden dir stays empty"});
        } else {
          plan.ops.push_back({OpKind::HideFile, r->path, {}, r->why});
        }
        break;
      }
    }
  }

  // Links met on the way to a rule's path appear at their own path, unless a host bind
  // already shows them there.
  std::vector<std::pair<fs::path, std::string>> link_ops(links.begin(), links.end());
  std::stable_sort(link_ops.begin(), link_ops.end(), [](const auto& a, const auto& b) {
    return depth(a.first) < depth(b.first);
  });
  for (const auto& [at, text] : link_ops) {
    if (rules.count(at) || shown_by_host_bind(at)) continue;
    bool forced_here = false;
    for (const auto& f : forced) forced_here |= is_under(at, f);
    if (forced_here) continue;
    plan.ops.push_back({OpKind::Symlink, at, text, "symlink on the way to a rule's path"});
  }

  // Deeper operations run after shallower ones so they land on top; stable for ties.
  std::stable_sort(plan.ops.begin(), plan.ops.end(), [](const MountOp& a, const MountOp& b) {
    return depth(a.target) < depth(b.target);
  });
  plan.ops.insert(plan.ops.end(), remounts.begin(), remounts.end());
  plan.ops.push_back({OpKind::RemountRo, "/", {}, "sandbox root stays read-only"});
  return plan;
}

PathVerdict explain_path(const MountPlan& plan, const fs::path& path, const FsView& view) {
  PathVerdict v;
  v.resolved = resolve_path(view, path, nullptr);
  if (is_under(v.resolved, "/proc") || is_under(v.resolved, "/dev")) {
    return {"pw-managed", "pw's own /proc and minimal /dev", v.resolved};
  }
  const Rule* best = nullptr;
  for (const auto& r : plan.rules) {
    if (is_under(v.resolved, r.path) && (!best || depth(r.path) > depth(best->path))) best = &r;
  }
  if (!best) {
    v.state = "hidden";
    v.why = "no rule names it or a parent: the sandbox root starts empty";
    return v;
  }
  v.state = to_string(best->access);
  if (best->access == Access::Staging) v.state = "private tmpfs";
  v.why = best->why;
  if (best->path != v.resolved) v.why += " [rule on " + best->path.string() + "]";
  return v;
}

std::string describe(const MountOp& op) {
  std::string s = to_string(op.kind);
  s.resize(11, ' ');
  s += op.target.string();
  if (op.kind == OpKind::BindRo || op.kind == OpKind::BindRw || op.kind == OpKind::Vault) {
    if (op.source != op.target) s += "  <- " + op.source.string();
  } else if (op.kind == OpKind::Symlink) {
    s += "  -> " + op.source.string();
  }
  s += "   (" + op.why + ")";
  return s;
}

}  // namespace pw
