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

#include "DockerfileLexer.h"
#include "DockerfileParser.h"
#include "grammar/dump.h"
#include "grammar/line_scanner.h"

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
// The generated tables

// The lexer and parser deserialize their ATNs without ANTLR's verifyATN (lazy_atn.cmake: it
// cost every build 2.3 M instructions for data fixed when slipway is built); the check runs here.
TEST(GeneratedAtn, LexerAndParserAtnsVerify) {
  antlr4::ANTLRInputStream input("FROM scratch\n");
  gen::DockerfileLexer lexer(&input);
  antlr4::CommonTokenStream tokens(&lexer);
  gen::DockerfileParser parser(&tokens);
  // What deserialize() does with verification on, after building the ATN (the generated parser
  // of ANTLR 4.7 keeps its serialized form private).
  antlr4::atn::ATNDeserializer deserializer;
  EXPECT_NO_THROW(deserializer.verifyATN(lexer.getATN()));
  EXPECT_NO_THROW(deserializer.verifyATN(parser.getATN()));
  EXPECT_GT(lexer.getATN().states.size(), 100u);
  EXPECT_GT(parser.getATN().states.size(), 100u);
}

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
  auto dockerfile = parse_dockerfile(R"(COPY --a\ b --c='d "e"' --f="g\"h" src dst)");
  const auto& copy = only(dockerfile);
  ASSERT_EQ(copy.flags.size(), 3u);
  EXPECT_EQ(copy.flags[0].name, "a b");
  EXPECT_EQ(copy.flags[1].value, "d \"e\"");
  EXPECT_EQ(copy.flags[2].value, "g\"h");
  EXPECT_EQ(body<ast::CopyInstruction>(copy).sources, (Strings{"src"}));
  EXPECT_EQ(body<ast::CopyInstruction>(copy).destination, "dst");
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
// LABEL (parsed like ENV)

TEST(Label, KeyValueAndLegacyForms) {
  const auto& pairs = parse_one<ast::LabelInstruction>(R"(LABEL a=b "c d"=e f="g h" i=)");
  EXPECT_FALSE(pairs.legacy_form);
  ASSERT_EQ(pairs.labels.size(), 4u);
  EXPECT_EQ(kv(pairs.labels[0]), (Strings{"a", "b"}));
  EXPECT_EQ(kv(pairs.labels[1]), (Strings{"\"c d\"", "e"}));
  EXPECT_EQ(kv(pairs.labels[2]), (Strings{"f", "\"g h\""}));
  EXPECT_EQ(kv(pairs.labels[3]), (Strings{"i", ""}));
  const auto& legacy =
      parse_one<ast::LabelInstruction>("LABEL maintainer docker <docker@docker.io>");
  EXPECT_TRUE(legacy.legacy_form);
  ASSERT_EQ(legacy.labels.size(), 1u);
  EXPECT_EQ(kv(legacy.labels[0]), (Strings{"maintainer", "docker <docker@docker.io>"}));
}

TEST(Label, Errors) {
  expect_error("LABEL", 1, 1, "LABEL requires at least one argument");
  expect_error("FROM a\nLABEL x", 2, 1, "LABEL must have two arguments");
  expect_error("LABEL a=b c", 1, 11,
               "Syntax error - can't find = in \"c\". Must be of the form: name=value");
}

// ---------------------------------------------------------------------------------------------
// EXPOSE, MAINTAINER-like instructions (rest of the line), ARG

TEST(Expose, Words) {
  EXPECT_EQ(parse_one<ast::ExposeInstruction>("EXPOSE 80  53/udp\t$PORT").ports,
            (Strings{"80", "53/udp", "$PORT"}));
  EXPECT_TRUE(parse_one<ast::ExposeInstruction>("EXPOSE").ports.empty());
}

