#include "builder/dockerignore.h"

#include <algorithm>
#include <system_error>

#include "common/error.h"
#include "common/fs.h"

namespace slipway::builder {
namespace fs = std::filesystem;

namespace {

// ---- UTF-8 -----------------------------------------------------------------------------------

// Decodes UTF-8 into code points; an invalid byte becomes 0xDC00+byte so it only equals itself.
std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool ok = len > 0 && i + static_cast<size_t>(len) <= s.size();
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (int k = 1; ok && k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((cc & 0xc0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (!ok) {
      out.push_back(0xDC00 + c);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += static_cast<size_t>(len);
  }
  return out;
}

// ---- compiled glob tokens --------------------------------------------------------------------

struct Token {
  enum Kind { literal, star, any_one, any_dirs, any_tail, char_class };
  Token(Kind k, char32_t c = 0) : kind(k), ch(c) {}
  Kind kind;
  char32_t ch;
  bool negated = false;
  std::vector<std::pair<char32_t, char32_t>> ranges;
};

bool class_matches(const Token& t, char32_t c) {
  bool in = std::any_of(t.ranges.begin(), t.ranges.end(),
                        [c](const auto& r) { return r.first <= c && c <= r.second; });
  return in != t.negated;
}

// Full-string match of `s` against the token sequence, as a position-set simulation (no
// backtracking blow-up).
bool match_tokens(const std::vector<Token>& tokens, const std::u32string& s) {
  const size_t n = s.size();
  std::vector<char> cur(n + 1, 0), next(n + 1, 0);
  cur[0] = 1;
  for (const Token& t : tokens) {
    std::fill(next.begin(), next.end(), 0);
    bool any = false;
    switch (t.kind) {
      case Token::literal:
      case Token::any_one:
      case Token::char_class:
        for (size_t i = 0; i < n; ++i) {
          if (!cur[i]) continue;
          char32_t c = s[i];
          bool ok = t.kind == Token::literal   ? c == t.ch
                    : t.kind == Token::any_one ? c != U'/'
                                               : class_matches(t, c);
          if (ok) next[i + 1] = 1;
        }
        break;
      case Token::star: {  // [^/]*
        bool run = false;
        for (size_t i = 0; i <= n; ++i) {
          run = run || cur[i];
          next[i] = run;
          if (i < n && s[i] == U'/') run = false;
        }
        break;
      }
      case Token::any_tail: {  // .*
        bool run = false;
        for (size_t i = 0; i <= n; ++i) {
          run = run || cur[i];
          next[i] = run;
        }
        break;
      }
      case Token::any_dirs: {  // (.*/)?
        bool seen = false;
        for (size_t i = 0; i <= n; ++i) {
          next[i] = cur[i] || (seen && i > 0 && s[i - 1] == U'/');
          seen = seen || cur[i];
        }
        break;
      }
    }
    for (char v : next) any = any || v;
    if (!any) return false;
    std::swap(cur, next);
  }
  return cur[n] != 0;
}

[[noreturn]] void bad_pattern(std::string_view pattern) {
  throw Error("bad pattern \"" + std::string(pattern) + "\": syntax error in pattern");
}

// Go filepath.Match syntax check (it rejects the whole pattern, even parts a match never reaches).
bool glob_syntax_ok(const std::u32string& p) {
  size_t k = 0;
  const size_t n = p.size();
  auto get_esc = [&]() -> bool {
    if (k >= n || p[k] == U'-' || p[k] == U']') return false;
    if (p[k] == U'\\') {
      ++k;
      if (k >= n) return false;
    }
    ++k;
    return k < n;
  };
  while (k < n) {
    char32_t c = p[k];
    if (c == U'\\') {
      k += 2;
      if (k > n) return false;
    } else if (c == U'[') {
      ++k;
      if (k < n && p[k] == U'^') ++k;
      int nrange = 0;
      for (;;) {
        if (k < n && p[k] == U']' && nrange > 0) {
          ++k;
          break;
        }
        if (!get_esc()) return false;
        if (p[k] == U'-') {
          ++k;
          if (!get_esc()) return false;
        }
        ++nrange;
      }
    } else {
      ++k;
    }
  }
  return true;
}

// Parses a class starting after '[' at p[k]; the syntax was already checked.
Token parse_class(const std::u32string& p, size_t& k) {
  Token t{Token::char_class};
  if (k < p.size() && p[k] == U'^') {
    t.negated = true;
    ++k;
  }
  auto esc = [&]() {
    if (p[k] == U'\\') ++k;
    return p[k++];
  };
  while (k < p.size()) {
    if (p[k] == U']' && !t.ranges.empty()) {
      ++k;
      break;
    }
    char32_t lo = esc();
    char32_t hi = lo;
    if (k < p.size() && p[k] == U'-') {
      ++k;
      hi = esc();
    }
    t.ranges.emplace_back(lo, hi);
  }
  return t;
}

// Go filepath.Match tokens.
std::vector<Token> compile_glob(const std::u32string& p) {
  std::vector<Token> tokens;
  size_t k = 0;
  while (k < p.size()) {
    char32_t c = p[k++];
    if (c == U'*') {
      while (k < p.size() && p[k] == U'*') ++k;
      tokens.push_back({Token::star});
    } else if (c == U'?') {
      tokens.push_back({Token::any_one});
    } else if (c == U'[') {
      tokens.push_back(parse_class(p, k));
    } else if (c == U'\\' && k < p.size()) {
      tokens.push_back({Token::literal, p[k++]});
    } else {
      tokens.push_back({Token::literal, c});
    }
  }
  return tokens;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

// ---- public helpers --------------------------------------------------------------------------

std::string clean_path(std::string_view path) {
  if (path.empty()) return ".";
  const bool rooted = path.front() == '/';
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view part = path.substr(i, j - i);
    i = j + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else if (!rooted) {
        parts.push_back(part);
      }
      continue;
    }
    parts.push_back(part);
  }
  std::string out = rooted ? "/" : "";
  for (size_t k = 0; k < parts.size(); ++k) {
    if (k > 0) out += '/';
    out += parts[k];
  }
  return out.empty() ? "." : out;
}

bool glob_match(std::string_view pattern, std::string_view name) {
  std::u32string p = decode(pattern);
  if (!glob_syntax_ok(p)) bad_pattern(pattern);
  return match_tokens(compile_glob(p), decode(name));
}

bool has_wildcards(std::string_view component) {
  for (size_t i = 0; i < component.size(); ++i) {
    char c = component[i];
    if (c == '\\') {
      ++i;
    } else if (c == '*' || c == '?' || c == '[') {
      return true;
    }
  }
  return false;
}

// ---- patternmatcher patterns -----------------------------------------------------------------

struct IgnoreRules::Pattern {
  enum class Type { exact, prefix, suffix, regexp };
  std::string cleaned;
  bool exclusion = false;
  Type type = Type::exact;
  std::vector<Token> tokens;
  size_t dirs = 1;

  bool match(std::string_view path) const {
    switch (type) {
      case Type::exact:
        return path == cleaned;
      case Type::prefix:
        return path.starts_with(std::string_view(cleaned).substr(0, cleaned.size() - 2));
      case Type::suffix: {
        std::string_view suffix = std::string_view(cleaned).substr(2);
        if (path.ends_with(suffix)) return true;
        return !suffix.empty() && suffix.front() == '/' && path == suffix.substr(1);
      }
      case Type::regexp:
        return match_tokens(tokens, decode(path));
    }
    return false;
  }
};

namespace {

bool should_escape(char32_t c) {
  return c == '.' || c == '+' || c == '(' || c == ')' || c == '|' || c == '{' || c == '}' ||
         c == '$';
}

// The regexp patternmatcher builds (Pattern.compile), as tokens, and the match type it picks.
void compile_ignore_pattern(IgnoreRules::Pattern& pat) {
  using Type = IgnoreRules::Pattern::Type;
  std::u32string p = decode(pat.cleaned);
  Type type = Type::exact;
  size_t k = 0;
  for (int i = 0; k < p.size(); ++i) {
    char32_t c = p[k++];
    if (c == U'*') {
      if (k < p.size() && p[k] == U'*') {
        ++k;
        if (k < p.size() && p[k] == U'/') ++k;
        if (k == p.size()) {
          if (type == Type::exact) {
            type = Type::prefix;
          } else {
            pat.tokens.push_back({Token::any_tail});
            type = Type::regexp;
          }
        } else {
          pat.tokens.push_back({Token::any_dirs});
          type = Type::regexp;
        }
        if (i == 0) type = Type::suffix;
      } else {
        pat.tokens.push_back({Token::star});
        type = Type::regexp;
      }
    } else if (c == U'?') {
      pat.tokens.push_back({Token::any_one});
      type = Type::regexp;
    } else if (should_escape(c)) {
      pat.tokens.push_back({Token::literal, c});
    } else if (c == U'\\') {
      if (k < p.size()) {
        pat.tokens.push_back({Token::literal, p[k++]});
        type = Type::regexp;
      } else {
        pat.tokens.push_back({Token::literal, c});
      }
    } else if (c == U'[') {
      pat.tokens.push_back(parse_class(p, k));
      type = Type::regexp;
    } else if (c == U']') {
      pat.tokens.push_back({Token::literal, c});
      type = Type::regexp;
    } else {
      pat.tokens.push_back({Token::literal, c});
    }
  }
  pat.type = type;
  pat.dirs = static_cast<size_t>(std::count(pat.cleaned.begin(), pat.cleaned.end(), '/')) + 1;
}

}  // namespace

IgnoreRules::IgnoreRules(const std::vector<std::string>& patterns, std::string_view origin) {
  for (const std::string& raw : patterns) {
    std::string_view t = trim(raw);
    if (t.empty()) continue;
    std::string p = clean_path(t);
    auto pat = std::make_shared<Pattern>();
    if (p.front() == '!') {
      if (p.size() == 1) {
        throw Error(std::string(origin) + ": illegal exclusion pattern: \"!\"");
      }
      pat->exclusion = true;
      p.erase(0, 1);
      has_exceptions_ = true;
    }
    if (!glob_syntax_ok(decode(p))) {
      throw Error(std::string(origin) + ": bad pattern \"" + p + "\": syntax error in pattern");
    }
    pat->cleaned = p;
    compile_ignore_pattern(*pat);
    if (pat->exclusion) {
      std::string_view base = p;
      if (base.ends_with("/**")) {
        base.remove_suffix(3);
      } else if (base.ends_with("**")) {
        base.remove_suffix(2);
      }
      if (base.find_first_of("*?[\\") != std::string_view::npos) wildcard_exceptions_ = true;
    }
    patterns_.push_back(std::move(pat));
  }
}

std::vector<std::string> IgnoreRules::read_patterns(std::string_view text) {
  std::vector<std::string> out;
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    std::string_view line = text.substr(i, j - i);
    i = j + 1;
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.starts_with('#')) continue;
    line = trim(line);
    if (line.empty()) continue;
    bool invert = line.front() == '!';
    if (invert) line = trim(line.substr(1));
    std::string pattern;
    if (!line.empty()) {
      pattern = clean_path(line);
      if (pattern.size() > 1 && pattern.front() == '/') pattern.erase(0, 1);
    }
    out.push_back(invert ? "!" + pattern : pattern);
  }
  return out;
}

IgnoreRules IgnoreRules::parse(std::string_view text, std::string_view origin) {
  return IgnoreRules(read_patterns(text), origin);
}

IgnoreRules IgnoreRules::load(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return {};
  return parse(read_file(file), file.string());
}

std::vector<std::string> IgnoreRules::patterns() const {
  std::vector<std::string> out;
  for (const auto& p : patterns_) out.push_back((p->exclusion ? "!" : "") + p->cleaned);
  return out;
}

bool IgnoreRules::excluded(std::string_view path, const MatchState& parent,
                           MatchState* state) const {
  bool matched = false;
  const bool have_parent = !parent.matched.empty();
  MatchState own;
  own.matched.assign(patterns_.size(), false);
  for (size_t i = 0; i < patterns_.size(); ++i) {
    const Pattern& pat = *patterns_[i];
    bool match = have_parent && i < parent.matched.size() && parent.matched[i];
    if (!match) {
      if (pat.exclusion != matched) continue;
      match = pat.match(path);
      if (!match && !have_parent) {
        // No parent information: check every parent directory of `path` as well.
        for (size_t slash = path.find('/'); slash != std::string_view::npos;
             slash = path.find('/', slash + 1)) {
          if (pat.match(path.substr(0, slash))) {
            match = true;
            break;
          }
        }
      }
    }
    own.matched[i] = match;
    if (match) matched = !pat.exclusion;
  }
  if (state != nullptr) *state = std::move(own);
  return matched;
}

bool IgnoreRules::excluded(std::string_view path) const {
  std::string cleaned = clean_path(path);
  if (cleaned == "." || patterns_.empty()) return false;
  return excluded(cleaned, MatchState{}, nullptr);
}

IgnoreRules::MatchState IgnoreRules::state_for(std::string_view dir) const {
  MatchState state;
  if (patterns_.empty() || dir.empty() || dir == ".") return state;
  size_t slash = 0;
  for (;;) {
    slash = dir.find('/', slash + 1);
    std::string_view prefix = dir.substr(0, slash);
    MatchState next;
    excluded(prefix, state, &next);
    state = std::move(next);
    if (slash == std::string_view::npos) break;
  }
  return state;
}

bool IgnoreRules::may_reinclude_below(std::string_view dir) const {
  if (!has_exceptions_) return false;
  if (wildcard_exceptions_) return true;
  std::string dir_slash = std::string(dir) + "/";
  return std::any_of(patterns_.begin(), patterns_.end(), [&](const auto& p) {
    return p->exclusion && (p->cleaned + "/").starts_with(dir_slash);
  });
}

std::optional<fs::path> find_ignore_file(const fs::path& dockerfile, const fs::path& context_dir) {
  fs::path df = dockerfile.empty() ? context_dir / "Dockerfile" : dockerfile;
  std::error_code ec;
  fs::path beside = df;
  beside += ".dockerignore";
  if (fs::is_regular_file(beside, ec)) return beside;
  fs::path in_context = context_dir / ".dockerignore";
  if (fs::is_regular_file(in_context, ec)) return in_context;
  return std::nullopt;
}

IgnoreRules load_ignore_rules(const fs::path& dockerfile, const fs::path& context_dir) {
  auto file = find_ignore_file(dockerfile, context_dir);
  return file ? IgnoreRules::load(*file) : IgnoreRules{};
}

}  // namespace slipway::builder
