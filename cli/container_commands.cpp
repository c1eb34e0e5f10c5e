// slipway ps, start, stop, restart, kill, wait, logs, rm (also under `container`), and the check
// that keeps rmi from taking a container's image.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>

#include "cli/commands.h"
#include "cli/container_views.h"
#include "cli/format.h"
#include "cli/ps.h"
#include "common/fs.h"
#include "common/go_quote.h"
#include "runtime/attach.h"
#include "runtime/containers.h"
#include "runtime/terminal.h"
#include "store/digest.h"
#include "store/reference.h"

namespace slipway::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using runtime::ContainerRecord;
using runtime::ContainerStatus;
using runtime::ContainerStore;

std::string short_id(const std::string& id) {
  return store::digest_hex(id).substr(0, 12);
}

// How long ago an RFC 3339 time was; zero for one that cannot be read.
std::chrono::seconds since(const std::string& rfc3339) {
  std::tm tm{};
  if (!strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return std::chrono::seconds(0);
  auto then = std::chrono::system_clock::from_time_t(timegm(&tm));
  auto elapsed =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - then);
  return std::max(elapsed, std::chrono::seconds(0));
}

// docker's STATUS column.
std::string status_text(const ContainerRecord& record) {
  switch (record.status) {
    case ContainerStatus::running:
      return "Up " + human_duration(since(record.started_at)) + status_annotation(record);
    case ContainerStatus::exited:
      return "Exited (" + std::to_string(record.exit_code) + ") " +
             human_duration(since(record.finished_at)) + " ago";
    case ContainerStatus::created:
      break;
  }
  return "Created";
}

// The IMAGE column: the name the container was created from while it still names the same
// image, else the image's short ID (the name was moved or removed).
std::string image_column(store::Store& store, const ContainerRecord& record, bool no_trunc) {
  auto image = store.try_find_image(record.image);
  if (image && image->id == record.image_id) return store::familiar_reference(record.image);
  return no_trunc ? record.image_id : short_id(record.image_id);
}

// docker's PORTS column (its DisplayablePorts): "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp".
// Mappings to the same port number on the host run together into ranges per address and
// protocol ("0.0.0.0:80-82->80-82/tcp", docker writes "::" as ":::80->80/tcp" there); the
// others are listed one by one after them.
std::string ports_column(const ContainerRecord& record) {
  std::vector<runtime::PortMapping> ports = record.ports;
  // In docker's order (its comparePorts): by container port, host address (as shown), host
  // port, protocol.
  auto shown_ip = [](const runtime::PortMapping& p) {
    return p.host_ip.empty() ? std::string("0.0.0.0") : p.host_ip;
  };
  std::sort(ports.begin(), ports.end(), [&](const auto& a, const auto& b) {
    std::string a_ip = shown_ip(a), b_ip = shown_ip(b);
    return std::tie(a.container_port, a_ip, a.host_port, a.protocol) <
           std::tie(b.container_port, b_ip, b.host_port, b.protocol);
  });
  struct Group {
    std::string ip, protocol;
    int first, last;
  };
  std::vector<Group> groups;  // in the order docker keeps them: by first appearance
  std::vector<std::string> done, others;
  auto form = [](const Group& g) {
    std::string range = std::to_string(g.first);
    if (g.last != g.first) range += "-" + std::to_string(g.last);
    return g.ip + ":" + range + "->" + range + "/" + g.protocol;
  };
  for (const auto& port : ports) {
    std::string ip = shown_ip(port);
    if (port.host_port != port.container_port) {
      others.push_back(port.host_address() + "->" + port.container_key());
      continue;
    }
    auto group = std::find_if(groups.begin(), groups.end(), [&](const Group& g) {
      return g.ip == ip && g.protocol == port.protocol;
    });
    if (group == groups.end()) {
      groups.push_back({ip, port.protocol, port.container_port, port.container_port});
    } else if (port.container_port == group->last + 1) {
      group->last = port.container_port;
    } else {
      done.push_back(form(*group));
      group->first = group->last = port.container_port;
    }
  }
  for (const auto& group : groups) done.push_back(form(group));
  done.insert(done.end(), others.begin(), others.end());
  std::string column;
  for (const auto& part : done) column += (column.empty() ? "" : ", ") + part;
  return column;
}

