// The typed Dockerfile AST that the ANTLR parse tree is turned into. Values are kept as the
// parser sees them (quotes and escapes still in ENV/LABEL/ARG values, shell-form text verbatim,
// heredoc bodies unexpanded): variable expansion and quote removal are the builder's job, because
// docker applies them per instruction and per field with the build's variables in scope.
//
// What is checked here and what is not: the parser rejects what the reference parser rejects
// (see grammar.h), plus the few shapes the typed form cannot hold (COPY/ADD without a
// destination, ONBUILD without a trigger). Everything docker validates later -- flag names and
// values, HEALTHCHECK's type, SHELL in shell form, WORKDIR/USER/STOPSIGNAL being empty, ARG
// names -- is left to the builder, which finds what it needs in these types.
//
// Every type compares field by field (defaulted operator==): ast_codec's tests check that a
// decoded Dockerfile equals the parsed one.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace slipway::ast {

// 1-based positions in the Dockerfile as written (physical lines, byte columns).
struct Position {
  int line = 0;
  int column = 0;

  bool operator==(const Position&) const = default;
};

// `--name=value` or `--name` (value absent) as written before an instruction's arguments, with
// quotes and escapes removed as the reference parser does. Not validated: the builder knows
// which instruction takes which flag.
struct Flag {
  std::string name;  // without the leading "--"
  std::optional<std::string> value;
  Position position;

  bool operator==(const Flag&) const = default;
};

// The argument of RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK CMD: either a JSON string array
// (exec form) or the rest of the line as one string (shell form).
struct Command {
  bool exec_form = false;
  std::vector<std::string> exec_args;  // exec form, JSON strings decoded
  std::string shell_text;              // shell form, trimmed, continuation lines joined

  bool operator==(const Command&) const = default;
};

struct KeyValue {
  std::string key;
  std::string value;  // raw: quotes and escapes as written

  bool operator==(const KeyValue&) const = default;
};

// A here-document (`<<EOF` ... `EOF`) of RUN, COPY or ADD.
struct Heredoc {
  std::string name;              // the delimiter word, quotes removed
  std::string content;           // body lines exactly as written, each with its line ending;
                                 // leading tabs are NOT removed yet for `<<-` (see chomp)
  unsigned file_descriptor = 0;  // digits before `<<` (`3<<EOF`), 0 when absent
  bool chomp = false;            // `<<-`: strip leading tabs from every body line
  bool expand = true;            // false if any part of the delimiter was quoted (`<<'EOF'`)
  Position position;             // of the `<<` word

  bool operator==(const Heredoc&) const = default;
};

// A heap-allocated value with value semantics (copying copies the value). It lets ONBUILD's body
// hold a whole Instruction although Instruction contains the body.
template <typename T>
class Box {
 public:
  Box() : value_(std::make_unique<T>()) {}
  Box(T value) : value_(std::make_unique<T>(std::move(value))) {}  // NOLINT: implicit on purpose
  Box(const Box& other) : value_(std::make_unique<T>(*other.value_)) {}
  Box(Box&&) noexcept = default;
  Box& operator=(const Box& other) {
    if (this != &other) value_ = std::make_unique<T>(*other.value_);
    return *this;
  }
  Box& operator=(Box&&) noexcept = default;
  ~Box() = default;

  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }
  bool operator==(const Box& other) const { return *value_ == *other.value_; }
  T* operator->() { return value_.get(); }
  const T* operator->() const { return value_.get(); }

 private:
  std::unique_ptr<T> value_;
};

// FROM [--platform=p] image [AS name]
struct FromInstruction {
  std::string image;                      // raw (may contain $VARS from global ARGs)
  std::optional<std::string> stage_name;  // from `AS name`, as written (not lowercased)
  std::string as_keyword = "AS";          // the `AS` word as written (`as`, `As`...), for dumps

  bool operator==(const FromInstruction&) const = default;
};
// MAINTAINER text
struct MaintainerInstruction {
  std::string name;  // the rest of the line; empty if there is none

  bool operator==(const MaintainerInstruction&) const = default;
};
// RUN [flags] command, possibly with here-documents (`RUN <<EOF`): the `<<EOF` words stay in
// the shell text, the bodies are in heredocs, in order.
struct RunInstruction {
  Command command;
  std::vector<Heredoc> heredocs;

  bool operator==(const RunInstruction&) const = default;
};
// CMD command
struct CmdInstruction {
  Command command;

  bool operator==(const CmdInstruction&) const = default;
};
// ENTRYPOINT command
struct EntrypointInstruction {
  Command command;

  bool operator==(const EntrypointInstruction&) const = default;
};
// SHELL ["executable", "arg"...]. Docker only accepts the exec form; a shell form is kept here so
// that the builder can say so.
struct ShellInstruction {
  Command command;

