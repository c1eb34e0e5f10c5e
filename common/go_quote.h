// Go's strconv.Quote, which docker uses where it prints strings into text other tools compare
// byte for byte: image history entries (`CMD ["a" "b"]`) and the parser's AST dump.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace slipway {

// A double-quoted Go string literal: \" \\ \a \b \f \n \r \t \v escaped, other control bytes and
// invalid UTF-8 as \xHH, non-printable runes as \uHHHH; printable UTF-8 kept as it is.
std::string go_quote(std::string_view text);

// fmt.Sprintf("%q", []string{...}): ["a" "b"].
std::string go_quote_list(const std::vector<std::string>& items);

}  // namespace slipway
