// BytePipe: the bounded in-memory pipe of IoBlocks that carries bytes from one thread to another:
// a download to the store's unpacker (pull), a download to an upload (copy), and a layer's
// decompression to its unpacking (the ingest's read-ahead).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>

#include "common/io_block.h"
#include "store/layer.h"

namespace slipway::store {

// Single producer, single consumer. The producer blocks while `max_buffered` bytes are waiting.
// curl hands over what one recv() gave (16-64 KiB on loopback), so pushes are packed into
// IoBlocks and a read takes as much as is waiting: the store's reader asks for 1 MiB at a time
// and hashes, writes the partial blob and inflates per read, and a copy's PUT sends what curl's
// upload buffer holds, so small reads meant a syscall or a decompressor round per 16 KiB.
class BytePipe : public ByteSource {
 public:
  static constexpr size_t kMaxBuffered = size_t{4} << 20;
  explicit BytePipe(size_t max_buffered = kMaxBuffered) : max_buffered_(max_buffered) {}

  // Producer: false when the consumer gave up (abort()): the producer should stop.
  bool push(const char* data, size_t size);
  // Producer: hands over a block whose first `size` bytes it filled, without copying them.
  bool push_block(IoBlock block, size_t size);
  // Producer: end of stream; `error` makes the consumer's next read throw it instead.
  void close(std::exception_ptr error = nullptr);

  // Consumer: up to `size` bytes, blocking until some are there; 0 at the end of the stream.
  size_t read(void* buffer, size_t size) override;
  // Consumer: stop reading; wakes a producer waiting for room and fails its later pushes.
  void abort();
  bool aborted();

 private:
  struct Block {
    IoBlock data;
    size_t size = 0;
  };

  // With the lock held: waits for room; false once aborted.
  bool wait_for_room(std::unique_lock<std::mutex>& lock);

  const size_t max_buffered_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Block> blocks_;
  size_t offset_ = 0;  // into blocks_.front()
  size_t buffered_ = 0;
  bool reader_waiting_ = false;
  bool closed_ = false;
  bool aborted_ = false;
  std::exception_ptr error_;
};

}  // namespace slipway::store
