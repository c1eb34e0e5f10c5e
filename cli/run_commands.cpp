// slipway run, create (also as `container run`, `container create`)
#include <unistd.h>

#include <iostream>

#include "cli/commands.h"
#include "registry/registry.h"
#include "runtime/attach.h"
#include "runtime/containers.h"
#include "store/reference.h"

namespace slipway::cli {
namespace {

struct RunOptions {
  bool remove = false;
  bool detach = false;
  bool interactive = false;
  bool tty = false;
  std::string network = "private";
  std::vector<std::string> env;
  std::string workdir;
  std::string user;
  std::string name;
  std::vector<std::string> publish;
  bool publish_all = false;
  std::string detach_keys;
};

// `-e NAME` without a value passes the variable on from slipway's own environment, as docker does.
std::string environment_entry(const std::string& option) {
  if (option.find('=') != std::string::npos) return option;
  const char* value = std::getenv(option.c_str());
  return option + "=" + (value ? value : "");
}

// IMAGE [COMMAND...] and the options into a container record.
runtime::ContainerRecord create_container(runtime::ContainerStore& containers,
                                          const RunOptions& options, std::vector<std::string> args,
                                          const char* command) {
  if (args.empty())
    throw Error(std::string("\"slipway ") + command +
                "\" requires at least 1 argument: IMAGE [COMMAND...]");
  auto image = containers.image_store().try_find_image(args.front());
  if (!image) {
    // As docker does: pull what the store lacks (through the configured mirrors for docker.io
    // names), its progress on stderr so that stdout stays the container's.
    std::cerr << "Unable to find image '" << args.front() << "' locally\n" << std::flush;
    registry::Reference ref = registry::Reference::parse(args.front());
    registry::pull(containers.image_store(), ref, {}, std::cerr);
    image = containers.image_store().try_find_image(ref.familiar_string());
    if (!image) throw Error("no such image: " + args.front());
  }
  runtime::ContainerOptions container;
  container.name = options.name;
  container.command.assign(args.begin() + 1, args.end());
  for (const auto& entry : options.env) container.env.push_back(environment_entry(entry));
  container.working_dir = options.workdir;
  container.user = options.user;
  container.network = options.network;
  container.interactive = options.interactive;
  container.tty = options.tty;
  container.auto_remove = options.remove;
  for (const auto& spec : options.publish)
    for (const auto& mapping : runtime::parse_port_mappings(spec))
      container.ports.push_back(mapping);
  container.publish_all = options.publish_all;
  if ((!container.ports.empty() || container.publish_all) && options.network == "host") {
    std::cerr << "WARNING: Published ports are discarded when using host network mode\n";
    container.ports.clear();
    container.publish_all = false;
  }
  // Recorded as docker shows it: `docker.io/library/busybox` is listed as `busybox`.
  return containers.create(*image, store::familiar_reference(args.front()), container);
}

int run_image(store::Store& store, const RunOptions& options, std::vector<std::string> args) {
  std::string detach_keys = parse_detach_keys_option(options.detach_keys, 125);
  // docker checks this before it creates anything: raw mode needs a terminal to put in it.
  if (options.tty && options.interactive && !options.detach && !::isatty(STDIN_FILENO))
    throw Error("the input device is not a TTY");
  runtime::ContainerStore containers(store);
  runtime::ContainerRecord record;
  try {
    record = create_container(containers, options, std::move(args), "run");
  } catch (const runtime::StartError&) {
    throw;
  } catch (const std::exception& e) {
    // Like docker, failures before the container's process starts exit with 125, so scripts
    // can tell them from the command's own exit codes.
    throw runtime::StartError(e.what(), 125);
  }
  // -it: attached to a detached supervisor, as docker's CLI is to its daemon, so that ctrl-p
  // ctrl-q can leave the container running.
  if (!options.detach && options.tty && options.interactive)
    return runtime::start_and_attach(containers, record.id, detach_keys);
  if (!options.detach) return runtime::start_attached(containers, record.id);
  runtime::start_detached(containers, record.id);
  std::cout << record.id << "\n";
  return 0;
}

int create_only(store::Store& store, const RunOptions& options, std::vector<std::string> args) {
  runtime::ContainerStore containers(store);
  std::cout << create_container(containers, options, std::move(args), "create").id << "\n";
  return 0;
}

void add_container_options(CLI::App* command, RunOptions& options) {
  command->add_flag("--rm", options.remove, "Remove the container when it exits");
  command->add_flag("-i,--interactive", options.interactive, "Keep STDIN open");
  command->add_flag("-t,--tty", options.tty, "Allocate a pseudo-TTY");
  command->add_option("-e,--env", options.env, "Set environment variables")
      ->allow_extra_args(false);
  command->add_option("-w,--workdir", options.workdir, "Working directory inside the container");
  command->add_option("-u,--user", options.user, "UID[:GID] or a name from the image");
  command->add_option("--name", options.name, "Container name");
  command->add_option("--network", options.network, "host or none (default: a private namespace)");
  // One value per -p: a vector option would otherwise swallow the image and command after it.
  command
      ->add_option("-p,--publish", options.publish,
                   "Publish a container's port(s) to the host: [IP:][HOSTPORT:]PORT[/tcp|udp]")
      ->allow_extra_args(false);
  command->add_flag("-P,--publish-all", options.publish_all,
                    "Publish all exposed ports to random host ports");
  // Everything from the image name on belongs to the container, flags included.
  command->prefix_command();
}

}  // namespace

void add_run_commands(CLI::App& app, CommandContext& context) {
  CLI::App* group = container_group(app);
  for (CLI::App* parent : {&app, group}) {
    auto run_options = std::make_shared<RunOptions>();
    auto* run = parent->add_subcommand("run", "Run a command in a new container");
    add_container_options(run, *run_options);
    run->add_flag("-d,--detach", run_options->detach,
                  "Run in the background and print the container ID");
    run->add_option("--detach-keys", run_options->detach_keys,
                    "Override the key sequence for detaching (default: ctrl-p,ctrl-q)");
    run->callback([&context, run_options, run] {
      context.action = [&context, run_options, run] {
        return run_image(context.store(), *run_options, run->remaining());
      };
    });

    auto create_options = std::make_shared<RunOptions>();
    auto* create = parent->add_subcommand("create", "Create a new container");
    add_container_options(create, *create_options);
    create->callback([&context, create_options, create] {
      context.action = [&context, create_options, create] {
        return create_only(context.store(), *create_options, create->remaining());
      };
    });
  }
}

}  // namespace slipway::cli
