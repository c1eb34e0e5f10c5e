// .dockerignore end to end (issue 3, acceptance 3): the real binary builds `COPY . /app` from a
// context with ignored and re-included files, and the image is listed from inside with
// `find /app | sort`. Also: an ignored file's change keeps the COPY cached, Dockerfile.dockerignore
// wins over .dockerignore, and `..` or absolute sources never reach outside the context.
#include <gtest/gtest.h>

#include <random>

#include "common/fs.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;

class DockerignoreBuildTest : public BusyboxStoreTest {
 protected:
  void file(const std::string& relative, const std::string& text) {
    write_text(context() / relative, text);
  }

  std::string run(const std::string& image, const std::string& script) {
    auto ran = run_slipway(root(), {"run", "--rm", image, "sh", "-c", script});
    EXPECT_EQ(ran.exit_code, 0) << ran.out << ran.err;
    return ran.out;
  }

  // The files of the image's filesystem (not /proc, /sys, /dev) whose content contains `text`.
  std::string files_containing(const std::string& image, const std::string& text) {
    return run(image,
               "find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -type f "
               "-exec grep -l -F '" +
                   text + "' {} + ; true");
  }

  // The lines of a build's output that follow "Step N/M : <step>" up to the next step.
  static std::string step_output(const std::string& out, const std::string& step) {
    size_t start = out.find(" : " + step + "\n");
    if (start == std::string::npos) return "<no step " + step + ">";
    start = out.find('\n', start) + 1;
    size_t end = out.find("Step ", start);
    return out.substr(start, end == std::string::npos ? std::string::npos : end - start);
  }

  // The mixed context used by several tests.
  void write_mixed_context() {
    file("Dockerfile", "FROM busybox\nCOPY . /app\n");
    file(".dockerignore",
         "# comments and blank lines are skipped\n"
         "\n"
         "*.env\n"
         "!prod.env\n"
         "build\n"
         "!build/keep.me\n"
         "**/*.md\n"
         "!**/README.md\n"
         "docs/private/README.md\n"  // last match wins: excluded again after the exception
         "/tmp*\n"                   // a leading slash is dropped
         "   spaced.txt   \n"        // surrounding spaces are trimmed
         "a/**/z\n"                  // ** matches zero or more directories
         "./dot/../cleaned.txt\n");  // patterns are path.Clean'ed
    file("keep.txt", "keep\n");
    file("dev.env", "DEV=1\n");
    file("prod.env", "PROD=1\n");
    file("build/out.o", "object\n");
    file("build/keep.me", "kept\n");
    file("README.md", "# readme\n");
    file("notes.md", "notes\n");
    file("docs/guide.md", "guide\n");
    file("docs/README.md", "docs readme\n");
    file("docs/private/README.md", "private readme\n");
    file("docs/private/data.txt", "data\n");
    file("tmpfile.txt", "tmp\n");
    file("tmpdir/inner.txt", "tmp inner\n");
    file("sub/tmpfile.txt", "not at the root, so kept\n");
    file("spaced.txt", "spaced\n");
    file("a/z", "z0\n");
    file("a/b/z", "z1\n");
    file("a/b/c/z", "z2\n");
    file("a/b/y", "y\n");
    file("cleaned.txt", "cleaned\n");
  }
};

TEST_F(DockerignoreBuildTest, CopySeesExactlyTheFilesNotIgnored) {
  write_mixed_context();
  auto built = build_context("ignore:1");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_EQ(run("ignore:1", "find /app | sort"),
            "/app\n"
            "/app/.dockerignore\n"
            "/app/Dockerfile\n"
            "/app/README.md\n"
            "/app/a\n"
            "/app/a/b\n"
            "/app/a/b/c\n"
            "/app/a/b/y\n"
            "/app/build\n"
            "/app/build/keep.me\n"
            "/app/docs\n"
            "/app/docs/README.md\n"
            "/app/docs/private\n"
            "/app/docs/private/data.txt\n"
            "/app/keep.txt\n"
            "/app/prod.env\n"
            "/app/sub\n"
            "/app/sub/tmpfile.txt\n");
  EXPECT_EQ(run("ignore:1", "cat /app/build/keep.me /app/prod.env"), "kept\nPROD=1\n");
}

