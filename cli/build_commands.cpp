// slipway build
#include <unistd.h>

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

// docker's --secret: "id=ID,src=FILE" (also source=), "id=ID,env=VAR", type=file|env. Without
// src or env, the environment variable named like the id is used (buildx does the same).
builder::BuildOptions::Secret parse_secret(const std::string& given) {
  builder::BuildOptions::Secret secret;
  std::string type;
  size_t start = 0;
  while (start <= given.size()) {
    size_t end = given.find(',', start);
    if (end == std::string::npos) end = given.size();
    std::string field = given.substr(start, end - start);
    start = end + 1;
    size_t eq = field.find('=');
    if (eq == std::string::npos)
      throw Error("invalid secret \"" + given + "\": field \"" + field +
                  "\" must be a key=value pair");
    std::string key = field.substr(0, eq), value = field.substr(eq + 1);
    if (key == "id") {
      secret.id = value;
    } else if (key == "src" || key == "source") {
      secret.file = value;
    } else if (key == "env") {
      secret.env = value;
    } else if (key == "type") {
      if (value != "file" && value != "env")
        throw Error("invalid secret \"" + given + "\": unsupported type \"" + value + "\"");
      type = value;
    } else {
      throw Error("invalid secret \"" + given + "\": unexpected key \"" + key + "\"");
    }
  }
  if (secret.id.empty()) throw Error("invalid secret \"" + given + "\": id is required");
  if (type == "env" && secret.env.empty()) secret.env = secret.file.empty() ? secret.id : "";
  if (type == "env" && !secret.file.empty()) secret.env = secret.file.string(), secret.file.clear();
  if (secret.file.empty() && secret.env.empty()) secret.env = secret.id;
  if (!secret.file.empty() && ::access(secret.file.c_str(), R_OK) != 0)
    throw Error("failed to read secret \"" + secret.id + "\": cannot read " + secret.file.string());
  return secret;
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
  auto secrets = std::make_shared<std::vector<std::string>>();
  build
      ->add_option("--secret", *secrets,
                   "Secret to expose to RUN --mount=type=secret (id=ID,src=FILE or id=ID,env=VAR)")
      ->take_all()
      ->allow_extra_args(false);
  build->add_option("--target", options->target, "Set the target build stage to build");
  auto pull = std::make_shared<std::string>("missing");
  build->add_option("--pull", *pull, "When to pull FROM images: missing (default), always or never")
      ->check(CLI::IsMember({"missing", "always", "never"}));
  auto compression = std::make_shared<std::string>("gzip");
  build
      ->add_option("--compression", *compression, "Layer compression: gzip (default), zstd or none")
      ->check(CLI::IsMember({"gzip", "zstd", "none"}));
  build->add_flag("-q,--quiet", options->quiet,
                  "Suppress the build output and print image ID on success");
  build->add_option("DIR", options->context_dir, "Build context directory")->required();
  build->callback([&context, options, build_args, pull, secrets, compression] {
    options->compression = store::parse_compression(*compression);
    options->build_args = parse_build_args(*build_args);
    using Pull = builder::BuildOptions::Pull;
    options->pull = *pull == "always"  ? Pull::kAlways
                    : *pull == "never" ? Pull::kNever
                                       : Pull::kMissing;
    context.action = [&context, options, secrets] {
      options->secrets.clear();
      for (const auto& secret : *secrets) options->secrets.push_back(parse_secret(secret));
      std::ostream discard(nullptr);
      builder::BuildResult result =
          builder::build(context.store(), *options, options->quiet ? discard : std::cout);
      if (options->quiet) std::cout << result.image.id << "\n";
      return 0;
    };
  });
}

}  // namespace slipway::cli
