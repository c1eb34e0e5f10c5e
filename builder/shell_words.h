// Shell-word processing as docker applies it to Dockerfile instruction arguments (ENV values,
// EXPOSE ports, FROM images, ...): variable substitution with the ${V:-w}-style modifiers, quote
// removal and escapes, following the reference shell lexer (buildkit frontend/dockerfile/shell).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace slipway::builder {

// Variables in scope for substitution. A variable set to "" is set (it differs from unset for
// ${V-w} and ${V+w}).
using Variables = std::map<std::string, std::string, std::less<>>;

class ShellWords {
 public:
  explicit ShellWords(char escape = '\\') : escape_(escape) {}

  // Expands one word: the result is a single string even where it contains spaces
  // (ProcessWord). Throws slipway::Error with a clear message on bad syntax (unterminated quote,
  // bad substitution, ${V:?msg} on an unset V, ...).
  std::string expand_word(std::string_view word, const Variables& vars) const;

  // Expands and splits into words the way a shell would after expansion (ProcessWords): quoted
  // spaces do not split, spaces from an unquoted variable value do.
  std::vector<std::string> expand_words(std::string_view text, const Variables& vars) const;

 private:
  char escape_;
};

}  // namespace slipway::builder
