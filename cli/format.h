// docker's ways of printing times, sizes and tables, so output reads (and parses) like docker's.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "template/format.h"

namespace slipway::cli {

// units.HumanDuration: "Less than a second", "About a minute", "3 hours", "2 weeks", ...
std::string human_duration(std::chrono::seconds elapsed);

// units.HumanSizeWithPrecision(size, 3): decimal units, three significant digits ("2.14MB").
std::string human_size(double size);

// units.HumanSize: four significant digits ("1.234MB"), as docker's `system df` and prune totals.
std::string human_size4(uint64_t size);

// How long ago an RFC 3339 timestamp was, as docker's CREATED column says it ("5 minutes ago").
std::string time_ago(const std::string& rfc3339);

// Go's time.Time.String() of an RFC 3339 time, in local time: "2024-05-01 10:00:00 +0000 UTC"
// (docker's CreatedAt fields); "N/A" when unreadable.
std::string go_local_time(const std::string& rfc3339);

// formatter.Ellipsis: at most `width` characters, the last one "…" when cut.
std::string ellipsis(const std::string& text, size_t width);

// Prints rows to stdout aligned like docker's tabwriter (minimum width 10, padding 3).
void print_table(const std::vector<std::vector<std::string>>& rows);

// Prints `rows` through docker's --format handling (template/format.h): "" and "table" give
// `default_table`, "json" one object a line, "table TEMPLATE" a header and aligned columns. A bad
// template is an Error in docker's words: `prefix` ("template parsing error") and Go's message.
void print_formatted(const std::string& format, const std::string& default_table,
                     const gotemplate::Value& headers, const std::vector<gotemplate::Value>& rows,
                     const gotemplate::ExecuteOptions& options = {},
                     const std::string& prefix = "template parsing error");

// Executes one template for each value (docker's inspect --format), each output on a line.
void print_each(const std::string& format, const std::vector<gotemplate::Value>& values,
                const std::string& prefix = "template parsing error");

}  // namespace slipway::cli
