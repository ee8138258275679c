// A cold start's workspace, made beside the client instead of by a supervisor it waits for.
//
// The client that takes a workspace's lock starts a helper that shares its memory and
// descriptor table (clone with CLONE_VM | CLONE_FILES, on a stack of its own) and, in a
// vfork'd child of its own, makes the workspace's namespaces while the client plans its
// session: the user namespace mapped to root, the mount namespace with the staging tmpfs,
// the network namespace. The descriptors land in the client's table. The client enters
// the namespaces and starts its session without waiting for any supervisor; it leaves a
// hello on its registration socket. The helper waits 10 ms, then executes the supervisor
// (`pw __supervise NAME made ...`) from the host's user namespace, handing it the lock, the
// namespaces and the other end of that socket; the supervisor joins the namespaces and
// registers the session by its hello. If the client is gone by then, the helper just
// exits: nobody holds the workspace, and nobody could have joined it.
//
// Not used (the supervisor is forked and awaited instead, see client.cpp) for a profile
// whose vault the sessions mount, in sanitizer builds, and on architectures without the
// raw system calls below.
#pragma once

#include <memory>
#include <string>

#include "profile/spec.hpp"
#include "util/fd.hpp"
#include "workspace/workspace.hpp"

#include <sys/stat.h>

#include <filesystem>

namespace pw {

// The workspace's namespaces, as one call that makes only system calls (no allocation, no
// `errno`): the calling process enters a new user namespace mapped to root and a mount
// namespace (mounts slaves of the host's), mounts a tmpfs over the staging dir with tmp/,
// home/ and root/ in it and, if asked, makes a network namespace owned by the new user
// namespace with lo up (and the proxy's listener in it) while itself staying in the host's.
struct NsRequest {
  NsRequest() = default;
  NsRequest(const NsRequest&) = delete;  // `stage` points into `stage_path`
  NsRequest& operator=(const NsRequest&) = delete;

  // What to make; prepare() fills these.
  std::string stage_path;
  const char* stage = nullptr;
  dev_t stage_dev = 0;  // the staging dir as checked on the host (check_stage)
  ino_t stage_ino = 0;
  char uid_map[32] = {};
  char gid_map[32] = {};
  bool net = false;   // a network namespace, loopback only
  bool http = false;  // and the proxy's listener on 127.0.0.1:3128 in it
  // What was made (close-on-exec descriptors), or the step that failed and its errno.
  int userns = -1, mntns = -1, stage_root = -1, netns = -1, http_fd = -1;
  const char* failed = nullptr;
  int err = 0;

  void prepare(const std::filesystem::path& stage_dir, const struct stat& checked);
  // The failure as an exception, its message prefixed with `who`.
  [[noreturn]] void throw_failure(const std::string& who) const;
};
bool make_namespaces(NsRequest& r) noexcept;

class WorkspaceMaker {
 public:
  // Whether a cold start of `spec` can be made this way here.
  static bool usable(const ProfileSpec& spec);

  // Starts the helper; `runtime` is the runtime dir (runtime_dir(), checked), `lock` the
  // workspace lock the caller holds (it passes to the supervisor). Throws if the helper
  // cannot start; the staging dir is checked first.
  static std::unique_ptr<WorkspaceMaker> begin(const std::string& name, const ProfileSpec& spec,
                                               const std::filesystem::path& runtime, Fd lock);

  // Waits for the namespaces (a millisecond or so after begin), registers the session
  // `summary` with the supervisor to come, and returns the workspace as a join would.
  // Throws with the helper's error.
  Joined finish(const std::string& summary);

  ~WorkspaceMaker();
  WorkspaceMaker(const WorkspaceMaker&) = delete;
  WorkspaceMaker& operator=(const WorkspaceMaker&) = delete;

  struct Shared;

 private:
  WorkspaceMaker() = default;
  bool await_made();  // the helper's report: namespaces made (true) or not
  std::unique_ptr<Shared> shared_;
  int made_ = -1;
  bool handed_over_ = false;  // the namespaces' descriptors are the Joined's
  bool started_ = false;      // the helper was cloned
};

}  // namespace pw
