// Layer compression: LayerBlobWriter (tar in, blob out, both digests in one pass) and the
// decompressing sources. gzip goes through ISA-L (igzip), which is several times faster than
// zlib both ways; zstd through libzstd. open_tar_file leaves the rare bzip2/xz to libarchive.
#include <fcntl.h>
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <system_error>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "common/io_block.h"
#include "store/digest.h"
#include "store/layer.h"
#include "store/layer_archive.h"

namespace slipway::store {
namespace fs = std::filesystem;
using namespace layer_detail;

namespace {

// The compressors take their input in blocks of this size and their output is collected into
// blocks of this size before one write(2) and one digest update; decompression reads its input in
// blocks of this size.
constexpr size_t kIoBlock = IoBlock::kSize;
// ISA-L takes 32-bit lengths.
constexpr size_t kMaxIsalChunk = std::numeric_limits<uint32_t>::max();

struct ZstdCCtxDeleter {
  void operator()(ZSTD_CCtx* ctx) const { ZSTD_freeCCtx(ctx); }
};
struct ZstdDCtxDeleter {
  void operator()(ZSTD_DCtx* ctx) const { ZSTD_freeDCtx(ctx); }
};

void check_zstd(size_t result, const char* what) {
  if (ZSTD_isError(result)) {
    throw Error(std::string(what) + ": " + ZSTD_getErrorName(result));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// LayerBlobWriter
//
// The issue allows both cores for one layer, so the work is split into three stages connected by
// bounded queues of 1 MiB blocks:
//   caller's thread: makes the tar (tree walk, libarchive) and computes the diffID;
//   encoder thread:  compresses;
//   blob thread:     computes the blob digest and writes the blob file.
// Measured on the Debian rootfs (perf): compression is about half of all the CPU time, making the
// tar with its digest a bit more than a third, and the blob digest and write the rest. With two
// threads (compression, blob digest and write on one) that one had ~63% of the work and set the
// pace; with three no thread has more than half, so the scheduler can keep both cores busy
// (bench/README.md has the figures). One encoder thread still left compression as the longest
// stage, so gzip (ParallelGzip) compresses 1 MiB blocks on two encoder threads at once
// and the blob thread puts them in order; zstd and uncompressed blobs keep the three stages.
//
// The compressors are fed the same fixed 1 MiB blocks in the same order whichever thread runs
// them, and their output is cut into the same 1 MiB blocks, so the blob bytes (and digest) do not
// depend on the threading or on the caller's write sizes.

namespace {

// One block of bytes between two stages.
struct Block {
  // kIoBlock bytes from the process's free list, not zero-filled: a build commits a layer per
  // step, and fresh zeroed 1 MiB buffers per layer were most of a small layer's commit (issue 14).
  IoBlock data;
  size_t size = 0;
  bool last = false;  // the end of the stream
};

// A bounded ring of blocks between one producer and one consumer thread. The blocks are allocated
// once and reused, so the steady state allocates nothing; with the ring full the producer waits,
// which bounds memory at kBlocks x kIoBlock whatever the speed difference. Slots tail_ ..
// tail_+filled_-1 belong to the consumer; the slot at head_ belongs to the producer whenever
// filled_ < kBlocks.
class BlockRing {
 public:
  // Three would do (one being filled, one being consumed, one queued); a fourth absorbs bursts
  // (a run of big files for the producer, incompressible data for the compressor).
  static constexpr size_t kBlocks = 4;

  // Producer: the block to fill next, waiting for one to be free. Throws the consumer's error.
  Block& free_block() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return filled_ < kBlocks || error_; });
    if (error_) std::rethrow_exception(error_);
    return blocks_[head_];
  }

  // Producer: hands the block from free_block() to the consumer.
  void submit() {
    {
      std::lock_guard lock(mutex_);
      head_ = (head_ + 1) % kBlocks;
      ++filled_;
    }
    changed_.notify_all();
  }

  // Consumer: the oldest submitted block, or nullptr once cancelled (the producer gave up and
  // the blocks still queued are of no use).
  Block* next_block() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return filled_ > 0 || cancelled_; });
    return cancelled_ ? nullptr : &blocks_[tail_];
  }

  // Consumer: gives the block from next_block() back to the producer.
  void release() {
    {
      std::lock_guard lock(mutex_);
      tail_ = (tail_ + 1) % kBlocks;
      --filled_;
    }
    changed_.notify_all();
  }

  // Consumer: records why it stopped; the producer's next wait throws it.
  void fail(std::exception_ptr error) {
    {
      std::lock_guard lock(mutex_);
      error_ = std::move(error);
    }
    changed_.notify_all();
  }

  // Producer: makes the consumer stop at its next wait.
  void cancel() {
    {
      std::lock_guard lock(mutex_);
      cancelled_ = true;
    }
    changed_.notify_all();
  }

  // The consumer's error, if any; call after it has stopped.
  std::exception_ptr error() {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  std::array<Block, kBlocks> blocks_;
  std::mutex mutex_;
  std::condition_variable changed_;
  size_t head_ = 0;
  size_t tail_ = 0;
  size_t filled_ = 0;
  bool cancelled_ = false;
  std::exception_ptr error_;
};

