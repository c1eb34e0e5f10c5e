// Helpers for tests that drive the real slipway binary against a throwaway store.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace slipway::testing {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs a program with the given arguments and captures its output. `env` ("NAME=value") is added
// to the environment; `input` is its stdin (empty: an empty stdin).
CommandResult run_program(const std::vector<std::string>& argv,
                          const std::vector<std::string>& env = {}, const std::string& input = "");

// Runs the slipway binary under test with `--root root` in front of `args`.
CommandResult run_slipway(const std::filesystem::path& root, const std::vector<std::string>& args);

// A rootfs tarball made once per test process from busybox-static
// (testdata/make-busybox-rootfs.sh).
const std::filesystem::path& busybox_rootfs_tarball();

// A fresh directory under the system temp dir, removed when the object goes away.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

void write_text(const std::filesystem::path& path, const std::string& text);

// Number of lines of `text` that contain `needle`.
int count_lines_containing(const std::string& text, const std::string& needle);

// Number of lines of `text` that are exactly `line` (a command's own output, not the build's
// "Step N/M : RUN echo ..." line that mentions it).
int count_lines_equal(const std::string& text, const std::string& line);

// A throwaway store with busybox:latest imported, and a build context directory: the setup of
// every test that drives `slipway build`.
class BusyboxStoreTest : public ::testing::Test {
 protected:
  void SetUp() override;

  std::filesystem::path root() const { return scratch_.path() / "store"; }
  std::filesystem::path context() const { return scratch_.path() / "context"; }

  // `slipway build -t TAG [extra...] CONTEXT` with the context's Dockerfile as it is.
  CommandResult build_context(const std::string& tag, std::vector<std::string> extra = {});
  // Writes `dockerfile` into the context first.
  CommandResult build(const std::string& dockerfile, const std::string& tag,
                      std::vector<std::string> extra = {});
  // The store's images as "repository:tag" lines, in `slipway images` order.
  std::string image_names();
  // For the TearDown of container tests: removes every container (`rm -f`), whatever the test
  // asserted, and checks that none is left and nothing is still mounted under the store.
  void remove_containers_and_expect_no_mounts();
  // Asks `logs` until it shows `wanted` (a detached container writes when it gets to it), for up
  // to 10 s; returns the last output.
  std::string logs_when_ready(const std::string& container, const std::string& wanted);

  ScratchDir scratch_;
};

// The OCI config of an image, read from the store's OCI layout by way of `inspect`'s Id.
nlohmann::json image_config(const std::filesystem::path& root, const std::string& image);

}  // namespace slipway::testing
