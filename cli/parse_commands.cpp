// slipway parse [-f FILE] [--format dump|json]
//
// Parses a Dockerfile (default ./Dockerfile) and prints it:
//   dump  the reference parser's Node.Dump text (grammar/dump.h), as BuildKit's dumper prints it
//   json  the typed AST (grammar/ast.h) with positions, for tools
// Errors go to stderr as `FILE:LINE:COL: message`, exit status 1.
//
// The JSON shape (stable; field names follow grammar/ast.h):
//   {
//     "escape": "\\",                       the escape char (`# escape=`)
//     "syntax": "docker/dockerfile:1"|null, the `# syntax=` directive
//     "check": "skip=all"|null,             the `# check=` directive, unparsed
//     "warnings": [{"line": 3, "message": "Empty continuation line found in: RUN a b"}],
//     "instructions": [INSTRUCTION...]
//   }
//   INSTRUCTION:
//     {
//       "keyword": "COPY",                   upper case
//       "source": "COPY --from=b a /x",      the logical line (continuations joined)
//       "start": {"line": 4, "column": 1},   1-based, of the keyword
//       "end_line": 6,                       last physical line, heredoc bodies included
//       "flags": [{"name": "from", "value": "b"|null, "position": {"line":4,"column":6}}],
//       ...the fields of the instruction's kind:
//     }
//     FROM        "image": str, "stage_name": str|null
//     RUN         "command": COMMAND, "heredocs": [HEREDOC]
//     CMD, ENTRYPOINT, SHELL   "command": COMMAND
//     HEALTHCHECK "type": str ("CMD", "NONE", as written; "" if none), "command": COMMAND
//     ENV         "variables": [{"key": str, "value": str}], "legacy_form": bool
//     LABEL       "labels": [{"key": str, "value": str}], "legacy_form": bool
//     ADD, COPY   "sources": [str], "destination": str, "json_form": bool, "heredocs": [HEREDOC]
//     VOLUME      "paths": [str], "json_form": bool
//     EXPOSE      "ports": [str]
//     ARG         "args": [{"name": str, "default_value": str|null}]
//     MAINTAINER  "name": str;  USER "user": str;  WORKDIR "path": str;  STOPSIGNAL "signal": str
//     ONBUILD     "trigger": INSTRUCTION
//   COMMAND: {"exec_form": bool, "exec_args": [str], "shell_text": str}
//   HEREDOC: {"name": str, "content": str, "file_descriptor": int, "chomp": bool,
//             "expand": bool, "position": {"line": int, "column": int}}
// Values are raw as in the AST (quotes, escapes and $VARS unprocessed). Bytes that are not UTF-8
// are printed as U+FFFD.
#include <iostream>
#include <nlohmann/json.hpp>
#include <type_traits>
#include <variant>

#include "cli/commands.h"
#include "common/fs.h"
#include "grammar/dump.h"
#include "grammar/grammar.h"

