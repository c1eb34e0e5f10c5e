// First stage of the Dockerfile parser: turns physical lines into logical instruction lines the
// way BuildKit's parser.go does (parser directives, BOM, CRLF, escape-char continuations with
// interleaved comment and blank lines, heredoc bodies). The ANTLR grammar only ever sees the
// logical lines, so every logical line carries a map back to the physical positions it was
// joined from.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/ast.h"

namespace slipway::grammar {

// A run of bytes of a logical line that was copied contiguously from one physical line.
struct LineSegment {
  std::size_t offset = 0;  // where the run starts in LogicalLine::text
  int line = 0;            // 1-based physical line
  int column = 0;          // 1-based byte column of the run's first byte on that line
};

struct LogicalLine {
  std::string text;    // continuations joined, first line left-trimmed, escape chars removed
  int start_line = 0;  // physical line of the first byte
  int end_line = 0;    // last physical line consumed, including skipped comment/blank lines
  std::vector<LineSegment> segments;  // ascending by offset; never empty
  // The bodies of the `<<EOF` words of a RUN, COPY or ADD line (or ONBUILD of one), read from
  // the physical lines after it; in the order of the words.
  std::vector<ast::Heredoc> heredocs;

  // Physical position of byte `offset` of text; offsets at or past the end map to just after
  // the last byte, so "expected more input" errors point at the end of the instruction.
  ast::Position position_of(std::size_t offset) const;
};

struct ScannedDockerfile {
  std::vector<LogicalLine> lines;
  std::vector<ast::Warning> warnings;
  char escape = '\\';
  std::optional<std::string> syntax;
  std::optional<std::string> check;
  int physical_line_count = 0;
};

// Longest physical line accepted, in bytes without its '\n' (bufio.Scanner's default token limit
// in the reference, which counts the '\n' as part of the token).
inline constexpr std::size_t kMaxLineLength = 65535;

// Splits `text` into logical lines. Throws SyntaxError for bad parser directives, overlong
// lines and unterminated heredocs; does not judge the instructions themselves.
ScannedDockerfile scan_lines(std::string_view text);

// What BuildKit's ParseHeredoc makes of one shell word: a heredoc (`<<EOF`, `<<-'EOF'`,
// `3<<EOF`; content empty), nothing (not a heredoc word), or a std::runtime_error with the shell
// lexer's message (`<<'EOF`).
std::optional<ast::Heredoc> parse_heredoc_word(std::string_view word);

// The heredocs a logical line introduces, in order, without their bodies: `<<` words of RUN,
// COPY and ADD in shell form, also as an ONBUILD trigger. Exposed for tests.
std::vector<ast::Heredoc> heredocs_in_line(const LogicalLine& line);

}  // namespace slipway::grammar
