#include "grammar/line_scanner.h"

#include <algorithm>
#include <cctype>

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

// Physical lines as the reference's bufio.Scanner sees them: split on '\n', trailing '\r's
// dropped, BOM removed from the first line, 64 KiB limit enforced.
std::vector<std::string_view> split_physical_lines(std::string_view text) {
  std::vector<std::string_view> lines;
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
    if (lines.empty() && line.starts_with(kByteOrderMark))
      line.remove_prefix(kByteOrderMark.size());
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    lines.push_back(line);
    pos = end + 1;
  }
  return lines;
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

ScannedDockerfile scan_lines(std::string_view text) {
  ScannedDockerfile out;
  DirectiveParser directives(out);
  const std::vector<std::string_view> lines = split_physical_lines(text);
  out.physical_line_count = static_cast<int>(lines.size());

  for (std::size_t index = 0; index < lines.size(); ++index) {
    const int line_number = static_cast<int>(index) + 1;
    std::string_view trimmed = trim_left(lines[index]);
    directives.parse_line(trimmed, line_number);
    if (is_comment(trimmed)) continue;

    auto [first_text, continues] = trim_continuation(trimmed, out.escape);
    if (!continues && first_text.empty()) continue;  // blank line between instructions

    LogicalLine logical;
    logical.start_line = line_number;
    logical.text = first_text;
    logical.segments.push_back(
        {0, line_number, static_cast<int>(lines[index].size() - trimmed.size()) + 1});

    bool saw_empty_continuation = false;
    while (continues && index + 1 < lines.size()) {
      ++index;
      std::string_view line = lines[index];
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
    logical.end_line = static_cast<int>(index) + 1;
    if (saw_empty_continuation) {
      out.warnings.push_back(
          {logical.end_line, "Empty continuation line found in: " + logical.text});
    }
    out.lines.push_back(std::move(logical));
  }
  return out;
}

}  // namespace slipway::grammar
