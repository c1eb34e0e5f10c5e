// Errors used across slipway. Every layer throws slipway::Error (or a subclass) carrying enough
// context for the CLI to print one line that names what was wrong and where; the CLI catches it at
// the top, prints "slipway: <what>" (or the parser's "FILE:LINE:COL: ..." form) and exits 1.
#pragma once

#include <stdexcept>
#include <string>

namespace slipway {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An Error for a failed system call: the message ends with strerror(errno) of the call.
class SystemError : public Error {
 public:
  SystemError(const std::string& what, int err);
  int code() const { return code_; }

 private:
  int code_;
};

// Throws SystemError(what, errno). For the common "if (call < 0) fail(...)" pattern.
[[noreturn]] void throw_errno(const std::string& what);

}  // namespace slipway
