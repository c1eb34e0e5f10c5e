// slipway pull push login logout copy manifest
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "common/error.h"
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

// The width of the terminal stdout writes to, 0 when stdout is not a terminal.
int stdout_terminal_columns() {
  if (!::isatty(STDOUT_FILENO)) return 0;
  winsize size{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;  // a terminal that does not say how wide it is
}

// One line of stdin, without its line ending; with echo off when `secret` and stdin is a terminal.
std::string read_line(bool secret) {
  termios saved{};
  bool restore = secret && ::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &saved) == 0;
  if (restore) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (restore) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    std::cerr << "\n";
  }
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  return line;
}

struct LoginArguments {
  std::string host;
  std::string username;
  std::string password;
  bool password_stdin = false;
  bool tls_verify = true;
  std::vector<std::string> insecure_registries;
};

int run_login(const LoginArguments& args) {
  std::string username = args.username;
  std::string password = args.password;
  if (!password.empty() && args.password_stdin)
    throw Error("--password and --password-stdin are mutually exclusive");
  if (!password.empty())
    std::cerr << "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n";
  if (args.password_stdin) {
    if (username.empty()) throw Error("Must provide --username with --password-stdin");
    std::string all((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    while (!all.empty() && (all.back() == '\n' || all.back() == '\r')) all.pop_back();
    password = std::move(all);
  }
  bool terminal = ::isatty(STDIN_FILENO);
  if (username.empty()) {
    if (!terminal) throw Error("cannot perform an interactive login from a non TTY device");
    std::cerr << "Username: " << std::flush;
    username = read_line(false);
  }
  if (password.empty()) {
    if (!terminal && !args.password_stdin)
      throw Error("cannot perform an interactive login from a non TTY device");
    if (terminal && !args.password_stdin) {
      std::cerr << "Password: " << std::flush;
      password = read_line(true);
    }
  }
  if (username.empty()) throw Error("Username is required");
  if (password.empty()) throw Error("Password is required");
  RegistryArguments transport;
  transport.tls_verify = args.tls_verify;
  transport.insecure_registries = args.insecure_registries;
  registry::login(args.host, username, password, options_from(transport));
  std::cout << "Login Succeeded\n";
  return 0;
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
      registry::Options options = options_from(*pull_args);
      options.terminal_columns = stdout_terminal_columns();
      registry::pull(context.store(), ref, options, std::cout);
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

  auto copy_args = std::make_shared<RegistryArguments>();
  auto copy_target = std::make_shared<std::string>();
  auto* copy = app.add_subcommand("copy", "Copy an image from one registry to another");
  copy->add_option("SOURCE", copy_args->reference, "NAME[:TAG|@DIGEST]")->required();
  copy->add_option("DESTINATION", *copy_target, "NAME[:TAG]")->required();
  copy->add_flag("-q,--quiet", copy_args->quiet, "Suppress progress output");
  add_transport_options(*copy, *copy_args);
  copy->callback([&context, copy_args, copy_target] {
    context.action = [copy_args, copy_target] {
      auto source = registry::Reference::parse(copy_args->reference);
      auto target = registry::Reference::parse(*copy_target);
      registry::copy(source, target, options_from(*copy_args), std::cout);
      return 0;
    };
  });

  auto* manifest = app.add_subcommand("manifest", "Inspect manifests in a registry");
  manifest->require_subcommand(1);
  auto inspect_args = std::make_shared<RegistryArguments>();
  auto* inspect = manifest->add_subcommand("inspect", "Print an image's manifest or index");
  inspect->add_option("NAME", inspect_args->reference, "NAME[:TAG|@DIGEST]")->required();
  add_transport_options(*inspect, *inspect_args);
  inspect->callback([&context, inspect_args] {
    context.action = [inspect_args] {
      auto ref = registry::Reference::parse(inspect_args->reference);
      std::cout << registry::inspect_manifest(ref, options_from(*inspect_args)) << "\n";
      return 0;
    };
  });

  auto login_args = std::make_shared<LoginArguments>();
  auto* login = app.add_subcommand("login", "Log in to a registry");
  login->add_option("SERVER", login_args->host, "Registry host[:port]")->required();
  login->add_option("-u,--username", login_args->username, "Username");
  login->add_option("-p,--password", login_args->password, "Password");
  login->add_flag("--password-stdin", login_args->password_stdin, "Take the password from stdin");
  login->add_option("--tls-verify", login_args->tls_verify,
                    "Verify the registry's TLS certificate (default true)");
  login->add_option("--insecure-registry", login_args->insecure_registries,
                    "Reach this registry (host[:port]) over plain http");
  login->callback(
      [&context, login_args] { context.action = [login_args] { return run_login(*login_args); }; });

  auto logout_host = std::make_shared<std::string>();
  auto* logout = app.add_subcommand("logout", "Log out from a registry");
  logout->add_option("SERVER", *logout_host, "Registry host[:port]")->required();
  logout->callback([&context, logout_host] {
    context.action = [logout_host] {
      std::string host = registry::normalize_registry_host(*logout_host);
      if (!registry::logout(host)) {
        std::cout << "Not logged in to " << *logout_host << "\n";
        return 0;
      }
      std::cout << "Removing login credentials for " << *logout_host << "\n";
      return 0;
    };
  });
}

}  // namespace slipway::cli
