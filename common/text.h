// Small checks on text that several folders make.
#pragma once

#include <string_view>

namespace slipway {

// One or more ASCII digits and nothing else.
inline bool all_digits(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

}  // namespace slipway