TEST_F(DockerignoreBuildTest, ChangingAnIgnoredFileKeepsTheCopyCached) {
  write_mixed_context();
  auto first = build_context("cache:1");
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_EQ(count_lines_containing(step_output(first.out, "COPY . /app"), " ---> Using cache"), 0)
      << first.out;

  // Ignored files change, appear and disappear: the COPY is still a cache hit.
  file("dev.env", "DEV=2\n");
  file("build/out.o", "a different object\n");
  file("docs/guide.md", "rewritten guide\n");
  file("docs/new.md", "a new ignored file\n");
  file("a/b/c/z", "z2 changed\n");
  fs::remove(context() / "tmpfile.txt");
  auto second = build_context("cache:2");
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_EQ(count_lines_containing(step_output(second.out, "COPY . /app"), " ---> Using cache"), 1)
      << second.out;

  // A re-included file is part of the context: changing it is a miss.
  file("build/keep.me", "kept, but changed\n");
  auto third = build_context("cache:3");
  ASSERT_EQ(third.exit_code, 0) << third.out << third.err;
  EXPECT_EQ(count_lines_containing(step_output(third.out, "COPY . /app"), " ---> Using cache"), 0)
      << third.out;
  EXPECT_EQ(run("cache:3", "cat /app/build/keep.me"), "kept, but changed\n");

  // So is changing the ignore file itself (it is not ignored, and it changes the set).
  file(".dockerignore", "*.env\n");
  auto fourth = build_context("cache:4");
  ASSERT_EQ(fourth.exit_code, 0) << fourth.out << fourth.err;
  EXPECT_EQ(count_lines_containing(step_output(fourth.out, "COPY . /app"), " ---> Using cache"), 0)
      << fourth.out;
  EXPECT_EQ(run("cache:4", "ls /app/build"), "keep.me\nout.o\n");
}

TEST_F(DockerignoreBuildTest, DockerfileSpecificIgnoreFileWinsOverTheContextOne) {
  file("Dockerfile", "FROM busybox\nCOPY . /app\n");
  file(".dockerignore", "from-context-ignore.txt\n");
  file("Dockerfile.dockerignore", "from-dockerfile-ignore.txt\n*.dockerignore\n");
  file("from-context-ignore.txt", "1\n");
  file("from-dockerfile-ignore.txt", "2\n");
  file("app.Dockerfile", "FROM busybox\nCOPY . /app\n");
  file("app.Dockerfile.dockerignore", "*.txt\n!from-context-ignore.txt\n");

  // Dockerfile.dockerignore is used, so only its patterns apply and .dockerignore is ignored.
  auto built = build_context("precedence:1");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_EQ(run("precedence:1", "cd /app && find . -type f | sort"),
            "./Dockerfile\n"
            "./app.Dockerfile\n"
            "./from-context-ignore.txt\n");

  // With -f app.Dockerfile, app.Dockerfile.dockerignore is the one used.
  auto other = build_context("precedence:2", {"-f", (context() / "app.Dockerfile").string()});
  ASSERT_EQ(other.exit_code, 0) << other.out << other.err;
  EXPECT_EQ(run("precedence:2", "cd /app && find . -type f | sort"),
            "./.dockerignore\n"
            "./Dockerfile\n"
            "./Dockerfile.dockerignore\n"
            "./app.Dockerfile\n"
            "./app.Dockerfile.dockerignore\n"
            "./from-context-ignore.txt\n");

  // Without either file-specific ignore file, .dockerignore applies.
  fs::remove(context() / "Dockerfile.dockerignore");
  auto plain = build_context("precedence:3");
  ASSERT_EQ(plain.exit_code, 0) << plain.out << plain.err;
  EXPECT_EQ(run("precedence:3", "cd /app && find . -type f | sort"),
            "./.dockerignore\n"
            "./Dockerfile\n"
            "./app.Dockerfile\n"
            "./app.Dockerfile.dockerignore\n"
            "./from-dockerfile-ignore.txt\n");
}

