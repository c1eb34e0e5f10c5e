// Pseudo-terminal plumbing shared by run -t, exec -t and attach: the caller's terminal in raw
// mode, window sizes, and a relay between this process's stdio and a pty master.
#pragma once

#include <termios.h>

#include <optional>
#include <string>
#include <string_view>

namespace slipway::runtime {

struct WindowSize {
  unsigned short rows = 0, columns = 0;
};

// The window size of the terminal on `fd`; nullopt when it is not a terminal.
std::optional<WindowSize> terminal_size(int fd);
// The size of this process's terminal (stdin's, else stdout's); nullopt when it has none.
std::optional<WindowSize> own_terminal_size();

// Sets a pty's window size; the kernel then sends SIGWINCH to its foreground process group.
// Best effort: a pty whose other side is gone has no one left to tell.
void resize_terminal(int master_fd, WindowSize size);

// The terminal on `fd` in raw mode for the object's lifetime, as docker -it sets it: keys,
// ctrl-c included, reach the container's own line discipline unprocessed, and the container's
// "\r\n" is not translated twice. Restored when destroyed; no-op when `fd` is not a terminal.
class RawTerminal {
 public:
  explicit RawTerminal(int fd);
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;
  ~RawTerminal();

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

// Bytes on their way to a non-blocking fd. What the fd cannot take at once is kept, so that a
// loop that must also drain the other direction never blocks on a full pty or pipe.
class PendingOutput {
 public:
  explicit PendingOutput(int fd = -1) : fd_(fd) {}
  int fd() const { return fd_; }
  bool empty() const { return data_.empty(); }
  size_t size() const { return data_.size(); }
  // Appends `data` and writes what the fd takes now (flush()). False once the fd is broken
  // (its reader is gone): the data is dropped and fd() is -1 from then on.
  bool push(std::string_view data);
  bool flush();

 private:
  int fd_;
  std::string data_;
};

// Sets O_NONBLOCK on `fd` (its open file description: every dup of it too).
void set_nonblocking(int fd);

// Copies a pty master to this process's stdout, and this process's stdin to it when
// `forward_stdin` (raw mode when stdin is a terminal), until the pty's other side is closed.
// SIGWINCH resizes the pty to this process's terminal.
void relay_terminal(int master_fd, bool forward_stdin);

}  // namespace slipway::runtime
