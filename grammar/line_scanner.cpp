#include "grammar/line_scanner.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "grammar/grammar.h"

namespace slipway::grammar {
namespace {

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

// unicode.IsSpace restricted to ASCII: Dockerfiles with exotic Unicode spaces in indentation are
// not worth a UTF-8 decoder here.
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// RE2's \s, used by the directive regex: no \v.
bool is_regex_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

std::string_view trim_left(std::string_view s) {
  auto first = std::find_if_not(s.begin(), s.end(), is_space);
  return s.substr(static_cast<std::size_t>(first - s.begin()));
}

bool is_comment(std::string_view line) {
  std::string_view trimmed = trim_left(line);
  return !trimmed.empty() && trimmed.front() == '#';
}

bool is_blank(std::string_view line) {
  return trim_left(line).empty();
}

std::string to_lower(std::string_view s) {
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower;
}

// The result of matching the continuation regex `([^E])E[ \t]*$|^E[ \t]*$` against a line.
struct ContinuationTrim {
  std::string_view text;  // the line with the escape char and what follows it removed
  bool continues = false;
};

ContinuationTrim trim_continuation(std::string_view line, char escape) {
  std::size_t end = line.size();
  while (end > 0 && (line[end - 1] == ' ' || line[end - 1] == '\t')) --end;
  if (end == 0 || line[end - 1] != escape) return {line, false};
  // A doubled escape char at the end is an escaped escape char, not a continuation.
  if (end >= 2 && line[end - 2] == escape) return {line, false};
  return {line.substr(0, end - 1), true};
}

// Recognises parser directives (`# key=value`) at the top of the file. Mirrors BuildKit's
// DirectiveParser: the first line that is not a known directive ends directive parsing for good.
class DirectiveParser {
 public:
  explicit DirectiveParser(ScannedDockerfile& out) : out_(out) {}

  void parse_line(std::string_view line, int line_number) {
    if (done_) return;
    auto directive = match(line);
    if (!directive) {
      done_ = true;
      return;
    }
    auto& [key, value] = *directive;
    if (key != "syntax" && key != "escape" && key != "check") {
      done_ = true;
      return;
    }
    if (std::find(seen_.begin(), seen_.end(), key) != seen_.end()) {
      throw SyntaxError(line_number, 1, "only one " + key + " parser directive can be used");
    }
    seen_.push_back(key);
    if (key == "escape") {
      if (value != "`" && value != "\\") {
        throw SyntaxError(line_number, 1,
                          "invalid escape token '" + value + "' does not match ` or \\");
      }
      out_.escape = value.front();
    } else if (key == "syntax") {
      out_.syntax = value;
    } else {
      out_.check = value;
    }
  }

 private:
  using Directive = std::pair<std::string, std::string>;

  // Hand-written equivalent of `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`, returning the
  // lower-cased key and the value.
  static std::optional<Directive> match(std::string_view line) {
    std::size_t pos = 0;
    auto skip_spaces = [&] {
      while (pos < line.size() && is_regex_space(line[pos])) ++pos;
    };
    if (line.empty() || line[pos++] != '#') return std::nullopt;
    skip_spaces();
    std::size_t key_start = pos;
    if (pos >= line.size() || !std::isalpha(static_cast<unsigned char>(line[pos]))) {
      return std::nullopt;
    }
    while (pos < line.size() && std::isalnum(static_cast<unsigned char>(line[pos]))) ++pos;
    std::string key = to_lower(line.substr(key_start, pos - key_start));
    skip_spaces();
    if (pos >= line.size() || line[pos++] != '=') return std::nullopt;
    std::string_view rest = line.substr(pos);
    if (rest.empty()) return std::nullopt;
    auto first = std::find_if_not(rest.begin(), rest.end(), is_regex_space);
    if (first == rest.end()) {
      // The lazy `(.+?)` needs one character: the regex backtracks to the last blank.
      return Directive{key, std::string(1, rest.back())};
    }
    auto last = std::find_if_not(rest.rbegin(), rest.rend(), is_regex_space).base();
    return Directive{key, std::string(first, last)};
  }