TEST(RestOfLine, UserWorkdirStopsignal) {
  EXPECT_EQ(parse_one<ast::UserInstruction>("USER  app:app ").user, "app:app");
  EXPECT_EQ(parse_one<ast::UserInstruction>("USER a b").user, "a b");
  EXPECT_EQ(parse_one<ast::UserInstruction>("USER").user, "");
  EXPECT_EQ(parse_one<ast::WorkdirInstruction>("WORKDIR /a dir/\"x y\"").path, "/a dir/\"x y\"");
  EXPECT_EQ(parse_one<ast::StopsignalInstruction>("STOPSIGNAL SIGKILL").signal, "SIGKILL");
  EXPECT_EQ(parse_one<ast::StopsignalInstruction>("stopsignal 9").signal, "9");
}

TEST(Arg, NamesAndRawDefaults) {
  const auto& arg = parse_one<ast::ArgInstruction>(R"(ARG a b=1 c="x y" d= e=f=g =h)");
  ASSERT_EQ(arg.args.size(), 6u);
  EXPECT_EQ(arg.args[0].name, "a");
  EXPECT_FALSE(arg.args[0].default_value.has_value());
  EXPECT_EQ(arg.args[1].name, "b");
  EXPECT_EQ(arg.args[1].default_value, "1");
  EXPECT_EQ(arg.args[2].name, "c");
  EXPECT_EQ(arg.args[2].default_value, "\"x y\"");
  EXPECT_EQ(arg.args[3].default_value, "");
  EXPECT_EQ(arg.args[4].name, "e");
  EXPECT_EQ(arg.args[4].default_value, "f=g");
  EXPECT_EQ(arg.args[5].name, "");  // the builder rejects it, as docker does
  EXPECT_TRUE(parse_one<ast::ArgInstruction>("ARG").args.empty());
}

// ---------------------------------------------------------------------------------------------
// ENTRYPOINT, SHELL, HEALTHCHECK (exec or shell form)

TEST(Entrypoint, ExecAndShellForms) {
  const auto& exec = parse_one<ast::EntrypointInstruction>(R"(ENTRYPOINT [ "/bin/redis" ])");
  EXPECT_TRUE(exec.command.exec_form);
  EXPECT_EQ(exec.command.exec_args, (Strings{"/bin/redis"}));
  const auto& shell = parse_one<ast::EntrypointInstruction>("ENTRYPOINT exec top -b ");
  EXPECT_FALSE(shell.command.exec_form);
  EXPECT_EQ(shell.command.shell_text, "exec top -b");
  expect_error("ENTRYPOINT [1]", 1, 13,
               "when using JSON array syntax, arrays must be comprised of strings only");
}

TEST(Shell, JsonOrShellText) {
  const auto& json = parse_one<ast::ShellInstruction>(R"(SHELL ["powershell", "-command"])");
  EXPECT_TRUE(json.command.exec_form);
  EXPECT_EQ(json.command.exec_args, (Strings{"powershell", "-command"}));
  // Docker rejects this when it builds; the parser keeps it for the builder to say so.
  const auto& shell = parse_one<ast::ShellInstruction>("SHELL /bin/bash -c");
  EXPECT_FALSE(shell.command.exec_form);
  EXPECT_EQ(shell.command.shell_text, "/bin/bash -c");
  expect_error(R"(SHELL ["sh", 1])", 1, 14,
               "when using JSON array syntax, arrays must be comprised of strings only");
}

