// Secret memory: sodium_malloc'd (guard pages, mlock'd, excluded from core dumps),
// wiped by sodium_free on destruction. Move-only.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fusevault {

class SecureBytes {
public:
  SecureBytes() = default;
  explicit SecureBytes(std::size_t capacity);
  ~SecureBytes();
  SecureBytes(SecureBytes&& o) noexcept;
  SecureBytes& operator=(SecureBytes&& o) noexcept;
  SecureBytes(const SecureBytes&) = delete;
  SecureBytes& operator=(const SecureBytes&) = delete;

  static SecureBytes from(std::string_view s);

  std::uint8_t* data() { return p_; }
  const std::uint8_t* data() const { return p_; }
  std::size_t size() const { return n_; }
  std::size_t capacity() const { return cap_; }
  void set_size(std::size_t n);  // logical length, <= capacity
  std::string_view view() const { return {reinterpret_cast<const char*>(p_), n_}; }
  bool empty() const { return n_ == 0; }
  // mlock is not inherited across fork(); a daemonized child calls this again.
  void relock();
  void wipe();  // zero and release now

private:
  std::uint8_t* p_ = nullptr;
  std::size_t n_ = 0;
  std::size_t cap_ = 0;
};

}  // namespace fusevault