// Carries a stream of blocks from a producer to a consumer function, which runs either on a
// thread of its own (behind a BlockRing) or inline in pass(). The producer fills current() and
// calls pass(); pass() with `last` ends the stream, waits for the consumer to finish and throws
// its error. Destroying a pipe whose stream was not ended (the producer is unwinding from an
// error) cancels the consumer and joins it: no thread outlives its pipe.
class BlockPipe {
 public:
  using Consumer = std::function<void(const Block&)>;

  BlockPipe(Consumer consume, bool own_thread, const char* what) : consume_(std::move(consume)) {
    if (!own_thread) {
      block_ = &inline_block_.emplace();
      return;
    }
    ring_ = std::make_unique<BlockRing>();
    block_ = &ring_->free_block();
    try {
      thread_ = std::thread([this] { consume_blocks(); });
    } catch (const std::system_error& e) {
      throw Error(std::string("cannot start the ") + what + " thread: " + e.what());
    }
  }

  ~BlockPipe() {
    if (!thread_.joinable()) return;
    ring_->cancel();
    thread_.join();
  }

  BlockPipe(const BlockPipe&) = delete;
  BlockPipe& operator=(const BlockPipe&) = delete;

  Block& current() { return *block_; }

  void pass(bool last) {
    block_->last = last;
    if (!ring_) {
      consume_(*block_);
      block_->size = 0;
      return;
    }
    ring_->submit();
    if (last) {
      thread_.join();  // the consumer ends after this block
      if (std::exception_ptr error = ring_->error()) std::rethrow_exception(error);
      block_ = nullptr;
      return;
    }
    block_ = &ring_->free_block();
    block_->size = 0;
  }

 private:
  // The consumer thread: takes blocks until the last one or until cancelled. An exception stops
  // it and goes to the producer through the ring.
  void consume_blocks() {
    try {
      for (;;) {
        const Block* block = ring_->next_block();
        if (block == nullptr) return;
        const bool last = block->last;
        consume_(*block);
        ring_->release();
        if (last) return;
      }
    } catch (...) {
      ring_->fail(std::current_exception());
    }
  }

  Consumer consume_;
  std::optional<Block> inline_block_;  // the only block when there is no thread
  std::unique_ptr<BlockRing> ring_;
  Block* block_ = nullptr;  // the block the producer fills
  std::thread thread_;
};

// The last stage: digests the blob bytes and writes them to the file.
class BlobFile {
 public:
  // Uncompressed, the blob is the tar, whose digest the caller has: `digest` false skips it.
  BlobFile(int fd, bool digest) : fd_(fd), digest_(digest) {}

  void write(const uint8_t* data, size_t size) {
    if (digest_) sha256_.update(data, size);
    write_all(fd_, data, size, "layer blob");
    size_ += size;
  }

  // "sha256:..." of the blob, or "" without `digest`; call once, after the last write.
  std::string finish_digest() { return digest_ ? sha256_.finish() : std::string(); }
  uint64_t size() const { return size_; }

 private:
  int fd_;
  bool digest_;
  Sha256 sha256_;
  uint64_t size_ = 0;
};

// The middle stage for zstd: compresses a stream given as a sequence of input blocks into output
// blocks. (gzip has ParallelGzip.)
class Compressor {
 public:
  Compressor(Compression compression, BlockPipe& output)
      : compression_(compression), output_(output) {
    switch (compression_) {
      case Compression::kNone:
      case Compression::kGzip:
        throw Error("Compressor: zstd only");
      case Compression::kZstd:
        zstd_.reset(ZSTD_createCCtx());
        if (!zstd_) throw Error("cannot create zstd compressor");
        // Single-threaded zstd (no ZSTD_c_nbWorkers): its multithreaded mode frames the stream
        // differently, and the blob must not change. Its stage has a thread of its own anyway.
        check_zstd(ZSTD_CCtx_setParameter(zstd_.get(), ZSTD_c_compressionLevel, 3),
                   "zstd compression level");
        check_zstd(ZSTD_CCtx_setParameter(zstd_.get(), ZSTD_c_checksumFlag, 1), "zstd checksum");
        break;
    }
  }

