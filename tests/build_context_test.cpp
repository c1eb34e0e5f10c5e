// .dockerignore parsing and matching (patterns, exceptions, last match wins), Go filepath.Match
// and path.Clean, BuildContext source resolution confined to the context root, and the
// cache-key digest with its persistent stat cache.
#include "builder/build_context.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "builder/dockerignore.h"
#include "common/error.h"
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

// ---- path.Clean and filepath.Match ------------------------------------------------------------

TEST(CleanPath, BehavesLikeGoPathClean) {
  struct Case {
    const char* in;
    const char* out;
  } cases[] = {
      {"", "."},         {".", "."},           {"a/b", "a/b"},         {"a//b", "a/b"},
      {"a/./b/", "a/b"}, {"a/../b", "b"},      {"../a", "../a"},       {"/../a", "/a"},
      {"/", "/"},        {"//x//", "/x"},      {"a/b/../../..", ".."}, {"./a/", "a"},
      {"!a/../b", "b"},  {"a/b/c/../..", "a"}, {"/a/b/..", "/a"},
  };
  for (const auto& c : cases) EXPECT_EQ(clean_path(c.in), c.out) << c.in;
}

TEST(GlobMatch, FollowsGoFilepathMatch) {
  struct Case {
    const char* pattern;
    const char* name;
    bool match;
  } cases[] = {
      {"abc", "abc", true},
      {"*", "abc", true},
      {"*c", "abc", true},
      {"a*", "a", true},
      {"a*", "ab/c", false},
      {"a*/b", "abc/b", true},
      {"a*/b", "a/c/b", false},
      {"a*b?c*x", "abxbbxdbxebxczzx", true},
      {"a*b?c*x", "abxbbxdbxebxczzy", false},
      {"ab[c]", "abc", true},
      {"ab[b-d]", "abc", true},
      {"ab[e-g]", "abc", false},
      {"ab[^c]", "abc", false},
      {"ab[^e-g]", "abc", true},
      {"a\\*b", "a*b", true},
      {"a\\*b", "ab", false},
      {"a?b", "a\u263Ab", true},
      {"a???b", "a\u263Ab", false},
      {"[a-\u03B6]*", "\u03B1", true},
      {"*[a-\u03B6]", "A", false},
      {"a?b", "a/b", false},
      {"a*b", "a/b", false},
      {"[\\]a]", "]", true},
      {"[\\-]", "-", true},
      {"[x\\-]", "-", true},
      {"[x\\-]", "z", false},
      {"*x", "xxx", true},
      {"*.txt", "notes.txt", true},
      {"*.txt", ".txt", true},
      {"file?.md", "file1.md", true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(glob_match(c.pattern, c.name), c.match) << c.pattern << " vs " << c.name;
  }
}

TEST(GlobMatch, MalformedPatternsAreErrors) {
  for (const char* bad :
       {"[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a["}) {
    EXPECT_NE(error_of([&] { glob_match(bad, "a"); }).find("syntax error in pattern"),
              std::string::npos)
        << bad;
  }
}

TEST(GlobMatch, WildcardDetectionHonoursEscapes) {
  EXPECT_TRUE(has_wildcards("*.txt"));
  EXPECT_TRUE(has_wildcards("a?"));
  EXPECT_TRUE(has_wildcards("x[ab]"));
  EXPECT_FALSE(has_wildcards("plain.txt"));
  EXPECT_FALSE(has_wildcards("a\\*b"));
}

// ---- .dockerignore ---------------------------------------------------------------------------

TEST(DockerIgnore, FileParsingCleansPatterns) {
  std::string text =
      "\xEF\xBB\xBFtest1\n/test2\r\n/a/file/here\n\nlastfile\n# a comment\n  # not a comment\n"
      "! /inverted/abs/path\n  spaced/./x/../y  \n\t\n!\n! \n";
  std::vector<std::string> expected = {"test1",
                                       "test2",
                                       "a/file/here",
                                       "lastfile",
                                       "# not a comment",
                                       "!inverted/abs/path",
                                       "spaced/y",
                                       "!",
                                       "!"};
  EXPECT_EQ(IgnoreRules::read_patterns(text), expected);
}

TEST(DockerIgnore, LoneExclamationIsAnError) {
  EXPECT_EQ(error_of([] { IgnoreRules::parse("a\n!\n"); }),
            ".dockerignore: illegal exclusion pattern: \"!\"");
  EXPECT_NE(error_of([] { IgnoreRules::parse("src/[\n"); }).find("syntax error in pattern"),
            std::string::npos);
}

struct MatchCase {
  std::vector<std::string> patterns;
  const char* path;
  bool excluded;
};

TEST(DockerIgnore, PatternTable) {
  // Written from the rules in docker's .dockerignore documentation and patternmatcher's
  // behaviour: parents excluding children, `**`, escapes, regexp metacharacters as literals.
  std::vector<MatchCase> cases = {
      {{"**"}, "file", true},
      {{"**"}, "dir/file", true},
      {{"**/"}, "dir/file", true},
      {{"dir/**"}, "dir/file", true},
      {{"dir/**"}, "dir/sub/file", true},
      {{"dir/**"}, "dir", false},
      {{"**/dir"}, "dir", true},
      {{"**/dir"}, "a/b/dir", true},
      {{"**/dir"}, "a/dir/file", true},  // a parent matches
      {{"**/dir"}, "notdir", false},
      {{"**/dir2/*"}, "dir/dir2/file", true},
      {{"**/dir2/**"}, "a/dir2/b/c", true},
      {{"**file"}, "dir/file", true},
      {{"**/file*.txt"}, "x/y/file1.txt", true},
      {{"**/*.txt"}, "file.txt", true},
      {{"**/**/*.txt"}, "a/b/c.txt", true},
      {{"**/**/*.txt2"}, "a/b/c.txt", false},
      {{"a**/*.txt"}, "a/x/y/z.txt", true},
      {{"a/*.txt"}, "a/b/c.txt", false},
      {{"a/*.txt"}, "a/c.txt", true},
      {{"a/*.txt**"}, "a/c.txt", true},
      {{"*"}, "a/b", true},  // "*" matches the top-level dir "a"
      {{"*.go"}, "sub/x.go", false},
      {{"*/*.go"}, "sub/x.go", true},
      {{"a[b-d]e"}, "ace", true},
      {{"a[b-d]e"}, "aae", false},
      {{"a[^b-d]e"}, "aze", true},
      {{".*"}, ".env", true},
      {{".*"}, "env", false},
      {{"abc.def"}, "abcxdef", false},
      {{"abc?def"}, "abcXdef", true},
      {{"abc?def"}, "abc/def", false},
      {{"a(b)c/def"}, "a(b)c/def", true},
      {{"x.+|){$"}, "x.+|){$", true},
      {{"dist/*.whl"}, "dist/pkg-1.0+local-py3-none-any.whl", true},
      {{"a\\*b"}, "a*b", true},
      {{"a\\*b"}, "axb", false},
      {{"docs"}, "docs/README.md", true},
      {{"docs/"}, "docs/deep/file", true},
      {{"/abs/x"}, "abs/x", true},
      {{"./rel/../y"}, "y", true},
      {{"node_modules"}, "src/node_modules/x", false},
      {{"**/node_modules"}, "src/node_modules/x", true},
      // exceptions and order
      {{"*.md", "!README.md"}, "README.md", false},
      {{"*.md", "!README.md"}, "CHANGES.md", true},
      {{"!README.md", "*.md"}, "README.md", true},
      {{"docs", "!docs/README.md"}, "docs/README.md", false},
      {{"docs", "!docs/README.md"}, "docs/other.md", true},
      {{"docs/*", "!docs/README.md"}, "docs/README.md", false},
      {{"**", "!util/docker/web"}, "util/docker/web/foo", false},
      {{"**", "!util/docker/web", "util/docker/web/foo"}, "util/docker/web/foo", true},
      {{"a", "!a"}, "a", false},
      {{"!a", "a"}, "a", true},
      {{"*", "!keep", "keep/tmp"}, "keep/tmp/x", true},
      {{"*", "!keep", "keep/tmp"}, "keep/src/x", false},
  };
  for (const auto& c : cases) {
    std::string text;
    for (const auto& p : c.patterns) text += p + "\n";
    IgnoreRules rules = IgnoreRules::parse(text);
    EXPECT_EQ(rules.excluded(c.path), c.excluded) << "patterns [" << text << "] path " << c.path;
    // The walking form, with parent states handed down, must agree.
    IgnoreRules::MatchState state;
    std::string p = c.path;
    bool walked = false;
    size_t pos = 0;
    for (;;) {
      size_t slash = p.find('/', pos);
      IgnoreRules::MatchState next;
      walked = rules.excluded(p.substr(0, slash), state, &next);
      state = next;
      if (slash == std::string::npos) break;
      pos = slash + 1;
    }
    EXPECT_EQ(walked, c.excluded) << "walking; patterns [" << text << "] path " << c.path;
  }
}

TEST(DockerIgnore, RootIsNeverExcluded) {
  EXPECT_FALSE(IgnoreRules::parse("*\n**\n").excluded("."));
}

TEST(DockerIgnore, ExcludedDirectoryIsWalkedOnlyWhenAnExceptionCanReachIt) {
  IgnoreRules prefix = IgnoreRules::parse("docs\nvendor\n!docs/README.md\n");
  EXPECT_TRUE(prefix.may_reinclude_below("docs"));
  EXPECT_FALSE(prefix.may_reinclude_below("vendor"));
  IgnoreRules wild = IgnoreRules::parse("vendor\n!**/*.md\n");
  EXPECT_TRUE(wild.may_reinclude_below("vendor"));
  EXPECT_FALSE(IgnoreRules::parse("vendor\n").may_reinclude_below("vendor"));
}

TEST(DockerIgnore, DockerfileSpecificIgnoreFileWins) {
  ScratchDir dir;
  fs::path ctx = dir.path() / "ctx";
  write_text(ctx / "Dockerfile", "FROM scratch\n");
  EXPECT_FALSE(find_ignore_file({}, ctx));
  write_text(ctx / ".dockerignore", "a\n");
  EXPECT_EQ(find_ignore_file({}, ctx), ctx / ".dockerignore");
  write_text(ctx / "Dockerfile.dockerignore", "b\n");
  EXPECT_EQ(find_ignore_file({}, ctx), ctx / "Dockerfile.dockerignore");
  // -f elsewhere: <name>.dockerignore beside it, else the context's.
  fs::path other = dir.path() / "build" / "app.Dockerfile";
  write_text(other, "FROM scratch\n");
  EXPECT_EQ(find_ignore_file(other, ctx), ctx / ".dockerignore");
  write_text(dir.path() / "build" / "app.Dockerfile.dockerignore", "c\n");
  EXPECT_EQ(find_ignore_file(other, ctx), dir.path() / "build" / "app.Dockerfile.dockerignore");
  EXPECT_EQ(load_ignore_rules(other, ctx).patterns(), std::vector<std::string>{"c"});
}

// ---- BuildContext: resolution -----------------------------------------------------------------

class ContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ctx_ = dir_.path() / "ctx";
    outside_ = dir_.path() / "outside";
    write_text(outside_ / "secret", "outside secret\n");
    write_text(ctx_ / "Dockerfile", "FROM scratch\n");
    write_text(ctx_ / "a.txt", "a\n");
    write_text(ctx_ / "b.txt", "b\n");
    write_text(ctx_ / "c.md", "c\n");
    write_text(ctx_ / "src" / "main.c", "int main;\n");
    write_text(ctx_ / "src" / "util" / "x.c", "x\n");
    write_text(ctx_ / "docs" / "README.md", "readme\n");
    write_text(ctx_ / "docs" / "other.md", "other\n");
    write_text(ctx_ / "app.log", "log\n");
    write_text(ctx_ / "secret", "inside secret\n");
  }

  std::vector<std::string> paths(const std::vector<Source>& sources) {
    std::vector<std::string> out;
    for (const auto& s : sources) out.push_back(s.path);
    return out;
  }

  std::vector<std::string> listed(const BuildContext& c, const std::string& src) {
    std::vector<std::string> out;
    for (const auto& s : c.resolve(src))
      for (const auto& e : c.list(s)) out.push_back(e.path);
    return out;
  }

  ScratchDir dir_;
  fs::path ctx_;
  fs::path outside_;
};