namespace slipway::cli {
namespace {

// Keys in the order the AST defines them, as a reader expects.
using OrderedJson = nlohmann::ordered_json;

OrderedJson to_json(const ast::Position& position) {
  return {{"line", position.line}, {"column", position.column}};
}

OrderedJson to_json(const ast::Command& command) {
  return {{"exec_form", command.exec_form},
          {"exec_args", command.exec_args},
          {"shell_text", command.shell_text}};
}

OrderedJson to_json(const std::vector<ast::Heredoc>& heredocs) {
  OrderedJson out = OrderedJson::array();
  for (const auto& heredoc : heredocs) {
    out.push_back({{"name", heredoc.name},
                   {"content", heredoc.content},
                   {"file_descriptor", heredoc.file_descriptor},
                   {"chomp", heredoc.chomp},
                   {"expand", heredoc.expand},
                   {"position", to_json(heredoc.position)}});
  }
  return out;
}

OrderedJson to_json(const std::vector<ast::KeyValue>& pairs) {
  OrderedJson out = OrderedJson::array();
  for (const auto& pair : pairs) out.push_back({{"key", pair.key}, {"value", pair.value}});
  return out;
}

OrderedJson optional_string(const std::optional<std::string>& value) {
  return value ? OrderedJson(*value) : OrderedJson(nullptr);
}

OrderedJson to_json(const ast::Instruction& instruction);

// The fields of one kind of instruction, added to `out`.
void add_body(const ast::InstructionBody& body, OrderedJson& out) {
  std::visit(
      [&](const auto& typed) {
        using T = std::decay_t<decltype(typed)>;
        if constexpr (std::is_same_v<T, ast::FromInstruction>) {
          out["image"] = typed.image;
          out["stage_name"] = optional_string(typed.stage_name);
        } else if constexpr (std::is_same_v<T, ast::RunInstruction>) {
          out["command"] = to_json(typed.command);
          out["heredocs"] = to_json(typed.heredocs);
        } else if constexpr (std::is_same_v<T, ast::CmdInstruction> ||
                             std::is_same_v<T, ast::EntrypointInstruction> ||
                             std::is_same_v<T, ast::ShellInstruction>) {
          out["command"] = to_json(typed.command);
        } else if constexpr (std::is_same_v<T, ast::HealthcheckInstruction>) {
          out["type"] = typed.type;
          out["command"] = to_json(typed.command);
        } else if constexpr (std::is_same_v<T, ast::EnvInstruction>) {
          out["variables"] = to_json(typed.variables);
          out["legacy_form"] = typed.legacy_form;
        } else if constexpr (std::is_same_v<T, ast::LabelInstruction>) {
          out["labels"] = to_json(typed.labels);
          out["legacy_form"] = typed.legacy_form;
        } else if constexpr (std::is_same_v<T, ast::AddInstruction> ||
                             std::is_same_v<T, ast::CopyInstruction>) {
          out["sources"] = typed.sources;
          out["destination"] = typed.destination;
          out["json_form"] = typed.json_form;
          out["heredocs"] = to_json(typed.heredocs);
        } else if constexpr (std::is_same_v<T, ast::VolumeInstruction>) {
          out["paths"] = typed.paths;
          out["json_form"] = typed.json_form;
        } else if constexpr (std::is_same_v<T, ast::ExposeInstruction>) {
          out["ports"] = typed.ports;
        } else if constexpr (std::is_same_v<T, ast::ArgInstruction>) {
          OrderedJson args = OrderedJson::array();
          for (const auto& arg : typed.args) {
            args.push_back(
                {{"name", arg.name}, {"default_value", optional_string(arg.default_value)}});
          }
          out["args"] = std::move(args);
        } else if constexpr (std::is_same_v<T, ast::MaintainerInstruction>) {
          out["name"] = typed.name;
        } else if constexpr (std::is_same_v<T, ast::UserInstruction>) {
          out["user"] = typed.user;
        } else if constexpr (std::is_same_v<T, ast::WorkdirInstruction>) {
          out["path"] = typed.path;
        } else if constexpr (std::is_same_v<T, ast::StopsignalInstruction>) {
          out["signal"] = typed.signal;
        } else {
          static_assert(std::is_same_v<T, ast::OnbuildInstruction>);
          out["trigger"] = to_json(*typed.trigger);
        }
      },
      body);
}

OrderedJson to_json(const ast::Instruction& instruction) {
  OrderedJson flags = OrderedJson::array();
  for (const auto& flag : instruction.flags) {
    flags.push_back({{"name", flag.name},
                     {"value", optional_string(flag.value)},
                     {"position", to_json(flag.position)}});
  }
  OrderedJson out = {{"keyword", instruction.keyword},
                     {"source", instruction.source},
                     {"start", to_json(instruction.start)},
                     {"end_line", instruction.end_line},
                     {"flags", std::move(flags)}};
  add_body(instruction.body, out);
  return out;
}

OrderedJson to_json(const ast::Dockerfile& dockerfile) {
  OrderedJson warnings = OrderedJson::array();
  for (const auto& warning : dockerfile.warnings) {
    warnings.push_back({{"line", warning.line}, {"message", warning.message}});
  }
  OrderedJson instructions = OrderedJson::array();
  for (const auto& instruction : dockerfile.instructions)
    instructions.push_back(to_json(instruction));
  return {{"escape", std::string(1, dockerfile.escape)},
          {"syntax", optional_string(dockerfile.syntax)},
          {"check", optional_string(dockerfile.check)},
          {"warnings", std::move(warnings)},
          {"instructions", std::move(instructions)}};
}

struct ParseOptions {
  std::string file = "Dockerfile";
  std::string format = "dump";
};

int parse_command(const ParseOptions& options) {
  std::string text;
  try {
    text = read_file(options.file);
  } catch (const std::exception& e) {
    std::cerr << "Error: " << e.what() << "\n";
    return 1;
  }
  ast::Dockerfile dockerfile;
  try {
    dockerfile = grammar::parse_dockerfile(text);
  } catch (const grammar::SyntaxError& e) {
    std::cerr << options.file << ":" << e.what() << "\n";
    return 1;
  }
  if (options.format == "json") {
    std::cout << to_json(dockerfile).dump(2, ' ', false, OrderedJson::error_handler_t::replace)
              << "\n";
  } else {
    std::cout << grammar::dump(dockerfile) << "\n";
  }
  return 0;
}

}  // namespace

void add_parse_commands(CLI::App& app, CommandContext& context) {
  auto options = std::make_shared<ParseOptions>();
  auto* parse = app.add_subcommand("parse", "Parse a Dockerfile and print its syntax tree");
  parse->add_option("-f,--file", options->file, "Name of the Dockerfile (default: ./Dockerfile)");
  parse->add_option("--format", options->format, "Output format: dump (default) or json")
      ->check(CLI::IsMember({"dump", "json"}));
  parse->callback(
      [&context, options] { context.action = [options] { return parse_command(*options); }; });
}

}  // namespace slipway::cli
