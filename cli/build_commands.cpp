// slipway build
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <optional>

#include "builder/builder.h"
#include "cli/commands.h"
#include "common/fs.h"
#include "registry/registry.h"

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

// --label K=V (K alone: an empty value, as docker takes it).
std::vector<std::pair<std::string, std::string>> parse_labels(
    const std::vector<std::string>& given) {
  std::vector<std::pair<std::string, std::string>> labels;
  for (const auto& label : given) {
    size_t eq = label.find('=');
    labels.emplace_back(label.substr(0, eq), eq == std::string::npos ? "" : label.substr(eq + 1));
  }
  return labels;
}

// --output type=oci|docker,dest=FILE (docker's `-o`): the image as an archive file.
struct OutputSpec {
  store::ArchiveFormat format = store::ArchiveFormat::kDocker;
  std::filesystem::path dest;
};

OutputSpec parse_output(const std::string& given) {
  OutputSpec spec;
  std::string type;
  size_t start = 0;
  while (start <= given.size()) {
    size_t end = given.find(',', start);
    if (end == std::string::npos) end = given.size();
    std::string field = given.substr(start, end - start);
    start = end + 1;
    size_t eq = field.find('=');
    std::string key = field.substr(0, eq),
                value = eq == std::string::npos ? "" : field.substr(eq + 1);
    if (key == "type")
      type = value;
    else if (key == "dest")
      spec.dest = value;
    else
      throw Error("invalid --output \"" + given + "\": unexpected key \"" + key + "\"");
  }
  if (type == "oci")
    spec.format = store::ArchiveFormat::kOci;
  else if (type != "docker")
    throw Error("invalid --output \"" + given + "\": type must be oci or docker");
  if (spec.dest.empty() || spec.dest == "-")
    throw Error("invalid --output \"" + given + "\": dest=FILE is required");
  return spec;
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
  build
      ->add_option("--cache-from", options->cache_from,
                   "External cache sources (REF, type=registry,ref=REF, type=local,src=DIR)")
      ->take_all()
      ->allow_extra_args(false);
  build
      ->add_option("--cache-to", options->cache_to,
                   "Cache export destinations (REF, type=registry,ref=REF[,mode=min|max], "
                   "type=local,dest=DIR, type=inline)")
      ->take_all()
      ->allow_extra_args(false);
  auto labels = std::make_shared<std::vector<std::string>>();
  build->add_option("--label", *labels, "Set metadata for an image (K=V)")
      ->take_all()
      ->allow_extra_args(false);
  auto push = std::make_shared<bool>(false);
  build->add_flag("--push", *push, "Push every tag to its registry after the build");
  auto iidfile = std::make_shared<std::string>();
  build->add_option("--iidfile", *iidfile, "Write the image ID to the file");
  auto output = std::make_shared<std::string>();
  build->add_option("-o,--output", *output, "Output destination (type=oci|docker,dest=FILE)");
  auto progress = std::make_shared<std::string>("auto");
  build
      ->add_option("--progress", *progress,
                   "Type of progress output: auto, plain, tty (docker's classic lines), quiet")
      ->check(CLI::IsMember({"auto", "plain", "tty", "quiet"}));
  build->add_option("DIR", options->context_dir, "Build context directory")->required();
  build->callback([&context, options, build_args, pull, secrets, compression, labels, push, iidfile,
                   output, progress] {
    options->compression = store::parse_compression(*compression);
    options->build_args = parse_build_args(*build_args);
    options->labels = parse_labels(*labels);
    if (*progress == "quiet") options->quiet = true;
    using Pull = builder::BuildOptions::Pull;
    options->pull = *pull == "always"  ? Pull::kAlways
                    : *pull == "never" ? Pull::kNever
                                       : Pull::kMissing;
    context.action = [&context, options, secrets, push, iidfile, output] {
      // SOURCE_DATE_EPOCH: a --build-arg wins over the environment, as in BuildKit.
      std::optional<std::string> epoch;
      if (const char* env = std::getenv("SOURCE_DATE_EPOCH"); env && *env) epoch = env;
      for (const auto& [key, value] : options->build_args)
        if (key == "SOURCE_DATE_EPOCH") epoch = value;
      if (epoch) options->source_date_epoch = builder::parse_source_date_epoch(*epoch);
      std::optional<OutputSpec> output_spec;
      if (!output->empty()) output_spec = parse_output(*output);
      if (*push && options->tags.empty()) throw Error("tag is needed when pushing to registry");
      options->secrets.clear();
      for (const auto& secret : *secrets) options->secrets.push_back(parse_secret(secret));
      std::ostream discard(nullptr);
      builder::BuildResult result =
          builder::build(context.store(), *options, options->quiet ? discard : std::cout);
      if (options->quiet) std::cout << result.image.id << "\n";
      if (!iidfile->empty()) write_file_atomic(*iidfile, result.image.id);
      if (output_spec) {
        std::vector<std::string> references = options->tags;
        if (references.empty()) references.push_back(result.image.id);
        context.store().save_archive(references, output_spec->dest, output_spec->format);
      }
      if (*push) {
        registry::Options push_options;
        push_options.quiet = options->quiet;
        for (const auto& tag : options->tags)
          registry::push(context.store(), registry::Reference::parse(tag), push_options, std::cout);
      }
      return 0;
    };
  });
}

}  // namespace slipway::cli
