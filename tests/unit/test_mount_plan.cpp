// Mount planning and environment planning, against a fake filesystem.
#include <fnmatch.h>

#include <catch2/catch.hpp>
#include <map>

#include "policy/env_plan.hpp"
#include "policy/mount_plan.hpp"

namespace fs = std::filesystem;
using namespace pw;

namespace {

class FakeFs final : public FsView {
 public:
  std::map<fs::path, NodeType> nodes;
  std::map<fs::path, std::string> links;

  FakeFs() {
    for (const char* d : {"/", "/usr", "/usr/bin", "/usr/lib", "/etc", "/home", "/home/u", "/sys",
                          "/tmp", "/opt"}) {
      dir(d);
    }
    link("/bin", "usr/bin");
    link("/lib", "usr/lib");
  }
  FakeFs& dir(const fs::path& p) { return add(p, NodeType::Dir); }
  FakeFs& file(const fs::path& p) { return add(p, NodeType::File); }
  FakeFs& other(const fs::path& p) { return add(p, NodeType::Other); }
  FakeFs& link(const fs::path& p, const std::string& text) {
    links[p] = text;
    return add(p, NodeType::Symlink);
  }
  FakeFs& add(const fs::path& p, NodeType t) {
    nodes[p] = t;
    for (fs::path q = p.parent_path(); q != q.root_path() && !nodes.count(q); q = q.parent_path()) {
      nodes[q] = NodeType::Dir;
    }
    return *this;
  }

