// ADD <url> end to end: the real binary downloads from a file server the test runs on
// 127.0.0.1, and the files are checked inside the built image with `slipway run`.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "store/digest.h"
#include "tests/http_file_server.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;

constexpr const char* kHello = "hello from the server\n";
constexpr const char* kHelloModified = "Wed, 21 Oct 2015 07:28:00 GMT";
constexpr const char* kHelloModifiedEpoch = "1445412480";

class AddUrlTest : public BusyboxStoreTest {
 protected:
  void SetUp() override {
    BusyboxStoreTest::SetUp();
    server_.put("/files/hello.txt", {kHello, kHelloModified});
  }

  CommandResult build_ok(const std::string& dockerfile, const std::string& tag) {
    auto built = build(dockerfile, tag);
    EXPECT_EQ(built.exit_code, 0) << built.out << built.err;
    return built;
  }

  // The output of a shell command run in `image`.
  std::string in_image(const std::string& image, const std::string& command) {
    auto ran = run_slipway(root(), {"run", "--rm", image, "sh", "-c", command});
    EXPECT_EQ(ran.exit_code, 0) << ran.err;
    return ran.out;
  }

  HttpFileServer server_;
};

TEST_F(AddUrlTest, DirectoryDestinationNamesTheFileAfterTheUrlPath) {
  build_ok("FROM busybox\nADD " + server_.url("/files/hello.txt") + " /downloads/\n", "dl:1");
  EXPECT_EQ(in_image("dl:1", "cat /downloads/hello.txt"), kHello);
  // Mode 0600, owned by root, mtime from Last-Modified: what docker leaves.
  EXPECT_EQ(in_image("dl:1", "stat -c '%a %u:%g %Y' /downloads/hello.txt"),
            std::string("600 0:0 ") + kHelloModifiedEpoch + "\n");
  EXPECT_EQ(in_image("dl:1", "ls /downloads"), "hello.txt\n");
}

TEST_F(AddUrlTest, FileDestinationIsTheFileName) {
  build_ok("FROM busybox\nWORKDIR /etc\nADD " + server_.url("/files/hello.txt?version=2") +
               " app.conf\n",
           "dl:1");
  EXPECT_EQ(in_image("dl:1", "cat /etc/app.conf"), kHello);
  EXPECT_EQ(in_image("dl:1", "stat -c '%a %u:%g' /etc/app.conf"), "600 0:0\n");
  EXPECT_EQ(in_image("dl:1", "test -e /etc/hello.txt || echo no hello.txt"), "no hello.txt\n");
}

TEST_F(AddUrlTest, SeveralUrlsLandInADirectoryUnderTheirDecodedNames) {
  // The name is the URL path's last element, percent-decoded; wildcard characters in it are
  // plain characters. A URL without a path element gives __unnamed__, as in BuildKit.
  server_.put("/files/report%5B1%5D.txt", {"report\n", ""});
  server_.put("/", {"root\n", ""});
  build_ok("FROM busybox\nADD " + server_.url("/files/report%5B1%5D.txt") + " " + server_.url("/") +
               " /many/\n",
           "dl:1");
  EXPECT_EQ(in_image("dl:1", "ls /many"), "__unnamed__\nreport[1].txt\n");
  EXPECT_EQ(in_image("dl:1", "cat '/many/report[1].txt' /many/__unnamed__"), "report\nroot\n");
}

TEST_F(AddUrlTest, ChownAndChmodApplyToTheDownload) {
  build_ok("FROM busybox\nADD --chown=1000:1001 --chmod=644 " + server_.url("/files/hello.txt") +
               " /srv/\n",
           "dl:1");
  EXPECT_EQ(in_image("dl:1", "stat -c '%a %u:%g' /srv/hello.txt"), "644 1000:1001\n");
}

TEST_F(AddUrlTest, UrlsAreNotUnpackedByDefault) {
  // A tar archive from a URL stays an archive (a local one would be extracted).
  ScratchDir scratch;
  write_text(scratch.path() / "inside.txt", "packed\n");
  auto packed = run_program({"tar", "-cf", (scratch.path() / "a.tar").string(), "-C",
                             scratch.path().string(), "inside.txt"});
  ASSERT_EQ(packed.exit_code, 0) << packed.err;
  server_.put("/a.tar", {read_file(scratch.path() / "a.tar"), ""});
  build_ok("FROM busybox\nADD " + server_.url("/a.tar") + " /x/\n", "dl:1");
  EXPECT_EQ(in_image("dl:1", "ls /x"), "a.tar\n");
  EXPECT_EQ(in_image("dl:1", "tar -xOf /x/a.tar inside.txt"), "packed\n");
}