  ScannedDockerfile& out_;
  std::vector<std::string> seen_;
  bool done_ = false;
};

// A physical line as the reference's bufio.Scanner sees it.
struct PhysicalLine {
  std::string_view text;  // trailing '\r's removed, BOM removed from the first line
  std::string_view raw;   // as written, up to and including its '\n' if it has one
};

// Splits on '\n' and enforces the 64 KiB limit.
std::vector<PhysicalLine> split_physical_lines(std::string_view text) {
  std::vector<PhysicalLine> lines;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t newline = text.find('\n', pos);
    std::size_t end = newline == std::string_view::npos ? text.size() : newline;
    std::string_view line = text.substr(pos, end - pos);
    if (line.size() > kMaxLineLength) {
      throw SyntaxError(
          static_cast<int>(lines.size()) + 1, 1,
          "dockerfile line greater than max allowed size of " + std::to_string(kMaxLineLength));
    }
    std::string_view raw = text.substr(pos, std::min(end + 1, text.size()) - pos);
    if (lines.empty() && line.starts_with(kByteOrderMark))
      line.remove_prefix(kByteOrderMark.size());
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    lines.push_back({line, raw});
    pos = end + 1;
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Heredocs. The reference finds them with its shell lexer: the line is split into shell words
// (quotes and escapes kept), and every word matching `^(\d*)<<(-?)\s*([^<]*)$` whose delimiter
// is a single shell word is a heredoc.

struct ShellWord {
  std::string text;
  std::size_t offset = 0;  // of the word's first byte in the lexed text
};

// BuildKit's shell.Lex word splitting (ProcessWords) with unset variables kept as written and no
// variables set, so `$` is an ordinary character. raw_quotes keeps quote characters in the words;
// raw_escapes keeps the escape characters. Throws std::runtime_error for unterminated quotes.
std::vector<ShellWord> shell_words(std::string_view text, bool raw_quotes, bool raw_escapes) {
  std::vector<ShellWord> words;
  std::string word;
  bool in_word = false;
  std::size_t start = 0;
  auto add_raw = [&](std::string_view piece, std::size_t at) {
    if (!in_word) start = at;
    word += piece;
    in_word = true;
  };
  auto finish = [&] {
    if (!word.empty()) words.push_back({std::move(word), start});
    word.clear();
    in_word = false;
  };
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t at = pos;
    const char c = text[pos++];
    if (c == '\'') {
      std::size_t close = text.find('\'', pos);
      if (close == std::string_view::npos) {
        throw std::runtime_error(
            "unexpected end of statement while looking for matching single-quote");
      }
      std::string_view inside = text.substr(pos, close - pos);
      add_raw(raw_quotes ? text.substr(at, close + 1 - at) : inside, at);
      pos = close + 1;
    } else if (c == '"') {
      std::string quoted = raw_quotes ? "\"" : "";
      bool closed = false;
      while (pos < text.size()) {
        char d = text[pos++];
        if (d == '"') {
          closed = true;
          break;
        }
        if (d == '\\' && pos < text.size() &&
            (text[pos] == '"' || text[pos] == '$' || text[pos] == '\\')) {
          if (raw_escapes) quoted += d;
          d = text[pos++];
        }
        quoted += d;
      }
      if (!closed) {
        throw std::runtime_error(
            "unexpected end of statement while looking for matching double-quote");
      }
      if (raw_quotes) quoted += '"';
      add_raw(quoted, at);
    } else if (c == '\\') {
      if (raw_escapes) add_raw("\\", at);
      if (pos == text.size()) break;
      add_raw(text.substr(pos++, 1), at);
    } else if (is_space(c)) {
      if (in_word) finish();
    } else {
      add_raw(std::string_view(&c, 1), at);
    }
  }
  finish();
  return words;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// splitCommand + extractBuilderFlags, reduced to what heredoc detection needs: the keyword
// (lower case) and the arguments after the flags.
std::pair<std::string, std::string_view> keyword_and_arguments(std::string_view line) {
  auto not_space = [](char c) { return !is_space(c); };
  auto begin = std::find_if(line.begin(), line.end(), not_space);
  auto keyword_end = std::find_if(begin, line.end(), is_space);
  std::string keyword = to_lower(std::string_view(begin, keyword_end));
  std::string_view rest(keyword_end, line.end());
  std::size_t pos = 0;
  while (true) {
    while (pos < rest.size() && is_space(rest[pos])) ++pos;
    if (rest.substr(pos, 2) != "--") break;
    // A flag word: quotes group, backslash escapes; a bare `--` ends the flags.
    std::size_t word_start = pos;
    char quote = 0;
    while (pos < rest.size() && (quote != 0 || !is_space(rest[pos]))) {
      char c = rest[pos++];
      if (c == '\\') {
        ++pos;
      } else if (quote == 0 && (c == '\'' || c == '"')) {
        quote = c;
      } else if (c == quote) {
        quote = 0;
      }
    }
    if (rest.substr(word_start, pos - word_start) == "--") break;
  }
  rest = rest.substr(std::min(pos, rest.size()));
  while (!rest.empty() && is_space(rest.back())) rest.remove_suffix(1);
  return {std::move(keyword), rest};
}

// parseJSON's test: a JSON array of strings (then the instruction is in exec form).
bool is_json_string_array(std::string_view arguments) {
  if (!arguments.starts_with('[')) return false;
  nlohmann::json parsed = nlohmann::json::parse(arguments, nullptr, false);
  return parsed.is_array() && std::all_of(parsed.begin(), parsed.end(),
                                          [](const nlohmann::json& v) { return v.is_string(); });
}

// canContainHeredoc: RUN, COPY, ADD in shell form, also as an ONBUILD trigger.
bool can_contain_heredoc(std::string_view line) {
  auto [keyword, arguments] = keyword_and_arguments(line);
  if (keyword == "onbuild") std::tie(keyword, arguments) = keyword_and_arguments(arguments);
  if (keyword != "run" && keyword != "copy" && keyword != "add") return false;
  return !is_json_string_array(arguments);
}

}  // namespace

ast::Position LogicalLine::position_of(std::size_t offset) const {
  auto after = std::upper_bound(
      segments.begin(), segments.end(), offset,
      [](std::size_t value, const LineSegment& segment) { return value < segment.offset; });
  const LineSegment& segment = after == segments.begin() ? segments.front() : *std::prev(after);
  std::size_t clamped = std::min(offset, text.size());
  return {segment.line, segment.column + static_cast<int>(clamped - segment.offset)};
}

std::optional<ast::Heredoc> parse_heredoc_word(std::string_view word) {
  std::size_t pos = 0;
  while (pos < word.size() && is_digit(word[pos])) ++pos;
  std::string_view digits = word.substr(0, pos);
  if (word.substr(pos, 2) != "<<") return std::nullopt;
  pos += 2;
  ast::Heredoc heredoc;
  if (pos < word.size() && word[pos] == '-') {
    heredoc.chomp = true;
    ++pos;
  }
  while (pos < word.size() && is_regex_space(word[pos])) ++pos;
  std::string_view rest = word.substr(pos);
  if (rest.empty() || rest.find('<') != std::string_view::npos) return std::nullopt;
  for (char digit : digits) heredoc.file_descriptor = heredoc.file_descriptor * 10 + (digit - '0');

  // Quoting any part of the delimiter turns expansion off: compare the word with its quotes
  // removed and kept.
  std::vector<ShellWord> unquoted = shell_words(rest, false, false);
  if (unquoted.size() != 1) return std::nullopt;
  std::vector<ShellWord> raw = shell_words(rest, true, false);
  auto quotes = [](const std::string& s) {
    return std::count(s.begin(), s.end(), '\'') + std::count(s.begin(), s.end(), '"');
  };
  heredoc.name = std::move(unquoted.front().text);
  heredoc.expand = raw.size() == 1 && quotes(heredoc.name) == quotes(raw.front().text);
  return heredoc;
}

std::vector<ast::Heredoc> heredocs_in_line(const LogicalLine& line) {
  std::vector<ast::Heredoc> heredocs;
  if (line.text.find("<<") == std::string::npos || !can_contain_heredoc(line.text)) {
    return heredocs;
  }
  std::vector<ShellWord> words;
  try {
    words = shell_words(line.text, true, true);
  } catch (const std::runtime_error&) {
    return heredocs;  // the reference ignores the line's lexing errors: no heredocs then
  }
  for (const ShellWord& word : words) {
    std::optional<ast::Heredoc> heredoc;
    ast::Position at = line.position_of(word.offset);
    try {
      heredoc = parse_heredoc_word(word.text);
    } catch (const std::runtime_error& error) {
      throw SyntaxError(at.line, at.column, error.what());
    }
    if (!heredoc) continue;
    heredoc->position = at;
    heredocs.push_back(std::move(*heredoc));
  }
  return heredocs;
}

ScannedDockerfile scan_lines(std::string_view text) {
  ScannedDockerfile out;
  DirectiveParser directives(out);
  const std::vector<PhysicalLine> lines = split_physical_lines(text);
  out.physical_line_count = static_cast<int>(lines.size());

  for (std::size_t index = 0; index < lines.size(); ++index) {
    const int line_number = static_cast<int>(index) + 1;
    std::string_view trimmed = trim_left(lines[index].text);
    directives.parse_line(trimmed, line_number);
    if (is_comment(trimmed)) continue;

    auto [first_text, continues] = trim_continuation(trimmed, out.escape);
    if (!continues && first_text.empty()) continue;  // blank line between instructions

    LogicalLine logical;
    logical.start_line = line_number;
    logical.text = first_text;
    logical.segments.push_back(
        {0, line_number, static_cast<int>(lines[index].text.size() - trimmed.size()) + 1});

    bool saw_empty_continuation = false;
    while (continues && index + 1 < lines.size()) {
      ++index;
      std::string_view line = lines[index].text;
      // Comments inside a continuation vanish without ending it, even if they end in the
      // escape char; blank lines vanish too but earn the instruction a warning.
      if (is_comment(line)) continue;
      if (is_blank(line)) {
        saw_empty_continuation = true;
        continue;
      }
      auto [piece, more] = trim_continuation(line, out.escape);
      continues = more;
      // Continuation lines keep their indentation: it is part of the instruction text.
      logical.segments.push_back({logical.text.size(), static_cast<int>(index) + 1, 1});
      logical.text += piece;
    }
    if (saw_empty_continuation) {
      out.warnings.push_back(
          {static_cast<int>(index) + 1, "Empty continuation line found in: " + logical.text});
    }

    // Heredoc bodies follow the line, one after the other, each up to its delimiter line.
    logical.heredocs = heredocs_in_line(logical);
    for (ast::Heredoc& heredoc : logical.heredocs) {
      bool terminated = false;
      while (index + 1 < lines.size()) {
        const PhysicalLine& body = lines[++index];
        std::string_view candidate = body.text;
        if (heredoc.chomp) {
          while (candidate.starts_with('\t')) candidate.remove_prefix(1);
        }
        if (candidate == heredoc.name) {
          terminated = true;
          break;
        }
        heredoc.content += body.raw;
      }
      if (!terminated) {
        throw SyntaxError(heredoc.position.line, heredoc.position.column, "unterminated heredoc");
      }
    }
    logical.end_line = static_cast<int>(index) + 1;
    out.lines.push_back(std::move(logical));
  }
  return out;
}

}  // namespace slipway::grammar