TEST_F(ContextTest, LiteralAndWildcardSources) {
  BuildContext c(ctx_);
  auto one = c.resolve("a.txt");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].path, "a.txt");
  EXPECT_EQ(one[0].name, "a.txt");
  EXPECT_EQ(one[0].entry.kind, FileKind::regular);
  EXPECT_EQ(one[0].entry.size, 2u);
  EXPECT_EQ(paths(c.resolve("*.txt")), (std::vector<std::string>{"a.txt", "b.txt"}));
  EXPECT_EQ(paths(c.resolve("?.*")), (std::vector<std::string>{"a.txt", "b.txt", "c.md"}));
  EXPECT_EQ(paths(c.resolve("src/*/x.c")), (std::vector<std::string>{"src/util/x.c"}));
  EXPECT_EQ(paths(c.resolve("*/*.md")),
            (std::vector<std::string>{"docs/README.md", "docs/other.md"}));
  EXPECT_TRUE(c.resolve("*.nothing").empty());  // no match is not an error
  EXPECT_EQ(paths(c.resolve("./src/")), std::vector<std::string>{"src"});
  EXPECT_EQ(paths(c.resolve(".")), std::vector<std::string>{""});
  EXPECT_EQ(c.resolve(".")[0].entry.kind, FileKind::directory);
}

