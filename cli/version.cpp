// The version slipway reports (`-v`, `version`, `info`): the project version and the commit it
// was configured from (cli/CMakeLists.txt passes both).
#include <time.h>

#include "cli/commands.h"

#ifndef SLIPWAY_VERSION
#define SLIPWAY_VERSION "unknown"
#endif
#ifndef SLIPWAY_COMMIT
#define SLIPWAY_COMMIT "unknown"
#endif

namespace slipway::cli {

std::string slipway_version() {
  return SLIPWAY_VERSION;
}

std::string slipway_commit() {
  return SLIPWAY_COMMIT;
}

std::string slipway_build_time() {
  // __DATE__ __TIME__ ("Dec  7 2026 04:40:00") in Go's time.ANSIC, as docker prints "Built".
  std::tm tm{};
  if (!strptime(__DATE__ " " __TIME__, "%b %d %Y %H:%M:%S", &tm)) return __DATE__ " " __TIME__;
  tm.tm_isdst = -1;
  std::time_t time = std::mktime(&tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%a %b %e %H:%M:%S %Y", std::localtime(&time));
  return buffer;
}

}  // namespace slipway::cli