  // Takes the next input block (all of it); the last one also ends the stream.
  void compress(const Block& input) {
    compress_zstd(input.data.bytes(), input.size, input.last ? ZSTD_e_end : ZSTD_e_continue);
    if (input.last) output_.pass(true);
  }

 private:
  // Output blocks go on only when full (or at the end): the same cuts whatever the input.
  Block& output_space() {
    if (output_.current().size == kIoBlock) output_.pass(false);
    return output_.current();
  }

  void compress_zstd(const uint8_t* data, size_t size, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{data, size, 0};
    for (;;) {
      Block& block = output_space();
      ZSTD_outBuffer out{block.data.bytes() + block.size, kIoBlock - block.size, 0};
      size_t remaining = ZSTD_compressStream2(zstd_.get(), &out, &in, mode);
      check_zstd(remaining, "zstd compression failed");
      block.size += out.pos;
      if (mode == ZSTD_e_end ? remaining == 0 : in.pos == in.size) return;
    }
  }

  Compression compression_;
  BlockPipe& output_;
  std::unique_ptr<ZSTD_CCtx, ZstdCCtxDeleter> zstd_;
};

// gzip in blocks compressed concurrently (as pigz does), for the gzip blob.
//
// The tar stream is cut into blocks of kIoBlock bytes (a constant: the cuts never depend on the
// thread count, the timing or the caller's write sizes, so neither do the blob bytes). Each block
// is compressed on its own as raw deflate, primed with the last 32 KiB of the block before it as
// the dictionary (so the ratio is nearly that of one stream) and ended with a SYNC_FLUSH, which
// byte-aligns it; the last block instead ends the deflate stream. The blob is one gzip member: a
// fixed header, the blocks in order, and the trailer with the CRC32 and size of the whole tar.
//
// Threads: the caller fills the input blocks; `encoders` threads compress whichever block is next
// (each with a deflate state of its own); the blob thread takes the compressed blocks in order,
// computes the CRC32 of their input, writes and digests them. The jobs live in a ring of kJobs
// slots, reused: the caller waits for a slot once the ring is full, so memory stays bounded.
// Without encoders, everything runs inline on the caller's thread, with the same bytes. The
// threads start only when the first block fills up: a layer smaller than one block (most RUN
// steps of a build) is compressed inline, without starting and joining three threads.
class ParallelGzip {
 public:
  ParallelGzip(BlobFile& blob, unsigned encoders) : blob_(blob), encoders_(encoders) {}

  // Stops and joins the threads (the caller unwinds from an error, or the stream has ended).
  ~ParallelGzip() { stop(); }

  // Caller: starts the encoder and blob threads (before the first full block is submitted).
  void start_threads() {
    try {
      for (unsigned i = 0; i < encoders_; ++i) {
        threads_.emplace_back([this, encoder = std::make_shared<Encoder>()] { encode(*encoder); });
      }
      threads_.emplace_back([this] { write_blocks(); });
    } catch (const std::system_error& e) {
      stop();
      throw Error(std::string("cannot start the layer compression threads: ") + e.what());
    }
  }

  ParallelGzip(const ParallelGzip&) = delete;
  ParallelGzip& operator=(const ParallelGzip&) = delete;

  // Caller: the next bytes of the tar. Throws the error of any other thread (when it starts the
  // next block).
  void write(const uint8_t* data, size_t size) {
    while (size > 0) {
      if (filling_ == nullptr) filling_ = &filling_job();
      Job& job = *filling_;
      size_t n = std::min(size, kIoBlock - job.input_size);
      std::memcpy(job.input.bytes() + job.input_size, data, n);
      job.input_size += n;
      data += n;
      size -= n;
      if (job.input_size == kIoBlock) submit(false);
    }
  }