TEST_F(ContextTest, MissingSourceNamesThePath) {
  BuildContext c(ctx_);
  std::string msg = error_of([&] { c.resolve("nope/file.txt"); });
  EXPECT_NE(msg.find("\"/nope/file.txt\": not found"), std::string::npos) << msg;
}

TEST_F(ContextTest, ParentAndAbsoluteSourcesStayInsideTheContext) {
  BuildContext c(ctx_);
  // "../secret" is "/secret" of the context, never ../outside/secret.
  for (const char* src : {"../secret", "/secret", "../../../../secret", "src/../../secret"}) {
    auto s = c.resolve(src);
    ASSERT_EQ(s.size(), 1u) << src;
    EXPECT_EQ(s[0].path, "secret") << src;
    EXPECT_EQ(read_file(ctx_ / s[0].entry.path), "inside secret\n");
  }
  EXPECT_NE(error_of([&] { c.resolve("../outside/secret"); }).find("not found"), std::string::npos);
  EXPECT_NE(error_of([&] { c.resolve("/etc/passwd"); }).find("\"/etc/passwd\": not found"),
            std::string::npos);
}

TEST_F(ContextTest, SymlinksAreConfinedToTheRoot) {
  fs::create_directory_symlink("/etc", ctx_ / "etc-link");
  fs::create_symlink(outside_ / "secret", ctx_ / "abs-secret");
  fs::create_symlink("../outside/secret", ctx_ / "rel-secret");
  fs::create_symlink("../../../../../../secret", ctx_ / "deep-secret");
  fs::create_symlink("a.txt", ctx_ / "a-link");
  BuildContext c(ctx_);
  // Links pointing out of the context resolve inside it, where nothing (or the context's own
  // file) is found.
  EXPECT_NE(error_of([&] { c.resolve("etc-link/passwd"); }).find("not found"), std::string::npos);
  EXPECT_NE(error_of([&] { c.resolve("abs-secret"); }).find("not found"), std::string::npos);
  EXPECT_NE(error_of([&] { c.resolve("rel-secret"); }).find("not found"), std::string::npos);
  auto deep = c.resolve("deep-secret");
  ASSERT_EQ(deep.size(), 1u);
  EXPECT_EQ(deep[0].entry.path, "secret");
  EXPECT_EQ(deep[0].name, "deep-secret");
  // With a matching path inside the context, the link finds that one.
  write_text(ctx_ / outside_.relative_path() / "secret", "confined\n");
  auto abs = c.resolve("abs-secret");
  ASSERT_EQ(abs.size(), 1u);
  EXPECT_EQ(read_file(ctx_ / abs[0].entry.path), "confined\n");
  // A link given as a source is followed; the matched name is the link's.
  auto link = c.resolve("a-link");
  ASSERT_EQ(link.size(), 1u);
  EXPECT_EQ(link[0].entry.path, "a.txt");
  EXPECT_EQ(link[0].name, "a-link");
  // Inside a directory source, links stay links and are never followed.
  auto all = c.resolve(".");
  bool saw = false;
  for (const auto& e : c.list(all[0])) {
    if (e.path == "etc-link") {
      saw = true;
      EXPECT_EQ(e.kind, FileKind::symlink);
      EXPECT_EQ(e.link_target, "/etc");
    }
    EXPECT_FALSE(e.path.starts_with("etc-link/")) << e.path;
  }
  EXPECT_TRUE(saw);
}

