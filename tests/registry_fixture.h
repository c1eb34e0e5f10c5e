// Shared by the registry tests: a real Debian docker-registry (distribution 2.8) started on
// 127.0.0.1 and a free port with its storage in a temp dir, in the variants the tests need (open,
// extra `auth:` config, TLS), and a way to run slipway with environment variables and stdin.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/test_support.h"

namespace slipway::testing {

inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline bool port_open(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

struct RegistryVariant {
  std::string auth_yaml;                           // an `auth:` section, or ""
  std::filesystem::path tls_certificate, tls_key;  // both set: serve https
};

// A docker-registry process serving from a temp dir; stopped and removed with the object.
class LocalRegistry {
 public:
  explicit LocalRegistry(const RegistryVariant& variant = {}) : port_(free_port()) {
    namespace fs = std::filesystem;
    fs::path config = dir_.path() / "config.yml";
    std::string tls;
    if (!variant.tls_certificate.empty())
      tls = "  tls:\n    certificate: " + variant.tls_certificate.string() +
            "\n    key: " + variant.tls_key.string() + "\n";
    write_text(config,
               "version: 0.1\n"
               "log:\n  level: error\n  accesslog:\n    disabled: true\n"
               "storage:\n  filesystem:\n    rootdirectory: " +
                   (dir_.path() / "data").string() + "\n  delete:\n    enabled: true\n" +
                   variant.auth_yaml + "http:\n  addr: 127.0.0.1:" + std::to_string(port_) + "\n" +
                   tls);
    fs::path log = dir_.path() / "registry.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(out, 1);
      ::dup2(out, 2);
      ::execl("/usr/bin/docker-registry", "docker-registry", "serve", config.c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 200 && !port_open(port_); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!port_open(port_)) throw std::runtime_error("docker-registry did not start");
  }
  ~LocalRegistry() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  LocalRegistry(const LocalRegistry&) = delete;
  LocalRegistry& operator=(const LocalRegistry&) = delete;

  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  std::filesystem::path blob_data(const std::string& digest) const {
    std::string hex = digest.substr(7);
    return dir_.path() / "data/docker/registry/v2/blobs/sha256" / hex.substr(0, 2) / hex / "data";
  }

 private:
  ScratchDir dir_;
  int port_;
  pid_t pid_ = -1;
};

// Runs `argv` with `env` ("NAME=value") added to the environment and `input` on stdin.
inline CommandResult run_with(const std::vector<std::string>& argv,
                              const std::vector<std::string>& env, const std::string& input = "") {
  return run_program(argv, env, input);
}

// slipway with `--root root`, `env` and `input`.
inline CommandResult run_slipway_with(const std::filesystem::path& root,
                                      const std::vector<std::string>& args,
                                      const std::vector<std::string>& env,
                                      const std::string& input = "") {
  std::vector<std::string> argv = {SLIPWAY_BINARY, "--root", root.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_with(argv, env, input);
}

}  // namespace slipway::testing
