#include "common/random.h"

#include <sys/random.h>

#include <cerrno>

#include "common/error.h"

namespace slipway {

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  for (size_t filled = 0; filled < bytes;) {
    ssize_t got = ::getrandom(raw.data() + filled, bytes - filled, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw_errno("cannot read random bytes for an ID");
    filled += static_cast<size_t>(got);
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * bytes);
  for (unsigned char c : raw) {
    hex += kDigits[c >> 4];
    hex += kDigits[c & 15];
  }
  return hex;
}

}  // namespace slipway
