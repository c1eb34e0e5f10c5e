#include "runtime/terminal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "common/error.h"
#include "common/fs.h"

namespace slipway::runtime {

std::optional<WindowSize> terminal_size(int fd) {
  winsize size{};
  if (::ioctl(fd, TIOCGWINSZ, &size) < 0) return std::nullopt;
  return WindowSize{size.ws_row, size.ws_col};
}

std::optional<WindowSize> own_terminal_size() {
  if (auto size = terminal_size(STDIN_FILENO)) return size;
  return terminal_size(STDOUT_FILENO);
}

void resize_terminal(int master_fd, WindowSize size) {
  winsize wanted{};
  wanted.ws_row = size.rows;
  wanted.ws_col = size.columns;
  ::ioctl(master_fd, TIOCSWINSZ, &wanted);
}

RawTerminal::RawTerminal(int fd) : fd_(fd) {
  if (!::isatty(fd) || ::tcgetattr(fd, &saved_) < 0) return;
  termios raw = saved_;
  ::cfmakeraw(&raw);
  if (::tcsetattr(fd, TCSADRAIN, &raw) == 0) active_ = true;
}

RawTerminal::~RawTerminal() {
  if (active_) ::tcsetattr(fd_, TCSADRAIN, &saved_);
}

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    throw_errno("cannot make a descriptor non-blocking");
}

bool PendingOutput::push(std::string_view data) {
  if (fd_ < 0) return false;
  data_.append(data);
  return flush();
}

bool PendingOutput::flush() {
  while (!data_.empty() && fd_ >= 0) {
    ssize_t wrote = ::write(fd_, data_.data(), data_.size());
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (wrote < 0) {
      data_.clear();
      fd_ = -1;
      return false;
    }
    data_.erase(0, static_cast<size_t>(wrote));
  }
  return fd_ >= 0;
}

void relay_terminal(int master_fd, bool forward_stdin) {
  sigset_t winch;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  sigset_t previous;
  if (::sigprocmask(SIG_BLOCK, &winch, &previous) < 0) throw_errno("cannot block SIGWINCH");
  UniqueFd signal_fd(::signalfd(-1, &winch, SFD_CLOEXEC));
  if (!signal_fd) throw_errno("cannot create a signalfd");
  std::optional<RawTerminal> raw;
  if (forward_stdin) raw.emplace(STDIN_FILENO);
  set_nonblocking(master_fd);
  PendingOutput to_container(master_fd);
  bool reading_stdin = forward_stdin;
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    std::vector<pollfd> watched = {{master_fd, POLLIN, 0}, {signal_fd.get(), POLLIN, 0}};
    if (!to_container.empty()) watched[0].events |= POLLOUT;
    // Input waits while the container has not taken the last of it: a bounded buffer.
    if (reading_stdin && to_container.size() < buffer.size())
      watched.push_back({STDIN_FILENO, POLLIN, 0});
    if (::poll(watched.data(), watched.size(), -1) < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot poll the terminal");
    }
    if (watched[1].revents) {
      signalfd_siginfo info{};
      if (::read(signal_fd.get(), &info, sizeof info) == sizeof info)
        if (auto size = terminal_size(STDIN_FILENO)) resize_terminal(master_fd, *size);
    }
    if (watched.size() > 2 && watched[2].revents) {
      ssize_t got = ::read(STDIN_FILENO, buffer.data(), buffer.size());
      if (got <= 0 && !(got < 0 && errno == EINTR)) reading_stdin = false;
      if (got > 0) to_container.push(std::string_view(buffer.data(), size_t(got)));
    }
    if (watched[0].revents & POLLOUT) to_container.flush();
    if (watched[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t got = ::read(master_fd, buffer.data(), buffer.size());
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      // EIO: every process of the container closed its side.
      if (got <= 0) break;
      try {
        write_all(STDOUT_FILENO, buffer.data(), size_t(got), "stdout");
      } catch (const Error&) {
        // Nobody reads our stdout any more; the command still runs to its end.
      }
    }
  }
  ::sigprocmask(SIG_SETMASK, &previous, nullptr);
}

}  // namespace slipway::runtime
