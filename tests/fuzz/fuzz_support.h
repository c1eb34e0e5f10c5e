// Shared by the libFuzzer targets of tests/fuzz: splitting one input into parts, scratch
// directories, and the rule for what counts as a finding.
//
// A finding is whatever the sanitizers report (memory errors, leaks, undefined behaviour), a
// crash, a timeout or an out-of-memory, and an exception that is not slipway::Error: every bad
// input must end in slipway's own clear error. With SLIPWAY_FUZZ_LENIENT=1 in the environment
// only the memory-safety findings count (other std::exceptions are tolerated), for looking past
// a known one.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/fs.h"

namespace slipway::fuzz {

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The first `count - 1` pieces of `input` separated by `separator`, then the rest; always
// `count` parts (missing ones empty).
inline std::vector<std::string_view> split(std::string_view input, char separator, size_t count) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < count) {
    size_t at = input.find(separator);
    if (at == std::string_view::npos) break;
    parts.push_back(input.substr(0, at));
    input.remove_prefix(at + 1);
  }
  parts.push_back(input);
  parts.resize(count);
  return parts;
}

// The directory the targets make their scratch directories in: $TMPDIR, else /tmp.
inline std::filesystem::path scratch_parent() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

inline bool lenient() {
  const char* value = std::getenv("SLIPWAY_FUZZ_LENIENT");
  return value != nullptr && std::string_view(value) == "1";
}

// Runs `body`; slipway::Error is the expected answer to bad input. Any other exception is a
// finding (abort, so libFuzzer saves the input) unless lenient().
template <typename Body>
void expect_clean_errors(Body&& body) {
  try {
    body();
  } catch (const Error&) {
  } catch (const std::exception& e) {
    if (lenient()) return;
    std::cerr << "finding: exception that is not slipway::Error: " << e.what() << "\n";
    std::abort();
  }
}

}  // namespace slipway::fuzz
