// Public interface of grammar/: Dockerfile text -> typed AST (see ast.h).
//
// Two layers: a line scanner that does what the reference parser does line by line (parser
// directives, BOM, CRLF, backslash/backtick continuation with interleaved comments and blank
// lines, heredoc bodies), then the ANTLR4 grammar (DockerfileLexer.g4, DockerfileParser.g4) that
// parses the logical instruction lines into keywords, flags and argument forms. Positions always
// refer to the physical lines of the input. dump.h prints the AST as the reference parser does;
// ast_codec.h turns it into bytes and back, so that a Dockerfile built before skips the parser.
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

// Parses a whole Dockerfile. Throws SyntaxError for what the reference parser rejects (bad
// directives, lines over 64 KiB, JSON arrays with non-string elements, ENV/LABEL without a
// value or `=`, unterminated heredocs, no instructions), unknown instructions (with a
// suggestion), FROM without one or three arguments, and the shapes the typed AST cannot hold:
// ENV/LABEL/ONBUILD without arguments, ADD/COPY without a destination, ONBUILD ONBUILD/FROM/
// MAINTAINER. Flags and the other argument rules are checked by the builder (see ast.h).
ast::Dockerfile parse_dockerfile(std::string_view text);

}  // namespace slipway::grammar