  NodeType type(const fs::path& p) const override {
    auto it = nodes.find(p);
    return it == nodes.end() ? NodeType::Missing : it->second;
  }
  std::optional<std::string> readlink(const fs::path& p) const override {
    auto it = links.find(p);
    if (it == links.end()) return std::nullopt;
    return it->second;
  }
  std::vector<fs::path> glob(const std::string& pattern) const override {
    std::vector<fs::path> out;
    for (const auto& [p, t] : nodes) {
      if (::fnmatch(pattern.c_str(), p.c_str(), FNM_PATHNAME | FNM_PERIOD) == 0) out.push_back(p);
    }
    return out;
  }
};

ProfileSpec base_spec(Posture posture) {
  ProfileSpec s;
  s.name = posture == Posture::Agent ? "proj-llm" : "proj";
  s.dir = "/home/u/projects/proj";
  s.posture = posture;
  s.shell = "/bin/sh";
  return s;
}

PlanContext ctx() {
  PlanContext c;
  c.home = "/home/u";
  c.config_dir = "/home/u/.config/pw";
  c.runtime_dir = "/run/user/1000/pw";
  c.workspace_dir = "/run/user/1000/pw/proj.ws";
  return c;
}

PathEntry entry(const std::string& p) { return {p, "profile.toml:1:1"}; }

FakeFs world() {
  FakeFs f;
  f.dir("/home/u/projects/proj/.git/hooks").file("/home/u/projects/proj/.git/config");
  f.file("/home/u/projects/other/secret").dir("/home/u/.aws").file("/home/u/.aws/credentials");
  f.dir("/home/u/.config/pw/proj").file("/home/u/.config/pw/proj/profile.toml");
  f.dir("/home/u/.pyenv").dir("/run/user/1000/pw");
  return f;
}

// The op on `target` of `kind`, or nullptr; and its index in the plan.
const MountOp* find(const MountPlan& plan, OpKind kind, const fs::path& target, size_t* index = nullptr) {
  for (size_t i = 0; i < plan.ops.size(); ++i) {
    if (plan.ops[i].kind == kind && plan.ops[i].target == target) {
      if (index) *index = i;
      return &plan.ops[i];
    }
  }
  return nullptr;
}

// Whether some bind brings the host's `p` into the view (the source side counts: a staging
// bind at /home/u shows a private dir, not the host's home).
bool exposes(const MountPlan& plan, const fs::path& p) {
  for (const auto& op : plan.ops) {
    if ((op.kind == OpKind::BindRo || op.kind == OpKind::BindRw) &&
        (p == op.source || p.string().rfind(op.source.string() + "/", 0) == 0)) {
      return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("a deny under an allowed parent wins and is applied after it", "[plan]") {
  FakeFs f = world();
  ProfileSpec s = base_spec(Posture::Human);
  s.whitelist = {entry("/home/u")};
  s.blacklist = {entry("/home/u/.aws")};
  MountPlan plan = plan_mounts(s, ctx(), f);
  size_t bind_i = 0, hide_i = 0;
  REQUIRE(find(plan, OpKind::BindRo, "/home/u", &bind_i));
  REQUIRE(find(plan, OpKind::HideDir, "/home/u/.aws", &hide_i));
  CHECK(bind_i < hide_i);
  // and the hidden dir is made read-only after whatever lands inside it
  size_t ro_i = 0;
  REQUIRE(find(plan, OpKind::RemountRo, "/home/u/.aws", &ro_i));
  CHECK(ro_i > hide_i);
  CHECK(plan.ops.back().kind == OpKind::RemountRo);
  CHECK(plan.ops.back().target == "/");
}

TEST_CASE("on the same path deny wins whatever the list order", "[plan]") {
  FakeFs f = world();
  for (bool writable_too : {false, true}) {
    ProfileSpec s = base_spec(Posture::Human);
    s.whitelist = {entry("/home/u")};
    s.blacklist = {entry("/home/u/.pyenv")};
    if (writable_too) s.writable = {entry("/home/u/.pyenv")};
    else s.whitelist.push_back(entry("/home/u/.pyenv"));
    MountPlan plan = plan_mounts(s, ctx(), f);
    CHECK(find(plan, OpKind::HideDir, "/home/u/.pyenv"));
    CHECK_FALSE(find(plan, OpKind::BindRo, "/home/u/.pyenv"));
    CHECK_FALSE(find(plan, OpKind::BindRw, "/home/u/.pyenv"));
  }
}

TEST_CASE("an allow under a denied parent re-exposes exactly that path", "[plan]") {
  FakeFs f = world();
  ProfileSpec s = base_spec(Posture::Agent);
  s.blacklist = {entry("/home/u")};
  s.whitelist = {entry("/home/u/.pyenv")};
  MountPlan plan = plan_mounts(s, ctx(), f);
  // The agent's home is a private tmpfs; the whitelisted dir is bound into it read-only.
  const MountOp* home = find(plan, OpKind::BindRw, "/home/u");
  REQUIRE(home);
  CHECK(home->source == "/run/user/1000/pw/proj.ws/home");
  size_t home_i = 0, py_i = 0;
  find(plan, OpKind::BindRw, "/home/u", &home_i);
  REQUIRE(find(plan, OpKind::BindRo, "/home/u/.pyenv", &py_i));
  CHECK(home_i < py_i);
  CHECK_FALSE(exposes(plan, "/home/u/.aws/credentials"));
  CHECK_FALSE(exposes(plan, "/home/u/projects/other/secret"));
  CHECK(exposes(plan, "/home/u/projects/proj/src/main.c"));
}

TEST_CASE("pw's own dirs stay hidden whatever the lists say", "[plan]") {
  FakeFs f = world();
  ProfileSpec s = base_spec(Posture::Human);
  s.whitelist = {entry("/home/u"), entry("/home/u/.config/pw/proj")};
  s.writable = {entry("/run/user/1000/pw")};
  MountPlan plan = plan_mounts(s, ctx(), f);
  CHECK(find(plan, OpKind::HideDir, "/home/u/.config/pw"));
  CHECK_FALSE(find(plan, OpKind::BindRo, "/home/u/.config/pw/proj"));
  CHECK_FALSE(exposes(plan, "/run/user/1000/pw/proj.sock"));
  HostFs none;
  (void)none;
  PathVerdict v = explain_path(plan, "/home/u/.config/pw/proj/profile.toml", f);
  CHECK(v.state == "hidden (always)");
  CHECK(v.why.find("pw config dir") != std::string::npos);
}

TEST_CASE("symlinks: system links and whitelisted dotfile links keep their path", "[plan]") {
  FakeFs f = world();
  f.file("/home/u/dotfiles/toolrc").link("/home/u/.toolrc", "dotfiles/toolrc");
  ProfileSpec s = base_spec(Posture::Agent);
  s.blacklist = {entry("/home/u")};
  s.whitelist = {entry("/home/u/.toolrc")};
  MountPlan plan = plan_mounts(s, ctx(), f);
  const MountOp* bin = find(plan, OpKind::Symlink, "/bin");
  REQUIRE(bin);
  CHECK(bin->source == "usr/bin");
  const MountOp* rc = find(plan, OpKind::Symlink, "/home/u/.toolrc");
  REQUIRE(rc);
  CHECK(rc->source == "dotfiles/toolrc");
  CHECK(find(plan, OpKind::BindRo, "/home/u/dotfiles/toolrc"));
  // Under a host bind the link exists already and is not recreated.
  ProfileSpec h = base_spec(Posture::Human);
  h.whitelist = {entry("/home/u"), entry("/home/u/.toolrc")};
  MountPlan hp = plan_mounts(h, ctx(), f);
  CHECK_FALSE(find(hp, OpKind::Symlink, "/home/u/.toolrc"));
}

TEST_CASE("masks: files, dirs and sockets under the project", "[plan]") {
  FakeFs f = world();
  f.file("/home/u/projects/proj/.env").dir("/home/u/projects/proj/secrets");
  f.other("/home/u/projects/proj/agent.sock").file("/home/u/projects/proj/main.py");
  ProfileSpec s = base_spec(Posture::Agent);
  s.mask = {".env", "secrets", "*.sock"};
  MountPlan plan = plan_mounts(s, ctx(), f);
  size_t proj_i = 0, env_i = 0;
  REQUIRE(find(plan, OpKind::BindRw, "/home/u/projects/proj", &proj_i));
  REQUIRE(find(plan, OpKind::HideFile, "/home/u/projects/proj/.env", &env_i));
  CHECK(proj_i < env_i);
  CHECK(find(plan, OpKind::HideDir, "/home/u/projects/proj/secrets"));
  CHECK(find(plan, OpKind::HideFile, "/home/u/projects/proj/agent.sock"));
  CHECK_FALSE(find(plan, OpKind::HideFile, "/home/u/projects/proj/main.py"));
}

TEST_CASE("agent guard: git hooks and config read-only in the agent posture only", "[plan]") {
  FakeFs f = world();
  MountPlan agent = plan_mounts(base_spec(Posture::Agent), ctx(), f);
  CHECK(find(agent, OpKind::BindRo, "/home/u/projects/proj/.git/hooks"));
  CHECK(find(agent, OpKind::BindRo, "/home/u/projects/proj/.git/config"));
  MountPlan human = plan_mounts(base_spec(Posture::Human), ctx(), f);
  CHECK_FALSE(find(human, OpKind::BindRo, "/home/u/projects/proj/.git/hooks"));
}

TEST_CASE("agent guard: a worktree's .git file and submodules' configs and hooks", "[plan]") {
  FakeFs f;
  f.file("/home/u/projects/proj/.git").dir("/run/user/1000/pw");
  MountPlan agent = plan_mounts(base_spec(Posture::Agent), ctx(), f);
  CHECK(find(agent, OpKind::BindRo, "/home/u/projects/proj/.git"));
  CHECK_FALSE(find(plan_mounts(base_spec(Posture::Human), ctx(), f), OpKind::BindRo,
                   "/home/u/projects/proj/.git"));

  FakeFs g = world();
  g.dir("/home/u/projects/proj/.git/modules/lib/hooks").file("/home/u/projects/proj/.git/modules/lib/config");
  g.dir("/home/u/projects/proj/.git/modules/doc").file("/home/u/projects/proj/.git/modules/doc/config");
  // Named by its path (git submodule add URL vendor/lib), and nested in another.
  g.dir("/home/u/projects/proj/.git/modules/vendor/lib/hooks")
      .file("/home/u/projects/proj/.git/modules/vendor/lib/config");
  g.dir("/home/u/projects/proj/.git/modules/lib/modules/inner/hooks");
  MountPlan sub = plan_mounts(base_spec(Posture::Agent), ctx(), g);
  CHECK(find(sub, OpKind::BindRo, "/home/u/projects/proj/.git/modules/vendor/lib/config"));
  CHECK(find(sub, OpKind::BindRo, "/home/u/projects/proj/.git/modules/vendor/lib/hooks"));
  CHECK(find(sub, OpKind::BindRo, "/home/u/projects/proj/.git/modules/lib/modules/inner/hooks"));
  CHECK(find(sub, OpKind::BindRo, "/home/u/projects/proj/.git/modules/lib/hooks"));
  CHECK(find(sub, OpKind::BindRo, "/home/u/projects/proj/.git/modules/lib/config"));
  CHECK(find(sub, OpKind::BindRo, "/home/u/projects/proj/.git/modules/doc/config"));
  // A .git dir is not made read-only as a whole (git's objects and index stay the agent's),
  // and what holds the guards is pinned.
  CHECK_FALSE(find(sub, OpKind::BindRo, "/home/u/projects/proj/.git"));
  CHECK(find(sub, OpKind::BindRw, "/home/u/projects/proj/.git/modules/lib"));
}

TEST_CASE("agent guard: the dirs holding a guard are pinned, bound even under the project's bind", "[plan]") {
  FakeFs f = world();
  f.dir("/home/u/projects/proj/.vscode").file("/home/u/projects/proj/.vscode/tasks.json");
  MountPlan agent = plan_mounts(base_spec(Posture::Agent), ctx(), f);
  size_t pin = 0, guard = 0;
  REQUIRE(find(agent, OpKind::BindRw, "/home/u/projects/proj/.git", &pin));
  REQUIRE(find(agent, OpKind::BindRo, "/home/u/projects/proj/.git/hooks", &guard));
  CHECK(pin < guard);  // the pin first, the read-only guards on top
  CHECK(find(agent, OpKind::BindRw, "/home/u/projects/proj/.vscode"));
  CHECK(find(agent, OpKind::BindRo, "/home/u/projects/proj/.vscode/tasks.json"));
  // The project itself is not pinned twice, and the human posture pins nothing.
  MountPlan human = plan_mounts(base_spec(Posture::Human), ctx(), f);
  CHECK_FALSE(find(human, OpKind::BindRw, "/home/u/projects/proj/.git"));
  // A readonly entry pins its parents in either posture.
  ProfileSpec h = base_spec(Posture::Human);
  f.dir("/home/u/projects/proj/ci").file("/home/u/projects/proj/ci/deploy.sh");
  h.readonly = {"ci/deploy.sh"};
  MountPlan ro = plan_mounts(h, ctx(), f);
  CHECK(find(ro, OpKind::BindRo, "/home/u/projects/proj/ci/deploy.sh"));
  CHECK(find(ro, OpKind::BindRw, "/home/u/projects/proj/ci"));
}

TEST_CASE("a symlink inside the project on the way to a shown path refuses the plan", "[plan]") {
  // An agent session can write in the project: a link it planted must not steer the next plan.
  for (const char* at : {".bashrc", ".git"}) {
    INFO(at);
    FakeFs f = world();
    f.dir("/home/u/.ssh").file("/home/u/.ssh/id_ed25519").file("/home/u/.ssh/config");
    f.nodes.erase(fs::path("/home/u/projects/proj") / at);
    if (std::string(at) == ".git") {
      for (auto it = f.nodes.begin(); it != f.nodes.end();) {
        it = it->first.string().rfind("/home/u/projects/proj/.git/", 0) == 0 ? f.nodes.erase(it) : std::next(it);
      }
    }
    f.link(fs::path("/home/u/projects/proj") / at, "/home/u/.ssh");
    // As the host's stat sees it: through the link, the guarded path exists.
    if (std::string(at) == ".git") f.file("/home/u/projects/proj/.git/config");
    ProfileSpec s = base_spec(Posture::Agent);
    s.blacklist = {entry("/home/u")};
    CHECK_THROWS_WITH(plan_mounts(s, ctx(), f), Catch::Contains(std::string("/home/u/projects/proj/") + at + " is a symlink"));
  }
  // So does a readonly entry through a link, in the human posture too.
  FakeFs f = world();
  f.link("/home/u/projects/proj/creds", "/home/u/.aws").file("/home/u/projects/proj/creds/credentials");
  ProfileSpec h = base_spec(Posture::Human);
  h.readonly = {"creds/credentials"};
  CHECK_THROWS_WITH(plan_mounts(h, ctx(), f), Catch::Contains("/home/u/projects/proj/creds is a symlink"));
  // The link's name and target are the agent's to choose: they cannot start a line of
  // their own in the message (or carry a lone 8-bit CSI).
  FakeFs n = world();
  n.link("/home/u/projects/proj/creds", "/home/u/.aws\npw: all clear\x9b").file("/home/u/projects/proj/creds/credentials");
  try {
    plan_mounts(h, ctx(), n);
    FAIL("the plan was accepted");
  } catch (const std::exception& e) {
    const std::string what = e.what();
    CHECK(what.find("creds is a symlink (-> /home/u/.aws\\x0apw: all clear\\x9b)") != std::string::npos);
    CHECK(what.find('\n') == std::string::npos);
  }
  // A link outside the writable places is followed as before (a whitelisted dotfile link).
  FakeFs g = world();
  g.dir("/home/u/dotfiles/nvim").link("/home/u/.config/nvim", "../dotfiles/nvim");
  ProfileSpec w = base_spec(Posture::Human);
  w.whitelist = {entry("/home/u/.config/nvim")};
  w.blacklist = {entry("/home/u")};
  CHECK_NOTHROW(plan_mounts(w, ctx(), g));
  // Hides follow links: a mask through a planted link hides more, never shows.
  FakeFs m = world();
  m.link("/home/u/projects/proj/.env", "/home/u/.aws/credentials");
  ProfileSpec a = base_spec(Posture::Agent);
  a.mask = {".env"};
  CHECK_NOTHROW(plan_mounts(a, ctx(), m));
}

TEST_CASE("plans are ordered shallow to deep and skip redundant binds", "[plan]") {
  FakeFs f = world();
  f.dir("/home/u/.config/nvim");
  ProfileSpec s = base_spec(Posture::Human);
  // Listed deep first: order in the profile must not matter.
  s.whitelist = {entry("/home/u/.config/nvim"), entry("/home/u")};
  s.blacklist = {entry("/home/u/.aws")};
  MountPlan plan = plan_mounts(s, ctx(), f);
  CHECK_FALSE(find(plan, OpKind::BindRo, "/home/u/.config/nvim"));  // same as its parent bind
  auto depth = [](const fs::path& p) { return std::distance(p.begin(), p.end()); };
  long last = 0;
  for (const auto& op : plan.ops) {
    if (op.kind == OpKind::RemountRo) break;
    CHECK(depth(op.target) >= last);
    last = depth(op.target);
  }
}

TEST_CASE("missing whitelist paths warn and are skipped", "[plan]") {
  FakeFs f = world();
  ProfileSpec s = base_spec(Posture::Agent);
  s.whitelist = {entry("/home/u/.cargo")};
  MountPlan plan = plan_mounts(s, ctx(), f);
  CHECK_FALSE(exposes(plan, "/home/u/.cargo"));
  REQUIRE(plan.warnings.size() == 1);
  CHECK(plan.warnings[0].find("/home/u/.cargo") != std::string::npos);
}

TEST_CASE("explain says which rule decides a path", "[plan]") {
  FakeFs f = world();
  ProfileSpec s = base_spec(Posture::Human);
  s.whitelist = {entry("/home/u")};
  s.blacklist = {entry("/home/u/.aws")};
  MountPlan plan = plan_mounts(s, ctx(), f);
  auto v = explain_path(plan, "/home/u/.aws/credentials", f);
  CHECK(v.state == "hidden");
  CHECK(v.why.find("blacklist") != std::string::npos);
  v = explain_path(plan, "/home/u/.bashrc", f);
  CHECK(v.state == "read-only");
  v = explain_path(plan, "/home/u/projects/proj/x", f);
  CHECK(v.state == "writable");
  v = explain_path(plan, "/srv/data", f);
  CHECK(v.state == "hidden");
  v = explain_path(plan, "/bin/sh", f);
  CHECK(v.state == "read-only");
  CHECK(v.resolved == "/usr/bin/sh");
  v = explain_path(plan, "/tmp/x", f);
  CHECK(v.state == "private tmpfs");
}

TEST_CASE("environment plan", "[env]") {
  ProfileSpec s = base_spec(Posture::Agent);
  s.clean_env = true;
  s.state_dir = ".claude-proj";
  s.env = {{"FOO", "bar"}, {"PATH", "/custom/bin"}};
  EnvContext c{{"PATH=/usr/bin", "AWS_SECRET_ACCESS_KEY=x", "TERM=xterm", "LANG=C",
                "XDG_RUNTIME_DIR=/run/user/1000", "PW_PROFILE=outer", "KUBECONFIG=/k"},
               "/home/u", "u"};
  auto env = plan_env(s, c);
  std::map<std::string, std::string> m;
  for (const auto& kv : env) m[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
  CHECK_FALSE(m.count("AWS_SECRET_ACCESS_KEY"));
  CHECK_FALSE(m.count("KUBECONFIG"));
  CHECK_FALSE(m.count("XDG_RUNTIME_DIR"));
  CHECK(m["PATH"] == "/custom/bin");  // [env] applies last
  CHECK(m["FOO"] == "bar");
  CHECK(m["TERM"] == "xterm");
  CHECK(m["PW_PROFILE"] == "proj-llm");
  CHECK(m["PW_POSTURE"] == "agent");
  CHECK(m["CLAUDE_CONFIG_DIR"] == "/home/u/projects/proj/.claude-proj");
  CHECK(m["CODEX_HOME"] == "/home/u/projects/proj/.claude-proj");
  CHECK(m["HOME"] == "/home/u");
  CHECK(m["SHELL"] == "/bin/sh");
  CHECK_FALSE(m.count("XDG_CONFIG_HOME"));  // only with [agent] xdg = true

  // xdg = true: the four base dirs, each its own subdir of the state dir; [env] still wins.
  s.xdg = true;
  s.env.emplace_back("XDG_CACHE_HOME", "/var/tmp/cache");
  m.clear();
  for (const auto& kv : plan_env(s, c)) m[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
  CHECK(m["XDG_CONFIG_HOME"] == "/home/u/projects/proj/.claude-proj/config");
  CHECK(m["XDG_DATA_HOME"] == "/home/u/projects/proj/.claude-proj/data");
  CHECK(m["XDG_STATE_HOME"] == "/home/u/projects/proj/.claude-proj/state");
  CHECK(m["XDG_CACHE_HOME"] == "/var/tmp/cache");
  CHECK(m["CLAUDE_CONFIG_DIR"] == "/home/u/projects/proj/.claude-proj");
  CHECK(agent_state_var("XDG_DATA_HOME"));
  CHECK(agent_state_var("CODEX_HOME"));
  CHECK_FALSE(agent_state_var("XDG_RUNTIME_DIR"));
  s.env.pop_back();
  s.xdg = false;

  s.clean_env = false;
  auto kept = plan_env(s, c);
  CHECK(std::find(kept.begin(), kept.end(), "KUBECONFIG=/k") != kept.end());
  CHECK(std::find(kept.begin(), kept.end(), "PW_PROFILE=proj-llm") != kept.end());
}
