// Second stage of the Dockerfile parser: runs the ANTLR grammar over the logical lines from the
// line scanner and turns the parse tree into the typed AST.
#include <antlr4-runtime.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "DockerfileLexer.h"
#include "DockerfileParser.h"
#include "DockerfileParserBaseVisitor.h"
#include "common/go_quote.h"
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
// only expected complaint is a FROM with the wrong number of words (also as an ONBUILD
// trigger); it gets docker's message.
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
    if (to_upper(keyword) == "ONBUILD") {
      // `ONBUILD FROM a b`: docker refuses the trigger before looking at its arguments.
      std::size_t pos = keyword.size();
      while (true) {
        while (pos < text.size() && is_separator(text[pos])) ++pos;
        std::size_t end = pos;
        while (end < text.size() && !is_separator(text[end])) ++end;
        std::string word(text.substr(pos, end - pos));
        if (!word.starts_with("--")) {
          if (to_upper(word) == "FROM") {
            ast::Position from = logical.position_of(pos);
            throw SyntaxError(from.line, from.column, "FROM isn't allowed as an ONBUILD trigger");
          }
          break;
        }
        pos = end;
      }
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

// Appends code point `rune` to `out` as UTF-8.
void append_utf8(std::string& out, uint32_t rune) {
  if (rune < 0x80) {
    out += static_cast<char>(rune);
  } else if (rune < 0x800) {
    out += static_cast<char>(0xC0 | (rune >> 6));
    out += static_cast<char>(0x80 | (rune & 0x3F));
  } else if (rune < 0x10000) {
    out += static_cast<char>(0xE0 | (rune >> 12));
    out += static_cast<char>(0x80 | ((rune >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (rune & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (rune >> 18));
    out += static_cast<char>(0x80 | ((rune >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((rune >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (rune & 0x3F));
  }
}

// Length of the valid UTF-8 sequence at text[i], or 0 (Go's utf8.DecodeRune returning
// RuneError with size 1).
std::size_t utf8_length(std::string_view text, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char lead = byte(i);
  std::size_t length = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0;
  if (length == 0 || lead >= 0xF5 || i + length > text.size()) return 0;
  uint32_t rune = lead & (0x7F >> length);
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    rune = (rune << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
  if (length > 1 &&
      (rune < kMinimum[length] || rune > 0x10FFFF || (rune >= 0xD800 && rune <= 0xDFFF))) {
    return 0;
  }
  return length;
}

// Decodes a JSON string token (the lexer has checked its syntax) the way Go's encoding/json
// does: invalid UTF-8 bytes and unpaired surrogates become U+FFFD instead of failing.
std::string decode_json_string(std::string_view quoted) {
  std::string_view text = quoted.substr(1, quoted.size() - 2);
  std::string out;
  auto hex4 = [&](std::size_t at) -> int {
    if (at + 4 > text.size()) return -1;
    uint32_t value = 0;
    for (std::size_t k = at; k < at + 4; ++k) {
      char c = text[k];
      int digit = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                         : -1;
      if (digit < 0) return -1;
      value = value * 16 + static_cast<uint32_t>(digit);
    }
    return static_cast<int>(value);
  };
  for (std::size_t i = 0; i < text.size();) {
    char c = text[i];
    if (c != '\\') {
      std::size_t length = utf8_length(text, i);
      if (length == 0) {
        append_utf8(out, 0xFFFD);
        ++i;
      } else {
        out.append(text.substr(i, length));
        i += length;
      }
      continue;
    }
    char kind = text[i + 1];
    i += 2;
    switch (kind) {
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        auto rune = static_cast<uint32_t>(hex4(i));
        i += 4;
        if (rune >= 0xD800 && rune <= 0xDFFF) {
          int low = text.substr(i, 2) == "\\u" ? hex4(i + 2) : -1;
          if (rune < 0xDC00 && low >= 0xDC00 && low <= 0xDFFF) {
            rune = 0x10000 + ((rune - 0xD800) << 10) + (static_cast<uint32_t>(low) - 0xDC00);
            i += 6;
          } else {
            rune = 0xFFFD;
          }
        }
        append_utf8(out, rune);
        break;
      }
      default:
        out += kind;
        break;  // \" \\ \/
    }
  }
  return out;
}

std::string trim_right(std::string text) {
  while (!text.empty() && (is_separator(text.back()) || text.back() == '\n')) text.pop_back();
  return text;
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
    if (ctx->stageName != nullptr) {
      from.stage_name = source_.text(ctx->stageName);
      from.as_keyword = source_.text(ctx->as);
    }
    return instruction(ctx, ctx->flags(), std::move(from));
  }

  antlrcpp::Any visitRunInstruction(DockerfileParser::RunInstructionContext* ctx) override {
    return instruction(ctx, ctx->flags(),
                       ast::RunInstruction{command(ctx->command()), heredocs(ctx)});
  }

  antlrcpp::Any visitCmdInstruction(DockerfileParser::CmdInstructionContext* ctx) override {
    return instruction(ctx, ctx->flags(), ast::CmdInstruction{command(ctx->command())});
  }

  antlrcpp::Any visitEntrypointInstruction(
      DockerfileParser::EntrypointInstructionContext* ctx) override {
    return instruction(ctx, ctx->flags(), ast::EntrypointInstruction{command(ctx->command())});
  }

  antlrcpp::Any visitShellInstruction(DockerfileParser::ShellInstructionContext* ctx) override {
    return instruction(ctx, ctx->flags(), ast::ShellInstruction{command(ctx->command())});
  }

  antlrcpp::Any visitHealthcheckInstruction(
      DockerfileParser::HealthcheckInstructionContext* ctx) override {
    ast::HealthcheckInstruction healthcheck;
    if (ctx->healthcheckType() != nullptr) {
      healthcheck.type = source_.text(ctx->healthcheckType());
      healthcheck.command = command(ctx->command());
    }
    return instruction(ctx, ctx->flags(), std::move(healthcheck));
  }

  antlrcpp::Any visitAddInstruction(DockerfileParser::AddInstructionContext* ctx) override {
    ast::AddInstruction add;
    file_transfer(ctx, "ADD", ctx->jsonOrWords(), add);
    return instruction(ctx, ctx->flags(), std::move(add));
  }

  antlrcpp::Any visitCopyInstruction(DockerfileParser::CopyInstructionContext* ctx) override {
    ast::CopyInstruction copy;
    file_transfer(ctx, "COPY", ctx->jsonOrWords(), copy);
    return instruction(ctx, ctx->flags(), std::move(copy));
  }

  antlrcpp::Any visitVolumeInstruction(DockerfileParser::VolumeInstructionContext* ctx) override {
    ast::VolumeInstruction volume;
    volume.json_form = json_or_words(ctx->jsonOrWords(), volume.paths);
    return instruction(ctx, ctx->flags(), std::move(volume));
  }

  antlrcpp::Any visitEnvInstruction(DockerfileParser::EnvInstructionContext* ctx) override {
    ast::EnvInstruction env;
    env.legacy_form = key_values(ctx, "ENV", ctx->quotedWords(), env.variables);
    return instruction(ctx, ctx->flags(), std::move(env));
  }

  antlrcpp::Any visitLabelInstruction(DockerfileParser::LabelInstructionContext* ctx) override {
    ast::LabelInstruction label;
    label.legacy_form = key_values(ctx, "LABEL", ctx->quotedWords(), label.labels);
    return instruction(ctx, ctx->flags(), std::move(label));
  }

  antlrcpp::Any visitArgInstruction(DockerfileParser::ArgInstructionContext* ctx) override {
    ast::ArgInstruction arg;
    if (ctx->quotedWords() != nullptr) {
      for (auto* word : ctx->quotedWords()->QUOTED_WORD()) {
        std::string text = source_.text(word->getSymbol());
        if (auto equals = text.find('='); equals != std::string::npos) {
          arg.args.push_back({text.substr(0, equals), text.substr(equals + 1)});
        } else {
          arg.args.push_back({std::move(text), std::nullopt});
        }
      }
    }
    return instruction(ctx, ctx->flags(), std::move(arg));
  }

  antlrcpp::Any visitMaintainerInstruction(
      DockerfileParser::MaintainerInstructionContext* ctx) override {
    return instruction(ctx, ctx->flags(), ast::MaintainerInstruction{rest(ctx->words())});
  }

  antlrcpp::Any visitUserInstruction(DockerfileParser::UserInstructionContext* ctx) override {
    return instruction(ctx, ctx->flags(), ast::UserInstruction{rest(ctx->words())});
  }

  antlrcpp::Any visitWorkdirInstruction(DockerfileParser::WorkdirInstructionContext* ctx) override {
    return instruction(ctx, ctx->flags(), ast::WorkdirInstruction{rest(ctx->words())});
  }

  antlrcpp::Any visitStopsignalInstruction(
      DockerfileParser::StopsignalInstructionContext* ctx) override {
    return instruction(ctx, ctx->flags(), ast::StopsignalInstruction{rest(ctx->words())});
  }

  antlrcpp::Any visitExposeInstruction(DockerfileParser::ExposeInstructionContext* ctx) override {
    return instruction(ctx, ctx->flags(), ast::ExposeInstruction{words(ctx->words())});
  }

  antlrcpp::Any visitOnbuildInstruction(DockerfileParser::OnbuildInstructionContext* ctx) override {
    if (ctx->trigger == nullptr) fail(ctx, "ONBUILD requires at least one argument");
    auto trigger = visit(ctx->trigger).as<ast::Instruction>();
    if (trigger.keyword == "ONBUILD") {
      fail(ctx->trigger, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
    }
    if (trigger.keyword == "FROM" || trigger.keyword == "MAINTAINER") {
      fail(ctx->trigger, trigger.keyword + " isn't allowed as an ONBUILD trigger");
    }
    return instruction(ctx, ctx->flags(), ast::OnbuildInstruction{std::move(trigger)});
  }

  antlrcpp::Any visitUnknownInstruction(DockerfileParser::UnknownInstructionContext* ctx) override {
    fail(ctx, unknown_instruction_message(source_.text(ctx->UNKNOWN_KEYWORD()->getSymbol())));
  }

 private:
  [[noreturn]] void fail(antlr4::ParserRuleContext* ctx, const std::string& message) const {
    ast::Position at = source_.position(ctx);
    throw SyntaxError(at.line, at.column, message);
  }

  // The parts every instruction has: keyword, source line, positions, flags.
  ast::Instruction instruction(antlr4::ParserRuleContext* ctx,
                               DockerfileParser::FlagsContext* flags,
                               ast::InstructionBody body) const {
    const antlr4::Token* keyword = ctx->getStart();
    const LogicalLine& line = source_.line(keyword->getLine());
    ast::Instruction result;
    result.keyword = to_upper(source_.text(keyword));
    // An ONBUILD trigger's text is what follows ONBUILD (the line itself is left-trimmed).
    std::size_t offset = keyword->getCharPositionInLine();
    result.source = offset == 0 ? line.text : trim_right(line.text.substr(offset));
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

  std::vector<ast::Heredoc> heredocs(antlr4::ParserRuleContext* ctx) const {
    return source_.line(ctx->getStart()->getLine()).heredocs;
  }

  std::vector<std::string> words(DockerfileParser::WordsContext* ctx) const {
    std::vector<std::string> result;
    if (ctx == nullptr) return result;
    for (auto* word : ctx->word()) result.push_back(source_.text(word));
    return result;
  }

  // parseString: the rest of the line as one value.
  std::string rest(DockerfileParser::WordsContext* ctx) const {
    return ctx != nullptr ? source_.text(ctx) : std::string();
  }

  ast::Command command(DockerfileParser::CommandContext* ctx) const {
    ast::Command result;
    if (ctx == nullptr) return result;
    if (auto* exec = ctx->execForm()) {
      if (auto args = exec_args(exec->jsonArray())) {
        result.exec_form = true;
        result.exec_args = std::move(*args);
        return result;
      }
    }
    result.shell_text = source_.text(ctx);
    return result;
  }

  // ADD/COPY/VOLUME arguments (parseMaybeJSONToList). Returns whether they were a JSON array.
  bool json_or_words(DockerfileParser::JsonOrWordsContext* ctx,
                     std::vector<std::string>& out) const {
    if (ctx == nullptr) return false;
    if (auto* exec = ctx->execForm()) {
      if (auto args = exec_args(exec->jsonArray())) {
        out = std::move(*args);
        return true;
      }
    }
    // Words: the text split on whitespace (reWhitespace).
    std::string text = source_.text(ctx);
    std::size_t pos = 0;
    while (pos < text.size()) {
      std::size_t end = pos;
      while (end < text.size() && !is_separator(text[end])) ++end;
      if (end > pos) out.push_back(text.substr(pos, end - pos));
      pos = end + 1;
    }
    return false;
  }

  void file_transfer(antlr4::ParserRuleContext* ctx, const std::string& keyword,
                     DockerfileParser::JsonOrWordsContext* arguments,
                     ast::FileTransfer& out) const {
    std::vector<std::string> all;
    out.json_form = json_or_words(arguments, all);
    if (all.size() < 2) {
      fail(ctx, keyword +
                    " requires at least two arguments, but only one was provided. Destination "
                    "could not be determined");
    }
    out.destination = std::move(all.back());
    all.pop_back();
    out.sources = std::move(all);
    out.heredocs = heredocs(ctx);
  }

  // Decodes a JSON array of strings (exec form), or returns nothing if the reference's
  // json.Unmarshal would refuse the text (then it is shell form). Throws for a valid JSON array
  // with non-string elements, which docker rejects outright.
  std::optional<std::vector<std::string>> exec_args(
      DockerfileParser::JsonArrayContext* array) const {
    // Go's JSON whitespace is space, \t, \n and \r; the lexer's also has \v and \f, and those
    // can only be whitespace here (JSON strings cannot hold raw control characters).
    std::string text = source_.text(array);
    if (text.find_first_of("\v\f") != std::string::npos) return std::nullopt;
    for (auto* value : array->jsonValue()) {
      if (value->STRING() == nullptr) fail(value, std::string(kNotStringArray));
    }
    std::vector<std::string> args;
    for (auto* value : array->jsonValue()) {
      args.push_back(decode_json_string(source_.text(value->STRING()->getSymbol())));
    }
    return args;
  }

  // ENV and LABEL (parseNameVal). Returns whether it is the legacy `KEY value...` form.
  bool key_values(antlr4::ParserRuleContext* ctx, const std::string& keyword,
                  DockerfileParser::QuotedWordsContext* quoted,
                  std::vector<ast::KeyValue>& out) const {
    if (quoted == nullptr) fail(ctx, keyword + " requires at least one argument");
    std::vector<antlr4::tree::TerminalNode*> words = quoted->QUOTED_WORD();
    auto text_of = [&](antlr4::tree::TerminalNode* word) {
      return source_.text(word->getSymbol());
    };
    if (text_of(words.front()).find('=') == std::string::npos) {
      // Legacy form: the key is the first whitespace-separated chunk of the raw text (not the
      // first quote-aware word), the value everything after it, verbatim.
      std::string text = source_.text(quoted);
      auto key_end = std::find_if(text.begin(), text.end(), is_separator);
      auto value_start = std::find_if_not(key_end, text.end(), is_separator);
      if (value_start == text.end()) fail(ctx, keyword + " must have two arguments");
      out.push_back({std::string(text.begin(), key_end), std::string(value_start, text.end())});
      return true;
    }
    for (auto* word : words) {
      std::string text = text_of(word);
      auto equals = text.find('=');
      if (equals == std::string::npos) {
        ast::Position at = source_.position(word->getSymbol());
        throw SyntaxError(at.line, at.column,
                          "Syntax error - can't find = in " + go_quote(text) +
                              ". Must be of the form: name=value");
      }
      out.push_back({text.substr(0, equals), text.substr(equals + 1)});
    }
    return false;
  }

  const Source& source_;
};

}  // namespace

ast::Dockerfile parse_dockerfile(std::string_view text) {
  ScannedDockerfile scanned = scan_lines(text);
  if (scanned.lines.empty()) throw SyntaxError(1, 1, "file with no instructions");

  Source source(scanned.lines);
  ThrowingErrorListener errors(source);
  auto parse_with = [&](antlr4::atn::PredictionMode mode) {
    ByteInputStream input(source.text());
    gen::DockerfileLexer lexer(&input);
    lexer.escapeChar = scanned.escape;
    lexer.removeErrorListeners();
    lexer.addErrorListener(&errors);
    antlr4::CommonTokenStream tokens(&lexer);
    DockerfileParser parser(&tokens);
    parser.removeErrorListeners();
    parser.addErrorListener(&errors);
    parser.getInterpreter<antlr4::atn::ParserATNSimulator>()->setPredictionMode(mode);
    AstBuilder builder(source);
    return builder.visit(parser.dockerfile()).as<std::vector<ast::Instruction>>();
  };

  ast::Dockerfile dockerfile;
  // ANTLR's two-stage parse: SLL prediction is enough for nearly every Dockerfile and much
  // cheaper, because full-context (LL) predictions are never cached and were most of the
  // parser's time. Only when SLL fails is the text parsed again with LL, which then finds the
  // parse SLL missed or reports the real error.
  try {
    dockerfile.instructions = parse_with(antlr4::atn::PredictionMode::SLL);
  } catch (const SyntaxError&) {
    dockerfile.instructions = parse_with(antlr4::atn::PredictionMode::LL);
  }
  dockerfile.warnings = std::move(scanned.warnings);
  dockerfile.escape = scanned.escape;
  dockerfile.syntax = std::move(scanned.syntax);
  dockerfile.check = std::move(scanned.check);
  return dockerfile;
}

}  // namespace slipway::grammar
