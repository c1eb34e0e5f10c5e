#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "common/fs.h"
#include "runtime/cgroups.h"
#include "runtime/device_cgroup.h"
#include "runtime/init.h"
#include "runtime/runtime.h"
#include "runtime/terminal.h"

namespace slipway::runtime {
namespace {

// What a failed child tells its parent through the error pipe before it exits.
struct ChildFailure {
  int exit_code;
  int error_number;
  char message[512];
};

// One extra mount as the child makes it: the target is relative to the new root, cleaned (no
// "." or ".." components, no repeated slashes).
struct ChildMount {
  std::string source;  // bind: host path; tmpfs: "tmpfs"
  std::string target;
  std::string data;  // tmpfs options
  bool tmpfs = false;
  bool file = false;  // the target is a file (a bind of a non-directory)
  bool read_only = false;
  // Made after /dev's tmpfs, which would hide it otherwise. A bind source is cloned into
  // `tree_fd` (open_tree) before pivot_root, while its host path is reachable, and attached then.
  bool under_dev = false;
  mutable int tree_fd = -1;  // set in the child
};

// Everything the child needs, prepared by the parent before clone: after clone the child makes
// only system calls on this data, with no allocation, so it is safe even if the parent process
// has other threads (whose locks, e.g. malloc's, the child would inherit in any state).
struct ChildPlan {
  std::string layers_base;
  std::string rootfs;
  std::string overlay_options;
  std::string working_dir;
  std::string hostname;
  std::vector<std::string> exec_candidates;  // absolute paths to try, in PATH order
  std::string command_name;                  // argv[0] as given, for messages
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::vector<ChildMount> mounts;
  uid_t uid = 0;
  gid_t gid = 0;
  int stdin_fd = -1;   // dup2'd to 0 when >= 0
  int stdout_fd = -1;  // dup2'd to 1 when >= 0
  int stderr_fd = -1;  // dup2'd to 2 when >= 0
  bool kill_with_parent = false;
  bool loopback_up = false;       // a new network namespace: its lo starts down
  int network_namespace_fd = -1;  // joined first when >= 0
  bool read_only_rootfs = false;
  bool tty = false;
  unsigned short tty_rows = 0, tty_columns = 0;
  int terminal_socket = -1;  // where the pty master goes (SCM_RIGHTS) when tty
  int error_fd = -1;
  // The devices cgroup's tasks file (detail::DeviceCgroup), joined first; -1 when there is
  // none, and then the command runs without CAP_MKNOD instead.
  int device_cgroup_tasks_fd = -1;
  std::vector<int> cgroup_fds;  // resource cgroups to join (ContainerSpec::cgroup_fds)
  std::optional<uint64_t> capabilities;
  bool privileged = false;
  bool no_new_privileges = false;
  bool init = false;
};

// Docker's default capability set (moby daemon/pkg/oci/caps/defaults.go).
constexpr int kDefaultCapabilities[] = {
    CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,
    CAP_MKNOD,   CAP_NET_RAW,      CAP_SETGID,           CAP_SETUID,
    CAP_SETFCAP, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
    CAP_KILL,    CAP_AUDIT_WRITE};

// ---- child side: async-signal-safe helpers only

void append(char* buffer, size_t size, const char* text) {
  size_t used = strnlen(buffer, size);
  for (; *text && used + 1 < size; ++text) buffer[used++] = *text;
  buffer[used] = '\0';
}

[[noreturn]] void child_fail(const ChildPlan& plan, int exit_code, const char* what,
                             const char* subject, int err) {
  ChildFailure failure{};
  failure.exit_code = exit_code;
  failure.error_number = err;
  append(failure.message, sizeof failure.message, what);
  if (subject) append(failure.message, sizeof failure.message, subject);
  ssize_t ignored = ::write(plan.error_fd, &failure, sizeof failure);
  (void)ignored;
  _exit(exit_code);
}

void check(const ChildPlan& plan, int result, const char* what, const char* subject = nullptr) {
  if (result < 0) child_fail(plan, 125, what, subject, errno);
}

// mkdir -p for an absolute path inside the container, using a stack buffer.
int make_directories(const char* path, mode_t mode) {
  char buffer[4096];
  size_t length = strnlen(path, sizeof buffer);
  if (length >= sizeof buffer) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buffer, path, length + 1);
  for (size_t i = 1; i <= length; ++i) {
    if (buffer[i] == '/' || buffer[i] == '\0') {
      char saved = buffer[i];
      buffer[i] = '\0';
      if (::mkdir(buffer, mode) < 0 && errno != EEXIST) return -1;
      buffer[i] = saved;
    }
  }
  return 0;
}

void mount_virtual(const ChildPlan& plan, const char* source, const char* target, const char* type,
                   unsigned long flags, const char* data) {
  check(plan, make_directories(target, 0755), "cannot create mount point ", target);
  check(plan, ::mount(source, target, type, flags, data), "cannot mount ", target);
}

void setup_dev(const ChildPlan& plan) {
  mount_virtual(plan, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
  struct Node {
    const char* path;
    unsigned major_number, minor_number;
  };
  static constexpr Node kNodes[] = {{"/dev/null", 1, 3},    {"/dev/zero", 1, 5},
                                    {"/dev/full", 1, 7},    {"/dev/random", 1, 8},
                                    {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};
  for (const auto& node : kNodes) {
    check(plan, ::mknod(node.path, S_IFCHR | 0666, makedev(node.major_number, node.minor_number)),
          "cannot create ", node.path);
    ::chmod(node.path, 0666);  // mknod's mode is filtered by the umask
  }
  mount_virtual(plan, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620,gid=5");
  check(plan, ::symlink("pts/ptmx", "/dev/ptmx"), "cannot create /dev/ptmx");
  mount_virtual(plan, "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV,
                "mode=1777,size=65536k");
  ::symlink("/proc/self/fd", "/dev/fd");
  ::symlink("/proc/self/fd/0", "/dev/stdin");
  ::symlink("/proc/self/fd/1", "/dev/stdout");
  ::symlink("/proc/self/fd/2", "/dev/stderr");
}

// What docker's default profile hides or freezes under /proc and /sys: root in a container must
// not reach host kernel knobs through them (/proc/sys/kernel/core_pattern runs a program of the
// container's choosing on the host; /proc/sysrq-trigger reboots it; /proc/kcore is the host's
// memory). Masked files get /dev/null bound over them, masked directories an empty read-only
// tmpfs; the others become read-only. Paths this kernel does not have are skipped.
void protect_kernel_interfaces(const ChildPlan& plan) {
  static constexpr const char* kMasked[] = {"/proc/asound",
                                            "/proc/acpi",
                                            "/proc/kcore",
                                            "/proc/keys",
                                            "/proc/latency_stats",
                                            "/proc/timer_list",
                                            "/proc/timer_stats",
                                            "/proc/sched_debug",
                                            "/proc/scsi",
                                            "/sys/firmware",
                                            "/sys/devices/virtual/powercap"};
  static constexpr const char* kReadOnly[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                              "/proc/sysrq-trigger"};
  for (const char* path : kMasked) {
    struct stat st {};
    if (::lstat(path, &st) < 0) continue;
    if (S_ISDIR(st.st_mode)) {
      check(plan,
            ::mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0"),
            "cannot mask ", path);
    } else {
      check(plan, ::mount("/dev/null", path, nullptr, MS_BIND, nullptr), "cannot mask ", path);
    }
  }
  for (const char* path : kReadOnly) {
    if (::access(path, F_OK) < 0) continue;
    check(plan, ::mount(path, path, nullptr, MS_BIND | MS_REC, nullptr), "cannot bind ", path);
    check(plan,
          ::mount(nullptr, path, nullptr,
                  MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr),
          "cannot make read-only ", path);
  }
}

// Into the devices cgroup before anything of the image runs, so no process of the container is
// ever outside it.
void join_device_cgroup(const ChildPlan& plan) {
  ssize_t written = 1;
  if (plan.device_cgroup_tasks_fd >= 0) {
    do {
      written = ::write(plan.device_cgroup_tasks_fd, "0", 1);
    } while (written < 0 && errno == EINTR);
  }
  if (written != 1) child_fail(plan, 125, "cannot join the devices cgroup", nullptr, errno);
  for (int fd : plan.cgroup_fds) {
    do {
      written = ::write(fd, "0", 1);
    } while (written < 0 && errno == EINTR);
    if (written != 1) child_fail(plan, 125, "cannot join the container's cgroup", nullptr, errno);
  }
}

void drop_privileges(const ChildPlan& plan) {
  uint64_t keep = 0;
  for (int cap : kDefaultCapabilities) keep |= uint64_t{1} << cap;
  if (plan.capabilities) keep = *plan.capabilities;
  // A process can only keep what it has: where slipway itself runs without some capability (a
  // container or VM without CAP_SYS_RESOURCE, say), --privileged and --cap-add ALL mean all that
  // is left, as runc leaves out what its own bounding set lacks.
  __user_cap_header_struct own_header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct own[2]{};
  check(plan, static_cast<int>(::syscall(SYS_capget, &own_header, own)),
        "cannot read capabilities");
  keep &= (uint64_t{own[1].permitted} << 32) | own[0].permitted;
  // Without a devices cgroup a node made with mknod would open any host device.
  if (plan.device_cgroup_tasks_fd < 0 && !plan.privileged) keep &= ~(uint64_t{1} << CAP_MKNOD);
  if (plan.no_new_privileges)
    check(plan, ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "cannot set no_new_privs");
  for (int cap = 0; cap < 64; ++cap) {
    if (keep & (uint64_t{1} << cap)) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      child_fail(plan, 125, "cannot drop capabilities", nullptr, errno);
  }
  // Raw system calls: glibc's wrappers broadcast the change to every thread it knows of and
  // wait for them, and in a child cloned from a multithreaded builder those threads do not exist.
  check(plan, static_cast<int>(::syscall(SYS_setgroups, 0, nullptr)),
        "cannot clear supplementary groups");
  check(plan, static_cast<int>(::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid)),
        "cannot set group id");
  check(plan, static_cast<int>(::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid)),
        "cannot set user id");
  if (plan.uid != 0) return;  // setuid away from root already cleared every capability
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  data[0].effective = data[0].permitted = data[0].inheritable = static_cast<uint32_t>(keep);
  data[1].effective = data[1].permitted = data[1].inheritable = static_cast<uint32_t>(keep >> 32);
  check(plan, static_cast<int>(::syscall(SYS_capset, &header, data)), "cannot set capabilities");
}

// A pty from the devpts now at /dev/pts (the container's own instance), as runc makes one with
// its console socket: the master goes to the parent, the slave becomes the controlling terminal
// and stdin/stdout/stderr of a new session.
void setup_terminal(const ChildPlan& plan) {
  int master = ::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  check(plan, master, "cannot open /dev/ptmx");
  int unlock = 0;
  check(plan, ::ioctl(master, TIOCSPTLCK, &unlock), "cannot unlock the pseudo-terminal");
  int slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  check(plan, slave, "cannot open the pseudo-terminal");
  // Owned by the user the command runs as, so that it can reopen /dev/pts/N (and chmod it).
  check(plan, ::fchown(slave, plan.uid, static_cast<gid_t>(-1)), "cannot chown the terminal");
  if (plan.tty_rows && plan.tty_columns) {
    winsize size{};
    size.ws_row = plan.tty_rows;
    size.ws_col = plan.tty_columns;
    ::ioctl(slave, TIOCSWINSZ, &size);
  }
  msghdr message{};
  char byte = 0;
  iovec data{&byte, 1};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(header), &master, sizeof master);
  check(plan, static_cast<int>(::sendmsg(plan.terminal_socket, &message, MSG_NOSIGNAL)),
        "cannot pass the terminal to slipway");
  ::close(master);
  check(plan, ::setsid(), "cannot start a session");
  check(plan, ::ioctl(slave, TIOCSCTTY, 0), "cannot set the controlling terminal");
  for (int fd = 0; fd < 3; ++fd) check(plan, ::dup2(slave, fd), "cannot set up the terminal");
  ::close(slave);
}

// Docker's containers have loopback up; a fresh network namespace has it down.
void bring_up_loopback(const ChildPlan& plan) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  check(plan, fd, "cannot open a socket for the loopback interface");
  ifreq request{};
  memcpy(request.ifr_name, "lo", 3);
  check(plan, ::ioctl(fd, SIOCGIFFLAGS, &request), "cannot read the loopback interface's flags");
  request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP | IFF_RUNNING);
  check(plan, ::ioctl(fd, SIOCSIFFLAGS, &request), "cannot bring up the loopback interface");
  ::close(fd);
}

