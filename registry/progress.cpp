#include "registry/progress.h"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace slipway::registry::detail {
namespace {

constexpr size_t kBarWidth = 50;
constexpr int kColumnsForBar = 110;

}  // namespace

PullProgress::PullProgress(std::ostream& out, int terminal_columns,
                           std::function<Clock::time_point()> now)
    : out_(out),
      terminal_(terminal_columns > 0),
      columns_(terminal_columns),
      now_(std::move(now)) {}

std::string PullProgress::human_size(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1000 && unit + 1 < std::size(kUnits)) {
    value /= 1000;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.4g%s", value, kUnits[unit]);
  return text;
}

std::string PullProgress::progress_text(uint64_t current, uint64_t total, int columns) {
  current = std::min(current, total);
  const std::string numbers = human_size(current) + "/" + human_size(total);
  if (columns < kColumnsForBar) return "Downloading  " + numbers;
  size_t filled = total == 0 ? kBarWidth : static_cast<size_t>(current * kBarWidth / total);
  std::string bar(filled, '=');
  if (filled < kBarWidth) {
    bar += '>';
    bar.append(kBarWidth - filled - 1, ' ');
  }
  return "Downloading  [" + bar + "]  " + numbers;
}

void PullProgress::message(const std::string& line) {
  std::lock_guard lock(mutex_);
  out_ << line << "\n" << std::flush;
  ++lines_;
}

void PullProgress::already_exists(const std::string& id) {
  update(id, "Already exists", true);
}

void PullProgress::waiting(const std::string& id) {
  update(id, "Pulling fs layer", true);
}

void PullProgress::resuming(const std::string& id, uint64_t offset, uint64_t total) {
  update(id, "Resuming download at " + human_size(offset) + "/" + human_size(total), true);
}

void PullProgress::downloading(const std::string& id, uint64_t current, uint64_t total) {
  if (!terminal_) return;  // byte counts would flood a log
  {
    std::lock_guard lock(mutex_);
    Clock::time_point now = now_();
    Layer& entry = layer(id);
    if (now - entry.last_progress_redraw < kRedrawInterval) return;
    entry.last_progress_redraw = now;
  }
  update(id, progress_text(current, total, columns_), false);
}

void PullProgress::download_complete(const std::string& id) {
  update(id, "Download complete", true);
}

void PullProgress::pull_complete(const std::string& id) {
  update(id, "Pull complete", true);
}

PullProgress::Layer& PullProgress::layer(const std::string& id) {
  for (auto& existing : layers_)
    if (existing.id == id) return existing;
  layers_.push_back(Layer{});
  layers_.back().id = id;
  return layers_.back();
}

void PullProgress::update(const std::string& id, std::string status, bool plain_line) {
  std::lock_guard lock(mutex_);
  if (!terminal_) {
    if (plain_line) out_ << id << ": " << status << "\n" << std::flush;
    return;
  }
  Layer& entry = layer(id);
  entry.status = std::move(status);
  if (!entry.drawn) {
    // A new layer takes the next line at the bottom.
    entry.drawn = true;
    entry.line = lines_++;
    out_ << "\r\x1b[2K" << line_text(entry) << "\n" << std::flush;
    return;
  }
  redraw(entry);
}

void PullProgress::redraw(const Layer& entry) {
  // The cursor sits at the start of the line below the last one printed: go up to the layer's
  // line, rewrite it, and come back down.
  size_t up = lines_ - entry.line;
  out_ << "\x1b[" << up << "A\r\x1b[2K" << line_text(entry) << "\r\x1b[" << up << "B" << std::flush;
}

std::string PullProgress::line_text(const Layer& entry) const {
  std::string text = entry.id + ": " + entry.status;
  if (text.size() >= static_cast<size_t>(columns_)) text.resize(static_cast<size_t>(columns_) - 1);
  return text;
}

}  // namespace slipway::registry::detail
