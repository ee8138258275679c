// Control-socket messages between `pw` clients and a workspace supervisor: one text line per
// SOCK_SEQPACKET message, with file descriptors attached where a message carries them.
#pragma once

#include <sys/un.h>

#include <filesystem>
#include <string>
#include <vector>

#include "profile/spec.hpp"
#include "util/fd.hpp"

namespace pw::proto {

// 2: a session's "ok" carries the staging tmpfs as a third fd.
// 3: "ok NET VAULT STAGE": NET and VAULT (0 or 1) say whether the workspace's network
//    namespace and the vault anchor follow the three fixed fds, in that order.
constexpr int kVersion = 3;

// The address of a unix socket at `path`; throws Error if the path does not fit.
struct sockaddr_un address(const std::filesystem::path& path);

// Sends `text` with `fds` attached (SCM_RIGHTS). Throws on failure.
void send(int sock, const std::string& text, const std::vector<int>& fds = {});

// Receives one message; returns false on orderly EOF. Attached fds are returned owned and
// close-on-exec. Throws on error.
bool recv(int sock, std::string& text, std::vector<Fd>* fds = nullptr);

// The network mode as a session's "ok" names it (one character: h, n, a), and back;
// false for a character that names none.
char net_code(NetMode mode);
bool net_from_code(char c, NetMode& mode);

// The uid of the peer of a connected unix socket, as seen in the caller's user namespace.
uid_t peer_uid(int sock);
pid_t peer_pid(int sock);

}  // namespace pw::proto
