// The typed Dockerfile AST that the ANTLR parse tree is turned into. Values are kept as the
// parser sees them (quotes and escapes still in ENV values, shell-form text verbatim): variable
// expansion and quote removal are the builder's job, because docker applies them per instruction
// and per field with the build's variables in scope.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace slipway::ast {

// 1-based positions in the Dockerfile as written (physical lines).
struct Position {
  int line = 0;
  int column = 0;
};

// `--name=value` or `--name` (value absent) as written before an instruction's arguments, with
// quotes and escapes removed as the reference parser does.
struct Flag {
  std::string name;  // without the leading "--"
  std::optional<std::string> value;
  Position position;
};

// The argument of RUN, CMD, ENTRYPOINT, SHELL: either a JSON string array (exec form) or the rest
// of the line as one string (shell form).
struct Command {
  bool exec_form = false;
  std::vector<std::string> exec_args;  // exec form
  std::string shell_text;              // shell form, trimmed, continuation lines joined
};

struct KeyValue {
  std::string key;
  std::string value;  // raw: quotes and escapes as written
};

struct FromInstruction {
  std::string image;                      // raw (may contain $VARS from global ARGs)
  std::optional<std::string> stage_name;  // from `AS name`
};
struct MaintainerInstruction {
  std::string name;
};
struct RunInstruction {
  Command command;
};
struct CmdInstruction {
  Command command;
};
struct EnvInstruction {
  std::vector<KeyValue> variables;
  bool legacy_form = false;  // `ENV KEY value with spaces`
};
struct ExposeInstruction {
  std::vector<std::string> ports;  // raw words: "80", "53/udp", "$PORT"
};
// An instruction the grammar knows but whose typed form is not defined yet: its arguments are
// the whitespace-separated words of the rest of the line.
struct OtherInstruction {
  std::vector<std::string> words;
};

using InstructionBody = std::variant<FromInstruction, MaintainerInstruction, RunInstruction,
                                     CmdInstruction, EnvInstruction, ExposeInstruction,
                                     OtherInstruction>;

struct Instruction {
  std::string keyword;  // upper case: "RUN"
  std::string source;   // the logical line (continuations joined), as in build output "Step N/M"
  std::vector<Flag> flags;
  Position start;     // keyword position
  int end_line = 0;   // last physical line consumed, counting skipped comment/blank lines
  InstructionBody body;
};

struct Warning {
  int line = 0;
  std::string message;
};

struct Dockerfile {
  std::vector<Instruction> instructions;
  std::vector<Warning> warnings;
  char escape = '\\';                  // from `# escape=`
  std::optional<std::string> syntax;   // from `# syntax=`
};

}  // namespace slipway::ast
