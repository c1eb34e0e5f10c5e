// Tests for store/layer.h: layer tars from overlay upper dirs, blob compression, decompression,
// and applying (including hostile) tars. Runs as root: it makes devices, chowns and sets
// trusted.* / security.* xattrs.
#include "store/layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "store/digest.h"
#include "tests/tar_builder.h"
#include "tests/tree_builder.h"

namespace slipway::store {
namespace {
namespace fs = std::filesystem;
using namespace slipway::testing;

// ---------------------------------------------------------------------------------------------
// Helpers

class StringSink : public ByteSink {
 public:
  void write(const void* data, size_t size) override {
    bytes.append(static_cast<const char*>(data), size);
  }
  std::string bytes;
};

// Serves a string in reads of at most `chunk` bytes (small chunks exercise the buffering).
class StringSource : public ByteSource {
 public:
  explicit StringSource(std::string data, size_t chunk = 1 << 20)
      : data_(std::move(data)), chunk_(chunk) {}
  size_t read(void* buffer, size_t size) override {
    size_t n = std::min({size, chunk_, data_.size() - pos_});
    std::memcpy(buffer, data_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  size_t position() const { return pos_; }

 private:
  std::string data_;
  size_t chunk_;
  size_t pos_ = 0;
};

std::string read_all(ByteSource& source, size_t chunk = 64 * 1024) {
  std::string out;
  std::string buffer(chunk, '\0');
  while (size_t n = source.read(buffer.data(), buffer.size())) out.append(buffer, 0, n);
  return out;
}

// What setcap cap_net_bind_service+ep writes: VFS_CAP_REVISION_2 | effective, permitted bit 10.
const std::string kCapability(
    "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00",
    20);
const std::string kLongDir(60, 'd');
const std::string kLongFile = std::string(120, 'f') + ".txt";
const std::string kUnicodeName =
    "\xc3\xbcnic\xc3\xb6"
    "de-" +
    std::string(100, 'u');

// Builds an overlay upper dir with every kind of node slipway must carry in a layer.
void build_tree(const fs::path& root) {
  auto p = [&](std::string_view rel) { return root / rel; };
  for (const char* dir : {"bin", "dev", "etc", "etc/opaque", "tmp", "usr", "usr/shared"}) {
    fs::create_directory(p(dir));
  }
  fs::create_directory(p(kLongDir));

  write_bytes(p("bin/sh"), "#!/bin/sh\necho hello\n", 0755);
  set_xattr(p("bin/sh"), "user.comment", "a shell");
  check_call(::link(p("bin/sh").c_str(), p("bin/sh-link").c_str()), "link");
  check_call(::link(p("bin/sh").c_str(), p("usr/sh-other").c_str()), "link");
  write_bytes(p("bin/ping"), "ping binary", 04755);
  set_xattr(p("bin/ping"), "security.capability", kCapability);
  write_bytes(p("bin/big"), pseudo_random_bytes(3 * 1024 * 1024 + 123, 7), 0644);
  write_bytes(p("bin/empty"), "", 0600);

  check_call(::mknod(p("dev/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), "mknod null");
  check_call(::mknod(p("dev/loop0").c_str(), S_IFBLK | 0660, makedev(7, 0)), "mknod loop0");
  check_call(::chown(p("dev/loop0").c_str(), 0, 6), "chown loop0");
  check_call(::mkfifo(p("dev/fifo").c_str(), 0620), "mkfifo");

  // Overlay whiteout and opaque dir; overlay bookkeeping xattrs that must not travel.
  check_call(::mknod(p("etc/deleted").c_str(), S_IFCHR | 0, makedev(0, 0)), "mknod whiteout");
  set_xattr(p("etc/opaque"), "trusted.overlay.opaque", "y");
  write_bytes(p("etc/opaque/keep"), "kept", 0640);
  set_xattr(p("etc/opaque/keep"), "trusted.overlay.origin", "bookkeeping");
  check_call(::symlink("../bin/sh", p("etc/symlink").c_str()), "symlink");
  check_call(::symlink("/nonexistent/absolute", p("etc/dangling").c_str()), "symlink");

  write_bytes(p(kLongDir + "/" + kLongFile), "long name", 0644);
  write_bytes(p(kUnicodeName), "unicode name", 0644);

  check_call(::chmod(p("tmp").c_str(), 01777), "chmod tmp");
  check_call(::chown(p("usr/shared").c_str(), 1000, 1001), "chown shared");
  check_call(::chmod(p("usr/shared").c_str(), 02775), "chmod shared");
  write_bytes(p("usr/shared/owned"), "owned", 0640);
  check_call(::chown(p("usr/shared/owned").c_str(), 1000, 1001), "chown owned");

  set_whole_second_mtimes(root);
}

struct TarEntry {
  std::string name;
  char type = '?';  // f d l h c b p
  std::string link;
  int64_t size = 0;
  std::string uname;
  std::map<std::string, std::string> xattrs;
};

// The name field of every 512-byte header block, extension headers ('x', 'L') included, found
// by walking the blocks as a tar reader does.
std::vector<std::string> tar_header_names(const std::string& tar) {
  std::vector<std::string> names;
  size_t offset = 0;
  while (offset + 512 <= tar.size() && tar[offset] != '\0') {
    const char* header = tar.data() + offset;
    names.emplace_back(header, strnlen(header, 100));
    uint64_t size = std::strtoull(std::string(header + 124, 12).c_str(), nullptr, 8);
    offset += 512 + (size + 511) / 512 * 512;
  }
  EXPECT_GT(names.size(), 0u);
  return names;
}

std::vector<TarEntry> list_tar(const std::string& tar) {
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  EXPECT_EQ(archive_read_open_memory(a.get(), tar.data(), tar.size()), ARCHIVE_OK);
  std::vector<TarEntry> entries;
  archive_entry* entry = nullptr;
  // ARCHIVE_WARN: a UTF-8 name that the C locale cannot represent; the raw bytes are kept.
  for (;;) {
    const int status = archive_read_next_header(a.get(), &entry);
    if (status != ARCHIVE_OK && status != ARCHIVE_WARN) break;
    TarEntry e;
    e.name = archive_entry_pathname(entry);
    e.size = archive_entry_size(entry);
    if (const char* uname = archive_entry_uname(entry)) e.uname = uname;
    if (const char* link = archive_entry_hardlink(entry)) {
      e.type = 'h';
      e.link = link;
    } else {
      switch (archive_entry_filetype(entry)) {
        case AE_IFREG:
          e.type = 'f';
          break;
        case AE_IFDIR:
          e.type = 'd';
          break;
        case AE_IFLNK:
          e.type = 'l';
          e.link = archive_entry_symlink(entry);
          break;
        case AE_IFCHR:
          e.type = 'c';
          break;
        case AE_IFBLK:
          e.type = 'b';
          break;
        case AE_IFIFO:
          e.type = 'p';
          break;
      }
    }
    archive_entry_xattr_reset(entry);
    const char* key;
    const void* value;
    size_t size;
    while (archive_entry_xattr_next(entry, &key, &value, &size) == ARCHIVE_OK) {
      e.xattrs[key] = std::string(static_cast<const char*>(value), size);
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

// Builds hostile or hand-made tars entry by entry with libarchive.
// Compresses `data` into a blob file and returns the blob bytes and digests.
std::pair<std::string, LayerDigests> compress(const std::string& data, Compression compression,
                                              const fs::path& dir, size_t write_chunk = 100000) {
  const fs::path blob = dir / "blob";
  UniqueFd fd = open_or_throw(blob, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  LayerBlobWriter writer(fd.get(), compression);
  for (size_t pos = 0; pos < data.size(); pos += write_chunk) {
    writer.write(data.data() + pos, std::min(write_chunk, data.size() - pos));
  }
  LayerDigests digests = writer.finish();
  fd.reset();
  return {read_file(blob), digests};
}

std::string run_command(const std::string& command) {
  std::unique_ptr<FILE, decltype(&pclose)> pipe(::popen(command.c_str(), "r"), pclose);
  if (!pipe) throw_errno("popen");
  std::string out;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe.get())) out.append(buffer, n);
  return out;
}

class LayerTest : public ::testing::Test {
 protected:
  LayerTest() : tmp_("/tmp", "layer-test-") {}
  fs::path make_dir(const std::string& name) {
    fs::path path = tmp_.path() / name;
    fs::create_directory(path);
    return path;
  }
  TempDir tmp_;
};

// ---------------------------------------------------------------------------------------------
// write_layer_tar

TEST_F(LayerTest, TarListsEntriesSortedWithOverlayConventions) {
  fs::path upper = make_dir("upper");
  build_tree(upper);
  StringSink sink;
  uint64_t size = write_layer_tar(upper, sink);
  EXPECT_EQ(size, sink.bytes.size());
  EXPECT_EQ(size % 512, 0u);
  // No padding to a 10 KiB record: the tar ends with exactly two zero blocks.
  ASSERT_GE(size, 1024u);
  EXPECT_EQ(sink.bytes.substr(size - 1024), std::string(1024, '\0'));

  std::vector<std::string> names;
  std::map<std::string, TarEntry> by_name;
  for (TarEntry& e : list_tar(sink.bytes)) {
    names.push_back(e.name);
    EXPECT_EQ(e.uname, "") << e.name;
    by_name[e.name] = std::move(e);
  }
  const std::vector<std::string> expected = {
      "bin/",
      "bin/big",
      "bin/empty",
      "bin/ping",
      "bin/sh",
      "bin/sh-link",
      kLongDir + "/",
      kLongDir + "/" + kLongFile,
      "dev/",
      "dev/fifo",
      "dev/loop0",
      "dev/null",
      "etc/",
      "etc/dangling",
      "etc/.wh.deleted",  // in the sorted place of "deleted"
      "etc/opaque/",
      "etc/opaque/.wh..wh..opq",  // right after its directory
      "etc/opaque/keep",
      "etc/symlink",
      "tmp/",
      "usr/",
      "usr/sh-other",
      "usr/shared/",
      "usr/shared/owned",
      kUnicodeName,
  };
  EXPECT_EQ(names, expected);

  EXPECT_EQ(by_name["bin/sh-link"].type, 'h');
  EXPECT_EQ(by_name["bin/sh-link"].link, "bin/sh");
  EXPECT_EQ(by_name["usr/sh-other"].type, 'h');
  EXPECT_EQ(by_name["usr/sh-other"].link, "bin/sh");
  EXPECT_EQ(by_name["bin/sh"].type, 'f');
  EXPECT_EQ(by_name["bin/sh"].xattrs,
            (std::map<std::string, std::string>{{"user.comment", "a shell"}}));
  EXPECT_EQ(by_name["bin/ping"].xattrs["security.capability"], kCapability);
  EXPECT_EQ(by_name["bin/big"].size, 3 * 1024 * 1024 + 123);
  EXPECT_EQ(by_name["etc/.wh.deleted"].type, 'f');
  EXPECT_EQ(by_name["etc/.wh.deleted"].size, 0);
  EXPECT_EQ(by_name["etc/opaque/.wh..wh..opq"].type, 'f');
  // overlayfs' own xattrs never travel.
  EXPECT_TRUE(by_name["etc/opaque/"].xattrs.empty());
  EXPECT_TRUE(by_name["etc/opaque/keep"].xattrs.empty());
  EXPECT_EQ(by_name["etc/symlink"].type, 'l');
  EXPECT_EQ(by_name["etc/symlink"].link, "../bin/sh");
  EXPECT_EQ(by_name["dev/null"].type, 'c');
  EXPECT_EQ(by_name["dev/loop0"].type, 'b');
  EXPECT_EQ(by_name["dev/fifo"].type, 'p');
  // No pid or other per-run noise in header names (libarchive's default PAX header name has
  // one). Only the header blocks are searched: a short pid, as CI containers have, turns up by
  // chance in the 3 MiB of pseudo-random file data.
  for (const std::string& name : tar_header_names(sink.bytes)) {
    EXPECT_EQ(name.find(std::to_string(::getpid())), std::string::npos) << name;
  }
}

TEST_F(LayerTest, TarOfEmptyDirIsTwoZeroBlocks) {
  fs::path upper = make_dir("upper");
  StringSink sink;
  EXPECT_EQ(write_layer_tar(upper, sink), 1024u);
  EXPECT_EQ(sink.bytes, std::string(1024, '\0'));
}

TEST_F(LayerTest, SameTreeGivesSameBytesAndDigests) {
  fs::path a = make_dir("a");
  fs::path b = make_dir("b");
  build_tree(a);
  build_tree(b);  // different inodes and creation times, same content and metadata
  StringSink first, second, third;
  write_layer_tar(a, first);
  write_layer_tar(a, second);
  write_layer_tar(b, third);
  // Compared by digest: a byte diff of two tars is unreadable in a test log.
  EXPECT_EQ(sha256_digest(first.bytes), sha256_digest(second.bytes));
  EXPECT_EQ(sha256_digest(first.bytes), sha256_digest(third.bytes));
  if (const char* dump = std::getenv("LAYER_TEST_DUMP")) {
    write_file_atomic(fs::path(dump) / "first.tar", first.bytes, false);
    write_file_atomic(fs::path(dump) / "third.tar", third.bytes, false);
  }

  fs::path work = make_dir("work");
  auto [blob1, d1] = compress(first.bytes, Compression::kGzip, work);
  auto [blob2, d2] = compress(third.bytes, Compression::kGzip, work, 4096);
  EXPECT_EQ(d1.diff_id, d2.diff_id);
  EXPECT_EQ(d1.digest, d2.digest);
  EXPECT_EQ(sha256_digest(blob1), sha256_digest(blob2));
}

// A real overlay mount: whiteouts and opaque dirs made by the kernel come out as `.wh.` entries,
// and the applied layer works as a lowerdir again.
TEST_F(LayerTest, KernelOverlayUpperDirRoundTrip) {
  fs::path lower = make_dir("lower");
  fs::path upper = make_dir("upper");
  fs::path work = make_dir("work");
  fs::path merged = make_dir("merged");
  write_bytes(lower / "a", "a");
  write_bytes(lower / "b", "b");
  fs::create_directory(lower / "d");
  write_bytes(lower / "d/x", "x");
  write_bytes(lower / "d/y", "y");

  auto mount_overlay = [&](const std::string& lowerdirs) {
    const std::string options = "lowerdir=" + lowerdirs + ",upperdir=" + upper.string() +
                                ",workdir=" + work.string() +
                                ",index=off,redirect_dir=off,metacopy=off";
    return ::mount("overlay", merged.c_str(), "overlay", 0, options.c_str());
  };
  // Detaches a mount left behind by a failed assertion, before the temp dirs are removed.
  struct Unmounter {
    const fs::path& path;
    ~Unmounter() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmounter{merged};
  if (mount_overlay(lower.string()) < 0)
    GTEST_SKIP() << "cannot mount overlay: " << strerror(errno);
  fs::remove(merged / "a");
  fs::remove(merged / "b");  // overlayfs may share one whiteout inode between a and b
  fs::remove_all(merged / "d");
  fs::create_directory(merged / "d");  // over a whited-out dir: opaque
  write_bytes(merged / "d/z", "z");
  write_bytes(merged / "c", "c");
  ASSERT_EQ(::umount(merged.c_str()), 0);

  StringSink sink;
  write_layer_tar(upper, sink);
  std::vector<std::string> names;
  for (const TarEntry& e : list_tar(sink.bytes)) {
    names.push_back(e.name);
    EXPECT_NE(e.type, 'h') << e.name;  // shared whiteout inodes are not hardlinks
    EXPECT_NE(e.type, 'c') << e.name;
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{".wh.a", ".wh.b", "c", "d/", "d/.wh..wh..opq", "d/z"}));

  // Apply it as a layer and use that as the upper of the two lowers: same view as before.
  fs::path layer = make_dir("layer");
  StringSource source(sink.bytes);
  apply_layer_tar(source, layer);
  remove_tree(upper);
  remove_tree(work);
  fs::create_directory(upper);
  fs::create_directory(work);
  ASSERT_EQ(mount_overlay(layer.string() + ":" + lower.string()), 0) << strerror(errno);
  std::vector<std::string> visible;
  for (const auto& entry : fs::recursive_directory_iterator(merged)) {
    visible.push_back(entry.path().lexically_relative(merged).string());
  }
  std::sort(visible.begin(), visible.end());
  const std::string z = read_file(merged / "d/z");
  ASSERT_EQ(::umount(merged.c_str()), 0);
  EXPECT_EQ(visible, (std::vector<std::string>{"c", "d", "d/z"}));
  EXPECT_EQ(z, "z");
}

// ---------------------------------------------------------------------------------------------
// LayerBlobWriter and decompression

TEST_F(LayerTest, GzipBlobIsStandardGzip) {
  fs::path work = make_dir("work");
  const std::string data = pseudo_random_bytes(2'000'000, 1) + std::string(3'000'000, 'a');
  auto [blob, digests] = compress(data, Compression::kGzip, work);
  EXPECT_EQ(digests.diff_id, sha256_digest(data));
  EXPECT_EQ(digests.digest, sha256_digest(blob));
  EXPECT_EQ(digests.tar_size, data.size());
  EXPECT_EQ(digests.blob_size, blob.size());
  EXPECT_LT(blob.size(), 2'200'000u);  // the run of 'a' compresses
  ASSERT_GE(blob.size(), 2u);
  EXPECT_EQ(static_cast<uint8_t>(blob[0]), 0x1f);
  EXPECT_EQ(static_cast<uint8_t>(blob[1]), 0x8b);

  // The system gzip agrees on the content.
  const std::string out =
      run_command("gzip -dc " + (work / "blob").string() + " | sha256sum | cut -d' ' -f1");
  EXPECT_EQ("sha256:" + out.substr(0, 64), digests.diff_id);

  StringSource source(blob, 7777);
  auto plain = decompressing_source(std::make_unique<StringSource>(blob, 7777));
  EXPECT_EQ(sha256_digest(read_all(*plain, 3000)), sha256_digest(data));
}

TEST_F(LayerTest, ZstdRoundTrip) {
  fs::path work = make_dir("work");
  const std::string data = pseudo_random_bytes(1'500'000, 2) + std::string(2'000'000, 'z');
  auto [blob, digests] = compress(data, Compression::kZstd, work);
  EXPECT_EQ(digests.diff_id, sha256_digest(data));
  EXPECT_EQ(digests.digest, sha256_digest(blob));
  EXPECT_LT(blob.size(), 1'700'000u);
  const std::string out =
      run_command("zstd -dc " + (work / "blob").string() + " | sha256sum | cut -d' ' -f1");
  EXPECT_EQ("sha256:" + out.substr(0, 64), digests.diff_id);
  auto plain = decompressing_source(std::make_unique<StringSource>(blob, 1000));
  EXPECT_EQ(sha256_digest(read_all(*plain)), sha256_digest(data));
}

TEST_F(LayerTest, UncompressedBlobIsTheTar) {
  fs::path work = make_dir("work");
  const std::string data = pseudo_random_bytes(3'000'000, 3);
  auto [blob, digests] = compress(data, Compression::kNone, work, 333);
  EXPECT_EQ(sha256_digest(blob), sha256_digest(data));
  EXPECT_EQ(digests.diff_id, sha256_digest(data));
  EXPECT_EQ(digests.digest, digests.diff_id);
  EXPECT_EQ(digests.blob_size, data.size());
  auto plain = decompressing_source(std::make_unique<StringSource>(data, 1));
  EXPECT_EQ(sha256_digest(read_all(*plain)), sha256_digest(data));
}

TEST_F(LayerTest, EmptyInputs) {
  fs::path work = make_dir("work");
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    auto [blob, digests] = compress("", c, work);
    EXPECT_EQ(digests.diff_id, sha256_digest(""));
    EXPECT_EQ(digests.tar_size, 0u);
    auto plain = decompressing_source(std::make_unique<StringSource>(blob));
    EXPECT_EQ(read_all(*plain), "");
  }
}

TEST_F(LayerTest, MultiMemberGzip) {
  fs::path work = make_dir("work");
  const std::string part1 = pseudo_random_bytes(300'000, 4);
  const std::string part2 = std::string(500'000, 'b') + "end";
  const std::string blob = compress(part1, Compression::kGzip, work).first +
                           compress(part2, Compression::kGzip, work).first;
  for (size_t chunk : {size_t{1} << 20, size_t{4096}, size_t{1}}) {
    auto plain = decompressing_source(std::make_unique<StringSource>(blob, chunk));
    EXPECT_EQ(sha256_digest(read_all(*plain)), sha256_digest(part1 + part2)) << "chunk " << chunk;
  }
  // And one made by the system gzip tool.
  write_file_atomic(work / "a", part1, false);
  const std::string tool_blob =
      run_command("gzip -c " + (work / "a").string() + " " + (work / "a").string());
  auto plain = decompressing_source(std::make_unique<StringSource>(tool_blob));
  EXPECT_EQ(sha256_digest(read_all(*plain)), sha256_digest(part1 + part1));
}

TEST_F(LayerTest, CorruptAndTruncatedCompressedDataThrow) {
  fs::path work = make_dir("work");
  const std::string data = pseudo_random_bytes(200'000, 5);
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    const std::string blob = compress(data, c, work).first;
    auto truncated =
        decompressing_source(std::make_unique<StringSource>(blob.substr(0, blob.size() / 2)));
    EXPECT_THROW(read_all(*truncated), Error);
    auto cut_trailer =
        decompressing_source(std::make_unique<StringSource>(blob.substr(0, blob.size() - 3)));
    EXPECT_THROW(read_all(*cut_trailer), Error);
    std::string flipped = blob;
    flipped[flipped.size() / 2] ^= 0x55;
    auto corrupt = decompressing_source(std::make_unique<StringSource>(flipped));
    EXPECT_THROW(read_all(*corrupt), Error);
  }
}

TEST_F(LayerTest, OpenTarFileDetectsCompression) {
  fs::path work = make_dir("work");
  fs::path upper = make_dir("upper");
  build_tree(upper);
  StringSink sink;
  write_layer_tar(upper, sink);
  const fs::path tar = work / "layer.tar";
  write_file_atomic(tar, sink.bytes, false);
  const std::string quoted = tar.string();
  ASSERT_EQ(std::system(("gzip -k " + quoted + " && zstd -q " + quoted + " && xz -k " + quoted +
                         " && bzip2 -k " + quoted)
                            .c_str()),
            0);
  for (const char* suffix : {"", ".gz", ".zst", ".xz", ".bz2"}) {
    auto source = open_tar_file(tar.string() + suffix);
    EXPECT_EQ(sha256_digest(read_all(*source)), sha256_digest(sink.bytes)) << suffix;
  }
  EXPECT_THROW(open_tar_file(work / "missing.tar"), Error);
}

// ---------------------------------------------------------------------------------------------
// LayerBlobWriter's worker thread

// Threads of this process (the writer's worker shows up here while it runs).
size_t thread_count() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// The thread count once it has come down to `expected`, or the count still seen after a long
// grace period. pthread_join returns when the thread has run its last instruction (the kernel
// clears its tid), a moment before the kernel removes it from /proc/self/task, so a joined
// thread can still be listed right after the join. A thread that was never joined stays listed.
size_t thread_count_settled(size_t expected) {
  size_t count = thread_count();
  for (int i = 0; i < 10'000 && count > expected; ++i) {
    ::usleep(1000);
    count = thread_count();
  }
  return count;
}

// Compresses `data` with the stages on the given thread(s) into `blob` and returns the blob bytes
// and digests.
std::pair<std::string, LayerDigests> compress_on(const std::string& data, Compression compression,
                                                 CompressOn where, const fs::path& blob,
                                                 size_t write_chunk,
                                                 unsigned gzip_threads = kGzipThreads) {
  UniqueFd fd = open_or_throw(blob, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  LayerBlobWriter writer(fd.get(), compression, where, gzip_threads);
  for (size_t pos = 0; pos < data.size(); pos += write_chunk) {
    writer.write(data.data() + pos, std::min(write_chunk, data.size() - pos));
  }
  LayerDigests digests = writer.finish();
  fd.reset();
  return {read_file(blob), digests};
}

// The worker thread must not change a single byte of the blob: same bytes as compressing on the
// caller's thread (the code path of before the worker), for every compression and for write
// sizes below, at and above the 1 MiB block, over more blocks than the ring holds.
TEST_F(LayerTest, WorkerThreadGivesTheSameBlobAsTheCallerThread) {
  fs::path work = make_dir("work");
  std::string data;
  for (uint32_t seed = 0; seed < 5; ++seed) {  // alternating incompressible and compressible
    data += pseudo_random_bytes(1'000'000 + seed * 12345, seed);
    data += std::string(900'000, static_cast<char>('a' + seed));
  }
  ASSERT_GT(data.size(), 8u << 20);
  for (Compression c : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    SCOPED_TRACE(layer_media_type(c));
    const auto [reference, reference_digests] =
        compress_on(data, c, CompressOn::kCallerThread, work / "reference", 100'000);
    EXPECT_EQ(reference_digests.diff_id, sha256_digest(data));
    EXPECT_EQ(reference_digests.digest, sha256_digest(reference));
    for (size_t chunk : {size_t{4096}, size_t{1} << 20, (size_t{1} << 20) + 1, data.size()}) {
      SCOPED_TRACE("write size " + std::to_string(chunk));
      const auto [blob, digests] =
          compress_on(data, c, CompressOn::kWorkerThread, work / "blob", chunk);
      EXPECT_EQ(sha256_digest(blob), sha256_digest(reference));
      EXPECT_EQ(digests.digest, reference_digests.digest);
      EXPECT_EQ(digests.diff_id, reference_digests.diff_id);
      EXPECT_EQ(digests.blob_size, blob.size());
      EXPECT_EQ(digests.tar_size, data.size());
    }
    auto plain = open_tar_file(work / "blob");
    EXPECT_EQ(sha256_digest(read_all(*plain)), reference_digests.diff_id);
  }
}

// gzip compresses fixed 1 MiB blocks on several threads: the blob is the same bytes from run to
// run and for one, two or three encoder threads (or none), whatever the block an input ends in
// (empty, short, exactly full), and it is one standard gzip member the system gzip accepts.
TEST_F(LayerTest, ParallelGzipBlobIsTheSameForAnyThreadCount) {
  fs::path work = make_dir("work");
  std::string mixed;
  for (uint32_t seed = 0; seed < 6; ++seed) {
    mixed += pseudo_random_bytes(700'000 + seed * 54321, seed + 20);
    mixed += std::string(600'000, static_cast<char>('k' + seed));
  }
  const std::vector<std::string> inputs = {
      std::string(),
      "short",
      std::string(size_t{3} << 20, 'z'),  // ends exactly at a block boundary
      mixed,
  };
  for (const std::string& data : inputs) {
    SCOPED_TRACE("input of " + std::to_string(data.size()) + " bytes");
    const auto [reference, reference_digests] =
        compress_on(data, Compression::kGzip, CompressOn::kCallerThread, work / "reference", 65536);
    EXPECT_EQ(reference_digests.digest, sha256_digest(reference));
    EXPECT_EQ(reference_digests.diff_id, sha256_digest(data));
    EXPECT_EQ(run_command("gzip -t " + (work / "reference").string() + " && echo ok"), "ok\n");
    const std::string out =
        run_command("gzip -dc " + (work / "reference").string() + " | sha256sum | cut -d' ' -f1");
    EXPECT_EQ("sha256:" + out.substr(0, 64), reference_digests.diff_id);
    auto plain = open_tar_file(work / "reference");
    EXPECT_EQ(sha256_digest(read_all(*plain)), reference_digests.diff_id);
    for (unsigned threads : {1U, 2U, 2U, 2U, 3U}) {
      SCOPED_TRACE(std::to_string(threads) + " encoder threads");
      const auto [blob, digests] =
          compress_on(data, Compression::kGzip, CompressOn::kWorkerThread, work / "blob",
                      threads == 3 ? 1000 : 300'000, threads);
      EXPECT_EQ(sha256_digest(blob), sha256_digest(reference));
      EXPECT_EQ(digests.digest, reference_digests.digest);
      EXPECT_EQ(digests.blob_size, blob.size());
    }
  }
  // The dictionary from the block before keeps the ratio of one stream: a block that repeats
  // the end of the one before costs next to nothing.
  const std::string block = pseudo_random_bytes(size_t{1} << 20, 99);
  const std::string twice = block + block.substr(block.size() - 30'000);
  const auto [blob, digests] =
      compress_on(twice, Compression::kGzip, CompressOn::kWorkerThread, work / "blob", 4096);
  EXPECT_LT(blob.size(), block.size() + 20'000);
}

// A layer made from a tree through the worker: the digest is that of the blob file, the diffID
// that of the decompressed blob and of the tar itself, and the blob is the caller-thread one.
TEST_F(LayerTest, LayerOfATreeThroughTheWorkerHasConsistentDigests) {
  fs::path upper = make_dir("upper");
  fs::path work = make_dir("work");
  build_tree(upper);
  StringSink tar;
  write_layer_tar(upper, tar);
  for (CompressOn where : {CompressOn::kWorkerThread, CompressOn::kCallerThread}) {
    const fs::path blob = work / (where == CompressOn::kWorkerThread ? "worker" : "caller");
    UniqueFd fd = open_or_throw(blob, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    LayerBlobWriter writer(fd.get(), Compression::kGzip, where);
    EXPECT_EQ(write_layer_tar(upper, writer), tar.bytes.size());
    const LayerDigests digests = writer.finish();
    fd.reset();
    EXPECT_EQ(digests.digest, sha256_digest(read_file(blob)));
    EXPECT_EQ(digests.diff_id, sha256_digest(tar.bytes));
    auto plain = open_tar_file(blob);
    EXPECT_EQ(sha256_digest(read_all(*plain)), digests.diff_id);
  }
  EXPECT_EQ(sha256_digest(read_file(work / "worker")), sha256_digest(read_file(work / "caller")));
}

// Passes writes on to a LayerBlobWriter and, once `after` bytes went through, calls `fault` once.
class FaultingSink : public ByteSink {
 public:
  FaultingSink(ByteSink& inner, uint64_t after, std::function<void()> fault)
      : inner_(inner), after_(after), fault_(std::move(fault)) {}
  void write(const void* data, size_t size) override {
    inner_.write(data, size);
    passed_ += size;
    if (passed_ >= after_ && fault_) std::exchange(fault_, nullptr)();
  }

 private:
  ByteSink& inner_;
  uint64_t after_;
  uint64_t passed_ = 0;
  std::function<void()> fault_;
};

// A tree for the error tests: a big file (several blocks in flight when the fault comes), then
// more entries after it.
void build_big_tree(const fs::path& root) {
  write_bytes(root / "a-big", pseudo_random_bytes(12u << 20, 11));
  write_bytes(root / "b-victim", "removed while the layer is being made");
  write_bytes(root / "c-after", "after");
}

// An error in the tree walk (a file removed between the directory listing and its stat) while
// the worker has blocks in flight: write_layer_tar throws naming the file, nothing hangs, and the
// worker is gone once the writer is.
TEST_F(LayerTest, TreeWalkErrorStopsTheWorker) {
  fs::path upper = make_dir("upper");
  fs::path work = make_dir("work");
  build_big_tree(upper);
  const size_t threads_before = thread_count();
  for (int round = 0; round < 5; ++round) {
    UniqueFd fd = open_or_throw(work / "blob", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    try {
      LayerBlobWriter writer(fd.get(), Compression::kGzip);
      // No threads yet: a layer smaller than one block is compressed on the caller's thread.
      EXPECT_EQ(thread_count(), threads_before);
      FaultingSink sink(writer, 4u << 20, [&] {
        // gzip encoders, blob digest and write, started by the first full block
        EXPECT_EQ(thread_count(), threads_before + kGzipThreads + 1);
        fs::remove(upper / "b-victim");
      });
      write_layer_tar(upper, sink);
      ADD_FAILURE() << "write_layer_tar did not fail";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("b-victim"), std::string::npos) << e.what();
    }
    EXPECT_EQ(thread_count_settled(threads_before), threads_before);
    write_bytes(upper / "b-victim", "back again");
  }
}

// A layer smaller than one block (most RUN steps) is compressed on the caller's thread: no
// thread is started and joined for it.
TEST_F(LayerTest, SmallGzipLayerStartsNoThreads) {
  fs::path upper = make_dir("upper");
  fs::path work = make_dir("work");
  write_bytes(upper / "small", "a few bytes");
  const size_t threads_before = thread_count();
  UniqueFd fd = open_or_throw(work / "blob", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  LayerBlobWriter writer(fd.get(), Compression::kGzip);
  write_layer_tar(upper, writer);
  EXPECT_EQ(thread_count(), threads_before);
  LayerDigests digests = writer.finish();
  EXPECT_EQ(thread_count(), threads_before);
  EXPECT_GT(digests.blob_size, 0u);
}

// An exception thrown by the caller's own code between writes (here by the sink in front of the
// writer): the writer is destroyed unfinished while the worker is busy; it stops and is joined.
TEST_F(LayerTest, CallerErrorStopsTheWorker) {
  fs::path upper = make_dir("upper");
  fs::path work = make_dir("work");
  build_big_tree(upper);
  const size_t threads_before = thread_count();
  for (Compression c : {Compression::kZstd, Compression::kGzip}) {
    for (uint64_t after : {uint64_t{1}, uint64_t{3} << 20, uint64_t{11} << 20}) {
      UniqueFd fd = open_or_throw(work / "blob", O_WRONLY | O_CREAT | O_TRUNC, 0644);
      try {
        LayerBlobWriter writer(fd.get(), c);
        FaultingSink sink(writer, after, [] { throw Error("injected fault"); });
        write_layer_tar(upper, sink);
        ADD_FAILURE() << "write_layer_tar did not fail";
      } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "injected fault");
      }
      EXPECT_EQ(thread_count_settled(threads_before), threads_before);
    }
  }
}

// The worker's own errors (the blob cannot be written: /dev/full) reach the caller from write()
// or finish(), on either thread, with what failed in the message.
TEST_F(LayerTest, BlobWriteErrorReachesTheCaller) {
  fs::path upper = make_dir("upper");
  build_big_tree(upper);
  const size_t threads_before = thread_count();
  for (CompressOn where : {CompressOn::kWorkerThread, CompressOn::kCallerThread}) {
    for (Compression c : {Compression::kGzip, Compression::kNone}) {
      UniqueFd fd = open_or_throw("/dev/full", O_WRONLY, 0);
      try {
        LayerBlobWriter writer(fd.get(), c, where);
        write_layer_tar(upper, writer);
        writer.finish();
        ADD_FAILURE() << "no error from writing to /dev/full";
      } catch (const SystemError& e) {
        EXPECT_EQ(e.code(), ENOSPC) << e.what();
        EXPECT_NE(std::string(e.what()).find("layer blob"), std::string::npos) << e.what();
      }
      EXPECT_EQ(thread_count_settled(threads_before), threads_before);
    }
  }
  // A stream small enough to fit in the first block fails only in finish().
  UniqueFd fd = open_or_throw("/dev/full", O_WRONLY, 0);
  LayerBlobWriter writer(fd.get(), Compression::kGzip);
  writer.write("tiny", 4);
  EXPECT_THROW(writer.finish(), SystemError);
}

// ---------------------------------------------------------------------------------------------
// apply_layer_tar

TEST_F(LayerTest, RoundTripKeepsEveryAttribute) {
  fs::path upper = make_dir("upper");
  fs::path target = make_dir("target");
  fs::path work = make_dir("work");
  build_tree(upper);

  StringSink sink;
  write_layer_tar(upper, sink);
  auto [blob, digests] = compress(sink.bytes, Compression::kGzip, work);
  auto source = decompressing_source(std::make_unique<StringSource>(blob, 65536));
  ApplyStats stats = apply_layer_tar(*source, target, kAnyDevice);
  EXPECT_EQ(stats.entries, 25u);
  EXPECT_EQ(stats.bytes, 3u * 1024 * 1024 + 123 + 21 + 11 + 4 + 9 + 12 + 5);

  auto expected = snapshot(upper);
  // overlayfs bookkeeping other than opacity is dropped on the way.
  expected["etc/opaque/keep"].xattrs.erase("trusted.overlay.origin");
  auto actual = snapshot(target);
  ASSERT_EQ(actual.size(), expected.size());
  for (const auto& [path, node] : expected) {
    ASSERT_TRUE(actual.contains(path)) << path;
    EXPECT_EQ(actual[path], node) << path;
  }
  // Spot checks with literal values, so the comparison above cannot pass vacuously.
  EXPECT_EQ(actual["bin/ping"].perm, 04755u);
  EXPECT_EQ(actual["bin/ping"].xattrs["security.capability"], kCapability);
  EXPECT_EQ(actual["tmp"].perm, 01777u);
  EXPECT_EQ(actual["usr/shared"].perm, 02775u);
  EXPECT_EQ(actual["usr/shared"].uid, 1000u);
  EXPECT_EQ(actual["usr/shared"].gid, 1001u);
  EXPECT_EQ(actual["dev/null"].rdev, makedev(1, 3));
  EXPECT_EQ(actual["dev/loop0"].type, "block");
  EXPECT_EQ(actual["dev/loop0"].gid, 6u);
  EXPECT_EQ(actual["etc/deleted"].type, "whiteout");
  EXPECT_EQ(actual["etc/opaque"].xattrs["trusted.overlay.opaque"], "y");
  EXPECT_EQ(actual["etc/symlink"].link_target, "../bin/sh");
  EXPECT_EQ(actual["usr/sh-other"].hardlink_group, "bin/sh");
  EXPECT_EQ(actual["bin/sh"].mtime, expected["bin/sh"].mtime);
  EXPECT_GE(actual["bin/sh"].mtime, 1700000000);
  EXPECT_EQ(read_file(target / kLongDir / kLongFile), "long name");
  EXPECT_EQ(read_file(target / kUnicodeName), "unicode name");

  // Applying to a tree and writing it again gives the same tar.
  StringSink again;
  write_layer_tar(target, again);
  EXPECT_EQ(sha256_digest(again.bytes), digests.diff_id);
  if (const char* dump = std::getenv("LAYER_TEST_DUMP")) {
    write_file_atomic(fs::path(dump) / "src.tar", sink.bytes, false);
    write_file_atomic(fs::path(dump) / "again.tar", again.bytes, false);
  }
}

TEST_F(LayerTest, ZstdBlobAppliesToSameTree) {
  fs::path upper = make_dir("upper");
  fs::path target = make_dir("target");
  fs::path work = make_dir("work");
  build_tree(upper);
  StringSink sink;
  write_layer_tar(upper, sink);
  auto [blob, digests] = compress(sink.bytes, Compression::kZstd, work);
  auto source = decompressing_source(std::make_unique<StringSource>(blob));
  apply_layer_tar(*source, target, kAnyDevice);
  StringSink again;
  write_layer_tar(target, again);
  EXPECT_EQ(sha256_digest(again.bytes), digests.diff_id);
}

TEST_F(LayerTest, WhiteoutsAndOpaqueMarkersBecomeOverlayForm) {
  fs::path target = make_dir("target");
  const std::string tar = TarBuilder()
                              .dir("etc/")
                              .file("etc/.wh.passwd", "")
                              .file("etc/kept", "mine")
                              .file("etc/.wh.kept", "")  // same layer: the file wins
                              .file("var/lib/.wh..wh..opq", "")
                              .file(".wh..wh..wh.plnk", "")  // AUFS metadata: ignored
                              .finish();
  StringSource source(tar);
  apply_layer_tar(source, target);
  struct stat st {};
  ASSERT_EQ(::lstat((target / "etc/passwd").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_EQ(read_file(target / "etc/kept"), "mine");
  EXPECT_FALSE(fs::exists(fs::symlink_status(target / "etc/.wh.passwd")));
  EXPECT_EQ(xattrs_of(target / "var/lib")["trusted.overlay.opaque"], "y");
  EXPECT_TRUE(fs::is_empty(target / "var/lib"));
  EXPECT_EQ(fs::status(target / "var").permissions(), fs::perms(0755));  // implicit parent
}

TEST_F(LayerTest, WhiteoutThenNewDirectoryBecomesOpaque) {
  fs::path target = make_dir("target");
  const std::string tar = TarBuilder()
                              .file(".wh.d", "")
                              .dir("d/", 0750)
                              .file("d/x", "x")
                              .file(".wh.e", "")
                              .file("e/y", "y")  // implicit parent over the whiteout
                              .file(".wh.f", "")
                              .file("f", "a file simply replaces the whiteout")
                              .finish();
  StringSource source(tar);
  apply_layer_tar(source, target);
  EXPECT_EQ(xattrs_of(target / "d")["trusted.overlay.opaque"], "y");
  EXPECT_EQ(fs::status(target / "d").permissions(), fs::perms(0750));
  EXPECT_EQ(read_file(target / "d/x"), "x");
  EXPECT_EQ(xattrs_of(target / "e")["trusted.overlay.opaque"], "y");
  EXPECT_EQ(read_file(target / "e/y"), "y");
  EXPECT_EQ(read_file(target / "f"), "a file simply replaces the whiteout");
  EXPECT_TRUE(xattrs_of(target / "f").empty());
}

TEST_F(LayerTest, LaterEntriesReplaceEarlierOnes) {
  fs::path target = make_dir("target");
  const std::string tar = TarBuilder()
                              .file("a", "first")
                              .file("a", "second")
                              .dir("d/")
                              .file("d/x", "x")
                              .file("d", "now a file")
                              .symlink("s", "a")
                              .file("s", "replaces the symlink, not its target")
                              .finish();
  StringSource source(tar);
  apply_layer_tar(source, target);
  EXPECT_EQ(read_file(target / "a"), "second");
  EXPECT_EQ(read_file(target / "d"), "now a file");
  EXPECT_FALSE(fs::is_symlink(target / "s"));
  EXPECT_EQ(read_file(target / "s"), "replaces the symlink, not its target");
}

TEST_F(LayerTest, ConsumesTheWholeSource) {
  fs::path target = make_dir("target");
  std::string tar = TarBuilder().file("f", "data").finish();
  const size_t tar_size = tar.size();
  tar += std::string(10240, '\0');  // record padding some tar writers add
  StringSource source(tar, 512);
  ApplyStats stats = apply_layer_tar(source, target);
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_EQ(stats.bytes, 4u);
  EXPECT_EQ(source.position(), tar_size + 10240);
}

// Sparse files: written as sparse entries, applied with their holes, same content.
void write_at(int fd, off_t offset, const std::string& data) {
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), offset), static_cast<ssize_t>(data.size()));
}

TEST_F(LayerTest, SparseFilesTravelAsSparseEntriesAndKeepTheirHoles) {
  fs::path upper = make_dir("upper");
  constexpr off_t kSize = 48 << 20;
  {
    UniqueFd fd = open_or_throw(upper / "lastlog", O_WRONLY | O_CREAT, 0644);
    write_at(fd.get(), 0, "head");
    write_at(fd.get(), 20 << 20, pseudo_random_bytes(10000, 3));
    write_at(fd.get(), kSize - 5, "tail!");
    UniqueFd hole_only = open_or_throw(upper / "all-hole", O_WRONLY | O_CREAT, 0600);
    ASSERT_EQ(::ftruncate(hole_only.get(), 16 << 20), 0);
    UniqueFd trailing = open_or_throw(upper / "trailing-hole", O_WRONLY | O_CREAT, 0600);
    write_at(trailing.get(), 0, "data then nothing");
    ASSERT_EQ(::ftruncate(trailing.get(), 8 << 20), 0);
  }
  write_bytes(upper / "dense", pseudo_random_bytes(100000, 4));

  StringSink sink;
  write_layer_tar(upper, sink);
  // The holes are not in the tar: 72 MiB of files, a few KiB of tar.
  EXPECT_LT(sink.bytes.size(), 200'000u);
  EXPECT_NE(sink.bytes.find("GNU.sparse.major=1"), std::string::npos);

  fs::path target = make_dir("target");
  StringSource source(sink.bytes);
  apply_layer_tar(source, target);
  for (const char* name : {"lastlog", "all-hole", "trailing-hole", "dense"}) {
    struct stat original {
    }, applied{};
    ASSERT_EQ(::stat((upper / name).c_str(), &original), 0);
    ASSERT_EQ(::stat((target / name).c_str(), &applied), 0) << name;
    EXPECT_EQ(applied.st_size, original.st_size) << name;
    EXPECT_EQ(sha256_digest(read_file(target / name)), sha256_digest(read_file(upper / name)))
        << name;
    // Holes stay holes: no more blocks than the data needs (plus filesystem slack).
    EXPECT_LE(applied.st_blocks, original.st_blocks + 64) << name;
  }

  // GNU tar reads the same entries (so do Go's archive/tar and libarchive).
  fs::path by_tar = make_dir("gnu-tar");
  write_bytes(tmp_.path() / "layer.tar", sink.bytes);
  run_command("tar -C " + by_tar.string() + " --sparse -xf " +
              (tmp_.path() / "layer.tar").string());
  EXPECT_EQ(sha256_digest(read_file(by_tar / "lastlog")),
            sha256_digest(read_file(upper / "lastlog")));
  EXPECT_EQ(fs::file_size(by_tar / "all-hole"), 16u << 20);

  // Applied again and written again, the same tar.
  StringSink again;
  write_layer_tar(target, again);
  EXPECT_EQ(sha256_digest(again.bytes), sha256_digest(sink.bytes));
}

// The sparse map follows the content, not the filesystem's allocation: zeros written out in a
// sparse file are holes in its entry just as unwritten ranges are.
TEST_F(LayerTest, SparseMapDependsOnContentOnly) {
  fs::path first = make_dir("first");
  fs::path second = make_dir("second");
  for (const fs::path& dir : {first, second}) {
    UniqueFd fd = open_or_throw(dir / "f", O_WRONLY | O_CREAT, 0644);
    write_at(fd.get(), 0, "start");
    write_at(fd.get(), 8 << 20, "end");
    if (dir == second) write_at(fd.get(), 1 << 20, std::string(1 << 20, '\0'));
    ASSERT_EQ(::utimensat(AT_FDCWD, (dir / "f").c_str(), nullptr, 0), 0);
  }
  struct timespec times[2] = {{1600000000, 0}, {1600000000, 0}};
  for (const fs::path& dir : {first, second}) {
    ASSERT_EQ(::utimensat(AT_FDCWD, (dir / "f").c_str(), times, 0), 0);
    ASSERT_EQ(::utimensat(AT_FDCWD, dir.c_str(), times, 0), 0);
  }
  StringSink a, b;
  write_layer_tar(first, a);
  write_layer_tar(second, b);
  EXPECT_EQ(sha256_digest(a.bytes), sha256_digest(b.bytes));
}

// Each hostile tar must throw and leave `outside` untouched.
class HostileLayerTest : public LayerTest {
 protected:
  HostileLayerTest() : target_(make_dir("target")), outside_(make_dir("outside")) {
    write_bytes(outside_ / "secret", "secret");
  }
  void expect_refused(const std::string& tar, const std::string& message_part) {
    StringSource source(tar);
    expect_refused(source, message_part);
  }
  void expect_refused(ByteSource& source, const std::string& message_part) {
    try {
      apply_layer_tar(source, target_);
      ADD_FAILURE() << "apply_layer_tar accepted a hostile tar";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message_part), std::string::npos) << e.what();
    }
    EXPECT_EQ(read_file(outside_ / "secret"), "secret");
    struct stat st {};
    ASSERT_EQ(::stat((outside_ / "secret").c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 1u);
    size_t count = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(outside_)) ++count;
    EXPECT_EQ(count, 1u);
    EXPECT_FALSE(fs::exists(tmp_.path() / "evil"));
  }
  fs::path target_;
  fs::path outside_;
};

TEST_F(HostileLayerTest, AbsolutePath) {
  expect_refused(TarBuilder().file(outside_.string() + "/evil", "x").finish(),
                 "\"" + outside_.string() + "/evil\": absolute path");
}

TEST_F(HostileLayerTest, DotDot) {
  expect_refused(TarBuilder().file("../evil", "x").finish(), "\"../evil\": path contains \"..\"");
  expect_refused(TarBuilder().file("a/../../evil", "x").finish(), "\"..\"");
}

TEST_F(HostileLayerTest, FileBeneathSymlinkFromSameLayer) {
  expect_refused(TarBuilder().symlink("link", outside_.string()).file("link/evil", "x").finish(),
                 "layer entry \"link/evil\": path goes through a symlink");
  EXPECT_TRUE(fs::is_symlink(target_ / "link"));  // the symlink itself is fine
}

TEST_F(HostileLayerTest, RelativeSymlinkParentAndOverwrite) {
  expect_refused(TarBuilder().symlink("up", "../outside").file("up/secret", "overwritten").finish(),
                 "path goes through a symlink");
}

TEST_F(HostileLayerTest, DirectoryReplacedBySymlink) {
  expect_refused(TarBuilder().dir("d/").symlink("d", outside_.string()).dir("d/sub/").finish(),
                 "\"d/sub/\": path goes through a symlink");
}

TEST_F(HostileLayerTest, SymlinkFromEarlierLayer) {
  check_call(::symlink(outside_.c_str(), (target_ / "lower-link").c_str()), "symlink");
  expect_refused(TarBuilder().file("lower-link/evil", "x").finish(), "symlink");
}

TEST_F(HostileLayerTest, HardlinkOutside) {
  expect_refused(TarBuilder().hardlink("hl", "../outside/secret").finish(), "\"..\"");
  expect_refused(TarBuilder().hardlink("hl", outside_.string() + "/secret").finish(),
                 "absolute path");
}

TEST_F(HostileLayerTest, HardlinkThroughSymlink) {
  expect_refused(TarBuilder().symlink("l", outside_.string()).hardlink("hl", "l/secret").finish(),
                 "\"hl\": path goes through a symlink");
}

TEST_F(HostileLayerTest, TruncatedGzip) {
  fs::path work = make_dir("work");
  const std::string tar = TarBuilder()
                              .file("a", pseudo_random_bytes(400'000, 9))
                              .file("b", pseudo_random_bytes(400'000, 10))
                              .finish();
  const std::string blob = compress(tar, Compression::kGzip, work).first;
  auto source =
      decompressing_source(std::make_unique<StringSource>(blob.substr(0, blob.size() / 2)));
  expect_refused(*source, "gzip data is truncated");
}

TEST_F(HostileLayerTest, WhiteoutNamingDotDot) {
  expect_refused(TarBuilder().file(".wh...", "").finish(), "\".wh...\": invalid whiteout");
  expect_refused(TarBuilder().dir("d/").file("d/.wh...", "").finish(),
                 "\"d/.wh...\": invalid whiteout");
  expect_refused(TarBuilder().file(".wh.", "").finish(), "invalid whiteout");
}

TEST_F(HostileLayerTest, DevicesOtherThanTheHarmlessOnes) {
  expect_refused(TarBuilder().dir("dev/").device("dev/sda", AE_IFBLK, 8, 0).finish(),
                 "layer entry \"dev/sda\": block device 8:0 is not allowed in a layer (only "
                 "null, zero, full, random, urandom, tty, console and ptmx)");
  expect_refused(TarBuilder().device("mem", AE_IFCHR, 1, 1).finish(),
                 "\"mem\": character device 1:1 is not allowed");
  // 0/0 is what an overlay whiteout looks like on disk: as a tar entry it would silently hide a
  // lower file instead of being a device.
  expect_refused(TarBuilder().device("hidden", AE_IFCHR, 0, 0).finish(),
                 "character device 0:0 is not allowed");
  EXPECT_FALSE(fs::exists(target_ / "dev" / "sda"));
  EXPECT_FALSE(fs::exists(target_ / "mem"));

  // What a debootstrapped /dev holds is fine, and so is any device when the caller allows it.
  StringSource harmless(TarBuilder()
                            .dir("dev/")
                            .device("dev/null", AE_IFCHR, 1, 3)
                            .device("dev/urandom", AE_IFCHR, 1, 9)
                            .device("dev/ptmx", AE_IFCHR, 5, 2)
                            .finish());
  apply_layer_tar(harmless, target_);
  struct stat st {};
  ASSERT_EQ(::lstat((target_ / "dev/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  StringSource any(TarBuilder().device("loop0", AE_IFBLK, 7, 0).finish());
  apply_layer_tar(any, target_, kAnyDevice);
  ASSERT_EQ(::lstat((target_ / "loop0").c_str(), &st), 0);
  EXPECT_TRUE(S_ISBLK(st.st_mode));
}

// A layer of 160 MiB of zeros compresses about 1000:1; past 128 MiB of output the decoder
// refuses it, for gzip and zstd alike.
TEST_F(HostileLayerTest, DecompressionBomb) {
  fs::path work = make_dir("work");
  const std::string tar = TarBuilder().file("zeros", std::string(160u << 20, '\0')).finish();
  for (Compression compression : {Compression::kGzip, Compression::kZstd}) {
    const std::string blob = compress(tar, compression, work).first;
    ASSERT_LT(blob.size(), tar.size() / 200);
    auto source = decompressing_source(std::make_unique<StringSource>(blob));
    expect_refused(*source, "times (");
    auto again = decompressing_source(std::make_unique<StringSource>(blob));
    try {
      read_all(*again, 1 << 20);
      ADD_FAILURE() << "bomb decompressed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("data expands more than 200 times"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("refused as a decompression bomb"), std::string::npos)
          << e.what();
    }
    fs::remove_all(target_);
    fs::create_directory(target_);
  }
}

TEST_F(HostileLayerTest, TruncatedAndGarbageTar) {
  const std::string tar = TarBuilder().file("a", pseudo_random_bytes(100'000, 11)).finish();
  expect_refused(tar.substr(0, 50'000), "runcated");
  expect_refused(pseudo_random_bytes(4096, 12), "layer tar");
}

}  // namespace
}  // namespace slipway::store
