// A ByteSource over the fuzzer's input, for the layer targets.
#pragma once

#include <algorithm>
#include <cstring>
#include <string_view>

#include "store/layer.h"

namespace slipway::fuzz {

class MemorySource : public store::ByteSource {
 public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}
  size_t read(void* buffer, size_t size) override {
    // Short reads of varying length, as a pipe gives them, to reach the refill paths.
    size_t n = std::min({size, bytes_.size(), size_t{7919}});
    std::memcpy(buffer, bytes_.data(), n);
    bytes_.remove_prefix(n);
    return n;
  }

 private:
  std::string_view bytes_;
};

}  // namespace slipway::fuzz
