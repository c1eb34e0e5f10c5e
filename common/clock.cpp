#include "common/clock.h"

#include <time.h>

#include <cctype>
#include <cstdio>
#include <ctime>

namespace slipway {
namespace {

// "YYYY-MM-DDTHH:MM:SS" of `seconds` in UTC.
std::string utc_seconds(time_t seconds) {
  struct tm utc {};
  ::gmtime_r(&seconds, &utc);
  char buffer[32];
  size_t length = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
  return std::string(buffer, length);
}

}  // namespace

std::string rfc3339_now() {
  struct timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  char fraction[16];
  std::snprintf(fraction, sizeof fraction, ".%09ldZ", now.tv_nsec);
  return utc_seconds(now.tv_sec) + fraction;
}

std::string rfc3339_now_seconds() {
  return utc_seconds(::time(nullptr)) + "Z";
}

std::chrono::system_clock::time_point parse_rfc3339(const std::string& text) {
  std::tm tm{};
  if (!strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return {};
  auto point = std::chrono::system_clock::from_time_t(timegm(&tm));
  size_t dot = text.find('.');
  if (dot != std::string::npos && dot > 10) {
    size_t end = dot + 1;
    std::string digits;
    while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end])) &&
           digits.size() < 9)
      digits += text[end++];
    digits.resize(9, '0');
    point += std::chrono::duration_cast<std::chrono::system_clock::duration>(
        std::chrono::nanoseconds(std::stoll(digits)));
  }
  return point;
}

}  // namespace slipway
