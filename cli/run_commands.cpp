// slipway run
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "runtime/runtime.h"
#include "store/digest.h"

namespace slipway::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

struct RunOptions {
  bool remove = false;
  bool interactive = false;
  bool tty = false;
  std::string network = "private";
  std::vector<std::string> env;
  std::string workdir;
  std::string user;
  std::string name;
};

// `-e NAME` without a value passes the variable on from slipway's own environment, as docker does.
std::string environment_entry(const std::string& option) {
  if (option.find('=') != std::string::npos) return option;
  const char* value = std::getenv(option.c_str());
  return option + "=" + (value ? value : "");
}

int run_image(store::Store& store, const RunOptions& options, std::vector<std::string> args) {
  // Like docker, failures before the container's process starts exit with 125, so scripts can
  // tell them from the command's own exit codes.
  if (args.empty())
    throw runtime::StartError("\"slipway run\" requires at least 1 argument: IMAGE [COMMAND...]",
                              125);
  if (options.tty)
    throw runtime::StartError("-t (a pseudo-TTY) is not supported yet: run without -t", 125);
  auto found = store.try_find_image(args.front());
  if (!found) throw runtime::StartError("no such image: " + args.front(), 125);
  store::Image image = std::move(*found);
  args.erase(args.begin());
  const json config = image.config.value("config", json::object());
  std::vector<std::string> argv = config.value("Entrypoint", std::vector<std::string>{});
  std::vector<std::string> command =
      args.empty() ? config.value("Cmd", std::vector<std::string>{}) : args;
  argv.insert(argv.end(), command.begin(), command.end());
  if (argv.empty())
    throw runtime::StartError("no command specified: the image has no CMD or ENTRYPOINT", 125);

  runtime::ImageContainer container = runtime::prepare_image_container(store, image, "container");
  runtime::ContainerSpec& spec = container.spec;
  spec.argv = argv;
  for (const auto& entry : options.env) spec.env.push_back(environment_entry(entry));
  if (!options.workdir.empty()) spec.working_dir = options.workdir;
  if (!options.user.empty()) spec.user = options.user;
  spec.isolate_network = options.network != "host";
  spec.inherit_stdin = options.interactive;
  spec.hostname = container.scratch.path().filename().string().substr(0, 12);
  return runtime::run_container(spec);
}

}  // namespace

void add_run_commands(CLI::App& app, CommandContext& context) {
  auto options = std::make_shared<RunOptions>();
  auto* run = app.add_subcommand("run", "Run a command in a new container");
  run->add_flag("--rm", options->remove, "Remove the container when it exits");
  run->add_flag("-i,--interactive", options->interactive, "Keep STDIN open");
  run->add_flag("-t,--tty", options->tty, "Allocate a pseudo-TTY (refused for now)");
  run->add_option("-e,--env", options->env, "Set environment variables");
  run->add_option("-w,--workdir", options->workdir, "Working directory inside the container");
  run->add_option("-u,--user", options->user, "UID[:GID]");
  run->add_option("--name", options->name, "Container name");
  run->add_option("--network", options->network, "host or none (default: a private namespace)");
  // Everything from the image name on belongs to the container, flags included.
  run->prefix_command();
  run->callback([&context, options, run] {
    context.action = [&context, options, run] {
      return run_image(context.store(), *options, run->remaining());
    };
  });
}

}  // namespace slipway::cli
