// Whether this build runs under a sanitizer (gcc's or clang's way of saying so). Their
// run-times keep per-thread state that a second process on the same memory would confuse,
// so code that shares memory with a child (the session's pid 1, the workspace helper)
// copies it as fork() does, or takes another path, in such a build.
#pragma once

namespace pw {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitizerBuild = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
inline constexpr bool kSanitizerBuild = true;
#else
inline constexpr bool kSanitizerBuild = false;
#endif
#else
inline constexpr bool kSanitizerBuild = false;
#endif

}  // namespace pw
