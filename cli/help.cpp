#include "cli/help.h"

#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>
#include <vector>

namespace slipway::cli {
namespace {

bool is_help(const CLI::Option* option) {
  return option->check_lname("help") || option->check_lname("help-all");
}

// The commands whose own arguments are free-form (everything from the image or container on).
const std::map<std::string, std::string> kArgumentUsage = {
    {"run", "IMAGE [COMMAND] [ARG...]"},
    {"create", "IMAGE [COMMAND] [ARG...]"},
    {"exec", "CONTAINER COMMAND [ARG...]"},
};

std::string positional_usage(const CLI::App* app) {
  auto special = kArgumentUsage.find(app->get_name());
  if (special != kArgumentUsage.end() && app->get_parent() &&
      (app->get_parent()->get_parent() == nullptr || app->get_parent()->get_name() == "container"))
    return " " + special->second;
  if (app->get_name() == "inspect" && app->get_parent() && !app->get_parent()->get_parent())
    return " NAME|ID [NAME|ID...]";
  std::string usage;
  for (const CLI::Option* option : app->get_options()) {
    if (option->nonpositional()) continue;
    std::string name = option->get_name();
    bool many = option->get_items_expected_max() > 1;
    std::string part = many ? name + " [" + name + "...]" : name;
    if (!option->get_required()) part = "[" + part + "]";
    usage += " " + part;
  }
  return usage;
}

bool has_flags(const CLI::App* app) {
  for (const CLI::Option* option : app->get_options())
    if (option->nonpositional() && !is_help(option)) return true;
  return false;
}

std::vector<const CLI::App*> visible_subcommands(const CLI::App* app) {
  auto subs = app->get_subcommands([](const CLI::App* sub) { return !sub->get_name().empty(); });
  std::sort(subs.begin(), subs.end(),
            [](const CLI::App* a, const CLI::App* b) { return a->get_name() < b->get_name(); });
  return subs;
}

// docker's Aliases: the other paths to the same command.
std::vector<std::string> aliases(const CLI::App* app) {
  const CLI::App* parent = app->get_parent();
  if (!parent) return {};
  const CLI::App* root = parent->get_parent() ? parent->get_parent() : parent;
  std::string name = app->get_name();
  std::string group = parent == root ? "" : parent->get_name();
  static const std::map<std::string, std::vector<std::string>> kKnown = {
      {"ps", {"container ls", "container list", "container ps", "ps"}},
      {"container ls", {"container ls", "container list", "container ps", "ps"}},
      {"container ps", {"container ls", "container list", "container ps", "ps"}},
      {"images", {"image ls", "image list", "images"}},
      {"rmi", {"image rm", "image remove", "rmi"}},
      {"image rm", {"image rm", "image remove", "rmi"}},
      {"info", {"system info", "info"}},
      {"system info", {"system info", "info"}},
  };
  std::string key = group.empty() ? name : group + " " + name;
  std::vector<std::string> paths;
  if (auto known = kKnown.find(key); known != kKnown.end()) {
    paths = known->second;
  } else {
    // The same name at the top and in the container or image group (docker's `container run`).
    for (const char* other : {"container", "image"}) {
      const CLI::App* other_group = nullptr;
      for (const CLI::App* sub : root->get_subcommands([](const CLI::App*) { return true; }))
        if (sub->get_name() == other) other_group = sub;
      if (!other_group) continue;
      bool in_group =
          !other_group
               ->get_subcommands([&](const CLI::App* sub) { return sub->get_name() == name; })
               .empty();
      bool at_top = !root->get_subcommands([&](const CLI::App* sub) {
                           return sub->get_name() == name && sub->get_subcommands({}).empty();
                         })
                         .empty();
      if (in_group && at_top && (group.empty() || group == other)) {
        paths = {std::string(other) + " " + name, name};
        break;
      }
    }
  }
  std::string program = root->get_name().empty() ? "slipway" : root->get_name();
  for (auto& path : paths) path = program + " " + path;
  return paths;
}

std::string option_type(const CLI::Option* option) {
  if (option->get_type_size() == 0 || option->get_expected_max() == 0) return "";
  if (option->check_lname("filter")) return "filter";
  if (option->get_items_expected_max() > 1 || option->get_expected_max() > 1) return "list";
  std::string type = option->get_type_name();
  if (type == "INT" || type == "UINT") return "int";
  if (type == "FLOAT") return "float";
  return "string";
}

std::string options_block(const CLI::App* app) {
  std::vector<std::pair<std::string, std::string>> lines;
  for (const CLI::Option* option : app->get_options()) {
    if (!option->nonpositional() || is_help(option)) continue;
    std::string shorts, longs;
    for (const auto& name : option->get_snames()) shorts += (shorts.empty() ? "-" : ", -") + name;
    for (const auto& name : option->get_lnames()) {
      if (!longs.empty()) break;  // the first long name; negations (--no-x) are docker's =false
      longs = "--" + name;
    }
    std::string flag =
        shorts.empty() ? "      " + longs : "  " + shorts + (longs.empty() ? "" : ", " + longs);
    std::string type = option_type(option);
    if (!type.empty()) flag += " " + type;
    lines.push_back({flag, option->get_description()});
  }
  std::sort(lines.begin(), lines.end(), [](const auto& a, const auto& b) {
    auto key = [](const std::string& flag) {
      size_t dashes = flag.find("--");
      return dashes == std::string::npos ? flag : flag.substr(dashes + 2);
    };
    return key(a.first) < key(b.first);
  });
  size_t width = 0;
  for (const auto& [flag, description] : lines) width = std::max(width, flag.size());
  std::string out;
  for (const auto& [flag, description] : lines) {
    std::string text = description;
    std::string indent(width + 3, ' ');
    for (size_t at = 0; (at = text.find('\n', at)) != std::string::npos; at += indent.size() + 1)
      text.insert(at + 1, indent);
    out += flag + std::string(width - flag.size() + 3, ' ') + text + "\n";
  }
  return out;
}

class DockerHelpFormatter : public CLI::FormatterBase {
 public:
  std::string make_help(const CLI::App* app, std::string, CLI::AppFormatMode) const override {
    std::ostringstream out;
    auto subs = visible_subcommands(app);
    out << "\nUsage:  " << usage_line(app) << "\n\n" << app->get_description() << "\n";
    auto paths = aliases(app);
    if (paths.size() > 1) {
      out << "\nAliases:\n  ";
      for (size_t i = 0; i < paths.size(); ++i) out << (i ? ", " : "") << paths[i];
      out << "\n";
    }
    if (has_flags(app)) out << "\nOptions:\n" << options_block(app);
    if (!subs.empty()) {
      out << "\nCommands:\n";
      for (const CLI::App* sub : subs) {
        std::string name = sub->get_name();
        out << "  " << name << std::string(name.size() < 11 ? 11 - name.size() : 0, ' ') << " "
            << sub->get_description() << "\n";
      }
      out << "\nRun '" << command_path(app) << " COMMAND --help' for more information on a "
          << "command.\n";
    }
    return out.str();
  }
};

// The subcommand the parse reached: the deepest one that was named on the command line.
CLI::App* reached(CLI::App& app) {
  CLI::App* current = &app;
  for (;;) {
    CLI::App* next = nullptr;
    for (CLI::App* sub : current->get_subcommands([](CLI::App*) { return true; }))
      if (sub->parsed()) next = sub;
    if (!next) return current;
    current = next;
  }
}

bool is_run_or_create(const CLI::App* app) {
  return app->get_name() == "run" || app->get_name() == "create";
}

}  // namespace

std::string command_path(const CLI::App* app) {
  std::string path;
  for (const CLI::App* at = app; at; at = at->get_parent()) {
    std::string name = at->get_parent() ? at->get_name() : "slipway";
    path = path.empty() ? name : name + " " + path;
  }
  return path;
}

std::string usage_line(const CLI::App* app) {
  std::string usage = command_path(app);
  if (!app->get_subcommands([](const CLI::App*) { return true; }).empty() &&
      app->get_options([](const CLI::Option* o) { return !o->nonpositional(); }).empty()) {
    if (has_flags(app)) usage += " [OPTIONS]";
    return usage + " COMMAND";
  }
  if (has_flags(app)) usage += " [OPTIONS]";
  return usage + positional_usage(app);
}

std::shared_ptr<CLI::FormatterBase> docker_help_formatter() {
  return std::make_shared<DockerHelpFormatter>();
}

std::string unknown_flag_message(const std::string& argument, const std::string& path) {
  std::string flag = argument.substr(0, argument.find('='));
  std::string line;
  if (flag.rfind("--", 0) == 0)
    line = "unknown flag: " + flag;
  else
    line = "unknown shorthand flag: '" + flag.substr(1, 1) + "' in " + flag;
  return line + "\nSee '" + path + " --help'.";
}

int report_parse_error(CLI::App& app, const CLI::ParseError& error, int argc, char** argv) {
  CLI::App* command = reached(app);
  std::string path = command_path(command);
  // CLI11 names some errors after the command they happened in: tell them apart by type.
  std::string name = dynamic_cast<const CLI::ExtrasError*>(&error)        ? "ExtrasError"
                     : dynamic_cast<const CLI::RequiredError*>(&error)    ? "RequiredError"
                     : dynamic_cast<const CLI::ArgumentMismatch*>(&error) ? "ArgumentMismatch"
                     : dynamic_cast<const CLI::CallForHelp*>(&error)      ? "CallForHelp"
                     : dynamic_cast<const CLI::CallForAllHelp*>(&error)   ? "CallForAllHelp"
                                                                          : error.get_name();
  if (name == "CallForHelp" || name == "CallForAllHelp") {
    std::cout << command->help();
    return 0;
  }
  std::cout.flush();
  if (name == "ExtrasError") {
    // "The following argument(s) was/were not expected: A B"
    std::string message = error.what();
    std::istringstream words(message.substr(message.find(": ") + 2));
    std::string first;
    words >> first;
    if (first.rfind("-", 0) == 0 && first.size() > 1) {
      if (first.rfind("--", 0) != 0) {
        // The word as typed (-aZ), for docker's "in -aZ".
        char letter = first[1];
        for (int i = 1; i < argc; ++i) {
          std::string word = argv[i];
          if (word.rfind("-", 0) == 0 && word.rfind("--", 0) != 0 &&
              word.find(letter) != std::string::npos) {
            first = word;
            break;
          }
        }
        std::cerr << "unknown shorthand flag: '" << letter << "' in " << first << "\nSee '" << path
                  << " --help'.\n";
        return 125;
      }
      std::cerr << unknown_flag_message(first, path) << "\n";
      return 125;
    }
    if (!visible_subcommands(command).empty()) {
      std::cerr << "slipway: '" << path.substr(8) << " " << first
                << "' is not a slipway command.\nSee 'slipway --help'\n";
      return 1;
    }
    std::cerr << "\"" << path << "\" accepts no arguments.\nSee '" << path
              << " --help'.\n\nUsage:  " << usage_line(command) << "\n\n"
              << command->get_description() << "\n";
    return is_run_or_create(command) ? 125 : 1;
  }
  if (name == "RequiredError" || name == "ArgumentMismatch") {
    bool many = false;
    size_t required = 0;
    for (const CLI::Option* option : command->get_options()) {
      if (option->nonpositional() || !option->get_required()) continue;
      ++required;
      many = many || option->get_items_expected_max() > 1;
    }
    if (required > 0 && name == "RequiredError") {
      std::string count =
          many ? "at least " + std::to_string(required) : "exactly " + std::to_string(required);
      std::cerr << "\"" << path << "\" requires " << count
                << (required == 1 && !many ? " argument."
                                           : " argument" + std::string(required > 1 ? "s." : "."))
                << "\nSee '" << path << " --help'.\n\nUsage:  " << usage_line(command) << "\n\n"
                << command->get_description() << "\n";
      return is_run_or_create(command) ? 125 : 1;
    }
  }
  if (name == "RequiredError" && !visible_subcommands(command).empty()) {
    // A word after a group that names none of its commands: docker's unknown command.
    std::string group = command == &app ? "" : command->get_name();
    bool after_group = group.empty();
    for (int i = 1; i < argc; ++i) {
      std::string word = argv[i];
      if (word == "--root") {
        ++i;
        continue;
      }
      if (word.rfind("-", 0) == 0) continue;
      if (!after_group) {
        after_group = word == group;
        continue;
      }
      std::cerr << "slipway: '" << (group.empty() ? "" : group + " ") << word
                << "' is not a slipway command.\nSee 'slipway --help'\n";
      return 1;
    }
    // A group named alone (`slipway container`, `slipway`): docker prints its help.
    std::cout << command->help();
    return 0;
  }
  // Anything else CLI11 found (a bad number, a value missing after a flag): its message, in
  // docker's frame.
  std::string message = error.what();
  if (name == "ArgumentMismatch") {
    // CLI11: "--format: 1 required TEXT missing"
    std::string flag = message.substr(0, message.find(':'));
    if (flag.rfind("-", 0) == 0) message = "flag needs an argument: " + flag;
  }
  std::cerr << message << "\nSee '" << path << " --help'.\n";
  return 125;
}

}  // namespace slipway::cli
