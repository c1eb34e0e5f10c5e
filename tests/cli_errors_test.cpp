// Bad input on the command line, in docker's words and exit codes, driving the real binary:
// unknown flags and shorthands, missing arguments, bad templates, unknown filter keys, an
// unresolvable or refusing registry host, and --help in docker's layout.
#include <gtest/gtest.h>

#include <regex>

#include "tests/registry_fixture.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {

class CliErrorsTest : public BusyboxStoreTest {
 protected:
  void TearDown() override { remove_containers_and_expect_no_mounts(); }
  CommandResult slipway(const std::vector<std::string>& args) { return run_slipway(root(), args); }
};

TEST_F(CliErrorsTest, UnknownFlagsAreDockersErrors) {
  auto ps = slipway({"ps", "--foo"});
  EXPECT_EQ(ps.exit_code, 125);
  EXPECT_EQ(ps.err, "unknown flag: --foo\nSee 'slipway ps --help'.\n");
  auto shorthand = slipway({"images", "-Z"});
  EXPECT_EQ(shorthand.exit_code, 125);
  EXPECT_EQ(shorthand.err, "unknown shorthand flag: 'Z' in -Z\nSee 'slipway images --help'.\n");
  auto grouped = slipway({"container", "ls", "--bogus=1"});
  EXPECT_EQ(grouped.err, "unknown flag: --bogus\nSee 'slipway container ls --help'.\n");
  // run: an unknown flag before the image is never taken for the image name.
  auto run = slipway({"run", "--no-such-flag", "busybox", "true"});
  EXPECT_EQ(run.exit_code, 125);
  EXPECT_EQ(run.err, "unknown flag: --no-such-flag\nSee 'slipway run --help'.\n");
  auto run_short = slipway({"run", "-Q", "/a:/b", "busybox"});
  EXPECT_EQ(run_short.exit_code, 125);
  EXPECT_EQ(run_short.err, "unknown shorthand flag: 'Q' in -Q\nSee 'slipway run --help'.\n");
  auto create = slipway({"create", "--what", "busybox"});
  EXPECT_EQ(create.exit_code, 125);
  EXPECT_EQ(create.err, "unknown flag: --what\nSee 'slipway create --help'.\n");
  EXPECT_EQ(slipway({"ps", "-a", "-q"}).out, "");  // nothing was created by any of them
  // After the image, flags are the command's.
  auto passed = slipway({"run", "--rm", "busybox", "echo", "--foo"});
  EXPECT_EQ(passed.out, "--foo\n") << passed.err;
}

TEST_F(CliErrorsTest, MissingArgumentsAreDockersErrors) {
  auto run = slipway({"run"});
  EXPECT_EQ(run.exit_code, 125);
  EXPECT_EQ(run.err.rfind("\"slipway run\" requires at least 1 argument.\nSee 'slipway run "
                          "--help'.\n\nUsage:  slipway run [OPTIONS] IMAGE [COMMAND] [ARG...]\n",
                          0),
            0u)
      << run.err;
  auto rm = slipway({"rm"});
  EXPECT_EQ(rm.exit_code, 1);
  EXPECT_EQ(
      rm.err.rfind("\"slipway rm\" requires at least 1 argument.\nSee 'slipway rm --help'.", 0), 0u)
      << rm.err;
  auto surplus = slipway({"ps", "extra"});
  EXPECT_EQ(surplus.exit_code, 1);
  EXPECT_EQ(surplus.err.rfind("\"slipway ps\" accepts no arguments.", 0), 0u) << surplus.err;
  auto unknown = slipway({"container", "nope"});
  EXPECT_NE(unknown.exit_code, 0);
  auto missing_container = slipway({"stop", "nosuch"});
  EXPECT_EQ(missing_container.exit_code, 1);
  EXPECT_EQ(missing_container.err, "Error: No such container: nosuch\n");
  auto pull_never = slipway({"run", "--pull=never", "nosuch:1"});
  EXPECT_EQ(pull_never.exit_code, 125);
  EXPECT_EQ(pull_never.err, "Error: no such image: nosuch:1\n");
  auto pull_bad = slipway({"run", "--pull", "sometimes", "busybox"});
  EXPECT_EQ(pull_bad.exit_code, 125);
  EXPECT_EQ(pull_bad.err,
            "Error: invalid pull option: 'sometimes': must be one of \"always\", \"missing\" or "
            "\"never\"\n");
}