// The command's environment: the spec's, and as docker gives a command with a terminal (run -t,
// exec -t), TERM=xterm unless it sets TERM itself.
std::vector<std::string> command_env(const ContainerSpec& spec) {
  std::vector<std::string> env = spec.env;
  bool has_term = std::any_of(env.begin(), env.end(),
                              [](const std::string& entry) { return entry.starts_with("TERM="); });
  if (spec.tty && !has_term) env.push_back("TERM=xterm");
  return env;
}

[[noreturn]] void exec_command(const ChildPlan& plan) {
  int first_error = ENOENT;
  for (const auto& candidate : plan.exec_candidates) {
    ::execve(candidate.c_str(), plan.argv.data(), plan.envp.data());
    // Like a shell's PATH search: keep looking after ENOENT, but remember a more telling error.
    if (errno != ENOENT && errno != ENOTDIR && first_error == ENOENT) first_error = errno;
  }
  char what[600] = "exec: \"";
  append(what, sizeof what, plan.command_name.c_str());
  if (first_error == ENOENT) {
    append(what, sizeof what,
           plan.command_name.find('/') == std::string::npos
               ? "\": executable file not found in $PATH"
               : "\": no such file or directory");
    child_fail(plan, 127, what, nullptr, 0);
  }
  append(what, sizeof what, "\": ");
  append(what, sizeof what, strerror(first_error));  // glibc's table: no allocation
  child_fail(plan, 126, what, nullptr, 0);
}

