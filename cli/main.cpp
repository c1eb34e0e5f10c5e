// slipway's entry point: global options, the subcommands each area adds (commands.h), and the
// one place where errors become a line on stderr and an exit code.
#include <array>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "builder/builder.h"
#include "cli/commands.h"
#include "cli/help.h"
#include "config/config.h"
#include "runtime/runtime.h"

namespace slipway::cli {

store::Store& CommandContext::store() {
  if (!store_) store_ = std::make_unique<store::Store>(root);
  return *store_;
}

namespace {

using AddCommands = void (*)(CLI::App& app, CommandContext& context);

// Every area, in the order main adds them when a command line needs them all.
constexpr std::array<AddCommands, 12> kAllAreas = {
    add_build_commands,          add_image_commands,  add_run_commands,      add_container_commands,
    add_container_more_commands, add_parse_commands,  add_registry_commands, add_store_commands,
    add_network_commands,        add_system_commands, add_volume_commands,   add_commit_commands};

// The top-level commands that one area alone defines (and no other area adds to). Building every
// area's CLI11 options was a third of `ps -a`'s page faults and much of its start (issue 14), so
// a command line that names one of these builds only its area. Words shared between areas
// (container, image, system, inspect, builder, ...) and unknown words build them all.
constexpr std::pair<std::string_view, AddCommands> kCommandArea[] = {
    {"build", add_build_commands},
    {"import", add_image_commands},
    {"images", add_image_commands},
    {"tag", add_image_commands},
    {"run", add_run_commands},
    {"create", add_run_commands},
    {"ps", add_container_commands},
    {"start", add_container_commands},
    {"stop", add_container_commands},
    {"restart", add_container_commands},
    {"kill", add_container_commands},
    {"wait", add_container_commands},
    {"rm", add_container_commands},
    {"exec", add_container_commands},
    {"attach", add_container_commands},
    {"port", add_container_commands},
    {"logs", add_container_commands},
    {"cp", add_container_more_commands},
    {"top", add_container_more_commands},
    {"rename", add_container_more_commands},
    {"pause", add_container_more_commands},
    {"unpause", add_container_more_commands},
    {"stats", add_container_more_commands},
    {"update", add_container_more_commands},
    {"export", add_container_more_commands},
    {"parse", add_parse_commands},
    {"pull", add_registry_commands},
    {"push", add_registry_commands},
    {"copy", add_registry_commands},
    {"manifest", add_registry_commands},
    {"login", add_registry_commands},
    {"logout", add_registry_commands},
    {"rmi", add_store_commands},
    {"history", add_store_commands},
    {"save", add_store_commands},
    {"load", add_store_commands},
    {"network", add_network_commands},
    {"version", add_system_commands},
    {"info", add_system_commands},
    {"volume", add_volume_commands},
    {"commit", add_commit_commands},
    {"diff", add_commit_commands},
};

// The areas to build for this command line: the command's own, or all of them when the command
// is not in kCommandArea or help is asked for anywhere (help lists other areas' commands and
// aliases).
std::vector<AddCommands> areas_for(int argc, char** argv) {
  std::vector<AddCommands> all(kAllAreas.begin(), kAllAreas.end());
  std::optional<std::string_view> command;
  for (int i = 1; i < argc; ++i) {
    std::string_view word = argv[i];
    if (word == "-h" || word == "--help" || word == "--help-all") return all;
    if (command) continue;
    if (word == "--root") {
      ++i;
      continue;
    }
    if (word.starts_with("-")) continue;
    command = word;
  }
  if (!command) return all;
  for (const auto& [name, add] : kCommandArea)
    if (name == *command) return {add};
  return all;
}

}  // namespace

}  // namespace slipway::cli

int main(int argc, char** argv) {
  using namespace slipway;
  CLI::App app{"slipway: build, store, run and ship container images", "slipway"};
  app.require_subcommand(1);
  app.formatter(cli::docker_help_formatter());  // copied into every subcommand added below
  cli::CommandContext context;
  app.add_option("--root", context.root, "Store root (default $SLIPWAY_ROOT or /var/lib/slipway)");
  app.add_flag("-v,--version")
      ->description("Print version information and quit");  // answered below
  for (cli::AddCommands add : cli::areas_for(argc, argv)) add(app, context);

  // docker -v: the version line, whatever follows (global options may come first).
  int first = 1;
  while (first < argc && std::string(argv[first]).rfind("--root", 0) == 0)
    first += std::string(argv[first]) == "--root" ? 2 : 1;
  if (first < argc &&
      (std::string(argv[first]) == "-v" || std::string(argv[first]) == "--version")) {
    std::cout << "slipway version " << cli::slipway_version() << ", build " << cli::slipway_commit()
              << "\n";
    return 0;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // An unknown command gets docker's message rather than CLI11's "A subcommand is required".
    for (int i = 1; i < argc; ++i) {
      std::string word = argv[i];
      if (word == "--root") {
        ++i;
        continue;
      }
      if (word.rfind("-", 0) == 0) continue;
      auto subcommands =
          app.get_subcommands([&](const CLI::App* sub) { return sub->get_name() == word; });
      if (subcommands.empty()) {
        std::cerr << "slipway: '" << word << "' is not a slipway command.\n"
                  << "See 'slipway --help'\n";
        return 1;
      }
      break;
    }
    return cli::report_parse_error(app, e, argc, argv);
  }

  // Progress goes to stdout and errors to stderr: flush the one before writing the other, so
  // a terminal or a log shows them in order.
  auto report = [](const std::string& line) {
    std::cout.flush();
    std::cerr << line << "\n";
  };
  try {
    // The config file's data-root, when neither --root nor SLIPWAY_ROOT chose the store. A bad
    // config file fails every command with its one-line error.
    const config::Config& config = config::current();
    if (app.count("--root") == 0 && std::getenv("SLIPWAY_ROOT") == nullptr &&
        !config.data_root.empty())
      context.root = config.data_root;
    return context.action ? context.action() : 0;
  } catch (const cli::UsageError& e) {
    report(e.what());  // docker's words, with "See 'slipway run --help'."
    return e.exit_code();
  } catch (const builder::BuildError& e) {
    report(e.what());  // already in docker's words, with the Dockerfile position
    return e.exit_code();
  } catch (const runtime::StartError& e) {
    report(std::string("Error: ") + e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    report(std::string("Error: ") + e.what());
    return 1;
  }
}
