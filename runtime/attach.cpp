#include "runtime/attach.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace slipway::runtime {
namespace {
namespace fs = std::filesystem;

// sun_path holds 108 bytes and a store root may be deeper than that: "/proc/self/fd/N/NAME"
// reaches the same file through an fd of its directory, whatever the directory's path.
struct ShortAddress {
  UniqueFd dir;
  sockaddr_un address{};
};

ShortAddress short_address(const fs::path& container_dir) {
  ShortAddress result;
  result.dir = open_or_throw(container_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  result.address.sun_family = AF_UNIX;
  std::string path = "/proc/self/fd/" + std::to_string(result.dir.get()) + "/attach.sock";
  std::memcpy(result.address.sun_path, path.c_str(), path.size() + 1);
  return result;
}

uint32_t read_u32(std::string_view bytes) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value = (value << 8) | static_cast<unsigned char>(bytes[size_t(i)]);
  return value;
}

}  // namespace

std::string attach_frame(uint8_t kind, std::string_view payload) {
  std::string frame(8, '\0');
  frame[0] = static_cast<char>(kind);
  auto length = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) frame[size_t(4 + i)] = static_cast<char>(length >> (24 - 8 * i));
  frame.append(payload);
  return frame;
}

bool take_attach_frames(std::string& buffer,
                        const std::function<void(uint8_t, std::string_view)>& on_frame) {
  constexpr uint32_t kMaxFrame = 1024 * 1024;
  size_t start = 0;
  while (buffer.size() - start >= 8) {
    uint32_t length = read_u32(std::string_view(buffer).substr(start + 4, 4));
    if (length > kMaxFrame) return false;
    if (buffer.size() - start - 8 < length) break;
    on_frame(static_cast<uint8_t>(buffer[start]),
             std::string_view(buffer).substr(start + 8, length));
    start += 8 + length;
  }
  buffer.erase(0, start);
  return true;
}

std::string parse_detach_keys(std::string_view spec) {
  if (spec.empty()) return "\x10\x11";  // ctrl-p, ctrl-q
  // The names of the control characters 0..31, as docker (moby/term) spells them.
  static const char* const kControl[] = {
      "ctrl-@", "ctrl-a", "ctrl-b", "ctrl-c", "ctrl-d",  "ctrl-e", "ctrl-f", "ctrl-g",
      "ctrl-h", "ctrl-i", "ctrl-j", "ctrl-k", "ctrl-l",  "ctrl-m", "ctrl-n", "ctrl-o",
      "ctrl-p", "ctrl-q", "ctrl-r", "ctrl-s", "ctrl-t",  "ctrl-u", "ctrl-v", "ctrl-w",
      "ctrl-x", "ctrl-y", "ctrl-z", "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"};
  std::string bytes;
  for (size_t start = 0;;) {
    size_t comma = spec.find(',', start);
    std::string_view key =
        spec.substr(start, comma == std::string_view::npos ? comma : comma - start);
    if (key.size() == 1) {
      bytes += key.front();
    } else if (key == "DEL") {
      bytes += '\x7f';
    } else {
      const auto* found = std::find(std::begin(kControl), std::end(kControl), key);
      if (found == std::end(kControl))
        throw Error("invalid detach keys (" + std::string(spec) + "): Unknown character: '" +
                    std::string(key) + "'");
      bytes += static_cast<char>(found - std::begin(kControl));
    }
    if (comma == std::string_view::npos) return bytes;
    start = comma + 1;
  }
}

std::string DetachSequence::filter(std::string_view input, bool& detached) {
  std::string out;
  detached = false;
  for (char c : input) {
    if (keys_.empty()) {
      out += c;
      continue;
    }
    if (c != keys_[matched_] && matched_ > 0) {
      // Not the sequence after all: the held keys go on, and this one may start it anew.
      out.append(keys_, 0, matched_);
      matched_ = 0;
    }
    if (c != keys_[matched_]) {
      out += c;
      continue;
    }
    if (++matched_ == keys_.size()) {
      matched_ = 0;
      detached = true;
      return out;
    }
  }
  return out;
}