// "/proc/self/fd/N" into `buffer`: mounting through the fd's magic link acts on exactly the
// directory that was resolved inside the root, whatever happens to the path afterwards.
void fd_path(char (&buffer)[64], int fd) {
  char digits[16];
  int n = 0;
  unsigned value = static_cast<unsigned>(fd);
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value && n < 15);
  buffer[0] = '\0';
  append(buffer, sizeof buffer, "/proc/self/fd/");
  size_t used = strnlen(buffer, sizeof buffer);
  while (n > 0) buffer[used++] = digits[--n];
  buffer[used] = '\0';
}

// openat2 with RESOLVE_IN_ROOT: `..` and absolute symlinks stop at root_fd, so an image's
// symlink can never send a mount onto the host.
int open_in_root(int root_fd, const char* path, int flags) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_PATH | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, root_fd, path, &how, sizeof how));
}

// Opens the mount point `target` (relative, cleaned) inside root_fd, creating the missing
// directories and, for a file mount, an empty file. Returns an O_PATH fd or -1 with errno set.
int open_mount_point(int root_fd, const char* target, bool file) {
  char path[4096];
  size_t length = strnlen(target, sizeof path);
  if (length >= sizeof path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(path, target, length + 1);
  int parent = ::fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
  if (parent < 0) return -1;
  size_t start = 0;
  while (start < length) {
    size_t end = start;
    while (end < length && path[end] != '/') ++end;
    bool last = end == length;
    char saved = path[end];
    path[end] = '\0';
    bool as_file = last && file;
    int fd = open_in_root(root_fd, path, as_file ? 0 : O_DIRECTORY);
    if (fd < 0 && errno == ENOENT) {
      // Created through the parent's fd (itself resolved in the root), never by path.
      int made = as_file ? ::openat(parent, path + start,
                                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644)
                         : ::mkdirat(parent, path + start, 0755);
      if (made < 0 && errno != EEXIST) {
        int saved_errno = errno;
        ::close(parent);
        errno = saved_errno;
        return -1;
      }
      if (as_file && made >= 0) ::close(made);
      fd = open_in_root(root_fd, path, as_file ? 0 : O_DIRECTORY);
    }
    int saved_errno = errno;
    ::close(parent);
    if (fd < 0) {
      errno = saved_errno;
      return -1;
    }
    parent = fd;
    path[end] = saved;
    start = end + 1;
  }
  return parent;
}

// The extra mounts on the new root (the current directory): those under /dev after /dev is
// set up (`under_dev`), the others before pivot_root, while host paths are still reachable.
void mount_extras(const ChildPlan& plan, bool under_dev) {
  if (plan.mounts.empty()) return;
  int root_fd = ::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  check(plan, root_fd, "cannot open the root filesystem");
  for (const auto& m : plan.mounts) {
    const char* target = m.target.c_str();
    if (m.under_dev && !m.tmpfs && !under_dev) {
      m.tree_fd = ::open_tree(AT_FDCWD, m.source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
      check(plan, m.tree_fd, "cannot clone the mount source for /", target);
    }
    if (m.under_dev != under_dev) continue;
    int fd = open_mount_point(root_fd, target, m.file);
    check(plan, fd, "cannot create mount point /", target);
    char at[64];
    fd_path(at, fd);
    int result = m.tmpfs     ? ::mount("tmpfs", at, "tmpfs", MS_NOSUID | MS_NODEV, m.data.c_str())
                 : under_dev ? ::move_mount(m.tree_fd, "", fd, "",
                                            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
                             : ::mount(m.source.c_str(), at, nullptr, MS_BIND | MS_REC, nullptr);
    check(plan, result, "cannot mount on /", target);
    ::close(fd);
    if (m.read_only && !m.tmpfs) {
      // A bind mount takes MS_RDONLY only on a remount; reopen so the fd names the new mount.
      fd = open_in_root(root_fd, target, m.file ? 0 : O_DIRECTORY);
      check(plan, fd, "cannot reopen mount point /", target);
      fd_path(at, fd);
      check(plan, ::mount(nullptr, at, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr),
            "cannot make read-only: /", target);
      ::close(fd);
    }
  }
  ::close(root_fd);
}

// The command starts as from a shell: no signal blocked (a supervisor blocks the ones it
// forwards, to read them from a signalfd) and none ignored. exec keeps an ignored disposition,
// so one slipway or its exec daemon ignored (SIGPIPE, say) would reach the command: a producer
// in a pipeline would then get EPIPE instead of dying quietly.
void reset_signals(const ChildPlan& plan) {
  sigset_t none;
  sigemptyset(&none);
  check(plan, ::sigprocmask(SIG_SETMASK, &none, nullptr), "cannot reset the signal mask");
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int signal = 1; signal < NSIG; ++signal)
    ::sigaction(signal, &default_action, nullptr);  // fails for SIGKILL, SIGSTOP: already so
}

[[noreturn]] void child_main(const ChildPlan& plan) {
  reset_signals(plan);
  join_device_cgroup(plan);
  if (plan.network_namespace_fd >= 0)
    check(plan, ::setns(plan.network_namespace_fd, CLONE_NEWNET),
          "cannot join the container's network namespace");
  if (plan.kill_with_parent)
    check(plan, ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "cannot set the parent death signal");
  if (plan.stdin_fd >= 0) check(plan, ::dup2(plan.stdin_fd, 0), "cannot set up stdin");
  if (plan.stdout_fd >= 0) check(plan, ::dup2(plan.stdout_fd, 1), "cannot set up stdout");
  if (plan.stderr_fd >= 0) check(plan, ::dup2(plan.stderr_fd, 2), "cannot set up stderr");
  // Nothing of the container's mounts may propagate back to the host.
  check(plan, ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr),
        "cannot make mounts private");
  check(plan, ::chdir(plan.layers_base.c_str()), "cannot enter ", plan.layers_base.c_str());
  check(plan, ::mount("overlay", plan.rootfs.c_str(), "overlay", 0, plan.overlay_options.c_str()),
        "cannot mount the overlay root filesystem at ", plan.rootfs.c_str());
  check(plan, ::chdir(plan.rootfs.c_str()), "cannot enter ", plan.rootfs.c_str());
  mount_extras(plan, false);
  // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the image.
  check(plan, static_cast<int>(::syscall(SYS_pivot_root, ".", ".")), "pivot_root failed");
  check(plan, ::umount2(".", MNT_DETACH), "cannot detach the old root");
  check(plan, ::chdir("/"), "cannot enter the new root");
  // Virtual filesystems are mounted after the pivot so that a symlink in the image (say /proc ->
  // /somewhere) resolves inside the container and never on the host.
  mount_virtual(plan, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  setup_dev(plan);
  mount_extras(plan, true);
  // Programs rarely need /sys and the kernel may refuse sysfs in a shared network namespace:
  // a container without it still runs, so this one mount is best effort.
  if (make_directories("/sys", 0755) == 0)
    ::mount("sysfs", "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  if (!plan.privileged) protect_kernel_interfaces(plan);
  ::sethostname(plan.hostname.data(), plan.hostname.size());
  if (plan.loopback_up) bring_up_loopback(plan);
  if (plan.tty) setup_terminal(plan);
  // Created as root, like runc does, so that a USER without write access to its parent still
  // gets its WORKDIR; entered as the user, so that permissions on it apply.
  check(plan, make_directories(plan.working_dir.c_str(), 0755), "cannot create working directory ",
        plan.working_dir.c_str());
  // --read-only: only the root's own mount; volumes, /dev, /proc and tmpfs mounts stay writable.
  if (plan.read_only_rootfs)
    check(plan, ::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr),
          "cannot make the root filesystem read-only");
  drop_privileges(plan);
  check(plan, ::chdir(plan.working_dir.c_str()), "cannot enter working directory ",
        plan.working_dir.c_str());
  if (plan.init) become_init();  // returns in the command's process
  exec_command(plan);
}

// ---- parent side

std::string env_value(const std::vector<std::string>& env, std::string_view name) {
  std::string value;
  for (const auto& entry : env)
    if (entry.size() > name.size() && entry.compare(0, name.size(), name) == 0 &&
        entry[name.size()] == '=')
      value = entry.substr(name.size() + 1);  // the last assignment wins, as in a shell
  return value;
}

std::vector<std::string> exec_candidates(const std::string& command,
                                         const std::vector<std::string>& env) {
  if (command.find('/') != std::string::npos) return {command};
  std::string path = env_value(env, "PATH");
  if (path.empty()) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::vector<std::string> candidates;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    candidates.push_back((dir.empty() ? "." : dir) + "/" + command);
    start = end + 1;
  }
  return candidates;
}

// A file of the image as the container will see it: from the upper dir (an earlier run) or the
// top-most lower that has it. Whiteouts are not interpreted: a deleted passwd is rare enough.
std::optional<std::string> read_image_file(const ContainerSpec& spec, const char* rel) {
  namespace fs = std::filesystem;
  std::vector<fs::path> dirs = {spec.upper_dir};
  for (const auto& lower : spec.lower_dirs)
    dirs.push_back(fs::path(lower).is_absolute() ? fs::path(lower) : spec.layers_base / lower);
  for (const auto& dir : dirs) {
    std::error_code ec;
    fs::path path = dir / rel;
    auto status = fs::symlink_status(path, ec);
    if (ec || !fs::exists(status)) continue;
    if (!fs::is_regular_file(status)) return std::nullopt;
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }
  return std::nullopt;
}

bool all_digits(std::string_view text) {
  return !text.empty() && text.size() <= 10 &&
         text.find_first_not_of("0123456789") == std::string_view::npos;
}

// The fields of the line of an /etc/passwd-style file whose first field is `name`.
std::optional<std::vector<std::string>> find_entry(const std::optional<std::string>& file,
                                                   std::string_view name) {
  if (!file) return std::nullopt;
  std::istringstream lines(*file);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line.front() == '#') continue;
    std::vector<std::string> fields;
    std::istringstream parts(line);
    std::string field;
    while (std::getline(parts, field, ':')) fields.push_back(field);
    if (!fields.empty() && fields[0] == name) return fields;
  }
  return std::nullopt;
}

