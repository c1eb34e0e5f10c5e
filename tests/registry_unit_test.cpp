// Unit tests of registry/ without a network: references, WWW-Authenticate parsing, docker config
// credentials, URL helpers, retry delays; and Store::ingest_layer / ingest_blob.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "common/error.h"
#include "common/fs.h"
#include "common/io_block.h"
#include "registry/http.h"
#include "registry/registry.h"
#include "registry/session.h"
#include "store/byte_pipe.h"
#include "store/digest.h"
#include "store/store.h"
#include "tests/test_support.h"

namespace slipway::registry {
namespace {
namespace fs = std::filesystem;
using testing::ScratchDir;

std::string rejection(const char* text) {
  try {
    Reference::parse(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "accepted";
}

TEST(ReferenceTest, NormalizesDockerHubNames) {
  Reference ref = Reference::parse("ubuntu");
  EXPECT_EQ(ref.domain, "docker.io");
  EXPECT_EQ(ref.path, "library/ubuntu");
  EXPECT_EQ(ref.tag, "latest");
  EXPECT_TRUE(ref.tag_defaulted);
  EXPECT_EQ(ref.string(), "docker.io/library/ubuntu:latest");
  EXPECT_EQ(ref.familiar_name(), "ubuntu");
  EXPECT_EQ(ref.endpoint_host(), "registry-1.docker.io");
  EXPECT_FALSE(ref.is_plain_http_default());

  ref = Reference::parse("alice106/ubuntu:14.04");
  EXPECT_EQ(ref.string(), "docker.io/alice106/ubuntu:14.04");
  EXPECT_EQ(ref.familiar_string(), "alice106/ubuntu:14.04");
  EXPECT_FALSE(ref.tag_defaulted);

  EXPECT_EQ(Reference::parse("docker.io/library/busybox:1").familiar_string(), "busybox:1");
  EXPECT_EQ(Reference::parse("index.docker.io/busybox").string(),
            "docker.io/library/busybox:latest");
  EXPECT_EQ(Reference::parse("docker.io/library/a/b").familiar_name(), "library/a/b");
}

TEST(ReferenceTest, KeepsOtherRegistriesAndPorts) {
  Reference ref = Reference::parse("host:5000/a/b:tag");
  EXPECT_EQ(ref.domain, "host:5000");
  EXPECT_EQ(ref.path, "a/b");
  EXPECT_EQ(ref.tag, "tag");
  EXPECT_EQ(ref.endpoint_host(), "host:5000");
  EXPECT_EQ(ref.familiar_name(), "host:5000/a/b");

  ref = Reference::parse("localhost/app");
  EXPECT_EQ(ref.domain, "localhost");
  EXPECT_EQ(ref.path, "app");
  EXPECT_TRUE(ref.is_plain_http_default());

  ref = Reference::parse("127.0.0.1:5000/bb:1");
  EXPECT_EQ(ref.string(), "127.0.0.1:5000/bb:1");
  EXPECT_TRUE(ref.is_plain_http_default());
  EXPECT_TRUE(Reference::parse("127.1.2.3/x").is_plain_http_default());
  EXPECT_TRUE(Reference::parse("[::1]:5000/x").is_plain_http_default());
  EXPECT_FALSE(Reference::parse("127.example.com/x").is_plain_http_default());
  EXPECT_FALSE(Reference::parse("10.0.0.1:5000/x").is_plain_http_default());
  EXPECT_EQ(Reference::parse("Example.COM/x").domain, "Example.COM");
}

TEST(ReferenceTest, ParsesDigests) {
  const std::string digest = "sha256:" + std::string(64, 'a');
  Reference ref = Reference::parse("busybox@" + digest);
  EXPECT_EQ(ref.tag, "");
  EXPECT_EQ(ref.digest, digest);
  EXPECT_FALSE(ref.tag_defaulted);
  EXPECT_EQ(ref.tag_or_digest(), digest);
  EXPECT_EQ(ref.string(), "docker.io/library/busybox@" + digest);

  ref = Reference::parse("host:5000/a:v1@" + digest);
  EXPECT_EQ(ref.tag, "v1");
  EXPECT_EQ(ref.digest, digest);
  EXPECT_EQ(ref.tag_or_digest(), digest);
  EXPECT_EQ(ref.string(), "host:5000/a:v1@" + digest);
}

TEST(ReferenceTest, RejectsInvalidReferencesWithTheReason) {
  EXPECT_EQ(rejection(""),
            "invalid reference format: \"\": repository name must have at least one component");
  EXPECT_EQ(rejection("Ubuntu"),
            "invalid reference format: \"Ubuntu\": repository name must be lowercase");
  EXPECT_EQ(rejection("a//b"),
            "invalid reference format: \"a//b\": repository path has an empty component");
  EXPECT_NE(rejection("a/-b").find("invalid repository path component \"-b\""), std::string::npos);
  EXPECT_NE(rejection("app:a+b").find("tag must match"), std::string::npos);
  EXPECT_NE(rejection("app:").find("tag must match"), std::string::npos);
  EXPECT_NE(rejection(("app:" + std::string(129, 'x')).c_str()).find("tag must match"),
            std::string::npos);
  EXPECT_NE(rejection("app@sha256:abc").find("invalid checksum digest"), std::string::npos);
  EXPECT_NE(rejection("app@md5:abc").find("unsupported digest algorithm md5"), std::string::npos);
  EXPECT_EQ(rejection(("a" + std::string(64, 'b')).c_str()), "accepted");  // 65 chars: fine
  EXPECT_EQ(rejection(std::string(64, 'b').c_str()),
            "invalid reference format: \"" + std::string(64, 'b') +
                "\": cannot specify 64-byte hexadecimal strings as a repository name");
  EXPECT_NE(rejection("-host.com:5000/a").find("invalid registry host"), std::string::npos);
  EXPECT_NE(rejection("host.com:/a").find("invalid registry host"), std::string::npos);
  EXPECT_NE(rejection(("x.io/" + std::string(300, 'a')).c_str()).find("255 characters"),
            std::string::npos);
  EXPECT_EQ(rejection("a__b/c.d-e---f"), "accepted");
  EXPECT_NE(rejection("a___b"), "accepted");
  EXPECT_NE(rejection("a..b"), "accepted");
}

TEST(WwwAuthenticateTest, ParsesBearerBasicAndSeveralChallenges) {
  auto challenges = detail::parse_www_authenticate(
      {R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",)"
       R"(scope="repository:library/ubuntu:pull,push", Basic realm="x \"y\"")",
       "basic realm=registry"});
  ASSERT_EQ(challenges.size(), 3u);
  EXPECT_EQ(challenges[0].scheme, "bearer");
  EXPECT_EQ(challenges[0].params["realm"], "https://auth.docker.io/token");
  EXPECT_EQ(challenges[0].params["service"], "registry.docker.io");
  EXPECT_EQ(challenges[0].params["scope"], "repository:library/ubuntu:pull,push");
  EXPECT_EQ(challenges[1].scheme, "basic");
  EXPECT_EQ(challenges[1].params["realm"], "x \"y\"");
  EXPECT_EQ(challenges[2].scheme, "basic");
  EXPECT_EQ(challenges[2].params["realm"], "registry");
}

TEST(CredentialsTest, ReadsDockerConfigAuths) {
  ScratchDir dir;
  fs::path config = dir.path() / "config.json";
  EXPECT_FALSE(detail::find_credentials(config, "docker.io"));
  testing::write_text(config, R"({"auths": {
      "https://index.docker.io/v1/": {"auth": ")" +
                                  detail::base64_encode("alice:s3cr:et") + R"("},
      "registry.example.com:5000": {"username": "bob", "password": "pw"},
      "http://other.example": {"auth": ""}}})");
  auto hub = detail::find_credentials(config, "docker.io");
  ASSERT_TRUE(hub);
  EXPECT_EQ(hub->username, "alice");
  EXPECT_EQ(hub->password, "s3cr:et");
  auto other = detail::find_credentials(config, "registry.example.com:5000");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->username, "bob");
  EXPECT_FALSE(detail::find_credentials(config, "other.example"));
  EXPECT_FALSE(detail::find_credentials(config, "registry.example.com"));

