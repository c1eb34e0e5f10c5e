// Persistent containers, as `slipway create/start/ps/logs/stop/rm` see them.
//
// Layout under the store root:
//   containers/<64-hex id>/config.json  the record (ContainerRecord), replaced atomically
//   containers/<id>/lock                flock: held while the record is read, changed and written
//   containers/<id>/upper, work, rootfs the overlay's writable layer (kept across restarts, as
//                                       docker keeps a container's writes), workdir, mount point
//   containers/<id>/container.log       stdout/stderr, one JSON object a chunk, like docker's
//                                       json-file driver:
//                                       {"log":"hi\n","stream":"stdout","time":..}
//   containers/<id>/attach.sock         the supervisor's attach socket, while it runs
//                                       (runtime/attach.h)
//   containers/lock                     flock for creating and removing (names stay unique)
// The record's "Mounts" (docker inspect's shape; tmpfs options in HostConfig.Tmpfs) name the
// volumes a container uses (store/volumes.h); volume rm and prune check every record.
// A container's image is held in the store (holds/container-<id>) from create to rm, so that rmi -f
// and GC never take what it runs on.
//
// A started container has a supervisor: the process that started it and waits for it (the
// `slipway run`/`start -a` process itself, or a detached daemon for `run -d`/`start` and for
// `run -it`, which attaches to it). It copies the output into the log and to attached clients,
// feeds them stdin, holds a -t container's pty master, forwards published ports
// (runtime/port_forward.h), forwards signals, and records the exit. The record keeps the pids and
// kernel start times of both, so "running" is checked against /proc and a supervisor that died
// (the container dies with it) never leaves a container shown as running.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/fs.h"
#include "runtime/container_mounts.h"
#include "runtime/container_network.h"
#include "runtime/container_settings.h"
#include "runtime/runtime.h"
#include "store/store.h"

namespace slipway::runtime {

// "No such container: REF"
class NoSuchContainer : public Error {
 public:
  explicit NoSuchContainer(std::string_view reference)
      : Error("No such container: " + std::string(reference)) {}
};

enum class ContainerStatus { created, running, exited };

std::string_view status_name(ContainerStatus status);

// A process the record refers to: its pid and its start time in clock ticks after boot
// (/proc/PID/stat field 22), which tells it from a later process that reuses the pid.
struct ProcessIdentity {
  pid_t pid = 0;
  uint64_t start_time = 0;

  static ProcessIdentity of(pid_t pid);  // {0, 0} when there is no such process
  bool alive() const;
};

// A published port (-p): TCP or UDP `container_port` on the container's loopback, reached from
// host_ip:host_port on the host.
struct PortMapping {
  std::string host_ip;  // "" (as asked): every IPv4 address, shown as 0.0.0.0
  int host_port = 0;    // 0 (as asked): one the kernel picks, like docker's random ports
  // As asked, when above host_port: the first free port of host_port..host_port_end
  // (docker's -p 8000-8010:80).
  int host_port_end = 0;
  int container_port = 0;
  std::string protocol = "tcp";  // or "udp"

  std::string container_key() const { return std::to_string(container_port) + "/" + protocol; }
  std::string host_address() const;  // "0.0.0.0:32768", "[::1]:8080", "0.0.0.0:8000-8010"
};

// "[IP:][HOSTPORT:]CONTAINERPORT[/PROTO]" as docker run -p takes it, where either port may be a
// range ("8000-8002:80-82", "80-81"); one mapping a container port. Throws Error in docker's
// words naming the part it cannot use.
std::vector<PortMapping> parse_port_mappings(std::string_view text);
// The same for a text that names one container port ("80/udp", a key of ExposedPorts).
PortMapping parse_port_mapping(std::string_view text);

struct ContainerRecord {
  std::string id;                 // 64 hex digits
  std::string name;               // without docker's leading "/"
  std::string image;              // as the user named it ("busybox")
  std::string image_id;           // config digest
  std::string image_manifest;     // manifest digest, what the store holds for the container
  std::string created;            // RFC 3339 with nanoseconds, UTC
  std::vector<std::string> argv;  // entrypoint + command, resolved at create time
  std::vector<std::string> env;   // image's Env plus -e, "K=V"
  std::string working_dir = "/";
  std::string user;
  std::string stop_signal;  // the image's StopSignal ("" means SIGTERM)
  // bridge (the default network), a user network's name, host, none, container:NAME; private
  // (loopback only) in records made before slipway had networks
  std::string network = "bridge";
  NetworkOptions network_options;          // --network-alias, --ip, --link, --add-host, --dns...
  bool interactive = false;                // stdin stays open for attached runs
  bool tty = false;                        // a pseudo-terminal for stdin/stdout/stderr (-t)
  bool auto_remove = false;                // --rm: removed when it exits
  std::vector<PortMapping> port_bindings;  // as asked (-p, -P)
  std::vector<MountPoint> mounts;          // volumes, binds, tmpfs (runtime/container_mounts.h)
  bool read_only = false;                  // --read-only: the root filesystem is read-only

