// End-to-end tests of `slipway build` and `slipway run`: the real binary, a throwaway store,
// a busybox base image imported from a tarball, real namespaces and overlayfs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "common/fs.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

class BuildTest : public BusyboxStoreTest {};

TEST_F(BuildTest, ImagesListsTheImportedBaseImage) {
  auto listed = run_slipway(root(), {"images"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out.rfind("REPOSITORY   TAG       IMAGE ID       CREATED", 0), 0u) << listed.out;
  EXPECT_EQ(image_names(), "busybox:latest\n");
  EXPECT_NE(listed.out.find("MB\n"), std::string::npos) << listed.out;
}

TEST_F(BuildTest, ClassicDockerfileBuildsAndItsImageRuns) {
  auto built = run_slipway(
      root(), {"build", "-t", "classic:1", std::string(SLIPWAY_SOURCE_DIR) + "/testdata/classic"});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_NE(built.out.find("Step 1/8 : FROM busybox\n"), std::string::npos) << built.out;
  EXPECT_NE(built.out.find("Step 8/8 : CMD [\"/bin/sh\", \"-c\", "), std::string::npos);
  EXPECT_EQ(count_lines_containing(built.out, " ---> Running in "), 3) << built.out;
  EXPECT_NE(built.out.find("Successfully tagged classic:1\n"), std::string::npos);

  auto ran = run_slipway(root(), {"run", "--rm", "classic:1"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out,
            "hello from the first layer\n"
            "hello from the second layer\n"
            "export VISIBLE=now\n"
            "NOTVISIBLE=in users profile\n");

  json config = image_config(root(), "classic:1");
  EXPECT_EQ(config["author"], "slipway developers <dev@slipway.invalid>");
  EXPECT_EQ(config["config"]["Env"], json({kDefaultPath, "NOTVISIBLE=in users profile"}));
  EXPECT_EQ(config["config"]["ExposedPorts"], json({{"22/tcp", json::object()}}));
  EXPECT_EQ(config["config"]["Cmd"],
            json({"/bin/sh", "-c", "cat /greeting.txt /var/run/demo/info.txt /etc/profile"}));
  EXPECT_EQ(config["rootfs"]["diff_ids"].size(), 4u);  // base + three RUN layers

  std::vector<std::pair<std::string, bool>> history;
  for (const auto& entry : config["history"])
    history.emplace_back(entry.value("created_by", ""), entry.value("empty_layer", false));
  std::vector<std::pair<std::string, bool>> expected = {
      {"", false},  // the imported base layer
      {"MAINTAINER slipway developers <dev@slipway.invalid>", true},
      {"RUN /bin/sh -c echo \"hello from the first layer\" > /greeting.txt # buildkit", false},
      {"RUN /bin/sh -c mkdir -p /var/run/demo     && echo \"hello from the second layer\" > "
       "/var/run/demo/info.txt # buildkit",
       false},
      {"ENV NOTVISIBLE=in users profile", true},
      {"RUN /bin/sh -c echo \"export VISIBLE=now\" >> /etc/profile     && echo "
       "\"NOTVISIBLE=$NOTVISIBLE\" >> /etc/profile # buildkit",
       false},
      {"EXPOSE [22/tcp]", true},
      {"CMD [\"/bin/sh\" \"-c\" \"cat /greeting.txt /var/run/demo/info.txt /etc/profile\"]", true}};
  EXPECT_EQ(history, expected);
  for (const auto& entry : config["history"]) EXPECT_TRUE(entry.contains("created"));
}

// Accepts TCP connections on a loopback port and counts them: a RUN step (which shares the
// host's network during builds) that connects here proves it ran, and its absence proves the
// step did not run.
class ConnectionCounter {
 public:
  ConnectionCounter() {
    listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), length) < 0 ||
        ::listen(listener_.get(), 16) < 0 ||
        ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length) < 0)
      throw std::runtime_error("cannot listen on loopback");
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{listener_.get(), POLLIN, 0};
        if (::poll(&p, 1, 50) > 0) {
          UniqueFd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
          if (connection) ++count_;
        }
      }
    });
  }
  ~ConnectionCounter() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return port_; }
  int count() const { return count_; }

 private:
  UniqueFd listener_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> count_{0};
  std::thread thread_;
};

