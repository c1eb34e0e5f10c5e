// WWW-Authenticate header values (registry/session.h parse_www_authenticate): one value a line.
#include "registry/session.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slipway;
  std::vector<std::string> values;
  std::string_view rest = fuzz::as_text(data, size);
  while (!rest.empty()) {
    size_t end = rest.find('\n');
    values.emplace_back(rest.substr(0, end));
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
  }
  fuzz::expect_clean_errors([&] {
    for (const auto& challenge : registry::detail::parse_www_authenticate(values)) {
      if (challenge.scheme.empty()) std::abort();
      for (const auto& [name, value] : challenge.params) (void)(name.size() + value.size());
    }
  });
  return 0;
}
