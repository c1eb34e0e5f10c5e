// A tiny HTTP/1.1 file server on 127.0.0.1 for tests that make slipway download something
// (ADD <url>): fixed files by path, 404 for the rest, one request per connection, and a count
// of the requests it answered so a test can tell whether slipway came at all.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "common/fs.h"

namespace slipway::testing {

class HttpFileServer {
 public:
  struct File {
    std::string body;
    std::string last_modified;  // a Last-Modified header value, or "" for none
  };

  // Listens on an ephemeral port chosen by the kernel (no window for another process to take it).
  HttpFileServer() {
    listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listener_) throw std::runtime_error("socket failed");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_.get(), 16) != 0 ||
        ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0)
      throw std::runtime_error("cannot listen on 127.0.0.1");
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~HttpFileServer() {
    stopping_ = true;
    thread_.join();
  }
  HttpFileServer(const HttpFileServer&) = delete;
  HttpFileServer& operator=(const HttpFileServer&) = delete;

  void put(const std::string& path, File file) {
    std::lock_guard lock(mutex_);
    files_[path] = std::move(file);
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int port() const { return port_; }
  int requests() const { return requests_; }

 private:
  void serve() {
    while (!stopping_) {
      // A short poll instead of a blocking accept, so the destructor can stop the loop.
      pollfd ready{listener_.get(), POLLIN, 0};
      if (::poll(&ready, 1, 50) <= 0) continue;
      UniqueFd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (connection) answer(connection.get());
    }
  }

  void answer(int fd) {
    std::string request;
    char buffer[4096];
    while (request.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n <= 0) return;
      request.append(buffer, static_cast<size_t>(n));
    }
    ++requests_;
    // "GET /path HTTP/1.1"
    size_t method_end = request.find(' ');
    size_t path_end = request.find(' ', method_end + 1);
    std::string method = request.substr(0, method_end);
    std::string target = request.substr(method_end + 1, path_end - method_end - 1);
    std::string path = target.substr(0, target.find('?'));  // a file server ignores the query
    std::string response;
    std::optional<File> file;
    {
      std::lock_guard lock(mutex_);
      if (auto found = files_.find(path); found != files_.end()) file = found->second;
    }
    if (file) {
      response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(file->body.size()) +
                 "\r\nContent-Type: application/octet-stream\r\n";
      if (!file->last_modified.empty())
        response += "Last-Modified: " + file->last_modified + "\r\n";
      response += "Connection: close\r\n\r\n";
      if (method != "HEAD") response += file->body;
    } else {
      std::string body = "no such file\n";
      response = "HTTP/1.1 404 Not Found\r\nContent-Length: " + std::to_string(body.size()) +
                 "\r\nConnection: close\r\n\r\n" + body;
    }
    try {
      write_all(fd, response.data(), response.size(), "HTTP response");
    } catch (const std::exception&) {
      // The client went away; nothing to tell it.
    }
  }

  UniqueFd listener_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  std::mutex mutex_;
  std::map<std::string, File> files_;
};

}  // namespace slipway::testing