// `port C [PORT[/PROTO]]`: the published mappings, in docker's format, by container port.
int show_ports(store::Store& store, const std::string& reference, const std::string& port) {
  ContainerStore containers(store);
  ContainerRecord record = containers.find(reference);
  std::vector<runtime::PortMapping> ports = record.ports;
  std::stable_sort(ports.begin(), ports.end(), [](const auto& a, const auto& b) {
    return std::tie(a.container_port, a.protocol) < std::tie(b.container_port, b.protocol);
  });
  if (port.empty()) {
    for (const auto& p : ports)
      std::cout << p.container_key() << " -> " << p.host_address() << "\n";
    return 0;
  }
  runtime::PortMapping wanted = runtime::parse_port_mapping(port);
  bool found = false;
  for (const auto& p : ports) {
    if (p.container_key() != wanted.container_key()) continue;
    std::cout << p.host_address() << "\n";
    found = true;
  }
  if (!found)
    throw Error("No public port '" + wanted.container_key() + "' published for " + reference);
  return 0;
}

int list_containers(store::Store& store, const PsOptions& options) {
  std::vector<PsRow> rows;
  for (auto& record : ContainerStore(store).list()) {
    std::string image = image_column(store, record, options.no_trunc);
    std::string status = status_text(record), ports = ports_column(record);
    rows.push_back({std::move(record), std::move(image), std::move(status), std::move(ports)});
  }
  return print_containers(store, options, rows);
}

}  // namespace

int for_each_container(const std::vector<std::string>& references,
                       const std::function<void(const std::string&)>& action) {
  int status = 0;
  for (const auto& reference : references) {
    try {
      action(reference);
    } catch (const std::exception& e) {
      std::cout.flush();
      std::cerr << "Error: " << e.what() << "\n";
      status = 1;
    }
  }
  return status;
}