TEST_F(AddUrlTest, UnpackTrueExtractsADownloadedArchive) {
  ScratchDir scratch;
  write_text(scratch.path() / "tree/inside.txt", "packed\n");
  auto packed = run_program({"tar", "-czf", (scratch.path() / "a.tgz").string(), "-C",
                             (scratch.path() / "tree").string(), "."});
  ASSERT_EQ(packed.exit_code, 0) << packed.err;
  server_.put("/a.tgz", {read_file(scratch.path() / "a.tgz"), ""});
  build_ok("FROM busybox\nADD --unpack=true " + server_.url("/a.tgz") + " " +
               server_.url("/files/hello.txt") + " /x/\n",
           "dl:1");
  // The archive is extracted; a file that is none is copied as it is.
  EXPECT_EQ(in_image("dl:1", "ls /x && cat /x/inside.txt"), "hello.txt\ninside.txt\npacked\n");
}

TEST_F(AddUrlTest, WithoutChecksumTheUrlIsFetchedEachBuildAndKeyedByContent) {
  std::string dockerfile = "FROM busybox\nADD " + server_.url("/files/hello.txt") + " /hello\n";
  build_ok(dockerfile, "dl:1");
  EXPECT_EQ(server_.requests(), 1);

  // Same bytes: downloaded again (nothing else tells whether they changed), then a cache hit.
  auto again = build_ok(dockerfile, "dl:2");
  EXPECT_EQ(server_.requests(), 2);
  EXPECT_EQ(count_lines_containing(again.out, "Using cache"), 1) << again.out;

  // New bytes at the same URL: a miss, and the image has them.
  server_.put("/files/hello.txt", {"changed\n", kHelloModified});
  auto changed = build_ok(dockerfile, "dl:3");
  EXPECT_EQ(count_lines_containing(changed.out, "Using cache"), 0) << changed.out;
  EXPECT_EQ(in_image("dl:3", "cat /hello"), "changed\n");
}

TEST_F(AddUrlTest, MatchingChecksumBuildsAndARebuildNeverContactsTheServer) {
  std::string dockerfile = "FROM busybox\nADD --checksum=" + store::sha256_digest(kHello) + " " +
                           server_.url("/files/hello.txt") + " /hello\n";
  build_ok(dockerfile, "dl:1");
  EXPECT_EQ(in_image("dl:1", "cat /hello"), kHello);
  int requests = server_.requests();
  EXPECT_EQ(requests, 1);

  auto again = build_ok(dockerfile, "dl:2");
  EXPECT_EQ(count_lines_containing(again.out, "Using cache"), 1) << again.out;
  EXPECT_EQ(server_.requests(), requests);
}

TEST_F(AddUrlTest, LinkedDownloadWithChecksumIsReusedOnANewParentWithoutADownload) {
  std::string dockerfile =
      "FROM busybox\nARG V=1\nRUN mkdir -m 700 /srv && echo $V > /v\n"
      "ADD --link --checksum=" +
      store::sha256_digest(kHello) + " " + server_.url("/files/hello.txt") + " /srv/\n";
  build_ok(dockerfile, "dl:1");
  EXPECT_EQ(server_.requests(), 1);
  // The ADD's own layer made /srv (0755), not the RUN's 0700 one below.
  EXPECT_EQ(in_image("dl:1", "stat -c %a /srv && cat /srv/hello.txt"),
            std::string("755\n") + kHello);

  // A changed RUN below: the ADD is a cache hit all the same, and downloads nothing.
  auto rebuilt = build_context("dl:2", {"--build-arg", "V=2"});
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.out << rebuilt.err;
  EXPECT_EQ(count_lines_containing(rebuilt.out, "Using cache"), 1) << rebuilt.out;
  EXPECT_EQ(server_.requests(), 1);
  EXPECT_EQ(in_image("dl:2", "cat /v /srv/hello.txt"), std::string("2\n") + kHello);
}

