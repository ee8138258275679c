#include "util/error.hpp"

#include <cstring>

namespace pw {

SysError::SysError(const std::string& what, int err)
    : Error(what + ": " + std::strerror(err)), err_(err) {}

}  // namespace pw
