// Word expansion modelled on buildkit's shell lexer (frontend/dockerfile/shell/lex.go) in its
// normal mode. Where buildkit differs from a POSIX shell (patterns without bracket expressions,
// escapes kept in ${V/p/r} replacements, ...) we follow buildkit: a Dockerfile must expand the
// same way here as under `docker build`.
#include "builder/shell_words.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <optional>
#include <utility>

#include "common/error.h"
#include "common/go_quote.h"

namespace slipway::builder {
namespace {

// ---------------------------------------------------------------------------------------------
// UTF-8. Every character with a special meaning is ASCII, so most scanning is bytewise; code
// points matter only where buildkit works on runes: name characters, word splitting on Unicode
// spaces, `?` in patterns, and keeping an escaped multi-byte character whole.

// Length of the UTF-8 sequence starting at text[pos]. Malformed input counts one byte per
// character so that scanning always makes progress.
std::size_t char_length(std::string_view text, std::size_t pos) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  std::size_t length = 1;
  if (lead >= 0xF0 && lead < 0xF8) {
    length = 4;
  } else if (lead >= 0xE0) {
    length = lead < 0xF0 ? 3 : 1;
  } else if (lead >= 0xC0) {
    length = 2;
  }
  if (pos + length > text.size()) return 1;
  for (std::size_t i = 1; i < length; ++i) {
    if ((static_cast<unsigned char>(text[pos + i]) & 0xC0) != 0x80) return 1;
  }
  return length;
}

char32_t decode_char(std::string_view text, std::size_t pos) {
  const std::size_t length = char_length(text, pos);
  const auto lead = static_cast<unsigned char>(text[pos]);
  if (length == 1) return lead;
  static constexpr std::array<unsigned char, 5> kLeadMask = {0, 0, 0x1F, 0x0F, 0x07};
  char32_t code = lead & kLeadMask[length];
  for (std::size_t i = 1; i < length; ++i) {
    code = (code << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
  }
  return code;
}

// Go's unicode.IsSpace: word splitting in ProcessWords uses it, so a no-break space in a
// variable value separates words just as under docker.
bool is_space(char32_t c) {
  switch (c) {
    case U'\t':
    case U'\n':
    case U'\v':
    case U'\f':
    case U'\r':
    case U' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

// Go's unicode.IsLetter || unicode.IsDigit || '_' decides where a $name ends. Carrying the full
// Unicode tables is not worth it for variable names, so non-ASCII characters count as letters
// except for the blocks of punctuation, symbols and spaces that realistically follow a name.
bool is_name_char(char32_t c) {
  if (c < 0x80) {
    return (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z') || (c >= U'0' && c <= U'9') ||
           c == U'_';
  }
  if (c <= 0xBF) return c == 0xAA || c == 0xB5 || c == 0xBA;
  struct Range {
    char32_t first;
    char32_t last;
  };
  static constexpr std::array<Range, 14> kNotLetters = {{
      {0xD7, 0xD7},      // multiplication sign
      {0xF7, 0xF7},      // division sign
      {0x2000, 0x206F},  // general punctuation and spaces
      {0x20A0, 0x20CF},  // currency symbols
      {0x2190, 0x2BFF},  // arrows, math operators, box drawing, dingbats, ...
      {0x3000, 0x3004},  // CJK space and punctuation
      {0x3008, 0x3020},  // CJK brackets
      {0xE000, 0xF8FF},  // private use
      {0xFE30, 0xFE6F},  // CJK compatibility and small forms
      {0xFF01, 0xFF0F},  // fullwidth punctuation
      {0xFF1A, 0xFF20},
      {0xFF3B, 0xFF40},
      {0xFF5B, 0xFF65},
      {0x1F000, 0x1FAFF},  // emoji and pictographs
  }};
  for (const Range& range : kNotLetters) {
    if (c >= range.first && c <= range.last) return false;
  }
  return c < 0xFFF0 || c > 0xFFFF;  // specials, including the replacement character
}

// Shell special parameters ($@, $#, ...). A Dockerfile never sets them, but they still end the
// name after one character so that `$@aaa` is "" followed by "aaa".
bool is_special_parameter(char c) {
  switch (c) {
    case '@':
    case '*':
    case '#':
    case '?':
    case '-':
    case '$':
    case '!':
    case '0':
      return true;
    default:
      return false;
  }
}

bool is_ascii_digit(char c) {
  return c >= '0' && c <= '9';
}

// ---------------------------------------------------------------------------------------------
// Output of an expansion, kept both as one string (ProcessWord) and as words (ProcessWords).
// Only text that came from unquoted source or from a variable may split; quoted and escaped text
// joins the current word even when it is a space.

class Output {
 public:
  void append_splittable(std::string_view text) {
    text_ += text;
    for (std::size_t pos = 0; pos < text.size();) {
      const std::size_t length = char_length(text, pos);
      if (!is_space(decode_char(text, pos))) {
        current_word_ += text.substr(pos, length);
      } else if (!current_word_.empty()) {
        finish_word();
      }
      pos += length;
    }
  }

  void append_literal(std::string_view text) {
    text_ += text;
    current_word_ += text;
  }

  std::string take_text() { return std::move(text_); }

  // An empty quoted string ("") adds no word, as in buildkit (a shell would keep it).
  std::vector<std::string> take_words() {
    if (!current_word_.empty()) finish_word();
    return std::move(words_);
  }

 private:
  void finish_word() {
    words_.push_back(std::move(current_word_));
    current_word_.clear();
  }

  std::string text_;
  std::vector<std::string> words_;
  std::string current_word_;
};

// ---------------------------------------------------------------------------------------------
// Patterns of ${V#p}, ${V%p} and ${V/p/r}. buildkit knows only `*` and `?` (no bracket
// expressions), and like its regexp translation neither wildcard matches a newline.

class ShellPattern {
 public:
  // Throws slipway::Error for an escape buildkit rejects (anything but \* \? \\ \} \/).
  explicit ShellPattern(std::string_view pattern) {
    for (std::size_t pos = 0; pos < pattern.size();) {
      const char c = pattern[pos];
      if (c == '*' || c == '?') {
        tokens_.push_back({c == '*' ? Kind::any_run : Kind::any_char, {}});
        ++pos;
        continue;
      }
      if (c == '\\') {
        ++pos;
        const bool valid = pos < pattern.size() &&
                           std::string_view("*?\\}/").find(pattern[pos]) != std::string_view::npos;
        if (!valid) {
          throw Error("invalid escape '\\" +
                      std::string(pattern.substr(pos, pos < pattern.size() ? 1 : 0)) + "'");
        }
      }
      const std::size_t length = char_length(pattern, pos);
      append_literal(pattern.substr(pos, length));
      pos += length;
    }
  }

  // ends[p] is true when text[start, p) matches the whole pattern. Positions are byte offsets;
  // only character boundaries are ever set.
  std::vector<bool> match_ends(std::string_view text, std::size_t start) const {
    std::vector<bool> reached(text.size() + 1, false);
    reached[start] = true;
    for (const Token& token : tokens_) {
      std::vector<bool> next(text.size() + 1, false);
      bool in_run = false;  // an any_run token is still extending from an earlier position
      for (std::size_t pos = start; pos <= text.size();) {
        const std::size_t length = pos < text.size() ? char_length(text, pos) : 1;
        switch (token.kind) {
          case Kind::literal:
            if (reached[pos] && text.substr(pos).starts_with(token.literal)) {
              next[pos + token.literal.size()] = true;
            }
            break;
          case Kind::any_char:
            if (reached[pos] && pos < text.size() && text[pos] != '\n') next[pos + length] = true;
            break;
          case Kind::any_run:
            in_run = in_run || reached[pos];
            next[pos] = in_run;
            if (pos < text.size() && text[pos] == '\n') in_run = false;
            break;
        }
        pos += length;
      }
      reached = std::move(next);
    }
    return reached;
  }

 private:
  enum class Kind { literal, any_char, any_run };
  struct Token {
    Kind kind;
    std::string literal;
  };

  void append_literal(std::string_view text) {
    if (tokens_.empty() || tokens_.back().kind != Kind::literal) {
      tokens_.push_back({Kind::literal, {}});
    }
    tokens_.back().literal += text;
  }

  std::vector<Token> tokens_;
};

std::vector<std::size_t> char_boundaries(std::string_view text) {
  std::vector<std::size_t> boundaries;
  for (std::size_t pos = 0; pos < text.size(); pos += char_length(text, pos)) {
    boundaries.push_back(pos);
  }
  boundaries.push_back(text.size());
  return boundaries;
}

// The end of the shortest or longest match starting at `start`, if any.
std::optional<std::size_t> match_at(const ShellPattern& pattern, std::string_view text,
                                    std::size_t start, bool longest) {
  const std::vector<bool> ends = pattern.match_ends(text, start);
  std::optional<std::size_t> found;
  for (std::size_t end = start; end <= text.size(); ++end) {
    if (!ends[end]) continue;
    found = end;
    if (!longest) break;
  }
  return found;
}

std::string remove_prefix(std::string_view value, const ShellPattern& pattern, bool longest) {
  const std::optional<std::size_t> end = match_at(pattern, value, 0, longest);
  return std::string(end ? value.substr(*end) : value);
}

std::string remove_suffix(std::string_view value, const ShellPattern& pattern, bool longest) {
  std::vector<std::size_t> starts = char_boundaries(value);
  // The longest suffix starts earliest, so try starts from the left for it, else from the right.
  if (!longest) std::reverse(starts.begin(), starts.end());
  for (const std::size_t start : starts) {
    if (pattern.match_ends(value, start)[value.size()]) return std::string(value.substr(0, start));
  }
  return std::string(value);
}

// Leftmost-longest matching, as buildkit's greedy regexp does. The replacement is inserted as
// is (buildkit's regexp template expansion of `$` in it is not reproduced). As with Go's
// ReplaceAll, an empty match right after a previous match does not count.
std::string replace_matches(std::string_view value, const ShellPattern& pattern,
                            std::string_view replacement, bool replace_all) {
  std::string result;
  std::optional<std::size_t> previous_end;
  bool replaced = false;
  for (std::size_t pos = 0; pos <= value.size();) {
    if (!replaced || replace_all) {
      const std::optional<std::size_t> end = match_at(pattern, value, pos, true);
      if (end && !(*end == pos && previous_end == pos)) {
        result += replacement;
        replaced = true;
        previous_end = *end;
        if (*end > pos) {
          pos = *end;
          continue;
        }
      }
    }
    if (pos == value.size()) break;
    const std::size_t length = char_length(value, pos);
    result += value.substr(pos, length);
    pos += length;
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// The lexer proper: one pass over the source, expanding as it goes.

class Expander {
 public:
  Expander(std::string_view source, const Variables& vars, char escape)
      : source_(source), vars_(vars), escape_(escape) {}

  Output expand() {
    Output output;
    expand_until(std::nullopt, false, output);
    return output;
  }

 private:
  // Expands up to `stop` (consumed) or the end of the source; returns whether `stop` was found.
  // `keep_escapes` leaves escape characters in the output, for patterns: their escapes belong
  // to the pattern syntax (`\*` is a literal star), not to the lexer.
  bool expand_until(std::optional<char> stop, bool keep_escapes, Output& output) {
    while (!at_end()) {
      const char c = peek();
      if (c == stop) {
        ++pos_;
        return true;
      }
      if (c == '$') {
        output.append_splittable(expand_dollar());
      } else if (c == '\'') {
        output.append_literal(single_quoted());
      } else if (c == '"') {
        output.append_literal(double_quoted(keep_escapes));
      } else if (c == escape_) {
        ++pos_;
        if (keep_escapes) output.append_literal(std::string_view(&escape_, 1));
        if (at_end()) break;  // a trailing escape is dropped
        output.append_literal(take_char());
      } else {
        output.append_splittable(take_char());
      }
    }
    return false;
  }

  std::string expand_nested(char stop, bool keep_escapes, std::string_view missing_message) {
    Output output;
    if (!expand_until(stop, keep_escapes, output)) fail(missing_message);
    return output.take_text();
  }

  std::string single_quoted() {
    ++pos_;
    const std::size_t close = source_.find('\'', pos_);
    if (close == std::string_view::npos) fail("unterminated single quote");
    std::string text(source_.substr(pos_, close - pos_));
    pos_ = close + 1;
    return text;
  }

  // Inside double quotes the escape character only escapes `"`, `$` and itself; before anything
  // else it is kept, so "C:\dir" needs no doubling.
  std::string double_quoted(bool keep_escapes) {
    ++pos_;
    std::string text;
    while (true) {
      if (at_end()) fail("unterminated double quote");
      const char c = peek();
      if (c == '"') {
        ++pos_;
        return text;
      }
      if (c == '$') {
        text += expand_dollar();
        continue;
      }
      if (c != escape_) {
        text += take_char();
        continue;
      }
      ++pos_;
      // In a pattern a kept escape that escapes nothing comes out doubled (as in buildkit), so
      // the pattern reads it as the literal character it is inside the quotes.
      if (keep_escapes) text += escape_;
      if (at_end()) continue;
      const char next = peek();
      if (next == '"' || next == '$' || next == escape_) {
        text += take_char();
      } else {
        text += escape_;
      }
    }
  }

  std::string expand_dollar() {
    ++pos_;
    if (at_end() || peek() != '{') {
      const std::string name = read_name();
      return name.empty() ? std::string("$") : lookup(name).value_or("");
    }
    ++pos_;
    if (at_end()) fail("missing '}'");
    if (peek() == '{' || peek() == '}' || peek() == ':') fail("bad substitution");
    const std::string name = read_name();
    if (at_end()) fail("missing '}'");
    const char op = source_[pos_++];
    switch (op) {
      case '}':
        return lookup(name).value_or("");
      case ':':
        return expand_colon_modifier(name);
      case '-':
      case '+':
      case '?':
      case '#':
      case '%':
        return expand_modifier(name, op, false);
      case '/':
        return expand_replacement(name);
      default:
        fail_unsupported(std::string(1, op));
    }
  }

  // ${V:-w}, ${V:+w}, ${V:?w}: like the colon-less forms but an empty value counts as unset.
  std::string expand_colon_modifier(const std::string& name) {
    if (at_end()) fail("missing '}'");
    const char op = source_[pos_++];
    if (op != '-' && op != '+' && op != '?') fail_unsupported(std::string{':', op});
    return expand_modifier(name, op, true);
  }

  std::string expand_modifier(const std::string& name, char op, bool empty_is_unset) {
    const bool is_pattern = op == '#' || op == '%';
    std::string word = expand_nested('}', is_pattern, "missing '}'");
    const std::optional<std::string> value = lookup(name);
    const bool present = value && !(empty_is_unset && value->empty());
    switch (op) {
      case '-':
        return present ? *value : word;
      case '+':
        return present ? word : std::string();
      case '?':
        if (!present) {
          if (word.empty()) {
            word = value ? "is not allowed to be empty" : "is not allowed to be unset";
          }
          fail(name + ": " + word);
        }
        return *value;
      default: {
        // `##` and `%%` arrive as a pattern starting with the operator again.
        const bool longest = word.starts_with(op);
        if (longest) word.erase(0, 1);
        const ShellPattern pattern = compile_pattern(word);
        const std::string_view text = value ? std::string_view(*value) : std::string_view();
        return op == '#' ? remove_prefix(text, pattern, longest)
                         : remove_suffix(text, pattern, longest);
      }
    }
  }

  // ${V/p/r} and ${V//p/r}. Escapes stay in the replacement too, as in buildkit.
  std::string expand_replacement(const std::string& name) {
    const bool replace_all = !at_end() && peek() == '/';
    if (replace_all) ++pos_;
    const std::string pattern_text = expand_nested('/', true, "missing '/' in ${}");
    const std::string replacement = expand_nested('}', true, "missing '}'");
    const ShellPattern pattern = compile_pattern(pattern_text);
    return replace_matches(lookup(name).value_or(""), pattern, replacement, replace_all);
  }

  ShellPattern compile_pattern(std::string_view text) const {
    try {
      return ShellPattern(text);
    } catch (const Error& error) {
      fail("invalid pattern (" + std::string(text) + ") in substitution: " + error.what());
    }
  }

  // A name is a run of letters, digits and `_`; but digits alone ($1, $001) and a single special
  // parameter character end it early, as positional and special parameters do in a shell.
  std::string read_name() {
    const std::size_t start = pos_;
    if (at_end()) return {};
    if (is_ascii_digit(peek())) {
      while (!at_end() && is_ascii_digit(peek())) ++pos_;
    } else if (is_special_parameter(peek())) {
      ++pos_;
    } else {
      while (!at_end() && is_name_char(decode_char(source_, pos_))) {
        pos_ += char_length(source_, pos_);
      }
    }
    return std::string(source_.substr(start, pos_ - start));
  }

  std::optional<std::string> lookup(const std::string& name) const {
    const auto found = vars_.find(name);
    if (found == vars_.end()) return std::nullopt;
    return found->second;
  }

  bool at_end() const { return pos_ >= source_.size(); }
  char peek() const { return source_[pos_]; }

  std::string_view take_char() {
    const std::size_t length = char_length(source_, pos_);
    const std::string_view text = source_.substr(pos_, length);
    pos_ += length;
    return text;
  }

  [[noreturn]] void fail(std::string_view message) const {
    // Go's %q, as BuildKit prints it: a word holding quotes stays readable ("\"a b\"").
    throw Error("failed to process " + go_quote(source_) + ": " + std::string(message));
  }

  [[noreturn]] void fail_unsupported(const std::string& modifier) const {
    fail("unsupported modifier (" + modifier + ") in substitution");
  }

  std::string_view source_;
  const Variables& vars_;
  char escape_;
  std::size_t pos_ = 0;
};

}  // namespace

std::string ShellWords::expand_word(std::string_view word, const Variables& vars) const {
  return Expander(word, vars, escape_).expand().take_text();
}

std::vector<std::string> ShellWords::expand_words(std::string_view text,
                                                  const Variables& vars) const {
  return Expander(text, vars, escape_).expand().take_words();
}

}  // namespace slipway::builder