TEST_F(DockerignoreBuildTest, ParentAndAbsoluteSourcesStayInsideTheContext) {
  // A file beside the context, with content that appears nowhere else, and a file of the same
  // name inside the context.
  std::random_device random;
  const std::string secret =
      "outside-the-context-" + std::to_string(random()) + "-" + std::to_string(random());
  write_text(scratch_.path() / "secret.txt", secret + "\n");
  file("secret.txt", "inside the context\n");
  file("sub/nested.txt", "nested\n");
  file("Dockerfile",
       "FROM busybox\n"
       "COPY ../secret.txt /from-parent\n"
       "COPY /secret.txt /from-absolute\n"
       "COPY sub/../../secret.txt /from-nested-parent\n"
       "COPY .. /whole-parent/\n"
       "COPY ../../../ /whole-root/\n");
  auto built = build_context("escape:1");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;

  // Each source resolves against the context root, as BuildKit normalises it against "/".
  EXPECT_EQ(run("escape:1", "cat /from-parent /from-absolute /from-nested-parent"),
            "inside the context\ninside the context\ninside the context\n");
  EXPECT_EQ(run("escape:1", "cd /whole-parent && find . | sort"),
            ".\n./Dockerfile\n./secret.txt\n./sub\n./sub/nested.txt\n");
  EXPECT_EQ(run("escape:1", "cd /whole-root && find . | sort"),
            ".\n./Dockerfile\n./secret.txt\n./sub\n./sub/nested.txt\n");
  // The outside content is nowhere in the image.
  EXPECT_EQ(files_containing("escape:1", secret), "");

  // The host's absolute path of the outside file names nothing in the context: an error, and
  // no image.
  file("Dockerfile",
       "FROM busybox\nCOPY " + (scratch_.path() / "secret.txt").string() + " /from-host\n");
  auto refused = build_context("escape:2");
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("not found"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.out.find(secret), std::string::npos);
  EXPECT_NE(run_slipway(root(), {"inspect", "escape:2"}).exit_code, 0);
}

TEST_F(DockerignoreBuildTest, SymlinkPointingOutsideResolvesInsideTheContext) {
  std::random_device random;
  const std::string secret = "symlink-target-outside-" + std::to_string(random());
  write_text(scratch_.path() / "secret.txt", secret + "\n");
  file("secret.txt", "inside the context\n");
  fs::create_symlink("../secret.txt", context() / "up-link");
  fs::create_symlink("/secret.txt", context() / "root-link");
  file("Dockerfile",
       "FROM busybox\n"
       "COPY up-link /via-relative-link\n"
       "COPY root-link /via-root-link\n"
       "COPY . /ctx/\n");
  auto built = build_context("links:1");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  // A symlink named as a source is followed, but inside the context's own tree: `..` stops at
  // the context root and `/` is the context root.
  EXPECT_EQ(run("links:1", "cat /via-relative-link /via-root-link"),
            "inside the context\ninside the context\n");
  // Inside a copied directory the links stay links.
  EXPECT_EQ(run("links:1", "readlink /ctx/up-link; readlink /ctx/root-link"),
            "../secret.txt\n/secret.txt\n");
  EXPECT_EQ(files_containing("links:1", secret), "");

  // A link to the host path of the outside file names nothing inside the context: an error,
  // as with BuildKit, and the outside file is never read.
  fs::create_symlink(scratch_.path() / "secret.txt", context() / "host-link");
  file("Dockerfile", "FROM busybox\nCOPY host-link /via-host-link\n");
  auto refused = build_context("links:2");
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("not found"), std::string::npos) << refused.err;
  EXPECT_EQ((refused.out + refused.err).find(secret), std::string::npos);
  EXPECT_NE(run_slipway(root(), {"inspect", "links:2"}).exit_code, 0);
}

}  // namespace
}  // namespace slipway::testing
