// docker's command-line conventions on top of CLI11: `--help` in docker's layout (Usage,
// Aliases, Options, Commands), and usage errors in docker's words and exit codes
// ("unknown flag: --foo", "unknown shorthand flag: 'Z' in -Z",
// "\"slipway rm\" requires at least 1 argument.", each with "See 'slipway rm --help'.").
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "common/error.h"

namespace slipway::cli {

// A usage error found by a command itself (run's unknown flag before the image, a missing
// image): printed as it is, without "Error: ", and exits with `exit_code`.
class UsageError : public Error {
 public:
  UsageError(const std::string& what, int exit_code) : Error(what), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// "slipway container ls"
std::string command_path(const CLI::App* app);

// "slipway ps [OPTIONS]", "slipway run [OPTIONS] IMAGE [COMMAND] [ARG...]"
std::string usage_line(const CLI::App* app);

// The formatter that prints --help as docker does; set on the root before subcommands are added
// (CLI11 copies it into each).
std::shared_ptr<CLI::FormatterBase> docker_help_formatter();

// Prints a CLI11 parse error of `app` as docker would and returns the exit status: 125 for an
// unknown flag (docker's status for flag errors) and for any usage error of run/create, 1 for a
// missing or surplus argument, 0 after --help.
int report_parse_error(CLI::App& app, const CLI::ParseError& error, int argc, char** argv);

// The same report for an unknown flag that reached a command's own arguments (run's and
// create's flags end at the image name): "unknown flag: --foo\nSee 'slipway run --help'.".
std::string unknown_flag_message(const std::string& argument, const std::string& path);

}  // namespace slipway::cli
