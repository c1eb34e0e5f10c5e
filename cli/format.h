// docker's ways of printing times, sizes and tables, so output reads (and parses) like docker's.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace slipway::cli {

// units.HumanDuration: "Less than a second", "About a minute", "3 hours", "2 weeks", ...
std::string human_duration(std::chrono::seconds elapsed);

// units.HumanSizeWithPrecision(size, 3): decimal units, three significant digits ("2.14MB").
std::string human_size(double size);

// How long ago an RFC 3339 timestamp was, as docker's CREATED column says it ("5 minutes ago").
std::string time_ago(const std::string& rfc3339);

// formatter.Ellipsis: at most `width` characters, the last one "…" when cut.
std::string ellipsis(const std::string& text, size_t width);

// Prints rows to stdout aligned like docker's tabwriter (minimum width 10, padding 3).
void print_table(const std::vector<std::vector<std::string>>& rows);

}  // namespace slipway::cli
