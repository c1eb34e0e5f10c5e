// Published ports (-p): a userspace TCP and UDP forwarder, like docker-proxy, that needs no
// veth, bridge or NAT rule. UDP keeps a flow a client address (replies go back to it), dropped
// after a minute without datagrams. The host side is bound in the supervisor's (the host's) network
// namespace before the container starts; a thread of the supervisor then moves itself into the
// container's network namespace (setns on one thread changes only that thread's), so every socket
// it opens to reach 127.0.0.1:CONTAINERPORT lives inside the container.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "runtime/containers.h"

namespace slipway::runtime {

class PortForwarder {
 public:
  // Binds and listens on every mapping's host side. Throws StartError (125) in docker's words
  // ("Bind for 0.0.0.0:8080 failed: port is already allocated") naming `container_name`.
  PortForwarder(const std::vector<PortMapping>& mappings, const std::string& container_name);
  PortForwarder(const PortForwarder&) = delete;
  PortForwarder& operator=(const PortForwarder&) = delete;
  // Stops forwarding and closes every socket: the host ports are free once this returns.
  ~PortForwarder();

  // The mappings with the host ports actually bound (random ones filled in).
  const std::vector<PortMapping>& published() const { return published_; }

  // Starts forwarding connections into the network namespace of process `pid`.
  void start(pid_t pid);

 private:
  void run(int netns_fd);

  std::vector<PortMapping> published_;
  std::vector<UniqueFd> listeners_;
  UniqueFd stop_;  // an eventfd: written to end the thread
  std::thread thread_;
};

}  // namespace slipway::runtime