TEST_F(ContextTest, SymlinkLoopIsAnError) {
  fs::create_symlink("loop2", ctx_ / "loop1");
  fs::create_symlink("loop1", ctx_ / "loop2");
  BuildContext c(ctx_);
  EXPECT_NE(error_of([&] { c.resolve("loop1"); }).find("too many levels of symbolic links"),
            std::string::npos);
}

TEST_F(ContextTest, IgnoredFilesAreInvisible) {
  fs::create_symlink("app.log", ctx_ / "log-link");
  BuildContext c(ctx_, IgnoreRules::parse("*.log\ndocs\n!docs/README.md\nsrc/util\n"));
  EXPECT_NE(error_of([&] { c.resolve("app.log"); }).find("\"/app.log\": not found"),
            std::string::npos);
  EXPECT_TRUE(c.resolve("*.log").empty());
  // A link to an ignored file finds nothing: the file is not in the context.
  EXPECT_NE(error_of([&] { c.resolve("log-link"); }).find("not found"), std::string::npos);
  EXPECT_NE(error_of([&] { c.resolve("src/util/x.c"); }).find("not found"), std::string::npos);
  EXPECT_NE(error_of([&] { c.resolve("docs/other.md"); }).find("not found"), std::string::npos);
  EXPECT_EQ(paths(c.resolve("docs/README.md")), std::vector<std::string>{"docs/README.md"});
  // "docs" is excluded but holds a re-included file, so it exists with just that file.
  EXPECT_EQ(listed(c, "docs"), (std::vector<std::string>{"docs", "docs/README.md"}));
  EXPECT_EQ(listed(c, "."), (std::vector<std::string>{"", "Dockerfile", "a.txt", "b.txt", "c.md",
                                                      "docs", "docs/README.md", "log-link",
                                                      "secret", "src", "src/main.c"}));
  EXPECT_TRUE(c.is_ignored("app.log"));
  EXPECT_TRUE(c.is_ignored("src/util/x.c"));
  EXPECT_FALSE(c.is_ignored("docs/README.md"));
}

