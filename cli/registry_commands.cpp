// slipway pull push
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "registry/registry.h"

namespace slipway::cli {
namespace {

struct RegistryArguments {
  std::string reference;
  std::string platform = "linux/amd64";
  bool quiet = false;
  bool tls_verify = true;
  std::vector<std::string> insecure_registries;
};

registry::Options options_from(const RegistryArguments& args) {
  registry::Options options;
  options.platform = args.platform;
  options.quiet = args.quiet;
  options.tls_verify = args.tls_verify;
  options.insecure_registries = args.insecure_registries;
  // SLIPWAY_INSECURE_REGISTRIES="host:port,host2" adds to --insecure-registry.
  if (const char* env = std::getenv("SLIPWAY_INSECURE_REGISTRIES"); env && *env) {
    std::stringstream list(env);
    std::string item;
    while (std::getline(list, item, ','))
      if (!item.empty()) options.insecure_registries.push_back(item);
  }
  return options;
}

void add_transport_options(CLI::App& command, RegistryArguments& args) {
  command.add_option("--tls-verify", args.tls_verify,
                     "Verify the registry's TLS certificate (default true)");
  command.add_option("--insecure-registry", args.insecure_registries,
                     "Reach this registry (host[:port]) over plain http");
}

}  // namespace

void add_registry_commands(CLI::App& app, CommandContext& context) {
  auto pull_args = std::make_shared<RegistryArguments>();
  auto* pull = app.add_subcommand("pull", "Download an image from a registry");
  pull->add_option("NAME", pull_args->reference, "NAME[:TAG|@DIGEST]")->required();
  pull->add_option("--platform", pull_args->platform, "os/arch[/variant] to pick from an index");
  pull->add_flag("-q,--quiet", pull_args->quiet, "Suppress progress output");
  add_transport_options(*pull, *pull_args);
  pull->callback([&context, pull_args] {
    context.action = [&context, pull_args] {
      auto ref = registry::Reference::parse(pull_args->reference);
      registry::pull(context.store(), ref, options_from(*pull_args), std::cout);
      return 0;
    };
  });

  auto push_args = std::make_shared<RegistryArguments>();
  auto* push = app.add_subcommand("push", "Upload an image to a registry");
  push->add_option("NAME", push_args->reference, "NAME[:TAG]")->required();
  push->add_flag("-q,--quiet", push_args->quiet, "Suppress progress output");
  add_transport_options(*push, *push_args);
  push->callback([&context, push_args] {
    context.action = [&context, push_args] {
      auto ref = registry::Reference::parse(push_args->reference);
      registry::push(context.store(), ref, options_from(*push_args), std::cout);
      return 0;
    };
  });
}

}  // namespace slipway::cli