TEST_F(AddUrlTest, ChecksumMismatchFailsAndLeavesNothing) {
  std::string wrong = store::sha256_digest("something else");
  auto failed = build(
      "FROM busybox\nADD --checksum=" + wrong + " " + server_.url("/files/hello.txt") + " /hello\n",
      "dl:1");
  EXPECT_EQ(failed.exit_code, 1) << failed.out;
  EXPECT_EQ(failed.err, "Dockerfile:2:1: ADD: checksum mismatch for " +
                            server_.url("/files/hello.txt") + ": expected " + wrong + ", got " +
                            store::sha256_digest(kHello) + "\n");
  EXPECT_EQ(image_names(), "busybox:latest\n");
  EXPECT_TRUE(fs::is_empty(root() / "tmp"));
}

TEST_F(AddUrlTest, MissingFileNamesTheUrlAndTheStatus) {
  auto failed = build("FROM busybox\nADD " + server_.url("/nope.txt") + " /nope\n", "dl:1");
  EXPECT_EQ(failed.exit_code, 1) << failed.out;
  EXPECT_EQ(failed.err, "Dockerfile:2:1: ADD: cannot download " + server_.url("/nope.txt") +
                            ": HTTP status 404 Not Found\n");
  EXPECT_EQ(image_names(), "busybox:latest\n");
  EXPECT_TRUE(fs::is_empty(root() / "tmp"));
}

TEST_F(AddUrlTest, RefusedConnectionNamesTheUrl) {
  // A port nothing listens on: bound by us and never listened to, so no one else takes it.
  UniqueFd reserved(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(reserved.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::getsockname(reserved.get(), reinterpret_cast<sockaddr*>(&address), &length), 0);
  std::string url = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/x";
  auto failed = build("FROM busybox\nADD " + url + " /x\n", "dl:1");
  EXPECT_EQ(failed.exit_code, 1) << failed.out;
  std::string prefix = "Dockerfile:2:1: ADD: cannot download " + url + ": ";
  EXPECT_EQ(failed.err.rfind(prefix, 0), 0u) << failed.err;
  EXPECT_EQ(count_lines_containing(failed.err, ""), 1) << failed.err;
  EXPECT_EQ(image_names(), "busybox:latest\n");
}

struct BadAddCase {
  const char* name;
  const char* add_line;  // "{url}" stands for the server's hello.txt
  const char* expected_error;
};

void PrintTo(const BadAddCase& input, std::ostream* os) {
  *os << input.name;
}

class BadAddUrlTest : public AddUrlTest, public ::testing::WithParamInterface<BadAddCase> {};

TEST_P(BadAddUrlTest, IsRefusedBeforeAnythingIsFetched) {
  std::string line = GetParam().add_line;
  if (size_t at = line.find("{url}"); at != std::string::npos)
    line.replace(at, 5, server_.url("/files/hello.txt"));
  write_text(context() / "local.txt", "local\n");
  auto failed = build("FROM busybox\n" + line + "\n", "dl:1");
  EXPECT_EQ(failed.exit_code, 1) << failed.out;
  EXPECT_EQ(failed.err, std::string(GetParam().expected_error) + "\n");
  EXPECT_EQ(server_.requests(), 0);
  EXPECT_EQ(image_names(), "busybox:latest\n");
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadAddUrlTest,
    ::testing::Values(
        BadAddCase{"ChecksumOnLocalSource",
                   "ADD --checksum=sha256:"
                   "0000000000000000000000000000000000000000000000000000000000000000 local.txt /x",
                   "Dockerfile:2:5: checksum can't be specified for non-HTTP(S) sources"},
        BadAddCase{"ChecksumWithTwoSources",
                   "ADD --checksum=sha256:"
                   "0000000000000000000000000000000000000000000000000000000000000000 {url} "
                   "local.txt /x/",
                   "Dockerfile:2:5: checksum can't be specified for multiple sources"},
        BadAddCase{"ChecksumNotADigest", "ADD --checksum=md5:abc {url} /x",
                   "Dockerfile:2:5: invalid checksum digest format: \"md5:abc\" (expected "
                   "sha256:<64 lowercase hex digits>)"},
        BadAddCase{"CopyFromUrl", "COPY {url} /x",
                   "Dockerfile:2:1: COPY: source can't be a URL for COPY"}),
    [](const auto& case_info) { return case_info.param.name; });

}  // namespace
}  // namespace slipway::testing