  // Caller: ends the stream and returns once the whole blob is written; throws the first error.
  void finish() {
    if (filling_ == nullptr) filling_ = &filling_job();
    submit(true);
    if (!threaded()) return;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return next_write_ == submitted_ || error_; });
    }
    stop();
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Blocks in flight: one being filled, one per encoder, one being written, and some slack for
  // the stages' uneven pace.
  static constexpr uint64_t kJobs = 6;
  // The deflate window: the dictionary each block takes from the one before.
  static constexpr size_t kDictSize = ISAL_DEF_HIST_SIZE;
  static_assert(kIoBlock >= kDictSize);
  // gzip header as ISA-L writes it: deflate, no flags, mtime 0, no extra flags, OS unknown.
  static constexpr std::array<uint8_t, 10> kHeader{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};

  struct Job {
    IoBlock input;  // kIoBlock bytes, reused across layers (not zero-filled)
    size_t input_size = 0;
    // Grows to what the block needs, then is reused; never zero-filled, so pages a small
    // layer's output does not reach are never touched.
    std::unique_ptr<uint8_t[]> output;
    size_t output_capacity = 0;
    size_t output_size = 0;
    bool last = false;
    bool compressed = false;  // guarded by mutex_
  };

  // One deflate state (with its level buffer) per encoder.
  struct Encoder {
    isal_zstream stream{};
    // Level 1 with the large level buffer: the fast setting the design measured (~400 MB/s).
    // Levels 2 and 3 save 1% and 3% of the blob for 15% and 60% more compression time
    // (bench/README.md).
    // ISA-L initialises what it uses of it; zero-filling all of it cost a fault per page.
    std::unique_ptr<uint8_t[]> level_buf =
        std::make_unique_for_overwrite<uint8_t[]>(ISAL_DEF_LVL1_DEFAULT);
  };

  bool threaded() const { return !threads_.empty(); }

  Job& job(uint64_t seq) { return jobs_[seq % kJobs]; }

  // Caller: the job being filled, waiting for its slot to be written out first.
  Job& filling_job() {
    Job& next = job(submitted_);
    if (threaded()) {
      std::unique_lock lock(mutex_);
      // One slot more than the jobs in flight: the job before the oldest unwritten one keeps
      // the dictionary of the oldest.
      changed_.wait(lock, [&] { return submitted_ + 1 < next_write_ + kJobs || error_; });
      if (error_) std::rethrow_exception(error_);
    }
    return next;
  }

  // Caller: hands the job being filled to the encoders.
  void submit(bool last) {
    Job& next = *filling_;
    filling_ = nullptr;
    next.last = last;
    if (!threaded() && !last && encoders_ > 0) start_threads();
    if (!threaded()) {
      if (!inline_encoder_) inline_encoder_ = std::make_unique<Encoder>();
      compress(submitted_, *inline_encoder_);
      write_out(next);
      next.input_size = 0;
      ++submitted_;
      return;
    }
    {
      std::lock_guard lock(mutex_);
      ++submitted_;
    }
    changed_.notify_all();
  }

  // Compresses job `seq` as a raw deflate block. The previous job's input (the dictionary) is
  // intact: the caller refills its slot only after job `seq` has been written.
  void compress(uint64_t seq, Encoder& encoder) {
    Job& current = job(seq);
    isal_zstream& zs = encoder.stream;
    isal_deflate_init(&zs);
    zs.level = 1;
    zs.level_buf = encoder.level_buf.get();
    zs.level_buf_size = static_cast<uint32_t>(ISAL_DEF_LVL1_DEFAULT);
    zs.gzip_flag = IGZIP_DEFLATE;
    if (seq > 0) {
      Job& previous = job(seq - 1);  // full: only the last block is short
      int status = isal_deflate_set_dict(&zs, previous.input.bytes() + kIoBlock - kDictSize,
                                         static_cast<uint32_t>(kDictSize));
      if (status != COMP_OK)
        throw Error("gzip compression failed (isal_deflate_set_dict " + std::to_string(status) +
                    ")");
    }
    zs.next_in = current.input.bytes();
    zs.avail_in = static_cast<uint32_t>(current.input_size);
    zs.end_of_stream = current.last ? 1 : 0;
    zs.flush = current.last ? NO_FLUSH : SYNC_FLUSH;
    // Room for incompressible input (stored blocks) at once; grown if ever short.
    current.output_size = 0;
    reserve_output(current, current.input_size + current.input_size / 8 + 1024);
    for (;;) {
      if (current.output_size == current.output_capacity)
        reserve_output(current, current.output_capacity * 2);
      zs.next_out = current.output.get() + current.output_size;
      zs.avail_out = static_cast<uint32_t>(current.output_capacity - current.output_size);
      int status = isal_deflate(&zs);
      if (status != COMP_OK)
        throw Error("gzip compression failed (isal_deflate " + std::to_string(status) + ")");
      current.output_size = current.output_capacity - zs.avail_out;
      if (current.last) {
        if (zs.internal_state.state == ZSTATE_END) return;
      } else if (zs.avail_in == 0 && zs.avail_out > 0) {
        return;  // all input compressed and flushed to a byte boundary
      }
    }
  }

  // Makes job.output hold at least `capacity` bytes, keeping its first output_size bytes.
  static void reserve_output(Job& job, size_t capacity) {
    if (job.output_capacity >= capacity) return;
    auto bigger = std::make_unique_for_overwrite<uint8_t[]>(capacity);
    if (job.output_size > 0) std::memcpy(bigger.get(), job.output.get(), job.output_size);
    job.output = std::move(bigger);
    job.output_capacity = capacity;
  }

  // Blob thread (or inline): writes one compressed block, with the header before the first and
  // the trailer after the last.
  void write_out(const Job& done) {
    if (!header_written_) {
      blob_.write(kHeader.data(), kHeader.size());
      header_written_ = true;
    }
    crc_ = crc32_gzip_refl(crc_, done.input.bytes(), done.input_size);
    input_size_ += done.input_size;
    blob_.write(done.output.get(), done.output_size);
    if (done.last) {
      std::array<uint8_t, 8> trailer{};
      const auto isize = static_cast<uint32_t>(input_size_);  // ISIZE: the size modulo 2^32
      for (int i = 0; i < 4; ++i) {
        trailer[i] = static_cast<uint8_t>(crc_ >> (8 * i));
        trailer[4 + i] = static_cast<uint8_t>(isize >> (8 * i));
      }
      blob_.write(trailer.data(), trailer.size());
    }
  }

  // An encoder thread: compresses the next job not taken yet until the last one is taken.
  void encode(Encoder& encoder) {
    try {
      for (;;) {
        uint64_t seq = 0;
        {
          std::unique_lock lock(mutex_);
          changed_.wait(lock, [&] { return next_encode_ < submitted_ || stopping_ || error_; });
          if (stopping_ || error_) return;
          seq = next_encode_++;
        }
        compress(seq, encoder);
        const bool last = job(seq).last;
        {
          std::lock_guard lock(mutex_);
          job(seq).compressed = true;
        }
        changed_.notify_all();
        if (last) return;  // nothing follows the last job
      }
    } catch (...) {
      fail(std::current_exception());
    }
  }

  // The blob thread: writes the compressed jobs in order until the last one.
  void write_blocks() {
    try {
      for (;;) {
        Job* next = nullptr;
        {
          std::unique_lock lock(mutex_);
          changed_.wait(lock, [&] { return job(next_write_).compressed || stopping_ || error_; });
          if (stopping_ || error_) return;
          next = &job(next_write_);
        }
        write_out(*next);
        const bool last = next->last;
        {
          std::lock_guard lock(mutex_);
          next->compressed = false;
          next->input_size = 0;
          ++next_write_;
        }
        changed_.notify_all();
        if (last) return;
      }
    } catch (...) {
      fail(std::current_exception());
    }
  }

  void fail(std::exception_ptr error) {
    {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::move(error);
    }
    changed_.notify_all();
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }

  BlobFile& blob_;
  unsigned encoders_;  // encoder threads, once started (0: all inline)
  std::array<Job, kJobs> jobs_;
  std::unique_ptr<Encoder> inline_encoder_;  // while there are no threads
  Job* filling_ = nullptr;                   // the caller's job, once it has waited for it
  std::vector<std::thread> threads_;
  // The blob thread's (or the caller's, inline).
  bool header_written_ = false;
  uint32_t crc_ = 0;
  uint64_t input_size_ = 0;

  std::mutex mutex_;
  std::condition_variable changed_;
  // Counters of jobs: submitted by the caller, taken by an encoder, written by the blob thread.
  // submitted_ is written by the caller under mutex_ (read by it without); the others only under
  // mutex_.
  uint64_t submitted_ = 0;
  uint64_t next_encode_ = 0;
  uint64_t next_write_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

}  // namespace

