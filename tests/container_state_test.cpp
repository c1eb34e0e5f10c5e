// Unit tests of the pieces of runtime/containers.h that need no container: signal names and the
// process identities that tell a live supervisor from a pid reused by another process.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/containers.h"

namespace slipway::runtime {
namespace {

TEST(ParseSignal, AcceptsDockersSpellings) {
  EXPECT_EQ(parse_signal("SIGTERM"), SIGTERM);
  EXPECT_EQ(parse_signal("TERM"), SIGTERM);
  EXPECT_EQ(parse_signal("term"), SIGTERM);
  EXPECT_EQ(parse_signal("9"), SIGKILL);
  EXPECT_EQ(parse_signal("SIGQUIT"), SIGQUIT);
  EXPECT_EQ(parse_signal("SIGRTMIN+3"), SIGRTMIN + 3);
  EXPECT_EQ(parse_signal("RTMAX-1"), SIGRTMAX - 1);
}

TEST(ParseSignal, NamesWhatItCannotRead) {
  for (const char* bad : {"", "SIGNOPE", "0", "65", "RTMIN+99", "SIG", "-9"}) {
    try {
      parse_signal(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), "invalid signal: " + std::string(bad));
    }
  }
}

TEST(ProcessIdentity, TellsALiveProcessFromAGoneOne) {
  ProcessIdentity self = ProcessIdentity::of(::getpid());
  EXPECT_EQ(self.pid, ::getpid());
  EXPECT_GT(self.start_time, 0u);
  EXPECT_TRUE(self.alive());

  // Same pid, another start time: a later process that reused the pid is not ours.
  ProcessIdentity reused = self;
  reused.start_time += 1;
  EXPECT_FALSE(reused.alive());

  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  ProcessIdentity identity{child, 0};
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_EQ(ProcessIdentity::of(child).pid, 0);
  EXPECT_FALSE(identity.alive());
  EXPECT_FALSE(ProcessIdentity{}.alive());
}

}  // namespace
}  // namespace slipway::runtime
