// Unit tests for grammar/: the line scanner rules (directives, continuations, comments, CRLF,
// BOM, line numbers), each instruction form the grammar types, every parse error with its exact
// message and position, and the BuildKit parser corpus in ../shared.
#include "grammar/grammar.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace slipway::grammar {
namespace {

namespace fs = std::filesystem;

const fs::path kCorpus = fs::path(SLIPWAY_SHARED_DIR) / "testdata" / "buildkit-parser";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// The single instruction of a one-instruction Dockerfile.
const ast::Instruction& only(const ast::Dockerfile& dockerfile) {
  EXPECT_EQ(dockerfile.instructions.size(), 1u);
  return dockerfile.instructions.at(0);
}

template <typename Body>
const Body& body(const ast::Instruction& instruction) {
  const Body* typed = std::get_if<Body>(&instruction.body);
  if (typed == nullptr) throw std::runtime_error("unexpected body for " + instruction.keyword);
  return *typed;
}

// Parses a one-instruction Dockerfile and returns the instruction's typed body.
template <typename Body>
Body parse_one(std::string_view text) {
  return body<Body>(only(parse_dockerfile(text)));
}

// Expects `text` to be rejected with what() == "LINE:COL: message".
void expect_error(std::string_view text, int line, int column, const std::string& message) {
  try {
    parse_dockerfile(text);
    ADD_FAILURE() << "no error for:\n" << text;
  } catch (const SyntaxError& error) {
    EXPECT_EQ(error.message(), message) << text;
    EXPECT_EQ(error.line(), line) << text;
    EXPECT_EQ(error.column(), column) << text;
    EXPECT_EQ(std::string(error.what()),
              std::to_string(line) + ":" + std::to_string(column) + ": " + message);
  }
}

std::vector<std::string> kv(const ast::KeyValue& pair) {
  return {pair.key, pair.value};
}

using Strings = std::vector<std::string>;

// ---------------------------------------------------------------------------------------------
// FROM

TEST(From, ImageOnly) {
  const auto& from = parse_one<ast::FromInstruction>("FROM ubuntu:14.04");
  EXPECT_EQ(from.image, "ubuntu:14.04");
  EXPECT_FALSE(from.stage_name.has_value());
}

TEST(From, ImageWithStageNameAnyCase) {
  const auto& upper = parse_one<ast::FromInstruction>("FROM golang:1.22 AS build");
  EXPECT_EQ(upper.image, "golang:1.22");
  EXPECT_EQ(upper.stage_name, "build");
  const auto& lower = parse_one<ast::FromInstruction>("from $BASE as Builder  ");
  EXPECT_EQ(lower.image, "$BASE");
  EXPECT_EQ(lower.stage_name, "Builder");
}

TEST(From, PlatformFlag) {
  auto dockerfile = parse_dockerfile("FROM --platform=$BUILDPLATFORM alpine AS base");
  const auto& from = only(dockerfile);
  ASSERT_EQ(from.flags.size(), 1u);
  EXPECT_EQ(from.flags[0].name, "platform");
  EXPECT_EQ(from.flags[0].value, "$BUILDPLATFORM");
  EXPECT_EQ(from.flags[0].position.column, 6);
  EXPECT_EQ(body<ast::FromInstruction>(from).image, "alpine");
  EXPECT_EQ(body<ast::FromInstruction>(from).stage_name, "base");
}

TEST(From, ImageNamedAs) {
  EXPECT_EQ(parse_one<ast::FromInstruction>("FROM as").image, "as");
}

TEST(From, WrongNumberOfArguments) {
  const std::string message = "FROM requires either one or three arguments";
  expect_error("FROM", 1, 1, message);
  expect_error("FROM a b", 1, 1, message);
  expect_error("FROM a AS", 1, 1, message);
  expect_error("FROM a AS b c", 1, 1, message);
  expect_error("FROM a FOR b", 1, 1, message);
  expect_error("FROM --platform=linux/arm64", 1, 1, message);
  expect_error("FROM a\n\n   from x y", 3, 4, message);
}

// ---------------------------------------------------------------------------------------------
// MAINTAINER

TEST(Maintainer, RestOfLine) {
  EXPECT_EQ(parse_one<ast::MaintainerInstruction>("MAINTAINER  Jane Doe  <jane@doe.io> ").name,
            "Jane Doe  <jane@doe.io>");
  EXPECT_EQ(parse_one<ast::MaintainerInstruction>("maintainer").name, "");
}

// ---------------------------------------------------------------------------------------------
// RUN and CMD

TEST(Run, ShellFormIsTrimmedVerbatim) {
  const auto& run = parse_one<ast::RunInstruction>("RUN  echo \"a  b\" | tr a-z A-Z   ");
  EXPECT_FALSE(run.command.exec_form);
  EXPECT_EQ(run.command.shell_text, "echo \"a  b\" | tr a-z A-Z");
}

TEST(Run, ExecForm) {
  const auto& run = parse_one<ast::RunInstruction>(R"(RUN [ "sh", "-c",   "echo a, b" ] )");
  EXPECT_TRUE(run.command.exec_form);
  EXPECT_EQ(run.command.exec_args, (Strings{"sh", "-c", "echo a, b"}));
}

TEST(Run, NoArguments) {
  const auto& run = parse_one<ast::RunInstruction>("RUN");
  EXPECT_FALSE(run.command.exec_form);
  EXPECT_EQ(run.command.shell_text, "");
}

TEST(Run, Flags) {
  auto dockerfile = parse_dockerfile(
      "RUN --mount=type=cache,target=/root/.cache --network=none --chown=\"a b\" --x make all");
  const auto& run = only(dockerfile);
  ASSERT_EQ(run.flags.size(), 4u);
  EXPECT_EQ(run.flags[0].name, "mount");
  EXPECT_EQ(run.flags[0].value, "type=cache,target=/root/.cache");
  EXPECT_EQ(run.flags[1].name, "network");
  EXPECT_EQ(run.flags[1].value, "none");
  EXPECT_EQ(run.flags[2].name, "chown");
  EXPECT_EQ(run.flags[2].value, "a b");
  EXPECT_EQ(run.flags[3].name, "x");
  EXPECT_FALSE(run.flags[3].value.has_value());
  EXPECT_EQ(body<ast::RunInstruction>(run).command.shell_text, "make all");
}

TEST(Run, FlagEscapesAreRemoved) {
  auto dockerfile = parse_dockerfile(R"(COPY --a\ b --c='d "e"' --f="g\"h" dst)");
  const auto& copy = only(dockerfile);
  ASSERT_EQ(copy.flags.size(), 3u);
  EXPECT_EQ(copy.flags[0].name, "a b");
  EXPECT_EQ(copy.flags[1].value, "d \"e\"");
  EXPECT_EQ(copy.flags[2].value, "g\"h");
  EXPECT_EQ(body<ast::OtherInstruction>(copy).words, (Strings{"dst"}));
}

TEST(Run, DoubleDashEndsFlags) {
  auto dockerfile = parse_dockerfile("RUN --a=1 -- --not-a-flag x");
  const auto& run = only(dockerfile);
  ASSERT_EQ(run.flags.size(), 1u);
  EXPECT_EQ(run.flags[0].name, "a");
  EXPECT_EQ(body<ast::RunInstruction>(run).command.shell_text, "--not-a-flag x");
}

TEST(Run, FlagsOnlyLeading) {
  auto dockerfile = parse_dockerfile("RUN echo --quiet");
  EXPECT_TRUE(only(dockerfile).flags.empty());
  EXPECT_EQ(body<ast::RunInstruction>(only(dockerfile)).command.shell_text, "echo --quiet");
}

TEST(Cmd, ExecFormDecodesJsonStrings) {
  const auto& cmd = parse_one<ast::CmdInstruction>(
      R"(CMD ["abc 123", "♥", "☃", "\" \\ \/ \b \f \n \r \t \u0000 \u00e9"])");
  ASSERT_TRUE(cmd.command.exec_form);
  EXPECT_EQ(cmd.command.exec_args,
            (Strings{"abc 123", "♥", "☃", std::string("\" \\ / \b \f \n \r \t \0 é", 20)}));
}