TEST_F(CliErrorsTest, BadTemplatesAndFilterKeys) {
  auto unclosed = slipway({"ps", "--format", "{{.ID"});
  EXPECT_EQ(unclosed.exit_code, 1);
  EXPECT_EQ(unclosed.err, "Error: failed to parse template: template: :1: unclosed action\n");
  auto function = slipway({"images", "--format", "{{nosuch .ID}}"});
  EXPECT_EQ(function.err,
            "Error: template parsing error: template: :1: function \"nosuch\" not defined\n");
  ASSERT_EQ(slipway({"create", "--name", "box", "busybox", "true"}).exit_code, 0);
  auto field = slipway({"ps", "-a", "--format", "{{.Foo}}"});
  EXPECT_EQ(field.exit_code, 1);
  EXPECT_EQ(field.err,
            "Error: template parsing error: template: :1:2: executing \"\" at <.Foo>: can't "
            "evaluate field Foo in type *formatter.ContainerContext\n");
  auto key = slipway({"ps", "--filter", "colour=red"});
  EXPECT_EQ(key.exit_code, 1);
  EXPECT_EQ(key.err, "Error: invalid filter 'colour'\n");
  EXPECT_EQ(slipway({"images", "-f", "status=exited"}).err, "Error: invalid filter 'status'\n");
  EXPECT_EQ(slipway({"container", "prune", "-f", "--filter", "name=x"}).err,
            "Error: invalid filter 'name'\n");
  EXPECT_EQ(slipway({"ps", "--filter", "novalue"}).err,
            "Error: bad format of filter (expected name=value)\n");
  EXPECT_EQ(slipway({"ps", "-f", "status=sleeping"}).err,
            "Error: invalid filter 'status=sleeping'\n");
  EXPECT_EQ(slipway({"ps", "-a", "-f", "before=nosuch"}).err, "Error: No such container: nosuch\n");
}

TEST_F(CliErrorsTest, RegistryHostThatCannotBeReachedIsNamed) {
  std::vector<std::string> fast = {"SLIPWAY_RETRY_BASE_SECONDS=0"};
  // In a network namespace of its own with nothing in it, so that the name lookup fails at once
  // and no packet leaves the machine.
  auto unresolvable = run_program({"unshare", "--net", SLIPWAY_BINARY, "--root", root().string(),
                                   "pull", "nosuchhost.invalid/app:1"},
                                  fast);
  EXPECT_EQ(unresolvable.exit_code, 1);
  EXPECT_NE(unresolvable.err.find("nosuchhost.invalid"), std::string::npos) << unresolvable.err;
  EXPECT_NE(unresolvable.err.find("resolve"), std::string::npos) << unresolvable.err;
  EXPECT_EQ(unresolvable.err.find("libcurl: cannot set"), std::string::npos) << unresolvable.err;
  // A port nothing listens on: refused, host and port named.
  int port = free_port();
  std::string host = "127.0.0.1:" + std::to_string(port);
  auto refused = run_slipway_with(root(), {"run", "--rm", host + "/app:1"}, fast);
  EXPECT_EQ(refused.exit_code, 125);
  EXPECT_NE(refused.err.find("Unable to find image '" + host + "/app:1' locally"),
            std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find(host), std::string::npos) << refused.err;
  EXPECT_TRUE(std::regex_search(refused.err, std::regex("[Cc]onnect|refused"))) << refused.err;
  EXPECT_EQ(refused.err.find("libcurl: cannot set"), std::string::npos) << refused.err;
}

TEST_F(CliErrorsTest, HelpInDockersLayout) {
  auto help = slipway({"ps", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_EQ(
      help.out.rfind("\nUsage:  slipway ps [OPTIONS]\n\nList containers\n\nAliases:\n  slipway "
                     "container ls, slipway container list, slipway container ps, slipway "
                     "ps\n\nOptions:\n  -a, --all ",
                     0),
      0u)
      << help.out;
  EXPECT_NE(help.out.find("\n  -f, --filter filter "), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("\n      --format string "), std::string::npos) << help.out;
  auto run = slipway({"run", "--help"});
  EXPECT_EQ(run.out.rfind("\nUsage:  slipway run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun a "
                          "command in a new container\n\nAliases:\n  slipway container run, "
                          "slipway run\n",
                          0),
            0u)
      << run.out;
  EXPECT_NE(run.out.find("\n  -e, --env list "), std::string::npos) << run.out;
  auto group = slipway({"container", "--help"});
  EXPECT_EQ(
      group.out.rfind("\nUsage:  slipway container COMMAND\n\nManage containers\n\nCommands:\n", 0),
      0u)
      << group.out;
  EXPECT_NE(group.out.find("\nRun 'slipway container COMMAND --help' for more information on a "
                           "command.\n"),
            std::string::npos);
  // Every command has a help of this shape.
  for (const char* command : {"images", "rmi", "inspect", "history", "build", "pull", "logs",
                              "exec", "version", "info"}) {
    auto result = slipway({command, "--help"});
    EXPECT_EQ(result.exit_code, 0) << command;
    EXPECT_EQ(result.out.rfind(std::string("\nUsage:  slipway ") + command, 0), 0u) << result.out;
  }
}

}  // namespace
}  // namespace slipway::testing
