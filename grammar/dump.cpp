#include "grammar/dump.h"

#include <algorithm>
#include <cctype>
#include <type_traits>
#include <variant>
#include <vector>

#include "common/go_quote.h"

namespace slipway::grammar {
namespace {

using Strings = std::vector<std::string>;

// What the reference's line parsers make of a Command (parseMaybeJSON): the JSON strings, the
// shell text as one value, or nothing.
void append_command(const ast::Command& command, Strings& out) {
  if (command.exec_form) {
    out.insert(out.end(), command.exec_args.begin(), command.exec_args.end());
  } else if (!command.shell_text.empty()) {
    out.push_back(command.shell_text);
  }
}

// parseString: the rest of the line as one value, nothing if empty.
void append_rest(const std::string& rest, Strings& out) {
  if (!rest.empty()) out.push_back(rest);
}

// parseNameVal: `key value ""` for the legacy form, `key value "="` per pair otherwise.
void append_key_values(const std::vector<ast::KeyValue>& pairs, bool legacy_form, Strings& out) {
  for (const auto& pair : pairs)
    out.insert(out.end(), {pair.key, pair.value, legacy_form ? "" : "="});
}

// The reference's argument node values for an instruction body.
Strings arguments(const ast::InstructionBody& body) {
  Strings out;
  std::visit(
      [&](const auto& typed) {
        using T = std::decay_t<decltype(typed)>;
        if constexpr (std::is_same_v<T, ast::FromInstruction>) {
          out.push_back(typed.image);
          if (typed.stage_name) out.insert(out.end(), {typed.as_keyword, *typed.stage_name});
        } else if constexpr (std::is_same_v<T, ast::RunInstruction> ||
                             std::is_same_v<T, ast::CmdInstruction> ||
                             std::is_same_v<T, ast::EntrypointInstruction> ||
                             std::is_same_v<T, ast::ShellInstruction>) {
          append_command(typed.command, out);
        } else if constexpr (std::is_same_v<T, ast::HealthcheckInstruction>) {
          if (!typed.type.empty()) {
            out.push_back(typed.type);
            append_command(typed.command, out);
          }
        } else if constexpr (std::is_same_v<T, ast::MaintainerInstruction>) {
          append_rest(typed.name, out);
        } else if constexpr (std::is_same_v<T, ast::UserInstruction>) {
          append_rest(typed.user, out);
        } else if constexpr (std::is_same_v<T, ast::WorkdirInstruction>) {
          append_rest(typed.path, out);
        } else if constexpr (std::is_same_v<T, ast::StopsignalInstruction>) {
          append_rest(typed.signal, out);
        } else if constexpr (std::is_same_v<T, ast::EnvInstruction>) {
          append_key_values(typed.variables, typed.legacy_form, out);
        } else if constexpr (std::is_same_v<T, ast::LabelInstruction>) {
          append_key_values(typed.labels, typed.legacy_form, out);
        } else if constexpr (std::is_same_v<T, ast::ExposeInstruction>) {
          out = typed.ports;
        } else if constexpr (std::is_same_v<T, ast::AddInstruction> ||
                             std::is_same_v<T, ast::CopyInstruction>) {
          out = typed.sources;
          out.push_back(typed.destination);
        } else if constexpr (std::is_same_v<T, ast::VolumeInstruction>) {
          out = typed.paths;
        } else if constexpr (std::is_same_v<T, ast::ArgInstruction>) {
          for (const auto& arg : typed.args) {
            out.push_back(arg.default_value ? arg.name + "=" + *arg.default_value : arg.name);
          }
        } else {
          static_assert(std::is_same_v<T, ast::OnbuildInstruction>);  // dumped as a child
        }
      },
      body);
  return out;
}

}  // namespace

std::string dump(const ast::Instruction& instruction) {
  std::string out = instruction.keyword;
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!instruction.flags.empty()) {
    Strings flags;
    for (const auto& flag : instruction.flags) {
      flags.push_back("--" + flag.name + (flag.value ? "=" + *flag.value : ""));
    }
    out += " " + go_quote_list(flags);
  }
  if (const auto* onbuild = std::get_if<ast::OnbuildInstruction>(&instruction.body)) {
    out += " " + dump(*onbuild->trigger);
  } else {
    for (const auto& argument : arguments(instruction.body)) out += " " + go_quote(argument);
  }
  return "(" + out + ")";
}

std::string dump(const ast::Dockerfile& dockerfile) {
  std::string out;
  for (const auto& instruction : dockerfile.instructions) {
    if (!out.empty()) out += '\n';
    out += dump(instruction);
  }
  return out;
}

}  // namespace slipway::grammar
