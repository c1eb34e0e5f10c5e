// commit and diff through the real binary (issue 12 acceptance 4, issue 11 acceptance 4): a
// container's added, changed and deleted files as docker's A/C/D list and as a new image, with
// volumes left out.
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/test_support.h"

namespace slipway::testing {
namespace {
using nlohmann::json;

class CommitDiffTest : public BusyboxStoreTest {
 protected:
  void TearDown() override { remove_containers_and_expect_no_mounts(); }
  CommandResult slipway(const std::vector<std::string>& args) { return run_slipway(root(), args); }
  void build_ok(const std::string& dockerfile, const std::string& tag) {
    auto built = build(dockerfile, tag);
    ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  }
};

TEST_F(CommitDiffTest, DiffListsAddedChangedDeletedAndCommitKeepsThem) {
  build_ok("FROM busybox\nRUN mkdir /w && echo old > /w/changed && echo gone > /w/deleted\n",
           "base");
  auto ran = slipway({"run", "--name", "work", "base", "sh", "-c",
                      "echo new > /w/added && echo more >> /w/changed && rm /w/deleted"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  auto diff = slipway({"diff", "work"});
  ASSERT_EQ(diff.exit_code, 0) << diff.err;
  EXPECT_EQ(diff.out, "C /w\nA /w/added\nC /w/changed\nD /w/deleted\n");
  EXPECT_EQ(slipway({"container", "diff", "work"}).out, diff.out);

  auto committed =
      slipway({"commit", "-m", "three changes", "-a", "Tester <t@example.com>", "-c",
               "ENV STAGE=committed", "-c", "CMD [\"cat\", \"/w/added\"]", "work", "snap:v1"});
  ASSERT_EQ(committed.exit_code, 0) << committed.err;
  EXPECT_EQ(committed.out.rfind("sha256:", 0), 0u) << committed.out;
  auto shown = slipway({"run", "--rm", "snap:v1", "sh", "-c",
                        "cat /w/added /w/changed; test -e /w/deleted || echo deleted; "
                        "echo $STAGE"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(shown.out, "new\nold\nmore\ndeleted\ncommitted\n");
  EXPECT_EQ(slipway({"run", "--rm", "snap:v1"}).out, "new\n");  // the CMD from -c
  json config = image_config(root(), "snap:v1");
  EXPECT_EQ(config.at("author"), "Tester <t@example.com>");
  EXPECT_EQ(config.at("history").back().at("comment"), "three changes");
  auto history = slipway({"history", "snap:v1"});
  EXPECT_NE(history.out.find("three changes"), std::string::npos) << history.out;

  // Without a name: an image found by its ID.
  auto unnamed = slipway({"commit", "work"});
  ASSERT_EQ(unnamed.exit_code, 0) << unnamed.err;
  std::string id = unnamed.out.substr(7, 12);
  EXPECT_EQ(slipway({"run", "--rm", id, "cat", "/w/added"}).out, "new\n");
}

TEST_F(CommitDiffTest, CommitLeavesVolumesOut) {
  build_ok("FROM busybox\nRUN mkdir /data && echo seed > /data/seed\nVOLUME /data\n", "vol");
  ASSERT_EQ(slipway({"run", "--name", "writer", "-v", "named:/named", "vol", "sh", "-c",
                     "echo x > /data/written && echo y > /named/file && echo z > /outside"})
                .exit_code,
            0);
  auto diff = slipway({"diff", "writer"});
  EXPECT_EQ(diff.out, "A /outside\n");
  ASSERT_EQ(slipway({"commit", "writer", "committed"}).exit_code, 0);
  auto listed = slipway({"run", "--rm", "committed", "sh", "-c",
                         "ls /data; ls /named 2>/dev/null | wc -l; cat /outside"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out, "seed\n0\nz\n");
}

TEST_F(CommitDiffTest, CommitOfARunningContainerAndBadInput) {
  auto started = slipway(
      {"run", "-d", "--name", "live", "busybox", "sh", "-c", "echo hot > /hot && sleep 30"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  for (int i = 0; i < 100 && slipway({"diff", "live"}).out.find("A /hot") == std::string::npos; ++i)
    usleep(50000);
  EXPECT_EQ(slipway({"diff", "live"}).out, "A /hot\n");
  ASSERT_EQ(slipway({"commit", "live", "hot"}).exit_code, 0);
  EXPECT_EQ(slipway({"run", "--rm", "hot", "cat", "/hot"}).out, "hot\n");
  auto missing = slipway({"commit", "nosuch", "x"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("No such container: nosuch"), std::string::npos);
  auto bad_change = slipway({"commit", "-c", "RUN echo hi", "live", "y"});
  EXPECT_EQ(bad_change.exit_code, 1);
  EXPECT_NE(bad_change.err.find("RUN is not a valid change command"), std::string::npos)
      << bad_change.err;
  EXPECT_EQ(slipway({"diff", "nosuch"}).exit_code, 1);
}

}  // namespace
}  // namespace slipway::testing