TEST(Cmd, EmptyArrays) {
  const auto& empty = parse_one<ast::CmdInstruction>("CMD []");
  EXPECT_TRUE(empty.command.exec_form);
  EXPECT_TRUE(empty.command.exec_args.empty());
  const auto& empty_string = parse_one<ast::CmdInstruction>("CMD [\"\"]");
  EXPECT_TRUE(empty_string.command.exec_form);
  EXPECT_EQ(empty_string.command.exec_args, (Strings{""}));
}

TEST(Cmd, FlagsThenExecForm) {
  auto dockerfile = parse_dockerfile("CMD --doit -- [ ]");
  const auto& cmd = only(dockerfile);
  ASSERT_EQ(cmd.flags.size(), 1u);
  EXPECT_EQ(cmd.flags[0].name, "doit");
  EXPECT_TRUE(body<ast::CmdInstruction>(cmd).command.exec_form);
  EXPECT_TRUE(body<ast::CmdInstruction>(cmd).command.exec_args.empty());
}

// A line that is not exactly one valid JSON array falls back to shell form (jeztah-* cases).
TEST(Cmd, InvalidJsonFallsBackToShellForm) {
  for (std::string_view args :
       {R"(["echo", "unterminated])", R"(['single', 'quotes'])", R"([ "echo", "a" ] && true)",
        R"(["trailing", ])", R"(["a" "b"])", R"(["bad \q escape"])", R"([ -f /etc/x ])",
        R"([ "unterminated bracket")", R"(["json inside \"[\" string"] x)", "[\"tab\tinside\"]"}) {
    const auto& cmd = parse_one<ast::CmdInstruction>("CMD " + std::string(args));
    EXPECT_FALSE(cmd.command.exec_form) << args;
    EXPECT_EQ(cmd.command.shell_text, args);
  }
}

