// The only file that knows FUSE: translates fuse_lowlevel_ops to Fs calls. Exceptions
// become -errno here and only here.
#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>
#include <dirent.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "fs.hpp"
#include "fusevault/vault.hpp"

namespace fusevault {

struct Server::Impl {
  std::unique_ptr<Vault> vault;
  Fs* fs = nullptr;
  std::string mountpoint;
  MountOptions opts;
  fuse_session* se = nullptr;
  bool mounted = false;
  bool signals = false;
};

namespace {

Server::Impl& S(fuse_req_t req) { return *static_cast<Server::Impl*>(fuse_req_userdata(req)); }

template <class F>
void guarded(fuse_req_t req, F&& f) {
  try {
    f();
  } catch (const FsError& e) {
    fuse_reply_err(req, e.err);
  } catch (const std::bad_alloc&) {
    fuse_reply_err(req, ENOMEM);
  } catch (...) {
    fuse_reply_err(req, EIO);
  }
}

void reply_entry(fuse_req_t req, const Fs::Entry& e) {
  fuse_entry_param ep{};
  ep.ino = e.ino;
  ep.attr = e.st;
  ep.attr_timeout = ep.entry_timeout = S(req).opts.timeout_s;
  if (fuse_reply_entry(req, &ep) != 0) S(req).fs->forget(e.ino, 1);
}

void op_init(void* userdata, fuse_conn_info* conn) {
  auto* s = static_cast<Server::Impl*>(userdata);
  conn->max_write = 1u << 20;
  conn->max_readahead = 1u << 20;
  conn->time_gran = 1;
  if (s->opts.writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
    conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  try {
    reply_entry(req, S(req).fs->lookup(parent, name));
  } catch (const FsError& e) {
    if (e.err == ENOENT) {  // negative entry: we are the only writer, the kernel may cache it
      fuse_entry_param ep{};
      ep.entry_timeout = S(req).opts.timeout_s;
      fuse_reply_entry(req, &ep);
    } else {
      fuse_reply_err(req, e.err);
    }
  } catch (...) {
    fuse_reply_err(req, EIO);
  }
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n) {
  try {
    S(req).fs->forget(ino, n);
  } catch (...) {
  }
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* f) {
  try {
    for (size_t i = 0; i < count; i++) S(req).fs->forget(f[i].ino, f[i].nlookup);
  } catch (...) {
  }
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  guarded(req, [&] {
    auto st = S(req).fs->getattr(ino);
    fuse_reply_attr(req, &st, S(req).opts.timeout_s);
  });
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  guarded(req, [&] {
    SetAttrRequest r;
    r.set_mode = to_set & FUSE_SET_ATTR_MODE;
    r.set_uid = to_set & FUSE_SET_ATTR_UID;
    r.set_gid = to_set & FUSE_SET_ATTR_GID;
    r.set_size = to_set & FUSE_SET_ATTR_SIZE;
    r.set_atime = to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW);
    r.set_mtime = to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW);
    r.atime_now = to_set & FUSE_SET_ATTR_ATIME_NOW;
    r.mtime_now = to_set & FUSE_SET_ATTR_MTIME_NOW;
    r.mode = attr->st_mode;
    r.uid = attr->st_uid;
    r.gid = attr->st_gid;
    r.size = static_cast<std::uint64_t>(attr->st_size);
    r.atime = attr->st_atim;
    r.mtime = attr->st_mtim;
    auto st = S(req).fs->setattr(ino, fi ? fi->fh : 0, r);
    fuse_reply_attr(req, &st, S(req).opts.timeout_s);
  });
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  guarded(req, [&] {
    const auto t = S(req).fs->readlink(ino);
    fuse_reply_readlink(req, t.c_str());
  });
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t) {
  guarded(req, [&] {
    if (!S_ISREG(mode)) throw FsError(EPERM);  // no device nodes, FIFOs or sockets in a vault
    std::uint64_t fh = 0;
    auto e = S(req).fs->create(parent, name, mode, O_EXCL, fh);
    S(req).fs->release(fh);
    reply_entry(req, e);
  });
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  guarded(req, [&] { reply_entry(req, S(req).fs->mkdir(parent, name, mode)); });
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  guarded(req, [&] {
    S(req).fs->unlink(parent, name);
    fuse_reply_err(req, 0);
  });
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  guarded(req, [&] {
    S(req).fs->rmdir(parent, name);
    fuse_reply_err(req, 0);
  });
}

void op_symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  guarded(req, [&] { reply_entry(req, S(req).fs->symlink(parent, name, target)); });
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned flags) {
  guarded(req, [&] {
    S(req).fs->rename(parent, name, newparent, newname, flags);
    fuse_reply_err(req, 0);
  });
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  guarded(req, [&] { reply_entry(req, S(req).fs->link(ino, newparent, newname)); });
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  guarded(req, [&] {
    fi->fh = S(req).fs->open(ino, fi->flags);
    fi->keep_cache = 1;  // the vault is the only writer of its files
    if (fuse_reply_open(req, fi) != 0) S(req).fs->release(fi->fh);
  });
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  guarded(req, [&] {
    std::uint64_t fh = 0;
    auto e = S(req).fs->create(parent, name, mode, fi->flags, fh);
    fi->fh = fh;
    fi->keep_cache = 1;
    fuse_entry_param ep{};
    ep.ino = e.ino;
    ep.attr = e.st;
    ep.attr_timeout = ep.entry_timeout = S(req).opts.timeout_s;
    if (fuse_reply_create(req, &ep, fi) != 0) {
      S(req).fs->release(fh);
      S(req).fs->forget(e.ino, 1);
    }
  });
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  guarded(req, [&] {
    thread_local std::vector<char> buf;
    buf.resize(size);
    const auto n = S(req).fs->read(fi->fh, static_cast<std::uint64_t>(off), size, buf.data());
    fuse_reply_buf(req, buf.data(), n);
  });
}