TEST_F(BuildTest, SecondBuildIsFullyCachedAndStartsNoContainer) {
  ConnectionCounter counter;
  std::string dockerfile =
      "FROM busybox\n"
      "RUN echo first-step-ran && echo one > /one\n"
      "RUN echo side-effect | nc 127.0.0.1 " +
      std::to_string(counter.port()) +
      "\n"
      "ENV GREETING=hello\n"
      "RUN echo third-step-ran && echo $GREETING > /three\n"
      "CMD [\"cat\", \"/one\", \"/three\"]\n";
  auto first = build(dockerfile, "cached:1");
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_EQ(counter.count(), 1);
  EXPECT_EQ(count_lines_equal(first.out, "first-step-ran"), 1);

  auto second = build(dockerfile, "cached:1");
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_EQ(counter.count(), 1) << "a cached RUN step ran again";
  EXPECT_EQ(count_lines_containing(second.out, " ---> Using cache"), 5) << second.out;
  EXPECT_EQ(count_lines_containing(second.out, "Running in"), 0) << second.out;
  EXPECT_EQ(count_lines_equal(second.out, "first-step-ran"), 0);
  EXPECT_EQ(count_lines_equal(second.out, "third-step-ran"), 0);

  auto last_line = [](const std::string& out, const std::string& prefix) {
    size_t at = out.find(prefix);
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
  };
  EXPECT_EQ(last_line(first.out, "Successfully built "),
            last_line(second.out, "Successfully built "));
  EXPECT_FALSE(last_line(first.out, "Successfully built ").empty());

  auto ran = run_slipway(root(), {"run", "--rm", "cached:1"});
  EXPECT_EQ(ran.out, "one\nhello\n");
}

TEST_F(BuildTest, ChangingOneRunRebuildsThatStepAndTheOnesAfter) {
  auto dockerfile = [](const std::string& middle) {
    return "FROM busybox\n"
           "RUN echo step-a-ran > /a\n"
           "RUN echo " +
           middle +
           "-ran > /b\n"
           "RUN echo step-c-ran > /c\n";
  };
  ASSERT_EQ(build(dockerfile("step-b"), "partial:1").exit_code, 0);
  auto rebuilt = build(dockerfile("step-b2"), "partial:1");
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.out << rebuilt.err;
  EXPECT_EQ(count_lines_containing(rebuilt.out, " ---> Using cache"), 1) << rebuilt.out;
  EXPECT_EQ(count_lines_containing(rebuilt.out, "Running in"), 2) << rebuilt.out;
  // The cache hit is step 2, the first RUN.
  size_t step2 = rebuilt.out.find("Step 2/4");
  size_t step3 = rebuilt.out.find("Step 3/4");
  EXPECT_NE(rebuilt.out.substr(step2, step3 - step2).find("Using cache"), std::string::npos);

  auto ran = run_slipway(root(), {"run", "--rm", "partial:1", "cat", "/a", "/b", "/c"});
  EXPECT_EQ(ran.out, "step-a-ran\nstep-b2-ran\nstep-c-ran\n");
}

// The parse of a Dockerfile is kept as cache/parse-* (builder.cpp); a damaged one is parsed
// again and replaced, and the build's output is the same (warnings included).
TEST_F(BuildTest, ADamagedParseMemoIsParsedAgain) {
  std::string dockerfile = "FROM busybox\nLABEL memo=yes \\\n\n  other=no\n";
  ASSERT_EQ(build(dockerfile, "memo:1").exit_code, 0);
  auto cached = build(dockerfile, "memo:1");  // from the memo
  ASSERT_EQ(cached.exit_code, 0) << cached.err;
  std::vector<fs::path> memos;
  for (const auto& entry : fs::directory_iterator(root() / "cache"))
    if (entry.path().filename().string().starts_with("parse-")) memos.push_back(entry.path());
  ASSERT_EQ(memos.size(), 1u);
  std::string intact = slipway::read_file(memos[0]);
  write_text(memos[0], intact.substr(0, intact.size() / 2));
  auto again = build(dockerfile, "memo:1");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, cached.out);
  EXPECT_EQ(slipway::read_file(memos[0]), intact);
  EXPECT_EQ(count_lines_containing(again.out, "Empty continuation line found in"), 1) << again.out;
}

