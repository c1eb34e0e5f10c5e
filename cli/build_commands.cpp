// slipway build
#include <iostream>

#include "builder/builder.h"
#include "cli/commands.h"

namespace slipway::cli {

void add_build_commands(CLI::App& app, CommandContext& context) {
  auto options = std::make_shared<builder::BuildOptions>();
  auto* build = app.add_subcommand("build", "Build an image from a Dockerfile");
  build->add_option("-t,--tag", options->tags, "Name and optionally a tag (name:tag)");
  build->add_option("-f,--file", options->dockerfile,
                    "Name of the Dockerfile (default: DIR/Dockerfile)");
  build->add_flag("--no-cache", options->no_cache, "Do not use cache when building");
  build->add_option("DIR", options->context_dir, "Build context directory")->required();
  build->callback([&context, options] {
    context.action = [&context, options] {
      builder::build(context.store(), *options, std::cout);
      return 0;
    };
  });
}

}  // namespace slipway::cli
