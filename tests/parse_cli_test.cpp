// `slipway parse`, driven through the real binary: the dump format on a corpus case, the JSON
// shape, the default file, and errors (FILE:LINE:COL: message on stderr, exit status 1).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "common/fs.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kCorpus = fs::path(SLIPWAY_SHARED_DIR) / "testdata" / "buildkit-parser";

CommandResult parse(const ScratchDir& dir, const std::vector<std::string>& args) {
  std::vector<std::string> full = {"parse"};
  full.insert(full.end(), args.begin(), args.end());
  return run_slipway(dir.path() / "store", full);
}

TEST(ParseCli, DumpIsTheReferenceResult) {
  ScratchDir dir;
  for (const std::string name : {"lk4d4-the-edge-case-generator", "json", "health", "flags"}) {
    auto result = parse(
        dir, {"-f", (kCorpus / "testfiles" / name / "Dockerfile").string(), "--format", "dump"});
    EXPECT_EQ(result.exit_code, 0) << name << result.err;
    EXPECT_EQ(result.out, read_file(kCorpus / "testfiles" / name / "result")) << name;
    EXPECT_EQ(result.err, "") << name;
  }
}

TEST(ParseCli, DefaultsToDockerfileInTheCurrentDirectoryAndDump) {
  ScratchDir dir;
  write_text(dir.path() / "Dockerfile", "FROM busybox\nRUN <<EOF\necho hi\nEOF\n");
  auto result = run_program(
      {"sh", "-c", "cd '" + dir.path().string() + "' && exec '" SLIPWAY_BINARY "' parse"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "(from \"busybox\")\n(run \"<<EOF\")\n");
}

TEST(ParseCli, JsonHasTypedInstructionsWithPositions) {
  ScratchDir dir;
  write_text(dir.path() / "Dockerfile",
             "# syntax=docker/dockerfile:1\n"
             "FROM --platform=linux/amd64 alpine AS build\n"
             "COPY --chown=1:1 <<EOF /etc/motd\nhello $USER\nEOF\n"
             "ONBUILD RUN [\"make\"]\n"
             "ENV A=1 B=\"2 3\"\n");
  auto result = parse(dir, {"-f", (dir.path() / "Dockerfile").string(), "--format", "json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  json parsed = json::parse(result.out);
  EXPECT_EQ(parsed["syntax"], "docker/dockerfile:1");
  EXPECT_EQ(parsed["escape"], "\\");
  EXPECT_EQ(parsed["warnings"], json::array());
  const json& instructions = parsed["instructions"];
  ASSERT_EQ(instructions.size(), 4u);

  const json& from = instructions[0];
  EXPECT_EQ(from["keyword"], "FROM");
  EXPECT_EQ(from["image"], "alpine");
  EXPECT_EQ(from["stage_name"], "build");
  EXPECT_EQ(from["start"], (json{{"line", 2}, {"column", 1}}));
  EXPECT_EQ(from["flags"][0]["name"], "platform");
  EXPECT_EQ(from["flags"][0]["value"], "linux/amd64");
  EXPECT_EQ(from["flags"][0]["position"], (json{{"line", 2}, {"column", 6}}));

  const json& copy = instructions[1];
  EXPECT_EQ(copy["keyword"], "COPY");
  EXPECT_EQ(copy["sources"], json::array({"<<EOF"}));
  EXPECT_EQ(copy["destination"], "/etc/motd");
  EXPECT_EQ(copy["json_form"], false);
  EXPECT_EQ(copy["end_line"], 5);
  ASSERT_EQ(copy["heredocs"].size(), 1u);
  EXPECT_EQ(copy["heredocs"][0]["name"], "EOF");
  EXPECT_EQ(copy["heredocs"][0]["content"], "hello $USER\n");
  EXPECT_EQ(copy["heredocs"][0]["expand"], true);
  EXPECT_EQ(copy["heredocs"][0]["position"], (json{{"line", 3}, {"column", 18}}));

  const json& onbuild = instructions[2];
  EXPECT_EQ(onbuild["trigger"]["keyword"], "RUN");
  EXPECT_EQ(onbuild["trigger"]["command"]["exec_form"], true);
  EXPECT_EQ(onbuild["trigger"]["command"]["exec_args"], json::array({"make"}));
  EXPECT_EQ(onbuild["trigger"]["start"], (json{{"line", 6}, {"column", 9}}));

  const json& env = instructions[3];
  EXPECT_EQ(env["legacy_form"], false);
  EXPECT_EQ(env["variables"][1], (json{{"key", "B"}, {"value", "\"2 3\""}}));
}

TEST(ParseCli, ErrorsNameTheFileAndPosition) {
  ScratchDir dir;
  fs::path file = dir.path() / "Bad.Dockerfile";
  write_text(file, "FROM a\nRUN <<EOF\necho\n");
  auto result = parse(dir, {"-f", file.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err, file.string() + ":2:5: unterminated heredoc\n");

  write_text(file, "FROM a\nFORM b\n");
  result = parse(dir, {"-f", file.string(), "--format", "json"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.err, file.string() + ":2:1: unknown instruction: FORM (did you mean FROM?)\n");

  result = parse(dir, {"-f", (dir.path() / "missing").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("missing"), std::string::npos) << result.err;
}

TEST(ParseCli, NegativeCorpusCasesFail) {
  ScratchDir dir;
  for (const auto& entry : fs::directory_iterator(kCorpus / "testfiles-negative")) {
    auto result = parse(dir, {"-f", (entry.path() / "Dockerfile").string()});
    EXPECT_EQ(result.exit_code, 1) << entry.path();
    EXPECT_EQ(result.out, "") << entry.path();
  }
}

TEST(ParseCli, UnknownFormatIsRejected) {
  ScratchDir dir;
  auto result = parse(dir, {"--format", "xml"});
  EXPECT_NE(result.exit_code, 0);
}

}  // namespace
}  // namespace slipway::testing
