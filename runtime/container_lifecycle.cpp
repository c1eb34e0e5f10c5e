// Starting, supervising, stopping and waiting for persistent containers (containers.h).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "runtime/attach.h"
#include "runtime/cgroups.h"
#include "runtime/containers.h"
#include "runtime/daemon.h"
#include "runtime/healthcheck.h"
#include "runtime/port_forward.h"
#include "runtime/terminal.h"

namespace slipway::runtime {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// Signals a supervisor passes on to the container instead of dying of them. SIGPIPE is only
// blocked: a closed terminal must not kill the supervisor, writes to it then fail with EPIPE.
constexpr int kForwardedSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

sigset_t supervisor_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int signal : kForwardedSignals) sigaddset(&set, signal);
  sigaddset(&set, SIGPIPE);
  sigaddset(&set, SIGWINCH);  // resizes the container's terminal, never forwarded
  return set;
}

UniqueFd open_pidfd(pid_t pid) {
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

bool send_signal(int pidfd, int signal) {
  return ::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0) == 0;
}

// Waits until the process behind `pidfd` exits or `timeout_ms` passes (-1: forever).
bool wait_exit(int pidfd, int timeout_ms) {
  pollfd entry{pidfd, POLLIN, 0};
  for (;;) {
    int ready = ::poll(&entry, 1, timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) throw_errno("cannot wait for the container's process");
    return ready > 0;
  }
}

// A pidfd for the record's process, if that process (the same one: pid and start time) still
// runs. Checked after opening, so the fd cannot refer to a later process that reused the pid.
UniqueFd open_identity(const ProcessIdentity& identity) {
  if (identity.pid <= 0) return {};
  UniqueFd fd = open_pidfd(identity.pid);
  if (!fd || !identity.alive()) return {};
  return fd;
}

// The size of this process's terminal; 0x0 when it has none.
WindowSize caller_terminal_size() {
  return own_terminal_size().value_or(WindowSize{});
}

void write_log_entry(int log_fd, const char* stream, std::string_view text) {
  json entry = {{"log", text}, {"stream", stream}, {"time", rfc3339_now()}};
  // Invalid UTF-8 becomes U+FFFD, as in docker's json-file logs.
  std::string line = entry.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  write_all(log_fd, line.data(), line.size(), "container log");
}

// One of the container's output streams on its way to the log (and the terminal, if attached).
struct OutputStream {
  const char* name;  // "stdout" or "stderr"
  UniqueFd read_end;
  int terminal_fd = -1;  // this process's stdout/stderr when attached; -1 when detached
  std::string partial;   // the unfinished last line

  // Docker's json-file driver writes an entry a line, and splits lines longer than 16 KiB.
  void take(int log_fd, std::string_view data) {
    if (terminal_fd >= 0) {
      try {
        write_all(terminal_fd, data.data(), data.size(), name);
      } catch (const Error&) {
        terminal_fd = -1;  // the reader went away; the log still gets everything
      }
    }
    partial.append(data);
    size_t start = 0;
    for (size_t newline; (newline = partial.find('\n', start)) != std::string::npos;) {
      log(log_fd, std::string_view(partial).substr(start, newline + 1 - start));
      start = newline + 1;
    }
    partial.erase(0, start);
    constexpr size_t kMaxEntry = 16 * 1024;
    while (partial.size() >= kMaxEntry) {
      log(log_fd, std::string_view(partial).substr(0, kMaxEntry));
      partial.erase(0, kMaxEntry);
    }
  }
  void finish(int log_fd) {
    if (!partial.empty()) log(log_fd, partial);
    partial.clear();
  }

 private:
  // A full disk loses log lines, never the container: it keeps running and its exit is recorded.
  void log(int log_fd, std::string_view text) {
    try {
      write_log_entry(log_fd, name, text);
    } catch (const Error&) {
    }
  }
};

// A container started by this process, with what the supervisor loop needs.
struct Launched {
  Launched(ContainerProcess process_, std::array<OutputStream, 2> streams_, UniqueFd log_,
           AttachServer attach_)
      : process(std::move(process_)),
        streams(std::move(streams_)),
        log(std::move(log_)),
        attach(std::move(attach_)) {}