TEST(Healthcheck, TypeFlagsAndCommand) {
  auto dockerfile = parse_dockerfile(
      "HEALTHCHECK --interval=5s --timeout=3s --retries=3 \\\n  CMD /app/check.sh --quiet");
  const auto& instruction = only(dockerfile);
  ASSERT_EQ(instruction.flags.size(), 3u);
  EXPECT_EQ(instruction.flags[0].name, "interval");
  EXPECT_EQ(instruction.flags[0].value, "5s");
  EXPECT_EQ(instruction.flags[2].position.column, 40);
  const auto& healthcheck = body<ast::HealthcheckInstruction>(instruction);
  EXPECT_EQ(healthcheck.type, "CMD");
  EXPECT_EQ(healthcheck.command.shell_text, "/app/check.sh --quiet");

  const auto& exec = parse_one<ast::HealthcheckInstruction>(R"(HEALTHCHECK cmd ["curl", "-f"])");
  EXPECT_EQ(exec.type, "cmd");
  EXPECT_TRUE(exec.command.exec_form);
  EXPECT_EQ(exec.command.exec_args, (Strings{"curl", "-f"}));
  EXPECT_EQ(parse_one<ast::HealthcheckInstruction>("HEALTHCHECK NONE").type, "NONE");
  EXPECT_EQ(parse_one<ast::HealthcheckInstruction>("HEALTHCHECK").type, "");
  const auto& other = parse_one<ast::HealthcheckInstruction>("HEALTHCHECK CONNECT TCP 7000");
  EXPECT_EQ(other.type, "CONNECT");
  EXPECT_EQ(other.command.shell_text, "TCP 7000");
  // The type is the first whitespace-separated chunk, JSON or not.
  EXPECT_EQ(parse_one<ast::HealthcheckInstruction>(R"(HEALTHCHECK CMD["x"])").type, "CMD[\"x\"]");
}

// ---------------------------------------------------------------------------------------------
// ADD, COPY, VOLUME (JSON array or words where quotes mean nothing)

TEST(Copy, FlagsSourcesAndDestination) {
  auto dockerfile = parse_dockerfile("COPY --chown=app:app --from=build \"a b\" c /dst/");
  const auto& copy = only(dockerfile);
  EXPECT_EQ(copy.keyword, "COPY");
  ASSERT_EQ(copy.flags.size(), 2u);
  EXPECT_EQ(copy.flags[0].name, "chown");
  EXPECT_EQ(copy.flags[0].value, "app:app");
  EXPECT_EQ(copy.flags[0].position.column, 6);
  EXPECT_EQ(copy.flags[1].name, "from");
  EXPECT_EQ(copy.flags[1].value, "build");
  EXPECT_EQ(copy.flags[1].position.column, 22);
  const auto& typed = body<ast::CopyInstruction>(copy);
  EXPECT_FALSE(typed.json_form);
  EXPECT_EQ(typed.sources, (Strings{"\"a", "b\"", "c"}));
  EXPECT_EQ(typed.destination, "/dst/");
  EXPECT_TRUE(typed.heredocs.empty());
}

TEST(Copy, WordsAfterTheFlagsMayLookLikeFlags) {
  auto dockerfile = parse_dockerfile("COPY --from=x -- --weird --name /dst");
  const auto& copy = only(dockerfile);
  ASSERT_EQ(copy.flags.size(), 1u);
  EXPECT_EQ(copy.flags[0].name, "from");
  EXPECT_EQ(body<ast::CopyInstruction>(copy).sources, (Strings{"--weird", "--name"}));
  EXPECT_EQ(parse_one<ast::ExposeInstruction>("EXPOSE 80 --x").ports, (Strings{"80", "--x"}));
  const auto& env = parse_one<ast::EnvInstruction>("ENV A --b");
  EXPECT_EQ(kv(env.variables.at(0)), (Strings{"A", "--b"}));
}

TEST(Add, JsonForm) {
  const auto& add = parse_one<ast::AddInstruction>(R"(ADD [ "a b", "c\u0041", "/d e/" ])");
  EXPECT_TRUE(add.json_form);
  EXPECT_EQ(add.sources, (Strings{"a b", "cA"}));
  EXPECT_EQ(add.destination, "/d e/");
  // Not valid JSON: words, quotes and brackets included.
  const auto& words = parse_one<ast::AddInstruction>(R"(ADD ["a", "b"] c)");
  EXPECT_FALSE(words.json_form);
  EXPECT_EQ(words.sources, (Strings{"[\"a\",", "\"b\"]"}));
  EXPECT_EQ(words.destination, "c");
}

