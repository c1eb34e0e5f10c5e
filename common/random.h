// Random identifiers: container, network and volume IDs, veth names.
#pragma once

#include <cstddef>
#include <string>

namespace slipway {

// `bytes` bytes from getrandom(2) as lower-case hex (2 * bytes characters). Throws SystemError when
// the kernel has none to give.
std::string random_hex(size_t bytes);

}  // namespace slipway