  ContainerStatus status = ContainerStatus::created;
  ProcessIdentity process;     // the container's init process, while running
  ProcessIdentity supervisor;  // the process that waits for it, while running
  int exit_code = 0;
  std::string error;                    // why the last start failed, if it did
  std::string started_at, finished_at;  // RFC 3339 with nanoseconds; "" when never
  int restart_count = 0;
  std::vector<PortMapping> ports;          // published now, with the ports bound: while running
  std::vector<NetworkEndpoint> endpoints;  // its addresses: while running
  RunSettings settings;  // limits, restart policy, caps, ... (container_settings.h)
};

// What `create` needs to know; the rest of the record comes from the image.
struct ContainerOptions {
  std::string name;                  // "" for a generated one
  std::vector<std::string> command;  // replaces the image's Cmd when not empty
  std::vector<std::string> env;      // added after the image's Env
  std::string working_dir, user;     // override the image's when not empty
  std::string network = "bridge";
  NetworkOptions network_options;
  bool interactive = false;
  bool tty = false;
  bool auto_remove = false;
  std::vector<PortMapping> ports;  // -p
  bool publish_all = false;        // -P: the image's ExposedPorts, each on a random host port
  // --entrypoint (replaces the image's and drops its Cmd), --hostname, --label, limits, ...;
  // the image's Labels and HEALTHCHECK are added by create.
  RunSettings settings;
  std::vector<MountPoint> mounts;  // -v, --mount, --tmpfs, as parsed (container_mounts.h)
  std::vector<std::pair<std::string, std::string>> volumes_from;  // --volumes-from: {ref, mode}
  bool read_only = false;                                         // --read-only
};

// The containers of one store.
class ContainerStore {
 public:
  explicit ContainerStore(store::Store& store);

  store::Store& image_store() const { return store_; }
  std::filesystem::path dir(std::string_view id) const { return root_ / std::string(id); }

  // Creates a container of `image` (already found by `image_reference`): record, directories,
  // the hold on the image, and its mounts (volumes created and seeded, see container_mounts.h).
  // Throws Error for a bad or taken name and StartError (125) when the image has no command to run.
  ContainerRecord create(const store::Image& image, std::string_view image_reference,
                         const ContainerOptions& options);

  // By full ID, name, or unique ID prefix. Throws NoSuchContainer, or Error for an ambiguous
  // prefix. The state is checked against the processes (see refresh).
  ContainerRecord find(std::string_view reference) const;
  // Every container, newest first.
  std::vector<ContainerRecord> list() const;
  // The record as it is on disk; throws NoSuchContainer when it is gone.
  ContainerRecord load(std::string_view id) const;
  void save(const ContainerRecord& record) const;

  // A record that says running, but whose processes are gone (a supervisor killed with -9, a
  // reboot), is marked exited with 255, as docker shows containers it lost.
  void refresh(ContainerRecord& record) const;

  // The size of the container's writable layer (its upper dir), as docker's SizeRw counts it:
  // the apparent sizes of everything but directories, a hard-linked file once.
  uint64_t writable_size(std::string_view id) const;

  // Removes a container that is not running: its directory, then the hold on its image. With
  // `anonymous_volumes` (rm -v, --rm) also its anonymous volumes that no other container uses.
  void remove(const ContainerRecord& record, bool anonymous_volumes = false) const;

  // An exclusive flock on the container's lock file for the object's lifetime. The fd is
  // close-on-exec, and a forked supervisor shares the lock until it closes its copy.
  class Lock {
   public:
    Lock(const ContainerStore& containers, std::string_view id);
    int fd() const { return fd_.get(); }
    void release() { fd_.reset(); }

   private:
    UniqueFd fd_;
  };

 private:
  // Completes what a killed create or rm left: half-made and half-removed directories.
  void finish_interrupted() const;
  std::string generate_name(const std::vector<ContainerRecord>& existing) const;
  std::vector<ContainerRecord> load_all() const;

  store::Store& store_;
  std::filesystem::path root_;
};

// The container's spec as the runtime runs it: the image's layers under its own upper dir.
ContainerSpec container_spec(const ContainerStore& containers, const ContainerRecord& record);

// ---- lifecycle (runtime/container_lifecycle.cpp)

// Runs the container in the foreground: output goes to this process's stdout/stderr and to the
// log, signals this process gets are forwarded, and the exit is recorded. Returns the exit code.
// Throws StartError (the record keeps the error) when the command could not start.
int start_attached(const ContainerStore& containers, const std::string& id);

// Starts the container under a detached supervisor and returns once the command runs. Throws
// StartError when it could not start.
void start_detached(const ContainerStore& containers, const std::string& id);

// Attaches this process's stdout and stderr (and stdin, when `forward_stdin` and the container
// was created with -i) to a running container through its supervisor's attach socket, until the
// container exits: returns its exit code. For a container with a terminal, typing `detach_keys`
// (bytes, runtime/attach.h parse_detach_keys) detaches and returns 0, the container running on.
// Throws Error when it is not running. With `sig_proxy`, signals this process gets are sent to
// the container (docker's --sig-proxy).
int attach_container(const ContainerStore& containers, const std::string& id, bool forward_stdin,
                     bool sig_proxy, const std::string& detach_keys);

// docker run -it: starts the container under a detached supervisor, attached (the caller's
// terminal raw, its size the pty's) from before the command runs, so that no output is missed.
// Returns the exit code, or 0 when `detach_keys` detached (the container runs on).
int start_and_attach(const ContainerStore& containers, const std::string& id,
                     const std::string& detach_keys);

// stop_container's timeout for "as the container says": its --stop-timeout, else 10 seconds.
inline constexpr int kDefaultStopTimeout = -2;

// Sends `signal` (0: the image's StopSignal, else SIGTERM), waits up to `timeout_seconds` for the
// container to exit, then SIGKILLs it; returns once the exit is recorded. No-op when not running.
void stop_container(const ContainerStore& containers, const std::string& id, int timeout_seconds,
                    int signal = 0);

// Sends a signal to a running container; throws Error when it is not running.
void kill_container(const ContainerStore& containers, const std::string& id, int signal);

// Waits until the container is not running and returns its exit code.
int wait_container(const ContainerStore& containers, const std::string& id);

// "SIGTERM", "TERM", "15" -> 15. Throws Error naming the bad value.
int parse_signal(std::string_view name);

}  // namespace slipway::runtime