class LayerBlobWriter::Impl {
 public:
  Impl(int out_fd, Compression compression, CompressOn where, unsigned gzip_threads)
      : threaded_(where == CompressOn::kWorkerThread),
        blob_(out_fd, compression != Compression::kNone) {
    if (compression == Compression::kGzip) {
      gzip_.emplace(blob_, threaded_ ? std::max(gzip_threads, 1U) : 0);
      return;
    }
    if (compression == Compression::kNone) {
      // Nothing to compress: the tar blocks go straight to the blob stage.
      input_.emplace([this](const Block& block) { blob_.write(block.data.bytes(), block.size); },
                     threaded_, "layer blob");
      return;
    }
    output_.emplace([this](const Block& block) { blob_.write(block.data.bytes(), block.size); },
                    threaded_, "layer blob");
    compressor_.emplace(compression, *output_);
    input_.emplace([this](const Block& block) { compressor_->compress(block); }, threaded_,
                   "layer compression");
  }

  void write(const void* data, size_t size) {
    if (finished_) throw Error("LayerBlobWriter: write after finish");
    tar_digest_.update(data, size);
    tar_size_ += size;
    const auto* bytes = static_cast<const uint8_t*>(data);
    if (gzip_) {
      gzip_->write(bytes, size);
      return;
    }
    while (size > 0) {
      Block& block = input_->current();
      size_t n = std::min(size, kIoBlock - block.size);
      std::memcpy(block.data.bytes() + block.size, bytes, n);
      block.size += n;
      bytes += n;
      size -= n;
      if (block.size == kIoBlock) input_->pass(false);
    }
  }

