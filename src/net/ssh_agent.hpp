// The ssh-agent filter's protocol side (draft-miller-ssh-agent): which requests a session may
// make of the user's agent, and the filtered list of identities it sees. Pure; the proxy's
// event loop moves the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pw::net::agent {

// Message numbers used here.
constexpr std::uint8_t kFailure = 5;
constexpr std::uint8_t kRequestIdentities = 11;
constexpr std::uint8_t kIdentitiesAnswer = 12;
constexpr std::uint8_t kSignRequest = 13;
constexpr std::uint8_t kSignResponse = 14;

// Largest message accepted in either direction (OpenSSH's agent uses 256 KiB too).
constexpr std::size_t kMaxMessage = 256 * 1024;

// "SHA256:" followed by the unpadded base64 of the SHA-256 of a public key blob, as
// `ssh-keygen -l` and `ssh-add -l` print it.
std::string fingerprint(std::span<const std::uint8_t> key_blob);

// True for "SHA256:" + 43 base64 characters (the form fingerprint() produces).
bool valid_fingerprint(std::string_view fp);

// The SSH_AGENT_FAILURE message, framed (length prefix included).
std::string failure_message();

// What to do with one request (a payload: the message without its length prefix).
struct Verdict {
  bool forward = false;  // pass to the real agent; otherwise answer SSH_AGENT_FAILURE
  std::string what;      // "list keys", "sign with SHA256:...", "remove all keys", ...
  std::string reason;    // why, for the log
};

class Filter {
 public:
  explicit Filter(std::vector<std::string> allowed_fingerprints = {})
      : allowed_(std::move(allowed_fingerprints)) {}

  bool allows_key(std::span<const std::uint8_t> key_blob) const;

  Verdict check_request(std::span<const std::uint8_t> payload) const;

  // Rewrites an SSH_AGENT_IDENTITIES_ANSWER payload to hold only allowed keys; nothing if
  // it is malformed. `held`/`shown` count the keys before and after.
  std::optional<std::string> filter_identities(std::span<const std::uint8_t> payload,
                                               std::size_t& held, std::size_t& shown) const;

  const std::vector<std::string>& allowed() const { return allowed_; }

 private:
  std::vector<std::string> allowed_;
};

}  // namespace pw::net::agent
