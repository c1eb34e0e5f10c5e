// slipway pull and push against the real Debian docker-registry (distribution 2.8), started by the
// test on 127.0.0.1 and a free port with its storage in a temp dir; skopeo as the interop peer.
// Only loopback traffic.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/registry_fixture.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// A one-request-per-connection HTTP proxy in front of the registry that injects faults into blob
// GETs: `errors_500` answers of 500, `errors_429` answers of 429 with Retry-After: 1, `drops`
// connections closed halfway through a large blob body, a stall after N bytes of one blob (see
// stall_blob), Range headers dropped (`ignore_range`) as by a server without Range support, and
// request bodies over `max_request_body` refused with 413 as by a fronting proxy with a body
// limit. It counts the body bytes it forwarded for each blob.
class FaultProxy {
 public:
  explicit FaultProxy(int upstream_port) : upstream_port_(upstream_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(listen_fd_, 64);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~FaultProxy() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    for (auto& worker : workers_) worker.join();
    ::close(listen_fd_);
  }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }

  // The next GET of `digest` sends the response head and `after_bytes` of the body, then sends
  // nothing more until release_stall() or the client going away.
  void stall_blob(const std::string& digest, uint64_t after_bytes) {
    std::lock_guard lock(mutex_);
    stall_digest_ = digest;
    stall_after_ = after_bytes;
    stalled_ = false;
    released_ = false;
  }
  // Blocks until a stalled GET has sent its bytes (true), or `limit` passed (false).
  bool wait_for_stall(std::chrono::seconds limit) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [&] { return stalled_; });
  }
  void release_stall() {
    std::lock_guard lock(mutex_);
    released_ = true;
    changed_.notify_all();
  }
  // Body bytes forwarded for GETs of `digest`, and the number of those GETs, since reset_counts().
  uint64_t body_bytes(const std::string& digest) {
    std::lock_guard lock(mutex_);
    return body_bytes_[digest];
  }
  int gets_of(const std::string& digest) {
    std::lock_guard lock(mutex_);
    return gets_[digest];
  }
  void reset_counts() {
    std::lock_guard lock(mutex_);
    body_bytes_.clear();
    gets_.clear();
  }

  std::atomic<int> errors_500{0}, errors_429{0}, drops{0};
  std::atomic<int> range_requests{0}, blob_gets{0};
  std::atomic<int> patch_requests{0}, content_ranges{0};
  std::atomic<bool> ignore_range{false};
  std::atomic<uint64_t> max_request_body{UINT64_MAX};
  std::atomic<int> refused_bodies{0};

 private:
  static std::string blob_digest_of(const std::string& head) {
    size_t at = head.find("/blobs/sha256:");
    if (at == std::string::npos) return "";
    at += 7;
    return head.substr(at, head.find_first_of(" ?", at) - at);
  }

  // Holds a stalled response until released, the client hung up, or the proxy stops.
  void hold_stall(int client) {
    std::unique_lock lock(mutex_);
    stalled_ = true;
    changed_.notify_all();
    while (!released_ && !stop_) {
      lock.unlock();
      pollfd watch{client, POLLRDHUP, 0};
      int ready = ::poll(&watch, 1, 50);
      lock.lock();
      if (ready > 0 && (watch.revents & (POLLRDHUP | POLLHUP | POLLERR))) return;
    }
  }

  // Forwards `size` body bytes, counting them for `digest`.
  void forward_body(int client, const char* data, size_t size, const std::string& digest) {
    if (!digest.empty()) {
      std::lock_guard lock(mutex_);
      body_bytes_[digest] += size;
    }
    send_all(client, data, size);
  }

  static bool read_head(int fd, std::string& data, size_t& head_end) {
    char buffer[8192];
    while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n <= 0) return false;
      data.append(buffer, static_cast<size_t>(n));
    }
    head_end += 4;
    return true;
  }
  static size_t content_length(const std::string& head) {
    std::string lower = head;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t at = lower.find("\r\ncontent-length:");
    return at == std::string::npos ? 0 : std::stoul(head.substr(at + 17));
  }
  static void send_all(int fd, const char* data, size_t size) {
    while (size > 0) {
      ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
      if (n <= 0) return;
      data += n;
      size -= static_cast<size_t>(n);
    }
  }

  void accept_loop() {
    while (!stop_) {
      // CLOEXEC: a slipway the test starts meanwhile must not inherit (and so keep open) a
      // connection the proxy closes.
      int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;
      workers_.emplace_back([this, client] {
        serve(client);
        ::close(client);
      });
    }
  }

  void serve(int client) {
    std::string request;
    size_t head_end = 0;
    if (!read_head(client, request, head_end)) return;
    size_t body_size = content_length(request.substr(0, head_end));
    char buffer[65536];
    while (request.size() < head_end + body_size) {
      ssize_t n = ::read(client, buffer, sizeof buffer);
      if (n <= 0) return;
      request.append(buffer, static_cast<size_t>(n));
    }
    std::string head = request.substr(0, head_end);
    if (body_size > max_request_body) {
      ++refused_bodies;
      std::string answer =
          "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\n"
          "Connection: close\r\n\r\n";
      send_all(client, answer.data(), answer.size());
      return;
    }
    bool blob_get = head.starts_with("GET ") && head.find("/blobs/sha256:") != std::string::npos;
    bool ranged = head.find("\r\nRange: bytes=") != std::string::npos;
    if (head.starts_with("PATCH ")) ++patch_requests;
    if (head.find("\r\nContent-Range: ") != std::string::npos) ++content_ranges;
    const std::string digest = blob_get ? blob_digest_of(head) : "";
    uint64_t stall_after = 0;
    bool stall = false;
    if (blob_get) {
      std::lock_guard lock(mutex_);
      ++gets_[digest];
      if (!stall_digest_.empty() && digest == stall_digest_) {
        stall = true;
        stall_after = stall_after_;
        stall_digest_.clear();
      }
    }
    if (blob_get) {
      ++blob_gets;
      if (ranged) ++range_requests;
      if (errors_500 > 0) {
        --errors_500;
        std::string answer =
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n";
        send_all(client, answer.data(), answer.size());
        return;
      }
      if (errors_429 > 0) {
        --errors_429;
        std::string answer =
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n";
        send_all(client, answer.data(), answer.size());
        return;
      }
    }
    // Forward with Connection: close, so one connection carries one exchange.
    std::string forwarded;
    size_t line_start = 0;
    while (line_start < head_end - 2) {
      size_t line_end = head.find("\r\n", line_start);
      std::string line = head.substr(line_start, line_end - line_start);
      std::string lower = line;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      bool dropped_range = ignore_range && lower.starts_with("range:");
      if (!lower.starts_with("connection:") && !dropped_range) forwarded += line + "\r\n";
      line_start = line_end + 2;
    }
    forwarded += "Connection: close\r\n\r\n" + request.substr(head_end);
    int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
    if (::connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
      ::close(upstream);
      return;
    }
    send_all(upstream, forwarded.data(), forwarded.size());
    std::string response;
    size_t response_head_end = 0;
    if (read_head(upstream, response, response_head_end)) {
      size_t length = content_length(response.substr(0, response_head_end));
      bool drop = blob_get && !ranged && length > 100000 && drops > 0;
      if (drop) {
        --drops;
        send_all(client, response.data(),
                 std::min(response.size(), response_head_end + length / 2));
        size_t sent = response.size() - response_head_end;
        while (sent < length / 2) {
          ssize_t n = ::read(upstream, buffer, std::min(sizeof buffer, length / 2 - sent));
          if (n <= 0) break;
          send_all(client, buffer, static_cast<size_t>(n));
          sent += static_cast<size_t>(n);
        }
      } else {
        send_all(client, response.data(), response_head_end);
        uint64_t sent = 0;
        // Sends body bytes, up to the stall point while a stall is pending; false once stalled.
        auto pass = [&](const char* data, size_t n) {
          if (stall && sent + n >= stall_after) {
            size_t before_stall = static_cast<size_t>(stall_after - sent);
            forward_body(client, data, before_stall, digest);
            hold_stall(client);
            return false;
          }
          forward_body(client, data, n, digest);
          sent += n;
          return true;
        };
        bool going = pass(response.data() + response_head_end, response.size() - response_head_end);
        while (going) {
          ssize_t n = ::read(upstream, buffer, sizeof buffer);
          if (n <= 0) break;
          going = pass(buffer, static_cast<size_t>(n));
        }
      }
    }
    ::close(upstream);
  }

  int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string stall_digest_;
  uint64_t stall_after_ = 0;
  bool stalled_ = false, released_ = false;
  std::map<std::string, uint64_t> body_bytes_;
  std::map<std::string, int> gets_;
  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