TEST_F(ContextTest, ExcludedDirectoryWithoutReincludedContentIsNotFound) {
  BuildContext c(ctx_, IgnoreRules::parse("docs\n!docs/missing.md\n"));
  EXPECT_NE(error_of([&] { c.resolve("docs"); }).find("not found"), std::string::npos);
}

TEST_F(ContextTest, OwnersAreResetForAContextButKeptForARootfs) {
  ASSERT_EQ(::chown((ctx_ / "a.txt").c_str(), 1234, 5678), 0);
  EXPECT_EQ(BuildContext(ctx_).resolve("a.txt")[0].entry.uid, 0u);
  auto kept = BuildContext(ctx_, {}, false).resolve("a.txt")[0].entry;
  EXPECT_EQ(kept.uid, 1234u);
  EXPECT_EQ(kept.gid, 5678u);
}

// ---- digests --------------------------------------------------------------------------------

std::string key(const fs::path& ctx, const IgnoreRules& rules,
                const std::vector<std::string>& srcs) {
  BuildContext c(ctx, rules);
  return c.digest(c.resolve(srcs));
}

TEST_F(ContextTest, DigestIgnoresTimesButSeesContentModeNamesAndLinks) {
  IgnoreRules rules = IgnoreRules::parse("*.log\n");
  std::vector<std::string> all = {"."};
  const std::string base = key(ctx_, rules, all);
  EXPECT_EQ(base.size(), 71u);
  EXPECT_EQ(key(ctx_, rules, all), base);

  // touch: new mtime/atime, same bytes.
  struct timespec times[2] = {{1000, 0}, {2000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (ctx_ / "a.txt").c_str(), times, 0), 0);
  EXPECT_EQ(key(ctx_, rules, all), base);
  write_text(ctx_ / "a.txt", "a\n");  // rewritten with the same bytes
  EXPECT_EQ(key(ctx_, rules, all), base);

  // An ignored file's change does not count (without the rules it does).
  const std::string no_rules = key(ctx_, {}, all);
  write_text(ctx_ / "app.log", "a much longer log now\n");
  write_text(ctx_ / "new.log", "x\n");
  EXPECT_EQ(key(ctx_, rules, all), base);
  EXPECT_NE(key(ctx_, {}, all), no_rules);

  write_text(ctx_ / "a.txt", "A\n");
  const std::string changed = key(ctx_, rules, all);
  EXPECT_NE(changed, base);
  write_text(ctx_ / "a.txt", "a\n");
  EXPECT_EQ(key(ctx_, rules, all), base);

  fs::permissions(ctx_ / "a.txt", fs::perms::owner_exec, fs::perm_options::add);
  EXPECT_NE(key(ctx_, rules, all), base);
  fs::permissions(ctx_ / "a.txt", fs::perms::owner_exec, fs::perm_options::remove);
  EXPECT_EQ(key(ctx_, rules, all), base);

  fs::rename(ctx_ / "b.txt", ctx_ / "b2.txt");
  EXPECT_NE(key(ctx_, rules, all), base);
  fs::rename(ctx_ / "b2.txt", ctx_ / "b.txt");
  EXPECT_EQ(key(ctx_, rules, all), base);

  fs::create_symlink("a.txt", ctx_ / "l");
  const std::string with_link = key(ctx_, rules, all);
  EXPECT_NE(with_link, base);
  fs::remove(ctx_ / "l");
  fs::create_symlink("b.txt", ctx_ / "l");
  EXPECT_NE(key(ctx_, rules, all), with_link);
  fs::remove(ctx_ / "l");

  fs::create_directory(ctx_ / "empty");
  EXPECT_NE(key(ctx_, rules, all), base);
  fs::remove(ctx_ / "empty");
  EXPECT_EQ(key(ctx_, rules, all), base);
}

