// exec -d and exec -it: the command under a detached process of its own (an exec daemon, as
// docker's shim is), so that it outlives the `slipway exec` that started it. The daemon is the
// command's parent: it waits for it, and for a -t command holds the pty master, relays it to the
// client over a socketpair (runtime/attach.h frames) and, once the client detached, drains it.
// The container's exit still ends the command: it dies with the container's PID namespace.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "common/error.h"
#include "common/fs.h"
#include "runtime/attach.h"
#include "runtime/runtime.h"
#include "runtime/terminal.h"

namespace slipway::runtime {
namespace {

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
  auto read_master = [&]() -> bool {
    ssize_t got = ::read(master.get(), buffer.data(), buffer.size());
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) return false;
    if (got <= 0) {
      master_open = false;  // EIO: every process closed its side
      return false;
    }
    server.broadcast(1, std::string_view(buffer.data(), size_t(got)));
    return true;
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
  // What the command wrote before it exited is still in the pty.
  while (master_open && read_master()) {
  }
  int exit_code = process.wait();
  server.broadcast(kExitFrame, std::to_string(exit_code));
  server.close();
  return exit_code;
}

std::string read_all(int fd) {
  std::string text;
  char buffer[4096];
  for (;;) {
    ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return text;
    text.append(buffer, size_t(got));
  }
}

// Starts the command under an exec daemon and returns once it runs (throwing its StartError when
// it could not start). With `attach`, the client's end of the socket the daemon relays on.
UniqueFd start_exec_daemon(const ContainerSpec& spec, pid_t init_pid, bool attach) {
  int report_fds[2];
  if (::pipe2(report_fds, O_CLOEXEC) < 0) throw_errno("cannot create a pipe");
  UniqueFd report_read(report_fds[0]), report_write(report_fds[1]);
  UniqueFd client, daemon_end;
  if (attach) {
    int socket_fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socket_fds) < 0)
      throw_errno("cannot create the exec's socket");
    client.reset(socket_fds[0]);
    daemon_end.reset(socket_fds[1]);
  }
  std::fflush(nullptr);  // nothing buffered may be written twice by the children

  // Double fork: the daemon is an orphan in its own session, so it outlives this command and no
  // terminal's signals reach it.
  pid_t middle = ::fork();
  if (middle < 0) throw_errno("cannot fork the exec's daemon");
  if (middle == 0) {
    ::setsid();
    pid_t daemon = ::fork();
    if (daemon != 0) _exit(daemon < 0 ? 1 : 0);
    // The daemon never returns into the command that forked it: it ends with _exit, so no
    // destructor of the parent's objects runs twice.
    report_read.reset();
    client.reset();
    int null_fd = ::open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
      for (int fd = 0; fd < 3; ++fd) ::dup2(null_fd, fd);
      if (null_fd > 2) ::close(null_fd);
    }
    if (::chdir("/") < 0) _exit(1);
    ::signal(SIGPIPE, SIG_IGN);
    try {
      std::optional<ExecProcess> process;
      try {
        process.emplace(start_exec(spec, init_pid));
      } catch (const StartError& e) {
        std::string report = std::to_string(e.exit_code()) + " " + e.what();
        write_all(report_write.get(), report.data(), report.size(), "report pipe");
        _exit(1);
      }
      report_write.reset();  // "started": EOF without a message
      UniqueFd master = process->take_terminal();
      if (master)
        serve_terminal(*process, std::move(master), std::move(daemon_end));
      else
        process->wait();
      _exit(0);
    } catch (const std::exception& e) {
      std::string report = std::string("126 ") + e.what();
      if (report_write) ::write(report_write.get(), report.data(), report.size());
      _exit(1);
    }
  }
  report_write.reset();
  daemon_end.reset();
  int status = 0;
  while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) {
  }
  std::string report = read_all(report_read.get());
  if (!report.empty()) {
    size_t space = report.find(' ');
    int code = std::atoi(report.substr(0, space).c_str());
    throw StartError(space == std::string::npos ? report : report.substr(space + 1),
                     code > 0 ? code : 126);
  }
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