AttachEnd relay_attach(int socket, const AttachClientOptions& options) {
  sigset_t signals;
  sigemptyset(&signals);
  for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGWINCH})
    sigaddset(&signals, signal);
  if (::sigprocmask(SIG_BLOCK, &signals, nullptr) < 0) throw_errno("cannot block signals");
  UniqueFd signal_fd(::signalfd(-1, &signals, SFD_CLOEXEC));
  if (!signal_fd) throw_errno("cannot create a signalfd");
  auto send = [&](AttachFrame kind, std::string_view payload) {
    std::string frame = attach_frame(static_cast<uint8_t>(kind), payload);
    try {
      write_all(socket, frame.data(), frame.size(), "attach socket");
    } catch (const Error&) {
      // The other side is going away; its EOF ends the loop below.
    }
  };
  auto send_size = [&] {
    auto size = own_terminal_size();
    if (!options.tty || !size || !size->rows) return;
    const char bytes[] = {char(size->rows >> 8), char(size->rows & 0xff), char(size->columns >> 8),
                          char(size->columns & 0xff)};
    send(AttachFrame::resize, std::string_view(bytes, 4));
  };
  send_size();
  std::optional<RawTerminal> raw;
  if (options.tty && options.send_input) raw.emplace(STDIN_FILENO);
  // docker watches for the detach keys only on a terminal.
  DetachSequence detach(options.tty ? options.detach_keys : "");
  bool reading_stdin = options.send_input;
  std::string received;
  AttachEnd end;
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    std::vector<pollfd> watched = {{socket, POLLIN, 0}, {signal_fd.get(), POLLIN, 0}};
    if (reading_stdin) watched.push_back({STDIN_FILENO, POLLIN, 0});
    if (::poll(watched.data(), watched.size(), -1) < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot poll the attach socket");
    }
    if (watched[1].revents) {
      signalfd_siginfo info{};
      if (::read(signal_fd.get(), &info, sizeof info) == sizeof info) {
        int signal = static_cast<int>(info.ssi_signo);
        if (signal == SIGWINCH) {
          send_size();
        } else if (signal != SIGPIPE && options.on_signal && !options.on_signal(signal)) {
          end.signal = signal;
          return end;
        }
      }
    }
    if (watched.size() > 2 && watched[2].revents) {
      ssize_t got = ::read(STDIN_FILENO, buffer.data(), buffer.size());
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        reading_stdin = false;  // the other side's stdin stays open, as for docker's -di
      } else {
        std::string input =
            detach.filter(std::string_view(buffer.data(), size_t(got)), end.detached);
        if (!input.empty()) send(AttachFrame::stdin_data, input);
        if (end.detached) return end;
      }
    }
    if (watched[0].revents) {
      ssize_t got = ::recv(socket, buffer.data(), buffer.size(), 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return end;
      received.append(buffer.data(), size_t(got));
      bool valid = take_attach_frames(received, [&](uint8_t stream, std::string_view data) {
        if (stream == kExitFrame) {
          end.exit_code = std::atoi(std::string(data).c_str());
          return;
        }
        try {
          write_all(stream == 2 ? STDERR_FILENO : STDOUT_FILENO, data.data(), data.size(),
                    "output");
        } catch (const Error&) {
          // Nobody reads our output any more; what runs there is not ours to stop.
        }
      });
      if (!valid) throw Error("the other side of the attach socket sent a damaged frame");
    }
  }
}

fs::path attach_socket_path(const fs::path& container_dir) {
  return container_dir / "attach.sock";
}

UniqueFd connect_attach_socket(const fs::path& container_dir) {
  ShortAddress address = short_address(container_dir);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("cannot create a socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address.address),
                sizeof address.address) < 0)
    throw_errno("cannot connect to the container's supervisor at " +
                attach_socket_path(container_dir).string());
  return fd;
}

AttachServer::AttachServer(const fs::path& container_dir)
    : path_(attach_socket_path(container_dir)) {
  ShortAddress address = short_address(container_dir);
  // A supervisor killed with -9 left its socket file behind: nobody listens on it any more.
  ::unlink(path_.c_str());
  listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener_) throw_errno("cannot create the attach socket");
  // Only root (the store's owner) may attach: stdin of a container is as good as a shell in it.
  mode_t old_mask = ::umask(077);
  int bound = ::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&address.address),
                     sizeof address.address);
  ::umask(old_mask);
  if (bound < 0) throw_errno("cannot bind " + path_.string());
  if (::listen(listener_.get(), 16) < 0) throw_errno("cannot listen on " + path_.string());
}

AttachServer::~AttachServer() {
  close();
}

void AttachServer::close() {
  clients_.clear();
  if (listener_) {
    listener_.reset();
    ::unlink(path_.c_str());
  }
}

void AttachServer::wait_for_client(int timeout_ms) {
  pollfd entry{listener_.get(), POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&entry, 1, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  if (ready > 0) handle({entry}, {});
}

void AttachServer::add_client(UniqueFd fd) {
  timeval timeout{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  clients_.push_back({std::move(fd), {}});
}

void AttachServer::watch(std::vector<pollfd>& watched) const {
  if (listener_) watched.push_back({listener_.get(), POLLIN, 0});
  for (const auto& client : clients_) watched.push_back({client.fd.get(), POLLIN, 0});
}

void AttachServer::handle(const std::vector<pollfd>& watched, const Handlers& handlers) {
  for (const auto& entry : watched) {
    if (!entry.revents) continue;
    if (listener_ && entry.fd == listener_.get()) {
      UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!client) continue;
      timeval timeout{5, 0};
      ::setsockopt(client.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
      clients_.push_back({std::move(client), {}});
      continue;
    }
    auto found = std::find_if(clients_.begin(), clients_.end(),
                              [&](const Client& c) { return c.fd.get() == entry.fd; });
    if (found == clients_.end()) continue;
    char buffer[16 * 1024];
    ssize_t got = ::recv(found->fd.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) {
      clients_.erase(found);
      continue;
    }
    found->received.append(buffer, size_t(got));
    bool valid = take_attach_frames(found->received, [&](uint8_t kind, std::string_view payload) {
      if (kind == uint8_t(AttachFrame::stdin_data) && handlers.input) {
        handlers.input(payload);
      } else if (kind == uint8_t(AttachFrame::resize) && payload.size() == 4 && handlers.resize) {
        auto byte = [&](size_t i) { return static_cast<unsigned char>(payload[i]); };
        handlers.resize({static_cast<unsigned short>(byte(0) << 8 | byte(1)),
                         static_cast<unsigned short>(byte(2) << 8 | byte(3))});
      }
    });
    if (!valid) clients_.erase(found);
  }
}

void AttachServer::broadcast(uint8_t stream, std::string_view data) {
  if (clients_.empty()) return;
  std::string frame = attach_frame(stream, data);
  clients_.erase(std::remove_if(clients_.begin(), clients_.end(),
                                [&](const Client& client) {
                                  size_t sent = 0;
                                  while (sent < frame.size()) {
                                    ssize_t n = ::send(client.fd.get(), frame.data() + sent,
                                                       frame.size() - sent, MSG_NOSIGNAL);
                                    if (n < 0 && errno == EINTR) continue;
                                    if (n <= 0) return true;
                                    sent += size_t(n);
                                  }
                                  return false;
                                }),
                 clients_.end());
}

}  // namespace slipway::runtime
