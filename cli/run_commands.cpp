// slipway run, create (also as `container run`, `container create`)
#include <sys/ioctl.h>
#include <unistd.h>

#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/help.h"
#include "cli/run_settings.h"
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
  std::string network = "bridge";
  runtime::NetworkOptions network_options;  // --network-alias --ip --link --add-host --dns...
  std::vector<std::string> env;
  std::string workdir;
  std::string user;
  std::string name;
  std::vector<std::string> publish;
  bool publish_all = false;
  std::string detach_keys;
  std::string pull = "missing";  // --pull: missing, always or never
  RunSettingsFlags settings;  // cli/run_settings.h
  std::vector<std::string> volumes, mounts, tmpfs, volumes_from;  // -v, --mount, --tmpfs
  bool read_only = false;
};

// The network flags besides --network; one value each, so that none swallows the image after it.
void add_network_run_options(CLI::App* command, runtime::NetworkOptions& options) {
  command->add_option("--network-alias", options.aliases, "Add a network-scoped alias")
      ->allow_extra_args(false);
  command->add_option("--ip", options.ip, "IPv4 address (on a user network)");
  command->add_option("--link", options.links, "Add link to another container (NAME[:ALIAS])")
      ->allow_extra_args(false);
  command
      ->add_option("--add-host", options.extra_hosts, "Add a custom host-to-IP mapping (host:ip)")
      ->allow_extra_args(false);
  command->add_option("--dns", options.dns, "Set custom DNS servers")->allow_extra_args(false);
  command->add_option("--dns-search", options.dns_search, "Set custom DNS search domains")
      ->allow_extra_args(false);
  command->add_option("--dns-option", options.dns_options, "Set DNS options")
      ->allow_extra_args(false);
}

// `-e NAME` without a value passes the variable on from slipway's own environment, as docker does.
std::string environment_entry(const std::string& option) {
  if (option.find('=') != std::string::npos) return option;
  const char* value = std::getenv(option.c_str());
  return option + "=" + (value ? value : "");
}

// docker's --pull for run and create: a missing image is pulled first ("missing"), every time
// ("always"), or never. Progress goes to stderr, as docker's does, so that stdout is the
// container's.
std::optional<store::Image> pull_if_needed(store::Store& store, const std::string& reference,
                                           const std::string& policy) {
  if (policy != "missing" && policy != "always" && policy != "never")
    throw Error("invalid pull option: '" + policy +
                "': must be one of \"always\", \"missing\" or \"never\"");
  auto image = store.try_find_image(reference);
  if (policy == "never" || (image && policy == "missing")) return image;
  registry::Reference ref = registry::Reference::parse(reference);
  std::cout.flush();
  if (!image) std::cerr << "Unable to find image '" << ref.familiar_string() << "' locally\n";
  registry::Options options;
  struct winsize size {};
  if (::isatty(STDERR_FILENO) && ::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0)
    options.terminal_columns = size.ws_col;
  registry::pull(store, ref, options, std::cerr);
  std::cerr.flush();
  return store.try_find_image(ref.familiar_string());
}

// IMAGE [COMMAND...] and the options into a container record.
runtime::ContainerRecord create_container(runtime::ContainerStore& containers,
                                          const RunOptions& options, std::vector<std::string> args,
                                          const char* command) {
  std::string path = std::string("slipway ") + command;
  if (args.empty())
    throw UsageError("\"" + path + "\" requires at least 1 argument.\nSee '" + path +
                         " --help'.\n\nUsage:  " + path +
                         " [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n" +
                         (std::string(command) == "run" ? "Run a command in a new container"
                                                        : "Create a new container"),
                     125);
  // Flags end at the image name; a flag slipway does not know stops there too, and is an error
  // rather than an image name.
  if (args.front().size() > 1 && args.front()[0] == '-')
    throw UsageError(unknown_flag_message(args.front(), path), 125);
  auto image = pull_if_needed(containers.image_store(), args.front(), options.pull);
  if (!image) throw Error("no such image: " + args.front());
  runtime::ContainerOptions container;
  container.name = options.name;
  container.command.assign(args.begin() + 1, args.end());
  container.settings = resolve_run_settings(options.settings, options.remove);
  container.env = env_file_entries(options.settings);
  for (const auto& entry : options.env) container.env.push_back(environment_entry(entry));
  container.working_dir = options.workdir;
  container.user = options.user;
  container.network = options.network;
  container.network_options = options.network_options;
  container.interactive = options.interactive;
  container.tty = options.tty;
  container.auto_remove = options.remove;
  for (const auto& spec : options.publish)
    for (const auto& mapping : runtime::parse_port_mappings(spec))
      container.ports.push_back(mapping);
  container.publish_all = options.publish_all;
  for (const auto& spec : options.volumes)
    container.mounts.push_back(runtime::parse_volume_spec(spec));
  for (const auto& spec : options.mounts)
    container.mounts.push_back(runtime::parse_mount_spec(spec));
  for (const auto& spec : options.tmpfs)
    container.mounts.push_back(runtime::parse_tmpfs_spec(spec));
  for (const auto& spec : options.volumes_from)
    container.volumes_from.push_back(runtime::parse_volumes_from(spec));
  container.read_only = options.read_only;
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
  } catch (const UsageError&) {
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
  runtime::ContainerRecord record;
  try {
    record = create_container(containers, options, std::move(args), "create");
  } catch (const runtime::StartError&) {
    throw;
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {
    throw runtime::StartError(e.what(), 125);  // docker create's own errors exit 125, as run's
  }
  std::cout << record.id << "\n";
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
  command->add_option("--network,--net", options.network,
                      "Connect to a network: bridge (default), a user network, host, none, "
                      "container:NAME");
  add_network_run_options(command, options.network_options);
  // One value per -p: a vector option would otherwise swallow the image and command after it.
  command
      ->add_option("-p,--publish", options.publish,
                   "Publish a container's port(s) to the host: [IP:][HOSTPORT:]PORT[/tcp|udp]")
      ->allow_extra_args(false);
  command->add_flag("-P,--publish-all", options.publish_all,
                    "Publish all exposed ports to random host ports");
  command->add_option("--pull", options.pull,
                      "Pull image before running (\"always\", \"missing\", \"never\")");
  add_run_settings_options(command, options.settings);
  command->add_option("-v,--volume", options.volumes, "Bind mount a volume: [SOURCE:]DEST[:OPTS]")
      ->allow_extra_args(false);
  command
      ->add_option("--mount", options.mounts,
                   "Attach a filesystem mount: type=bind|volume|tmpfs,source=,target=,...")
      ->allow_extra_args(false);
  command->add_option("--tmpfs", options.tmpfs, "Mount a tmpfs directory: PATH[:OPTIONS]")
      ->allow_extra_args(false);
  command
      ->add_option("--volumes-from", options.volumes_from,
                   "Mount volumes from the specified container(s): CONTAINER[:ro|rw]")
      ->allow_extra_args(false);
  command->add_flag("--read-only", options.read_only,
                    "Mount the container's root filesystem as read only");
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