  ContainerProcess process;
  std::array<OutputStream, 2> streams;
  UniqueFd log;
  UniqueFd terminal;    // the pty master of a -t container
  UniqueFd stdin_pipe;  // the write end of a detached -i container's stdin (without -t)
  // Where stdin from attached clients (and, for run -it, this process's stdin) goes.
  PendingOutput input;
  bool forward_own_stdin = false;  // run -it / start -ai: this process's stdin to the pty
  bool attached_terminal = false;  // this process's terminal sizes the container's
  std::unique_ptr<PortForwarder> ports;
  std::unique_ptr<ContainerNetwork> network;  // its addresses, given back once it ended
  AttachServer attach;
  std::unique_ptr<ContainerCgroup> cgroup;  // limits, freezer, accounting; removed after the exit
  std::unique_ptr<HealthChecker> health;    // runs the healthcheck while the container runs
};

// Starts the container's command and records it as running. The caller holds the container's
// lock. On a start failure the record keeps the error (or, for --rm, the container is removed)
// and StartError is thrown.
// `size`: the pty's first window size when a client attaches from the start (run -it), which
// `wait_for_client` waits for before the command runs.
Launched launch(const ContainerStore& containers, ContainerRecord& record, bool attached,
                WindowSize size = {}, bool wait_for_client = false) {
  ContainerSpec spec = container_spec(containers, record);
  // Listening before the record says running, so that an `attach` that sees it running can
  // connect.
  AttachServer attach(containers.dir(record.id));
  if (wait_for_client) attach.wait_for_client(10000);
  UniqueFd log = open_or_throw(containers.dir(record.id) / "container.log",
                               O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  std::array<UniqueFd, 2> read_ends, write_ends;
  for (size_t i = 0; i < 2; ++i) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) throw_errno("cannot create the container's output pipe");
    read_ends[i].reset(fds[0]);
    write_ends[i].reset(fds[1]);
  }
  spec.stdout_fd = write_ends[0].get();
  spec.stderr_fd = write_ends[1].get();
  spec.kill_with_parent = true;
  UniqueFd stdin_read, stdin_write;
  if (record.tty) {
    if (attached) size = caller_terminal_size();
    spec.tty_rows = size.rows;
    spec.tty_columns = size.columns;
  } else if (attached) {
    spec.inherit_stdin = record.interactive;
  } else if (record.interactive) {
    // A detached -i container keeps stdin open for `attach`: the supervisor holds its write end.
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) throw_errno("cannot create the container's stdin pipe");
    stdin_read.reset(fds[0]);
    stdin_write.reset(fds[1]);
    spec.stdin_fd = stdin_read.get();
  }
  std::optional<ContainerProcess> process;
  std::unique_ptr<PortForwarder> ports;
  std::unique_ptr<ContainerNetwork> network;
  std::unique_ptr<ContainerCgroup> cgroup;
  std::vector<UniqueFd> cgroup_files;
  try {
    try {
      cgroup = ContainerCgroup::create(record.id, record.settings.limits);
      cgroup_files = cgroup->membership_files();
    } catch (const StartError&) {
      throw;
    } catch (const Error& e) {
      throw StartError(e.what(), 125);
    }
    for (const auto& file : cgroup_files) spec.cgroup_fds.push_back(file.get());
    // Bound before the container runs, so that a port in use fails the start, as in docker.
    // Host networking has nothing to publish: the container's ports are the host's.
    if (!record.port_bindings.empty() && record.network != "host")
      ports = std::make_unique<PortForwarder>(record.port_bindings, record.name);
    try {
      network = ContainerNetwork::attach(containers, record, spec);
    } catch (const StartError&) {
      throw;
    } catch (const Error& e) {
      throw StartError(e.what(), 125);
    }
    process.emplace(start_container(spec));
  } catch (const StartError& e) {
    if (record.auto_remove) {
      containers.remove(record, true);
    } else {
      record.error = e.what();
      record.exit_code = e.exit_code();
      containers.save(record);
    }
    throw;
  }
  for (auto& end : write_ends) end.reset();  // EOF on the pipes once the container is gone
  stdin_read.reset();
  if (ports) ports->start(process->pid());

  if (!record.started_at.empty()) ++record.restart_count;
  record.status = ContainerStatus::running;
  record.process = ProcessIdentity::of(process->pid());
  record.supervisor = ProcessIdentity::of(::getpid());
  record.exit_code = 0;
  record.error.clear();
  record.started_at = rfc3339_now();
  record.ports = ports ? ports->published() : std::vector<PortMapping>{};
  record.settings.oom_killed = false;
  record.settings.manually_stopped = false;
  bool health = record.settings.healthcheck && record.settings.healthcheck->enabled();
  record.settings.health = {};
  if (health) record.settings.health.status = "starting";
  containers.save(record);
  Launched launched{
      std::move(*process),
      {OutputStream{"stdout", std::move(read_ends[0]), attached ? STDOUT_FILENO : -1, {}},
       OutputStream{"stderr", std::move(read_ends[1]), attached ? STDERR_FILENO : -1, {}}},
      std::move(log),
      std::move(attach)};
  launched.ports = std::move(ports);
  launched.network = std::move(network);
  launched.cgroup = std::move(cgroup);
  if (health) launched.health = std::make_unique<HealthChecker>(containers, record);
  if (record.tty) {
    // Everything the command writes comes out of the one pty, logged as stdout like docker's.
    launched.terminal = launched.process.take_terminal();
    set_nonblocking(launched.terminal.get());
    launched.streams[0].read_end.reset(::fcntl(launched.terminal.get(), F_DUPFD_CLOEXEC, 0));
    if (!launched.streams[0].read_end) throw_errno("cannot duplicate the terminal");
    launched.streams[1].read_end.reset();
    if (record.interactive) launched.input = PendingOutput(launched.terminal.get());
    launched.forward_own_stdin = attached && record.interactive;
    launched.attached_terminal = attached;
  } else if (stdin_write) {
    set_nonblocking(stdin_write.get());
    launched.stdin_pipe = std::move(stdin_write);
    launched.input = PendingOutput(launched.stdin_pipe.get());
  }
  return launched;
}

