// How the CLI is put together: main() owns the CLI11 app and the global options; each area adds
// its subcommands with one add_*_commands function, in its own file. A chosen subcommand sets
// `action`, which main() runs inside its error handling. Commands that need the store ask the
// context for it, so that `slipway parse` (say) never creates one.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <memory>

#include "store/store.h"

namespace slipway::cli {

class CommandContext {
 public:
  std::filesystem::path root = store::Store::default_root();
  std::function<int()> action;

  // Opens the store at `root` on first use.
  store::Store& store();

 private:
  std::unique_ptr<store::Store> store_;
};

void add_build_commands(CLI::App& app, CommandContext& context);  // build
void add_image_commands(CLI::App& app, CommandContext& context);  // import images inspect tag
void add_run_commands(CLI::App& app, CommandContext& context);    // run
void add_parse_commands(CLI::App& app, CommandContext& context);  // parse
void add_registry_commands(CLI::App& app, CommandContext& context);  // pull push
void add_store_commands(CLI::App& app, CommandContext& context);  // rmi history save load image system

}  // namespace slipway::cli