TEST(Copy, NeedsADestination) {
  const std::string message =
      " requires at least two arguments, but only one was provided. Destination could not be "
      "determined";
  expect_error("COPY a", 1, 1, "COPY" + message);
  expect_error("FROM a\n add [\"a\"]", 2, 2, "ADD" + message);
  expect_error("COPY --from=x", 1, 1, "COPY" + message);
  expect_error(R"(COPY ["a", 1])", 1, 12,
               "when using JSON array syntax, arrays must be comprised of strings only");
}

TEST(Volume, WordsOrJson) {
  const auto& words = parse_one<ast::VolumeInstruction>("VOLUME /a  /b\t/c");
  EXPECT_FALSE(words.json_form);
  EXPECT_EQ(words.paths, (Strings{"/a", "/b", "/c"}));
  const auto& json = parse_one<ast::VolumeInstruction>(R"(VOLUME ["/x y", "/z"])");
  EXPECT_TRUE(json.json_form);
  EXPECT_EQ(json.paths, (Strings{"/x y", "/z"}));
  const auto& empty = parse_one<ast::VolumeInstruction>("VOLUME []");
  EXPECT_TRUE(empty.json_form);
  EXPECT_TRUE(empty.paths.empty());
}

// ---------------------------------------------------------------------------------------------
// ONBUILD

TEST(Onbuild, TriggerIsAnInstruction) {
  auto dockerfile = parse_dockerfile("FROM a\nONBUILD  --x=1 run --mount=type=cache ls -l ");
  const auto& onbuild = dockerfile.instructions.at(1);
  EXPECT_EQ(onbuild.keyword, "ONBUILD");
  ASSERT_EQ(onbuild.flags.size(), 1u);
  EXPECT_EQ(onbuild.flags[0].name, "x");
  const ast::Instruction& trigger = *body<ast::OnbuildInstruction>(onbuild).trigger;
  EXPECT_EQ(trigger.keyword, "RUN");
  EXPECT_EQ(trigger.source, "run --mount=type=cache ls -l");
  EXPECT_EQ(trigger.start.line, 2);
  EXPECT_EQ(trigger.start.column, 16);
  ASSERT_EQ(trigger.flags.size(), 1u);
  EXPECT_EQ(trigger.flags[0].name, "mount");
  EXPECT_EQ(trigger.flags[0].position.column, 20);
  EXPECT_EQ(body<ast::RunInstruction>(trigger).command.shell_text, "ls -l");

  const auto& copy = parse_one<ast::OnbuildInstruction>("ONBUILD COPY [\"a\", \"b\"]");
  EXPECT_TRUE(body<ast::CopyInstruction>(*copy.trigger).json_form);
  const auto& dashes = parse_one<ast::OnbuildInstruction>("ONBUILD -- ADD a b");
  EXPECT_EQ(body<ast::AddInstruction>(*dashes.trigger).destination, "b");
  // Copies are deep.
  ast::OnbuildInstruction copied = copy;
  EXPECT_NE(&*copied.trigger, &*copy.trigger);
  EXPECT_EQ(copied.trigger->keyword, "COPY");
}

