// Internal to registry/: the per-layer progress that `pull` prints, in docker's two shapes.
//
// On a terminal every layer owns one line that is redrawn in place (ANSI cursor up / erase line /
// cursor down) as its state changes:
//   3f2a9c1d0b7e: Downloading  [=========>                                         ]  3.1MB/10MB
//   3f2a9c1d0b7e: Pull complete
// Elsewhere (a pipe, a CI log) each state change is one plain line and byte counts are left out,
// so logs stay readable and diffable. Other lines ("Digest: ...") go through message() in both.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

namespace slipway::registry::detail {

class PullProgress {
 public:
  using Clock = std::chrono::steady_clock;
  // Byte-count redraws of one layer closer together than this are skipped (the next one shows
  // the news); state changes are always drawn.
  static constexpr std::chrono::milliseconds kRedrawInterval{100};

  // `terminal_columns` is the width of the terminal `out` writes to, 0 when it is not one. `now` is
  // injectable so the throttle can be tested without waiting.
  PullProgress(std::ostream& out, int terminal_columns,
               std::function<Clock::time_point()> now = Clock::now);

  // A line that is not about one layer, printed below the layer lines.
  void message(const std::string& line);

  // Layer events; `id` is the short digest docker shows.
  void already_exists(const std::string& id);
  void waiting(const std::string& id);
  // The download continues a partial blob kept by an earlier, interrupted pull.
  void resuming(const std::string& id, uint64_t offset, uint64_t total);
  void downloading(const std::string& id, uint64_t current, uint64_t total);
  void download_complete(const std::string& id);
  void pull_complete(const std::string& id);

  // "10MB", "3.1MB", "512B": docker's decimal units, up to 4 significant digits.
  static std::string human_size(uint64_t bytes);
  // "Downloading  [====>    ]  3.1MB/10MB" with a 50-column bar, which is left out when `columns`
  // is too narrow for it (as docker does below 110), since a wrapped line breaks the redraw.
  static std::string progress_text(uint64_t current, uint64_t total, int columns);

 private:
  struct Layer {
    std::string id;
    bool drawn = false;  // has its line (terminal mode)
    size_t line = 0;     // index among the lines printed so far
    std::string status;
    Clock::time_point last_progress_redraw{};
  };

  // Sets the layer's status and redraws its line (terminal) or prints it (plain, `plain_line`).
  void update(const std::string& id, std::string status, bool plain_line);
  Layer& layer(const std::string& id);
  void redraw(const Layer& layer);
  // "<id>: <status>", cut to the terminal's width so that it never wraps.
  std::string line_text(const Layer& layer) const;

  std::ostream& out_;
  bool terminal_;
  int columns_;
  std::function<Clock::time_point()> now_;
  std::mutex mutex_;
  std::vector<Layer> layers_;
  size_t lines_ = 0;  // lines printed (terminal mode), each ended by '\n'
};

}  // namespace slipway::registry::detail