// Copies output and forwards signals until the container is gone, then records its exit (and
// removes a --rm container). Returns the exit code.
int supervise(const ContainerStore& containers, const std::string& id, Launched& launched,
              int signal_fd) {
  UniqueFd pidfd = open_pidfd(launched.process.pid());
  if (!pidfd) throw_errno("cannot watch the container's process");
  int terminal = launched.terminal.get();
  AttachServer& attach = launched.attach;
  const AttachServer::Handlers handlers = {
      [&](std::string_view data) { launched.input.push(data); },
      [&](WindowSize size) {
        if (terminal >= 0) resize_terminal(terminal, size);
      }};
  bool exited = false;
  bool reading_stdin = launched.forward_own_stdin;
  std::string buffer(64 * 1024, '\0');
  for (;;) {
    std::vector<pollfd> watched;
    for (auto& stream : launched.streams)
      if (stream.read_end) watched.push_back({stream.read_end.get(), POLLIN, 0});
    if (exited && watched.empty()) break;
    if (!exited) watched.push_back({pidfd.get(), POLLIN, 0});
    watched.push_back({signal_fd, POLLIN, 0});
    if (!launched.input.empty()) watched.push_back({launched.input.fd(), POLLOUT, 0});
    // Input waits while the container has not taken the last of it: a bounded buffer.
    bool input_room = launched.input.fd() >= 0 && launched.input.size() < buffer.size();
    if (reading_stdin && input_room) watched.push_back({STDIN_FILENO, POLLIN, 0});
    size_t attach_first = watched.size();
    if (input_room || launched.input.fd() < 0) attach.watch(watched);
    if (::poll(watched.data(), watched.size(), -1) < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot poll the container's output");
    }
    for (size_t i = 0; i < attach_first; ++i) {
      const pollfd& entry = watched[i];
      if (!entry.revents) continue;
      if (entry.fd == pidfd.get()) {
        exited = true;
      } else if (entry.fd == signal_fd) {
        signalfd_siginfo info{};
        if (::read(signal_fd, &info, sizeof info) != sizeof info) continue;
        if (info.ssi_signo == SIGWINCH) {
          if (WindowSize size = caller_terminal_size(); launched.attached_terminal && size.rows)
            resize_terminal(terminal, size);
        } else if (info.ssi_signo != SIGPIPE) {
          send_signal(pidfd.get(), static_cast<int>(info.ssi_signo));
        }
      } else if (entry.fd == launched.input.fd() && (entry.events & POLLOUT)) {
        launched.input.flush();
      } else if (entry.fd == STDIN_FILENO) {
        ssize_t got = ::read(STDIN_FILENO, buffer.data(), buffer.size());
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) reading_stdin = false;
        if (got > 0) launched.input.push(std::string_view(buffer.data(), size_t(got)));
      } else {
        for (size_t index = 0; index < launched.streams.size(); ++index) {
          OutputStream& stream = launched.streams[index];
          if (stream.read_end.get() != entry.fd) continue;
          ssize_t got = ::read(entry.fd, buffer.data(), buffer.size());
          if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
          // EIO from a pty: every process of the container closed its side.
          if (got <= 0) {
            stream.finish(launched.log.get());
            stream.read_end.reset();
          } else {
            std::string_view data(buffer.data(), size_t(got));
            stream.take(launched.log.get(), data);
            attach.broadcast(static_cast<uint8_t>(index + 1), data);
          }
        }
      }
    }
    attach.handle(std::vector<pollfd>(watched.begin() + long(attach_first), watched.end()),
                  handlers);
  }
  launched.ports.reset();  // the host ports are free once the exit is recorded
  launched.health.reset();
  int exit_code = launched.process.wait();
  launched.network.reset();  // its addresses too
  bool oom_killed = launched.cgroup && launched.cgroup->oom_killed();
  launched.cgroup.reset();
  // Clients get the code from here: a --rm container's record is gone when they look.
  attach.broadcast(kExitFrame, std::to_string(exit_code));
  attach.close();

  ContainerStore::Lock lock(containers, id);
  ContainerRecord record = containers.load(id);
  record.status = ContainerStatus::exited;
  record.exit_code = exit_code;
  record.finished_at = rfc3339_now();
  record.process = record.supervisor = {};
  record.ports.clear();
  record.endpoints.clear();
  record.settings.oom_killed = oom_killed;
  if (record.settings.health.status == "starting") record.settings.health.status = "unhealthy";
  containers.save(record);
  lock.release();
  if (record.auto_remove) containers.remove(record, true);
  return exit_code;
}

