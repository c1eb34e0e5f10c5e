#include "common/error.h"

#include <cerrno>
#include <cstring>

namespace slipway {

SystemError::SystemError(const std::string& what, int err)
    : Error(what + ": " + std::strerror(err)), code_(err) {}

void throw_errno(const std::string& what) {
  throw SystemError(what, errno);
}

}  // namespace slipway
