// Pseudo-terminals and attach through the real binary, driven the way a user's terminal drives
// it: the test holds the master of a pty whose slave is slipway's stdin, stdout, stderr and
// controlling terminal.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "common/fs.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// slipway running on a pty of the test's.
class PtySession {
 public:
  PtySession(const fs::path& root, const std::vector<std::string>& args, unsigned short rows = 24,
             unsigned short columns = 80) {
    winsize size{};
    size.ws_row = rows;
    size.ws_col = columns;
    int master = -1, slave = -1;
    if (::openpty(&master, &slave, nullptr, nullptr, &size) < 0)
      throw std::runtime_error("openpty failed");
    master_.reset(master);
    // No output processing, so that the test reads the bytes slipway wrote: on a user's
    // terminal ONLCR would turn the container's "\r\n" into "\r\r\n" (as under docker run -t
    // without -i), invisibly. Line editing and echo stay on, as on any terminal.
    termios attributes{};
    ::tcgetattr(slave, &attributes);
    attributes.c_oflag &= ~static_cast<tcflag_t>(OPOST);
    ::tcsetattr(slave, TCSANOW, &attributes);
    std::vector<std::string> argv = {SLIPWAY_BINARY, "--root", root.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::setsid();
      ::ioctl(slave, TIOCSCTTY, 0);
      for (int fd = 0; fd < 3; ++fd) ::dup2(slave, fd);
      ::close(slave);
      ::close(master);
      std::vector<char*> pointers;
      for (auto& arg : argv) pointers.push_back(arg.data());
      pointers.push_back(nullptr);
      ::execv(pointers[0], pointers.data());
      _exit(127);
    }
    ::close(slave);
  }
  PtySession(const PtySession&) = delete;
  PtySession& operator=(const PtySession&) = delete;
  ~PtySession() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  int master() const { return master_.get(); }
  pid_t pid() const { return pid_; }
  const std::string& output() const { return output_; }

  void type(const std::string& keys) { write_all(master_.get(), keys.data(), keys.size(), "pty"); }

  // Reads until the output has `wanted` in it (true) or the time is up or the pty closed.
  bool expect(const std::string& wanted, int timeout_ms = 20000) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (output_.find(wanted) == std::string::npos) {
      if (!read_some(deadline)) return false;
    }
    return true;
  }

  // Reads to the end and returns the exit code (-1 if it did not end in time).
  int finish(int timeout_ms = 30000) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (read_some(deadline)) {
    }
    for (int i = 0; i < timeout_ms / 10; ++i) {
      int status = 0;
      pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

  void resize(unsigned short rows, unsigned short columns) {
    winsize size{};
    size.ws_row = rows;
    size.ws_col = columns;
    ::ioctl(master_.get(), TIOCSWINSZ, &size);  // the kernel sends slipway SIGWINCH
  }

  termios attributes() const {
    termios now{};
    ::tcgetattr(master_.get(), &now);
    return now;
  }

 private:
  // False at EOF (EIO once slipway and its children closed the slave) or at the deadline.
  bool read_some(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd entry{master_.get(), POLLIN, 0};
    if (::poll(&entry, 1, static_cast<int>(left.count())) <= 0) return false;
    char buffer[4096];
    ssize_t got = ::read(master_.get(), buffer, sizeof buffer);
    if (got <= 0) return false;
    output_.append(buffer, size_t(got));
    return true;
  }

  UniqueFd master_;
  pid_t pid_ = 0;
  std::string output_;
};

std::string trimmed(const std::string& text) {
  size_t end = text.find_last_not_of("\n");
  return end == std::string::npos ? "" : text.substr(0, end + 1);
}

class ContainerTtyTest : public BusyboxStoreTest {
 protected:
  // Nothing may be left behind: no container, no mount, no attach socket.
  void TearDown() override {
    remove_containers_and_expect_no_mounts();
    std::error_code ec;
    for (const auto& entry : fs::recursive_directory_iterator(root() / "containers", ec))
      EXPECT_NE(entry.path().filename(), "attach.sock") << entry.path();
  }

  CommandResult slipway(const std::vector<std::string>& args) { return run_slipway(root(), args); }
};