namespace {

struct StartOptions {
  bool attach = false;
  bool interactive = false;
  std::string detach_keys;
  std::vector<std::string> containers;
};

int start_containers(store::Store& store, const StartOptions& options) {
  std::string detach_keys = runtime::parse_detach_keys(options.detach_keys);
  ContainerStore containers(store);
  if (options.attach || options.interactive) {
    if (options.containers.size() > 1)
      throw Error("you cannot start and attach multiple containers at once");
    ContainerRecord record = containers.find(options.containers.front());
    // docker start -a of a running container attaches to it.
    if (record.status == ContainerStatus::running)
      return runtime::attach_container(containers, record.id, options.interactive, true,
                                       detach_keys);
    if (options.interactive && record.tty && record.interactive)
      return runtime::start_and_attach(containers, record.id, detach_keys);
    return runtime::start_attached(containers, record.id);
  }
  return for_each_container(options.containers, [&](const std::string& reference) {
    ContainerRecord record = containers.find(reference);
    // Starting a running container is not an error in docker: it is already where asked.
    if (record.status != ContainerStatus::running) runtime::start_detached(containers, record.id);
    std::cout << reference << "\n";
  });
}

struct StopOptions {
  int timeout = runtime::kDefaultStopTimeout;
  std::string signal;
  std::vector<std::string> containers;
};

int stop_containers(store::Store& store, const StopOptions& options, bool restart) {
  ContainerStore containers(store);
  int signal = options.signal.empty() ? 0 : runtime::parse_signal(options.signal);
  return for_each_container(options.containers, [&](const std::string& reference) {
    ContainerRecord record = containers.find(reference);
    runtime::stop_container(containers, record.id, options.timeout, signal);
    if (restart) runtime::start_detached(containers, record.id);
    std::cout << reference << "\n";
  });
}

int kill_containers(store::Store& store, const std::string& signal_name,
                    const std::vector<std::string>& references) {
  ContainerStore containers(store);
  int signal = runtime::parse_signal(signal_name);
  return for_each_container(references, [&](const std::string& reference) {
    ContainerRecord record = containers.find(reference);
    runtime::kill_container(containers, record.id, signal);
    std::cout << reference << "\n";
  });
}

int wait_containers(store::Store& store, const std::vector<std::string>& references) {
  ContainerStore containers(store);
  return for_each_container(references, [&](const std::string& reference) {
    ContainerRecord record = containers.find(reference);
    std::cout << runtime::wait_container(containers, record.id) << std::endl;
  });
}

int remove_containers(store::Store& store, bool force, bool volumes,
                      const std::vector<std::string>& references) {
  ContainerStore containers(store);
  return for_each_container(references, [&](const std::string& reference) {
    ContainerRecord record = containers.find(reference);
    if (record.status == ContainerStatus::running) {
      if (!force)
        throw Error("cannot remove container \"/" + record.name +
                    "\": container is running: stop the container before removing or force "
                    "remove");
      runtime::stop_container(containers, record.id, 0, SIGKILL);
    }
    containers.remove(record, volumes);
    std::cout << reference << "\n";
  });
}

struct LogsOptions {
  bool follow = false, timestamps = false;
  std::string tail = "all";
  std::string container;
};

// Prints complete log lines from `text` (stdout entries to stdout, stderr to stderr) and returns
// how many bytes it used: a last line still being written is left for the next read.
size_t print_log_entries(const std::string& text, const LogsOptions& options, size_t skip) {
  size_t start = 0;
  for (size_t newline; (newline = text.find('\n', start)) != std::string::npos;
       start = newline + 1) {
    if (skip > 0) {
      --skip;
      continue;
    }
    json entry;
    try {
      entry = json::parse(text.substr(start, newline - start));
    } catch (const json::exception&) {
      continue;  // a line cut by a crash
    }
    std::string line = entry.value("log", "");
    if (options.timestamps) line = entry.value("time", "") + " " + line;
    (entry.value("stream", "") == "stderr" ? std::cerr : std::cout) << line;
  }
  std::cout.flush();
  std::cerr.flush();
  return start;
}

int show_logs(store::Store& store, const LogsOptions& options) {
  ContainerStore containers(store);
  size_t tail = 0;
  bool all = options.tail == "all" || options.tail == "-1";
  if (!all) {
    if (options.tail.empty() || options.tail.find_first_not_of("0123456789") != std::string::npos)
      throw Error("invalid --tail \"" + options.tail + "\": use a number of lines or \"all\"");
    tail = std::stoul(options.tail);
  }
  ContainerRecord record = containers.find(options.container);
  fs::path log = containers.dir(record.id) / "container.log";
  std::ifstream in(log, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t skip = 0;
  if (!all) {
    size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
    skip = lines > tail ? lines - tail : 0;
  }
  size_t used = print_log_entries(text, options, skip);
  if (!options.follow) return 0;
  // Follows the file while the container runs, then prints what its end left.
  std::string pending = text.substr(used);
  for (bool running = true; running;) {
    try {
      running = containers.find(record.id).status == ContainerStatus::running;
    } catch (const runtime::NoSuchContainer&) {
      running = false;  // removed (--rm): what was read is all there is
    }
    if (running) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    in.clear();
    pending.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    pending.erase(0, print_log_entries(pending, options, 0));
  }
  return 0;
}

struct ExecOptions {
  bool interactive = false, tty = false, detach = false;
  std::vector<std::string> env;
  std::string workdir, user, detach_keys;
};

int exec_command(store::Store& store, const ExecOptions& options, std::vector<std::string> args) {
  // Like docker exec, problems before the command runs exit 126 (127: command not found).
  if (args.size() < 2)
    throw runtime::StartError(
        "\"slipway exec\" requires at least 2 arguments: CONTAINER COMMAND...", 126);
  std::string detach_keys = parse_detach_keys_option(options.detach_keys, 1);
  if (options.tty && options.interactive && !options.detach && !::isatty(STDIN_FILENO))
    throw runtime::StartError("the input device is not a TTY", 1);
  ContainerStore containers(store);
  ContainerRecord record;
  try {
    record = containers.find(args.front());
  } catch (const Error& e) {
    throw runtime::StartError(e.what(), 1);
  }
  if (record.status != ContainerStatus::running || !record.process.alive())
    throw runtime::StartError("container " + record.id + " is not running", 1);
  runtime::ContainerSpec spec = runtime::container_spec(containers, record);
  spec.argv.assign(args.begin() + 1, args.end());
  for (const auto& entry : options.env) {
    if (entry.find('=') != std::string::npos) {
      spec.env.push_back(entry);
    } else if (const char* value = std::getenv(entry.c_str())) {
      spec.env.push_back(entry + "=" + value);
    }
  }
  if (!options.workdir.empty()) spec.working_dir = options.workdir;
  if (!options.user.empty()) spec.user = options.user;
  spec.inherit_stdin = options.interactive;
  spec.tty = options.tty;
  if (options.tty) {
    // The caller's size, as docker exec (the runtime adds TERM=xterm).
    if (auto size = runtime::own_terminal_size())
      std::tie(spec.tty_rows, spec.tty_columns) = std::tie(size->rows, size->columns);
  }
  std::cout.flush();
  if (options.detach) {
    // docker exec -d prints nothing; the command's output goes nowhere.
    spec.inherit_stdin = false;
    runtime::exec_detached(spec, record.process.pid);
    return 0;
  }
  // -it goes through a process of its own that holds the pty, so that the detach keys can leave
  // the command running.
  if (options.tty && options.interactive)
    return runtime::exec_attached(spec, record.process.pid, detach_keys);
  return runtime::exec_in_container(spec, record.process.pid);
}

// `container inspect`: the records, in docker inspect's shape, state checked first.
int inspect_containers(store::Store& store, const std::vector<std::string>& references,
                       const std::string& format) {
  std::vector<json> out;
  int status = for_each_container(references, [&](const std::string& reference) {
    auto found = inspect_container_json(store, reference);
    if (!found) throw runtime::NoSuchContainer(reference);
    out.push_back(std::move(*found));
  });
  if (format.empty() || format == "json") {
    std::cout << json(out).dump(4) << "\n";
  } else {
    // Parsed again in field order: templates print maps sorted, and json keeps the order.
    std::vector<gotemplate::Value> values;
    for (const auto& item : out) values.push_back(gotemplate::Value::parse(item.dump()));
    print_each(format, values);
  }
  return status;
}

}  // namespace

std::optional<json> inspect_container_json(store::Store& store, const std::string& reference) {
  ContainerStore containers(store);
  ContainerRecord record;
  try {
    record = containers.find(reference);
  } catch (const runtime::NoSuchContainer&) {
    return std::nullopt;
  }
  return container_inspect_json(containers, record);
}

CLI::App* container_group(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return true; }))
    if (sub->get_name() == "container") return sub;
  auto* group = app.add_subcommand("container", "Manage containers");
  group->require_subcommand(1);
  return group;
}