// The container's record, under the lock, after checking it is not already running.
ContainerRecord load_startable(const ContainerStore& containers, const std::string& id) {
  ContainerRecord record = containers.load(id);
  if (record.status == ContainerStatus::running &&
      (record.process.alive() || record.supervisor.alive()))
    throw Error("container " + record.name + " is already running");
  return record;
}

// Blocks the supervisor's signals and returns a signalfd that receives them. The container's
// process unblocks them before it runs its command.
UniqueFd block_supervisor_signals() {
  sigset_t set = supervisor_signals();
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) < 0) throw_errno("cannot block signals");
  UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC));
  if (!fd) throw_errno("cannot create a signalfd");
  return fd;
}

// Waits until the record no longer shows the run that `record` describes as running: the
// supervisor records the exit once the container is gone.
ContainerRecord wait_recorded(const ContainerStore& containers, const ContainerRecord& record) {
  UniqueFd supervisor = open_identity(record.supervisor);
  for (;;) {
    ContainerRecord current;
    try {
      current = containers.load(record.id);
    } catch (const NoSuchContainer&) {
      current = record;  // removed (--rm) after it exited
      current.status = ContainerStatus::exited;
      return current;
    }
    if (current.status != ContainerStatus::running || current.started_at != record.started_at)
      return current;
    if (!supervisor) {
      containers.refresh(current);  // nobody will record it: marked as lost
      return current;
    }
    // Woken by the supervisor's exit, or every 50 ms to look at the record.
    if (wait_exit(supervisor.get(), 50)) supervisor.reset();
  }
}

}  // namespace

int parse_signal(std::string_view name) {
  std::string upper;
  for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (!upper.empty() && upper.find_first_not_of("0123456789") == std::string::npos &&
      upper.size() <= 2) {
    int number = std::stoi(upper);
    if (number >= 1 && number <= 64) return number;
  }
  if (upper.rfind("SIG", 0) == 0) upper.erase(0, 3);
  // Real-time signals as systemd images name them: RTMIN+3, RTMAX-1.
  for (const char* base : {"RTMIN", "RTMAX"}) {
    if (upper.rfind(base, 0) != 0) continue;
    std::string offset = upper.substr(5);
    int number = std::string_view(base) == "RTMIN" ? SIGRTMIN : SIGRTMAX;
    if (offset.size() >= 2 && (offset[0] == '+' || offset[0] == '-') && offset.size() <= 3 &&
        offset.find_first_not_of("0123456789", 1) == std::string::npos)
      number += (offset[0] == '+' ? 1 : -1) * std::stoi(offset.substr(1));
    else if (!offset.empty())
      break;
    if (number >= SIGRTMIN && number <= SIGRTMAX) return number;
  }
  for (int number = 1; number < 32; ++number) {
    const char* abbreviation = ::sigabbrev_np(number);
    if (abbreviation && upper == abbreviation) return number;
  }
  throw Error("invalid signal: " + std::string(name));
}

