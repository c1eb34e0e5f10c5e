// Public interface of grammar/: Dockerfile text -> typed AST (see ast.h).
//
// Two layers: a line scanner that does what the reference parser does line by line (parser
// directives, BOM, CRLF, backslash/backtick continuation with interleaved comments and blank
// lines), then the ANTLR4 grammar (Dockerfile.g4) that parses the logical instruction lines into
// keywords, flags and argument forms. Positions always refer to the physical lines of the input.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"
#include "grammar/ast.h"

namespace slipway::grammar {

// A Dockerfile the parser rejects. what() is "LINE:COL: message"; the CLI prefixes the file name.
class SyntaxError : public Error {
 public:
  SyntaxError(int line, int column, const std::string& message);
  int line() const { return line_; }
  int column() const { return column_; }
  const std::string& message() const { return message_; }

 private:
  int line_;
  int column_;
  std::string message_;
};

// Parses a whole Dockerfile. Throws SyntaxError for anything docker would reject at parse time
// (unknown instruction, malformed JSON array with non-string elements, ENV without value, no
// instructions, ...).
ast::Dockerfile parse_dockerfile(std::string_view text);

}  // namespace slipway::grammar
