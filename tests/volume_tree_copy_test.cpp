// copy_tree (runtime/tree_copy.h), which seeds volumes from an image and snapshots a container's
// writable layer for commit: everything a layer keeps must survive the copy.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "runtime/tree_copy.h"
#include "tests/test_support.h"
#include "tests/tree_builder.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;

void make_tree(const fs::path& root) {
  fs::create_directories(root / "dir" / "deep");
  write_bytes(root / "dir" / "file", "content", 0640);
  check_call(::chown((root / "dir" / "file").c_str(), 1234, 5678), "chown");
  write_bytes(root / "dir" / "setuid", "x", 04755);
  write_bytes(root / "dir" / "deep" / "big", pseudo_random_bytes(300000, 7), 0600);
  set_xattr(root / "dir" / "file", "user.note", "kept");
  set_xattr(root / "dir", "trusted.overlay.opaque", "y");
  check_call(::link((root / "dir" / "file").c_str(), (root / "hardlink").c_str()), "link");
  fs::create_symlink("dir/file", root / "symlink");
  fs::create_symlink("/etc/passwd", root / "absolute");
  check_call(::lchown((root / "symlink").c_str(), 42, 43), "lchown");
  check_call(::mkfifo((root / "fifo").c_str(), 0620), "mkfifo");
  check_call(::mknod((root / "whiteout").c_str(), S_IFCHR | 0000, makedev(0, 0)), "mknod");
  check_call(::chmod((root / "dir" / "deep").c_str(), 0711), "chmod");
  check_call(::chmod(root.c_str(), 0750), "chmod");
  set_whole_second_mtimes(root);
}

TEST(TreeCopyTest, CopyKeepsOwnersModesXattrsLinksAndSpecialFiles) {
  ScratchDir scratch;
  fs::path source = scratch.path() / "source", target = scratch.path() / "target";
  fs::create_directories(source);
  fs::create_directories(target);
  make_tree(source);
  UniqueFd from = open_or_throw(source, O_RDONLY | O_DIRECTORY);
  UniqueFd to = open_or_throw(target, O_RDONLY | O_DIRECTORY);
  runtime::copy_tree(from.get(), to.get(), {.overlay_metadata = true});
  expect_same_tree(snapshot(source), snapshot(target), "copy");
  struct stat st {};
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);  // the target dir takes the source dir's mode
}

TEST(TreeCopyTest, MergedViewCopyLeavesOverlayMetadataOut) {
  ScratchDir scratch;
  fs::path source = scratch.path() / "source", target = scratch.path() / "target";
  fs::create_directories(source);
  fs::create_directories(target);
  make_tree(source);
  UniqueFd from = open_or_throw(source, O_RDONLY | O_DIRECTORY);
  UniqueFd to = open_or_throw(target, O_RDONLY | O_DIRECTORY);
  runtime::copy_tree(from.get(), to.get());
  auto copied = xattrs_of(target / "dir");
  EXPECT_EQ(copied.count("trusted.overlay.opaque"), 0u);
  EXPECT_EQ(xattrs_of(target / "dir" / "file").at("user.note"), "kept");
}

TEST(TreeCopyTest, CopyIntoANonEmptyTargetNeverFollowsItsSymlinks) {
  ScratchDir scratch;
  fs::path source = scratch.path() / "source", target = scratch.path() / "target";
  fs::path outside = scratch.path() / "outside";
  fs::create_directories(source);
  fs::create_directories(target);
  fs::create_directories(outside);
  write_bytes(source / "name", "from source");
  fs::create_symlink(outside / "victim", target / "name");
  UniqueFd from = open_or_throw(source, O_RDONLY | O_DIRECTORY);
  UniqueFd to = open_or_throw(target, O_RDONLY | O_DIRECTORY);
  EXPECT_THROW(runtime::copy_tree(from.get(), to.get()), Error);
  EXPECT_TRUE(fs::is_empty(outside));
}

}  // namespace
}  // namespace slipway::testing
