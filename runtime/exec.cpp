// exec -d and exec -it: the command under a detached process of its own (an exec daemon, as
// docker's shim is), so that it outlives the `slipway exec` that started it. The daemon is the
// command's parent: it waits for it, and for a -t command holds the pty master, relays it to the
// client over a socketpair (runtime/attach.h frames) and, once the client detached, drains it.
// The container's exit still ends the command: it dies with the container's PID namespace.
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "common/error.h"
#include "common/fs.h"
#include "runtime/attach.h"
#include "runtime/daemon.h"
#include "runtime/runtime.h"
#include "runtime/terminal.h"

namespace slipway::runtime {
namespace {

// Many times what a pty holds for its master: about 12 KiB (the slave's 8 KiB of flip buffers
// and the master's 4 KiB line discipline buffer), so that no output written before the exit is
// cut off.
constexpr size_t kExitDrainBytes = 256 * 1024;

// Relays a -t command's pty to the attach client (if any) until the command exits, then sends
// the exit frame. Output nobody is attached for is read and dropped, so the command never
// blocks on a full pty.
int serve_terminal(ExecProcess& process, UniqueFd master, UniqueFd client) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, process.pid(), 0)));
  if (!pidfd) throw_errno("cannot watch the exec'd process");
  set_nonblocking(master.get());
  AttachServer server;
  if (client) server.add_client(std::move(client));
  PendingOutput input(master.get());
  const AttachServer::Handlers handlers = {
      [&](std::string_view data) { input.push(data); },
      [&](WindowSize size) { resize_terminal(master.get(), size); }};
  bool master_open = true;
  std::string buffer(64 * 1024, '\0');
  // How much it read: 0 when nothing was there (or the pty closed).
  auto read_master = [&]() -> size_t {
    ssize_t got = ::read(master.get(), buffer.data(), buffer.size());
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
    if (got <= 0) {
      master_open = false;  // EIO: every process closed its side
      return 0;
    }
    server.broadcast(1, std::string_view(buffer.data(), size_t(got)));
    return size_t(got);
  };
  for (;;) {
    std::vector<pollfd> watched = {{pidfd.get(), POLLIN, 0}};
    if (master_open) {
      short events = POLLIN;
      if (!input.empty()) events |= POLLOUT;
      watched.push_back({master.get(), events, 0});
    }
    size_t clients_first = watched.size();
    // Input waits while the command has not taken the last of it: a bounded buffer.
    if (input.size() < buffer.size()) server.watch(watched);
    if (::poll(watched.data(), watched.size(), -1) < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot poll the exec'd process's terminal");
    }
    if (watched[0].revents) break;
    if (master_open) {
      short revents = watched[1].revents;
      if (revents & POLLOUT) input.flush();
      if (revents & (POLLIN | POLLHUP | POLLERR)) read_master();
    }
    server.handle(std::vector<pollfd>(watched.begin() + long(clients_first), watched.end()),
                  handlers);
  }
  // What the command wrote before it exited is still in the pty, in no more than its buffers
  // hold. Reading that much, not until the pty is empty, ends the drain even while a process
  // the command left behind (`yes &`) keeps writing: the exit frame is not held back.
  for (size_t drained = 0, got = 1; master_open && got > 0 && drained < kExitDrainBytes;
       drained += got) {
    got = read_master();
  }
  int exit_code = process.wait();
  server.broadcast(kExitFrame, std::to_string(exit_code));
  server.close();
  return exit_code;
}

// Starts the command under an exec daemon and returns once it runs (throwing its StartError when
// it could not start). With `attach`, the client's end of the socket the daemon relays on.
UniqueFd start_exec_daemon(const ContainerSpec& spec, pid_t init_pid, bool attach) {
  UniqueFd client, daemon_end;
  if (attach) {
    int socket_fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socket_fds) < 0)
      throw_errno("cannot create the exec's socket");
    client.reset(socket_fds[0]);
    daemon_end.reset(socket_fds[1]);
  }
  // The daemon leaves SIGPIPE at its default, as docker's exec gives it to the command (which
  // would inherit an ignored one): its own writes do not raise it, as sends use MSG_NOSIGNAL
  // and writes to a pty master fail with EIO.
  UniqueFd report = fork_daemon("the exec's daemon", 126, [&](StartReport& started) {
    client.reset();  // the daemon's copy of this command's end
    ExecProcess process = start_exec(spec, init_pid);
    started.started();
    UniqueFd master = process.take_terminal();
    if (master)
      serve_terminal(process, std::move(master), std::move(daemon_end));
    else
      process.wait();
  });
  daemon_end.reset();
  read_start_report(report.get(), 126);
  return client;
}

}  // namespace

void exec_detached(const ContainerSpec& spec, pid_t init_pid) {
  start_exec_daemon(spec, init_pid, false);
}

int exec_attached(const ContainerSpec& spec, pid_t init_pid, const std::string& detach_keys) {
  UniqueFd socket = start_exec_daemon(spec, init_pid, true);
  AttachClientOptions options;
  options.tty = true;
  options.send_input = spec.inherit_stdin;
  options.detach_keys = detach_keys;
  // As docker exec's client: a signal ends it (no proxy), the command runs on.
  options.on_signal = [](int) { return false; };
  AttachEnd end = relay_attach(socket.get(), options);
  if (end.detached) return 0;
  if (end.signal) return 128 + end.signal;
  if (!end.exit_code) throw Error("the exec'd command's daemon ended without its exit code");
  return *end.exit_code;
}

}  // namespace slipway::runtime
