// The parse tree of a template (template/parse.cpp builds it, template/execute.cpp walks it).
// Positions are byte offsets into the template text, for Go's "LINE:COL" in errors.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "template/template.h"

namespace slipway::gotemplate {

struct Pipeline;

// One operand of a command.
struct Operand {
  enum class Kind { field, variable, dot, literal, identifier, pipeline };
  Kind kind = Kind::dot;
  size_t pos = 0;
  std::string text;                 // source text, for <NODE> in errors
  std::string name;                 // variable name ("$x", "$") or function name
  std::vector<std::string> fields;  // .A.B after the operand
  Value literal;
  std::shared_ptr<Pipeline> pipeline;  // (pipeline)
};

struct Command {
  size_t pos = 0;
  std::string text;
  std::vector<Operand> operands;
};

struct Pipeline {
  size_t pos = 0;
  std::string text;
  std::vector<std::string> variables;  // declared or assigned
  bool assign = false;                 // `=` rather than `:=`
  std::vector<Command> commands;
};

struct Node {
  enum class Kind { text, action, if_, range, with, break_, continue_ };
  Kind kind = Kind::text;
  size_t pos = 0;
  std::string text;  // Kind::text: the text
  std::shared_ptr<Pipeline> pipeline;
  std::vector<std::unique_ptr<Node>> list, else_list;
};

}  // namespace slipway::gotemplate
