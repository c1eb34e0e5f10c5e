// .dockerignore matching (builder/dockerignore.h). Input: the .dockerignore text, a NUL, then
// context paths one a line. Each path is matched with and without parent state, and walked from
// the root down as a build context walk does; each pattern also goes through glob_match and
// clean_path.
#include "builder/dockerignore.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slipway;
  auto parts = fuzz::split(fuzz::as_text(data, size), '\0', 2);
  std::vector<std::string_view> paths;
  for (std::string_view rest = parts[1]; !rest.empty();) {
    size_t end = rest.find('\n');
    paths.push_back(rest.substr(0, end));
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
  }
  fuzz::expect_clean_errors([&] {
    for (const auto& pattern : builder::IgnoreRules::read_patterns(parts[0])) {
      (void)builder::clean_path(pattern);
      (void)builder::has_wildcards(pattern);
      for (auto path : paths) {
        try {
          (void)builder::glob_match(pattern, path);
        } catch (const Error&) {
          break;  // a malformed pattern: the same for every name
        }
      }
    }
  });
  fuzz::expect_clean_errors([&] {
    auto rules = builder::IgnoreRules::parse(parts[0]);
    (void)rules.patterns();
    for (auto path : paths) {
      std::string cleaned = builder::clean_path(path);
      (void)rules.excluded(cleaned);
      (void)rules.may_reinclude_below(cleaned);
      // Walk from the root down, handing each directory's state to its child.
      builder::IgnoreRules::MatchState state;
      std::string prefix;
      for (std::string_view rest = cleaned; !rest.empty();) {
        size_t slash = rest.find('/');
        prefix += (prefix.empty() ? "" : "/") + std::string(rest.substr(0, slash));
        builder::IgnoreRules::MatchState child;
        (void)rules.excluded(prefix, state, &child);
        state = std::move(child);
        rest.remove_prefix(slash == std::string_view::npos ? rest.size() : slash + 1);
      }
      (void)rules.state_for(cleaned);
    }
  });
  return 0;
}
