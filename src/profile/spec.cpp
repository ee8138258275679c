#include "profile/spec.hpp"

namespace pw {

// The strings are the profile's own spellings, so render_profile() and error messages
// can use them directly.

const char* to_string(Posture p) {
  switch (p) {
    case Posture::Human:
      return "human";
    case Posture::Agent:
      return "agent";
  }
  return "?";
}

const char* to_string(NetMode m) {
  switch (m) {
    case NetMode::None:
      return "none";
    case NetMode::Host:
      return "host";
    case NetMode::Allowlist:
      return "allowlist";
  }
  return "?";
}

const char* to_string(SeccompMode m) {
  switch (m) {
    case SeccompMode::Default:
      return "default";
    case SeccompMode::Strict:
      return "strict";
    case SeccompMode::Off:
      return "off";
  }
  return "?";
}

const char* to_string(LandlockMode m) {
  switch (m) {
    case LandlockMode::Required:
      return "required";
    case LandlockMode::BestEffort:
      return "best-effort";
    case LandlockMode::Off:
      return "off";
  }
  return "?";
}

const char* to_string(SshAgentMode m) {
  switch (m) {
    case SshAgentMode::None:
      return "none";
    case SshAgentMode::Forward:
      return "forward";
  }
  return "?";
}

const char* to_string(VaultUnlock u) {
  switch (u) {
    case VaultUnlock::Manual:
      return "manual";
    case VaultUnlock::OnEnter:
      return "on-enter";
  }
  return "?";
}

bool ProfileSpec::same_settings(const ProfileSpec& o) const {
  auto strip = [](ProfileSpec s) {
    s.file.clear();
    s.profile_dir.clear();
    s.warnings.clear();
    return s;
  };
  return strip(*this) == strip(o);
}

}  // namespace pw
