// Unit tests for grammar/ast_codec: every Dockerfile of the reference corpus and of testdata
// comes back from encode + decode equal to its parse, field by field, and bytes that are not an
// encoding (cut short, extended, an unknown kind) are refused rather than half-read.
#include "grammar/ast_codec.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "grammar/grammar.h"

namespace slipway::grammar {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// Every file of these trees that parses (the negative cases do not, and are skipped).
std::vector<std::pair<fs::path, ast::Dockerfile>> parsed_corpus() {
  std::vector<std::pair<fs::path, ast::Dockerfile>> parsed;
  for (const fs::path& root : {fs::path(SLIPWAY_SHARED_DIR) / "testdata" / "buildkit-parser",
                               fs::path(SLIPWAY_SOURCE_DIR) / "testdata" / "corpus",
                               fs::path(SLIPWAY_SOURCE_DIR) / "testdata" / "classic"}) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::end(it); ++it) {
      if (!it->is_regular_file()) continue;
      try {
        parsed.emplace_back(it->path(), parse_dockerfile(read_text(it->path())));
      } catch (const std::exception&) {
        // Not a Dockerfile, or one the parser rejects: nothing to encode.
      }
    }
  }
  return parsed;
}

TEST(AstCodec, EveryCorpusDockerfileRoundTrips) {
  auto corpus = parsed_corpus();
  ASSERT_GT(corpus.size(), 50u);
  size_t with_heredocs = 0, with_onbuild = 0, with_flags = 0;
  for (const auto& [path, dockerfile] : corpus) {
    std::string bytes = encode_dockerfile(dockerfile);
    ast::Dockerfile decoded;
    ASSERT_NO_THROW(decoded = decode_dockerfile(bytes)) << path;
    EXPECT_TRUE(decoded == dockerfile) << path;
    EXPECT_EQ(encode_dockerfile(decoded), bytes) << path;
    for (const auto& instruction : dockerfile.instructions) {
      with_flags += !instruction.flags.empty();
      with_onbuild += std::holds_alternative<ast::OnbuildInstruction>(instruction.body);
      if (const auto* run = std::get_if<ast::RunInstruction>(&instruction.body))
        with_heredocs += !run->heredocs.empty();
    }
  }
  // The corpus exercises the nested and repeated parts of the encoding.
  EXPECT_GT(with_heredocs, 0u);
  EXPECT_GT(with_onbuild, 0u);
  EXPECT_GT(with_flags, 0u);
}

TEST(AstCodec, KeepsWhatTheDumpDoesNot) {
  // Bytes that are not UTF-8, positions, warnings, directives, heredoc bodies and flags.
  std::string text =
      "# syntax=docker/dockerfile:1\n# escape=`\nFROM scratch AS base\n"
      "LABEL latin1=\"caf\xe9\"\nRUN --mount=type=cache,target=/c <<EOF `\n  && true\n"
      "echo \xff\nEOF\nONBUILD COPY --chown=1:1 a b\nENV a b c\n";
  ast::Dockerfile dockerfile = parse_dockerfile(text);
  ast::Dockerfile decoded = decode_dockerfile(encode_dockerfile(dockerfile));
  EXPECT_TRUE(decoded == dockerfile);
  EXPECT_EQ(decoded.escape, '`');
  EXPECT_EQ(decoded.syntax, "docker/dockerfile:1");
  EXPECT_EQ(decoded.warnings.size(), dockerfile.warnings.size());
  const auto& run = std::get<ast::RunInstruction>(decoded.instructions.at(2).body);
  ASSERT_EQ(run.heredocs.size(), 1u);
  EXPECT_EQ(run.heredocs[0].content, "echo \xff\n");
  EXPECT_EQ(decoded.instructions.at(2).flags.at(0).value, "type=cache,target=/c");
}

TEST(AstCodec, RefusesWhatIsNotAnEncoding) {
  std::string bytes = encode_dockerfile(
      parse_dockerfile("FROM busybox\nRUN echo hi\nONBUILD RUN true\nARG a=1 b\nCMD [\"x\"]\n"));
  for (size_t size = 0; size < bytes.size(); ++size)
    EXPECT_THROW(decode_dockerfile(bytes.substr(0, size)), Error) << "cut at " << size;
  EXPECT_THROW(decode_dockerfile(bytes + "x"), Error);
  // The first instruction's kind (after its keyword, source, flags, position and end line).
  std::string unknown = bytes;
  size_t kind_at = 4 + (4 + 4) + (4 + 12) + 4 + 8 + 4;
  ASSERT_EQ(unknown[kind_at], 0);  // FROM
  unknown[kind_at] = 99;
  EXPECT_THROW(decode_dockerfile(unknown), Error);
  // A count of more items than there are bytes fails before it allocates.
  std::string huge = bytes;
  huge[0] = huge[1] = huge[2] = huge[3] = '\xff';
  EXPECT_THROW(decode_dockerfile(huge), Error);
}

TEST(AstCodec, VersionNamesTheParserAndTheRuntime) {
  const std::string& version = ast_codec_version();
  EXPECT_EQ(version.substr(0, 64).find_first_not_of("0123456789abcdef"), std::string::npos)
      << version;
  EXPECT_NE(version.find(" antlr4 4."), std::string::npos) << version;
}

}  // namespace
}  // namespace slipway::grammar
