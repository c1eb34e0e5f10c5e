// IoBlock: a 1 MiB I/O buffer taken from a process-wide free list and given back to it.
//
// Every byte of a pulled layer passes through several 1 MiB buffers (the download pipe, the
// read-ahead, the decompressor's input, the tar reader), and each layer used to allocate its
// own. Blocks that size are fresh mmaps in glibc, so every page faulted (and was zeroed) on
// first use and was unmapped again after the layer: measured on a six-layer pull, page faults
// were a fifth of its CPU. Blocks given back are handed out again instead, so a pull touches
// new memory only for the blocks in use at its busiest moment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace slipway {

class IoBlock {
 public:
  static constexpr size_t kSize = size_t{1} << 20;

  IoBlock();  // a free block, or a new one; its contents are unspecified (not zeroed)
  ~IoBlock();
  IoBlock(IoBlock&& other) noexcept = default;
  IoBlock& operator=(IoBlock&& other) noexcept;
  IoBlock(const IoBlock&) = delete;
  IoBlock& operator=(const IoBlock&) = delete;

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  uint8_t* bytes() { return reinterpret_cast<uint8_t*>(data_.get()); }
  const uint8_t* bytes() const { return reinterpret_cast<const uint8_t*>(data_.get()); }
  static constexpr size_t size() { return kSize; }

 private:
  void give_back();

  std::unique_ptr<char[]> data_;
};

}  // namespace slipway