TEST(Onbuild, Errors) {
  expect_error("ONBUILD", 1, 1, "ONBUILD requires at least one argument");
  expect_error("ONBUILD --x", 1, 1, "ONBUILD requires at least one argument");
  expect_error("ONBUILD ONBUILD RUN x", 1, 9,
               "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
  expect_error("ONBUILD from x", 1, 9, "FROM isn't allowed as an ONBUILD trigger");
  expect_error("ONBUILD --f FROM a b", 1, 13, "FROM isn't allowed as an ONBUILD trigger");
  expect_error("ONBUILD MAINTAINER me", 1, 9, "MAINTAINER isn't allowed as an ONBUILD trigger");
  expect_error("ONBUILD RUNX y", 1, 9, "unknown instruction: RUNX (did you mean RUN?)");
  expect_error("ONBUILD ENV a", 1, 9, "ENV must have two arguments");
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

// Every positive corpus case: dump() + "\n" is byte-identical to the reference's `result`.
// One test per case directory, found at test time.
std::vector<std::string> positive_case_names() {
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::is_directory(kCorpus / "testfiles", ec)) return names;
  for (const fs::path& directory : corpus_cases("testfiles")) {
    names.push_back(directory.filename().string());
  }
  return names;
}

class CorpusCase : public ::testing::TestWithParam<std::string> {};

TEST_P(CorpusCase, DumpMatchesReferenceResult) {
  const fs::path directory = kCorpus / "testfiles" / GetParam();
  ast::Dockerfile dockerfile;
  ASSERT_NO_THROW(dockerfile = parse_dockerfile(read_file(directory / "Dockerfile")));
  EXPECT_EQ(dump(dockerfile) + "\n", read_file(directory / "result"));
}

INSTANTIATE_TEST_SUITE_P(Reference, CorpusCase, ::testing::ValuesIn(positive_case_names()),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string name = param.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(Corpus, AllPositiveCasesPresent) {
  EXPECT_EQ(positive_case_names().size(), 33u);
}

// ---------------------------------------------------------------------------------------------
// dump() beyond the corpus

TEST(Dump, EveryInstructionForm) {
  auto dockerfile = parse_dockerfile(
      "FROM --platform=$P img As base\n"
      "ARG a b=\"c d\"\n"
      "RUN --mount=type=cache,target=/x <<EOF\nbody\nEOF\n"
      "COPY <<A <<B /dst\na\nA\nb\nB\n"
      "ADD [\"s\", \"d\"]\n"
      "ONBUILD --f RUN [\"a\", \"b\"]\n"
      "ONBUILD COPY <<EOF /x\nline\nEOF\n"
      "HEALTHCHECK --retries=3 CMD [\"x\"]\n"
      "USER\n"
      "STOPSIGNAL 9\n"
      "VOLUME [\"/v\"]\n"
      "SHELL [\"sh\", \"-c\"]\n"
      "ENTRYPOINT a  b\n"
      "LABEL a=\"\\u2603\"\n"
      "WORKDIR /w\n");
  EXPECT_EQ(dump(dockerfile),
            "(from [\"--platform=$P\"] \"img\" \"As\" \"base\")\n"
            "(arg \"a\" \"b=\\\"c d\\\"\")\n"
            "(run [\"--mount=type=cache,target=/x\"] \"<<EOF\")\n"
            "(copy \"<<A\" \"<<B\" \"/dst\")\n"
            "(add \"s\" \"d\")\n"
            "(onbuild [\"--f\"] (run \"a\" \"b\"))\n"
            "(onbuild (copy \"<<EOF\" \"/x\"))\n"
            "(healthcheck [\"--retries=3\"] \"CMD\" \"x\")\n"
            "(user)\n"
            "(stopsignal \"9\")\n"
            "(volume \"/v\")\n"
            "(shell \"sh\" \"-c\")\n"
            "(entrypoint \"a  b\")\n"
            "(label \"a\" \"\\\"\\\\u2603\\\"\" \"=\")\n"
            "(workdir \"/w\")");
}

TEST(Dump, GoQuoting) {
  auto dockerfile = parse_dockerfile(
      "CMD [\"\\u0000\\u0007\\u001b\\u007f \\u00a0 \\u2028 \\ud83d\\ude00 \\ud800\"]\n"
      "RUN \xff\t\xe2\x98\x83");
  EXPECT_EQ(dump(dockerfile),
            "(cmd \"\\x00\\a\\x1b\\x7f \\u00a0 \\u2028 \xf0\x9f\x98\x80 \xef\xbf\xbd\")\n"
            "(run \"\\xff\\t\xe2\x98\x83\")");
}

// ---------------------------------------------------------------------------------------------
// Heredocs (TestParseExtractsHeredoc and friends in the reference)

struct ExpectedHeredoc {
  std::string name;
  std::string content;
  bool expand = true;
  bool chomp = false;
  unsigned file_descriptor = 0;
};

void expect_heredocs(const std::vector<ast::Heredoc>& actual,
                     const std::vector<ExpectedHeredoc>& expected, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(actual[i].name, expected[i].name) << what;
    EXPECT_EQ(actual[i].content, expected[i].content) << what;
    EXPECT_EQ(actual[i].expand, expected[i].expand) << what;
    EXPECT_EQ(actual[i].chomp, expected[i].chomp) << what;
    EXPECT_EQ(actual[i].file_descriptor, expected[i].file_descriptor) << what;
  }
}

// The heredocs of an instruction (RUN, COPY, ADD, or those as an ONBUILD trigger).
std::vector<ast::Heredoc> heredocs_of(const ast::Instruction& instruction) {
  if (const auto* onbuild = std::get_if<ast::OnbuildInstruction>(&instruction.body)) {
    return heredocs_of(*onbuild->trigger);
  }
  if (const auto* run = std::get_if<ast::RunInstruction>(&instruction.body)) return run->heredocs;
  if (const auto* copy = std::get_if<ast::CopyInstruction>(&instruction.body)) {
    return copy->heredocs;
  }
  if (const auto* add = std::get_if<ast::AddInstruction>(&instruction.body)) return add->heredocs;
  return {};
}

// The reference's own case, minus its `INVALID` line: after `USER <<INVALID` (USER takes no
// heredoc) that line is an instruction, which the reference's parser ignores and slipway
// rejects as unknown.
TEST(Heredoc, ReferenceExtractionCases) {
  auto dockerfile = parse_dockerfile(
      "\nFROM alpine:3.6\n\nENV NAME=me\n\nRUN ls\n\nUSER <<INVALID\n\n"
      "RUN <<EMPTY\nEMPTY\n\nRUN 3<<EMPTY2\nEMPTY2\n\nRUN \"<<NOHEREDOC\"\n\n"
      "RUN <<INDENT\n\tfoo\n\tbar\nINDENT\n\n"
      "RUN <<-UNINDENT\n\tbaz\n\tquux\nUNINDENT\n\n"
      "RUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\n\n"
      "RUN <<-EXPAND\n\texpand $NAME\nEXPAND\n\n"
      "RUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\n\n"
      "RUN <<COPY\necho hello world\necho foo bar\nCOPY\n\n"
      "RUN <<COMMENT\n# internal comment\necho hello world\necho foo bar # trailing comment\n"
      "COMMENT\n\n"
      "RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n\n"
      "COPY <<FILE1 <<FILE2 /dest\ncontent 1\nFILE1\ncontent 2\nFILE2\n\n"
      "COPY <<X <<Y /dest\nY\nX\nX\nY\n\t");
  const std::vector<std::vector<ExpectedHeredoc>> expected = {
      {},  // ENV NAME=me
      {},  // RUN ls
      {},  // USER <<INVALID
      {{"EMPTY", ""}},
      {{"EMPTY2", "", true, false, 3}},
      {},  // RUN "<<NOHEREDOC"
      {{"INDENT", "\tfoo\n\tbar\n"}},
      {{"UNINDENT", "\tbaz\n\tquux\n", true, true}},
      {{"UNINDENT2", "\tbaz\n\tquux\n", true, true}},
      {{"EXPAND", "\texpand $NAME\n", true, true}},
      {{"NOEXPAND", "\tdon't expand $NAME\n", false, true}},
      {{"COPY", "echo hello world\necho foo bar\n"}},
      {{"COMMENT", "# internal comment\necho hello world\necho foo bar # trailing comment\n"}},
      {{"MOUNT", "echo hello\n"}},
      {{"FILE1", "content 1\n"}, {"FILE2", "content 2\n"}},
      {{"X", "Y\n"}, {"Y", "X\n"}},
  };
  ASSERT_EQ(dockerfile.instructions.size(), expected.size() + 1);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const ast::Instruction& instruction = dockerfile.instructions[i + 1];
    expect_heredocs(heredocs_of(instruction), expected[i], instruction.source);
  }
  // The bodies are not instructions, and end_line covers them.
  const ast::Instruction& indent = dockerfile.instructions.at(7);
  EXPECT_EQ(indent.source, "RUN <<INDENT");
  EXPECT_EQ(indent.start.line, 18);
  EXPECT_EQ(indent.end_line, 21);
  const ast::Heredoc heredoc = heredocs_of(indent).at(0);
  EXPECT_EQ(heredoc.position.line, 18);
  EXPECT_EQ(heredoc.position.column, 5);
  EXPECT_EQ(body<ast::RunInstruction>(indent).command.shell_text, "<<INDENT");
  const auto& copy = body<ast::CopyInstruction>(dockerfile.instructions.back());
  EXPECT_EQ(copy.sources, (Strings{"<<X", "<<Y"}));
  EXPECT_EQ(copy.destination, "/dest");
}

