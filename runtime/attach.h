// The supervisor's attach socket (containers/<id>/attach.sock) and its wire format, shared by
// the supervisor (server) and `slipway attach` (client).
//
// Both directions are frames: an 8-byte header, then `length` bytes. From the supervisor the
// header is docker's stream header ([stream, 0, 0, 0, length as big-endian u32], stream 1 =
// stdout, 2 = stderr, 3 = the container exited: the payload is its exit code in decimal, the
// last frame before the supervisor closes the socket); from the client the first byte is a kind: 0
// = stdin bytes, 1 = a window size (rows, columns as big-endian u16).
#pragma once

#include <poll.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/fs.h"
#include "runtime/terminal.h"

namespace slipway::runtime {

enum class AttachFrame : uint8_t { stdin_data = 0, resize = 1 };
constexpr uint8_t kExitFrame = 3;

std::string attach_frame(uint8_t kind, std::string_view payload);

// Takes the complete frames off the front of `buffer`, calling `on_frame(kind, payload)`.
// False when a frame says it is longer than any side ever sends (1 MiB): the peer is not
// speaking this protocol, and buffering for it would be unbounded.
bool take_attach_frames(std::string& buffer,
                        const std::function<void(uint8_t, std::string_view)>& on_frame);

// The path of a container's attach socket. Longer than a sockaddr_un can hold under a deep store
// root, so binding and connecting go through an fd of the directory (see attach.cpp).
std::filesystem::path attach_socket_path(const std::filesystem::path& container_dir);

// Connects to a container's attach socket; throws Error when no supervisor listens on it.
UniqueFd connect_attach_socket(const std::filesystem::path& container_dir);

// docker's --detach-keys: comma-separated keys, each a single character or one of "ctrl-@",
// "ctrl-a" ... "ctrl-z", "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_" and "DEL", into the
// bytes a terminal sends for them. "" is docker's default, ctrl-p ctrl-q. Throws Error naming
// the key it cannot read.
std::string parse_detach_keys(std::string_view spec);

// Watches typed input for the detach sequence. The bytes that may start it are held back until
// the next key shows whether they do (and then passed on, unless the sequence is complete).
class DetachSequence {
 public:
  explicit DetachSequence(std::string keys) : keys_(std::move(keys)) {}
  // The part of `input` to pass on. Sets `detached` when the sequence is complete; what follows
  // it in `input` is dropped.
  std::string filter(std::string_view input, bool& detached);

 private:
  std::string keys_;
  size_t matched_ = 0;
};

// The client's side of an attach socket (attach, run -it, exec -it).
struct AttachClientOptions {
  bool tty = false;         // a pty on the other side: window sizes, raw mode, detach keys
  bool send_input = false;  // this process's stdin to the other side
  std::string detach_keys = parse_detach_keys("");  // bytes, as parse_detach_keys gives them
  // Called with each signal this process gets (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,
  // SIGUSR2); returning false ends the relay. Unset: they are ignored.
  std::function<bool(int)> on_signal;
};

struct AttachEnd {
  bool detached = false;         // the detach keys were typed
  std::optional<int> exit_code;  // the exit frame's code, when one came
  int signal = 0;                // the signal on_signal ended the relay for
};

// Relays this process's stdout/stderr (and stdin, raw when options.tty) to and from `socket`
// until the other side closes it, the detach keys are typed, or on_signal says to stop.
AttachEnd relay_attach(int socket, const AttachClientOptions& options);

// The supervisor's side: listens, keeps its clients, sends them output.
class AttachServer {
 public:
  // Input from clients: stdin bytes, and window sizes.
  struct Handlers {
    std::function<void(std::string_view)> input;
    std::function<void(WindowSize)> resize;
  };

  AttachServer() = default;
  explicit AttachServer(const std::filesystem::path& container_dir);
  AttachServer(AttachServer&&) = default;
  AttachServer& operator=(AttachServer&&) = default;
  ~AttachServer();

  // Waits up to `timeout_ms` for a first client (run -it connects before the command runs, so
  // that it sees all of its output) and keeps it.
  void wait_for_client(int timeout_ms);
  // Keeps a client that is already connected (one end of a socketpair).
  void add_client(UniqueFd fd);
  bool has_clients() const { return !clients_.empty(); }
  // Adds the listener and the clients to `watched`; handle() takes their events after poll.
  void watch(std::vector<pollfd>& watched) const;
  void handle(const std::vector<pollfd>& watched, const Handlers& handlers);
  // Sends output to every client; a client that does not take it within a few seconds is
  // dropped, so that it can never stall the container.
  void broadcast(uint8_t stream, std::string_view data);
  // Closes the listener and the clients (they see EOF and ask the record for the exit code).
  void close();

 private:
  struct Client {
    UniqueFd fd;
    std::string received;
  };
  std::filesystem::path path_;
  UniqueFd listener_;
  std::vector<Client> clients_;
};

}  // namespace slipway::runtime
