// docker's --format conventions around the template engine (docker/cli's formatter.Context):
//   ""/"table"      the command's default table
//   "table TEMPLATE" rows of TEMPLATE under a header row, aligned into columns at tabs
//   "json"          each row as one line of JSON ({{json .}})
//   anything else   TEMPLATE once per row, each followed by a newline
// In every form the two-character escapes `\t` and `\n` are a tab and a newline, as docker's are.
// The header row is the same template executed on the header names (field -> "CONTAINER ID"),
// with docker's header functions (json, join, upper, ... return the name unchanged).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "template/template.h"

namespace slipway::gotemplate {

class RowFormatter {
 public:
  // `format` as given to --format; `default_table` the command's table ("table {{.ID}}\t...").
  // `headers` maps each field to its column name. Throws TemplateError for a bad template.
  RowFormatter(std::string_view format, std::string_view default_table, Value headers,
               ExecuteOptions options = {});

  bool is_table() const { return table_; }
  // All rows, rendered (and aligned, for a table). Throws TemplateError when a row fails.
  std::string render(const std::vector<Value>& rows) const;

 private:
  bool table_ = false;
  Template template_;
  Value headers_;
  ExecuteOptions options_;
};

// Go's text/tabwriter as docker sets it up (minwidth 10, tabwidth 1, padding 3, spaces): each
// tab-terminated cell padded to its column's width; a line's last cell is not aligned.
std::string tabwrite(const std::string& text, size_t min_width = 10, size_t padding = 3);

// docker's preprocessing of a --format value: `table` prefix dropped, trimmed, `\t`/`\n` escapes.
std::string expand_format(std::string_view format, bool* table = nullptr);

}  // namespace slipway::gotemplate