// TestParseJSONHeredoc: exec form has no heredocs.
TEST(Heredoc, NotInJsonForm) {
  auto dockerfile = parse_dockerfile(
      "FROM alpine\nRUN [\"whoami\"]\nRUN [\"<<EOF\"]\nRUN [\"<<'EOF'\"]\nCOPY [\"<<EOF\", "
      "\"/x\"]");
  ASSERT_EQ(dockerfile.instructions.size(), 5u);
  for (const auto& instruction : dockerfile.instructions) {
    EXPECT_TRUE(heredocs_of(instruction).empty()) << instruction.source;
  }
}

TEST(Heredoc, OnlyRunCopyAddAndTheirOnbuild) {
  auto dockerfile = parse_dockerfile(
      "CMD <<EOF\nENTRYPOINT <<EOF\nADD <<EOF /x\nadded\nEOF\n"
      "ONBUILD RUN <<-EOF cat\n\tx\n\tEOF\nONBUILD CMD <<EOF\n");
  ASSERT_EQ(dockerfile.instructions.size(), 5u);
  EXPECT_TRUE(heredocs_of(dockerfile.instructions[0]).empty());
  EXPECT_TRUE(heredocs_of(dockerfile.instructions[1]).empty());
  expect_heredocs(heredocs_of(dockerfile.instructions[2]), {{"EOF", "added\n"}}, "ADD");
  const ast::Instruction& onbuild = dockerfile.instructions[3];
  expect_heredocs(heredocs_of(onbuild), {{"EOF", "\tx\n", true, true}}, "ONBUILD RUN");
  EXPECT_EQ(onbuild.end_line, 8);
  EXPECT_EQ(body<ast::OnbuildInstruction>(onbuild).trigger->end_line, 8);
  EXPECT_TRUE(heredocs_of(dockerfile.instructions[4]).empty());
}

