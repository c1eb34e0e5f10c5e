// Shell-word expansion (builder/shell_words.h): the first byte picks the escape character
// ('\\' or '`') and which of expand_word / expand_words runs; the rest is the word.
#include "builder/shell_words.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slipway;
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::string_view word = fuzz::as_text(data + 1, size - 1);
  static const builder::Variables vars = {{"hi", "hi"},     {"space", "abc  def"},
                                          {"empty", ""},    {"leading", "  ab c"},
                                          {"PWD", "/home"}, {"special", "$x ${y} \\ ` ' \""}};
  builder::ShellWords words((mode & 1) != 0 ? '`' : '\\');
  fuzz::expect_clean_errors([&] {
    if ((mode & 2) != 0)
      (void)words.expand_words(word, vars);
    else
      (void)words.expand_word(word, vars);
  });
  return 0;
}
