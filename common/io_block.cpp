#include "common/io_block.h"

#include <mutex>
#include <vector>

namespace slipway {
namespace {

// Enough for three layers in flight at their busiest (pipe, read-ahead, decompressor, tar
// reader); blocks beyond it are freed, so a burst does not stay resident.
constexpr size_t kMaxFreeBlocks = 48;

struct FreeBlocks {
  FreeBlocks() { blocks.reserve(kMaxFreeBlocks); }  // so that giving back never allocates
  std::mutex mutex;
  std::vector<std::unique_ptr<char[]>> blocks;
};

FreeBlocks& free_blocks() {
  static FreeBlocks pool;
  return pool;
}

}  // namespace

IoBlock::IoBlock() {
  {
    FreeBlocks& pool = free_blocks();
    std::lock_guard lock(pool.mutex);
    if (!pool.blocks.empty()) {
      data_ = std::move(pool.blocks.back());
      pool.blocks.pop_back();
      return;
    }
  }
  data_ = std::make_unique_for_overwrite<char[]>(kSize);
}

IoBlock::~IoBlock() {
  give_back();
}

IoBlock& IoBlock::operator=(IoBlock&& other) noexcept {
  if (this != &other) {
    give_back();
    data_ = std::move(other.data_);
  }
  return *this;
}

void IoBlock::give_back() {
  if (!data_) return;
  FreeBlocks& pool = free_blocks();
  std::lock_guard lock(pool.mutex);
  if (pool.blocks.size() < kMaxFreeBlocks) pool.blocks.push_back(std::move(data_));
  data_.reset();
}

}  // namespace slipway
