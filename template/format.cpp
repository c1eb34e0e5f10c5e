#include "template/format.h"

#include <algorithm>
#include <functional>

namespace slipway::gotemplate {
namespace {

size_t display_width(const std::string& text) {
  size_t width = 0;
  for (unsigned char c : text) width += (c & 0xC0) != 0x80;
  return width;
}

std::string trim_spaces(std::string_view text) {
  size_t first = text.find_first_not_of(' ');
  if (first == std::string_view::npos) return "";
  size_t last = text.find_last_not_of(' ');
  return std::string(text.substr(first, last - first + 1));
}

}  // namespace

std::string expand_format(std::string_view format, bool* table) {
  bool is_table = format.substr(0, 5) == "table";
  if (table) *table = is_table;
  std::string text = trim_spaces(is_table ? format.substr(5) : format);
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && (text[i + 1] == 't' || text[i + 1] == 'n')) {
      out += text[i + 1] == 't' ? '\t' : '\n';
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

RowFormatter::RowFormatter(std::string_view format, std::string_view default_table, Value headers,
                           ExecuteOptions options)
    : template_(Template::parse("")), headers_(std::move(headers)), options_(std::move(options)) {
  std::string_view chosen = format.empty() || format == "table" ? default_table : format;
  if (chosen == "json") {
    template_ = Template::parse("{{json .}}");
    return;
  }
  template_ = Template::parse(expand_format(chosen, &table_));
}

std::string RowFormatter::render(const std::vector<Value>& rows) const {
  std::string out;
  if (table_) {
    ExecuteOptions header_options = options_;
    header_options.header = true;
    header_options.type_name.clear();
    out += template_.execute(headers_, header_options) + "\n";
  }
  for (const auto& row : rows) out += template_.execute(row, options_) + "\n";
  return table_ ? tabwrite(out) : out;
}

std::string tabwrite(const std::string& text, size_t min_width, size_t padding) {
  // Lines of cells; a line's cells but the last are terminated by a tab.
  std::vector<std::vector<std::string>> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    std::string line =
        text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::vector<std::string> cells;
    size_t cell_start = 0;
    for (size_t tab; (tab = line.find('\t', cell_start)) != std::string::npos; cell_start = tab + 1)
      cells.push_back(line.substr(cell_start, tab - cell_start));
    cells.push_back(line.substr(cell_start));
    lines.push_back(std::move(cells));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  bool trailing_newline = !text.empty() && text.back() == '\n';
  std::string out;
  std::vector<size_t> widths;
  auto write_lines = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      const auto& cells = lines[i];
      for (size_t j = 0; j < cells.size(); ++j) {
        out += cells[j];
        if (j < widths.size() && j + 1 < cells.size())
          out.append(widths[j] - std::min(widths[j], display_width(cells[j])), ' ');
      }
      if (i + 1 < lines.size() || trailing_newline) out += '\n';
    }
  };
  // Go's tabwriter.format: a column block is a run of lines that have a cell in this column.
  std::function<void(size_t, size_t)> format = [&](size_t line0, size_t line1) {
    size_t column = widths.size();
    for (size_t current = line0; current < line1; ++current) {
      if (column + 1 >= lines[current].size()) continue;
      write_lines(line0, current);
      line0 = current;
      size_t width = min_width;
      for (; current < line1; ++current) {
        if (column + 1 >= lines[current].size()) break;
        width = std::max(width, display_width(lines[current][column]) + padding);
      }
      widths.push_back(width);
      format(line0, current);
      widths.pop_back();
      line0 = current;
      if (current >= line1) return;
    }
    write_lines(line0, line1);
  };
  format(0, lines.size());
  return out;
}

}  // namespace slipway::gotemplate