// TestHeredocsFromLine.
TEST(Heredoc, WordsOfALine) {
  const std::vector<std::pair<std::string, Strings>> cases = {
      {"RUN <<EOF", {"EOF"}},
      {"RUN <<-EOF", {"EOF"}},
      {"RUN <<'EOF'", {"EOF"}},
      {"RUN 4<<EOF", {"EOF"}},
      {"RUN <<EOF <<EOF2", {"EOF", "EOF2"}},
      {"RUN '<<EOF'", {}},
      {"RUN \"<<EOF\"", {}},
      {"RUN << EOF", {}},
      {"RUN cat<<EOF", {}},
      {"RUN <<EO\"F\" x", {"EOF"}},
      {"RUN --mount=x 'a b' <<X && <<-Y", {"X", "Y"}},
      {"RUN \"unterminated <<EOF", {}},  // the line does not lex: no heredocs at all
  };
  for (const auto& [text, names] : cases) {
    LogicalLine line;
    line.text = text;
    line.start_line = line.end_line = 1;
    line.segments.push_back({0, 1, 1});
    Strings actual;
    for (const auto& heredoc : heredocs_in_line(line)) actual.push_back(heredoc.name);
    EXPECT_EQ(actual, names) << text;
  }
}

// TestParseHeredocHelpers.
TEST(Heredoc, SingleWords) {
  for (std::string_view word :
       {"<<EOF", "<<'EOF'", "<<\"EOF\"", "<<-EOF", "<<-'EOF'", "<<-\"EOF\""}) {
    auto heredoc = parse_heredoc_word(word);
    ASSERT_TRUE(heredoc.has_value()) << word;
    EXPECT_EQ(heredoc->name, "EOF") << word;
    EXPECT_EQ(heredoc->chomp, word.starts_with("<<-")) << word;
    EXPECT_EQ(heredoc->expand, word.find_first_of("'\"") == std::string_view::npos) << word;
  }
  for (std::string_view word : {"", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<''"}) {
    EXPECT_FALSE(parse_heredoc_word(word).has_value()) << word;
  }
  for (std::string_view word : {"<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""}) {
    EXPECT_THROW(parse_heredoc_word(word), std::runtime_error) << word;
  }
  EXPECT_EQ(parse_heredoc_word("12<<-x")->file_descriptor, 12u);
  EXPECT_FALSE(parse_heredoc_word("<<E\"O\"F")->expand);
  EXPECT_EQ(parse_heredoc_word("<<E\"O\"F")->name, "EOF");
  EXPECT_TRUE(parse_heredoc_word("<<\\EOF")->expand);  // an escape is not a quote
}

TEST(Heredoc, TerminatorLines) {
  // CRLF: the terminator matches without its '\r'; body lines keep theirs.
  const auto& crlf = parse_one<ast::RunInstruction>("RUN <<EOF\r\nline\r\nEOF\r\n");
  expect_heredocs(crlf.heredocs, {{"EOF", "line\r\n"}}, "crlf");
  // Without `-`, an indented terminator is body text; the last line needs no newline.
  const auto& indented = parse_one<ast::RunInstruction>("RUN <<EOF\n\tEOF\n EOF\nEOF");
  expect_heredocs(indented.heredocs, {{"EOF", "\tEOF\n EOF\n"}}, "indented");
  // Body lines are not comments, continuations or directives.
  const auto& raw = parse_one<ast::RunInstruction>("RUN <<EOF\n# c\nx \\\n\n  \nEOF");
  expect_heredocs(raw.heredocs, {{"EOF", "# c\nx \\\n\n  \n"}}, "raw");
  // The heredoc line itself may be continued.
  const auto& continued = parse_one<ast::CopyInstruction>("COPY \\\n  <<EOF /x\nbody\nEOF");
  expect_heredocs(continued.heredocs, {{"EOF", "body\n"}}, "continued");
}

TEST(Heredoc, Unterminated) {
  expect_error("FROM a\nRUN <<EOF\necho hi\n", 2, 5, "unterminated heredoc");
  expect_error("FROM a\nCOPY <<A <<B /x\na\nA\nb\n", 2, 10, "unterminated heredoc");
  expect_error("RUN <<-EOF\n  EOF\n", 1, 5, "unterminated heredoc");
}

TEST(Heredoc, LongBodyLines) {
  expect_error("RUN <<EOF\n" + std::string(65536, 'x') + "\nEOF", 2, 1,
               "dockerfile line greater than max allowed size of 65535");
}

}  // namespace
}  // namespace slipway::grammar
