#include "sandbox/mounts.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace fs = std::filesystem;

namespace pw {
namespace {

// openat2() below `dirfd` refusing every symlink: what a bound directory shows must not
// steer a mount (a writable project can contain anything by the next session).
int open_nofollow(int dirfd, const fs::path& rel, int flags) {
  struct open_how how {};
  how.flags = static_cast<unsigned long long>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how));
}

fs::path relative_to_root(const fs::path& p) {
  std::string s = p.string();
  size_t i = s.find_first_not_of('/');
  return i == std::string::npos ? fs::path(".") : fs::path(s.substr(i));
}

// Opens (O_PATH) the sandbox path `target` below `root`, creating missing components as
// directories and, if `dir` is false, the last one as an empty file. Creation only succeeds
// on pw's own tmpfs; below a host bind the path already exists (plans are made from it).
Fd ensure_target(int root, const fs::path& target, bool dir) {
  fs::path rel = relative_to_root(target);
  Fd cur(::fcntl(root, F_DUPFD_CLOEXEC, 0));
  fs::path walked;
  auto last = std::prev(rel.end());
  for (auto it = rel.begin(); it != rel.end(); ++it) {
    const fs::path& comp = *it;
    if (comp.empty() || comp == ".") continue;
    walked /= comp;
    bool is_last = it == last;
    int flags = O_PATH | O_NOFOLLOW | ((is_last && !dir) ? 0 : O_DIRECTORY);
    int fd = open_nofollow(cur.get(), comp, flags);
    if (fd < 0 && errno == ENOENT) {
      if (!is_last || dir) {
        if (::mkdirat(cur.get(), comp.c_str(), 0755) != 0 && errno != EEXIST) {
          throw SysError("create mount point " + ("/" / walked).string());
        }
      } else {
        int f = ::openat(cur.get(), comp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (f < 0 && errno != EEXIST) throw SysError("create mount point " + ("/" / walked).string());
        if (f >= 0) ::close(f);
      }
      fd = open_nofollow(cur.get(), comp, flags);
    }
    if (fd < 0) throw SysError("open mount point " + ("/" / walked).string() + " (symlinks refused)");
    cur.reset(fd);
  }
  return cur;
}

void attach(int mnt_fd, int target_fd, const fs::path& what) {
  if (::move_mount(mnt_fd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
    throw SysError("attach mount on " + what.string());
  }
}

void set_attr(int mnt_fd, uint64_t set, bool recursive, const fs::path& what) {
  struct mount_attr attr {};
  attr.attr_set = set;
  unsigned flags = AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
  if (::mount_setattr(mnt_fd, "", flags, &attr, sizeof attr) != 0) {
    throw SysError("set mount flags on " + what.string());
  }
}

// A recursive clone of the host path `source`: submounts come along, and each one gets
// `attrs` (so read-only reaches every mount below a read-only bind, atomically).
Fd clone_tree(const fs::path& source, uint64_t attrs) {
  Fd src(open_nofollow(AT_FDCWD, source, O_PATH));
  if (!src) {
    // RESOLVE_BENEATH with AT_FDCWD rejects absolute paths; retry from "/".
    Fd slash(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    src.reset(open_nofollow(slash.get(), relative_to_root(source), O_PATH));
  }
  if (!src) throw SysError("open bind source " + source.string() + " (symlinks refused)");
  Fd tree(::open_tree(src.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH));
  if (!tree) throw SysError("clone mount tree of " + source.string());
  set_attr(tree.get(), attrs, true, source);
  return tree;
}

Fd new_fs(const char* type, std::initializer_list<std::pair<const char*, const char*>> opts,
          uint64_t attrs, const fs::path& what) {
  Fd ctx(::fsopen(type, FSOPEN_CLOEXEC));
  if (!ctx) throw SysError(std::string("fsopen ") + type + " for " + what.string());
  for (const auto& [k, v] : opts) {
    if (::fsconfig(ctx.get(), FSCONFIG_SET_STRING, k, v, 0) != 0) {
      throw SysError(std::string("configure ") + type + " " + k + "=" + v + " for " + what.string());
    }
  }
  if (::fsconfig(ctx.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    throw SysError(std::string("create ") + type + " for " + what.string());
  }
  Fd mnt(::fsmount(ctx.get(), FSMOUNT_CLOEXEC, static_cast<unsigned>(attrs)));
  if (!mnt) throw SysError(std::string("mount ") + type + " for " + what.string());
  return mnt;
}

void mount_fresh(int root, const fs::path& target, const char* type,
                 std::initializer_list<std::pair<const char*, const char*>> opts, uint64_t attrs) {
  Fd mnt = new_fs(type, opts, attrs, target);
  Fd t = ensure_target(root, target, true);
  attach(mnt.get(), t.get(), target);
}

void bind(int root, const fs::path& source, const fs::path& target, uint64_t attrs) {
  struct stat st;
  if (::stat(source.c_str(), &st) != 0) throw SysError("stat bind source " + source.string());
  Fd tree = clone_tree(source, attrs);
  Fd t = ensure_target(root, target, S_ISDIR(st.st_mode));
  attach(tree.get(), t.get(), target);
}

void symlink_in(int root, const fs::path& at, const std::string& text) {
  Fd parent = ensure_target(root, at.parent_path(), true);
  if (::symlinkat(text.c_str(), parent.get(), at.filename().c_str()) != 0 && errno != EEXIST) {
    throw SysError("create symlink " + at.string());
  }
}

void remount_ro(int root, const fs::path& target) {
  fs::path rel = relative_to_root(target);
  Fd t(rel == "." ? ::fcntl(root, F_DUPFD_CLOEXEC, 0) : open_nofollow(root, rel, O_PATH | O_DIRECTORY));
  if (!t) throw SysError("open " + target.string() + " to make it read-only");
  set_attr(t.get(), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, false, target);
}

void build_dev(int root, const DevOptions& dev) {
  mount_fresh(root, "/dev", "tmpfs", {{"mode", "0755"}, {"size", "1m"}},
              MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
  // Device nodes cannot be made in a user namespace; bind the harmless host ones.
  for (const char* n : {"null", "zero", "full", "random", "urandom", "tty"}) {
    bind(root, fs::path("/dev") / n, fs::path("/dev") / n, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
  }
  for (const auto& d : dev.devices) bind(root, d, d, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
  // Only the session's own terminal, never the host's devpts as a whole.
  if (!dev.console.empty()) bind(root, dev.console, "/dev/console", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
  // A private devpts instance: ptys of this session only, never the host's other terminals.
  mount_fresh(root, "/dev/pts", "devpts", {{"ptmxmode", "0666"}, {"mode", "0620"}},
              MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
  if (dev.host_shm) {
    bind(root, "/dev/shm", "/dev/shm", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
  } else {
    mount_fresh(root, "/dev/shm", "tmpfs", {{"mode", "1777"}},
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
  }
  symlink_in(root, "/dev/ptmx", "pts/ptmx");
  symlink_in(root, "/dev/fd", "/proc/self/fd");
  symlink_in(root, "/dev/stdin", "/proc/self/fd/0");
  symlink_in(root, "/dev/stdout", "/proc/self/fd/1");
  symlink_in(root, "/dev/stderr", "/proc/self/fd/2");
  symlink_in(root, "/dev/core", "/proc/kcore");
  remount_ro(root, "/dev");
}

}  // namespace

void build_root(const fs::path& newroot, const MountPlan& plan, const DevOptions& dev, int vault_tree) {
  // The new root lives in the staging dir, under pw's runtime dir: no component of that
  // path may be a symlink (one planted there must not steer where the root is built).
  Fd slash(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!slash) throw SysError("open /");
  {
    Fd mnt = new_fs("tmpfs", {{"mode", "0755"}}, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, "/");
    Fd t(open_nofollow(slash.get(), relative_to_root(newroot), O_PATH | O_DIRECTORY));
    if (!t) throw SysError("open " + newroot.string() + " (symlinks refused)");
    attach(mnt.get(), t.get(), newroot);
  }
  Fd root(open_nofollow(slash.get(), relative_to_root(newroot), O_PATH | O_DIRECTORY));
  if (!root) throw SysError("open new root " + newroot.string() + " (symlinks refused)");

  // The empty file that hidden files are bound from; unlinked before the root goes read-only
  // (the binds keep the inode).
  const char* empty_name = ".pw-empty";
  {
    Fd dirfd(::openat(root.get(), ".", O_DIRECTORY | O_CLOEXEC));
    // 0644, so a write attempt fails with EROFS (the mount) rather than EACCES (the mode).
    int f = ::openat(dirfd.get(), empty_name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (f < 0) throw SysError("create the empty mask file");
    ::close(f);
  }
  Fd empty_tree;
  {
    Fd src(::openat(root.get(), empty_name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    empty_tree.reset(::open_tree(src.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
    if (!empty_tree) throw SysError("clone the empty mask file");
  }

  for (const MountOp& op : plan.ops) {
    switch (op.kind) {
      case OpKind::BindRo:
        bind(root.get(), op.source, op.target,
             MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        break;
      case OpKind::BindRw:
        bind(root.get(), op.source, op.target, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        break;
      case OpKind::HideDir:
        mount_fresh(root.get(), op.target, "tmpfs", {{"mode", "0755"}, {"size", "64k"}},
                    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        break;
      case OpKind::HideFile: {
        // Each hide needs its own mount: clone the detached empty-file mount again.
        Fd m(::open_tree(empty_tree.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
        if (!m) throw SysError("clone the empty mask file for " + op.target.string());
        set_attr(m.get(), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                 false, op.target);
        Fd t = ensure_target(root.get(), op.target, false);
        attach(m.get(), t.get(), op.target);
        break;
      }
      case OpKind::Vault: {
        if (vault_tree < 0) break;
        Fd t = ensure_target(root.get(), op.target, true);
        attach(vault_tree, t.get(), op.target);
        // Mounts and unmounts flow from the workspace into the session, never back.
        struct mount_attr attr {};
        attr.propagation = MS_SLAVE;
        if (::mount_setattr(vault_tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0) {
          throw SysError("make the vault mount a slave at " + op.target.string());
        }
        set_attr(vault_tree, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true, op.target);
        break;
      }
      case OpKind::Symlink:
        symlink_in(root.get(), op.target, op.source.string());
        break;
      case OpKind::Proc:
        mount_fresh(root.get(), "/proc", "proc", {},
                    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        break;
      case OpKind::Dev:
        build_dev(root.get(), dev);
        break;
      case OpKind::RemountRo:
        if (op.target == "/") {
          Fd dirfd(::openat(root.get(), ".", O_DIRECTORY | O_CLOEXEC));
          ::unlinkat(dirfd.get(), empty_name, 0);
        }
        remount_ro(root.get(), op.target);
        break;
    }
  }
}

void enter_root(const fs::path& newroot) {
  Fd slash(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  Fd root(slash ? open_nofollow(slash.get(), relative_to_root(newroot), O_PATH | O_DIRECTORY) : -1);
  if (!root || ::fchdir(root.get()) != 0) throw SysError("enter " + newroot.string() + " (symlinks refused)");
  // pivot_root(".", "."): the old root ends up stacked on the new one and is detached
  // right away, so no path to the host's tree remains.
  if (::syscall(SYS_pivot_root, ".", ".") != 0) throw SysError("pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) throw SysError("detach the old root");
  if (::chdir("/") != 0) throw SysError("chdir /");
}

}  // namespace pw