  LayerDigests finish() {
    if (finished_) throw Error("LayerBlobWriter: finish called twice");
    finished_ = true;
    // Both return when every stage is done and throw the first error of any.
    if (gzip_) {
      gzip_->finish();
    } else {
      input_->pass(true);
    }
    LayerDigests digests;
    digests.diff_id = tar_digest_.finish();
    digests.digest = blob_.finish_digest();
    if (digests.digest.empty()) digests.digest = digests.diff_id;
    digests.tar_size = tar_size_;
    digests.blob_size = blob_.size();
    return digests;
  }

 private:
  bool threaded_;
  Sha256 tar_digest_;  // the caller's thread only
  uint64_t tar_size_ = 0;
  bool finished_ = false;
  // The stages from last to first: members are destroyed in reverse order, so each pipe stops
  // and joins its threads while the stage it feeds still exists.
  BlobFile blob_;
  std::optional<ParallelGzip> gzip_;  // gzip: tar -> blob_, all stages
  std::optional<BlockPipe> output_;   // zstd: compressed blocks -> blob_
  std::optional<Compressor> compressor_;
  std::optional<BlockPipe> input_;  // zstd: tar blocks -> compressor_; none: tar blocks -> blob_
};

LayerBlobWriter::LayerBlobWriter(int out_fd, Compression compression, CompressOn where,
                                 unsigned gzip_threads)
    : impl_(std::make_unique<Impl>(out_fd, compression, where, gzip_threads)) {}
LayerBlobWriter::~LayerBlobWriter() = default;
void LayerBlobWriter::write(const void* data, size_t size) {
  impl_->write(data, size);
}
LayerDigests LayerBlobWriter::finish() {
  return impl_->finish();
}

// ---------------------------------------------------------------------------------------------
// Decompressing sources

namespace {

// Refuses decompression bombs: a small blob that inflates to fill the disk. Once the output
// passes kBombMinOutput, it may be at most kBombMaxRatio times the compressed bytes read so far.
// Real layers stay far below that (text and binaries compress 2-10x, a whole Debian rootfs
// 2.5x); only long runs of one byte come near deflate's limit of about 1032x. Sparse files,
// where such runs are common, travel as sparse tar entries and do not inflate at all.
constexpr uint64_t kBombMinOutput = uint64_t{128} << 20;
constexpr uint64_t kBombMaxRatio = 200;

class ExpansionLimit {
 public:
  explicit ExpansionLimit(std::string format) : format_(std::move(format)) {}

  void add_output(size_t produced, uint64_t compressed_so_far) {
    output_ += produced;
    if (output_ <= kBombMinOutput || output_ / kBombMaxRatio <= compressed_so_far) return;
    throw Error(format_ + " data expands more than " + std::to_string(kBombMaxRatio) + " times (" +
                std::to_string(output_ >> 20) + " MiB from " +
                std::to_string(compressed_so_far >> 10) + " KiB): refused as a decompression bomb");
  }

 private:
  std::string format_;
  uint64_t output_ = 0;
};

// A read buffer over another source; the decoders consume from it in place.
class InputBuffer {
 public:
  explicit InputBuffer(std::unique_ptr<ByteSource> source) : source_(std::move(source)) {}

