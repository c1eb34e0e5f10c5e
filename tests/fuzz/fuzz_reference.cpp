// Image references (store::Reference::parse, familiar_reference) and every way of printing one.
#include "store/reference.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slipway;
  fuzz::expect_clean_errors([&] {
    auto ref = store::Reference::parse(fuzz::as_text(data, size));
    std::string all = ref.name() + ref.familiar_name() + ref.string() + ref.familiar_string() +
                      ref.tag_or_digest() + ref.endpoint_host();
    (void)ref.is_plain_http_default();
    (void)all;
    // What a reference prints must parse again to the same reference.
    auto again = store::Reference::parse(ref.string());
    if (again.string() != ref.string()) {
      std::cerr << "finding: " << ref.string() << " reparses as " << again.string() << "\n";
      std::abort();
    }
  });
  fuzz::expect_clean_errors([&] { (void)store::familiar_reference(fuzz::as_text(data, size)); });
  return 0;
}
