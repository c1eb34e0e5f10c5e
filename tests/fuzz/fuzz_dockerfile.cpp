// Dockerfile text -> grammar::parse_dockerfile -> the reference dump and `slipway parse
// --format json`'s JSON (the CLI's own to_json, compiled in from cli/parse_commands.cpp).
#include "cli/parse_commands.cpp"  // NOLINT: its anonymous-namespace to_json is what we fuzz
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slipway;
  fuzz::expect_clean_errors([&] {
    ast::Dockerfile dockerfile = grammar::parse_dockerfile(fuzz::as_text(data, size));
    std::string dumped = grammar::dump(dockerfile);
    for (const auto& instruction : dockerfile.instructions) dumped += grammar::dump(instruction);
    std::string json_text =
        cli::to_json(dockerfile).dump(2, ' ', false, cli::OrderedJson::error_handler_t::replace);
    if (dumped.size() + json_text.size() == 0 && !dockerfile.instructions.empty()) std::abort();
  });
  return 0;
}
