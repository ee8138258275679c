// User namespaces: the two hops of the uid-mapping trick.
//   workspace: unshare a user namespace where the user is root (uid_map "0 U 1"), so the
//              supervisor and sessions may build mounts without any setuid help
//              (make_namespaces, workspace/maker.hpp);
//   session:   a nested one mapping back to the user (uid_map "U 0 1"), so the shell runs as
//              the user with no capability over the mounts made for it.
#pragma once

#include <sys/types.h>

namespace pw {

// unshare(CLONE_NEWUSER) and map ids so that the caller becomes (uid, gid) inside, where
// (uid, gid) are the ids the outer namespace's root stands for on the host.
void enter_user_namespace_as(uid_t uid, gid_t gid);

}  // namespace pw