// "USER[:GROUP]" to ids, names looked up in the image like runc does.
std::pair<uid_t, gid_t> parse_user(const ContainerSpec& spec) {
  const std::string& user = spec.user;
  if (user.empty()) return {0, 0};
  size_t colon = user.find(':');
  std::string name = user.substr(0, colon);
  std::optional<std::string> group =
      colon == std::string::npos ? std::nullopt : std::optional(user.substr(colon + 1));
  uid_t uid = 0;
  gid_t gid = 0;
  if (all_digits(name)) {
    uid = static_cast<uid_t>(std::stoul(name));
    gid = static_cast<gid_t>(uid);
  } else {
    auto fields = find_entry(read_image_file(spec, "etc/passwd"), name);
    if (name.empty() || !fields || fields->size() < 4 || !all_digits((*fields)[2]) ||
        !all_digits((*fields)[3]))
      throw StartError("unable to find user " + name + ": no matching entries in passwd file", 125);
    uid = static_cast<uid_t>(std::stoul((*fields)[2]));
    gid = static_cast<gid_t>(std::stoul((*fields)[3]));
  }
  if (group && !group->empty()) {
    if (all_digits(*group)) {
      gid = static_cast<gid_t>(std::stoul(*group));
    } else {
      auto fields = find_entry(read_image_file(spec, "etc/group"), *group);
      if (!fields || fields->size() < 3 || !all_digits((*fields)[2]))
        throw StartError("unable to find group " + *group + ": no matching entries in group file",
                         125);
      gid = static_cast<gid_t>(std::stoul((*fields)[2]));
    }
  }
  return {uid, gid};
}