TEST_F(ContainerTtyTest, RunTGivesTheCommandAPtsTerminalWithCrLfLineEndings) {
  PtySession run(root(), {"run", "--rm", "-t", "busybox", "sh", "-c",
                          "tty; test -t 0 && test -t 1 && echo both-ttys; echo $TERM; exit 3"});
  EXPECT_EQ(run.finish(), 3);
  EXPECT_EQ(run.output(), "/dev/pts/0\r\nboth-ttys\r\nxterm\r\n");
}

TEST_F(ContainerTtyTest, RunTTakesTheCallersWindowSize) {
  PtySession run(root(), {"run", "--rm", "-t", "busybox", "stty", "size"}, 33, 101);
  EXPECT_EQ(run.finish(), 0);
  EXPECT_EQ(run.output(), "33 101\r\n");
}

TEST_F(ContainerTtyTest, RunItRelaysKeysInRawModeResizesAndRestoresTheTerminal) {
  PtySession run(root(), {"run", "--rm", "-it", "busybox", "sh"}, 24, 80);
  ASSERT_TRUE(run.expect("# ")) << run.output();
  // slipway put its terminal in raw mode: no echo, no line editing of its own.
  termios during = run.attributes();
  EXPECT_EQ(during.c_lflag & (ICANON | ECHO), 0u);
  run.resize(40, 120);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  run.type("stty size; echo sum=$((40+2))\r");
  EXPECT_TRUE(run.expect("40 120\r\nsum=42\r\n")) << run.output();
  // ctrl-c reaches the container's shell as a key (its line discipline makes the SIGINT), so a
  // sleep is interrupted and the shell, and slipway, live on.
  run.type("sleep 100\r");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  run.type("\x03");
  run.type("echo after-$((6*7))\r");
  EXPECT_TRUE(run.expect("after-42")) << run.output();
  run.type("exit 5\r");
  EXPECT_EQ(run.finish(), 5);
  termios after = run.attributes();
  EXPECT_EQ(after.c_lflag & (ICANON | ECHO), static_cast<tcflag_t>(ICANON | ECHO));
}

TEST_F(ContainerTtyTest, ExecTRunsOnItsOwnPtyInTheContainer) {
  ASSERT_EQ(slipway({"run", "-d", "--name", "box", "busybox", "sleep", "1000"}).exit_code, 0);
  PtySession tty(root(), {"exec", "-t", "box", "sh", "-c", "tty; stty size; echo $TERM"}, 30, 90);
  EXPECT_EQ(tty.finish(), 0);
  EXPECT_TRUE(std::regex_match(tty.output(), std::regex("/dev/pts/[0-9]+\r\n30 90\r\nxterm\r\n")))
      << tty.output();

  PtySession shell(root(), {"exec", "-it", "box", "sh"});
  ASSERT_TRUE(shell.expect("# ")) << shell.output();
  shell.type("echo in-$(hostname | wc -c)\r");
  EXPECT_TRUE(shell.expect("in-13\r\n")) << shell.output();
  shell.type("exit 2\r");
  EXPECT_EQ(shell.finish(), 2);
  EXPECT_EQ(shell.attributes().c_lflag & ICANON, static_cast<tcflag_t>(ICANON));
}