int start_attached(const ContainerStore& containers, const std::string& id) {
  UniqueFd signal_fd = block_supervisor_signals();
  std::optional<Launched> launched;
  {
    ContainerStore::Lock lock(containers, id);
    ContainerRecord record = load_startable(containers, id);
    launched.emplace(launch(containers, record, true));
  }
  // Raw only once the command runs, so that a start error prints on a sane terminal; restored
  // however supervise ends.
  std::optional<RawTerminal> raw;
  if (launched->forward_own_stdin) raw.emplace(STDIN_FILENO);
  return supervise(containers, id, *launched, signal_fd.get());
}

namespace {

// A paused container gets its signals once thawed, as docker stops and kills paused ones.
void thaw(pid_t pid) {
  try {
    if (auto cgroup = ContainerCgroup::of_process(pid); cgroup && cgroup->frozen())
      cgroup->freeze(false);
  } catch (const Error&) {
    // Gone meanwhile.
  }
}

// docker's restart policy, applied by the detached supervisor after each exit: waits 100 ms,
// doubling each time (at most a minute), then starts the container again, until the policy says
// no or `stop` marked the container manually stopped.
void restart_by_policy(const ContainerStore& containers, const std::string& id, int signal_fd,
                       int exit_code) {
  int delay_ms = 100;
  for (;;) {
    try {
      ContainerRecord record = containers.load(id);
      if (!should_restart(record.settings, exit_code, record.restart_count)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      delay_ms = std::min(delay_ms * 2, 60000);
      ContainerStore::Lock lock(containers, id);
      record = containers.load(id);
      if (record.status == ContainerStatus::running ||
          !should_restart(record.settings, exit_code, record.restart_count))
        return;
      Launched launched = launch(containers, record, false);
      lock.release();
      exit_code = supervise(containers, id, launched, signal_fd);
    } catch (const Error&) {
      return;  // removed, or it could not start again (the record says why)
    }
  }
}

// Starts the container under a detached supervisor. With `attach`, the supervisor waits for this
// process to connect to its attach socket before it runs the command, and the connection is
// returned.
UniqueFd start_supervisor(const ContainerStore& containers, const std::string& id, bool attach,
                          WindowSize size) {
  ContainerStore::Lock lock(containers, id);
  ContainerRecord record = load_startable(containers, id);
  UniqueFd report_read = fork_daemon("the container's supervisor", 125, [&](StartReport& report) {
    UniqueFd signal_fd = block_supervisor_signals();
    Launched launched = launch(containers, record, false, size, attach);
    report.started();
    lock.release();  // this process's copy of the parent's lock
    int exit_code = supervise(containers, id, launched, signal_fd.get());
    restart_by_policy(containers, id, signal_fd.get(), exit_code);
  });
  UniqueFd socket;
  // Until the supervisor listens (or reports that it failed before it could).
  for (pollfd report_ready{report_read.get(), POLLIN, 0}; attach && !socket;) {
    try {
      socket = connect_attach_socket(containers.dir(id));
    } catch (const Error&) {
      if (::poll(&report_ready, 1, 10) > 0) break;
    }
  }
  read_start_report(report_read.get(), 125);
  ContainerRecord started = containers.load(id);
  if (started.status != ContainerStatus::running)
    throw StartError("the container's supervisor ended before starting it", 125);
  if (attach && !socket) socket = connect_attach_socket(containers.dir(id));
  return socket;
}

// Relays between this process's stdio and a supervisor's attach socket until the container
// exits (its exit code) or the detach keys detach from a tty container (0). With `sig_proxy`,
// signals this process gets go to the container, as docker's --sig-proxy does.
int attach_loop(const ContainerStore& containers, const ContainerRecord& record, UniqueFd socket,
                bool send_input, bool sig_proxy, const std::string& detach_keys) {
  const std::string& id = record.id;
  AttachClientOptions options;
  options.tty = record.tty;
  options.send_input = send_input;
  options.detach_keys = detach_keys;
  options.on_signal = [&](int signal) {
    if (sig_proxy) {
      try {
        kill_container(containers, id, signal);
      } catch (const Error&) {
        // It is ending anyway; its supervisor's EOF ends the relay.
      }
    }
    return true;
  };
  AttachEnd end = relay_attach(socket.get(), options);
  if (end.detached) return 0;  // the container keeps running
  // The record says exited too before this returns, so that a script's next command sees it;
  // a --rm container's record may already be gone, and then the frame's code is all there is.
  try {
    int recorded = wait_container(containers, id);
    return end.exit_code.value_or(recorded);
  } catch (const NoSuchContainer&) {
    if (!end.exit_code) throw;
    return *end.exit_code;
  }
}

}  // namespace

void start_detached(const ContainerStore& containers, const std::string& id) {
  start_supervisor(containers, id, false, {});
}

int start_and_attach(const ContainerStore& containers, const std::string& id,
                     const std::string& detach_keys) {
  UniqueFd socket = start_supervisor(containers, id, true, caller_terminal_size());
  ContainerRecord record = containers.load(id);
  return attach_loop(containers, record, std::move(socket), record.interactive, true, detach_keys);
}

void stop_container(const ContainerStore& containers, const std::string& id, int timeout_seconds,
                    int signal) {
  ContainerRecord record;
  {
    // Stopped by hand: the restart policy leaves it so (also when it is between restarts).
    ContainerStore::Lock lock(containers, id);
    record = containers.load(id);
    record.settings.manually_stopped = true;
    containers.save(record);
  }
  if (record.status != ContainerStatus::running) return;
  if (timeout_seconds == kDefaultStopTimeout)
    timeout_seconds = record.settings.stop_timeout >= 0 ? record.settings.stop_timeout : 10;
  UniqueFd process = open_identity(record.process);
  if (process) {
    if (signal == 0) {
      signal = SIGTERM;
      try {
        if (!record.stop_signal.empty()) signal = parse_signal(record.stop_signal);
      } catch (const Error&) {
        // An image's StopSignal slipway cannot read: SIGTERM, then SIGKILL, still stop it.
      }
    }
    send_signal(process.get(), signal);
    thaw(record.process.pid);
    if (!wait_exit(process.get(), timeout_seconds < 0 ? -1 : timeout_seconds * 1000)) {
      send_signal(process.get(), SIGKILL);
      wait_exit(process.get(), -1);
    }
  }
  wait_recorded(containers, record);
}

void kill_container(const ContainerStore& containers, const std::string& id, int signal) {
  ContainerRecord record = containers.load(id);
  UniqueFd process;
  if (record.status == ContainerStatus::running) process = open_identity(record.process);
  if (!process) throw Error("cannot kill container: " + id + ": container is not running");
  if (!send_signal(process.get(), signal)) throw_errno("cannot signal container " + id);
  thaw(record.process.pid);
}

int wait_container(const ContainerStore& containers, const std::string& id) {
  ContainerRecord record = containers.load(id);
  if (record.status != ContainerStatus::running) return record.exit_code;
  return wait_recorded(containers, record).exit_code;
}

int attach_container(const ContainerStore& containers, const std::string& id, bool forward_stdin,
                     bool sig_proxy, const std::string& detach_keys) {
  ContainerRecord record = containers.load(id);
  containers.refresh(record);
  const std::string stopped = "You cannot attach to a stopped container, start it first";
  if (record.status != ContainerStatus::running) throw Error(stopped);
  bool send_input = forward_stdin && record.interactive;
  if (record.tty && send_input && !::isatty(STDIN_FILENO))
    throw Error("the input device is not a TTY");
  UniqueFd socket;
  try {
    socket = connect_attach_socket(containers.dir(id));
  } catch (const Error&) {
    // It ended between the look at the record and the connect: its supervisor is gone.
    ContainerRecord now = containers.load(id);
    containers.refresh(now);
    if (now.status != ContainerStatus::running) throw Error(stopped);
    throw;
  }
  return attach_loop(containers, record, std::move(socket), send_input, sig_proxy, detach_keys);
}

}  // namespace slipway::runtime