// A container path as the child takes it: relative to the root, without "." and ".." (a ".."
// above the root stays at it, as in a path lookup from "/").
std::string clean_target(const std::string& target) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= target.size()) {
    size_t end = target.find('/', start);
    if (end == std::string::npos) end = target.size();
    std::string part = target.substr(start, end - start);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = end + 1;
  }
  std::string out;
  for (const auto& part : parts) out += (out.empty() ? "" : "/") + part;
  return out;
}

std::string overlay_options(const ContainerSpec& spec) {
  std::string options = "lowerdir=";
  for (size_t i = 0; i < spec.lower_dirs.size(); ++i) {
    if (i) options += ':';
    options += spec.lower_dirs[i];
  }
  // Every layer must stand on its own as a lowerdir of later mounts: no redirects, no metacopy,
  // no index pointing at inodes of other layers.
  options += ",upperdir=" + spec.upper_dir.string() + ",workdir=" + spec.work_dir.string() +
             ",index=off,redirect_dir=off,metacopy=off";
  if (options.size() >= 4096)
    throw Error("image has too many layers to mount (" + std::to_string(spec.lower_dirs.size()) +
                ")");
  return options;
}

bool in_lowers(const ContainerSpec& spec, const std::filesystem::path& rel) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& lower : spec.lower_dirs) {
    fs::path lower_dir = fs::path(lower).is_absolute() ? fs::path(lower) : spec.layers_base / lower;
    if (fs::exists(fs::symlink_status(lower_dir / rel, ec))) return true;
  }
  return false;
}