TEST_F(ContextTest, DigestCoversOnlyTheSelectedSources) {
  const std::string txt = key(ctx_, {}, {"*.txt"});
  write_text(ctx_ / "src" / "main.c", "changed\n");
  EXPECT_EQ(key(ctx_, {}, {"*.txt"}), txt);
  EXPECT_NE(key(ctx_, {}, {"a.txt"}), txt);
  EXPECT_NE(key(ctx_, {}, {"a.txt", "b.txt"}), key(ctx_, {}, {"b.txt", "a.txt"}));
}

TEST_F(ContextTest, HardlinksCountInTheDigest) {
  write_text(ctx_ / "h" / "one", "same\n");
  write_text(ctx_ / "h" / "two", "same\n");
  const std::string copies = key(ctx_, {}, {"h"});
  fs::remove(ctx_ / "h" / "two");
  fs::create_hard_link(ctx_ / "h" / "one", ctx_ / "h" / "two");
  EXPECT_NE(key(ctx_, {}, {"h"}), copies);
}

TEST(StatCache, SecondDigestOfUnchangedContextHashesNothing) {
  ScratchDir dir;
  fs::path ctx = dir.path() / "ctx";
  fs::path cache_dir = dir.path() / "cache";
  for (int d = 0; d < 100; ++d) {
    for (int f = 0; f < 100; ++f) {
      write_text(ctx / ("d" + std::to_string(d)) / ("f" + std::to_string(f)),
                 "content " + std::to_string(d * 100 + f) + "\n");
    }
  }
  write_text(ctx / "ignored.tmp", "x\n");
  // Files younger than the racy margin at hashing time are not trusted later.
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  IgnoreRules rules = IgnoreRules::parse("*.tmp\n");

  std::string first;
  {
    BuildContext c(ctx, rules);
    StatCache cache(cache_dir, ctx);
    HashStats stats;
    first = c.digest(c.resolve("."), &cache, &stats);
    EXPECT_EQ(stats.files_hashed, 10000u);
    EXPECT_EQ(stats.cache_hits, 0u);
    EXPECT_GT(stats.bytes_hashed, 100000u);
    EXPECT_EQ(stats.entries, 10101u);

    HashStats again;
    EXPECT_EQ(c.digest(c.resolve("."), &cache, &again), first);
    EXPECT_EQ(again.files_hashed, 0u);
    EXPECT_EQ(again.bytes_hashed, 0u);
    EXPECT_EQ(again.cache_hits, 10000u);
    cache.save();
    EXPECT_TRUE(fs::exists(cache.file()));
  }
  {
    // A new process: the cache comes from the file.
    BuildContext c(ctx, rules);
    StatCache cache(cache_dir, ctx);
    EXPECT_EQ(cache.size(), 10000u);
    HashStats stats;
    EXPECT_EQ(c.digest(c.resolve("."), &cache, &stats), first);
    EXPECT_EQ(stats.files_hashed, 0u);
    EXPECT_EQ(stats.bytes_hashed, 0u);

    // One changed file is the only one read again.
    write_text(ctx / "d7" / "f7", "changed\n");
    write_text(ctx / "ignored.tmp", "changed too\n");
    HashStats changed;
    std::string second = c.digest(c.resolve("."), &cache, &changed);
    EXPECT_NE(second, first);
    EXPECT_EQ(changed.files_hashed, 1u);
    EXPECT_EQ(changed.bytes_hashed, 8u);
  }
}

