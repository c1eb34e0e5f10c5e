// The pull progress renderer: what it prints for given layer events, on a terminal (redrawn lines,
// throttled) and off one (plain lines, no escape sequences, no byte counts).
#include <gtest/gtest.h>

#include <sstream>

#include "registry/progress.h"

namespace slipway::registry::detail {
namespace {

using Clock = PullProgress::Clock;

// A clock the test moves by hand.
struct FakeClock {
  Clock::time_point now = Clock::time_point() + std::chrono::hours(1);
  std::function<Clock::time_point()> function() {
    return [this] { return now; };
  }
};

TEST(PullProgressTest, HumanSizesUseDockersDecimalUnits) {
  EXPECT_EQ(PullProgress::human_size(0), "0B");
  EXPECT_EQ(PullProgress::human_size(512), "512B");
  EXPECT_EQ(PullProgress::human_size(1023), "1.023kB");
  EXPECT_EQ(PullProgress::human_size(3'100'000), "3.1MB");
  EXPECT_EQ(PullProgress::human_size(10'000'000), "10MB");
  EXPECT_EQ(PullProgress::human_size(27'140'000), "27.14MB");
  EXPECT_EQ(PullProgress::human_size(2'500'000'000), "2.5GB");
}

TEST(PullProgressTest, TheBarIsFiftyColumnsWithAnArrowHead) {
  EXPECT_EQ(PullProgress::progress_text(3'100'000, 10'000'000, 120),
            "Downloading  [===============>                                  ]  3.1MB/10MB");
  EXPECT_EQ(PullProgress::progress_text(0, 10, 120),
            "Downloading  [>                                                 ]  0B/10B");
  EXPECT_EQ(PullProgress::progress_text(10, 10, 120),
            "Downloading  [==================================================]  10B/10B");
  // Narrower than docker's 110 columns: numbers only, so the line does not wrap.
  EXPECT_EQ(PullProgress::progress_text(3'100'000, 10'000'000, 80), "Downloading  3.1MB/10MB");
}

TEST(PullProgressTest, PlainOutputIsOneLinePerEventWithoutEscapes) {
  std::ostringstream out;
  FakeClock clock;
  PullProgress progress(out, 0, clock.function());
  progress.message("latest: Pulling from library/busybox");
  progress.already_exists("aaaaaaaaaaaa");
  progress.waiting("bbbbbbbbbbbb");
  progress.resuming("bbbbbbbbbbbb", 3'100'000, 10'000'000);
  for (int i = 0; i < 5; ++i) {
    clock.now += std::chrono::seconds(1);
    progress.downloading("bbbbbbbbbbbb", 4'000'000 + i, 10'000'000);
  }
  progress.download_complete("bbbbbbbbbbbb");
  progress.pull_complete("bbbbbbbbbbbb");
  progress.message("Digest: sha256:1234");
  EXPECT_EQ(out.str(),
            "latest: Pulling from library/busybox\n"
            "aaaaaaaaaaaa: Already exists\n"
            "bbbbbbbbbbbb: Pulling fs layer\n"
            "bbbbbbbbbbbb: Resuming download at 3.1MB/10MB\n"
            "bbbbbbbbbbbb: Download complete\n"
            "bbbbbbbbbbbb: Pull complete\n"
            "Digest: sha256:1234\n");
}

TEST(PullProgressTest, ATerminalGetsOneLinePerLayerRedrawnInPlace) {
  std::ostringstream out;
  FakeClock clock;
  PullProgress progress(out, 120, clock.function());
  progress.message("1: Pulling from x");
  progress.waiting("aaaaaaaaaaaa");
  progress.waiting("bbbbbbbbbbbb");
  EXPECT_EQ(out.str(),
            "1: Pulling from x\n"
            "\r\x1b[2Kaaaaaaaaaaaa: Pulling fs layer\n"
            "\r\x1b[2Kbbbbbbbbbbbb: Pulling fs layer\n");
  out.str("");

  // The first layer's line is two lines up from the cursor.
  progress.downloading("aaaaaaaaaaaa", 5, 10);
  EXPECT_EQ(out.str(), "\x1b[2A\r\x1b[2Kaaaaaaaaaaaa: " + PullProgress::progress_text(5, 10, 120) +
                           "\r\x1b[2B");
  out.str("");

  // Within the redraw interval a layer's byte counts are not drawn again; another layer's are,
  // and state changes always are.
  clock.now += PullProgress::kRedrawInterval / 2;
  progress.downloading("aaaaaaaaaaaa", 6, 10);
  EXPECT_EQ(out.str(), "");
  progress.downloading("bbbbbbbbbbbb", 1, 10);
  EXPECT_EQ(out.str(), "\x1b[1A\r\x1b[2Kbbbbbbbbbbbb: " + PullProgress::progress_text(1, 10, 120) +
                           "\r\x1b[1B");
  out.str("");
  progress.downloading("bbbbbbbbbbbb", 2, 10);
  EXPECT_EQ(out.str(), "");
  progress.pull_complete("bbbbbbbbbbbb");
  EXPECT_EQ(out.str(), "\x1b[1A\r\x1b[2Kbbbbbbbbbbbb: Pull complete\r\x1b[1B");
  out.str("");
  clock.now += PullProgress::kRedrawInterval;
  progress.downloading("aaaaaaaaaaaa", 7, 10);
  EXPECT_EQ(out.str(), "\x1b[2A\r\x1b[2Kaaaaaaaaaaaa: " + PullProgress::progress_text(7, 10, 120) +
                           "\r\x1b[2B");
  out.str("");

  // A message goes below the layers; the layers' lines are then one further up.
  progress.message("Digest: sha256:1234");
  progress.pull_complete("aaaaaaaaaaaa");
  EXPECT_EQ(out.str(),
            "Digest: sha256:1234\n"
            "\x1b[3A\r\x1b[2Kaaaaaaaaaaaa: Pull complete\r\x1b[3B");
}

TEST(PullProgressTest, LinesAreCutToTheTerminalWidth) {
  std::ostringstream out;
  FakeClock clock;
  PullProgress progress(out, 20, clock.function());
  progress.resuming("aaaaaaaaaaaa", 3'100'000, 10'000'000);
  EXPECT_EQ(out.str(), "\r\x1b[2Kaaaaaaaaaaaa: Resum\n");
}

}  // namespace
}  // namespace slipway::registry::detail