TEST_F(BuildTest, NoCacheRunsEveryStepAgain) {
  std::string dockerfile = "FROM busybox\nRUN echo ran-again\n";
  ASSERT_EQ(build(dockerfile, "nocache:1").exit_code, 0);
  auto again = build(dockerfile, "nocache:1", {"--no-cache"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(count_lines_containing(again.out, "Using cache"), 0);
  EXPECT_EQ(count_lines_equal(again.out, "ran-again"), 1);
}

// docker build -q: stdout is the image ID alone (so `id=$(slipway build -q .)` works), the
// steps' output is hidden, and a failing step's output still reaches stderr with the error.
TEST_F(BuildTest, QuietPrintsOnlyTheImageIdAndShowsOutputOnlyOnFailure) {
  auto built =
      build("FROM busybox\nRUN echo step-output && echo step-stderr >&2\n", "quiet:1", {"-q"});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  auto inspected = run_slipway(root(), {"images", "-q", "--no-trunc", "quiet:1"});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_EQ(built.out, inspected.out);
  EXPECT_TRUE(built.out.starts_with("sha256:")) << built.out;
  EXPECT_EQ(built.err.find("step-output"), std::string::npos) << built.err;
  EXPECT_EQ(built.err.find("step-stderr"), std::string::npos) << built.err;

  auto failed = build("FROM busybox\nRUN echo before-the-failure && false\n", "quiet:2", {"-q"});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_EQ(failed.out, "");
  EXPECT_NE(failed.err.find("before-the-failure"), std::string::npos) << failed.err;
  EXPECT_NE(failed.err.find("returned a non-zero code: 1"), std::string::npos) << failed.err;
  EXPECT_FALSE(run_slipway(root(), {"images", "-q", "quiet:2"}).out.starts_with("sha256"));
  // Nothing of the kept output is left in the store's tmp/.
  EXPECT_TRUE(fs::is_empty(root() / "tmp")) << "tmp/ not empty";
}

TEST_F(BuildTest, DeletingALowerFileMakesAWhiteout) {
  auto built = build(
      "FROM busybox\n"
      "RUN mkdir -p /data && echo keep > /data/kept && echo drop > /data/dropped\n"
      "RUN rm /data/dropped /etc/profile\n",
      "whiteout:1");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  auto listed = run_slipway(root(), {"run", "--rm", "whiteout:1", "ls", "/data", "/etc"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("kept"), std::string::npos);
  EXPECT_EQ(listed.out.find("dropped"), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find("profile"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("passwd"), std::string::npos);

  // The top layer, as a tar, says so with OCI whiteout entries.
  auto inspected = run_slipway(root(), {"inspect", "whiteout:1"});
  json manifest_index = json::parse(read_file(root() / "oci/index.json"));
  std::string manifest_digest;
  for (const auto& entry : manifest_index["manifests"])
    if (entry["annotations"]["org.opencontainers.image.ref.name"] == "whiteout:1")
      manifest_digest = entry["digest"];
  json manifest = json::parse(read_file(root() / "oci/blobs/sha256" / manifest_digest.substr(7)));
  std::string top = manifest["layers"].back()["digest"];
  auto entries =
      run_program({"tar", "-tzf", (root() / "oci/blobs/sha256" / top.substr(7)).string()});
  ASSERT_EQ(entries.exit_code, 0) << entries.err;
  EXPECT_NE(entries.out.find("data/.wh.dropped\n"), std::string::npos) << entries.out;
  EXPECT_NE(entries.out.find("etc/.wh.profile\n"), std::string::npos) << entries.out;
}

TEST_F(BuildTest, RunPassesTheExitCodeThrough) {
  auto ran = run_slipway(root(), {"run", "--rm", "busybox", "sh", "-c", "echo out; exit 7"});
  EXPECT_EQ(ran.exit_code, 7);
  EXPECT_EQ(ran.out, "out\n");
  auto missing = run_slipway(root(), {"run", "--rm", "busybox", "no-such-command"});
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_NE(missing.err.find("executable file not found in $PATH"), std::string::npos)
      << missing.err;
}

TEST_F(BuildTest, RunFailuresBeforeTheCommandStartsExitWith125) {
  auto missing = run_slipway(root(), {"run", "--rm", "--pull=never", "nosuch:1"});
  EXPECT_EQ(missing.exit_code, 125);
  EXPECT_EQ(missing.err.find("Unable to find image"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("nosuch:1"), std::string::npos) << missing.err;
  // Without --pull=never the image is pulled first, as docker does; this namespace reaches no
  // registry, and the error names the host and the cause.
  auto pulled = run_slipway(root(), {"run", "--rm", "nosuch:1"});
  EXPECT_EQ(pulled.exit_code, 125);
  EXPECT_EQ(pulled.err.rfind("Unable to find image 'nosuch:1' locally\n", 0), 0u) << pulled.err;
  auto no_command = run_slipway(root(), {"run", "--rm", "busybox"});
  EXPECT_EQ(no_command.exit_code, 125);
  EXPECT_EQ(no_command.err, "Error: no command specified: the image has no CMD or ENTRYPOINT\n");
}

TEST_F(BuildTest, UnknownCommandIsNamed) {
  auto unknown = run_slipway(root(), {"biuld", "."});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.err, "slipway: 'biuld' is not a slipway command.\nSee 'slipway --help'\n");
}

// ---- bad input: one clear line, exit 1, nothing tagged, and the store still works.

struct BadInputCase {
  const char* name;
  const char* dockerfile;
  const char* expected_error;
};

void PrintTo(const BadInputCase& input, std::ostream* os) {
  *os << input.name;
}

class BadDockerfileTest : public BuildTest, public ::testing::WithParamInterface<BadInputCase> {};

TEST_P(BadDockerfileTest, FailsWithAClearErrorAndLeavesTheStoreUsable) {
  const auto& param = GetParam();
  // --pull=never: a missing base image must not send the build to a registry on the internet.
  auto failed = build(param.dockerfile, "bad:1", {"--pull=never"});
  EXPECT_EQ(failed.exit_code, 1) << failed.out << failed.err;
  EXPECT_EQ(failed.err, std::string(param.expected_error) + "\n") << failed.out;
  EXPECT_EQ(image_names(), "busybox:latest\n");

  auto good = build("FROM busybox\nRUN echo fine > /fine\n", "good:1");
  ASSERT_EQ(good.exit_code, 0) << good.out << good.err;
  EXPECT_EQ(run_slipway(root(), {"run", "--rm", "good:1", "cat", "/fine"}).out, "fine\n");
  // Nothing is left behind in the store's scratch space.
  EXPECT_TRUE(fs::is_empty(root() / "tmp"));
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadDockerfileTest,
    ::testing::Values(
        BadInputCase{"UnknownInstruction", "FROM busybox\nFORM busybox\n",
                     "Dockerfile:2:1: unknown instruction: FORM (did you mean FROM?)"},
        // Docker runs an unterminated exec form through the shell, where it fails.
        BadInputCase{"UnterminatedJsonArrayInRun", "FROM busybox\nRUN [\"false\"\n",
                     "/bin/sh: [false: not found\n"
                     "The command '/bin/sh -c [\"false\"' returned a non-zero code: 127"},
        BadInputCase{"MissingFrom", "RUN echo hi\n",
                     "Dockerfile:1:1: no build stage in current context: the first instruction "
                     "must be FROM, found RUN"},
        BadInputCase{"FromMissingImage", "FROM nosuchimage:1.0\nRUN true\n",
                     "Dockerfile:1:1: FROM nosuchimage:1.0: no such image: nosuchimage:1.0 "
                     "(import or pull it first)"},
        BadInputCase{"FailingRun", "FROM busybox\nRUN echo partial > /x && exit 3\n",
                     "The command '/bin/sh -c echo partial > /x && exit 3' returned a non-zero "
                     "code: 3"},
        BadInputCase{"EmptyDockerfile", "# nothing here\n",
                     "Dockerfile:1:1: file with no instructions"},
        // The column points at the first element that is not a string.
        BadInputCase{"ShellJsonWithNonStrings", "FROM busybox\nSHELL [\"/bin/sh\", 1]\n",
                     "Dockerfile:2:19: when using JSON array syntax, arrays must be comprised of "
                     "strings only"},
        BadInputCase{"UnterminatedHeredoc", "FROM busybox\nRUN <<EOF\necho hi\n",
                     "Dockerfile:2:5: unterminated heredoc"},
        BadInputCase{"RequiredVariableUnsetInEnv", "FROM busybox\nENV X=${V:?need_V}\n",
                     "Dockerfile:2:1: ENV: failed to process \"${V:?need_V}\": V: need_V"},
        // The word is printed Go-quoted, as BuildKit does: the quotes in it are escaped.
        BadInputCase{"RequiredVariableUnsetInQuotedEnv", "FROM busybox\nENV X=\"${V:?need V}\"\n",
                     "Dockerfile:2:1: ENV: failed to process \"\\\"${V:?need V}\\\"\": V: need V"},
        BadInputCase{"RequiredVariableUnsetInWorkdir", "FROM busybox\nWORKDIR /app/${V:?}\n",
                     "Dockerfile:2:1: WORKDIR: failed to process \"/app/${V:?}\": V: is not "
                     "allowed to be unset"}),
    [](const auto& case_info) { return case_info.param.name; });

// BuildKit's parser takes a JSON array without its closing bracket as shell form (the corpus
// case jeztah-invalid-json-unterminated-bracket), so the command is the text run by /bin/sh.
TEST_F(BuildTest, UnterminatedJsonArrayIsShellFormAsInDocker) {
  auto built = build(
      "FROM busybox\n"
      "ENTRYPOINT [\"echo\", \"ep\"\n"
      "CMD [\"echo\", \"hi\"\n",
      "unterminated:1");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  json config = image_config(root(), "unterminated:1");
  EXPECT_EQ(config["config"]["Cmd"], json({"/bin/sh", "-c", "[\"echo\", \"hi\""}));
  EXPECT_EQ(config["config"]["Entrypoint"], json({"/bin/sh", "-c", "[\"echo\", \"ep\""}));
  EXPECT_EQ(config["history"].back()["created_by"],
            "CMD [\"/bin/sh\" \"-c\" \"[\\\"echo\\\", \\\"hi\\\"\"]");
}

// As BuildKit does: an empty line inside a continuation is a warning naming the line, and the
// instruction is built without it.
TEST_F(BuildTest, EmptyContinuationLineWarnsAndBuilds) {
  auto built = build("FROM busybox\nRUN echo a \\\n\n  && echo b > /ab\n", "warned:1");
  ASSERT_EQ(built.exit_code, 0) << built.err;
  EXPECT_EQ(count_lines_equal(built.out,
                              "[WARNING]: Dockerfile:4: Empty continuation line found "
                              "in: RUN echo a   && echo b > /ab"),
            1)
      << built.out;
  EXPECT_EQ(run_slipway(root(), {"run", "--rm", "warned:1", "cat", "/ab"}).out, "b\n");
}

TEST_F(BuildTest, MissingContextDirectoryIsAClearError) {
  auto failed = run_slipway(root(), {"build", "-t", "x:1", (scratch_.path() / "nope").string()});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_EQ(failed.err, "unable to prepare context: path \"" + (scratch_.path() / "nope").string() +
                            "\" not found\n");
  EXPECT_EQ(image_names(), "busybox:latest\n");
}

TEST_F(BuildTest, BadPullPolicyIsNamed) {
  auto failed = build("FROM busybox\nRUN echo should-not-run\n", "x:1", {"--pull=sometimes"});
  EXPECT_EQ(failed.exit_code, 125);  // a flag's bad value is a usage error, as in docker
  EXPECT_EQ(failed.out.find("should-not-run"), std::string::npos);
  EXPECT_EQ(failed.err.rfind("--pull: sometimes not in {missing,always,never}\n", 0), 0u)
      << failed.err;
  EXPECT_EQ(image_names(), "busybox:latest\n");
}

TEST_F(BuildTest, BadTagIsRejectedBeforeBuilding) {
  auto failed = build("FROM busybox\nRUN echo should-not-run\n", "Bad/Name");
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_EQ(failed.out.find("should-not-run"), std::string::npos);
  EXPECT_NE(failed.err.find("invalid reference format: \"Bad/Name\""), std::string::npos)
      << failed.err;
}

}  // namespace
}  // namespace slipway::testing
