// --format and --filter on ps, images, inspect, history and system df, driving the real binary.
// Headers and JSON keys are the ones docker prints for the same fields (docker's ps, images,
// history, system df references).
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "tests/test_support.h"

namespace slipway::testing {
namespace {
using nlohmann::json;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class CliFormatTest : public BusyboxStoreTest {
 protected:
  void TearDown() override { remove_containers_and_expect_no_mounts(); }
  CommandResult slipway(const std::vector<std::string>& args) { return run_slipway(root(), args); }
  std::string trimmed(std::string text) {
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  }
};

TEST_F(CliFormatTest, PsTableFormatFromTheTutorials) {
  ASSERT_EQ(slipway({"run", "-d", "--name", "web", "busybox", "sleep", "60"}).exit_code, 0);
  ASSERT_EQ(slipway({"run", "--name", "done", "busybox", "true"}).exit_code, 0);

  auto table = slipway({"ps", "--format", "table {{.ID}}\\t{{.Status}}\\t{{.Image}}\\t{{.Names}}"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  auto lines = lines_of(table.out);
  ASSERT_EQ(lines.size(), 2u) << table.out;
  // docker's header names; columns at least 10 wide, 3 spaces apart.
  EXPECT_TRUE(std::regex_match(lines[0], std::regex("CONTAINER ID   STATUS +IMAGE     NAMES")))
      << lines[0];
  EXPECT_TRUE(std::regex_match(lines[1], std::regex("[0-9a-f]{12}   Up .+ +busybox   web")))
      << lines[1];

  auto all = slipway({"ps", "-a", "--format", "{{.Names}} {{.State}} {{.Command}}"});
  EXPECT_EQ(all.out, "done exited \"true\"\nweb running \"sleep 60\"\n");

  // The default table when the format is "table".
  auto plain = slipway({"ps", "--format", "table"});
  EXPECT_TRUE(
      std::regex_match(lines_of(plain.out)[0],
                       std::regex("CONTAINER ID   IMAGE +COMMAND +CREATED +STATUS +PORTS +NAMES")))
      << plain.out;

  // json: one object a line, docker's keys.
  auto as_json = slipway({"ps", "--format", "json"});
  ASSERT_EQ(lines_of(as_json.out).size(), 1u) << as_json.out;
  json row = json::parse(as_json.out);
  for (const char* key : {"Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts",
                          "Names", "Networks", "Ports", "RunningFor", "Size", "State", "Status"})
    EXPECT_TRUE(row.contains(key)) << key;
  EXPECT_EQ(row["Names"], "web");
  EXPECT_EQ(row["State"], "running");

  auto functions =
      slipway({"ps", "-a", "--format", "{{upper .Names}}|{{json .State}}|{{len .ID}}"});
  EXPECT_EQ(functions.out, "DONE|\"exited\"|12\nWEB|\"running\"|12\n");
  auto quiet = slipway({"ps", "-q", "--no-trunc"});
  EXPECT_EQ(trimmed(quiet.out).size(), 64u);
}

TEST_F(CliFormatTest, PsFilters) {
  ASSERT_EQ(slipway({"run", "-d", "--name", "web", "-p", "127.0.0.1::80", "busybox", "sleep", "60"})
                .exit_code,
            0);
  ASSERT_EQ(slipway({"run", "--name", "ok", "busybox", "true"}).exit_code, 0);
  ASSERT_EQ(slipway({"run", "--name", "failed", "busybox", "sh", "-c", "exit 3"}).exit_code, 3);
  ASSERT_EQ(slipway({"create", "--name", "fresh", "busybox", "true"}).exit_code, 0);
  auto names = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "ps");
    args.push_back("--format");
    args.push_back("{{.Names}}");
    auto result = slipway(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return result.out;
  };
  EXPECT_EQ(names({"--filter", "status=exited"}), "failed\nok\n");
  EXPECT_EQ(names({"--filter", "status=created"}), "fresh\n");
  EXPECT_EQ(names({"--filter", "status=running"}), "web\n");
  EXPECT_EQ(names({"-a", "--filter", "exited=3"}), "failed\n");
  EXPECT_EQ(names({"-a", "--filter", "exited=0"}), "ok\n");
  EXPECT_EQ(names({"-a", "-f", "name=fa"}), "failed\n");
  EXPECT_EQ(names({"-a", "-f", "name=^/ok$", "-f", "name=fresh"}), "fresh\nok\n");
  std::string id = trimmed(slipway({"ps", "-a", "-q", "--no-trunc", "-f", "name=ok"}).out);
  ASSERT_EQ(id.size(), 64u);
  EXPECT_EQ(names({"-a", "-f", "id=" + id.substr(0, 8)}), "ok\n");
  EXPECT_EQ(names({"-a", "-f", "ancestor=busybox"}), "fresh\nfailed\nok\nweb\n");
  EXPECT_EQ(names({"-a", "-f", "ancestor=nosuch"}), "");
  EXPECT_EQ(names({"-a", "-f", "before=failed"}), "ok\nweb\n");
  EXPECT_EQ(names({"-a", "-f", "since=failed"}), "fresh\n");
  EXPECT_EQ(names({"-f", "expose=80"}), "web\n");
  EXPECT_EQ(names({"-f", "expose=81"}), "");
  EXPECT_EQ(names({"-a", "-f", "health=none", "-f", "status=exited"}), "failed\nok\n");
  EXPECT_EQ(names({"-a", "-f", "health=healthy"}), "");
  EXPECT_EQ(names({"-a", "-f", "network=bridge", "-f", "name=ok"}), "ok\n");
  EXPECT_EQ(names({"-a", "-f", "volume=/data"}), "");  // no container has volumes yet
  EXPECT_EQ(names({"-a", "-f", "label=nothing"}), "");
  EXPECT_EQ(names({"-n", "2"}), "fresh\nfailed\n");
  EXPECT_EQ(names({"-l"}), "fresh\n");
  std::string published = trimmed(slipway({"port", "web", "80"}).out);
  std::string host_port = published.substr(published.rfind(':') + 1);
  EXPECT_EQ(names({"-f", "publish=" + host_port + "/tcp"}), "web\n");
  EXPECT_EQ(names({"-f", "publish=" + host_port + "/udp"}), "");
}

TEST_F(CliFormatTest, PsLabelsFromTheImage) {
  ASSERT_EQ(build("FROM busybox\nLABEL tier=web com.example.vendor=ACME\n", "labelled").exit_code,
            0);
  ASSERT_EQ(slipway({"create", "--name", "lab", "labelled", "true"}).exit_code, 0);
  ASSERT_EQ(slipway({"create", "--name", "plain", "busybox", "true"}).exit_code, 0);
  EXPECT_EQ(slipway({"ps", "-a", "-f", "label=tier", "--format", "{{.Names}}"}).out, "lab\n");
  EXPECT_EQ(slipway({"ps", "-a", "-f", "label=tier=web", "--format", "{{.Names}}"}).out, "lab\n");
  EXPECT_EQ(slipway({"ps", "-a", "-f", "label=tier=db", "--format", "{{.Names}}"}).out, "");
  EXPECT_EQ(slipway({"ps", "-a", "-f", "name=^/lab$", "--format",
                     "{{.Label \"com.example.vendor\"}} {{.Labels}}"})
                .out,
            "ACME com.example.vendor=ACME,tier=web\n");
  auto header = slipway(
      {"ps", "-a", "-f", "name=^/lab$", "--format", "table {{.Names}}\\t{{.Label \"tier\"}}"});
  EXPECT_EQ(header.out, "NAMES     LABEL\nlab       web\n");
}

TEST_F(CliFormatTest, ImagesFormatAndFilters) {
  ASSERT_EQ(build("FROM busybox\nLABEL stage=one\nRUN echo one > /one\n", "app:1").exit_code, 0);
  ASSERT_EQ(build("FROM busybox\nLABEL stage=two\nRUN echo two > /two\n", "app:2").exit_code, 0);
  auto table = slipway({"images", "--format", "table {{.Repository}}\\t{{.Tag}}"});
  EXPECT_EQ(table.out, "REPOSITORY   TAG\napp          2\napp          1\nbusybox      latest\n");
  EXPECT_EQ(slipway({"images", "--filter", "reference=app:1", "--format", "{{.Tag}}"}).out, "1\n");
  EXPECT_EQ(slipway({"images", "--filter", "reference=a*", "--format", "{{.Tag}}"}).out, "2\n1\n");
  EXPECT_EQ(slipway({"images", "--filter", "label=stage=two", "--format", "{{.Tag}}"}).out, "2\n");
  EXPECT_EQ(
      slipway({"images", "--filter", "before=app:2", "--format", "{{.Repository}}:{{.Tag}}"}).out,
      "app:1\nbusybox:latest\n");
  EXPECT_EQ(
      slipway({"images", "--filter", "since=app:1", "--format", "{{.Repository}}:{{.Tag}}"}).out,
      "app:2\n");
  EXPECT_EQ(slipway({"images", "--filter", "dangling=false", "--format", "{{.Tag}}"}).out,
            "2\n1\nlatest\n");
  // The intermediates of the builds are untagged, and the RUN steps' images are nobody's parent.
  auto dangling = slipway({"images", "--filter", "dangling=true", "--format", "{{.Repository}}"});
  EXPECT_EQ(dangling.exit_code, 0) << dangling.err;
  for (const auto& line : lines_of(dangling.out)) EXPECT_EQ(line, "<none>");
  json row = json::parse(lines_of(slipway({"images", "--format", "json", "busybox"}).out).at(0));
  for (const char* key : {"Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository",
                          "SharedSize", "Size", "Tag", "UniqueSize", "VirtualSize"})
    EXPECT_TRUE(row.contains(key)) << key;
  auto bad = slipway({"images", "--filter", "dangling=maybe"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err, "Error: invalid filter 'dangling=[maybe]'\n");
}

TEST_F(CliFormatTest, InspectFormatOnImagesAndContainers) {
  ASSERT_EQ(
      build("FROM busybox\nENV A=1 B=2\nCMD [\"sh\", \"-c\", \"echo hi\"]\n", "app").exit_code, 0);
  std::string id = trimmed(slipway({"inspect", "--format", "{{.Id}}", "app"}).out);
  EXPECT_TRUE(std::regex_match(id, std::regex("sha256:[0-9a-f]{64}"))) << id;
  EXPECT_EQ(slipway({"image", "inspect", "-f", "{{.Config.Cmd}} {{json .Config.Cmd}}", "app"}).out,
            "[sh -c echo hi] [\"sh\",\"-c\",\"echo hi\"]\n");
  std::string env =
      slipway({"inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", "app"}).out;
  EXPECT_TRUE(env.ends_with("A=1\nB=2\n\n")) << env;
  EXPECT_EQ(slipway({"inspect", "-f", "{{.Os}}/{{.Architecture}}", "app", "busybox"}).out,
            "linux/amd64\nlinux/amd64\n");

  ASSERT_EQ(slipway({"create", "--name", "box", "app"}).exit_code, 0);
  auto container = slipway({"container", "inspect", "--format", "{{.Name}} {{.Image}}", "box"});
  ASSERT_EQ(container.exit_code, 0) << container.err;
  EXPECT_EQ(container.out, "/box " + id + "\n");
  // Top-level inspect finds containers too.
  auto any = slipway({"inspect", "--format", "{{json .Id}}", "box"});
  EXPECT_EQ(any.exit_code, 0) << any.err;
  EXPECT_EQ(any.out.size(), 64u + 3) << any.out;
  auto missing = slipway({"inspect", "-f", "{{.Id}}", "nothing"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err, "Error: No such object: nothing\n");

  auto bad = slipway({"inspect", "--format", "{{.Id", "app"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err, "Error: template parsing error: template: :1: unclosed action\n");
}

TEST_F(CliFormatTest, HistoryAndSystemDfFormat) {
  ASSERT_EQ(build("FROM busybox\nRUN echo one > /one\n", "app").exit_code, 0);
  auto history = slipway({"history", "--format", "{{.ID}}|{{.CreatedBy}}", "app"});
  ASSERT_EQ(history.exit_code, 0) << history.err;
  auto lines = lines_of(history.out);
  ASSERT_EQ(lines.size(), 2u) << history.out;
  EXPECT_NE(lines[0].find("/bin/sh -c echo one > /one"), std::string::npos) << lines[0];
  auto table = slipway({"history", "--format", "table {{.ID}}\\t{{.Size}}", "app"});
  EXPECT_EQ(lines_of(table.out)[0], "IMAGE          SIZE") << table.out;
  auto raw = slipway({"history", "--human=false", "--format", "{{.Size}}", "app"});
  EXPECT_TRUE(std::regex_match(lines_of(raw.out)[0], std::regex("[0-9]+"))) << raw.out;

  auto df = slipway({"system", "df", "--format", "{{.Type}}: {{.TotalCount}}"});
  EXPECT_TRUE(
      std::regex_match(df.out, std::regex("Images: 2\nContainers: 0\nLocal Volumes: 0\nBuild Cache: [0-9]+\n")))
      << df.out << df.err;
  auto df_json = slipway({"system", "df", "--format", "json"});
  json images = json::parse(lines_of(df_json.out).at(0));
  for (const char* key : {"Active", "Reclaimable", "Size", "TotalCount", "Type"})
    EXPECT_TRUE(images.contains(key)) << key;
  ASSERT_EQ(slipway({"create", "--name", "cc", "app", "true"}).exit_code, 0);
  auto verbose = slipway({"system", "df", "-v"});
  ASSERT_EQ(verbose.exit_code, 0) << verbose.err;
  for (const char* line :
       {"Images space usage:", "Containers space usage:", "Local Volumes space usage:"})
    EXPECT_EQ(count_lines_equal(verbose.out, line), 1) << verbose.out;
  EXPECT_NE(verbose.out.find("REPOSITORY   TAG       IMAGE ID       CREATED"), std::string::npos);
  EXPECT_NE(verbose.out.find("CONTAINER ID   IMAGE     COMMAND   LOCAL VOLUMES   SIZE"),
            std::string::npos)
      << verbose.out;
  EXPECT_NE(verbose.out.find("Build cache usage: "), std::string::npos);
}

}  // namespace
}  // namespace slipway::testing