std::string parse_detach_keys_option(const std::string& spec, int exit_code) {
  try {
    return runtime::parse_detach_keys(spec);
  } catch (const Error& e) {
    throw runtime::StartError(e.what(), exit_code);
  }
}

std::set<std::string> images_used_by_containers(store::Store& store) {
  std::set<std::string> ids;
  for (const auto& record : ContainerStore(store).list()) ids.insert(record.image_id);
  return ids;
}

void check_image_not_in_use(store::Store& store, const std::string& reference, bool force) {
  auto image = store.try_find_image(reference);
  if (!image) return;  // remove_image says "no such image"
  ContainerStore containers(store);
  std::optional<ContainerRecord> user, running_user;
  for (const auto& record : containers.list()) {
    if (record.image_id != image->id) continue;
    if (!user) user = record;
    if (!running_user && record.status == ContainerStatus::running) running_user = record;
  }
  if (!user) return;
  std::string hex = store::digest_hex(image->id);
  std::string wanted = reference;
  if (wanted.rfind("sha256:", 0) == 0) wanted.erase(0, 7);
  bool by_id = wanted.size() >= 4 && hex.compare(0, wanted.size(), wanted) == 0;
  if (!by_id) {
    // A name: docker untags freely while the image keeps another name, and otherwise only with
    // -f, which leaves the image (now nameless) to the container.
    size_t names = 0;
    for (const auto& named : store.list_images()) names += named.image.id == image->id;
    if (!force && names <= 1)
      throw Error("conflict: unable to remove repository reference \"" + reference +
                  "\" (must force) - container " + user->id.substr(0, 12) +
                  " is using its referenced image " + hex.substr(0, 12));
    return;
  }
  if (running_user)
    throw Error("conflict: unable to delete " + hex.substr(0, 12) +
                " (cannot be forced) - image is being used by running container " +
                running_user->id.substr(0, 12));
  if (!force)
    throw Error("conflict: unable to delete " + hex.substr(0, 12) +
                " (must be forced) - image is being used by stopped container " +
                user->id.substr(0, 12));
}

