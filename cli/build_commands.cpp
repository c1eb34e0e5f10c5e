// slipway build
#include <cstdlib>
#include <iostream>

#include "builder/builder.h"
#include "cli/commands.h"

namespace slipway::cli {
namespace {

// docker's --build-arg: "K=V", or "K" alone to take the value from the environment (left out
// when the environment does not have it).
std::vector<std::pair<std::string, std::string>> parse_build_args(
    const std::vector<std::string>& given) {
  std::vector<std::pair<std::string, std::string>> args;
  for (const auto& arg : given) {
    size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      args.emplace_back(arg.substr(0, eq), arg.substr(eq + 1));
    } else if (const char* value = std::getenv(arg.c_str())) {
      args.emplace_back(arg, value);
    }
  }
  return args;
}

}  // namespace

void add_build_commands(CLI::App& app, CommandContext& context) {
  auto options = std::make_shared<builder::BuildOptions>();
  auto* build = app.add_subcommand("build", "Build an image from a Dockerfile");
  build->add_option("-t,--tag", options->tags, "Name and optionally a tag (name:tag)");
  build->add_option("-f,--file", options->dockerfile,
                    "Name of the Dockerfile (default: DIR/Dockerfile)");
  build->add_flag("--no-cache", options->no_cache, "Do not use cache when building");
  auto build_args = std::make_shared<std::vector<std::string>>();
  build
      ->add_option("--build-arg", *build_args,
                   "Set build-time variables (K=V, or K to take it "
                   "from the environment)")
      ->take_all()
      ->allow_extra_args(false);
  build->add_option("--target", options->target, "Set the target build stage to build");
  auto pull = std::make_shared<std::string>("missing");
  build->add_option("--pull", *pull, "When to pull FROM images: missing (default), always or never")
      ->check(CLI::IsMember({"missing", "always", "never"}));
  build->add_option("DIR", options->context_dir, "Build context directory")->required();
  build->callback([&context, options, build_args, pull] {
    options->build_args = parse_build_args(*build_args);
    using Pull = builder::BuildOptions::Pull;
    options->pull = *pull == "always"  ? Pull::kAlways
                    : *pull == "never" ? Pull::kNever
                                       : Pull::kMissing;
    context.action = [&context, options] {
      builder::build(context.store(), *options, std::cout);
      return 0;
    };
  });
}

}  // namespace slipway::cli