  // Buffers at least `size` bytes unless the source ends first; returns what is buffered.
  std::span<const uint8_t> peek(size_t size) {
    if (end_ - begin_ < size && begin_ > 0) {
      std::memmove(data_.data(), data_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    while (end_ - begin_ < size && !eof_) read_more();
    return available();
  }

  // The buffered bytes; reads more when none are buffered. Empty only at the end of the source.
  std::span<const uint8_t> fill() {
    if (begin_ == end_ && !eof_) {
      begin_ = end_ = 0;
      read_more();
    }
    return available();
  }

  std::span<const uint8_t> available() const { return {data_.bytes() + begin_, end_ - begin_}; }
  void consume(size_t size) { begin_ += size; }
  bool at_end() const { return eof_ && begin_ == end_; }
  ByteSource& source() { return *source_; }
  // Bytes read from the source so far, buffered or consumed.
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  void read_more() {
    size_t n = source_->read(data_.data() + end_, data_.size() - end_);
    if (n == 0) eof_ = true;
    end_ += n;
    bytes_read_ += n;
  }

  std::unique_ptr<ByteSource> source_;
  IoBlock data_;
  size_t begin_ = 0;
  size_t end_ = 0;
  uint64_t bytes_read_ = 0;
  bool eof_ = false;
};

class PassThroughSource : public ByteSource {
 public:
  explicit PassThroughSource(InputBuffer input) : input_(std::move(input)) {}

  size_t read(void* buffer, size_t size) override {
    auto buffered = input_.available();
    if (!buffered.empty()) {  // the peeked magic bytes first
      size_t n = std::min(size, buffered.size());
      std::memcpy(buffer, buffered.data(), n);
      input_.consume(n);
      return n;
    }
    return input_.source().read(buffer, size);
  }

 private:
  InputBuffer input_;
};

// gzip, including multi-member files (RFC 1952 allows concatenated members; pigz and some
// registries produce them). Every member's CRC32 and size are checked by ISA-L.
class GzipSource : public ByteSource {
 public:
  explicit GzipSource(InputBuffer input)
      : input_(std::move(input)), state_(std::make_unique<inflate_state>()) {
    start_member();
  }

  size_t read(void* buffer, size_t size) override {
    if (size == 0) return 0;
    auto* out = static_cast<uint8_t*>(buffer);
    size = std::min(size, kMaxIsalChunk);
    for (;;) {
      auto in = input_.fill();
      if (member_done_) {
        if (in.empty()) return 0;  // clean end after a complete member
        start_member();            // another member follows
      }
      // Called with empty input too: ISA-L may still hold decoded bytes for a full output.
      state_->next_in = const_cast<uint8_t*>(in.data());  // ISA-L only reads the input
      state_->avail_in = static_cast<uint32_t>(std::min(in.size(), kMaxIsalChunk));
      state_->next_out = out;
      state_->avail_out = static_cast<uint32_t>(size);
      const uint32_t offered = state_->avail_in;
      int status = isal_inflate(state_.get());
      if (status < 0) throw Error("gzip data is corrupt (" + inflate_error(status) + ")");
      input_.consume(offered - state_->avail_in);
      member_done_ = state_->block_state == ISAL_BLOCK_FINISH;
      size_t produced = size - state_->avail_out;
      limit_.add_output(produced, input_.bytes_read());
      if (produced > 0) return produced;
      if (member_done_) continue;
      if (in.empty()) throw Error("gzip data is truncated");
      // ISA-L returns only with its input used up or its output full, so this guards against a
      // decoder that stops consuming for another reason (it would loop forever here).
      if (state_->avail_in == offered) throw Error("gzip decoder made no progress");
    }
  }

 private:
  void start_member() {
    isal_inflate_init(state_.get());
    state_->crc_flag = ISAL_GZIP;  // parse the header, verify CRC32 and ISIZE
    member_done_ = false;
  }

  static std::string inflate_error(int status) {
    switch (status) {
      case ISAL_INVALID_BLOCK:
        return "invalid deflate block";
      case ISAL_INVALID_SYMBOL:
        return "invalid deflate symbol";
      case ISAL_INVALID_LOOKBACK:
        return "invalid lookback distance";
      case ISAL_INVALID_WRAPPER:
        return "invalid gzip header";
      case ISAL_UNSUPPORTED_METHOD:
        return "unsupported compression method";
      case ISAL_INCORRECT_CHECKSUM:
        return "checksum mismatch";
      default:
        return "isal_inflate error " + std::to_string(status);
    }
  }

  InputBuffer input_;
  std::unique_ptr<inflate_state> state_;
  bool member_done_ = false;
  ExpansionLimit limit_{"gzip"};
};

class ZstdSource : public ByteSource {
 public:
  explicit ZstdSource(InputBuffer input) : input_(std::move(input)), ctx_(ZSTD_createDCtx()) {
    if (!ctx_) throw Error("cannot create zstd decompressor");
  }

  size_t read(void* buffer, size_t size) override {
    if (size == 0) return 0;
    for (;;) {
      auto in_bytes = input_.fill();
      if (in_bytes.empty() && frame_done_) return 0;
      // Called with empty input too: the decoder may still hold output for a full buffer.
      ZSTD_inBuffer in{in_bytes.data(), in_bytes.size(), 0};
      ZSTD_outBuffer out{buffer, size, 0};
      size_t hint = ZSTD_decompressStream(ctx_.get(), &out, &in);
      if (ZSTD_isError(hint)) {
        throw Error(std::string("zstd data is corrupt: ") + ZSTD_getErrorName(hint));
      }
      input_.consume(in.pos);
      frame_done_ = hint == 0;  // 0: a frame ended and was fully flushed
      limit_.add_output(out.pos, input_.bytes_read());
      if (out.pos > 0) return out.pos;
      if (in_bytes.empty()) throw Error("zstd data is truncated");
    }
  }

 private:
  InputBuffer input_;
  std::unique_ptr<ZSTD_DCtx, ZstdDCtxDeleter> ctx_;
  bool frame_done_ = true;  // an empty input is an empty stream
  ExpansionLimit limit_{"zstd"};
};

constexpr std::array<uint8_t, 2> kGzipMagic{0x1f, 0x8b};
constexpr std::array<uint8_t, 4> kZstdMagic{0x28, 0xb5, 0x2f, 0xfd};
constexpr std::array<uint8_t, 3> kBzip2Magic{'B', 'Z', 'h'};
constexpr std::array<uint8_t, 6> kXzMagic{0xfd, '7', 'z', 'X', 'Z', 0x00};

template <size_t N>
bool starts_with(std::span<const uint8_t> data, const std::array<uint8_t, N>& magic) {
  return data.size() >= N && std::equal(magic.begin(), magic.end(), data.begin());
}

class FdSource : public ByteSource {
 public:
  FdSource(UniqueFd fd, std::string what) : fd_(std::move(fd)), what_(std::move(what)) {}
  size_t read(void* buffer, size_t size) override {
    for (;;) {
      ssize_t n = ::read(fd_.get(), buffer, size);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) throw_errno("cannot read " + what_);
    }
  }

 private:
  UniqueFd fd_;
  std::string what_;
};

// bzip2 and xz (and whatever else libarchive's filters know) through libarchive's "raw" format,
// which presents the decompressed stream as one entry.
class LibarchiveFilterSource : public ByteSource {
 public:
  explicit LibarchiveFilterSource(const fs::path& path) : archive_(archive_read_new()) {
    archive* a = archive_.get();
    if (a == nullptr) throw Error("cannot create archive reader");
    if (archive_read_support_filter_all(a) < ARCHIVE_WARN ||
        archive_read_support_format_raw(a) != ARCHIVE_OK ||
        archive_read_open_filename(a, path.c_str(), kIoBlock) != ARCHIVE_OK) {
      throw Error("cannot open " + path.string() + ": " + archive_error_text(a));
    }
    archive_entry* entry = nullptr;
    int status = archive_read_next_header(a, &entry);
    if (status == ARCHIVE_EOF) {
      at_end_ = true;
    } else if (status < ARCHIVE_WARN) {
      throw Error("cannot read " + path.string() + ": " + archive_error_text(a));
    }
    what_ = path.string();
    if (const char* filter = archive_filter_name(a, 0)) limit_ = ExpansionLimit(filter);
  }