void op_write(fuse_req_t req, fuse_ino_t, const char* data, size_t size, off_t off, fuse_file_info* fi) {
  guarded(req, [&] {
    const auto n = S(req).fs->write(fi->fh, static_cast<std::uint64_t>(off), data, size);
    fuse_reply_write(req, n);
  });
}

void op_flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  guarded(req, [&] {
    S(req).fs->release(fi->fh);
    fuse_reply_err(req, 0);
  });
}

void op_fsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  guarded(req, [&] {
    S(req).fs->fsync(fi->fh, datasync != 0);
    fuse_reply_err(req, 0);
  });
}

struct DirHandle {
  std::vector<DirEntry> entries;
};

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  guarded(req, [&] {
    auto* d = new DirHandle{S(req).fs->readdir(ino)};
    fi->fh = reinterpret_cast<std::uint64_t>(d);
    fi->cache_readdir = 0;
    if (fuse_reply_open(req, fi) != 0) delete d;
  });
}

void op_readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  guarded(req, [&] {
    auto* d = reinterpret_cast<DirHandle*>(fi->fh);
    std::vector<char> buf(size);
    std::size_t used = 0;
    for (std::size_t i = static_cast<std::size_t>(off); i < d->entries.size(); i++) {
      const auto& e = d->entries[i];
      struct stat st{};
      st.st_ino = e.backing_ino ? e.backing_ino : 1;
      st.st_mode = static_cast<mode_t>(DTTOIF(e.type));
      const std::size_t need = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st,
                                                 static_cast<off_t>(i + 1));
      if (need > size - used) break;
      used += need;
    }
    fuse_reply_buf(req, buf.data(), used);
  });
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  guarded(req, [&] {
    S(req).fs->fsyncdir(ino);
    fuse_reply_err(req, 0);
  });
}

void op_statfs(fuse_req_t req, fuse_ino_t) {
  guarded(req, [&] {
    auto s = S(req).fs->statfs();
    fuse_reply_statfs(req, &s);
  });
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops o{};
  o.init = op_init;
  o.lookup = op_lookup;
  o.forget = op_forget;
  o.forget_multi = op_forget_multi;
  o.getattr = op_getattr;
  o.setattr = op_setattr;
  o.readlink = op_readlink;
  o.mknod = op_mknod;
  o.mkdir = op_mkdir;
  o.unlink = op_unlink;
  o.rmdir = op_rmdir;
  o.symlink = op_symlink;
  o.rename = op_rename;
  o.link = op_link;
  o.open = op_open;
  o.create = op_create;
  o.read = op_read;
  o.write = op_write;
  o.flush = op_flush;
  o.release = op_release;
  o.fsync = op_fsync;
  o.opendir = op_opendir;
  o.readdir = op_readdir;
  o.releasedir = op_releasedir;
  o.fsyncdir = op_fsyncdir;
  o.statfs = op_statfs;
  return o;
}

}  // namespace

Server::Server(std::unique_ptr<Vault> vault, std::string mountpoint, MountOptions opts)
    : impl_(std::make_unique<Impl>()) {
  impl_->vault = std::move(vault);
  impl_->mountpoint = std::move(mountpoint);
  impl_->opts = opts;
}

Server::~Server() {
  if (impl_->se) {
    if (impl_->signals) fuse_remove_signal_handlers(impl_->se);
    if (impl_->mounted) fuse_session_unmount(impl_->se);
    fuse_session_destroy(impl_->se);
  }
  if (impl_->vault) impl_->vault->close();  // wipes the keys
}

Vault& Server::vault() { return *impl_->vault; }

void Server::mount() {
  harden_process();
  impl_->fs = &impl_->vault->fs();
  std::string o = "fsname=fusevault,subtype=fusevault,default_permissions";
  if (impl_->opts.allow_other) o += ",allow_other";
  std::vector<const char*> argv = {"fusevault", "-o", o.c_str()};
  if (impl_->opts.debug) argv.push_back("-d");
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), const_cast<char**>(argv.data()));
  static const fuse_lowlevel_ops ops = make_ops();
  impl_->se = fuse_session_new(&args, &ops, sizeof ops, impl_.get());
  if (!impl_->se) throw VaultError("cannot create the FUSE session");
  if (fuse_session_mount(impl_->se, impl_->mountpoint.c_str()) != 0)
    throw VaultError("cannot mount on " + impl_->mountpoint + " (is /dev/fuse accessible?)");
  impl_->mounted = true;
}

int Server::run() {
  if (!impl_->se) throw VaultError("Server::run before mount");
  if (fuse_set_signal_handlers(impl_->se) == 0) impl_->signals = true;
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, impl_->opts.max_threads);
  fuse_loop_cfg_set_clone_fd(cfg, 0);
  const int r = fuse_session_loop_mt(impl_->se, cfg);
  fuse_loop_cfg_destroy(cfg);
  if (impl_->signals) {
    fuse_remove_signal_handlers(impl_->se);
    impl_->signals = false;
  }
  if (impl_->mounted) {
    fuse_session_unmount(impl_->se);
    impl_->mounted = false;
  }
  impl_->fs = nullptr;
  impl_->vault->close();  // wipe keys as soon as the filesystem is gone
  return r < 0 ? 1 : 0;
}

void Server::stop() {
  if (!impl_->se) return;
  fuse_session_exit(impl_->se);
  // Workers block in read(/dev/fuse); detaching the mount ends the connection and wakes them.
  ::umount2(impl_->mountpoint.c_str(), MNT_DETACH);
}

}  // namespace fusevault
