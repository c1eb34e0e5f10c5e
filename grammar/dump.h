// The reference parser's AST dump (BuildKit's Node.Dump), which its test corpus compares byte
// for byte: one `(keyword ["--flag" ...] "arg" ...)` line per instruction, the arguments being
// the values the reference parser splits each instruction into, Go-quoted.
#pragma once

#include <string>

#include "grammar/ast.h"

namespace slipway::grammar {

// The dump of every instruction, lines separated by '\n', without a trailing newline (the
// reference's `result` files are this plus "\n"). Heredoc bodies are not part of it.
std::string dump(const ast::Dockerfile& dockerfile);

// One instruction's `(...)` line.
std::string dump(const ast::Instruction& instruction);

}  // namespace slipway::grammar