  size_t read(void* buffer, size_t size) override {
    if (at_end_) return 0;
    la_ssize_t n = archive_read_data(archive_.get(), buffer, size);
    if (n < 0)
      throw Error("cannot decompress " + what_ + ": " + archive_error_text(archive_.get()));
    if (n == 0) at_end_ = true;
    // Filter -1 is the file itself: the compressed bytes read so far.
    limit_.add_output(static_cast<size_t>(n),
                      static_cast<uint64_t>(archive_filter_bytes(archive_.get(), -1)));
    return static_cast<size_t>(n);
  }

 private:
  ArchiveReadPtr archive_;
  std::string what_;
  bool at_end_ = false;
  ExpansionLimit limit_{"compressed"};
};

}  // namespace

std::unique_ptr<ByteSource> decompressing_source(std::unique_ptr<ByteSource> compressed) {
  InputBuffer input(std::move(compressed));
  auto head = input.peek(kZstdMagic.size());
  if (starts_with(head, kGzipMagic)) return std::make_unique<GzipSource>(std::move(input));
  if (starts_with(head, kZstdMagic)) return std::make_unique<ZstdSource>(std::move(input));
  return std::make_unique<PassThroughSource>(std::move(input));
}

std::unique_ptr<ByteSource> open_tar_file(const fs::path& path) {
  UniqueFd fd = open_or_throw(path, O_RDONLY);
  std::array<uint8_t, kXzMagic.size()> head{};
  ssize_t n = ::pread(fd.get(), head.data(), head.size(), 0);
  if (n < 0) throw_errno("cannot read " + path.string());
  std::span<const uint8_t> magic(head.data(), static_cast<size_t>(n));
  if (starts_with(magic, kBzip2Magic) || starts_with(magic, kXzMagic)) {
    return std::make_unique<LibarchiveFilterSource>(path);
  }
  return decompressing_source(std::make_unique<FdSource>(std::move(fd), path.string()));
}

}  // namespace slipway::store
