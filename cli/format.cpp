#include "cli/format.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "common/error.h"

namespace slipway::cli {

std::string human_duration(std::chrono::seconds elapsed) {
  long long seconds = elapsed.count();
  long long minutes = seconds / 60;
  long long hours = (seconds + 1800) / 3600;
  auto count = [](long long n, const char* unit) { return std::to_string(n) + " " + unit; };
  if (seconds < 1) return "Less than a second";
  if (seconds == 1) return "1 second";
  if (seconds < 60) return count(seconds, "seconds");
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return count(minutes, "minutes");
  if (hours == 1) return "About an hour";
  if (hours < 48) return count(hours, "hours");
  if (hours < 24 * 7 * 2) return count(hours / 24, "days");
  if (hours < 24 * 30 * 2) return count(hours / 24 / 7, "weeks");
  if (hours < 24 * 365 * 2) return count(hours / 24 / 30, "months");
  return count(hours / 24 / 365, "years");
}

std::string human_size(double size) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  int unit = 0;
  while (size >= 1000 && unit < 5) {
    size /= 1000;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3g%s", size, kUnits[unit]);
  return buffer;
}

std::string human_size4(uint64_t size) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double value = static_cast<double>(size);
  int unit = 0;
  while (value >= 1000 && unit < 5) {
    value /= 1000;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4g%s", value, kUnits[unit]);
  return buffer;
}

std::string time_ago(const std::string& rfc3339) {
  std::tm tm{};
  if (!strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return "N/A";
  auto then = std::chrono::system_clock::from_time_t(timegm(&tm));
  auto elapsed =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - then);
  return human_duration(std::max(elapsed, std::chrono::seconds(0))) + " ago";
}

std::string go_local_time(const std::string& rfc3339) {
  std::tm tm{};
  if (!strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return "N/A";
  std::time_t time = timegm(&tm);
  std::tm local{};
  localtime_r(&time, &local);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S %z %Z", &local);
  return buffer;
}

namespace {

// Characters, not bytes, as Go's tabwriter counts them ("…" is one).
size_t display_width(const std::string& text) {
  size_t width = 0;
  for (unsigned char c : text) width += (c & 0xC0) != 0x80;
  return width;
}

}  // namespace

std::string ellipsis(const std::string& text, size_t width) {
  std::vector<size_t> starts;  // byte offset of each UTF-8 character
  for (size_t i = 0; i < text.size(); ++i)
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) starts.push_back(i);
  if (starts.size() <= width) return text;
  return text.substr(0, starts[width - 1]) + "…";
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], display_width(row[i]));
    }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size())
        line.append(std::max<size_t>(10, widths[i] + 3) - display_width(row[i]), ' ');
    }
    std::cout << line << "\n";
  }
}

void print_formatted(const std::string& format, const std::string& default_table,
                     const gotemplate::Value& headers, const std::vector<gotemplate::Value>& rows,
                     const gotemplate::ExecuteOptions& options, const std::string& prefix) {
  std::string text;
  try {
    gotemplate::RowFormatter formatter(format, default_table, headers, options);
    text = formatter.render(rows);
  } catch (const gotemplate::TemplateError& e) {
    throw Error(prefix + ": " + e.what());
  }
  std::cout << text;
}

void print_each(const std::string& format, const std::vector<gotemplate::Value>& values,
                const std::string& prefix) {
  std::string text;
  try {
    auto parsed = gotemplate::Template::parse(format);  // docker keeps \\t and \\n here
    for (const auto& value : values) text += parsed.execute(value) + "\n";
  } catch (const gotemplate::TemplateError& e) {
    throw Error(prefix + ": " + e.what());
  }
  std::cout << text;
}

}  // namespace slipway::cli
