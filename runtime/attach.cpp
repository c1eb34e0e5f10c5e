#include "runtime/attach.h"

#include <fcntl.h>
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
