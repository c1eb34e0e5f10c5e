// slipway's entry point: global options, the subcommands each area adds (commands.h), and the
// one place where errors become a line on stderr and an exit code.
#include <cstdlib>
#include <iostream>

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

}  // namespace slipway::cli

int main(int argc, char** argv) {
  using namespace slipway;
  CLI::App app{"slipway: build, store, run and ship container images", "slipway"};
  app.require_subcommand(1);
  app.formatter(cli::docker_help_formatter());  // copied into every subcommand added below
  cli::CommandContext context;
  app.add_option("--root", context.root, "Store root (default $SLIPWAY_ROOT or /var/lib/slipway)");
  app.add_flag("-v,--version")->description("Print version information and quit");  // answered below
  cli::add_build_commands(app, context);
  cli::add_image_commands(app, context);
  cli::add_run_commands(app, context);
  cli::add_container_commands(app, context);
  cli::add_container_more_commands(app, context);
  cli::add_parse_commands(app, context);
  cli::add_registry_commands(app, context);
  cli::add_store_commands(app, context);
  cli::add_network_commands(app, context);
  cli::add_system_commands(app, context);
  cli::add_volume_commands(app, context);
  cli::add_commit_commands(app, context);

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