std::string field_after(const std::string& text, const std::string& prefix) {
  size_t at = text.find(prefix);
  if (at == std::string::npos) return "";
  size_t start = at + prefix.size();
  return text.substr(start, text.find_first_of(" \n", start) - start);
}

class RegistryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { registry_ = std::make_unique<LocalRegistry>(); }
  static void TearDownTestSuite() { registry_.reset(); }

  // Imports busybox into `root` and names it host/name:tag.
  static void make_image(const fs::path& root, const std::string& name) {
    auto imported = run_slipway(root, {"import", busybox_rootfs_tarball().string(), "busybox"});
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
    auto tagged = run_slipway(root, {"tag", "busybox", name});
    ASSERT_EQ(tagged.exit_code, 0) << tagged.err;
  }

  static std::string host() { return registry_->host(); }
  static std::unique_ptr<LocalRegistry> registry_;
};
std::unique_ptr<LocalRegistry> RegistryTest::registry_;

size_t count_files(const fs::path& dir) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       it != fs::recursive_directory_iterator(); ++it)
    if (it->is_regular_file()) ++n;
  return n;
}

TEST_F(RegistryTest, PushThenPullIntoAFreshStoreRunsWithTheSameDigest) {
  ScratchDir first, second;
  const std::string name = host() + "/bb:1";
  make_image(first.path(), name);

  auto pushed = run_slipway(first.path(), {"push", name});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  EXPECT_NE(pushed.out.find("The push refers to repository [" + host() + "/bb]"), std::string::npos)
      << pushed.out;
  EXPECT_EQ(count_lines_containing(pushed.out, ": Pushed"), 1) << pushed.out;
  std::string pushed_digest = field_after(pushed.out, "1: digest: ");
  ASSERT_EQ(pushed_digest.size(), 71u) << pushed.out;
  EXPECT_NE(pushed.out.find(" size: "), std::string::npos);

  auto again = run_slipway(first.path(), {"push", name});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(count_lines_containing(again.out, ": Layer already exists"), 1) << again.out;

  auto pulled = run_slipway(second.path(), {"pull", name});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_EQ(count_lines_containing(pulled.out, ": Pull complete"), 1) << pulled.out;
  EXPECT_EQ(count_lines_containing(pulled.out, ": Pulling fs layer"), 1) << pulled.out;
  EXPECT_EQ(pulled.out.find('\x1b'), std::string::npos) << "escape codes in a pipe's output";
  EXPECT_EQ(field_after(pulled.out, "Digest: "), pushed_digest) << pulled.out;
  EXPECT_NE(pulled.out.find("Status: Downloaded newer image for " + name), std::string::npos);
  EXPECT_EQ(count_lines_equal(pulled.out, name), 1) << pulled.out;

  auto inspected = run_slipway(second.path(), {"inspect", name});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_EQ(json::parse(inspected.out)[0]["RepoDigests"],
            json::array({host() + "/bb@" + pushed_digest}));

  auto ran = run_slipway(second.path(), {"run", "--rm", name, "echo", "ok"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "ok\n");

  auto repeat = run_slipway(second.path(), {"pull", name});
  ASSERT_EQ(repeat.exit_code, 0) << repeat.err;
  EXPECT_EQ(count_lines_containing(repeat.out, ": Already exists"), 1) << repeat.out;
  EXPECT_NE(repeat.out.find("Status: Image is up to date for " + name), std::string::npos);

  // By digest, into a third store: no tag, same content.
  ScratchDir third;
  auto by_digest = run_slipway(third.path(), {"pull", host() + "/bb@" + pushed_digest});
  ASSERT_EQ(by_digest.exit_code, 0) << by_digest.err;
  EXPECT_EQ(field_after(by_digest.out, "Digest: "), pushed_digest);
}

TEST_F(RegistryTest, DefaultTagIsLatestAndQuietPrintsOnlyTheName) {
  ScratchDir first, second;
  make_image(first.path(), host() + "/quiet");
  auto pushed = run_slipway(first.path(), {"push", host() + "/quiet"});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  EXPECT_NE(pushed.out.find("Using default tag: latest"), std::string::npos);
  EXPECT_NE(pushed.out.find("latest: digest: sha256:"), std::string::npos);
  auto pulled = run_slipway(second.path(), {"pull", "-q", host() + "/quiet"});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_EQ(pulled.out, host() + "/quiet:latest\n");
}

TEST_F(RegistryTest, OnATerminalLayerLinesAreRedrawnInPlace) {
  ScratchDir first, second, third;
  const std::string name = host() + "/tty:1";
  make_image(first.path(), name);
  auto pushed = run_slipway(first.path(), {"push", name});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  // script(1) gives slipway a pseudo-terminal as stdout.
  auto on_terminal = [](const fs::path& root, const std::string& args) {
    return run_program({"script", "-qefc",
                        std::string(SLIPWAY_BINARY) + " --root " + root.string() + " " + args,
                        "/dev/null"});
  };
  auto pulled = on_terminal(second.path(), "pull " + name);
  ASSERT_EQ(pulled.exit_code, 0) << pulled.out << pulled.err;
  const std::string id = field_after(pulled.out, "\x1b[2K");
  ASSERT_EQ(id.size(), 13u) << pulled.out;  // "<12 hex>:"
  // The layer's line is written once and then rewritten in place (cursor up, erase line).
  EXPECT_NE(pulled.out.find("\x1b[2K" + id + " Pulling fs layer\r\n"), std::string::npos)
      << pulled.out;
  EXPECT_NE(pulled.out.find("A\r\x1b[2K" + id + " Pull complete\r\x1b["), std::string::npos)
      << pulled.out;
  EXPECT_NE(pulled.out.find("Digest: " + field_after(pushed.out, "1: digest: ")),
            std::string::npos);

  auto quiet = on_terminal(third.path(), "pull -q " + name);
  ASSERT_EQ(quiet.exit_code, 0) << quiet.out << quiet.err;
  EXPECT_EQ(quiet.out, name + "\r\n");
}

TEST_F(RegistryTest, SkopeoSeesTheDigestSlipwayPushed) {
  ScratchDir root;
  const std::string name = host() + "/interop:1";
  make_image(root.path(), name);
  auto pushed = run_slipway(root.path(), {"push", name});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  auto inspected = run_program({"skopeo", "inspect", "--tls-verify=false", "docker://" + name});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_EQ(json::parse(inspected.out).at("Digest").get<std::string>(),
            field_after(pushed.out, "1: digest: "));
}

TEST_F(RegistryTest, SlipwayPullsWhatSkopeoPushed) {
  ScratchDir source, target;
  auto imported =
      run_slipway(source.path(), {"import", busybox_rootfs_tarball().string(), "busybox"});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  const std::string name = host() + "/from-skopeo:2";
  auto copied = run_program({"skopeo", "copy", "--dest-tls-verify=false",
                             "oci:" + (source.path() / "oci").string() + ":busybox:latest",
                             "docker://" + name});
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  auto pulled = run_slipway(target.path(), {"pull", name});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  auto inspected = run_program({"skopeo", "inspect", "--tls-verify=false", "docker://" + name});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_EQ(field_after(pulled.out, "Digest: "),
            json::parse(inspected.out).at("Digest").get<std::string>());
  auto ran = run_slipway(target.path(), {"run", "--rm", name, "echo", "ok"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "ok\n");
}

TEST_F(RegistryTest, ACorruptedBlobIsADigestMismatchAndLeavesNoTrace) {
  ScratchDir first, second;
  const std::string name = host() + "/corrupt:1";
  make_image(first.path(), name);
  auto pushed = run_slipway(first.path(), {"push", name});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  auto layers = image_config(first.path(), name);  // only to be sure the image is there
  ASSERT_TRUE(layers.contains("rootfs"));

  // Flip one byte of the layer blob in the registry's storage (the filesystem driver serves it
  // without checking).
  std::string manifest_digest = field_after(pushed.out, "1: digest: ");
  std::ifstream manifest_file(registry_->blob_data(manifest_digest));
  json manifest = json::parse(manifest_file);
  std::string layer_digest = manifest["layers"][0]["digest"];
  fs::path data = registry_->blob_data(layer_digest);
  std::string bytes;
  {
    std::ifstream in(data, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string damaged = bytes;
  damaged[damaged.size() / 2] = static_cast<char>(damaged[damaged.size() / 2] ^ 0x01);
  std::ofstream(data, std::ios::binary | std::ios::trunc) << damaged;

  auto pulled = run_slipway(second.path(), {"pull", name});
  EXPECT_EQ(pulled.exit_code, 1);
  EXPECT_NE(pulled.err.find("digest mismatch: expected " + layer_digest), std::string::npos)
      << pulled.err;
  EXPECT_FALSE(fs::exists(second.path() / "oci/blobs/sha256" / layer_digest.substr(7)));
  EXPECT_FALSE(fs::exists(second.path() / "oci/blobs/sha256" / manifest_digest.substr(7)));
  EXPECT_EQ(count_files(second.path() / "layers"), 0u);
  auto images = run_slipway(second.path(), {"images", "-q"});
  EXPECT_EQ(images.out, "");

  // Repaired, the same pull succeeds.
  std::ofstream(data, std::ios::binary | std::ios::trunc) << bytes;
  auto repaired = run_slipway(second.path(), {"pull", name});
  ASSERT_EQ(repaired.exit_code, 0) << repaired.err;
  EXPECT_EQ(field_after(repaired.out, "Digest: "), manifest_digest);
}

TEST_F(RegistryTest, MissingImagesAreClearErrors) {
  ScratchDir root;
  auto pulled = run_slipway(root.path(), {"pull", host() + "/nothing:here"});
  EXPECT_EQ(pulled.exit_code, 1);
  EXPECT_NE(pulled.err.find("manifest for " + host() + "/nothing:here not found"),
            std::string::npos)
      << pulled.err;
  auto pushed = run_slipway(root.path(), {"push", host() + "/absent:1"});
  EXPECT_EQ(pushed.exit_code, 1);
  EXPECT_NE(pushed.err.find("An image does not exist locally with the tag: " + host() + "/absent"),
            std::string::npos)
      << pushed.err;
  auto bad = run_slipway(root.path(), {"pull", "Bad/Name"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("invalid reference format"), std::string::npos) << bad.err;
}

TEST_F(RegistryTest, ManifestInspectPrintsTheManifestAsTheRegistryHasIt) {
  ScratchDir root;
  const std::string name = host() + "/inspectme:1";
  make_image(root.path(), name);
  auto pushed = run_slipway(root.path(), {"push", name});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  std::string digest = field_after(pushed.out, "1: digest: ");
  auto inspected = run_slipway(root.path(), {"manifest", "inspect", name});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  std::ifstream stored(registry_->blob_data(digest));
  nlohmann::ordered_json expected = nlohmann::ordered_json::parse(stored);
  EXPECT_EQ(inspected.out, expected.dump(3) + "\n");
  auto by_digest =
      run_slipway(root.path(), {"manifest", "inspect", host() + "/inspectme@" + digest});
  ASSERT_EQ(by_digest.exit_code, 0) << by_digest.err;
  EXPECT_EQ(by_digest.out, inspected.out);
  auto missing = run_slipway(root.path(), {"manifest", "inspect", host() + "/inspectme:nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("not found"), std::string::npos) << missing.err;
}

TEST_F(RegistryTest, CopyBetweenTwoRegistriesKeepsTheDigest) {
  LocalRegistry other;
  ScratchDir root, empty, target;
  const std::string source = host() + "/copysrc:1";
  make_image(root.path(), source);
  auto pushed = run_slipway(root.path(), {"push", source});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  std::string digest = field_after(pushed.out, "1: digest: ");

  // The copy never touches the store: it runs against an empty one, which stays empty.
  const std::string destination = other.host() + "/team/copied:2";
  auto copied = run_slipway(empty.path(), {"copy", source, destination});
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  EXPECT_EQ(count_lines_containing(copied.out, " done"), 2) << copied.out;  // config + layer
  EXPECT_EQ(field_after(copied.out, "2: digest: "), digest) << copied.out;
  EXPECT_EQ(count_files(empty.path() / "layers"), 0u);
  EXPECT_EQ(run_slipway(empty.path(), {"images", "-q"}).out, "");

  auto inspected =
      run_program({"skopeo", "inspect", "--tls-verify=false", "docker://" + destination});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_EQ(json::parse(inspected.out).at("Digest").get<std::string>(), digest);

  auto again = run_slipway(empty.path(), {"copy", source, destination});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(count_lines_containing(again.out, "skipped: already exists"), 2) << again.out;

  auto pulled = run_slipway(target.path(), {"pull", destination});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  auto ran = run_slipway(target.path(), {"run", "--rm", destination, "echo", "ok"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "ok\n");
}

TEST_F(RegistryTest, CopyTakesAnIndexWithAllItsManifests) {
  LocalRegistry other;
  ScratchDir root, files;
  const std::string single = host() + "/indexsrc:single";
  make_image(root.path(), single);
  auto pushed = run_slipway(root.path(), {"push", single});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  std::string manifest_digest = field_after(pushed.out, "single: digest: ");
  size_t manifest_size = std::stoul(field_after(pushed.out, " size: "));
  // An OCI index listing the manifest for linux/amd64, put up by hand.
  json index = {{"schemaVersion", 2},
                {"mediaType", "application/vnd.oci.image.index.v1+json"},
                {"manifests",
                 {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"digest", manifest_digest},
                   {"size", manifest_size},
                   {"platform", {{"architecture", "amd64"}, {"os", "linux"}}}}}}};
  write_text(files.path() / "index.json", index.dump());
  auto put = run_program({"curl", "-fsS", "-X", "PUT", "-H",
                          "Content-Type: application/vnd.oci.image.index.v1+json", "--data-binary",
                          "@" + (files.path() / "index.json").string(),
                          "http://" + host() + "/v2/indexsrc/manifests/multi"});
  ASSERT_EQ(put.exit_code, 0) << put.err;

  auto copied =
      run_slipway(root.path(), {"copy", host() + "/indexsrc:multi", other.host() + "/idx:multi"});
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  auto source = run_program({"skopeo", "inspect", "--raw", "--tls-verify=false",
                             "docker://" + host() + "/indexsrc:multi"});
  auto target = run_program({"skopeo", "inspect", "--raw", "--tls-verify=false",
                             "docker://" + other.host() + "/idx:multi"});
  ASSERT_EQ(target.exit_code, 0) << target.err;
  EXPECT_EQ(target.out, source.out);  // byte for byte
  auto child = run_program({"skopeo", "inspect", "--tls-verify=false",
                            "docker://" + other.host() + "/idx@" + manifest_digest});
  ASSERT_EQ(child.exit_code, 0) << child.err;
  ScratchDir puller;
  auto pulled = run_slipway(puller.path(), {"pull", other.host() + "/idx:multi"});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
}

// Two images in one repository, each with a /platform file naming the platform it stands for,
// put together under one tag by a hand-written index (OCI image index or Docker manifest list).
class ManifestListTest : public RegistryTest {
 protected:
  static constexpr const char* kDockerSchema2 =
      "application/vnd.docker.distribution.manifest.v2+json";
  struct PushedImage {
    std::string digest;
    size_t size = 0;
    std::string image_id;
  };

  // Builds FROM busybox with `/platform` containing `platform_name`, pushes it as repo:tag.
  PushedImage push_platform_image(const fs::path& root, const std::string& repo,
                                  const std::string& platform_name) {
    ScratchDir context;
    write_text(context.path() / "platform", platform_name + "\n");
    write_text(context.path() / "Dockerfile", "FROM busybox\nCOPY platform /platform\n");
    const std::string name = host() + "/" + repo + ":" + platform_name;
    auto built = run_slipway(root, {"build", "-t", name, context.path().string()});
    EXPECT_EQ(built.exit_code, 0) << built.out << built.err;
    auto pushed = run_slipway(root, {"push", name});
    EXPECT_EQ(pushed.exit_code, 0) << pushed.err;
    PushedImage image;
    image.digest = field_after(pushed.out, platform_name + ": digest: ");
    std::string size = field_after(pushed.out, " size: ");
    image.size = size.empty() ? 0 : std::stoul(size);
    auto inspected = run_slipway(root, {"inspect", name});
    EXPECT_EQ(inspected.exit_code, 0) << inspected.err;
    image.image_id = json::parse(inspected.out)[0].value("Id", "");
    return image;
  }

  // PUTs an index naming `arm64` for linux/arm64 and `amd64` for linux/amd64 (in that order, so
  // that picking the first entry would be wrong) as repo:multi; returns its digest.
  std::string put_index(const std::string& repo, const std::string& index_type,
                        const std::string& entry_type, const PushedImage& arm64,
                        const PushedImage& amd64) {
    json index = {{"schemaVersion", 2},
                  {"mediaType", index_type},
                  {"manifests",
                   {{{"mediaType", entry_type},
                     {"digest", arm64.digest},
                     {"size", arm64.size},
                     {"platform", {{"architecture", "arm64"}, {"os", "linux"}, {"variant", "v8"}}}},
                    {{"mediaType", entry_type},
                     {"digest", amd64.digest},
                     {"size", amd64.size},
                     {"platform", {{"architecture", "amd64"}, {"os", "linux"}}}}}}};
    ScratchDir files;
    write_text(files.path() / "index.json", index.dump());
    auto put = run_program({"curl", "-fsS", "-X", "PUT", "-D", "-", "-o", "/dev/null", "-H",
                            "Content-Type: " + index_type, "--data-binary",
                            "@" + (files.path() / "index.json").string(),
                            "http://" + host() + "/v2/" + repo + "/manifests/multi"});
    EXPECT_EQ(put.exit_code, 0) << put.err;
    std::string digest = field_after(put.out, "Docker-Content-Digest: ");
    while (!digest.empty() && (digest.back() == '\r' || digest.back() == '\n')) digest.pop_back();
    return digest;
  }

  // Rewrites repo:tag as a Docker schema2 manifest (skopeo converts it) under repo:tag-v2s2; the
  // config, and so the image ID, stay the same.
  PushedImage as_docker_schema2(const std::string& repo, const std::string& tag,
                                const PushedImage& oci) {
    const std::string target = "docker://" + host() + "/" + repo + ":" + tag + "-v2s2";
    auto copied =
        run_program({"skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                     "--format", "v2s2", "docker://" + host() + "/" + repo + ":" + tag, target});
    EXPECT_EQ(copied.exit_code, 0) << copied.err;
    auto raw = run_program({"skopeo", "inspect", "--raw", "--tls-verify=false", target});
    EXPECT_EQ(raw.exit_code, 0) << raw.err;
    EXPECT_EQ(json::parse(raw.out).value("mediaType", ""),
              "application/vnd.docker.distribution.manifest.v2+json");
    auto inspected = run_program({"skopeo", "inspect", "--tls-verify=false", target});
    EXPECT_EQ(inspected.exit_code, 0) << inspected.err;
    PushedImage image = oci;
    image.digest = json::parse(inspected.out).value("Digest", "");
    image.size = raw.out.size();
    return image;
  }

  void pulls_the_platform_it_is_asked_for(const std::string& repo, const std::string& index_type,
                                          const std::string& entry_type) {
    ScratchDir source, default_store, arm_store;
    auto imported =
        run_slipway(source.path(), {"import", busybox_rootfs_tarball().string(), "busybox"});
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
    PushedImage arm64 = push_platform_image(source.path(), repo, "arm64");
    PushedImage amd64 = push_platform_image(source.path(), repo, "amd64");
    if (entry_type == kDockerSchema2) {
      arm64 = as_docker_schema2(repo, "arm64", arm64);
      amd64 = as_docker_schema2(repo, "amd64", amd64);
    }
    ASSERT_FALSE(arm64.digest.empty());
    ASSERT_FALSE(amd64.digest.empty());
    ASSERT_NE(arm64.image_id, amd64.image_id);
    std::string index_digest = put_index(repo, index_type, entry_type, arm64, amd64);
    ASSERT_EQ(index_digest.size(), 71u);
    const std::string multi = host() + "/" + repo + ":multi";

    // No --platform: linux/amd64, this machine's platform.
    auto pulled = run_slipway(default_store.path(), {"pull", multi});
    ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
    // Like docker: the digest a tag names is the index's, and that is the repo digest recorded.
    EXPECT_EQ(field_after(pulled.out, "Digest: "), index_digest) << pulled.out;
    auto inspected = run_slipway(default_store.path(), {"inspect", multi});
    ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
    json image = json::parse(inspected.out)[0];
    EXPECT_EQ(image["Id"], amd64.image_id);
    EXPECT_EQ(image["RepoDigests"], json::array({host() + "/" + repo + "@" + index_digest}));
    auto ran = run_slipway(default_store.path(), {"run", "--rm", multi, "cat", "/platform"});
    ASSERT_EQ(ran.exit_code, 0) << ran.err;
    EXPECT_EQ(ran.out, "amd64\n");

    auto arm = run_slipway(arm_store.path(), {"pull", "--platform", "linux/arm64", multi});
    ASSERT_EQ(arm.exit_code, 0) << arm.err;
    auto arm_inspected = run_slipway(arm_store.path(), {"inspect", multi});
    ASSERT_EQ(arm_inspected.exit_code, 0) << arm_inspected.err;
    EXPECT_EQ(json::parse(arm_inspected.out)[0]["Id"], arm64.image_id);
    auto arm_ran = run_slipway(arm_store.path(), {"run", "--rm", multi, "cat", "/platform"});
    ASSERT_EQ(arm_ran.exit_code, 0) << arm_ran.err;
    EXPECT_EQ(arm_ran.out, "arm64\n");

    auto absent = run_slipway(arm_store.path(), {"pull", "--platform", "linux/s390x", multi});
    EXPECT_EQ(absent.exit_code, 1);
    EXPECT_NE(absent.err.find("no matching manifest for linux/s390x"), std::string::npos)
        << absent.err;
  }
};

TEST_F(ManifestListTest, AnOciIndexPullsTheAmd64ImageOrThePlatformAskedFor) {
  pulls_the_platform_it_is_asked_for("ocimulti", "application/vnd.oci.image.index.v1+json",
                                     "application/vnd.oci.image.manifest.v1+json");
}

TEST_F(ManifestListTest, ADockerManifestListPullsTheAmd64ImageOrThePlatformAskedFor) {
  pulls_the_platform_it_is_asked_for(
      "dockermulti", "application/vnd.docker.distribution.manifest.list.v2+json", kDockerSchema2);
}

TEST_F(RegistryTest, CopyWithinOneRegistryMountsTheBlobs) {
  ScratchDir root;
  const std::string source = host() + "/mountsrc:1";
  make_image(root.path(), source);
  auto pushed = run_slipway(root.path(), {"push", source});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  auto copied = run_slipway(root.path(), {"copy", source, host() + "/mountdst:1"});
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  EXPECT_EQ(count_lines_containing(copied.out, "mounted from mountsrc"), 2) << copied.out;
  EXPECT_EQ(field_after(copied.out, "1: digest: "), field_after(pushed.out, "1: digest: "));
}

TEST_F(RegistryTest, PushMountsBlobsFromAnotherRepositoryOfTheRegistry) {
  ScratchDir root;
  make_image(root.path(), host() + "/mount-a:1");
  auto first = run_slipway(root.path(), {"push", host() + "/mount-a:1"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  auto tagged = run_slipway(root.path(), {"tag", host() + "/mount-a:1", host() + "/mount-b:1"});
  ASSERT_EQ(tagged.exit_code, 0) << tagged.err;
  auto second = run_slipway(root.path(), {"push", host() + "/mount-b:1"});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(count_lines_containing(second.out, ": Mounted from mount-a"), 1) << second.out;
  EXPECT_EQ(count_lines_containing(second.out, ": Pushed"), 0) << second.out;
  EXPECT_EQ(field_after(second.out, "1: digest: "), field_after(first.out, "1: digest: "));
  auto inspected =
      run_program({"skopeo", "inspect", "--tls-verify=false", "docker://" + host() + "/mount-b:1"});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
}

// An image of one 40 MB layer of random bytes (gzip cannot shrink them), imported as `name`.
void import_40mb_layer(const fs::path& root, const std::string& name) {
  ScratchDir content;
  fs::create_directories(content.path() / "rootfs/data");
  auto made = run_program({"dd", "if=/dev/urandom",
                           "of=" + (content.path() / "rootfs/data/random.bin").string(), "bs=1M",
                           "count=40", "status=none"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const fs::path tarball = content.path() / "big.tar";
  auto tarred = run_program(
      {"tar", "-cf", tarball.string(), "-C", (content.path() / "rootfs").string(), "."});
  ASSERT_EQ(tarred.exit_code, 0) << tarred.err;
  auto imported = run_slipway(root, {"import", tarball.string(), name});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
}

const std::vector<std::string> k16MiBChunks = {"SLIPWAY_CHUNK_BYTES=16777216"};

TEST_F(RegistryTest, ALargeLayerGoesUpInChunksWithContentRange) {
  ScratchDir root, target;
  FaultProxy proxy(registry_->port());
  const std::string via_proxy = proxy.host() + "/big:1";
  import_40mb_layer(root.path(), via_proxy);
  std::vector<std::string> env = k16MiBChunks;
  env.push_back("SLIPWAY_CHUNKED_ABOVE_BYTES=16777216");
  auto pushed = run_slipway_with(root.path(), {"push", via_proxy}, env);
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  EXPECT_EQ(proxy.patch_requests, 3);  // 40 MB in 16 MiB chunks
  EXPECT_EQ(proxy.content_ranges, 3);

  auto pulled = run_slipway(target.path(), {"pull", host() + "/big:1"});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_EQ(field_after(pulled.out, "Digest: "), field_after(pushed.out, "1: digest: "));
}

TEST_F(RegistryTest, ALayerGoesUpInOnePutUnlessTheRegistryRefusesItsSize) {
  ScratchDir root, other_root, target;
  FaultProxy proxy(registry_->port());
  const std::string whole = proxy.host() + "/whole:1";
  import_40mb_layer(root.path(), whole);
  auto pushed = run_slipway_with(root.path(), {"push", whole}, k16MiBChunks);
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  EXPECT_EQ(proxy.patch_requests, 0);
  EXPECT_EQ(proxy.refused_bodies, 0);

  // A proxy that takes at most 20 MiB per request: the whole blob (other random bytes, so
  // nothing can be mounted) is refused once, then it goes up in chunks that fit.
  proxy.max_request_body = 20u << 20;
  const std::string limited = proxy.host() + "/limited:1";
  import_40mb_layer(other_root.path(), limited);
  auto chunked = run_slipway_with(other_root.path(), {"push", limited}, k16MiBChunks);
  ASSERT_EQ(chunked.exit_code, 0) << chunked.err;
  EXPECT_EQ(proxy.refused_bodies, 1);
  EXPECT_EQ(proxy.patch_requests, 3);

  auto pulled = run_slipway(target.path(), {"pull", host() + "/limited:1"});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_EQ(field_after(pulled.out, "Digest: "), field_after(chunked.out, "1: digest: "));
}

// Pushes busybox as NAME through the registry, then pulls it through a fault proxy into a fresh
// store and checks that it runs.
class RegistryFaultTest : public RegistryTest {
 protected:
  void push_and_pull_through(FaultProxy& proxy, const std::string& repo) {
    ScratchDir first, second;
    make_image(first.path(), host() + "/" + repo + ":1");
    auto pushed = run_slipway(first.path(), {"push", host() + "/" + repo + ":1"});
    ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
    const std::string via_proxy = proxy.host() + "/" + repo + ":1";
    auto pulled = run_slipway(second.path(), {"pull", via_proxy});
    ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
    EXPECT_EQ(field_after(pulled.out, "Digest: "), field_after(pushed.out, "1: digest: "));
    auto ran = run_slipway(second.path(), {"run", "--rm", via_proxy, "echo", "ok"});
    ASSERT_EQ(ran.exit_code, 0) << ran.err;
    EXPECT_EQ(ran.out, "ok\n");
  }
};

TEST_F(RegistryFaultTest, TwoServerErrorsThenSuccessCompletes) {
  FaultProxy proxy(registry_->port());
  proxy.errors_500 = 2;
  push_and_pull_through(proxy, "faults500");
  EXPECT_EQ(proxy.errors_500, 0);
}

TEST_F(RegistryFaultTest, TooManyRequestsWaitsForRetryAfter) {
  FaultProxy proxy(registry_->port());
  proxy.errors_429 = 1;
  auto start = std::chrono::steady_clock::now();
  push_and_pull_through(proxy, "faults429");
  EXPECT_EQ(proxy.errors_429, 0);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST_F(RegistryFaultTest, ADroppedConnectionMidBlobResumesWithRange) {
  FaultProxy proxy(registry_->port());
  proxy.drops = 1;
  push_and_pull_through(proxy, "faultsdrop");
  EXPECT_EQ(proxy.drops, 0);
  EXPECT_EQ(proxy.range_requests, 1);
}

// slipway running in the background with stdout and stderr going to files, so a test can watch
// its progress and kill it.
class BackgroundSlipway {
 public:
  BackgroundSlipway(const fs::path& root, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {SLIPWAY_BINARY, "--root", root.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      int out = ::open(out_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = ::open(err_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int null = ::open("/dev/null", O_RDONLY);
      ::dup2(null, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      std::vector<char*> pointers;
      for (auto& arg : argv) pointers.push_back(arg.data());
      pointers.push_back(nullptr);
      ::execv(pointers[0], pointers.data());
      _exit(127);
    }
  }
  ~BackgroundSlipway() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  BackgroundSlipway(const BackgroundSlipway&) = delete;
  BackgroundSlipway& operator=(const BackgroundSlipway&) = delete;

  std::string out() const { return read_or_empty(out_path()); }
  std::string err() const { return read_or_empty(err_path()); }
  void kill_hard() { ::kill(pid_, SIGKILL); }
  // The exit code, or 128 + the signal that ended it.
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  static std::string read_or_empty(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  fs::path out_path() const { return files_.path() / "out"; }
  fs::path err_path() const { return files_.path() / "err"; }

  ScratchDir files_;
  pid_t pid_ = -1;
};

// Polls `done` until it holds or `limit` passes; the limit only bounds a broken run.
bool eventually(const std::function<bool()>& done,
                std::chrono::seconds limit = std::chrono::seconds(120)) {
  auto give_up = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// An image of three layers (busybox, 4 MB and 24 MB of random data: gzip cannot shrink them)
// pushed straight to the registry; pulls go through a FaultProxy that can stall the big blob.
class PullResumeTest : public RegistryTest {
 protected:
  static constexpr uint64_t kStallAfter = 10u << 20;

  void SetUp() override {
    ScratchDir context;
    for (auto [file, megabytes] : {std::pair{"small.bin", 4}, std::pair{"big.bin", 24}}) {
      auto made = run_program({"dd", "if=/dev/urandom", "of=" + (context.path() / file).string(),
                               "bs=1M", "count=" + std::to_string(megabytes), "status=none"});
      ASSERT_EQ(made.exit_code, 0) << made.err;
    }
    auto summed = run_program({"md5sum", (context.path() / "big.bin").string()});
    ASSERT_EQ(summed.exit_code, 0) << summed.err;
    big_md5_ = summed.out.substr(0, 32);
    write_text(context.path() / "Dockerfile",
               "FROM busybox\nCOPY small.bin /small.bin\nCOPY big.bin /big.bin\n");
    auto imported =
        run_slipway(source_.path(), {"import", busybox_rootfs_tarball().string(), "busybox"});
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
    const std::string name = host() + "/" + repo() + ":1";
    auto built = run_slipway(source_.path(), {"build", "-t", name, context.path().string()});
    ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
    auto pushed = run_slipway(source_.path(), {"push", name});
    ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
    std::string manifest_digest = field_after(pushed.out, "1: digest: ");
    std::ifstream manifest_file(registry_->blob_data(manifest_digest));
    json manifest = json::parse(manifest_file);
    ASSERT_EQ(manifest["layers"].size(), 3u);
    for (const auto& layer : manifest["layers"]) {
      layer_digests_.push_back(layer["digest"]);
      layer_sizes_.push_back(layer["size"]);
    }
    ASSERT_GT(layer_sizes_[2], 2 * kStallAfter);
    proxy_ = std::make_unique<FaultProxy>(registry_->port());
  }

  std::string repo() const {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return "resume-" + name;
  }
  std::string via_proxy() const { return proxy_->host() + "/" + repo() + ":1"; }
  const std::string& big_digest() const { return layer_digests_[2]; }
  uint64_t big_size() const { return layer_sizes_[2]; }
  fs::path partial_file(const fs::path& root) const {
    return root / "tmp/partial" / ("sha256-" + big_digest().substr(7));
  }
  uint64_t size_or_zero(const fs::path& path) const {
    std::error_code ec;
    uint64_t size = fs::file_size(path, ec);
    return ec ? 0 : size;
  }

  // Starts a pull through the proxy with the big blob stalled after kStallAfter bytes, waits
  // until the two small layers are complete and the stalled bytes are on disk, then SIGKILLs it.
  void pull_and_kill_mid_blob(const fs::path& root) {
    proxy_->stall_blob(big_digest(), kStallAfter);
    BackgroundSlipway pull(root, {"pull", via_proxy()});
    ASSERT_TRUE(proxy_->wait_for_stall(std::chrono::seconds(120))) << pull.out() << pull.err();
    ASSERT_TRUE(eventually([&] {
      return count_lines_containing(pull.out(), ": Pull complete") == 2 &&
             size_or_zero(partial_file(root)) == kStallAfter;
    })) << pull.out()
        << pull.err() << " partial: " << size_or_zero(partial_file(root));
    pull.kill_hard();
    EXPECT_EQ(pull.wait(), 128 + SIGKILL);
    EXPECT_EQ(size_or_zero(partial_file(root)), kStallAfter);
    proxy_->reset_counts();
  }

  void expect_image_runs(const fs::path& root) {
    auto ran = run_slipway(root, {"run", "--rm", via_proxy(), "md5sum", "/big.bin"});
    ASSERT_EQ(ran.exit_code, 0) << ran.err;
    EXPECT_EQ(ran.out.substr(0, 32), big_md5_);
  }

  ScratchDir source_;
  std::string big_md5_;
  std::vector<std::string> layer_digests_;
  std::vector<uint64_t> layer_sizes_;
  std::unique_ptr<FaultProxy> proxy_;
};

TEST_F(PullResumeTest, APullKilledMidBlobResumesWhereItStopped) {
  ScratchDir target;
  pull_and_kill_mid_blob(target.path());

  auto resumed = run_slipway(target.path(), {"pull", via_proxy()});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(count_lines_containing(resumed.out, ": Already exists"), 2) << resumed.out;
  EXPECT_EQ(count_lines_containing(resumed.out, ": Resuming download at 10.49MB/"), 1)
      << resumed.out;
  EXPECT_EQ(count_lines_containing(resumed.out, ": Pull complete"), 1) << resumed.out;
  // Only what was missing came over the wire: nothing of the finished blobs, and the big one
  // from where the killed pull stopped.
  EXPECT_EQ(proxy_->gets_of(layer_digests_[0]), 0);
  EXPECT_EQ(proxy_->gets_of(layer_digests_[1]), 0);
  EXPECT_EQ(proxy_->gets_of(big_digest()), 1);
  EXPECT_EQ(proxy_->body_bytes(big_digest()), big_size() - kStallAfter);
  EXPECT_FALSE(fs::exists(partial_file(target.path())));
  EXPECT_EQ(resumed.out.find('\x1b'), std::string::npos) << "escape codes in a pipe's output";
  expect_image_runs(target.path());
}

TEST_F(PullResumeTest, AServerThatIgnoresRangeStillCompletesTheResumedBlob) {
  ScratchDir target;
  pull_and_kill_mid_blob(target.path());
  proxy_->ignore_range = true;
  auto resumed = run_slipway(target.path(), {"pull", via_proxy()});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  // The whole blob came again (a 200, not a 206); the bytes already kept were skipped.
  EXPECT_EQ(proxy_->body_bytes(big_digest()), big_size());
  EXPECT_FALSE(fs::exists(partial_file(target.path())));
  expect_image_runs(target.path());
}

TEST_F(PullResumeTest, APartialWithWrongBytesFailsOnceThenThePullStartsOver) {
  ScratchDir target;
  pull_and_kill_mid_blob(target.path());
  {
    std::fstream partial(partial_file(target.path()),
                         std::ios::in | std::ios::out | std::ios::binary);
    partial.seekp(static_cast<std::streamoff>(kStallAfter / 2));
    char byte = 0;
    partial.read(&byte, 1);
    partial.seekp(static_cast<std::streamoff>(kStallAfter / 2));
    byte = static_cast<char>(byte ^ 0x01);
    partial.write(&byte, 1);
  }
  auto failed = run_slipway(target.path(), {"pull", via_proxy()});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_NE(failed.err.find("digest mismatch: expected " + big_digest()), std::string::npos)
      << failed.err;
  EXPECT_FALSE(fs::exists(partial_file(target.path())));
  auto again = run_slipway(target.path(), {"pull", via_proxy()});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  expect_image_runs(target.path());
}

TEST_F(PullResumeTest, TwoPullsOfOneImageIntoOneStoreShareTheDownload) {
  ScratchDir target;
  proxy_->stall_blob(big_digest(), kStallAfter);
  BackgroundSlipway first(target.path(), {"pull", via_proxy()});
  ASSERT_TRUE(proxy_->wait_for_stall(std::chrono::seconds(120))) << first.out() << first.err();
  // The second pull finds the big blob being downloaded (its partial locked) and waits for it.
  BackgroundSlipway second(target.path(), {"pull", via_proxy()});
  ASSERT_TRUE(eventually([&] {
    return count_lines_containing(second.out(), ": Pulling fs layer") > 0 ||
           count_lines_containing(second.out(), ": Already exists") == 3;
  })) << second.out()
      << second.err();
  proxy_->release_stall();  // the first pull's connection drops; it resumes with Range
  EXPECT_EQ(first.wait(), 0) << first.err();
  EXPECT_EQ(second.wait(), 0) << second.err();
  // One full download of the big blob between the two processes: the stalled part plus the rest.
  EXPECT_EQ(proxy_->body_bytes(big_digest()), big_size());
  EXPECT_FALSE(fs::exists(partial_file(target.path())));
  expect_image_runs(target.path());
}

}  // namespace
}  // namespace slipway::testing
