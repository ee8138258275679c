#include "fusevault/secure.hpp"

#include <sodium.h>

#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>

namespace fusevault {

SecureBytes::SecureBytes(std::size_t capacity) : cap_(capacity) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium initialisation failed");
  p_ = static_cast<std::uint8_t*>(sodium_malloc(capacity ? capacity : 1));
  if (!p_) throw std::bad_alloc();
  std::memset(p_, 0, capacity ? capacity : 1);
  n_ = capacity;
}

SecureBytes::~SecureBytes() { wipe(); }

SecureBytes::SecureBytes(SecureBytes&& o) noexcept
    : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)), cap_(std::exchange(o.cap_, 0)) {}

SecureBytes& SecureBytes::operator=(SecureBytes&& o) noexcept {
  if (this != &o) {
    wipe();
    p_ = std::exchange(o.p_, nullptr);
    n_ = std::exchange(o.n_, 0);
    cap_ = std::exchange(o.cap_, 0);
  }
  return *this;
}

SecureBytes SecureBytes::from(std::string_view s) {
  SecureBytes b(s.size());
  if (!s.empty()) std::memcpy(b.data(), s.data(), s.size());
  return b;
}

void SecureBytes::set_size(std::size_t n) {
  if (n > cap_) throw std::length_error("SecureBytes::set_size");
  n_ = n;
}

void SecureBytes::relock() {
  if (p_) sodium_mlock(p_, cap_ ? cap_ : 1);
}

void SecureBytes::wipe() {
  if (p_) sodium_free(p_);  // sodium_free zeroes before unmapping
  p_ = nullptr;
  n_ = cap_ = 0;
}

}  // namespace fusevault
