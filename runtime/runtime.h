// Public interface of runtime/: runs one process in a fresh container and waits for it.
//
// The container is new namespaces (mount, PID, UTS, IPC, optionally network) on an overlay of
// image layers: private mount propagation, overlay rootfs, /proc, a tmpfs /dev with the usual
// nodes, devpts and shm, read-only /sys, pivot_root, docker's default capability set, then
// execve. The process is PID 1 of its namespace; when it exits, everything in the container dies.
// A new network namespace has only loopback, brought up. With `tty` the command's stdio is a pty
// of the container's own devpts (runtime/terminal.h relays it).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "store/store.h"

namespace slipway::runtime {

namespace detail {
class DeviceCgroup;  // runtime/device_cgroup.h
}

// An extra mount in the container, made on the new root before pivot_root (host paths vanish
// after it). The target is resolved inside the container's root: symlinks on the way are
// followed but can never lead out of it, and missing directories (or, for a file source, the
// final file) are created and removed again after the run, so they never reach a layer.
struct ContainerMount {
  enum class Type { bind, tmpfs };
  Type type = Type::bind;
  std::filesystem::path source;  // bind: a host directory or file, already resolved
  std::string target;            // absolute path inside the container
  bool read_only = false;
  std::string tmpfs_options;  // tmpfs: mount data such as "size=67108864"
};

struct ContainerSpec {
  // The overlay: lowerdirs (top first) may be relative to `layers_base`, which is the working
  // directory while mounting, so that deep images fit the one-page limit of mount options.
  std::filesystem::path layers_base;
  std::vector<std::string> lower_dirs;
  std::filesystem::path upper_dir;  // must exist, empty or from an earlier run
  std::filesystem::path work_dir;   // overlay workdir: empty, same filesystem as upper_dir
  std::filesystem::path rootfs;     // mount point: an empty directory

  std::vector<std::string> argv;  // argv[0] is looked up in the container's PATH from `env`
  std::vector<std::string> env;   // "K=V"
  std::string working_dir = "/";
  // "" or "0" for root; "USER[:GROUP]" as numbers or names. Names are looked up in the image's
  // /etc/passwd and /etc/group (the upper dir, then the lowers, top first).
  std::string user;
  std::vector<ContainerMount> mounts;  // in order: a later mount may sit inside an earlier one
  bool read_only_rootfs = false;       // --read-only: the root is remounted read-only
  std::string hostname = "slipway";
  bool isolate_network = false;  // a new, empty network namespace (only loopback)
  bool inherit_stdin = false;    // otherwise stdin is `stdin_fd`, or /dev/null
  int stdin_fd = -1;             // the command's stdin when >= 0 and not inherit_stdin
  // A pseudo-terminal (docker -t) as the command's stdin, stdout, stderr and controlling
  // terminal, made in the container's own devpts as runc does, so that `tty` shows /dev/pts/N
  // inside. stdin/stdout/stderr settings are then ignored; the caller gets the master side.
  // The command also gets TERM=xterm unless `env` sets TERM, as with docker.
  bool tty = false;
  unsigned short tty_rows = 0, tty_columns = 0;  // its first window size; 0: the kernel's
  // Where the command's stdout and stderr go (the caller keeps its copies); -1: inherited.
  int stdout_fd = -1;
  int stderr_fd = -1;
  // SIGKILL the container when the process that started it dies, so that a supervisor that is
  // killed never leaves an unsupervised container behind.
  bool kill_with_parent = false;
  // With isolate_network: join this network namespace (runtime/container_network.h made it)
  // instead of making an empty one; -1: none.
  int network_namespace_fd = -1;
  // Set from the container's RunSettings (runtime/container_settings.h):
  std::optional<uint64_t> capabilities;  // bit mask; nullopt: docker's default set
  bool privileged = false;               // every capability, no device rules, nothing masked
  bool no_new_privileges = false;        // prctl(PR_SET_NO_NEW_PRIVS)
  bool init = false;  // PID 1 is a small init (runtime/init.h) that runs the command
  // Open cgroup membership files (v1 `tasks`, v2 `cgroup.procs`, runtime/cgroups.h) that the
  // container's first process writes "0" to before anything of the image runs.
  std::vector<int> cgroup_fds;
};

// The container could not be started (the command was never run): a bad command, a missing
// working directory, a mount the kernel refused. exit_code() is what docker uses for it:
// 127 for a command not found, 126 for one that cannot be executed, 125 otherwise.
class StartError : public Error {
 public:
  StartError(const std::string& what, int exit_code) : Error(what), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Scratch space for one container of an image, on the store's filesystem (so the upper dir can
// later be renamed into a layer): upper, work and rootfs dirs, removed with the object.
struct ImageContainer {
  TempDir scratch;
  ContainerSpec spec;  // overlay of the image's layers; env, working dir and user from its config
};

// Prepares a container of `image`: the caller sets spec.argv and any overrides, then runs it.
ImageContainer prepare_image_container(const store::Store& store, const store::Image& image,
                                       std::string_view purpose);

// A container whose command is running: its init process, a child of this process. Destroying
// it without wait() kills the container (SIGKILL) and reaps it, so an error in between never
// leaves one running.
class ContainerProcess {
 public:
  ContainerProcess(ContainerProcess&& other) noexcept;
  ContainerProcess& operator=(ContainerProcess&&) = delete;
  ContainerProcess(const ContainerProcess&) = delete;
  ~ContainerProcess();