  testing::write_text(config, R"({"auths": {"h": {"auth": "!!!!"}}})");
  try {
    detail::find_credentials(config, "h");
    FAIL() << "accepted bad base64";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid base64"), std::string::npos);
  }
}

TEST(Base64Test, RoundTrips) {
  for (std::string text : {"", "a", "ab", "abc", "abcd", "user:pass"})
    EXPECT_EQ(detail::base64_decode(detail::base64_encode(text)), text);
  EXPECT_EQ(detail::base64_encode("user:pass"), "dXNlcjpwYXNz");
}

TEST(UrlTest, ResolvesLocationsAndAddsQueries) {
  EXPECT_EQ(detail::resolve_url("http://127.0.0.1:5000/v2/a/blobs/uploads/",
                                "/v2/a/blobs/uploads/uuid?_state=x"),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/uuid?_state=x");
  EXPECT_EQ(detail::resolve_url("https://r.io/v2/a/blobs/uploads/", "https://s3.io/up?sig=1"),
            "https://s3.io/up?sig=1");
  EXPECT_EQ(detail::add_query("http://h/u?_state=x", "digest", "sha256:ab"),
            "http://h/u?_state=x&digest=sha256%3Aab");
  EXPECT_EQ(detail::add_query("http://h/u", "scope", "repository:a/b:pull,push"),
            "http://h/u?scope=repository%3Aa%2Fb%3Apull%2Cpush");
}

TEST(LoginTest, NormalizesRegistryHosts) {
  EXPECT_EQ(normalize_registry_host("127.0.0.1:5000"), "127.0.0.1:5000");
  EXPECT_EQ(normalize_registry_host("https://registry.example:5000/v2/"), "registry.example:5000");
  EXPECT_EQ(normalize_registry_host("http://localhost:5000"), "localhost:5000");
  EXPECT_EQ(normalize_registry_host("https://index.docker.io/v1/"), "docker.io");
  EXPECT_EQ(normalize_registry_host("registry-1.docker.io"), "docker.io");
  EXPECT_THROW(normalize_registry_host("https://"), Error);
}

TEST(LoginTest, LogoutOfAnUnknownRegistryChangesNothing) {
  ScratchDir dir;
  ::setenv("DOCKER_CONFIG", dir.path().c_str(), 1);
  write_file_atomic(dir.path() / "config.json", R"({"auths":{"other:1":{"auth":"YTpi"}}})");
  EXPECT_FALSE(logout("127.0.0.1:9"));
  EXPECT_EQ(read_file(dir.path() / "config.json"), R"({"auths":{"other:1":{"auth":"YTpi"}}})");
  EXPECT_TRUE(logout("other:1"));
  EXPECT_FALSE(detail::find_credentials(dir.path() / "config.json", "other:1"));
  ::unsetenv("DOCKER_CONFIG");
}

TEST(CertsDirTest, FindsPerRegistryDirectoriesUnderSlipwayCertsDir) {
  ScratchDir dir;
  ::setenv("SLIPWAY_CERTS_DIR", dir.path().c_str(), 1);
  fs::create_directories(dir.path() / "reg.example:5000");
  EXPECT_EQ(detail::registry_certs_dir("reg.example:5000"),
            (dir.path() / "reg.example:5000").string());
  EXPECT_EQ(detail::registry_certs_dir("reg.example"), std::nullopt);
  EXPECT_EQ(detail::registry_certs_dir("../etc"), std::nullopt);
  EXPECT_EQ(detail::registry_certs_dir(".."), std::nullopt);
  ::unsetenv("SLIPWAY_CERTS_DIR");
}

TEST(RetryTest, HonoursRetryAfter) {
  detail::HttpResponse response;
  response.headers.emplace_back("retry-after", "3");
  EXPECT_DOUBLE_EQ(detail::retry_delay_seconds(&response, 0), 3.0);
  response.headers[0].second = "1000";
  EXPECT_DOUBLE_EQ(detail::retry_delay_seconds(&response, 0), 60.0);
  EXPECT_TRUE(detail::is_retryable_status(429));
  EXPECT_TRUE(detail::is_retryable_status(503));
  EXPECT_FALSE(detail::is_retryable_status(404));
  EXPECT_LE(detail::retry_delay_seconds(nullptr, 10), 8.0);
}

// ---- Store::ingest_layer / ingest_blob

class StringSource : public store::ByteSource {
 public:
  explicit StringSource(std::string data) : data_(std::move(data)) {}
  size_t read(void* buffer, size_t size) override {
    size_t n = std::min(size, data_.size() - offset_);
    std::memcpy(buffer, data_.data() + offset_, n);
    offset_ += n;
    return n;
  }

 private:
  std::string data_;
  size_t offset_ = 0;
};

size_t count_entries(const fs::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir)) ++n;
  return n;
}