void add_container_commands(CLI::App& app, CommandContext& context) {
  CLI::App* group = container_group(app);
  for (CLI::App* parent : {&app, group}) {
    bool top = parent == &app;

    auto ps_options = std::make_shared<PsOptions>();
    std::vector<CLI::App*> listings = {
        parent->add_subcommand(top ? "ps" : "ls", "List containers")};
    if (!top) listings.push_back(parent->add_subcommand("ps", "List containers"));
    for (CLI::App* ps : listings) {
      add_ps_flags(ps, *ps_options);
      ps->callback([&context, ps_options] {
        context.action = [&context, ps_options] {
          return list_containers(context.store(), *ps_options);
        };
      });
    }

    auto start_options = std::make_shared<StartOptions>();
    auto* start = parent->add_subcommand("start", "Start one or more stopped containers");
    start->add_flag("-a,--attach", start_options->attach,
                    "Attach STDOUT/STDERR and exit with the container's exit code");
    start->add_flag("-i,--interactive", start_options->interactive, "Attach STDIN too");
    start->add_option("--detach-keys", start_options->detach_keys,
                      "Override the key sequence for detaching (default: ctrl-p,ctrl-q)");
    start->add_option("CONTAINER", start_options->containers)->required();
    start->callback([&context, start_options] {
      context.action = [&context, start_options] {
        return start_containers(context.store(), *start_options);
      };
    });

    for (bool restart : {false, true}) {
      auto stop_options = std::make_shared<StopOptions>();
      auto* stop = parent->add_subcommand(
          restart ? "restart" : "stop",
          restart ? "Restart one or more containers" : "Stop one or more running containers");
      stop->add_option("-t,--time", stop_options->timeout,
                       "Seconds to wait for the container to stop before killing it");
      stop->add_option("-s,--signal", stop_options->signal,
                       "Signal to send (default: the image's StopSignal, or SIGTERM)");
      stop->add_option("CONTAINER", stop_options->containers)->required();
      stop->callback([&context, stop_options, restart] {
        context.action = [&context, stop_options, restart] {
          return stop_containers(context.store(), *stop_options, restart);
        };
      });
    }

    struct Arguments {
      std::vector<std::string> containers;
      std::string signal = "KILL";
      bool force = false;
      bool volumes = false;
      std::string format;
    };
    auto args = std::make_shared<Arguments>();

    auto* kill = parent->add_subcommand("kill", "Kill one or more running containers");
    kill->add_option("-s,--signal", args->signal, "Signal to send (default: KILL)");
    kill->add_option("CONTAINER", args->containers)->required();
    kill->callback([&context, args] {
      context.action = [&context, args] {
        return kill_containers(context.store(), args->signal, args->containers);
      };
    });

    auto* wait = parent->add_subcommand(
        "wait", "Block until one or more containers stop, then print their exit codes");
    wait->add_option("CONTAINER", args->containers)->required();
    wait->callback([&context, args] {
      context.action = [&context, args] {
        return wait_containers(context.store(), args->containers);
      };
    });

    auto* rm = parent->add_subcommand("rm", "Remove one or more containers");
    rm->add_flag("-f,--force", args->force, "Force the removal of a running container (SIGKILL)");
    rm->add_flag("-v,--volumes", args->volumes,
                 "Remove anonymous volumes associated with the container");
    rm->add_option("CONTAINER", args->containers)->required();
    rm->callback([&context, args] {
      context.action = [&context, args] {
        return remove_containers(context.store(), args->force, args->volumes, args->containers);
      };
    });

    auto exec_options = std::make_shared<ExecOptions>();
    auto* exec = parent->add_subcommand("exec", "Run a command in a running container");
    exec->add_flag("-i,--interactive", exec_options->interactive, "Keep STDIN open");
    exec->add_flag("-t,--tty", exec_options->tty, "Allocate a pseudo-TTY");
    exec->add_flag("-d,--detach", exec_options->detach,
                   "Detached mode: run command in the background");
    exec->add_option("--detach-keys", exec_options->detach_keys,
                     "Override the key sequence for detaching (default: ctrl-p,ctrl-q)");
    // One value per -e: a vector option would otherwise swallow the container and command.
    exec->add_option("-e,--env", exec_options->env, "Set environment variables")
        ->allow_extra_args(false);
    exec->add_option("-w,--workdir", exec_options->workdir, "Working directory for the command");
    exec->add_option("-u,--user", exec_options->user, "UID[:GID] or a name from the image");
    exec->prefix_command();  // everything from the container on is the command's
    exec->callback([&context, exec_options, exec] {
      context.action = [&context, exec_options, exec] {
        return exec_command(context.store(), *exec_options, exec->remaining());
      };
    });

    if (!top) {
      auto* inspect = parent->add_subcommand("inspect", "Show the details of containers as JSON");
      inspect->add_option("-f,--format", args->format,
                          "Format output using a custom template: 'json' or a Go template");
      inspect->add_option("CONTAINER", args->containers)->required();
      inspect->callback([&context, args] {
        context.action = [&context, args] {
          return inspect_containers(context.store(), args->containers, args->format);
        };
      });
    }

    struct AttachOptions {
      bool no_stdin = false;
      bool sig_proxy = true;
      std::string detach_keys;
      std::string container;
    };
    auto attach_options = std::make_shared<AttachOptions>();
    auto* attach = parent->add_subcommand(
        "attach", "Attach local standard input, output, and error streams to a running container");
    attach->add_flag("--no-stdin", attach_options->no_stdin, "Do not attach STDIN");
    attach->add_flag("--sig-proxy,!--no-sig-proxy", attach_options->sig_proxy,
                     "Proxy received signals to the container (default true)");
    attach->add_option("--detach-keys", attach_options->detach_keys,
                       "Override the key sequence for detaching (default: ctrl-p,ctrl-q)");
    attach->add_option("CONTAINER", attach_options->container)->required();
    attach->callback([&context, attach_options] {
      context.action = [&context, attach_options] {
        std::string detach_keys = runtime::parse_detach_keys(attach_options->detach_keys);
        ContainerStore containers(context.store());
        ContainerRecord record = containers.find(attach_options->container);
        std::cout.flush();
        return runtime::attach_container(containers, record.id, !attach_options->no_stdin,
                                         attach_options->sig_proxy, detach_keys);
      };
    });

    struct PortOptions {
      std::string container, port;
    };
    auto port_options = std::make_shared<PortOptions>();
    auto* port = parent->add_subcommand("port", "List port mappings of a container");
    port->add_option("CONTAINER", port_options->container)->required();
    port->add_option("PORT", port_options->port, "PORT[/PROTO]");
    port->callback([&context, port_options] {
      context.action = [&context, port_options] {
        return show_ports(context.store(), port_options->container, port_options->port);
      };
    });

    auto logs_options = std::make_shared<LogsOptions>();
    auto* logs = parent->add_subcommand("logs", "Fetch the logs of a container");
    logs->add_flag("-f,--follow", logs_options->follow, "Follow log output");
    logs->add_flag("-t,--timestamps", logs_options->timestamps, "Show timestamps");
    logs->add_option("-n,--tail", logs_options->tail,
                     "Number of lines to show from the end of the logs (default: all)");
    logs->add_option("CONTAINER", logs_options->container)->required();
    logs->callback([&context, logs_options] {
      context.action = [&context, logs_options] {
        return show_logs(context.store(), *logs_options);
      };
    });
  }
}

}  // namespace slipway::cli
