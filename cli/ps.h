// `ps` (container ls): docker's columns, --format and --filter (cli/ps_command.cpp). The
// columns that read container state (STATUS, PORTS, IMAGE) are computed where the container
// commands live (cli/container_commands.cpp) and handed over per container.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "runtime/containers.h"

namespace slipway::cli {

struct PsOptions {
  bool all = false, quiet = false, no_trunc = false, size = false, latest = false;
  int last = -1;
  std::string format;
  std::vector<std::string> filters;
};

// One container and its display columns.
struct PsRow {
  runtime::ContainerRecord record;
  std::string image;   // IMAGE column (name, or short ID when the name moved)
  std::string status;  // STATUS column ("Up 2 minutes", "Exited (0) 1 second ago")
  std::string ports;   // PORTS column
};

// Filters, formats and prints `rows` (newest first). Throws Error in docker's words for a bad
// filter or template.
int print_containers(store::Store& store, const PsOptions& options, const std::vector<PsRow>& rows);

// Adds ps's flags (-a -q --no-trunc -s -n -l --format -f) to `ps` bound to `options`.
void add_ps_flags(CLI::App* ps, PsOptions& options);

// The labels of a container: its image's labels (the hook where `run --label` adds its own).
nlohmann::json container_labels(store::Store& store, const runtime::ContainerRecord& record);

}  // namespace slipway::cli