// Removes `rel` from the upper dir when it is what the runtime would have created there as a
// mount point (an empty directory, or an empty file) and the image has no such path.
// The child's stdin (/dev/null unless inherited) and the close-on-exec pipe on which it reports
// a failure before exec, held by the parent until the child has execed or failed.
class ChildChannels {
 public:
  ChildChannels(const ContainerSpec& spec, ChildPlan& plan) {
    if (spec.stdin_fd >= 0 && !spec.inherit_stdin) {
      plan.stdin_fd = spec.stdin_fd;
    } else if (!spec.inherit_stdin) {
      dev_null_ = open_or_throw("/dev/null", O_RDONLY | O_CLOEXEC);
      plan.stdin_fd = dev_null_.get();
    }
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0) throw_errno("cannot create pipe");
    error_read_.reset(pipe_fds[0]);
    error_write_.reset(pipe_fds[1]);
    plan.error_fd = error_write_.get();
    if (spec.tty) {
      int socket_fds[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socket_fds) < 0)
        throw_errno("cannot create the terminal's socket");
      terminal_read_.reset(socket_fds[0]);
      terminal_write_.reset(socket_fds[1]);
      plan.tty = true;
      plan.tty_rows = spec.tty_rows;
      plan.tty_columns = spec.tty_columns;
      plan.terminal_socket = terminal_write_.get();
    }
  }

  // After wait_for_exec: the pty master the child sent, if it made one.
  UniqueFd receive_terminal() {
    if (!terminal_read_) return {};
    char byte = 0;
    iovec data{&byte, 1};
    msghdr message{};
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    ssize_t got;
    do {
      got = ::recvmsg(terminal_read_.get(), &message, MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    cmsghdr* header = got > 0 ? CMSG_FIRSTHDR(&message) : nullptr;
    if (!header || header->cmsg_type != SCM_RIGHTS) throw Error("the container sent no terminal");
    int fd = -1;
    memcpy(&fd, CMSG_DATA(header), sizeof fd);
    return UniqueFd(fd);
  }

  // After clone: the failure the child reported, or nullopt once its execve closed the pipe.
  std::optional<StartError> wait_for_exec() {
    error_write_.reset();
    terminal_write_.reset();
    ChildFailure failure{};
    ssize_t got;
    do {
      got = ::read(error_read_.get(), &failure, sizeof failure);
    } while (got < 0 && errno == EINTR);
    if (got != static_cast<ssize_t>(sizeof failure)) return std::nullopt;
    failure.message[sizeof failure.message - 1] = '\0';
    std::string message = failure.message;
    if (failure.error_number) message += std::string(": ") + std::strerror(failure.error_number);
    return StartError(message, failure.exit_code);
  }

 private:
  UniqueFd dev_null_, error_read_, error_write_, terminal_read_, terminal_write_;
};

bool remove_if_created(const ContainerSpec& spec, const std::filesystem::path& rel) {
  namespace fs = std::filesystem;
  fs::path in_upper = spec.upper_dir / rel;
  std::error_code ec;
  // The command may have replaced a parent with a symlink (even to a host path): never look
  // through one, or the cleanup could remove something outside the upper dir.
  fs::path prefix = spec.upper_dir;
  for (const auto& part : rel) {
    prefix /= part;
    if (fs::is_symlink(fs::symlink_status(prefix, ec))) return false;
  }
  auto status = fs::symlink_status(in_upper, ec);
  bool empty = (fs::is_directory(status) && fs::is_empty(in_upper, ec)) ||
               (fs::is_regular_file(status) && fs::file_size(in_upper, ec) == 0);
  if (ec || !empty || in_lowers(spec, rel)) return false;
  return fs::remove(in_upper, ec);
}

// Removes the directory `rel` from the upper dir when overlayfs copied it up only because a
// mount point was made (and removed again) inside it: empty, not opaque, and with the owner and
// mode of the directory below. Without it, every RUN step that gets /etc/resolv.conf on an image
// whose /etc lacks one would carry an `etc/` entry in its layer. Removing it shows the lower
// directory again, exactly as it was.
bool remove_if_bare_copy_up(const ContainerSpec& spec, const std::filesystem::path& rel) {
  namespace fs = std::filesystem;
  fs::path prefix = spec.upper_dir;
  std::error_code ec;
  for (const auto& part : rel) {
    prefix /= part;
    if (fs::is_symlink(fs::symlink_status(prefix, ec))) return false;
  }
  fs::path in_upper = spec.upper_dir / rel;
  if (!fs::is_directory(fs::symlink_status(in_upper, ec)) || !fs::is_empty(in_upper, ec) || ec)
    return false;
  std::vector<fs::path> lowers;
  for (const auto& lower : spec.lower_dirs)
    lowers.push_back(fs::path(lower).is_absolute() ? fs::path(lower) : spec.layers_base / lower);
  return is_bare_copy_up(spec.upper_dir, lowers, rel) && ::rmdir(in_upper.c_str()) == 0;
}

}  // namespace