// A gzip layer blob made by the store itself from busybox.
struct LayerBlob {
  std::string bytes;
  store::Descriptor descriptor;
  std::string diff_id;
};

LayerBlob busybox_blob() {
  ScratchDir dir;
  store::Store source(dir.path());
  store::StoredLayer layer = source.import_layer(testing::busybox_rootfs_tarball(), "");
  return {source.read_blob(layer.blob.digest), layer.blob, layer.diff_id};
}

TEST(IngestTest, StoresAndUnpacksAVerifiedLayer) {
  LayerBlob blob = busybox_blob();
  ScratchDir dir;
  store::Store store(dir.path());
  StringSource source(blob.bytes);
  store::StoredLayer layer = store.ingest_layer(source, blob.descriptor, "");
  EXPECT_EQ(layer.blob.digest, blob.descriptor.digest);
  EXPECT_EQ(layer.diff_id, blob.diff_id);
  EXPECT_TRUE(store.has_blob(blob.descriptor.digest));
  EXPECT_TRUE(store.has_layer(blob.diff_id));
  EXPECT_TRUE(fs::exists(dir.path() / "layers" / store::digest_hex(blob.diff_id) / "diff" / "bin" /
                         "busybox"));
  EXPECT_EQ(store.read_blob(blob.descriptor.digest), blob.bytes);
}

