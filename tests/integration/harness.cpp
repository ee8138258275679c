#include "harness.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;
extern char** environ;

namespace it {

namespace {

std::vector<char*> cvec(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

int status_code(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

}  // namespace

Result run(const std::vector<std::string>& argv, const std::vector<std::string>& env,
           const std::string& input, int timeout_s) {
  int in[2], out[2], err[2];
  REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::setpgid(0, 0);
    auto a = cvec(argv), e = cvec(env);
    ::execve(a[0], a.data(), e.data());
    _exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (!input.empty() && ::write(in[1], input.data(), input.size()) < 0) {
  }
  ::close(in[1]);
  Result r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    struct pollfd p[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0 || ::poll(p, 2, left) == 0) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      break;
    }
    char buf[4096];
    for (int i = 0; i < 2; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = ::read(p[i].fd, buf, sizeof buf);
      if (n <= 0) {
        (i == 0 ? out_open : err_open) = false;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  ::close(out[0]);
  ::close(err[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.rc = std::chrono::steady_clock::now() >= deadline ? -1 : status_code(st);
  return r;
}

pid_t spawn_bg(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int dn = ::open("/dev/null", O_RDWR);
    ::dup2(dn, 0);
    ::dup2(dn, 1);
    ::setpgid(0, 0);
    auto a = cvec(argv), e = cvec(env);
    ::execve(a[0], a.data(), e.data());
    _exit(127);
  }
  return pid;
}

std::vector<pid_t> pids_with(const std::string& needle) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    char* end;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    std::string cmd;
    try {
      std::ifstream f(std::string("/proc/") + e->d_name + "/cmdline");
      cmd.assign(std::istreambuf_iterator<char>(f), {});
    } catch (const std::exception&) {
      continue;  // it exited while we read it (the read fails with ESRCH): not running
    }
    for (char& c : cmd) {
      if (c == '\0') c = ' ';
    }
    // pw's own command line repeats the session's command; only sandboxed processes count.
    if (cmd.rfind(std::string(PW_BIN) + " ", 0) == 0) continue;
    if (cmd.find(needle) != std::string::npos) out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  return out;
}

bool wait_for(const std::function<bool()>& pred, int timeout_ms) {
  for (int waited = 0;; waited += 20) {
    if (pred()) return true;
    if (waited >= timeout_ms) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

void write_file(const fs::path& p, const std::string& text, mode_t mode) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
  ::chmod(p.c_str(), mode);
}

bool require(bool ok, const std::string& what) {
  if (ok) return true;
  const char* must = std::getenv("PW_MUST_WORK");
  if (must && std::string(must) == "1") FAIL("PW_MUST_WORK=1 but " << what);
  WARN("skipped: " << what);
  return false;
}

World& World::get() {
  static World* w = [] {
    auto* world = new World;
    if (::geteuid() == 0) {
      FAIL("integration tests must run as an unprivileged user (ctest uses run-as-user.sh)");
    }
    struct passwd* pw = ::getpwuid(::getuid());
    REQUIRE(pw);
    std::string tmpl = std::string(pw->pw_dir) + "/pwit-XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()));
    world->home = tmpl;
    world->config = world->home / ".config";
    world->runtime = world->home / "run";
    world->project = world->home / "projects" / "demo";
    world->other = world->home / "projects" / "other";
    fs::create_directories(world->project);
    fs::create_directories(world->other);
    ::mkdir(world->runtime.c_str(), 0700);
    write_file(world->home / ".ssh" / "id_ed25519", "SSH-PRIVATE-KEY\n", 0600);
    write_file(world->home / ".aws" / "credentials", "AWS-SECRET\n", 0600);
    write_file(world->home / ".bashrc", "# rc\n");
    write_file(world->other / "secret.txt", "OTHER-PROJECT-SECRET\n");
    write_file(world->project / "README", "demo project\n");
    fs::create_directories(world->project / ".git" / "hooks");
    write_file(world->project / ".git" / "config", "[core]\n");
    world->probe_bin = world->project / ".probe" / "pw-probe";
    fs::create_directories(world->probe_bin.parent_path());
    fs::copy_file(PW_PROBE, world->probe_bin, fs::copy_options::overwrite_existing);
    ::chmod(world->probe_bin.c_str(), 0755);

    for (char** e = environ; *e; ++e) {
      std::string kv = *e;
      if (kv.rfind("HOME=", 0) == 0 || kv.rfind("XDG_", 0) == 0 || kv.rfind("PW_", 0) == 0) continue;
      world->env.push_back(kv);
    }
    world->env.push_back("HOME=" + world->home.string());
    world->env.push_back("XDG_CONFIG_HOME=" + world->config.string());
    world->env.push_back("XDG_RUNTIME_DIR=" + world->runtime.string());
    world->env.push_back(std::string("PW_TEMPLATE_DIR=") + PW_TEMPLATES);
    world->env.push_back("TEST_SECRET_TOKEN=leaked-if-you-see-this");
    std::atexit([] {
      // Give sessions a moment to end, then remove the world.
      std::error_code ec;
      fs::remove_all(World::get().home, ec);
    });
    auto r = world->pw({"new", "demo", "--dir", world->project.string(), "--shell", "/bin/sh"});
    INFO(r.err);
    REQUIRE(r.rc == 0);
    r = world->pw({"new", "other", "--dir", world->other.string(), "--shell", "/bin/sh"});
    REQUIRE(r.rc == 0);
    return world;
  }();
  return *w;
}

Result World::pw(const std::vector<std::string>& args, const std::string& input, int timeout_s) const {
  std::vector<std::string> argv = {PW_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, env, input, timeout_s);
}

std::string World::probe(const std::string& profile, const std::vector<std::string>& args) const {
  std::vector<std::string> a = {profile, "--", probe_bin.string()};
  a.insert(a.end(), args.begin(), args.end());
  Result r = this->pw(a);
  if (r.rc != 0) return "PW-FAILED rc=" + std::to_string(r.rc) + ": " + r.err + r.out;
  return r.out.substr(0, r.out.find('\n'));
}

void World::write_profile(const std::string& name, const std::string& text) const {
  fs::create_directories(config / "pw" / name);
  write_file(config / "pw" / name / "profile.toml", text, 0600);
}

}  // namespace it