  bool operator==(const ShellInstruction&) const = default;
};
// ENV k=v k2=v2 | ENV k value with spaces
struct EnvInstruction {
  std::vector<KeyValue> variables;
  bool legacy_form = false;  // `ENV KEY value with spaces`

  bool operator==(const EnvInstruction&) const = default;
};
// LABEL k=v k2=v2 | LABEL k value with spaces
struct LabelInstruction {
  std::vector<KeyValue> labels;
  bool legacy_form = false;  // `LABEL key value with spaces`

  bool operator==(const LabelInstruction&) const = default;
};
// EXPOSE 80 53/udp
struct ExposeInstruction {
  std::vector<std::string> ports;  // raw words: "80", "53/udp", "$PORT"

  bool operator==(const ExposeInstruction&) const = default;
};
// COPY/ADD [flags] src... dest | COPY ["src"..., "dest"]. Heredoc sources (`COPY <<EOF /dst`)
// stay in `sources` as their `<<EOF` word; their bodies are in `heredocs`, in order.
struct FileTransfer {
  std::vector<std::string> sources;  // raw words (shell form) or decoded JSON strings
  std::string destination;
  bool json_form = false;
  std::vector<Heredoc> heredocs;

  bool operator==(const FileTransfer&) const = default;
};
struct AddInstruction : FileTransfer {
  bool operator==(const AddInstruction&) const = default;
};
struct CopyInstruction : FileTransfer {
  bool operator==(const CopyInstruction&) const = default;
};
// VOLUME /a /b | VOLUME ["/a", "/b"]
struct VolumeInstruction {
  std::vector<std::string> paths;  // raw words or decoded JSON strings; may be empty
  bool json_form = false;

  bool operator==(const VolumeInstruction&) const = default;
};
// USER name[:group]
struct UserInstruction {
  std::string user;  // the rest of the line; empty if there is none

  bool operator==(const UserInstruction&) const = default;
};
// WORKDIR path
struct WorkdirInstruction {
  std::string path;  // the rest of the line; empty if there is none

  bool operator==(const WorkdirInstruction&) const = default;
};
// STOPSIGNAL signal
struct StopsignalInstruction {
  std::string signal;  // the rest of the line; empty if there is none

  bool operator==(const StopsignalInstruction&) const = default;
};
// ARG name[=default] ...
struct ArgDefinition {
  std::string name;                          // raw, may be empty (`ARG =x`: builder rejects)
  std::optional<std::string> default_value;  // raw: quotes and escapes as written

  bool operator==(const ArgDefinition&) const = default;
};
struct ArgInstruction {
  std::vector<ArgDefinition> args;  // may be empty (`ARG`: builder rejects)

  bool operator==(const ArgInstruction&) const = default;
};
// HEALTHCHECK [flags] CMD command | HEALTHCHECK NONE
struct HealthcheckInstruction {
  std::string type;  // the first word as written: "CMD", "NONE", "cmd", anything; "" if none
  Command command;   // what follows the type word (empty shell text if nothing)

  bool operator==(const HealthcheckInstruction&) const = default;
};

struct Instruction;
// ONBUILD [flags] INSTRUCTION: the trigger is a complete instruction of its own (its keyword,
// flags, source text, position and heredocs). It is never ONBUILD, FROM or MAINTAINER.
struct OnbuildInstruction;

using InstructionBody =
    std::variant<FromInstruction, MaintainerInstruction, RunInstruction, CmdInstruction,
                 EnvInstruction, ExposeInstruction, LabelInstruction, AddInstruction,
                 CopyInstruction, EntrypointInstruction, VolumeInstruction, UserInstruction,
                 WorkdirInstruction, ArgInstruction, OnbuildInstruction, StopsignalInstruction,
                 HealthcheckInstruction, ShellInstruction>;

struct OnbuildInstruction {
  Box<Instruction> trigger;

  bool operator==(const OnbuildInstruction&) const = default;
};

struct Instruction {
  std::string keyword;  // upper case: "RUN"
  std::string source;   // the logical line (continuations joined), as in build output "Step N/M"
                        // (heredoc bodies not included); for an ONBUILD trigger, the text
                        // after ONBUILD and its flags
  std::vector<Flag> flags;
  Position start;    // keyword position
  int end_line = 0;  // last physical line consumed, counting skipped comment/blank lines and
                     // heredoc bodies
  InstructionBody body;

  bool operator==(const Instruction&) const = default;
};

struct Warning {
  int line = 0;
  std::string message;

  bool operator==(const Warning&) const = default;
};

struct Dockerfile {
  std::vector<Instruction> instructions;
  std::vector<Warning> warnings;
  char escape = '\\';                 // from `# escape=`
  std::optional<std::string> syntax;  // from `# syntax=`
  std::optional<std::string> check;   // from `# check=`, unparsed

  bool operator==(const Dockerfile&) const = default;
};

}  // namespace slipway::ast