// A blob that matches its digest but not the diff_id the image's config lists (a config that
// lies about its layers) is refused before anything is installed.
TEST(IngestTest, AWrongDiffIdIsRefusedBeforeTheLayerIsInstalled) {
  LayerBlob blob = busybox_blob();
  ScratchDir dir;
  store::Store store(dir.path());
  const std::string wrong = "sha256:" + std::string(64, 'a');
  StringSource source(blob.bytes);
  try {
    store.ingest_layer(source, blob.descriptor, "", wrong);
    FAIL() << "accepted a layer whose diff_id the config does not list";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "layer " + blob.descriptor.digest +
                                         ": its content has diff_id " + blob.diff_id +
                                         " but the config lists " + wrong);
  }
  EXPECT_FALSE(store.has_blob(blob.descriptor.digest));
  EXPECT_EQ(count_entries(dir.path() / "layers"), 0u);
  StringSource again(blob.bytes);
  EXPECT_EQ(store.ingest_layer(again, blob.descriptor, "", blob.diff_id).diff_id, blob.diff_id);
}

TEST(IngestTest, AFlippedByteIsADigestMismatchAndLeavesNoTrace) {
  LayerBlob blob = busybox_blob();
  ScratchDir dir;
  store::Store store(dir.path());
  for (size_t position : {blob.bytes.size() / 2, blob.bytes.size() - 3}) {
    std::string damaged = blob.bytes;
    damaged[position] = static_cast<char>(damaged[position] ^ 0x20);
    StringSource source(damaged);
    try {
      store.ingest_layer(source, blob.descriptor, "");
      FAIL() << "accepted a damaged blob";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("digest mismatch: expected " + blob.descriptor.digest),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_FALSE(store.has_blob(blob.descriptor.digest));
  EXPECT_EQ(count_entries(dir.path() / "oci" / "blobs" / "sha256"), 0u);
  EXPECT_EQ(count_entries(dir.path() / "layers"), 0u);
  EXPECT_EQ(count_entries(dir.path() / "tmp") <= 1, true);  // at most the pins file
}

TEST(IngestTest, WrongSizesAreRefused) {
  LayerBlob blob = busybox_blob();
  ScratchDir dir;
  store::Store store(dir.path());
  store::Descriptor shorter = blob.descriptor;
  shorter.size -= 10;
  StringSource source(blob.bytes);
  EXPECT_THROW(store.ingest_layer(source, shorter, ""), Error);
  store::Descriptor longer = blob.descriptor;
  longer.size += 10;
  StringSource source2(blob.bytes);
  try {
    store.ingest_layer(source2, longer, "");
    FAIL() << "accepted a short blob";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("size mismatch"), std::string::npos) << e.what();
  }
  EXPECT_EQ(count_entries(dir.path() / "layers"), 0u);
  EXPECT_FALSE(store.has_blob(blob.descriptor.digest));
}

// Yields the first `limit` bytes of `data`, then fails like a dropped download.
class FailingSource : public store::ByteSource {
 public:
  FailingSource(std::string data, size_t limit) : data_(std::move(data)), limit_(limit) {}
  size_t read(void* buffer, size_t size) override {
    if (offset_ == limit_) throw Error("connection reset");
    size_t n = std::min(size, limit_ - offset_);
    std::memcpy(buffer, data_.data() + offset_, n);
    offset_ += n;
    return n;
  }

 private:
  std::string data_;
  size_t limit_;
  size_t offset_ = 0;
};

fs::path partial_file(const fs::path& root, const store::Descriptor& blob) {
  return root / "tmp" / "partial" / ("sha256-" + store::digest_hex(blob.digest));
}

TEST(PartialIngestTest, AFailedDownloadIsKeptAndTheNextOneResumesIt) {
  LayerBlob blob = busybox_blob();
  ScratchDir dir;
  const size_t cut = blob.bytes.size() / 3;
  {
    store::Store store(dir.path());
    store::PartialBlob partial = store.open_partial_blob(blob.descriptor);
    EXPECT_EQ(partial.size(), 0u);
    FailingSource source(blob.bytes, cut);
    EXPECT_THROW(store.ingest_layer(partial, source, blob.descriptor, ""), Error);
  }
  EXPECT_EQ(fs::file_size(partial_file(dir.path(), blob.descriptor)), cut);

  // A new process (a new Store on the root) keeps the partial and asks only for the rest.
  store::Store store(dir.path());
  store::PartialBlob partial = store.open_partial_blob(blob.descriptor);
  ASSERT_EQ(partial.size(), cut);
  StringSource rest(blob.bytes.substr(cut));
  store::StoredLayer layer = store.ingest_layer(partial, rest, blob.descriptor, "");
  EXPECT_EQ(layer.diff_id, blob.diff_id);
  EXPECT_EQ(store.read_blob(blob.descriptor.digest), blob.bytes);
  EXPECT_TRUE(fs::exists(dir.path() / "layers" / store::digest_hex(blob.diff_id) / "diff" / "bin" /
                         "busybox"));
  EXPECT_FALSE(fs::exists(partial_file(dir.path(), blob.descriptor)));
}

TEST(PartialIngestTest, APartialWithWrongBytesIsRemovedWithTheMismatch) {
  LayerBlob blob = busybox_blob();
  ScratchDir dir;
  store::Store store(dir.path());
  const size_t cut = blob.bytes.size() / 2;
  std::string damaged = blob.bytes.substr(0, cut);
  damaged[cut / 2] = static_cast<char>(damaged[cut / 2] ^ 0x01);
  fs::create_directories(partial_file(dir.path(), blob.descriptor).parent_path());
  testing::write_text(partial_file(dir.path(), blob.descriptor), damaged);

  store::PartialBlob partial = store.open_partial_blob(blob.descriptor);
  ASSERT_EQ(partial.size(), cut);
  StringSource rest(blob.bytes.substr(cut));
  try {
    store.ingest_layer(partial, rest, blob.descriptor, "");
    FAIL() << "accepted a damaged partial blob";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("digest mismatch"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(partial_file(dir.path(), blob.descriptor)));
  EXPECT_FALSE(store.has_blob(blob.descriptor.digest));
  EXPECT_EQ(count_entries(dir.path() / "layers"), 0u);
}

TEST(PartialIngestTest, APartialLongerThanTheBlobStartsOver) {
  LayerBlob blob = busybox_blob();
  ScratchDir dir;
  store::Store store(dir.path());
  fs::create_directories(partial_file(dir.path(), blob.descriptor).parent_path());
  testing::write_text(partial_file(dir.path(), blob.descriptor), blob.bytes + "trailing junk");
  store::PartialBlob partial = store.open_partial_blob(blob.descriptor);
  EXPECT_EQ(partial.size(), 0u);
  StringSource source(blob.bytes);
  EXPECT_EQ(store.ingest_layer(partial, source, blob.descriptor, "").diff_id, blob.diff_id);
  EXPECT_EQ(store.read_blob(blob.descriptor.digest), blob.bytes);
}

TEST(PartialIngestTest, AWaiterNeverGetsTheFileTheHolderTurnedIntoTheBlob) {
  LayerBlob blob = busybox_blob();
  ScratchDir dir;
  store::Store store(dir.path());
  std::optional<store::PartialBlob> held = store.open_partial_blob(blob.descriptor);
  std::optional<store::PartialBlob> waited;
  std::thread waiter([&] { waited = store.open_partial_blob(blob.descriptor); });
  StringSource source(blob.bytes);
  store.ingest_layer(*held, source, blob.descriptor, "");
  held.reset();
  waiter.join();
  // Whether it waited or came late, it holds a new, empty partial, not the stored blob.
  ASSERT_TRUE(waited);
  EXPECT_EQ(waited->size(), 0u);
  EXPECT_EQ(store.read_blob(blob.descriptor.digest), blob.bytes);
  waited->discard();
  EXPECT_FALSE(fs::exists(partial_file(dir.path(), blob.descriptor)));
  EXPECT_EQ(store.read_blob(blob.descriptor.digest), blob.bytes);
}

TEST(IngestTest, BlobsMustMatchTheirDigest) {
  ScratchDir dir;
  store::Store store(dir.path());
  std::string digest = store::sha256_digest("{}");
  store.ingest_blob("{}", digest);
  EXPECT_EQ(store.read_blob(digest), "{}");
  EXPECT_THROW(store.ingest_blob("{ }", store::sha256_digest("[]")), Error);
  EXPECT_FALSE(store.has_blob(store::sha256_digest("[]")));
  EXPECT_FALSE(store.has_blob(store::sha256_digest("{ }")));
}

// The pipe between a download and its consumer: every byte arrives once and in order whatever
// the push and read sizes (pushes far smaller and far larger than a block, reads of odd sizes).
TEST(BytePipeTest, CarriesEveryByteInOrder) {
  std::string bytes(5 * IoBlock::kSize + 12345, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 131) ^ (i >> 13));
  store::BytePipe pipe;
  bool pushed_all = true;
  std::thread producer([&] {
    const size_t sizes[] = {1, 7, 16384, IoBlock::kSize + 3, 65536, 3 * IoBlock::kSize};
    size_t offset = 0;
    for (size_t k = 0; offset < bytes.size() && pushed_all; ++k) {
      size_t n = std::min(sizes[k % std::size(sizes)], bytes.size() - offset);
      pushed_all = pipe.push(bytes.data() + offset, n);
      offset += n;
    }
    pipe.close();  // always: the reader below must see the end even if a push failed
  });
  std::string received;
  std::vector<char> buffer(777777);
  while (size_t n = pipe.read(buffer.data(), buffer.size())) received.append(buffer.data(), n);
  producer.join();
  EXPECT_TRUE(pushed_all);
  EXPECT_EQ(received.size(), bytes.size());
  EXPECT_TRUE(received == bytes);
}

TEST(BytePipeTest, AnErrorAtCloseReachesTheReaderAfterTheBytes) {
  store::BytePipe pipe;
  ASSERT_TRUE(pipe.push("abc", 3));
  pipe.close(std::make_exception_ptr(Error("connection dropped")));
  char buffer[8];
  EXPECT_EQ(pipe.read(buffer, sizeof buffer), 3u);
  EXPECT_THROW(pipe.read(buffer, sizeof buffer), Error);
}

// A consumer that gives up wakes a producer blocked on a full pipe, and later pushes fail, so
// the download stops instead of hanging.
TEST(BytePipeTest, AbortReleasesABlockedProducer) {
  store::BytePipe pipe;
  std::string block(store::BytePipe::kMaxBuffered, 'x');
  ASSERT_TRUE(pipe.push(block.data(), block.size()));  // now full
  std::atomic<int> result = -1;
  std::thread producer([&] { result = pipe.push("y", 1) ? 1 : 0; });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(result.load(), -1);  // still waiting for room
  pipe.abort();
  producer.join();
  EXPECT_EQ(result.load(), 0);
  EXPECT_FALSE(pipe.push("z", 1));
  EXPECT_TRUE(pipe.aborted());
}

// Blocks given back are handed out again (the point of IoBlock: no fresh pages per layer).
TEST(IoBlockTest, AReturnedBlockIsReused) {
  const char* first = nullptr;
  {
    IoBlock block;
    first = block.data();
    block.data()[0] = 'a';
    block.data()[IoBlock::kSize - 1] = 'z';
  }
  IoBlock again;
  EXPECT_EQ(again.data(), first);
  IoBlock other;
  EXPECT_NE(other.data(), again.data());
  IoBlock moved = std::move(other);
  EXPECT_NE(moved.data(), nullptr);
}

}  // namespace
}  // namespace slipway::registry
