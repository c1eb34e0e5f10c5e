// How containers are shown beyond ps's plain columns (cli/container_more_commands.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "runtime/containers.h"

namespace slipway::cli {

// docker's addition to ps's STATUS for a running container: " (Paused)", " (healthy)",
// " (unhealthy)", " (health: starting)", or "".
std::string status_annotation(const runtime::ContainerRecord& record);

// `container inspect` of one container in docker's shape: the record's Config, HostConfig and
// State with the live state (paused), Config.Cmd, LogPath, Driver, and Mounts/NetworkSettings
// as the record has them.
nlohmann::json container_inspect_json(const runtime::ContainerStore& containers,
                                      const runtime::ContainerRecord& record);

}  // namespace slipway::cli
