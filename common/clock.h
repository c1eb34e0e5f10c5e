// Timestamps as docker writes them in its JSON (RFC 3339, UTC), and their parsing.
#pragma once

#include <chrono>
#include <string>

namespace slipway {

// Now, "2026-12-07T11:39:07.123456789Z": nanoseconds, so that records made within one second keep
// their order (containers, networks, health logs).
std::string rfc3339_now();

// Now with whole seconds, "2026-12-07T11:39:07Z" (volumes' CreatedAt, tagging annotations).
std::string rfc3339_now_seconds();

// Parses either form (and a fraction of any length up to nanoseconds); the epoch when `text` is
// not RFC 3339.
std::chrono::system_clock::time_point parse_rfc3339(const std::string& text);

}  // namespace slipway
