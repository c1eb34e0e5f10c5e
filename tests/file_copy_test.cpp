// COPY placement rules (dest dir vs file, directory contents, several sources), metadata (modes,
// owners, --chown/--chmod, mtimes, symlinks, hardlinks), destination paths confined to the root
// even through hostile symlinks, and --chown name resolution in the image.
#include "builder/file_copy.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "tests/test_support.h"

namespace slipway::builder {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;
using testing::write_text;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

struct stat lstat_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st;
}

// Every path below `dir`, relative, sorted.
std::vector<std::string> tree(const fs::path& dir) {
  std::vector<std::string> out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    out.push_back(it->path().lexically_relative(dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class CopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ctx_ = dir_.path() / "ctx";
    root_ = dir_.path() / "root";
    outside_ = dir_.path() / "outside";
    fs::create_directories(root_);
    write_text(outside_ / "keep", "untouched\n");
    write_text(ctx_ / "a.txt", "alpha\n");
    write_text(ctx_ / "b.txt", "bravo\n");
    write_text(ctx_ / "dir" / "one", "1\n");
    write_text(ctx_ / "dir" / "sub" / "two", "22\n");
    ::chmod((ctx_ / "dir" / "sub").c_str(), 0750);
    ::chmod((ctx_ / "a.txt").c_str(), 0640);
    struct timespec times[2] = {{1500000000, 0}, {1600000000, 123456789}};
    ::utimensat(AT_FDCWD, (ctx_ / "a.txt").c_str(), times, 0);
    outside_before_ = tree(outside_);
  }

  void TearDown() override {
    // Whatever a test did, nothing outside the root may have changed.
    EXPECT_EQ(tree(outside_), outside_before_);
    EXPECT_EQ(read_file(outside_ / "keep"), "untouched\n");
  }

  CopyStats copy(const std::vector<std::string>& srcs, const std::string& dest,
                 const CopyOptions& options = {}, const IgnoreRules& rules = {}) {
    BuildContext c(ctx_, rules);
    return copy_sources(c, c.resolve(srcs), root_, dest, options);
  }

  ScratchDir dir_;
  fs::path ctx_, root_, outside_;
  std::vector<std::string> outside_before_;
};

TEST_F(CopyTest, FileIntoDirectoryDestKeepsModeAndMtime) {
  CopyStats stats = copy({"a.txt"}, "/app/");
  EXPECT_EQ(read_file(root_ / "app" / "a.txt"), "alpha\n");
  struct stat st = lstat_of(root_ / "app" / "a.txt");
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
  EXPECT_EQ(lstat_of(root_ / "app").st_mode & 07777, 0755u);
  EXPECT_EQ(stats.files, 1u);
  EXPECT_EQ(stats.bytes, 6u);
}

TEST_F(CopyTest, FileDestWithoutSlashIsTheNewName) {
  copy({"a.txt"}, "/opt/renamed");
  EXPECT_EQ(read_file(root_ / "opt" / "renamed"), "alpha\n");
  EXPECT_TRUE(fs::is_directory(root_ / "opt"));
  // An existing directory without the slash still receives the file inside.
  fs::create_directories(root_ / "existing");
  copy({"a.txt"}, "/existing");
  EXPECT_EQ(read_file(root_ / "existing" / "a.txt"), "alpha\n");
  // Relative dest is taken from "/"; an existing file is replaced.
  copy({"b.txt"}, "opt/renamed");
  EXPECT_EQ(read_file(root_ / "opt" / "renamed"), "bravo\n");
}

TEST_F(CopyTest, DirectorySourceCopiesItsContents) {
  CopyStats stats = copy({"dir"}, "/dst");
  EXPECT_EQ(tree(root_), (std::vector<std::string>{"dst", "dst/one", "dst/sub", "dst/sub/two"}));
  EXPECT_EQ(lstat_of(root_ / "dst").st_mode & 07777, 0755u);
  EXPECT_EQ(lstat_of(root_ / "dst" / "sub").st_mode & 07777, 0750u);
  EXPECT_EQ(stats.files, 2u);
  EXPECT_EQ(stats.dirs, 1u);
  // Into an existing directory: its own mode is left alone.
  fs::create_directories(root_ / "keep");
  ::chmod((root_ / "keep").c_str(), 0711);
  copy({"dir"}, "/keep/");
  EXPECT_EQ(lstat_of(root_ / "keep").st_mode & 07777, 0711u);
  EXPECT_EQ(read_file(root_ / "keep" / "sub" / "two"), "22\n");
  // The whole context to "/".
  copy({"."}, "/");
  EXPECT_EQ(read_file(root_ / "a.txt"), "alpha\n");
  EXPECT_EQ(read_file(root_ / "dir" / "one"), "1\n");
}

TEST_F(CopyTest, SeveralSourcesNeedADirectoryDest) {
  EXPECT_EQ(error_of([&] {
              copy({"a.txt", "b.txt"}, "/app");
            }),
            "When using COPY with more than one source file, the destination must be a "
            "directory and end with a /");
  EXPECT_EQ(error_of([&] { copy({"*.txt"}, "/app"); }).substr(0, 17), "When using COPY w");
  copy({"*.txt"}, "/app/");
  EXPECT_EQ(tree(root_), (std::vector<std::string>{"app", "app/a.txt", "app/b.txt"}));
  EXPECT_FALSE(fs::exists(root_ / "none"));
  EXPECT_EQ(copy({"*.none"}, "/none/").files, 0u);  // nothing matched, nothing made
  EXPECT_FALSE(fs::exists(root_ / "none"));
}

TEST_F(CopyTest, ChownAndChmodApplyToEverythingCopied) {
  CopyOptions options;
  options.chown = Owner{1000, 1001};
  options.chmod = parse_chmod("0604");
  copy({"dir"}, "/srv/new/", options);
  for (const char* p : {"srv/new/one", "srv/new/sub/two"}) {
    struct stat st = lstat_of(root_ / p);
    EXPECT_EQ(st.st_uid, 1000u) << p;
    EXPECT_EQ(st.st_gid, 1001u) << p;
    EXPECT_EQ(st.st_mode & 07777, 0604u) << p;
  }
  EXPECT_EQ(lstat_of(root_ / "srv/new/sub").st_mode & 07777, 0604u);  // docker: dirs too
  // Created parents: 0755, owned by the --chown owner (buildkit's MkdirAll does this).
  for (const char* p : {"srv", "srv/new"}) {
    struct stat st = lstat_of(root_ / p);
    EXPECT_EQ(st.st_mode & 07777, 0755u) << p;
    EXPECT_EQ(st.st_uid, 1000u) << p;
  }
}

TEST_F(CopyTest, StageSourcesKeepTheirOwners) {
  ::chown((ctx_ / "b.txt").c_str(), 42, 43);
  BuildContext stage(ctx_, {}, /*reset_owner=*/false);
  copy_sources(stage, stage.resolve("b.txt"), root_, "/x");
  EXPECT_EQ(lstat_of(root_ / "x").st_uid, 42u);
  EXPECT_EQ(lstat_of(root_ / "x").st_gid, 43u);
  copy({"b.txt"}, "/y");  // the build context: 0:0
  EXPECT_EQ(lstat_of(root_ / "y").st_uid, 0u);
}

TEST_F(CopyTest, SymlinksAreCopiedAsSymlinksAndHardlinksKept) {
  fs::create_symlink("/etc/passwd", ctx_ / "dir" / "passwd-link");
  fs::create_directory_symlink("/etc", ctx_ / "dir" / "etc-link");
  fs::create_hard_link(ctx_ / "dir" / "one", ctx_ / "dir" / "sub" / "one-again");
  CopyStats stats = copy({"dir"}, "/d/");
  EXPECT_TRUE(fs::is_symlink(root_ / "d" / "passwd-link"));
  EXPECT_EQ(fs::read_symlink(root_ / "d" / "passwd-link"), "/etc/passwd");
  EXPECT_EQ(fs::read_symlink(root_ / "d" / "etc-link"), "/etc");
  EXPECT_EQ(tree(root_ / "d"), (std::vector<std::string>{"etc-link", "one", "passwd-link", "sub",
                                                         "sub/one-again", "sub/two"}));
  EXPECT_EQ(lstat_of(root_ / "d" / "one").st_ino,
            lstat_of(root_ / "d" / "sub" / "one-again").st_ino);
  EXPECT_EQ(stats.symlinks, 2u);
  EXPECT_EQ(stats.hardlinks, 1u);
  EXPECT_EQ(stats.files, 2u);
  // A symlink named as the source is followed; the file takes the link's name.
  fs::create_symlink("a.txt", ctx_ / "a-link");
  copy({"a-link"}, "/f/");
  EXPECT_FALSE(fs::is_symlink(root_ / "f" / "a-link"));
  EXPECT_EQ(read_file(root_ / "f" / "a-link"), "alpha\n");
}

TEST_F(CopyTest, IgnoredFilesAreNotCopied) {
  write_text(ctx_ / "dir" / "debug.log", "log\n");
  copy({"dir"}, "/d/", {}, IgnoreRules::parse("**/*.log\ndir/sub\n!dir/sub/two\n"));
  EXPECT_EQ(tree(root_ / "d"), (std::vector<std::string>{"one", "sub", "sub/two"}));
}

TEST_F(CopyTest, DestinationThroughSymlinksStaysInsideTheRoot) {
  // Absolute and relative links in the image that point "outside" are resolved inside the root.
  fs::create_directory_symlink(outside_, root_ / "abs-escape");
  fs::create_directory_symlink("../../../../../../../..", root_ / "rel-escape");
  fs::create_symlink(outside_ / "keep", root_ / "file-escape");
  copy({"a.txt"}, "/abs-escape/x");
  copy({"a.txt"}, "/rel-escape" + outside_.string() + "/");
  copy({"b.txt"}, "/file-escape");
  copy({"dir"}, "/abs-escape/tree/");
  // Everything landed in root/<outside path>.
  fs::path inside = root_ / outside_.relative_path();
  EXPECT_EQ(read_file(inside / "x"), "alpha\n");
  EXPECT_EQ(read_file(inside / "a.txt"), "alpha\n");
  EXPECT_EQ(read_file(inside / "keep"), "bravo\n");
  EXPECT_EQ(read_file(inside / "tree" / "sub" / "two"), "22\n");
  EXPECT_FALSE(fs::exists(outside_ / "x"));
}

TEST_F(CopyTest, HostileSourcesCannotReadOutsideTheContext) {
  fs::create_directory_symlink("/etc", ctx_ / "etc-link");
  fs::create_symlink(outside_ / "keep", ctx_ / "steal");
  EXPECT_NE(error_of([&] { copy({"etc-link/passwd"}, "/x"); }).find("not found"),
            std::string::npos);
  EXPECT_NE(error_of([&] { copy({"steal"}, "/x"); }).find("not found"), std::string::npos);
  EXPECT_NE(error_of([&] { copy({"../outside/keep"}, "/x"); }).find("not found"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(root_ / "x"));
}

TEST_F(CopyTest, ConflictsAreClearErrors) {
  write_text(root_ / "d" / "sub", "a file where the source has a directory\n");
  EXPECT_EQ(error_of([&] { copy({"dir"}, "/d/"); }), "cannot copy to non-directory: /d/sub");
  fs::create_directories(root_ / "e" / "one");
  EXPECT_EQ(error_of([&] { copy({"dir"}, "/e"); }),
            "cannot replace directory /e/one with a non-directory");
  write_text(root_ / "plain", "x\n");
  EXPECT_NE(error_of([&] { copy({"a.txt"}, "/plain/inside/x"); }).find("\"/plain\""),
            std::string::npos);
}

TEST_F(CopyTest, DevicesAndFifosAreRecreated) {
  ASSERT_EQ(::mkfifo((ctx_ / "dir" / "pipe").c_str(), 0600), 0);
  ASSERT_EQ(::chmod((ctx_ / "dir" / "pipe").c_str(), 0620), 0);
  CopyStats stats = copy({"dir"}, "/d");
  struct stat st = lstat_of(root_ / "d" / "pipe");
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0620u);
  EXPECT_EQ(stats.others, 1u);
}

TEST(Chown, NamesAreResolvedInTheImage) {
  ScratchDir dir;
  fs::path rootfs = dir.path();
  write_text(rootfs / "etc" / "passwd",
             "root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1001:1002::/home/app:/bin/sh\n");
  write_text(rootfs / "etc" / "group", "root:x:0:\nstaff:x:50:app\n");
  EXPECT_EQ(resolve_chown("app", rootfs), (Owner{1001, 1002}));
  EXPECT_EQ(resolve_chown("app:staff", rootfs), (Owner{1001, 50}));
  EXPECT_EQ(resolve_chown("app:7", rootfs), (Owner{1001, 7}));
  EXPECT_EQ(resolve_chown("1000", rootfs), (Owner{1000, 1000}));
  EXPECT_EQ(resolve_chown("1000:staff", rootfs), (Owner{1000, 50}));
  EXPECT_EQ(resolve_chown("1000:", rootfs), (Owner{1000, 1000}));
  EXPECT_EQ(error_of([&] { resolve_chown("nobody", rootfs); }),
            "unable to find user nobody: no matching entries in passwd file");
  EXPECT_EQ(error_of([&] { resolve_chown("app:wheel", rootfs); }),
            "unable to find group wheel: no matching entries in group file");
  ScratchDir empty;
  EXPECT_EQ(error_of([&] { resolve_chown("app", empty.path()); }),
            "unable to find user app: no matching entries in passwd file");
  EXPECT_EQ(resolve_chown("5:6", empty.path()), (Owner{5, 6}));
}

TEST(Chown, PasswdLookupStaysInsideTheRootfs) {
  ScratchDir dir;
  fs::path rootfs = dir.path() / "rootfs";
  // /etc is an absolute link: it must mean <rootfs>/real-etc, never the host's.
  write_text(rootfs / "real-etc" / "passwd", "app:x:7:8::/:/bin/sh\n");
  fs::create_directory_symlink("/real-etc", rootfs / "etc");
  EXPECT_EQ(resolve_chown("app", rootfs), (Owner{7, 8}));
  ScratchDir other;
  fs::create_directory_symlink("/etc", other.path() / "etc");  // host /etc/passwd has "root"
  EXPECT_NE(error_of([&] { resolve_chown("root", other.path()); }), "<no error>");
}

TEST(Chmod, OctalReplacesThePermissionBits) {
  EXPECT_EQ(parse_chmod("755").apply(0644, false), 0755u);
  EXPECT_EQ(parse_chmod("0644").apply(04755, false), 04644u);  // setuid is the file's own
  EXPECT_EQ(parse_chmod("7777").apply(0, true), 0777u);
}

TEST(Chmod, SymbolicClausesChangeEachEntrysOwnMode) {
  EXPECT_EQ(parse_chmod("+x").apply(0644, false), 0755u);
  EXPECT_EQ(parse_chmod("u+x").apply(0644, false), 0744u);
  EXPECT_EQ(parse_chmod("go-w").apply(0666, false), 0644u);
  EXPECT_EQ(parse_chmod("a=r").apply(0755, true), 0444u);
  // X: execute for directories and files someone may already execute, not for other files.
  EXPECT_EQ(parse_chmod("u=rwX,go=rX").apply(0600, false), 0644u);
  EXPECT_EQ(parse_chmod("u=rwX,go=rX").apply(0700, false), 0755u);
  EXPECT_EQ(parse_chmod("u=rwX,go=rX").apply(0700, true), 0755u);
  EXPECT_EQ(parse_chmod("g=u").apply(0640, false), 0660u);
  EXPECT_EQ(parse_chmod("u+s,+t").apply(0755, false), 05755u);
  EXPECT_EQ(parse_chmod("o=").apply(0777, false), 0770u);
  EXPECT_EQ(parse_chmod("u+r-w").apply(0200, false), 0400u);
}

TEST(Chmod, BadValuesAreNamed) {
  for (const char* bad : {"", "9", "0x1", "17777", "-1x", "u", "u+q", "+x,", ",+x", "ux", "a+rz"}) {
    EXPECT_NE(error_of([&] { parse_chmod(bad); }).find("invalid --chmod value"), std::string::npos)
        << bad;
  }
}

}  // namespace
}  // namespace slipway::builder
