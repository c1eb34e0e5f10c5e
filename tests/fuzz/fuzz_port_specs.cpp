// `-p` specs (runtime::parse_port_mappings, parse_port_mapping) and how a mapping prints.
#include "runtime/containers.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slipway;
  std::string_view text = fuzz::as_text(data, size);
  fuzz::expect_clean_errors([&] {
    for (const auto& mapping : runtime::parse_port_mappings(text)) {
      (void)mapping.container_key();
      (void)mapping.host_address();
      if (mapping.container_port < 1 || mapping.container_port > 65535) std::abort();
    }
  });
  fuzz::expect_clean_errors([&] { (void)runtime::parse_port_mapping(text).host_address(); });
  return 0;
}
