// Second stage of the Dockerfile parser: runs the ANTLR grammar over the logical lines from the
// line scanner and turns the parse tree into the typed AST.
#include <antlr4-runtime.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "DockerfileLexer.h"
#include "DockerfileParser.h"
#include "DockerfileParserBaseVisitor.h"
#include "grammar/grammar.h"
#include "grammar/line_scanner.h"

namespace slipway::grammar {

SyntaxError::SyntaxError(int line, int column, const std::string& message)
    : Error(std::to_string(line) + ":" + std::to_string(column) + ": " + message),
      line_(line),
      column_(column),
      message_(message) {}

namespace {

using gen::DockerfileParser;

constexpr std::array<std::string_view, 18> kKeywords = {
    "FROM",    "RUN", "CMD",     "LABEL",      "MAINTAINER",  "EXPOSE",
    "ENV",     "ADD", "COPY",    "ENTRYPOINT", "VOLUME",      "USER",
    "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"};

constexpr std::string_view kNotStringArray =
    "when using JSON array syntax, arrays must be comprised of strings only";

std::string to_upper(std::string_view s) {
  std::string upper(s);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return upper;
}

// reWhitespace in the reference: what separates a keyword, and legacy ENV's key, from the rest.
bool is_separator(char c) {
  return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string unknown_instruction_message(std::string_view keyword) {
  std::string upper = to_upper(keyword);
  std::string message = "unknown instruction: " + upper;
  std::string_view best;
  std::size_t best_distance = 3;  // suggest only within distance 2
  for (std::string_view candidate : kKeywords) {
    std::size_t distance = edit_distance(upper, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  if (!best.empty()) message += " (did you mean " + std::string(best) + "?)";
  return message;
}

// Feeds ANTLR one code point per byte. Dockerfiles are bytes (not necessarily valid UTF-8), the
// grammar only cares about ASCII, and this way every token index is a byte offset into the input
// we keep -- text is always cut from that input, never taken from ANTLR's getText().
class ByteInputStream : public antlr4::ANTLRInputStream {
 public:
  explicit ByteInputStream(std::string_view bytes) {
    _data.reserve(bytes.size());
    for (char c : bytes) _data.push_back(static_cast<unsigned char>(c));
  }
};

// The logical lines as one ANTLR input ('\n'-separated), with the way back to physical positions.
class Source {
 public:
  explicit Source(const std::vector<LogicalLine>& lines) : lines_(lines) {
    for (const LogicalLine& line : lines_) {
      if (&line != &lines_.front()) text_ += '\n';
      text_ += line.text;
    }
  }

  const std::string& text() const { return text_; }
  const LogicalLine& line(std::size_t antlr_line) const { return lines_.at(antlr_line - 1); }

  // ANTLR's (1-based line, 0-based column) in the joined input -> physical position.
  ast::Position position(std::size_t antlr_line, std::size_t column) const {
    return line(antlr_line).position_of(column);
  }
  ast::Position position(const antlr4::Token* token) const {
    return position(token->getLine(), token->getCharPositionInLine());
  }
  ast::Position position(antlr4::ParserRuleContext* ctx) const { return position(ctx->getStart()); }

  // Input text from the start of `first` to the end of `last`.
  std::string text(const antlr4::Token* first, const antlr4::Token* last) const {
    return text_.substr(first->getStartIndex(), last->getStopIndex() + 1 - first->getStartIndex());
  }
  std::string text(const antlr4::Token* token) const { return text(token, token); }
  std::string text(antlr4::ParserRuleContext* ctx) const {
    return text(ctx->getStart(), ctx->getStop());
  }

 private:
  const std::vector<LogicalLine>& lines_;
  std::string text_;
};

// Turns the first ANTLR complaint into a SyntaxError at the physical position, instead of
// printing to the console and recovering. The grammar accepts nearly any argument list, so the
// only expected complaint is a FROM with the wrong number of words; it gets docker's message.
class ThrowingErrorListener : public antlr4::BaseErrorListener {
 public:
  explicit ThrowingErrorListener(const Source& source) : source_(source) {}

  void syntaxError(antlr4::Recognizer* /*recognizer*/, antlr4::Token* offending, std::size_t line,
                   std::size_t column, const std::string& /*msg*/,
                   std::exception_ptr /*e*/) override {
    const LogicalLine& logical = source_.line(line);
    std::string_view text = logical.text;
    std::string keyword(
        text.substr(0, std::find_if(text.begin(), text.end(), is_separator) - text.begin()));
    if (to_upper(keyword) == "FROM") {
      ast::Position from = logical.position_of(0);
      throw SyntaxError(from.line, from.column, "FROM requires either one or three arguments");
    }
    ast::Position at = source_.position(line, column);
    std::string what = "unexpected ";
    if (offending == nullptr) {
      what += "character";
    } else if (offending->getType() == antlr4::Token::EOF ||
               offending->getType() == DockerfileParser::NEWLINE) {
      what += "end of line";
    } else {
      what += "'" + source_.text(offending) + "'";
    }
    throw SyntaxError(at.line, at.column, what + " in " + to_upper(keyword));
  }

 private:
  const Source& source_;
};

// Removes quotes and backslash escapes from a flag word, as extractBuilderFlags does.
std::string unquote_flag(std::string_view raw) {
  std::string word;
  char quote = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (quote == 0 && (c == '\'' || c == '"')) {
      quote = c;
    } else if (quote != 0 && c == quote) {
      quote = 0;
    } else if (c == '\\') {
      if (i + 1 < raw.size()) word += raw[++i];
    } else {
      word += c;
    }
  }
  return word;
}

// Builds the AST. Each instruction visitor returns a complete ast::Instruction.
class AstBuilder : public gen::DockerfileParserBaseVisitor {
 public:
  explicit AstBuilder(const Source& source) : source_(source) {}

  antlrcpp::Any visitDockerfile(DockerfileParser::DockerfileContext* ctx) override {
    std::vector<ast::Instruction> instructions;
    for (auto* instruction : ctx->instruction()) {
      instructions.push_back(visit(instruction).as<ast::Instruction>());
    }
    return instructions;
  }

  // The default would go through visitChildren, which copies the result -- and ANTLR 4.9's Any
  // silently drops values that are not nothrow-copyable when copied. Forwarding keeps it a move.
  antlrcpp::Any visitInstruction(DockerfileParser::InstructionContext* ctx) override {
    return visit(ctx->children.front());
  }

  antlrcpp::Any visitFromInstruction(DockerfileParser::FromInstructionContext* ctx) override {
    ast::FromInstruction from{source_.text(ctx->image), std::nullopt};
    if (ctx->stageName != nullptr) from.stage_name = source_.text(ctx->stageName);
    return instruction(ctx, ctx->flags(), std::move(from));
  }

  antlrcpp::Any visitRunInstruction(DockerfileParser::RunInstructionContext* ctx) override {
    return instruction(ctx, ctx->flags(), ast::RunInstruction{command(ctx->command())});
  }

  antlrcpp::Any visitCmdInstruction(DockerfileParser::CmdInstructionContext* ctx) override {
    return instruction(ctx, ctx->flags(), ast::CmdInstruction{command(ctx->command())});
  }

  antlrcpp::Any visitMaintainerInstruction(
      DockerfileParser::MaintainerInstructionContext* ctx) override {
    std::string name = ctx->words() != nullptr ? source_.text(ctx->words()) : std::string();
    return instruction(ctx, ctx->flags(), ast::MaintainerInstruction{std::move(name)});
  }

  antlrcpp::Any visitEnvInstruction(DockerfileParser::EnvInstructionContext* ctx) override {
    return instruction(ctx, ctx->flags(), env(ctx));
  }

  antlrcpp::Any visitExposeInstruction(DockerfileParser::ExposeInstructionContext* ctx) override {
    return instruction(ctx, ctx->flags(), ast::ExposeInstruction{words(ctx->words())});
  }

  antlrcpp::Any visitOtherInstruction(DockerfileParser::OtherInstructionContext* ctx) override {
    return instruction(ctx, ctx->flags(), ast::OtherInstruction{words(ctx->words())});
  }

  antlrcpp::Any visitUnknownInstruction(DockerfileParser::UnknownInstructionContext* ctx) override {
    ast::Position at = source_.position(ctx);
    throw SyntaxError(
        at.line, at.column,
        unknown_instruction_message(source_.text(ctx->UNKNOWN_KEYWORD()->getSymbol())));
  }

 private:
  // The parts every instruction has: keyword, source line, positions, flags.
  ast::Instruction instruction(antlr4::ParserRuleContext* ctx,
                               DockerfileParser::FlagsContext* flags,
                               ast::InstructionBody body) const {
    const antlr4::Token* keyword = ctx->getStart();
    const LogicalLine& line = source_.line(keyword->getLine());
    ast::Instruction result;
    result.keyword = to_upper(source_.text(keyword));
    result.source = line.text;
    result.start = source_.position(keyword);
    result.end_line = line.end_line;
    if (flags != nullptr) {
      for (auto* flag : flags->FLAG()) result.flags.push_back(this->flag(flag->getSymbol()));
    }
    result.body = std::move(body);
    return result;
  }

  ast::Flag flag(const antlr4::Token* token) const {
    std::string word = unquote_flag(source_.text(token)).substr(2);  // drop "--"
    ast::Flag result;
    result.position = source_.position(token);
    if (auto equals = word.find('='); equals != std::string::npos) {
      result.name = word.substr(0, equals);
      result.value = word.substr(equals + 1);
    } else {
      result.name = std::move(word);
    }
    return result;
  }

  std::vector<std::string> words(DockerfileParser::WordsContext* ctx) const {
    std::vector<std::string> result;
    if (ctx == nullptr) return result;
    for (auto* word : ctx->word()) result.push_back(source_.text(word));
    return result;
  }

  ast::Command command(DockerfileParser::CommandContext* ctx) const {
    ast::Command result;
    if (ctx == nullptr) return result;
    if (auto* exec = ctx->execForm()) {
      std::vector<std::string> args;
      if (exec_args(exec->jsonArray(), args)) {
        result.exec_form = true;
        result.exec_args = std::move(args);
        return result;
      }
    }
    result.shell_text = source_.text(ctx);
    return result;
  }

  // Decodes a JSON array of strings. Returns false if a string does not decode (invalid UTF-8,
  // lone surrogate), which the reference's json.Unmarshal would have refused too: the line is
  // then shell form. Throws for non-string elements, which docker rejects outright.
  bool exec_args(DockerfileParser::JsonArrayContext* array, std::vector<std::string>& args) const {
    for (auto* value : array->jsonValue()) {
      if (value->STRING() == nullptr) {
        ast::Position at = source_.position(value);
        throw SyntaxError(at.line, at.column, std::string(kNotStringArray));
      }
    }
    for (auto* value : array->jsonValue()) {
      try {
        args.push_back(
            nlohmann::json::parse(source_.text(value->STRING()->getSymbol())).get<std::string>());
      } catch (const nlohmann::json::exception&) {
        return false;
      }
    }
    return true;
  }

  ast::EnvInstruction env(DockerfileParser::EnvInstructionContext* ctx) const {
    ast::Position keyword = source_.position(ctx);
    std::vector<DockerfileParser::EnvWordContext*> words = ctx->envWord();
    if (words.empty()) {
      throw SyntaxError(keyword.line, keyword.column, "ENV requires at least one argument");
    }
    ast::EnvInstruction result;
    if (source_.text(words.front()).find('=') == std::string::npos) {
      // Legacy form: the key is the first whitespace-separated chunk of the raw text (not the
      // first quote-aware word), the value everything after it, verbatim.
      result.legacy_form = true;
      std::string text = source_.text(words.front()->getStart(), words.back()->getStop());
      auto key_end = std::find_if(text.begin(), text.end(), is_separator);
      auto value_start = std::find_if_not(key_end, text.end(), is_separator);
      if (value_start == text.end()) {
        throw SyntaxError(keyword.line, keyword.column, "ENV must have two arguments");
      }
      result.variables.push_back(
          {std::string(text.begin(), key_end), std::string(value_start, text.end())});
      return result;
    }
    for (auto* word : words) {
      std::string text = source_.text(word);
      auto equals = text.find('=');
      if (equals == std::string::npos) {
        ast::Position at = source_.position(word);
        throw SyntaxError(at.line, at.column,
                          "Syntax error - can't find = in " + nlohmann::json(text).dump() +
                              ". Must be of the form: name=value");
      }
      result.variables.push_back({text.substr(0, equals), text.substr(equals + 1)});
    }
    return result;
  }

  const Source& source_;
};

}  // namespace

ast::Dockerfile parse_dockerfile(std::string_view text) {
  ScannedDockerfile scanned = scan_lines(text);
  if (scanned.lines.empty()) throw SyntaxError(1, 1, "file with no instructions");

  Source source(scanned.lines);
  ThrowingErrorListener errors(source);

  ByteInputStream input(source.text());
  gen::DockerfileLexer lexer(&input);
  lexer.escapeChar = scanned.escape;
  lexer.removeErrorListeners();
  lexer.addErrorListener(&errors);
  antlr4::CommonTokenStream tokens(&lexer);
  DockerfileParser parser(&tokens);
  parser.removeErrorListeners();
  parser.addErrorListener(&errors);

  AstBuilder builder(source);
  ast::Dockerfile dockerfile;
  dockerfile.instructions = builder.visit(parser.dockerfile()).as<std::vector<ast::Instruction>>();
  dockerfile.warnings = std::move(scanned.warnings);
  dockerfile.escape = scanned.escape;
  dockerfile.syntax = std::move(scanned.syntax);
  return dockerfile;
}

}  // namespace slipway::grammar
