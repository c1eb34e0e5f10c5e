// Go templates (template/template.h): parse any text, then execute it against a fixed value
// shaped like docker's ps row (strings, numbers, nested objects, an array, a null) with and
// without the header pass, and through docker's --format handling (expand_format, table).
#include "template/format.h"
#include "template/template.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slipway;
  static const gotemplate::Value kRow = gotemplate::Value::parse(R"({
    "ID": "0123456789ab", "Names": "web", "State": "running", "Size": 1234,
    "Labels": {"tier": "web", "a.b": "c"}, "Ports": ["80/tcp", "443/tcp"], "Nil": null,
    "Nested": {"Deep": {"List": [1, 2.5, true, "x"]}}})");
  std::string_view text = fuzz::as_text(data, size);
  fuzz::expect_clean_errors([&] {
    gotemplate::Template parsed = gotemplate::Template::parse(text);
    gotemplate::ExecuteOptions options;
    options.type_name = "*formatter.ContainerContext";
    options.max_range_count = 100000;  // a range over 10^15 is slow in Go too, not a finding
    options.methods["Label"] = [](const gotemplate::Value& row,
                                  const std::vector<gotemplate::Value>& args) {
      if (args.size() != 1 || !args[0].is_string()) return gotemplate::Value("");
      return row["Labels"].value(args[0].get<std::string>(), gotemplate::Value(""));
    };
    fuzz::expect_clean_errors([&] { (void)parsed.execute(kRow, options); });
    options.header = true;
    fuzz::expect_clean_errors([&] { (void)parsed.execute(kRow, options); });
  });
  // As --format: table prefix, escapes, header row and tabwriter alignment.
  fuzz::expect_clean_errors([&] {
    gotemplate::RowFormatter formatter(
        text, "table {{.ID}}\t{{.Names}}", {{"ID", "CONTAINER ID"}, {"Names", "NAMES"}},
        {.type_name = "*formatter.ContainerContext", .max_range_count = 100000});
    (void)formatter.render({kRow, kRow});
  });
  return 0;
}
