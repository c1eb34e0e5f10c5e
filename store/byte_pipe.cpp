#include "store/byte_pipe.h"

#include <algorithm>
#include <cstring>

namespace slipway::store {

bool BytePipe::wait_for_room(std::unique_lock<std::mutex>& lock) {
  changed_.wait(lock, [&] { return aborted_ || buffered_ < max_buffered_; });
  return !aborted_;
}

bool BytePipe::push(const char* data, size_t size) {
  std::unique_lock lock(mutex_);
  if (!wait_for_room(lock)) return false;
  while (size > 0) {
    if (blocks_.empty() || blocks_.back().size == IoBlock::kSize) blocks_.emplace_back();
    Block& back = blocks_.back();
    size_t n = std::min(size, IoBlock::kSize - back.size);
    std::memcpy(back.data.data() + back.size, data, n);
    back.size += n;
    data += n;
    size -= n;
    buffered_ += n;
  }
  if (reader_waiting_) changed_.notify_all();
  return true;
}

bool BytePipe::push_block(IoBlock block, size_t size) {
  std::unique_lock lock(mutex_);
  if (!wait_for_room(lock)) return false;
  if (size == 0) return true;
  blocks_.push_back(Block{std::move(block), size});
  buffered_ += size;
  if (reader_waiting_) changed_.notify_all();
  return true;
}

void BytePipe::close(std::exception_ptr error) {
  std::lock_guard lock(mutex_);
  closed_ = true;
  error_ = error;
  changed_.notify_all();
}

void BytePipe::abort() {
  std::lock_guard lock(mutex_);
  aborted_ = true;
  changed_.notify_all();
}

bool BytePipe::aborted() {
  std::lock_guard lock(mutex_);
  return aborted_;
}

size_t BytePipe::read(void* buffer, size_t size) {
  std::unique_lock lock(mutex_);
  reader_waiting_ = true;
  changed_.wait(lock, [&] { return buffered_ > 0 || closed_; });
  reader_waiting_ = false;
  if (buffered_ == 0) {
    if (error_) std::rethrow_exception(error_);
    return 0;
  }
  auto* out = static_cast<char*>(buffer);
  size_t copied = 0;
  while (copied < size && copied < buffered_) {
    Block& front = blocks_.front();
    size_t n = std::min(size - copied, front.size - offset_);
    std::memcpy(out + copied, front.data.data() + offset_, n);
    copied += n;
    offset_ += n;
    if (offset_ == front.size) {
      // The producer may be appending to the last block: only a full or earlier one goes.
      if (blocks_.size() == 1 && front.size < IoBlock::kSize) {
        front.size = 0;
      } else {
        blocks_.pop_front();
      }
      offset_ = 0;
    }
  }
  const bool was_full = buffered_ >= max_buffered_;
  buffered_ -= copied;
  if (was_full && buffered_ < max_buffered_) changed_.notify_all();
  return copied;
}

}  // namespace slipway::store