TEST(Cmd, JsonArrayWithNonStringsIsAnError) {
  const std::string message =
      "when using JSON array syntax, arrays must be comprised of strings only";
  expect_error(R"(CMD [ "echo", [ "nested json" ] ])", 1, 15, message);
  expect_error("RUN [1]", 1, 6, message);
  expect_error(R"(RUN ["a", null])", 1, 11, message);
  expect_error(R"(RUN ["a", true, "b"])", 1, 11, message);
  expect_error(R"(CMD [{"a": ["b"]}])", 1, 6, message);
  expect_error("FROM a\nCMD [ \"a\", \\\n    -1.5e3 ]", 3, 5, message);
}

// ---------------------------------------------------------------------------------------------
// ENV

TEST(Env, LegacyForm) {
  const auto& env = parse_one<ast::EnvInstruction>("ENV GREETING hello  \"big\"   world ");
  EXPECT_TRUE(env.legacy_form);
  ASSERT_EQ(env.variables.size(), 1u);
  EXPECT_EQ(kv(env.variables[0]), (Strings{"GREETING", "hello  \"big\"   world"}));
}

TEST(Env, KeyValueFormKeepsValuesRaw) {
  const auto& env = parse_one<ast::EnvInstruction>(
      R"(ENV K=V K2="a b" K3=x\ y K4='s q' K5= K6=a=b K7="say \"hi\"")");
  EXPECT_FALSE(env.legacy_form);
  ASSERT_EQ(env.variables.size(), 7u);
  EXPECT_EQ(kv(env.variables[0]), (Strings{"K", "V"}));
  EXPECT_EQ(kv(env.variables[1]), (Strings{"K2", "\"a b\""}));
  EXPECT_EQ(kv(env.variables[2]), (Strings{"K3", "x\\ y"}));
  EXPECT_EQ(kv(env.variables[3]), (Strings{"K4", "'s q'"}));
  EXPECT_EQ(kv(env.variables[4]), (Strings{"K5", ""}));
  EXPECT_EQ(kv(env.variables[5]), (Strings{"K6", "a=b"}));
  EXPECT_EQ(kv(env.variables[6]), (Strings{"K7", R"("say \"hi\"")"}));
}

TEST(Env, SingleQuotesDoNotEscape) {
  const auto& env = parse_one<ast::EnvInstruction>(R"(ENV A='x\' B=y)");
  ASSERT_EQ(env.variables.size(), 2u);
  EXPECT_EQ(kv(env.variables[0]), (Strings{"A", R"('x\')"}));
  EXPECT_EQ(kv(env.variables[1]), (Strings{"B", "y"}));
}

TEST(Env, UnterminatedQuoteRunsToEndOfLine) {
  const auto& env = parse_one<ast::EnvInstruction>(R"(ENV A="x y B=z)");
  ASSERT_EQ(env.variables.size(), 1u);
  EXPECT_EQ(kv(env.variables[0]), (Strings{"A", R"("x y B=z)"}));
}

TEST(Env, BacktickEscapeSplitsWords) {
  auto dockerfile = parse_dockerfile("# escape=`\nFROM x\nENV A=x` y B=c\\ d=e");
  const auto& env = body<ast::EnvInstruction>(dockerfile.instructions.at(1));
  ASSERT_EQ(env.variables.size(), 3u);
  EXPECT_EQ(kv(env.variables[0]), (Strings{"A", "x` y"}));
  EXPECT_EQ(kv(env.variables[1]), (Strings{"B", "c\\"}));
  EXPECT_EQ(kv(env.variables[2]), (Strings{"d", "e"}));
}

TEST(Env, Errors) {
  expect_error("ENV PATH", 1, 1, "ENV must have two arguments");
  expect_error("FROM a\n  env PATH   ", 2, 3, "ENV must have two arguments");
  expect_error("ENV", 1, 1, "ENV requires at least one argument");
  expect_error("ENV a=b c d=e", 1, 9,
               "Syntax error - can't find = in \"c\". Must be of the form: name=value");
}

// ---------------------------------------------------------------------------------------------
// EXPOSE and the instructions without a typed form yet

TEST(Expose, Words) {
  EXPECT_EQ(parse_one<ast::ExposeInstruction>("EXPOSE 80  53/udp\t$PORT").ports,
            (Strings{"80", "53/udp", "$PORT"}));
}

TEST(Other, FlagsAndWhitespaceSeparatedRawWords) {
  auto dockerfile = parse_dockerfile("COPY --chown=app:app --from=build \"a b\" /dst/");
  const auto& copy = only(dockerfile);
  EXPECT_EQ(copy.keyword, "COPY");
  ASSERT_EQ(copy.flags.size(), 2u);
  EXPECT_EQ(copy.flags[0].name, "chown");
  EXPECT_EQ(copy.flags[0].value, "app:app");
  EXPECT_EQ(copy.flags[1].name, "from");
  EXPECT_EQ(copy.flags[1].value, "build");
  EXPECT_EQ(body<ast::OtherInstruction>(copy).words, (Strings{"\"a", "b\"", "/dst/"}));
}

TEST(Other, WordsAfterTheFlagsMayLookLikeFlags) {
  auto dockerfile = parse_dockerfile("COPY --from=x -- --weird --name /dst");
  const auto& copy = only(dockerfile);
  ASSERT_EQ(copy.flags.size(), 1u);
  EXPECT_EQ(copy.flags[0].name, "from");
  EXPECT_EQ(body<ast::OtherInstruction>(copy).words, (Strings{"--weird", "--name", "/dst"}));
  EXPECT_EQ(parse_one<ast::ExposeInstruction>("EXPOSE 80 --x").ports, (Strings{"80", "--x"}));
  const auto& env = parse_one<ast::EnvInstruction>("ENV A --b");
  EXPECT_EQ(kv(env.variables.at(0)), (Strings{"A", "--b"}));
}

TEST(Other, JsonIsJustWordsForNow) {
  EXPECT_EQ(parse_one<ast::OtherInstruction>(R"(ENTRYPOINT ["a", "b"])").words,
            (Strings{"[\"a\",", "\"b\"]"}));
  EXPECT_EQ(parse_one<ast::OtherInstruction>("HEALTHCHECK NONE").words, (Strings{"NONE"}));
  EXPECT_TRUE(parse_one<ast::OtherInstruction>("USER").words.empty());
}

// Every keyword in any case; the AST keyword is upper case and source is the line as written.
TEST(Keywords, CaseInsensitive) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"from", "a"},           {"Run", "x"},         {"cMd", "x"},         {"label", "a=b"},
      {"maintainer", "me"},    {"expose", "80"},     {"Env", "a=b"},       {"add", "a b"},
      {"copy", "a b"},         {"entrypoint", "x"},  {"volume", "/v"},     {"user", "u"},
      {"workdir", "/w"},       {"arg", "a"},         {"onbuild", "RUN x"}, {"stopsignal", "9"},
      {"healthcheck", "NONE"}, {"shell", "[\"sh\"]"}};
  for (const auto& [keyword, args] : cases) {
    std::string line = keyword + " " + args;
    auto dockerfile = parse_dockerfile(line);
    const auto& instruction = only(dockerfile);
    std::string upper = keyword;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(instruction.keyword, upper);
    EXPECT_EQ(instruction.source, line);
    EXPECT_EQ(instruction.start.line, 1);
    EXPECT_EQ(instruction.start.column, 1);
  }
}

TEST(Keywords, UnknownInstruction) {
  expect_error("FROM a\nFORM b", 2, 1, "unknown instruction: FORM (did you mean FROM?)");
  expect_error("  runn echo", 1, 3, "unknown instruction: RUNN (did you mean RUN?)");
  expect_error("HEALTHCHEK CMD x", 1, 1,
               "unknown instruction: HEALTHCHEK (did you mean HEALTHCHECK?)");
  expect_error("BOGUS bar", 1, 1, "unknown instruction: BOGUS");
  expect_error("FROM a\nRUN x \\\n  y\nWORKDIRECTORY /x", 4, 1,
               "unknown instruction: WORKDIRECTORY");
  // A keyword must be followed by whitespace.
  expect_error(R"(CMD["x"])", 1, 1, "unknown instruction: CMD[\"X\"]");
}

// ---------------------------------------------------------------------------------------------
// Line scanning

TEST(Lines, NoInstructions) {
  expect_error("", 1, 1, "file with no instructions");
  expect_error("# just a comment\n\n   \n  # another\n", 1, 1, "file with no instructions");
}

TEST(Lines, SourceAndPositions) {
  auto dockerfile = parse_dockerfile("\n# comment\n  FROM a AS b\n\nRUN echo \\\n  hi  \n");
  ASSERT_EQ(dockerfile.instructions.size(), 2u);
  const auto& from = dockerfile.instructions[0];
  EXPECT_EQ(from.source, "FROM a AS b");
  EXPECT_EQ(from.start.line, 3);
  EXPECT_EQ(from.start.column, 3);
  EXPECT_EQ(from.end_line, 3);
  const auto& run = dockerfile.instructions[1];
  EXPECT_EQ(run.source, "RUN echo   hi  ");
  EXPECT_EQ(run.start.line, 5);
  EXPECT_EQ(run.end_line, 6);
  EXPECT_EQ(body<ast::RunInstruction>(run).command.shell_text, "echo   hi");
}

TEST(Lines, ContinuationKeepsIndentationOfLaterLines) {
  // From the continueIndent corpus case.
  EXPECT_EQ(parse_one<ast::RunInstruction>(
                "RUN echo hello\\\n  world\\\n  goodnight  \\\n  moon\\\n  light\\\nning")
                .command.shell_text,
            "echo hello  world  goodnight    moon  lightning");
  EXPECT_EQ(parse_one<ast::RunInstruction>("RUN echo hello  \\  \nworld").command.shell_text,
            "echo hello  world");
  EXPECT_EQ(parse_one<ast::RunInstruction>("RUN echo hi \\\n \\\n world \\\n\\\n good\\\n\\\nnight")
                .command.shell_text,
            "echo hi   world  goodnight");
}

TEST(Lines, CommentsAndBlankLinesInsideContinuation) {
  auto dockerfile = parse_dockerfile(
      "RUN echo hello \\\n# this is a comment\n\n# this is a comment with a blank line "
      "surrounding it\n\nthis is some more useful stuff\nCMD x");
  ASSERT_EQ(dockerfile.instructions.size(), 2u);
  const auto& run = dockerfile.instructions[0];
  EXPECT_EQ(body<ast::RunInstruction>(run).command.shell_text,
            "echo hello this is some more useful stuff");
  EXPECT_EQ(run.end_line, 6);
  EXPECT_EQ(dockerfile.instructions[1].start.line, 7);
  ASSERT_EQ(dockerfile.warnings.size(), 1u);
  EXPECT_EQ(dockerfile.warnings[0].line, 6);
  EXPECT_EQ(dockerfile.warnings[0].message,
            "Empty continuation line found in: RUN echo hello this is some more useful stuff");
}

// TestParseWarnsOnEmptyContinutationLine from the reference.
TEST(Lines, EmptyContinuationWarnings) {
  auto dockerfile = parse_dockerfile(
      "\nFROM alpine:3.6\n\nRUN something \\\n\n    following \\\n\n    more\n\n"
      "RUN another \\\n\n    thing\n\nRUN non-indented \\\n# this is a comment\n"
      "   after-comment\n\nRUN indented \\\n    # this is an indented comment\n    comment\n\t");
  EXPECT_EQ(dockerfile.instructions.size(), 5u);
  ASSERT_EQ(dockerfile.warnings.size(), 2u);
  EXPECT_EQ(dockerfile.warnings[0].message,
            "Empty continuation line found in: RUN something     following     more");
  EXPECT_EQ(dockerfile.warnings[0].line, 8);
  EXPECT_EQ(dockerfile.warnings[1].message,
            "Empty continuation line found in: RUN another     thing");
  EXPECT_EQ(dockerfile.warnings[1].line, 12);
}

TEST(Lines, TrailingEscapes) {
  auto dockerfile =
      parse_dockerfile(read_file(kCorpus / "testfiles/trailing-backslash/Dockerfile"));
  ASSERT_EQ(dockerfile.instructions.size(), 8u);
  auto variable = [&](std::size_t index) {
    return kv(body<ast::EnvInstruction>(dockerfile.instructions.at(index)).variables.at(0));
  };
  EXPECT_EQ(variable(3), (Strings{"C", "trailing\\\\backslash\\\\"}));
  EXPECT_EQ(variable(4), (Strings{"D", "This should not be appended to C"}));
  EXPECT_EQ(variable(5), (Strings{"E", "helloworld"}));
  EXPECT_EQ(variable(6), (Strings{"F", "hello world"}));
  EXPECT_EQ(variable(7), (Strings{"G", "hello world"}));
}

TEST(Lines, ContinuationAtEndOfFile) {
  auto dockerfile = parse_dockerfile("FROM alpine:3.5\n\nRUN something \\");
  ASSERT_EQ(dockerfile.instructions.size(), 2u);
  EXPECT_EQ(body<ast::RunInstruction>(dockerfile.instructions[1]).command.shell_text, "something");
  EXPECT_EQ(dockerfile.instructions[1].end_line, 3);
}

TEST(Lines, CommentEndingInBackslashDoesNotContinue) {
  auto dockerfile = parse_dockerfile("# comment \\\nFROM a");
  EXPECT_EQ(only(dockerfile).keyword, "FROM");
  EXPECT_EQ(only(dockerfile).start.line, 2);
}

TEST(Lines, CrLf) {
  auto dockerfile = parse_dockerfile("FROM a\r\nRUN echo \\\r\n  hi\r\n\r\nCMD [\"x\"]\r\n");
  ASSERT_EQ(dockerfile.instructions.size(), 3u);
  EXPECT_EQ(body<ast::FromInstruction>(dockerfile.instructions[0]).image, "a");
  EXPECT_EQ(body<ast::RunInstruction>(dockerfile.instructions[1]).command.shell_text, "echo   hi");
  EXPECT_EQ(dockerfile.instructions[1].end_line, 3);
  EXPECT_EQ(body<ast::CmdInstruction>(dockerfile.instructions[2]).command.exec_args,
            (Strings{"x"}));
  EXPECT_EQ(dockerfile.instructions[2].start.line, 5);
}

TEST(Lines, ByteOrderMark) {
  auto dockerfile = parse_dockerfile("\xEF\xBB\xBF# escape=`\nFROM a");
  EXPECT_EQ(dockerfile.escape, '`');
  EXPECT_EQ(only(dockerfile).keyword, "FROM");
  EXPECT_EQ(parse_one<ast::FromInstruction>("\xEF\xBB\xBF"
                                            "FROM b")
                .image,
            "b");
}

TEST(Lines, NonUtf8BytesAreKept) {
  EXPECT_EQ(parse_one<ast::RunInstruction>("RUN echo \xE9t\xE9").command.shell_text,
            "echo \xE9t\xE9");
}

TEST(Lines, MaximumLineLength) {
  std::string longest(65535 - 6, 'a');
  EXPECT_EQ(parse_one<ast::RunInstruction>("RUN a " + longest).command.shell_text.size(),
            65535u - 4);
  expect_error("FROM a\nLABEL x=" + std::string(65536, 'a'), 2, 1,
               "dockerfile line greater than max allowed size of 65535");
}

// TestParseIncludesLineNumbers from the reference.
TEST(Lines, CorpusLineNumbers) {
  auto dockerfile = parse_dockerfile(read_file(kCorpus / "testfile-line/Dockerfile"));
  ASSERT_EQ(dockerfile.instructions.size(), 3u);
  const std::vector<std::pair<int, int>> expected = {{5, 5}, {11, 12}, {17, 31}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(dockerfile.instructions[i].start.line, expected[i].first) << i;
    EXPECT_EQ(dockerfile.instructions[i].end_line, expected[i].second) << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Parser directives

TEST(Directives, EscapeBacktick) {
  auto dockerfile = parse_dockerfile("# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo done");
  EXPECT_EQ(dockerfile.escape, '`');
  ASSERT_EQ(dockerfile.instructions.size(), 2u);
  EXPECT_EQ(body<ast::RunInstruction>(dockerfile.instructions[1]).command.shell_text,
            "dir c:\\   && echo done");
}

TEST(Directives, KeysAreCaseInsensitiveAndValuesTrimmed) {
  auto dockerfile = parse_dockerfile("#  EScape = `  \n# SYNTAX=docker/dockerfile:1.7 \nFROM a");
  EXPECT_EQ(dockerfile.escape, '`');
  EXPECT_EQ(dockerfile.syntax, "docker/dockerfile:1.7");
}

TEST(Directives, OnlyBeforeOtherLines) {
  // After an ordinary comment (escape-after-comment) or a blank line, a directive is a comment.
  for (std::string_view text :
       {"# hello\n# escape=`\nRUN a \\\n  b", "\n# escape=`\nRUN a \\\n  b"}) {
    auto dockerfile = parse_dockerfile(text);
    EXPECT_EQ(dockerfile.escape, '\\');
    EXPECT_EQ(body<ast::RunInstruction>(only(dockerfile)).command.shell_text, "a   b") << text;
  }
  EXPECT_FALSE(parse_dockerfile("FROM a\n# syntax=x").syntax.has_value());
}

TEST(Directives, Errors) {
  expect_error("# escape=`\n# ESCAPE=\\\nFROM a", 2, 1,
               "only one escape parser directive can be used");
  expect_error("# syntax=a\n#syntax=b\nFROM a", 2, 1,
               "only one syntax parser directive can be used");
  expect_error("# escape=x\nFROM a", 1, 1, "invalid escape token 'x' does not match ` or \\");
}

// ---------------------------------------------------------------------------------------------
// The BuildKit corpus

std::vector<fs::path> corpus_cases(const std::string& directory) {
  std::vector<fs::path> cases;
  for (const auto& entry : fs::directory_iterator(kCorpus / directory))
    cases.push_back(entry.path());
  std::sort(cases.begin(), cases.end());
  return cases;
}

TEST(Corpus, NegativeCasesAreRejected) {
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"empty_dockerfile", "1:1: file with no instructions"},
      {"env_no_value", "3:1: ENV must have two arguments"},
      {"only_comments", "1:1: file with no instructions"},
      {"shykes-nested-json",
       "1:15: when using JSON array syntax, arrays must be comprised of strings only"}};
  ASSERT_EQ(corpus_cases("testfiles-negative").size(), expected.size());
  for (const auto& [name, message] : expected) {
    std::string text = read_file(kCorpus / "testfiles-negative" / name / "Dockerfile");
    try {
      parse_dockerfile(text);
      ADD_FAILURE() << name << " parsed";
    } catch (const SyntaxError& error) {
      EXPECT_EQ(std::string(error.what()), message) << name;
    }
  }
}

// Reads Go's strconv.Quote output back (the corpus result files are written with it).
std::string go_unquote(std::string_view quoted, std::size_t& pos) {
  std::string out;
  ++pos;  // opening quote
  while (quoted[pos] != '"') {
    char c = quoted[pos++];
    if (c != '\\') {
      out += c;
      continue;
    }
    char kind = quoted[pos++];
    auto hex = [&](int digits) {
      unsigned value = std::stoul(std::string(quoted.substr(pos, digits)), nullptr, 16);
      pos += digits;
      return value;
    };
    switch (kind) {
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x':
        out += static_cast<char>(hex(2));
        break;
      case 'u': {
        unsigned cp = hex(4);  // the corpus only escapes BMP code points
        if (cp < 0x80) {
          out += static_cast<char>(cp);
        } else if (cp < 0x800) {
          out += static_cast<char>(0xC0 | (cp >> 6));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
          out += static_cast<char>(0xE0 | (cp >> 12));
          out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        }
        break;
      }
      default:
        out += kind;
        break;  // \" and \\ .
    }
  }
  ++pos;  // closing quote
  return out;
}

// One line of a result file: `(keyword ["--flag" ...] "arg" ...)`. Nested ONBUILD dumps are not
// split further (their instructions are not typed yet).
struct DumpLine {
  std::string keyword;
  Strings flags;
  Strings args;
};

DumpLine parse_dump_line(std::string_view line) {
  DumpLine dump;
  std::size_t pos = 1;
  while (pos < line.size() && line[pos] != ' ' && line[pos] != ')') dump.keyword += line[pos++];
  if (line.substr(pos).starts_with(" [")) {
    pos += 2;
    while (line[pos] != ']') {
      if (line[pos] == ' ') ++pos;
      dump.flags.push_back(go_unquote(line, pos));
    }
    ++pos;
  }
  while (line.substr(pos).starts_with(" \"")) {
    ++pos;
    dump.args.push_back(go_unquote(line, pos));
  }
  return dump;
}

// What Node.Dump prints as arguments, for the instructions with a typed form.
std::optional<Strings> dump_args(const ast::Instruction& instruction) {
  return std::visit(
      [](const auto& typed) -> std::optional<Strings> {
        using T = std::decay_t<decltype(typed)>;
        if constexpr (std::is_same_v<T, ast::FromInstruction>) {
          Strings args{typed.image};
          if (typed.stage_name) args.insert(args.end(), {"AS", *typed.stage_name});
          return args;
        } else if constexpr (std::is_same_v<T, ast::RunInstruction> ||
                             std::is_same_v<T, ast::CmdInstruction>) {
          if (typed.command.exec_form) return typed.command.exec_args;
          if (typed.command.shell_text.empty()) return Strings{};
          return Strings{typed.command.shell_text};
        } else if constexpr (std::is_same_v<T, ast::MaintainerInstruction>) {
          return Strings{typed.name};
        } else if constexpr (std::is_same_v<T, ast::EnvInstruction>) {
          Strings args;
          for (const auto& variable : typed.variables) {
            args.insert(args.end(), {variable.key, variable.value, typed.legacy_form ? "" : "="});
          }
          return args;
        } else if constexpr (std::is_same_v<T, ast::ExposeInstruction>) {
          return typed.ports;
        } else {
          return std::nullopt;
        }
      },
      instruction.body);
}

// Every positive corpus case parses, with one instruction per result line, the same keywords and
// flags, and -- for the instructions typed so far -- the same argument values.
TEST(Corpus, PositiveCasesMatchReferenceResults) {
  auto cases = corpus_cases("testfiles");
  ASSERT_EQ(cases.size(), 33u);
  std::size_t typed_checked = 0;
  for (const fs::path& directory : cases) {
    SCOPED_TRACE(directory.filename().string());
    ast::Dockerfile dockerfile;
    ASSERT_NO_THROW(dockerfile = parse_dockerfile(read_file(directory / "Dockerfile")));
    std::istringstream result(read_file(directory / "result"));
    std::vector<DumpLine> expected;
    for (std::string line; std::getline(result, line);) expected.push_back(parse_dump_line(line));
    ASSERT_EQ(dockerfile.instructions.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      const ast::Instruction& instruction = dockerfile.instructions[i];
      std::string keyword = instruction.keyword;
      for (char& c : keyword) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      EXPECT_EQ(keyword, expected[i].keyword) << instruction.source;
      Strings flags;
      for (const ast::Flag& flag : instruction.flags) {
        flags.push_back("--" + flag.name + (flag.value ? "=" + *flag.value : ""));
      }
      EXPECT_EQ(flags, expected[i].flags) << instruction.source;
      if (auto args = dump_args(instruction)) {
        ++typed_checked;
        if (auto* from = std::get_if<ast::FromInstruction>(&instruction.body);
            from != nullptr && from->stage_name && expected[i].args.size() == 3) {
          expected[i].args[1] = "AS";  // `as` is kept as written in the dump
        }
        EXPECT_EQ(*args, expected[i].args) << instruction.source;
      }
    }
  }
  EXPECT_GT(typed_checked, 200u);
}

}  // namespace
}  // namespace slipway::grammar
