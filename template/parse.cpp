// The lexer and parser of Go's text/template, with Go's error messages (text/template/parse).
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>

#include "template/nodes.h"

namespace slipway::gotemplate {
namespace {

// Go parses a pipeline inside parentheses recursively; a bound keeps a hostile template (a
// fuzzer's ten thousand "(" or {{if}}) from exhausting the stack (sanitizers make frames large).
// Go's own bound has the same message.
constexpr int kMaxDepth = 200;

enum class Tok {
  text,
  left,
  right,
  space,
  field,
  dot,
  variable,
  identifier,
  string,
  number,
  boolean,
  nil,
  pipe,
  lparen,
  rparen,
  declare,
  assign,
  comma,
  keyword,
  eof,
};

struct Token {
  Tok type;
  size_t pos;
  std::string text;   // as written (a string token: the quoted form)
  bool trim = false;  // left/right delimiter with a trim marker
};

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}
bool is_alnum(char c) {
  return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         static_cast<unsigned char>(c) >= 0x80;
}

// Go's %#U of the character at `at` (ASCII only is spelled out; others by code).
std::string describe_char(std::string_view text, size_t at) {
  unsigned char c = static_cast<unsigned char>(text[at]);
  char buffer[32];
  if (c >= 0x20 && c < 0x7f)
    std::snprintf(buffer, sizeof buffer, "U+%04X '%c'", c, c);
  else
    std::snprintf(buffer, sizeof buffer, "U+%04X", c);
  return buffer;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  std::vector<std::unique_ptr<Node>> parse() {
    lex();
    std::vector<std::unique_ptr<Node>> nodes;
    variables_.push_back({"$"});
    for (;;) {
      if (peek().type == Tok::eof) break;
      auto node = text_or_action();
      if (node.end) fail(std::string("unexpected {{") + (node.is_else ? "else" : "end") + "}}");
      if (node.node) nodes.push_back(std::move(node.node));
    }
    return nodes;
  }

 private:
  struct Item {
    std::unique_ptr<Node> node;
    bool end = false, is_else = false;
  };

  [[noreturn]] void fail(const std::string& message, size_t pos = std::string::npos) const {
    if (pos == std::string::npos) pos = last_pos_;
    size_t line = 1 + std::count(text_.begin(), text_.begin() + std::min(pos, text_.size()), '\n');
    throw TemplateError("template: :" + std::to_string(line) + ": " + message);
  }

  // ---- lexer: the whole text into tokens up front

  void emit(Tok type, size_t start, size_t end) {
    tokens_.push_back({type, start, std::string(text_.substr(start, end - start))});
  }

  void lex() {
    size_t at = 0;
    while (at < text_.size()) {
      size_t open = text_.find("{{", at);
      if (open == std::string_view::npos) open = text_.size();
      size_t text_end = open;
      bool trim_left =
          open + 3 < text_.size() && text_[open + 2] == '-' && is_space(text_[open + 3]);
      if (open < text_.size() && trim_left)
        while (text_end > at && is_space(text_[text_end - 1])) --text_end;
      if (text_end > at) emit(Tok::text, at, text_end);
      if (open == text_.size()) break;
      at = lex_action(open, trim_left);
    }
    tokens_.push_back({Tok::eof, text_.size(), ""});
  }

  // Lexes one action from its "{{" and returns where the text after it starts.
  size_t lex_action(size_t open, bool trim_left) {
    size_t at = open + 2 + (trim_left ? 2 : 0);
    // A comment is the whole action: {{/* ... */}} (with optional trim markers).
    if (text_.compare(at, 2, "/*") == 0) {
      size_t close = text_.find("*/", at + 2);
      if (close == std::string_view::npos) {
        last_pos_ = open;
        fail("unclosed comment");
      }
      at = close + 2;
      bool trim_right = false;
      if (at < text_.size() && is_space(text_[at]) && text_.compare(at + 1, 3, "-}}") == 0) {
        trim_right = true;
        at += 4;
      } else if (text_.compare(at, 2, "}}") == 0) {
        at += 2;
      } else {
        last_pos_ = open;
        fail("comment ends before closing delimiter");
      }
      return trim_right ? skip_space(at) : at;
    }
    tokens_.push_back({Tok::left, open, "{{", trim_left});
    int parens = 0;
    for (;;) {
      if (at >= text_.size()) {
        last_pos_ = open;
        fail("unclosed action");
      }
      char c = text_[at];
      if (text_.compare(at, 2, "}}") == 0) {
        if (parens > 0) {
          last_pos_ = at;
          fail("unclosed left paren");
        }
        tokens_.push_back({Tok::right, at, "}}"});
        return at + 2;
      }
      if (is_space(c)) {
        size_t start = at;
        while (at < text_.size() && is_space(text_[at])) ++at;
        if (text_.compare(at, 3, "-}}") == 0) {
          if (parens > 0) {
            last_pos_ = at;
            fail("unclosed left paren");
          }
          tokens_.push_back({Tok::right, at, "}}", true});
          return skip_space(at + 3);
        }
        emit(Tok::space, start, at);
        continue;
      }
      size_t start = at;
      switch (c) {
        case '|':
          emit(Tok::pipe, at, at + 1);
          ++at;
          continue;
        case '(':
          ++parens;
          emit(Tok::lparen, at, at + 1);
          ++at;
          continue;
        case ')':
          if (--parens < 0) {
            last_pos_ = at;
            fail("unexpected right paren");
          }
          emit(Tok::rparen, at, at + 1);
          ++at;
          continue;
        case ',':
          emit(Tok::comma, at, at + 1);
          ++at;
          continue;
        case '=':
          emit(Tok::assign, at, at + 1);
          ++at;
          continue;
        case ':':
          if (text_.compare(at, 2, ":=") != 0) {
            last_pos_ = at;
            fail("expected :=");
          }
          emit(Tok::declare, at, at + 2);
          at += 2;
          continue;
        case '"':
        case '`':
        case '\'': {
          size_t end = at + 1;
          while (end < text_.size() && text_[end] != c) {
            if (c != '`' && text_[end] == '\\') ++end;
            if (c != '`' && end < text_.size() && text_[end] == '\n') break;
            ++end;
          }
          if (end >= text_.size() || text_[end] != c) {
            last_pos_ = at;
            fail(c == '"'   ? "unterminated quoted string"
                 : c == '`' ? "unterminated raw quoted string"
                            : "unterminated character constant");
          }
          emit(c == '\'' ? Tok::number : Tok::string, at, end + 1);
          at = end + 1;
          continue;
        }
        case '$':
        case '.': {
          ++at;
          while (at < text_.size() && is_alnum(text_[at])) ++at;
          if (c == '.' && at == start + 1) {
            if (at < text_.size() && text_[at] >= '0' && text_[at] <= '9') {
              at = lex_number(start);
              continue;
            }
            emit(Tok::dot, start, at);
          } else {
            emit(c == '$' ? Tok::variable : Tok::field, start, at);
          }
          continue;
        }
        default:
          break;
      }
      if (c == '+' || c == '-' || (c >= '0' && c <= '9')) {
        at = lex_number(start);
        continue;
      }
      if (is_alnum(c)) {
        while (at < text_.size() && is_alnum(text_[at])) ++at;
        std::string word(text_.substr(start, at - start));
        static const std::set<std::string> kKeywords = {"if",       "else",  "end",      "range",
                                                        "with",     "break", "continue", "define",
                                                        "template", "block"};
        Tok type = word == "true" || word == "false" ? Tok::boolean
                   : word == "nil"                   ? Tok::nil
                   : kKeywords.count(word)           ? Tok::keyword
                                                     : Tok::identifier;
        emit(type, start, at);
        continue;
      }
      last_pos_ = at;
      fail("unrecognized character in action: " + describe_char(text_, at));
    }
  }

  size_t skip_space(size_t at) const {
    while (at < text_.size() && is_space(text_[at])) ++at;
    return at;
  }

  size_t lex_number(size_t start) {
    size_t at = start;
    if (text_[at] == '+' || text_[at] == '-') ++at;
    while (at < text_.size() && (is_alnum(text_[at]) || text_[at] == '.' ||
                                 ((text_[at] == '+' || text_[at] == '-') &&
                                  (text_[at - 1] == 'e' || text_[at - 1] == 'E' ||
                                   text_[at - 1] == 'p' || text_[at - 1] == 'P'))))
      ++at;
    emit(Tok::number, start, at);
    return at;
  }

  // ---- parser over the tokens

  const Token& peek() const { return tokens_[next_]; }
  const Token& next() {
    const Token& token = tokens_[next_];
    last_pos_ = token.pos;
    if (token.type != Tok::eof) ++next_;
    return token;
  }
  const Token& peek_non_space() {
    while (peek().type == Tok::space) next();
    return peek();
  }
  const Token& next_non_space() {
    while (peek().type == Tok::space) next();
    return next();
  }

  static std::string describe(const Token& token) {
    switch (token.type) {
      case Tok::eof:
        return "EOF";
      case Tok::keyword:
        return "<" + token.text + ">";
      case Tok::space:
        return "space";
      default:
        break;
    }
    std::string quoted = "\"";
    for (char c : token.text.substr(0, 10)) {
      if (c == '"' || c == '\\') quoted += '\\';
      if (c == '\n') {
        quoted += "\\n";
        continue;
      }
      quoted += c;
    }
    return quoted + (token.text.size() > 10 ? "\"..." : "\"");
  }

  [[noreturn]] void unexpected(const Token& token, const std::string& context) {
    fail("unexpected " + describe(token) + " in " + context, token.pos);
  }

  Item text_or_action() {
    const Token& token = next_non_space();
    Item item;
    if (token.type == Tok::text) {
      item.node = std::make_unique<Node>();
      item.node->kind = Node::Kind::text;
      item.node->pos = token.pos;
      item.node->text = token.text;  // the lexer applied the trim markers
      return item;
    }
    if (token.type != Tok::left) unexpected(token, "input");
    return action();
  }

  // After "{{".
  Item action() {
    const Token& token = peek_non_space();
    Item item;
    if (token.type == Tok::keyword) {
      std::string word = token.text;
      size_t pos = token.pos;
      next();
      if (word == "end" || word == "else") {
        item.end = true;
        item.is_else = word == "else";
        if (item.is_else) {
          // else if / else with: the rest of the action is the nested control's head.
          const Token& after = peek_non_space();
          if (after.type == Tok::keyword && (after.text == "if" || after.text == "with")) {
            else_chain_ = after.text;
            return item;
          }
        }
        expect_right(word);
        return item;
      }
      if (word == "if" || word == "with" || word == "range") {
        item.node = control(word, pos);
        return item;
      }
      if (word == "break" || word == "continue") {
        if (range_depth_ == 0) fail("{{" + word + "}} outside {{range}}", pos);
        expect_right(word);
        item.node = std::make_unique<Node>();
        item.node->kind = word == "break" ? Node::Kind::break_ : Node::Kind::continue_;
        item.node->pos = pos;
        return item;
      }
      fail("{{" + word + "}} is not supported", pos);
    }
    item.node = std::make_unique<Node>();
    item.node->kind = Node::Kind::action;
    item.node->pos = token.pos;
    item.node->pipeline = pipeline("command", Tok::right);
    return item;
  }

  void expect_right(const std::string& context) {
    const Token& token = next_non_space();
    if (token.type != Tok::right) unexpected(token, context);
  }

  std::unique_ptr<Node> control(const std::string& word, size_t pos) {
    // Nested blocks recurse here as parentheses do in term(): the same bound.
    if (++depth_ > kMaxDepth) fail("max expression depth exceeded", pos);
    struct Leave {
      int& depth;
      ~Leave() { --depth; }
    } leave{depth_};
    auto node = std::make_unique<Node>();
    node->kind = word == "if"     ? Node::Kind::if_
                 : word == "with" ? Node::Kind::with
                                  : Node::Kind::range;
    node->pos = pos;
    variables_.push_back({});
    node->pipeline = pipeline(word, Tok::right);
    if (word == "range") ++range_depth_;
    Item end = item_list(node->list);
    if (word == "range") --range_depth_;
    if (end.is_else) {
      if (!else_chain_.empty()) {
        // {{else if ...}}: a nested control that shares this one's {{end}}.
        std::string chained = else_chain_;
        else_chain_.clear();
        const Token& keyword = next_non_space();
        variables_.pop_back();
        variables_.push_back({});
        node->else_list.push_back(control(chained, keyword.pos));
        variables_.pop_back();
        return node;
      }
      Item final_end = item_list(node->else_list);
      if (final_end.is_else) fail("expected end; found {{else}}");
    }
    variables_.pop_back();
    return node;
  }

  // Nodes up to {{end}} or {{else}}; returns which one.
  Item item_list(std::vector<std::unique_ptr<Node>>& list) {
    for (;;) {
      if (peek_non_space().type == Tok::eof) fail("unexpected EOF");
      Item item = text_or_action();
      if (item.end) return item;
      if (item.node) list.push_back(std::move(item.node));
    }
  }

  bool declared(const std::string& name) const {
    for (const auto& scope : variables_)
      if (std::find(scope.begin(), scope.end(), name) != scope.end()) return true;
    return false;
  }

  std::shared_ptr<Pipeline> pipeline(const std::string& context, Tok end) {
    auto pipe = std::make_shared<Pipeline>();
    pipe->pos = peek_non_space().pos;
    // Declarations: $x := / $x = / $i, $e :=
    if (peek_non_space().type == Tok::variable) {
      size_t saved = next_;
      const Token& variable = next();
      std::string name = variable.text;
      const Token& after = peek_non_space();
      if (after.type == Tok::declare || after.type == Tok::assign) {
        pipe->assign = after.type == Tok::assign;
        next();
        pipe->variables.push_back(name);
      } else if (after.type == Tok::comma && context == "range") {
        next();
        const Token& second = next_non_space();
        if (second.type != Tok::variable) fail("range can only initialize variables");
        pipe->variables.push_back(name);
        pipe->variables.push_back(second.text);
        const Token& op = next_non_space();
        if (op.type != Tok::declare && op.type != Tok::assign) unexpected(op, context);
        pipe->assign = op.type == Tok::assign;
      } else if (after.type == Tok::comma) {
        fail("too many declarations in " + context);
      } else {
        next_ = saved;
      }
      if (pipe->assign) {
        for (const auto& v : pipe->variables)
          if (!declared(v)) fail("undefined variable \"" + v + "\"");
      } else {
        for (const auto& v : pipe->variables) variables_.back().push_back(v);
      }
    }
    for (;;) {
      const Token& token = next_non_space();
      if (token.type == end) {
        if (pipe->commands.empty()) fail("missing value for " + context);
        for (size_t i = 1; i < pipe->commands.size(); ++i) {
          auto kind = pipe->commands[i].operands.front().kind;
          if (kind == Operand::Kind::literal || kind == Operand::Kind::dot ||
              (kind == Operand::Kind::pipeline && pipe->commands[i].operands.size() == 1 &&
               pipe->commands[i].operands.front().fields.empty()))
            fail("non executable command in pipeline stage " + std::to_string(i + 1));
        }
        pipe->text = std::string(text_.substr(pipe->pos, token.pos - pipe->pos));
        while (!pipe->text.empty() && is_space(pipe->text.back())) pipe->text.pop_back();
        return pipe;
      }
      switch (token.type) {
        case Tok::boolean:
        case Tok::dot:
        case Tok::field:
        case Tok::identifier:
        case Tok::number:
        case Tok::nil:
        case Tok::string:
        case Tok::variable:
        case Tok::lparen:
          --next_;
          pipe->commands.push_back(command(end));
          break;
        default:
          unexpected(token, context);
      }
    }
  }

  Command command(Tok end) {
    Command cmd;
    cmd.pos = peek_non_space().pos;
    for (;;) {
      peek_non_space();
      if (auto operand = this->operand()) cmd.operands.push_back(std::move(*operand));
      const Token& token = next();
      if (token.type == Tok::space) continue;
      if (token.type == Tok::right || token.type == Tok::rparen) {
        --next_;
      } else if (token.type != Tok::pipe) {
        unexpected(token, "operand");
      }
      break;
    }
    if (cmd.operands.empty()) fail("missing value for command");
    size_t last = next_ > 0 ? tokens_[next_ - 1].pos : cmd.pos;
    const Token& after = peek();
    size_t stop = after.type == Tok::pipe ? after.pos : std::max(last, after.pos);
    cmd.text = std::string(text_.substr(cmd.pos, stop - cmd.pos));
    while (!cmd.text.empty() && (is_space(cmd.text.back()) || cmd.text.back() == '|'))
      cmd.text.pop_back();
    (void)end;
    return cmd;
  }

  std::optional<Operand> operand() {
    std::optional<Operand> term = this->term();
    if (!term) return term;
    while (peek().type == Tok::field) {
      if (term->kind == Operand::Kind::literal || term->kind == Operand::Kind::dot)
        fail("unexpected . after term \"" + term->text + "\"");
      const Token& field = next();
      term->fields.push_back(field.text.substr(1));
      term->text += field.text;
    }
    return term;
  }

  std::optional<Operand> term() {
    const Token& token = next_non_space();
    Operand op;
    op.pos = token.pos;
    op.text = token.text;
    switch (token.type) {
      case Tok::identifier:
        if (!is_function(token.text)) fail("function \"" + token.text + "\" not defined");
        op.kind = Operand::Kind::identifier;
        op.name = token.text;
        return op;
      case Tok::dot:
        op.kind = Operand::Kind::dot;
        return op;
      case Tok::nil:
        op.kind = Operand::Kind::literal;
        op.literal = nullptr;
        return op;
      case Tok::variable:
        if (!declared(token.text)) fail("undefined variable \"" + token.text + "\"");
        op.kind = Operand::Kind::variable;
        op.name = token.text;
        return op;
      case Tok::field:
        op.kind = Operand::Kind::field;
        op.fields.push_back(token.text.substr(1));
        return op;
      case Tok::boolean:
        op.kind = Operand::Kind::literal;
        op.literal = token.text == "true";
        return op;
      case Tok::number:
        op.kind = Operand::Kind::literal;
        op.literal = parse_number(token.text);
        return op;
      case Tok::string:
        op.kind = Operand::Kind::literal;
        op.literal = unquote(token.text);
        return op;
      case Tok::lparen: {
        if (++depth_ > kMaxDepth) fail("max expression depth exceeded");
        op.kind = Operand::Kind::pipeline;
        op.pipeline = pipeline("parenthesized pipeline", Tok::rparen);
        --depth_;
        op.text = "(" + op.pipeline->text + ")";
        return op;
      }
      default:
        --next_;
        return std::nullopt;
    }
  }

  Value parse_number(const std::string& text) {
    if (text.size() >= 3 && text.front() == '\'') {
      std::string inner = unquote("\"" + text.substr(1, text.size() - 2) + "\"");
      if (inner.empty()) fail("malformed character constant: " + text);
      unsigned char c = static_cast<unsigned char>(inner[0]);
      if (c < 0x80) return static_cast<int64_t>(c);
      // UTF-8 decode of the first character.
      int32_t rune = 0;
      int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
      rune = c & (0x3f >> extra);
      for (int i = 1; i <= extra && i < static_cast<int>(inner.size()); ++i)
        rune = (rune << 6) | (static_cast<unsigned char>(inner[i]) & 0x3f);
      return static_cast<int64_t>(rune);
    }
    std::string digits;
    for (char c : text)
      if (c != '_') digits += c;
    const char* begin = digits.c_str();
    char* end = nullptr;
    bool is_float = digits.find_first_of(".eEpP") != std::string::npos &&
                    digits.find("0x") == std::string::npos &&
                    digits.find("0X") == std::string::npos;
    if (!is_float) {
      errno = 0;
      long long value = std::strtoll(begin, &end, 0);
      if (end && *end == '\0' && errno == 0 && !digits.empty()) return static_cast<int64_t>(value);
      errno = 0;
      unsigned long long uvalue = std::strtoull(begin, &end, 0);
      if (end && *end == '\0' && errno == 0 && !digits.empty() && digits[0] != '-')
        return static_cast<uint64_t>(uvalue);
    }
    double value = std::strtod(begin, &end);
    if (digits.empty() || !end || *end != '\0') fail("bad number syntax: \"" + text + "\"");
    return value;
  }

  std::string unquote(const std::string& quoted) {
    if (quoted.front() == '`') return quoted.substr(1, quoted.size() - 2);
    std::string out;
    for (size_t i = 1; i + 1 < quoted.size(); ++i) {
      char c = quoted[i];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i + 2 >= quoted.size()) fail("invalid syntax");
      char e = quoted[++i];
      auto hex = [&](size_t count) -> uint32_t {
        if (i + count >= quoted.size()) fail("invalid syntax");
        uint32_t v = 0;
        for (size_t k = 0; k < count; ++k) {
          char h = quoted[++i];
          int d = h >= '0' && h <= '9'   ? h - '0'
                  : h >= 'a' && h <= 'f' ? h - 'a' + 10
                  : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                         : -1;
          if (d < 0) fail("invalid syntax");
          v = v * 16 + static_cast<uint32_t>(d);
        }
        return v;
      };
      auto utf8 = [&](uint32_t rune) {
        if (rune > 0x10ffff || (rune >= 0xd800 && rune < 0xe000)) fail("invalid syntax");
        if (rune < 0x80) {
          out += static_cast<char>(rune);
        } else if (rune < 0x800) {
          out += static_cast<char>(0xc0 | (rune >> 6));
          out += static_cast<char>(0x80 | (rune & 0x3f));
        } else if (rune < 0x10000) {
          out += static_cast<char>(0xe0 | (rune >> 12));
          out += static_cast<char>(0x80 | ((rune >> 6) & 0x3f));
          out += static_cast<char>(0x80 | (rune & 0x3f));
        } else {
          out += static_cast<char>(0xf0 | (rune >> 18));
          out += static_cast<char>(0x80 | ((rune >> 12) & 0x3f));
          out += static_cast<char>(0x80 | ((rune >> 6) & 0x3f));
          out += static_cast<char>(0x80 | (rune & 0x3f));
        }
      };
      switch (e) {
        case 'a':
          out += '\a';
          break;
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
        case 'v':
          out += '\v';
          break;
        case '\\':
          out += '\\';
          break;
        case '"':
          out += '"';
          break;
        case '\'':
          out += '\'';
          break;
        case 'x':
          out += static_cast<char>(hex(2));
          break;
        case 'u':
          utf8(hex(4));
          break;
        case 'U':
          utf8(hex(8));
          break;
        default:
          if (e >= '0' && e <= '7' && i + 2 < quoted.size()) {
            int v = 0;
            for (int k = 0; k < 3; ++k, ++i) {
              char o = quoted[i];
              if (o < '0' || o > '7') fail("invalid syntax");
              v = v * 8 + (o - '0');
            }
            --i;
            if (v > 255) fail("invalid syntax");
            out += static_cast<char>(v);
            break;
          }
          fail("invalid syntax");
      }
    }
    return out;
  }

  static bool is_function(const std::string& name) {
    static const std::set<std::string> kFunctions = {
        "and",  "or",   "not",  "len",   "index", "slice", "print", "printf",   "println",
        "eq",   "ne",   "lt",   "le",    "gt",    "ge",    "html",  "js",       "urlquery",
        "call", "json", "join", "split", "lower", "upper", "title", "truncate", "pad"};
    return kFunctions.count(name) > 0;
  }

  std::string_view text_;
  std::vector<Token> tokens_;
  size_t next_ = 0;
  size_t last_pos_ = 0;
  int depth_ = 0;
  int range_depth_ = 0;
  std::string else_chain_;
  std::vector<std::vector<std::string>> variables_;
};

}  // namespace

Template::Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;
Template::~Template() = default;

Template Template::parse(std::string_view text) {
  Template parsed;
  parsed.text_ = std::string(text);
  parsed.nodes_ = Parser(parsed.text_).parse();
  return parsed;
}

}  // namespace slipway::gotemplate