bool is_bare_copy_up(const std::filesystem::path& upper_dir,
                     const std::vector<std::filesystem::path>& lowers,
                     const std::filesystem::path& rel) {
  std::filesystem::path in_upper = upper_dir / rel;
  struct stat upper {};
  if (::lstat(in_upper.c_str(), &upper) != 0 || !S_ISDIR(upper.st_mode)) return false;
  char opaque[2];
  if (::lgetxattr(in_upper.c_str(), "trusted.overlay.opaque", opaque, sizeof opaque) > 0)
    return false;
  for (const auto& lower : lowers) {
    struct stat below {};
    if (::lstat((lower / rel).c_str(), &below) != 0) continue;
    // The topmost lower that has the path is what the merged view shows without the copy.
    return S_ISDIR(below.st_mode) && below.st_mode == upper.st_mode &&
           below.st_uid == upper.st_uid && below.st_gid == upper.st_gid;
  }
  return false;
}

namespace {

// The runtime creates /proc, /dev and /sys when the image lacks them, and the mount points of
// extra mounts with their parents. They must not become part of the step's layer: after the
// run, the parent removes those that are still empty in the upper dir and absent below it, and
// the directories that were copied up only to hold them.
void remove_created_mount_points(const ContainerSpec& spec) {
  namespace fs = std::filesystem;
  for (const char* name : {"proc", "dev", "sys"}) remove_if_created(spec, name);
  // Deepest first, so that a parent made only for a mount point goes with it.
  for (auto m = spec.mounts.rbegin(); m != spec.mounts.rend(); ++m) {
    fs::path rel = clean_target(m->target);
    while (!rel.empty()) {
      if (!remove_if_created(spec, rel)) remove_if_bare_copy_up(spec, rel);
      rel = rel.parent_path();
    }
  }
}

}  // namespace

ExecProcess start_exec(const ContainerSpec& spec, pid_t init_pid) {
  if (spec.argv.empty()) throw StartError("no command specified", 126);
  ChildPlan plan;
  plan.working_dir = spec.working_dir.empty() ? "/" : spec.working_dir;
  plan.command_name = spec.argv[0];
  plan.exec_candidates = exec_candidates(spec.argv[0], spec.env);
  std::tie(plan.uid, plan.gid) = parse_user(spec);
  std::vector<std::string> argv_storage = spec.argv;
  std::vector<std::string> env_storage = command_env(spec);
  for (auto& arg : argv_storage) plan.argv.push_back(arg.data());
  plan.argv.push_back(nullptr);
  for (auto& entry : env_storage) plan.envp.push_back(entry.data());
  plan.envp.push_back(nullptr);
  plan.kill_with_parent = true;

  // Opened before anything else, so that they all belong to the same process.
  const std::string ns_dir = "/proc/" + std::to_string(init_pid) + "/ns/";
  UniqueFd pid_ns = open_or_throw(ns_dir + "pid", O_RDONLY | O_CLOEXEC);
  std::vector<UniqueFd> other_ns;
  for (const char* name : {"ipc", "uts", "net", "mnt"})
    other_ns.push_back(open_or_throw(ns_dir + name, O_RDONLY | O_CLOEXEC));
  std::vector<int> other_ns_fds;
  for (const auto& fd : other_ns) other_ns_fds.push_back(fd.get());

  // The command joins the container's devices cgroup (none for a container started without).
  std::unique_ptr<detail::DeviceCgroup> device_cgroup = detail::DeviceCgroup::of_process(init_pid);
  if (device_cgroup) plan.device_cgroup_tasks_fd = device_cgroup->tasks_fd();
  // And its resource cgroups (limits, freezer, accounting), and its capabilities.
  std::vector<UniqueFd> cgroup_files = cgroup_membership_files_of(init_pid);
  for (const auto& file : cgroup_files) plan.cgroup_fds.push_back(file.get());
  plan.capabilities = spec.capabilities;
  plan.no_new_privileges = spec.no_new_privileges;

  ChildChannels channels(spec, plan);

  // Entering a PID namespace moves only the children made afterwards; this process stays where
  // it is (and makes no other children).
  if (::setns(pid_ns.get(), CLONE_NEWPID) < 0)
    throw_errno("cannot enter the container's PID namespace");
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("cannot fork");
  if (pid == 0) {
    reset_signals(plan);
    join_device_cgroup(plan);
    check(plan, ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "cannot set the parent death signal");
    if (plan.stdin_fd >= 0) check(plan, ::dup2(plan.stdin_fd, 0), "cannot set up stdin");
    // The mount namespace last: entering it moves the root and working directory to the
    // container's root, where the rest happens.
    for (int fd : other_ns_fds) check(plan, ::setns(fd, 0), "cannot enter a container namespace");
    check(plan, ::chdir("/"), "cannot enter the container's root");
    if (plan.tty) setup_terminal(plan);
    drop_privileges(plan);
    check(plan, ::chdir(plan.working_dir.c_str()), "cannot enter working directory ",
          plan.working_dir.c_str());
    exec_command(plan);
  }
  ExecProcess process(pid, {});
  if (std::optional<StartError> failure = channels.wait_for_exec()) {
    process.wait();
    throw StartError(failure->what(), failure->exit_code() == 125 ? 126 : failure->exit_code());
  }
  if (spec.tty) process.terminal_ = channels.receive_terminal();
  return process;
}