TEST_F(ContainerTtyTest, DetachedTtyOutputIsLoggedWithCrLf) {
  auto started =
      slipway({"run", "-d", "-t", "--name", "dt", "busybox", "sh", "-c", "echo one; echo two"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  EXPECT_EQ(trimmed(slipway({"wait", "dt"}).out), "0");
  EXPECT_EQ(slipway({"logs", "dt"}).out, "one\r\ntwo\r\n");
}

TEST_F(ContainerTtyTest, InteractiveTtyNeedsATerminalOnStdin) {
  auto run = slipway({"run", "-it", "busybox", "true"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.err, "Error: the input device is not a TTY\n");
  EXPECT_EQ(slipway({"ps", "-aq"}).out, "");  // refused before anything was created
  // Without -i a pipe is fine: the container still gets a terminal.
  auto plain = slipway({"run", "--rm", "-t", "busybox", "sh", "-c", "tty"});
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out, "/dev/pts/0\r\n");
}

TEST_F(ContainerTtyTest, AttachSeesLaterOutputAndExitsWithTheContainersCode) {
  ASSERT_EQ(slipway({"run", "-d", "--name", "slow", "busybox", "sh", "-c",
                     "for i in 1 2 3 4 5 6 7 8; do echo line$i; sleep 0.3; done; "
                     "echo bye >&2; exit 7"})
                .exit_code,
            0);
  ASSERT_NE(logs_when_ready("slow", "line1").find("line1"), std::string::npos);
  auto attached = slipway({"attach", "slow"});
  EXPECT_EQ(attached.exit_code, 7) << attached.err;
  // Only what comes after the attach, as docker attach shows it; stderr apart.
  EXPECT_EQ(attached.out.find("line1\n"), std::string::npos) << attached.out;
  EXPECT_NE(attached.out.find("line7\nline8\n"), std::string::npos) << attached.out;
  EXPECT_EQ(attached.err, "bye\n");
  EXPECT_EQ(slipway({"logs", "slow"}).out,
            "line1\nline2\nline3\nline4\nline5\nline6\nline7\nline8\n");

  auto stopped = slipway({"attach", "slow"});
  EXPECT_EQ(stopped.exit_code, 1);
  EXPECT_EQ(stopped.err, "Error: You cannot attach to a stopped container, start it first\n");
}

TEST_F(ContainerTtyTest, AttachFeedsStdinOfADetachedInteractiveContainer) {
  ASSERT_EQ(slipway({"run", "-di", "--name", "shell", "busybox", "sh"}).exit_code, 0);
  // The shell waits on its open stdin, still running.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_NE(slipway({"ps"}).out.find("shell"), std::string::npos);
  auto attached = run_program({SLIPWAY_BINARY, "--root", root().string(), "attach", "shell"}, {},
                              "echo hi-$((1+1)); exit 3\n");
  EXPECT_EQ(attached.exit_code, 3) << attached.err;
  EXPECT_EQ(attached.out, "hi-2\n");
}

TEST_F(ContainerTtyTest, AttachToATtyContainerRelaysKeysAndDetachesWithCtrlPCtrlQ) {
  ASSERT_EQ(slipway({"run", "-dit", "--name", "term", "busybox", "sh"}).exit_code, 0);
  {
    PtySession attach(root(), {"attach", "term"}, 50, 70);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    attach.type("stty size; echo via-$((2*3))\r");
    EXPECT_TRUE(attach.expect("50 70\r\nvia-6\r\n")) << attach.output();
    // docker's detach keys: attach ends with 0, the container runs on.
    attach.type("\x10\x11");
    EXPECT_EQ(attach.finish(), 0);
    EXPECT_EQ(attach.attributes().c_lflag & ICANON, static_cast<tcflag_t>(ICANON));
  }
  EXPECT_NE(slipway({"ps"}).out.find("term"), std::string::npos) << "detaching stopped it";
  PtySession again(root(), {"attach", "term"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  again.type("exit 4\r");
  EXPECT_EQ(again.finish(), 4);
  EXPECT_EQ(trimmed(slipway({"wait", "term"}).out), "4");
}

TEST_F(ContainerTtyTest, RunItDetachesWithCtrlPCtrlQAndAttachComesBack) {
  PtySession run(root(), {"run", "-it", "--name", "back", "busybox", "sh"});
  ASSERT_TRUE(run.expect("# ")) << run.output();
  run.type("echo first-$((1+1))\r");
  EXPECT_TRUE(run.expect("first-2\r\n")) << run.output();
  run.type("\x10\x11");
  EXPECT_EQ(run.finish(), 0);
  EXPECT_EQ(run.attributes().c_lflag & ICANON, static_cast<tcflag_t>(ICANON));
  EXPECT_NE(slipway({"ps"}).out.find("back"), std::string::npos) << "detaching stopped it";

  PtySession attach(root(), {"attach", "back"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  attach.type("echo second-$((2+2)); exit 6\r");
  EXPECT_TRUE(attach.expect("second-4\r\n")) << attach.output();
  EXPECT_EQ(attach.finish(), 6);
  EXPECT_EQ(trimmed(slipway({"wait", "back"}).out), "6");
}

TEST_F(ContainerTtyTest, AttachGetsTheExitCodeOfARemovedContainerAndProxiesSignals) {
  // 5 s: attach must start while it runs, also when a loaded machine is slow to show "up".
  ASSERT_EQ(slipway({"run", "-d", "--rm", "--name", "gone", "busybox", "sh", "-c",
                     "echo up; sleep 5; exit 11"})
                .exit_code,
            0);
  ASSERT_NE(logs_when_ready("gone", "up").find("up"), std::string::npos);
  auto attached = slipway({"attach", "gone"});
  EXPECT_EQ(attached.exit_code, 11) << attached.err;
  EXPECT_EQ(slipway({"ps", "-aq"}).out, "");

  ASSERT_EQ(slipway({"run", "-d", "--name", "trap", "busybox", "sh", "-c",
                     "trap 'echo got-term; exit 9' TERM; echo ready; "
                     "while true; do echo tick; sleep 0.2; done"})
                .exit_code,
            0);
  ASSERT_NE(logs_when_ready("trap", "ready").find("ready"), std::string::npos);
  PtySession attach(root(), {"attach", "trap"});
  // Output through attach: it is connected, with its signals taken for the container.
  ASSERT_TRUE(attach.expect("tick")) << attach.output();
  ::kill(attach.pid(), SIGTERM);
  EXPECT_TRUE(attach.expect("got-term")) << attach.output();
  EXPECT_EQ(attach.finish(), 9);
}

TEST_F(ContainerTtyTest, DetachKeysOfRunItAndAttachAreDockersKeyNames) {
  // The command reads four raw bytes: ctrl-p ctrl-q are keys like any other now, and a ctrl-a
  // that does not start "ctrl-a,x" after all reaches the container with the key after it.
  PtySession run(
      root(), {"run", "-it", "--name", "keys", "--detach-keys", "ctrl-a,x", "busybox", "sh", "-c",
               "stty raw -echo; echo ready; dd bs=1 count=4 2>/dev/null | od -An -tx1; "
               "stty sane; echo second; exec sleep 1000"});
  ASSERT_TRUE(run.expect("ready")) << run.output();
  run.type("\x10\x11\x01y");
  EXPECT_TRUE(run.expect("10 11 01 79\nsecond\r\n")) << run.output();
  run.type("\x01x");
  EXPECT_EQ(run.finish(), 0);
  EXPECT_EQ(run.attributes().c_lflag & ICANON, static_cast<tcflag_t>(ICANON));
  EXPECT_NE(slipway({"ps"}).out.find("keys"), std::string::npos) << "detaching stopped it";

  PtySession attach(root(), {"attach", "--detach-keys", "ctrl-@,ctrl-[", "keys"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  attach.type(std::string("\0\x1b", 2));
  EXPECT_EQ(attach.finish(), 0);
  EXPECT_NE(slipway({"ps"}).out.find("keys"), std::string::npos) << "detaching stopped it";
}

TEST_F(ContainerTtyTest, StartAiTakesDetachKeys) {
  ASSERT_EQ(slipway({"create", "-it", "--name", "later", "busybox", "sh"}).exit_code, 0);
  PtySession start(root(), {"start", "-ai", "--detach-keys", "q,w", "later"});
  ASSERT_TRUE(start.expect("# ")) << start.output();
  start.type("echo up-$((3*3))\r");
  EXPECT_TRUE(start.expect("up-9\r\n")) << start.output();
  start.type("qw");
  EXPECT_EQ(start.finish(), 0);
  EXPECT_NE(slipway({"ps"}).out.find("later"), std::string::npos) << "detaching stopped it";
}

TEST_F(ContainerTtyTest, DetachingFromExecItLeavesTheCommandRunning) {
  ASSERT_EQ(slipway({"run", "-d", "--name", "box", "busybox", "sleep", "1000"}).exit_code, 0);
  {
    PtySession exec(root(), {"exec", "-it", "box", "sh"});
    ASSERT_TRUE(exec.expect("# ")) << exec.output();
    exec.type("echo $$ > /tmp/first; echo saved-$((1+1))\r");
    // The output, not the terminal's echo of the typed line: the file is written by then.
    ASSERT_TRUE(exec.expect("saved-2\r\n")) << exec.output();
    exec.type("\x10\x11");
    EXPECT_EQ(exec.finish(), 0);
    EXPECT_EQ(exec.attributes().c_lflag & ICANON, static_cast<tcflag_t>(ICANON));
  }
  {
    PtySession exec(root(), {"exec", "-it", "--detach-keys", "ctrl-e,e", "box", "sh"});
    ASSERT_TRUE(exec.expect("# ")) << exec.output();
    exec.type("echo $$ > /tmp/second; echo saved-$((1+1))\r");
    // The output, not the terminal's echo of the typed line: the file is written by then.
    ASSERT_TRUE(exec.expect("saved-2\r\n")) << exec.output();
    exec.type(
        "\x05"
        "e");
    EXPECT_EQ(exec.finish(), 0);
  }
  // Both shells run on in the container, waiting for keys on their terminals.
  auto alive = slipway({"exec", "box", "sh", "-c",
                        "kill -0 $(cat /tmp/first) && kill -0 $(cat /tmp/second) && echo alive"});
  EXPECT_EQ(alive.out, "alive\n") << alive.err;
  EXPECT_EQ(count_lines_containing(slipway({"exec", "box", "ps"}).out, " sh"), 2);
  // Without detaching, exec -it still ends with the command's exit code.
  PtySession last(root(), {"exec", "-it", "box", "sh", "-c", "exit 3"});
  EXPECT_EQ(last.finish(), 3);
}

TEST_F(ContainerTtyTest, ExecItCommandsStartWithNoSignalIgnored) {
  ASSERT_EQ(slipway({"run", "-d", "--name", "box", "busybox", "sleep", "1000"}).exit_code, 0);
  // As under docker exec: SIGPIPE (and every other signal) at its default, not ignored as its
  // daemon might have left it.
  PtySession signals(root(), {"exec", "-it", "box", "grep", "SigIgn", "/proc/self/status"});
  EXPECT_EQ(signals.finish(), 0);
  EXPECT_EQ(signals.output(), "SigIgn:\t0000000000000000\r\n");
}

TEST_F(ContainerTtyTest, ExecItReturnsWhileAProcessTheCommandLeftKeepsWriting) {
  ASSERT_EQ(slipway({"run", "-d", "--name", "box", "busybox", "sleep", "1000"}).exit_code, 0);
  // A process the command leaves behind writing to the terminal (ignoring the SIGHUP its
  // session leader's exit sends it) does not hold the exit back: exec -it returns with the
  // command's code while the writer is still at it. The command exits once the writer has begun.
  PtySession writer(root(),
                    {"exec", "-it", "box", "sh", "-c",
                     "(trap '' HUP; echo writing; touch /tmp/writing; exec cat /dev/zero) "
                     "> /dev/tty & while [ ! -e /tmp/writing ]; do sleep 0.01; done; exit 3"});
  EXPECT_EQ(writer.finish(), 3);
  EXPECT_EQ(writer.output().rfind("writing\r\n", 0), 0u) << writer.output().substr(0, 200);
}

TEST_F(ContainerTtyTest, BadDetachKeysAreOneLineErrorsNamingTheKey) {
  auto run = slipway({"run", "--rm", "--detach-keys", "ctrl-p,shift-a", "busybox", "true"});
  EXPECT_EQ(run.exit_code, 125);
  EXPECT_EQ(run.err, "Error: invalid detach keys (ctrl-p,shift-a): Unknown character: 'shift-a'\n");
  EXPECT_EQ(slipway({"ps", "-aq"}).out, "");  // refused before anything was created
  ASSERT_EQ(slipway({"run", "-d", "--name", "box", "busybox", "sleep", "1000"}).exit_code, 0);
  auto attach = slipway({"attach", "--detach-keys", "ctrl-", "box"});
  EXPECT_EQ(attach.exit_code, 1);
  EXPECT_EQ(attach.err, "Error: invalid detach keys (ctrl-): Unknown character: 'ctrl-'\n");
  auto start = slipway({"start", "-a", "--detach-keys", "ctrl-p,,ctrl-q", "box"});
  EXPECT_EQ(start.exit_code, 1);
  EXPECT_EQ(start.err, "Error: invalid detach keys (ctrl-p,,ctrl-q): Unknown character: ''\n");
  auto exec = slipway({"exec", "--detach-keys", "alt-x", "box", "true"});
  EXPECT_EQ(exec.exit_code, 1);
  EXPECT_EQ(exec.err, "Error: invalid detach keys (alt-x): Unknown character: 'alt-x'\n");
}

}  // namespace
}  // namespace slipway::testing