TEST(StatCache, RecentlyChangedFilesAreHashedAgain) {
  ScratchDir dir;
  fs::path ctx = dir.path() / "ctx";
  write_text(ctx / "f", "v1\n");
  BuildContext c(ctx);
  StatCache cache(dir.path() / "cache", ctx, 10'000'000'000);  // 10 s margin: nothing trusted
  HashStats first, second;
  c.digest(c.resolve("f"), &cache, &first);
  c.digest(c.resolve("f"), &cache, &second);
  EXPECT_EQ(first.files_hashed, 1u);
  EXPECT_EQ(second.files_hashed, 1u);
}

TEST(StatCache, CorruptFileIsIgnored) {
  ScratchDir dir;
  fs::path ctx = dir.path() / "ctx";
  write_text(ctx / "f", "v1\n");
  StatCache probe(dir.path() / "cache", ctx);
  write_text(probe.file(), "SLWSTAT1\x05garbage");
  StatCache cache(dir.path() / "cache", ctx);
  EXPECT_EQ(cache.size(), 0u);
  BuildContext c(ctx);
  HashStats stats;
  c.digest(c.resolve("f"), &cache, &stats);
  EXPECT_EQ(stats.files_hashed, 1u);
}

}  // namespace
}  // namespace slipway::builder