  // The init process as this process's PID namespace sees it.
  pid_t pid() const { return pid_; }
  // Waits for the process to exit and returns its exit code, or 128+N when signal N killed it.
  int wait();
  // The pty master of a spec.tty container (once; empty afterwards or without a tty).
  UniqueFd take_terminal() { return std::move(terminal_); }

 private:
  friend ContainerProcess start_container(const ContainerSpec& spec);
  ContainerProcess(ContainerSpec spec, pid_t pid);

  ContainerSpec spec_;  // for the cleanup of mount points after the run
  pid_t pid_;
  UniqueFd terminal_;
  std::unique_ptr<detail::DeviceCgroup> device_cgroup_;  // removed once the container is gone
};

// Starts the container and returns once its command has been executed. Throws StartError when
// the process could not be started, Error for failures around it.
ContainerProcess start_container(const ContainerSpec& spec);

// Another command in a running container (docker exec), started by start_exec: a child of this
// process, killed (SIGKILL) and reaped when destroyed without wait().
class ExecProcess {
 public:
  ExecProcess(ExecProcess&& other) noexcept;
  ExecProcess& operator=(ExecProcess&&) = delete;
  ExecProcess(const ExecProcess&) = delete;
  ~ExecProcess();

  pid_t pid() const { return pid_; }
  // Waits for the command to exit: its exit code, or 128+N when signal N killed it.
  int wait();
  // The pty master of a spec.tty command (once).
  UniqueFd take_terminal() { return std::move(terminal_); }

 private:
  friend ExecProcess start_exec(const ContainerSpec& spec, pid_t init_pid);
  ExecProcess(pid_t pid, UniqueFd terminal) : pid_(pid), terminal_(std::move(terminal)) {}

  pid_t pid_;
  UniqueFd terminal_;
};

// Starts spec.argv in the namespaces and devices cgroup of the running container whose init
// process is `init_pid`, with spec.env, working_dir and user (looked up through the spec's
// layers); stdin from spec (inherited, stdin_fd or /dev/null), stdout/stderr inherited, or with
// spec.tty a pty of the container's (the caller gets the master). The command dies with the
// process that started it. Returns once it has been executed; throws StartError (126, or 127
// for a command not found) when it could not be. This process joins the container's PID
// namespace for its later children (it has to, for the command's sake): meant for a process
// that makes no other children afterwards.
ExecProcess start_exec(const ContainerSpec& spec, pid_t init_pid);

// docker exec in the foreground: start_exec, then with spec.tty the pty relayed to this
// process's stdio (stdin too with spec.inherit_stdin, in raw mode when it is a terminal), and
// the command's exit code.
int exec_in_container(const ContainerSpec& spec, pid_t init_pid);

// docker exec -d: start_exec under a detached process of its own (runtime/exec.cpp), which
// waits for the command (and drains a spec.tty command's pty); stdio is /dev/null. Returns once
// the command runs. The command ends with the container, or on its own.
void exec_detached(const ContainerSpec& spec, pid_t init_pid);

// docker exec -it: the command (spec.tty) under a detached process that holds its pty, this
// process's terminal relayed to it (raw; stdin with spec.inherit_stdin). Returns the command's
// exit code, or 0 when `detach_keys` (bytes, runtime/attach.h) were typed: the command runs on.
int exec_attached(const ContainerSpec& spec, pid_t init_pid, const std::string& detach_keys);

// Runs the container in the foreground (stdout/stderr inherited unless the spec says otherwise)
// and returns start_container(spec).wait().
int run_container(const ContainerSpec& spec);

// Whether the directory `rel` of an overlay's upper dir is one overlayfs copied up only to hold
// something inside it (a mount point): not opaque, and with the owner and mode of the topmost of
// `lowers` (absolute, top first) that has it. The runtime's mount-point cleanup and commit/diff
// both leave such a directory out.
bool is_bare_copy_up(const std::filesystem::path& upper_dir,
                     const std::vector<std::filesystem::path>& lowers,
                     const std::filesystem::path& rel);

}  // namespace slipway::runtime