ExecProcess::ExecProcess(ExecProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, 0)), terminal_(std::move(other.terminal_)) {}

ExecProcess::~ExecProcess() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);  // never leave a command behind that nobody waits for
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

int ExecProcess::wait() {
  if (pid_ <= 0) throw Error("exec'd process already waited for");
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) throw_errno("waitpid");
  }
  pid_ = 0;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 126;
}

int exec_in_container(const ContainerSpec& spec, pid_t init_pid) {
  ExecProcess process = start_exec(spec, init_pid);
  if (spec.tty) {
    UniqueFd master = process.take_terminal();
    relay_terminal(master.get(), spec.inherit_stdin);
  }
  return process.wait();
}

ContainerProcess start_container(const ContainerSpec& spec) {
  if (spec.argv.empty()) throw StartError("no command specified", 125);
  if (spec.lower_dirs.empty()) throw StartError("no image layers to run on", 125);

  ChildPlan plan;
  plan.layers_base = spec.layers_base.string();
  plan.rootfs = spec.rootfs.string();
  plan.overlay_options = overlay_options(spec);
  plan.working_dir = spec.working_dir.empty() ? "/" : spec.working_dir;
  plan.hostname = spec.hostname;
  plan.command_name = spec.argv[0];
  plan.exec_candidates = exec_candidates(spec.argv[0], spec.env);
  std::tie(plan.uid, plan.gid) = parse_user(spec);
  for (const auto& m : spec.mounts) {
    ChildMount child;
    child.target = clean_target(m.target);
    if (child.target.empty()) throw StartError("invalid mount target \"" + m.target + "\"", 125);
    child.under_dev = child.target.rfind("dev/", 0) == 0;
    child.tmpfs = m.type == ContainerMount::Type::tmpfs;
    child.read_only = m.read_only;
    if (child.tmpfs) {
      child.data = m.tmpfs_options;
    } else {
      std::error_code ec;
      auto status = std::filesystem::status(m.source, ec);
      if (ec) throw StartError("cannot mount " + m.source.string() + ": " + ec.message(), 125);
      child.source = m.source.string();
      child.file = !std::filesystem::is_directory(status);
    }
    plan.mounts.push_back(std::move(child));
  }
  std::vector<std::string> argv_storage = spec.argv;
  std::vector<std::string> env_storage = command_env(spec);
  for (auto& arg : argv_storage) plan.argv.push_back(arg.data());
  plan.argv.push_back(nullptr);
  for (auto& entry : env_storage) plan.envp.push_back(entry.data());
  plan.envp.push_back(nullptr);
  plan.stdout_fd = spec.stdout_fd;
  plan.stderr_fd = spec.stderr_fd;
  plan.kill_with_parent = spec.kill_with_parent;
  plan.network_namespace_fd = spec.network_namespace_fd;
  plan.loopback_up = spec.isolate_network && spec.network_namespace_fd < 0;
  plan.read_only_rootfs = spec.read_only_rootfs;
  plan.cgroup_fds = spec.cgroup_fds;
  plan.capabilities = spec.capabilities;
  plan.privileged = spec.privileged;
  plan.no_new_privileges = spec.no_new_privileges;
  plan.init = spec.init;
  std::unique_ptr<detail::DeviceCgroup> device_cgroup;
  if (!spec.privileged) device_cgroup = detail::DeviceCgroup::create();
  if (device_cgroup) plan.device_cgroup_tasks_fd = device_cgroup->tasks_fd();

  ChildChannels channels(spec, plan);

  unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
  if (spec.isolate_network && spec.network_namespace_fd < 0) flags |= CLONE_NEWNET;
  // The raw system call with no new stack behaves like fork() with namespace flags.
  long pid = ::syscall(SYS_clone, flags, nullptr, nullptr, nullptr, 0);
  if (pid < 0) throw_errno("cannot create container namespaces");
  if (pid == 0) child_main(plan);
  ContainerProcess process(spec, static_cast<pid_t>(pid));
  process.device_cgroup_ = std::move(device_cgroup);

  // The pipe closes on a successful execve (close-on-exec) or carries the child's failure.
  if (std::optional<StartError> failure = channels.wait_for_exec()) {
    process.wait();
    throw *failure;
  }
  process.terminal_ = channels.receive_terminal();
  return process;
}

ContainerProcess::ContainerProcess(ContainerSpec spec, pid_t pid)
    : spec_(std::move(spec)), pid_(pid) {}

ContainerProcess::ContainerProcess(ContainerProcess&& other) noexcept
    : spec_(std::move(other.spec_)),
      pid_(std::exchange(other.pid_, 0)),
      terminal_(std::move(other.terminal_)),
      device_cgroup_(std::move(other.device_cgroup_)) {}

ContainerProcess::~ContainerProcess() {
  if (pid_ <= 0) return;
  // Not waited for: an error on the way. The container must not outlive its owner.
  ::kill(pid_, SIGKILL);
  try {
    wait();
  } catch (const std::exception&) {
    // Nothing more can be done in a destructor; the kernel reaps it when this process exits.
  }
}

int ContainerProcess::wait() {
  if (pid_ <= 0) throw Error("container process already waited for");
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) throw_errno("waitpid");
  }
  pid_ = 0;
  device_cgroup_.reset();
  remove_created_mount_points(spec_);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 125;
}

int run_container(const ContainerSpec& spec) {
  return start_container(spec).wait();
}

}  // namespace slipway::runtime
