// ShellWords against buildkit's own lexer data (envVarTest, wordsTest; one test per case) plus
// hand-written cases for what the data does not cover: escape=`, the pattern modifiers, and
// the error messages.
#include "builder/shell_words.h"

#include <gtest/gtest.h>

#include <fstream>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace slipway::builder {
namespace {

const std::string kDataDir = std::string(SLIPWAY_SHARED_DIR) + "/testdata/buildkit-shell/";

// The value the data files use for "expansion must fail".
constexpr std::string_view kError = "error";

std::string_view trim_left(std::string_view text) {
  const std::size_t first = text.find_first_not_of(" \t\r\n\v\f");
  return first == std::string_view::npos ? std::string_view() : text.substr(first);
}

std::string_view trim(std::string_view text) {
  text = trim_left(text);
  return text.substr(0, text.find_last_not_of(" \t\r\n\v\f") + 1);
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    const std::size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// gtest names allow only [A-Za-z0-9_]: "Line12_he_PWD" for line 12, input "he$PWD". The line
// number keeps names unique; the input part only makes ctest output readable.
std::string case_name(int line, std::string_view input) {
  std::string name = "Line" + std::to_string(line) + "_";
  for (const char c : input) {
    if (name.size() > 40) break;
    const bool ascii_alnum =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (ascii_alnum) {
      name += c;
    } else if (name.back() != '_') {
      name += '_';
    }
  }
  while (name.back() == '_') name.pop_back();
  return name;
}

// --- envVarTest: `PLAT|input|expected`, expanded with expand_word -----------------------------

struct WordCase {
  int line = 0;
  std::string platform;  // A (all), U (unix) or W (windows)
  std::string input;
  std::string expected;
};

void PrintTo(const WordCase& c, std::ostream* out) {
  *out << "line " << c.line << ": \"" << c.input << "\" -> \"" << c.expected << "\"";
}

std::vector<WordCase> load_word_cases() {
  std::vector<WordCase> cases;
  const std::vector<std::string> lines = read_lines(kDataDir + "envVarTest");
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = trim(lines[i]);
    if (line.empty() || lines[i].starts_with('#')) continue;
    const std::vector<std::string_view> fields = split(line, '|');
    if (fields.size() != 3) continue;  // counted as missing by DataFiles.HaveAllCases
    cases.push_back({static_cast<int>(i + 1), std::string(trim(fields[0])),
                     std::string(trim(fields[1])), std::string(trim(fields[2]))});
  }
  return cases;
}

// Windows-only cases (case-insensitive names) do not apply to a Linux builder.
std::vector<WordCase> unix_word_cases() {
  std::vector<WordCase> cases = load_word_cases();
  std::erase_if(cases, [](const WordCase& c) { return c.platform == "W"; });
  return cases;
}

class EnvVarTest : public testing::TestWithParam<WordCase> {};

TEST_P(EnvVarTest, ExpandsLikeBuildkit) {
  const WordCase& c = GetParam();
  const Variables vars = {{"PWD", "/home"}, {"SHELL", "bash"}, {"KOREAN", "한국어"}, {"NULL", ""}};
  const ShellWords shell;
  if (c.expected == kError) {
    EXPECT_THROW(shell.expand_word(c.input, vars), Error);
  } else {
    EXPECT_EQ(shell.expand_word(c.input, vars), c.expected);
  }
}

INSTANTIATE_TEST_SUITE_P(BuildkitData, EnvVarTest, testing::ValuesIn(unix_word_cases()),
                         [](const testing::TestParamInfo<WordCase>& param_info) {
                           return case_name(param_info.param.line, param_info.param.input);
                         });

// --- wordsTest: `ENV k=v` lines build up the variables; `input | w1,w2` expand_words ----------

struct WordsCase {
  int line = 0;
  std::string input;
  std::vector<std::string> expected;  // {"error"} when expansion must fail
  Variables vars;                     // the ENV lines above this case
};

void PrintTo(const WordsCase& c, std::ostream* out) {
  *out << "line " << c.line << ": \"" << c.input << "\" ->";
  for (const std::string& word : c.expected) *out << " [" << word << "]";
}

std::vector<WordsCase> load_words_cases() {
  std::vector<WordsCase> cases;
  Variables vars;
  const std::vector<std::string> lines = read_lines(kDataDir + "wordsTest");
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (line.starts_with('#') || trim(line).empty()) continue;
    if (line.starts_with("ENV ")) {
      // Trailing spaces of the value are deliberate (see the comments in the file).
      const std::string_view assignment = line.substr(line.find_first_not_of(' ', 3));
      const std::size_t equals = assignment.find('=');
      vars[std::string(assignment.substr(0, equals))] =
          equals == std::string_view::npos ? "" : std::string(assignment.substr(equals + 1));
      continue;
    }
    const std::size_t bar = line.find('|');
    if (bar == std::string_view::npos) continue;  // counted as missing by DataFiles.HaveAllCases
    WordsCase c{static_cast<int>(i + 1), std::string(trim(line.substr(0, bar))), {}, vars};
    const std::string_view expected = line.substr(bar + 1);
    for (const std::string_view word :
         split(expected.substr(expected.find_first_not_of(' ')), ',')) {
      c.expected.emplace_back(word);
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

class WordsTest : public testing::TestWithParam<WordsCase> {};

TEST_P(WordsTest, SplitsLikeBuildkit) {
  const WordsCase& c = GetParam();
  const ShellWords shell;
  if (c.expected == std::vector<std::string>{std::string(kError)}) {
    EXPECT_THROW(shell.expand_words(c.input, c.vars), Error);
  } else {
    EXPECT_EQ(shell.expand_words(c.input, c.vars), c.expected);
  }
}

INSTANTIATE_TEST_SUITE_P(BuildkitData, WordsTest, testing::ValuesIn(load_words_cases()),
                         [](const testing::TestParamInfo<WordsCase>& param_info) {
                           return case_name(param_info.param.line, param_info.param.input);
                         });

// Guards against the parameterized suites silently shrinking (missing file, format change).
TEST(DataFiles, HaveAllCases) {
  EXPECT_EQ(load_word_cases().size(), 230u) << "in " << kDataDir << "envVarTest";
  EXPECT_EQ(load_words_cases().size(), 24u) << "in " << kDataDir << "wordsTest";
}

// --- Hand-written cases ------------------------------------------------------------------------

std::string expand(std::string_view word, const Variables& vars, char escape = '\\') {
  return ShellWords(escape).expand_word(word, vars);
}

// The message of the Error that expanding `word` throws, or "" when it does not throw.
std::string error_of(std::string_view word, const Variables& vars = {}) {
  try {
    ShellWords().expand_word(word, vars);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(Backtick, EscapesWithBacktickAndKeepsBackslashes) {
  const Variables vars = {{"DIR", "app"}};
  EXPECT_EQ(expand(R"(C:\$DIR\bin)", vars, '`'), R"(C:\app\bin)");
  EXPECT_EQ(expand("`$DIR", vars, '`'), "$DIR");
  EXPECT_EQ(expand("a` b", vars, '`'), "a b");
  EXPECT_EQ(expand("trailing`", vars, '`'), "trailing");
}

TEST(Backtick, InsideDoubleQuotes) {
  const Variables vars = {{"DIR", "app"}};
  EXPECT_EQ(expand(R"("`"quoted`" `$DIR ``")", vars, '`'), R"("quoted" $DIR `)");
  // Before other characters the escape stays, like \ in the default mode.
  EXPECT_EQ(expand(R"("`t\t")", vars, '`'), R"(`t\t)");
}

TEST(Backtick, SplitsWords) {
  const Variables vars = {{"LIST", "a b"}};
  EXPECT_EQ(ShellWords('`').expand_words("x` y $LIST", vars),
            (std::vector<std::string>{"x y", "a", "b"}));
}

TEST(Modifiers, SetVersusEmpty) {
  const Variables vars = {{"SET", "x"}, {"EMPTY", ""}};
  EXPECT_EQ(expand("${EMPTY-w}|${EMPTY:-w}|${UNSET-w}", vars), "|w|w");
  EXPECT_EQ(expand("${EMPTY+w}|${EMPTY:+w}|${SET:+w}", vars), "w||w");
  EXPECT_EQ(expand("${EMPTY?msg}|${SET:?msg}", vars), "|x");
}

TEST(Modifiers, PrefixAndSuffixRemoval) {
  const Variables vars = {{"FILE", "dir/sub/name.tar.gz"}, {"XY", "xxyy"}};
  EXPECT_EQ(expand("${FILE#*/}", vars), "sub/name.tar.gz");
  EXPECT_EQ(expand("${FILE##*/}", vars), "name.tar.gz");
  EXPECT_EQ(expand("${FILE%.*}", vars), "dir/sub/name.tar");
  EXPECT_EQ(expand("${FILE%%.*}", vars), "dir/sub/name");
  EXPECT_EQ(expand("${FILE#???}", vars), "/sub/name.tar.gz");
  EXPECT_EQ(expand("${XY#*x*y}", vars), "y");
  EXPECT_EQ(expand("${XY#*}|${XY##}|${XY%}|${XY#nomatch}", vars), "xxyy|xxyy|xxyy|xxyy");
  EXPECT_EQ(expand("${UNSET#x}", vars), "");
}

TEST(Modifiers, PatternEscapes) {
  EXPECT_EQ(expand(R"(${V%%\**})", {{"V", "xx**"}}), "xx");
  EXPECT_EQ(expand(R"(${V%%\**\*})", {{"V", "a***yy*"}}), "a");
  EXPECT_EQ(expand(R"(${V#?\?})", {{"V", "???y"}}), "?y");
  // Regexp and bracket characters are literal; \} keeps } from closing the substitution.
  EXPECT_EQ(expand(R"(${V#()[]{\}^$.\*\?|\\})", {{"V", R"(()[]{}^$.*?|\x)"}}), "x");
}

TEST(Modifiers, Replacement) {
  const Variables vars = {{"PATHS", "/foo*/*/*.txt"}, {"NEEDLE", R"(\*/)"}, {"TMP", "/tmp/tmp/x"}};
  EXPECT_EQ(expand("${PATHS/$NEEDLE/.} - ${PATHS//$NEEDLE/.}", vars), "/foo.*/*.txt - /foo..*.txt");
  EXPECT_EQ(expand("${TMP/\\/tmp/} - ${TMP//\\/tmp/}", vars), "/tmp/x - /x");
  EXPECT_EQ(expand("${TMP/t*p/T}", vars), "/T/x");  // leftmost, then longest
  EXPECT_EQ(expand("${V//?/.}", {{"V", "/a/b"}}), "....");
  EXPECT_EQ(expand("${V//[ab]/y}", {{"V", "[ab]a"}}), "ya");  // no bracket expressions
  // Escapes stay in the replacement, as in buildkit.
  EXPECT_EQ(expand(R"(${V//\//\/})", {{"V", "/tmp/foo.txt"}}), R"(\/tmp\/foo.txt)");
  EXPECT_EQ(expand("${V///}|${UNSET///}", {{"V", "xxyy"}}), "xxyy|");
  EXPECT_EQ(expand("${V/$EMPTY/ww}", {{"V", "xxyy"}, {"EMPTY", ""}}), "wwxxyy");
}

TEST(Modifiers, NonAsciiValues) {
  const Variables vars = {{"K", "한국어"}};
  EXPECT_EQ(expand("${K#?}|${K%?}|${K/국/-}", vars), "국어|한국|한-어");
}

TEST(Errors, UnterminatedQuotes) {
  EXPECT_EQ(error_of("he'llo"), R"(failed to process "he'llo": unterminated single quote)");
  EXPECT_EQ(error_of(R"("hello\")"),
            R"(failed to process "\"hello\\\"": unterminated double quote)");
}

TEST(Errors, Substitution) {
  EXPECT_EQ(error_of("he${}"), R"(failed to process "he${}": bad substitution)");
  EXPECT_EQ(error_of("${:-x}"), R"(failed to process "${:-x}": bad substitution)");
  EXPECT_EQ(error_of("he${PWD"), R"(failed to process "he${PWD": missing '}')");
  EXPECT_EQ(error_of("${A:-${B}"), R"(failed to process "${A:-${B}": missing '}')");
  EXPECT_EQ(error_of("${A//x}"), R"(failed to process "${A//x}": missing '/' in ${})");
  EXPECT_EQ(error_of("${A:=x}"),
            R"(failed to process "${A:=x}": unsupported modifier (:=) in substitution)");
  EXPECT_EQ(error_of("${A:#x}"),
            R"(failed to process "${A:#x}": unsupported modifier (:#) in substitution)");
  EXPECT_EQ(error_of("${.}"),
            R"(failed to process "${.}": unsupported modifier (.) in substitution)");
  EXPECT_EQ(
      error_of(R"(${A#\x})"),
      R"(failed to process "${A#\\x}": invalid pattern (\x) in substitution: invalid escape '\x')");
}

TEST(Errors, RequiredVariables) {
  const Variables vars = {{"EMPTY", ""}, {"ARG", "x"}};
  EXPECT_EQ(error_of("${V:?set V to the version$ARG}", vars),
            R"(failed to process "${V:?set V to the version$ARG}": V: set V to the versionx)");
  EXPECT_EQ(error_of("${V?}", vars), R"(failed to process "${V?}": V: is not allowed to be unset)");
  EXPECT_EQ(error_of("${EMPTY:?}", vars),
            R"(failed to process "${EMPTY:?}": EMPTY: is not allowed to be empty)");
}

TEST(Names, EndAtTheFirstNonNameCharacter) {
  const Variables vars = {{"A", "1"}, {"A_B2", "2"}, {"이름", "3"}};
  EXPECT_EQ(expand("$A-x $A_B2. $이름/ $ $% ${A}B", vars), "1-x 2. 3/ $ $% 1B");
}

TEST(Words, QuotedValuesDoNotSplit) {
  const Variables vars = {{"V", " a  b "}};
  EXPECT_EQ(ShellWords().expand_words("$V \"$V\" '$V'", vars),
            (std::vector<std::string>{"a", "b", " a  b ", "$V"}));
}

TEST(Words, QuotedAndUnicodeSpaces) {
  const Variables vars = {{"NBSP", "a\u00A0b"}};
  EXPECT_EQ(ShellWords().expand_words("$NBSP \"x\u00A0y\" '' z", vars),
            (std::vector<std::string>{"a", "b", "x\u00A0y", "z"}));
}

}  // namespace
}  // namespace slipway::builder
