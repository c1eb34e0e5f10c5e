// slipway login/logout and authenticated push/pull against the real docker-registry: htpasswd
// Basic auth (bcrypt file made with `htpasswd -Bbn`), and token auth with a token server run by
// the test (JWTs signed RS256 with a key and certificate the test makes with openssl; the
// registry checks them against that certificate). Credentials live in a temp DOCKER_CONFIG,
// never the real ~/.docker.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "tests/registry_fixture.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kUser = "alice";
constexpr const char* kPassword = "s3cret-Pa55";
constexpr const char* kWrongPassword = "not-the-Pa55word";

std::string base64(const std::string& text) {
  static constexpr char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < text.size(); i += 3) {
    uint32_t v = (static_cast<unsigned char>(text[i]) << 16) |
                 (static_cast<unsigned char>(text[i + 1]) << 8) |
                 static_cast<unsigned char>(text[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kTable[(v >> shift) & 63];
  }
  if (i + 1 == text.size()) {
    uint32_t v = static_cast<unsigned char>(text[i]) << 16;
    out += kTable[(v >> 18) & 63];
    out += kTable[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == text.size()) {
    uint32_t v = (static_cast<unsigned char>(text[i]) << 16) |
                 (static_cast<unsigned char>(text[i + 1]) << 8);
    out += kTable[(v >> 18) & 63];
    out += kTable[(v >> 12) & 63];
    out += kTable[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string field_after(const std::string& text, const std::string& prefix) {
  size_t at = text.find(prefix);
  if (at == std::string::npos) return "";
  size_t start = at + prefix.size();
  return text.substr(start, text.find_first_of(" \n", start) - start);
}

// A registry with htpasswd Basic auth for alice.
class BasicAuthRegistryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    files_ = std::make_unique<ScratchDir>();
    auto made = run_program({"htpasswd", "-Bbn", kUser, kPassword});
    ASSERT_EQ(made.exit_code, 0) << "htpasswd (apache2-utils) is needed: " << made.err;
    write_text(files_->path() / "htpasswd", made.out);
    RegistryVariant variant;
    variant.auth_yaml = "auth:\n  htpasswd:\n    realm: test-realm\n    path: " +
                        (files_->path() / "htpasswd").string() + "\n";
    registry_ = std::make_unique<LocalRegistry>(variant);
  }
  static void TearDownTestSuite() {
    registry_.reset();
    files_.reset();
  }

  // slipway with a private DOCKER_CONFIG and HOME.
  CommandResult slipway(const fs::path& root, const std::vector<std::string>& args,
                        const std::string& input = "") {
    return run_slipway_with(
        root, args,
        {"DOCKER_CONFIG=" + config_dir_.path().string(), "HOME=" + home_.path().string()}, input);
  }
  fs::path config_file() const { return config_dir_.path() / "config.json"; }
  void make_image(const fs::path& root, const std::string& name) {
    auto imported = slipway(root, {"import", busybox_rootfs_tarball().string(), "busybox"});
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
    auto tagged = slipway(root, {"tag", "busybox", name});
    ASSERT_EQ(tagged.exit_code, 0) << tagged.err;
  }
  static std::string host() { return registry_->host(); }

  ScratchDir config_dir_, home_;
  static std::unique_ptr<ScratchDir> files_;
  static std::unique_ptr<LocalRegistry> registry_;
};
std::unique_ptr<ScratchDir> BasicAuthRegistryTest::files_;
std::unique_ptr<LocalRegistry> BasicAuthRegistryTest::registry_;

void expect_no_secret(const CommandResult& result) {
  for (const char* secret : {kPassword, kWrongPassword}) {
    EXPECT_EQ(result.out.find(secret), std::string::npos) << result.out;
    EXPECT_EQ(result.err.find(secret), std::string::npos) << result.err;
  }
  const std::string encoded = base64(std::string(kUser) + ":" + kPassword);
  EXPECT_EQ(result.out.find(encoded), std::string::npos);
  EXPECT_EQ(result.err.find(encoded), std::string::npos);
}

TEST_F(BasicAuthRegistryTest, WrongPasswordIsUnauthorizedAndStoresNothing) {
  ScratchDir root;
  auto login = slipway(root.path(), {"login", "-u", kUser, "--password-stdin", host()},
                       std::string(kWrongPassword) + "\n");
  EXPECT_EQ(login.exit_code, 1);
  EXPECT_TRUE(login.err.starts_with("Error: unauthorized: ")) << login.err;
  EXPECT_EQ(login.out.find("Login Succeeded"), std::string::npos);
  expect_no_secret(login);
  EXPECT_FALSE(fs::exists(config_file()));

  // -p too, with docker's warning.
  auto with_flag = slipway(root.path(), {"login", "-u", kUser, "-p", kWrongPassword, host()});
  EXPECT_EQ(with_flag.exit_code, 1);
  EXPECT_NE(with_flag.err.find("Error: unauthorized: "), std::string::npos) << with_flag.err;
  EXPECT_NE(with_flag.err.find("WARNING! Using --password via the CLI is insecure"),
            std::string::npos);
  expect_no_secret(with_flag);
  EXPECT_FALSE(fs::exists(config_file()));
}

TEST_F(BasicAuthRegistryTest, LoginStoresDockerFormatKeepsOtherKeysAndLogoutRemoves) {
  ScratchDir root;
  // An existing config with another registry and keys slipway does not know.
  const json existing = {{"auths", {{"other.example:5000", {{"auth", base64("bob:pw")}}}}},
                         {"credHelpers", {{"gcr.io", "gcloud"}}},
                         {"psFormat", "table {{.ID}}"}};
  write_text(config_file(), existing.dump());

  auto login = slipway(root.path(), {"login", "-u", kUser, "--password-stdin", host()},
                       std::string(kPassword) + "\n");
  ASSERT_EQ(login.exit_code, 0) << login.err;
  EXPECT_EQ(login.out, "Login Succeeded\n");
  expect_no_secret(login);

  struct stat info {};
  ASSERT_EQ(::stat(config_file().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  json config = json::parse(read_file(config_file()));
  EXPECT_EQ(config["auths"][host()]["auth"], base64(std::string(kUser) + ":" + kPassword));
  EXPECT_EQ(config["auths"]["other.example:5000"], existing["auths"]["other.example:5000"]);
  EXPECT_EQ(config["credHelpers"], existing["credHelpers"]);
  EXPECT_EQ(config["psFormat"], existing["psFormat"]);

  auto logout = slipway(root.path(), {"logout", host()});
  ASSERT_EQ(logout.exit_code, 0) << logout.err;
  EXPECT_EQ(logout.out, "Removing login credentials for " + host() + "\n");
  config = json::parse(read_file(config_file()));
  EXPECT_FALSE(config["auths"].contains(host()));
  EXPECT_EQ(config["auths"]["other.example:5000"], existing["auths"]["other.example:5000"]);
  EXPECT_EQ(config["credHelpers"], existing["credHelpers"]);

  auto again = slipway(root.path(), {"logout", host()});
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_EQ(again.out, "Not logged in to " + host() + "\n");
}

TEST_F(BasicAuthRegistryTest, HomeDockerConfigIsUsedWithoutDockerConfigVariable) {
  ScratchDir root, home;
  auto login =
      run_slipway_with(root.path(), {"login", "-u", kUser, "--password-stdin", host()},
                       {"DOCKER_CONFIG=", "HOME=" + home.path().string()}, std::string(kPassword));
  ASSERT_EQ(login.exit_code, 0) << login.err;
  json config = json::parse(read_file(home.path() / ".docker/config.json"));
  EXPECT_EQ(config["auths"][host()]["auth"], base64(std::string(kUser) + ":" + kPassword));
}

TEST_F(BasicAuthRegistryTest, PushNeedsCredentialsAndPullWithThemWorks) {
  ScratchDir first, second;
  const std::string name = host() + "/private/bb:1";
  make_image(first.path(), name);

  auto refused = slipway(first.path(), {"push", name});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("unauthorized"), std::string::npos) << refused.err;

  auto login = slipway(first.path(), {"login", "-u", kUser, "--password-stdin", host()},
                       std::string(kPassword) + "\n");
  ASSERT_EQ(login.exit_code, 0) << login.err;
  auto pushed = slipway(first.path(), {"push", name});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  expect_no_secret(pushed);
  std::string digest = field_after(pushed.out, "1: digest: ");
  ASSERT_EQ(digest.size(), 71u) << pushed.out;

  auto pulled = slipway(second.path(), {"pull", name});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_EQ(field_after(pulled.out, "Digest: "), digest);
  auto ran = slipway(second.path(), {"run", "--rm", name, "echo", "ok"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "ok\n");

  auto logout = slipway(first.path(), {"logout", host()});
  ASSERT_EQ(logout.exit_code, 0) << logout.err;
  ScratchDir third;
  auto anonymous = slipway(third.path(), {"pull", name});
  EXPECT_EQ(anonymous.exit_code, 1);
  EXPECT_NE(anonymous.err.find("unauthorized"), std::string::npos) << anonymous.err;
}

// ---------------------------------------------------------------- token auth

std::string base64url(const std::string& data) {
  std::string out = base64(data);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::string percent_decode(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += text[i] == '+' ? ' ' : text[i];
    }
  }
  return out;
}

// A token server on loopback (distribution's token spec): GET /token?service=&scope=...; Basic
// credentials alice:kPassword get what they ask for, anonymous callers only "pull", wrong
// credentials a 401. Tokens are RS256 JWTs with the signing certificate in the x5c header.
class TokenServer {
 public:
  TokenServer(const fs::path& key_pem, const fs::path& cert_pem, std::string service,
              std::string issuer)
      : service_(std::move(service)), issuer_(std::move(issuer)) {
    FILE* key_file = std::fopen(key_pem.c_str(), "r");
    if (!key_file) throw std::runtime_error("no key");
    key_.reset(PEM_read_PrivateKey(key_file, nullptr, nullptr, nullptr));
    std::fclose(key_file);
    FILE* cert_file = std::fopen(cert_pem.c_str(), "r");
    if (!cert_file) throw std::runtime_error("no certificate");
    X509* cert = PEM_read_X509(cert_file, nullptr, nullptr, nullptr);
    std::fclose(cert_file);
    if (!key_ || !cert) throw std::runtime_error("cannot read the token key or certificate");
    unsigned char* der = nullptr;
    int der_size = i2d_X509(cert, &der);
    cert_der_.assign(reinterpret_cast<char*>(der), static_cast<size_t>(der_size));
    OPENSSL_free(der);
    X509_free(cert);

    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(listen_fd_, 64);
    acceptor_ = std::thread([this] {
      while (true) {
        int client = ::accept(listen_fd_, nullptr, nullptr);
        if (client < 0) return;
        serve(client);
        ::close(client);
      }
    });
  }
  ~TokenServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    ::close(listen_fd_);
  }
  std::string realm() const { return "http://127.0.0.1:" + std::to_string(port_) + "/token"; }

  std::atomic<int> anonymous_tokens{0}, user_tokens{0}, refused{0};

 private:
  struct KeyDeleter {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
  };

  std::string sign(const std::string& input) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    size_t size = 0;
    if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &size,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
      throw std::runtime_error("sign");
    std::string signature(size, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
      throw std::runtime_error("sign");
    signature.resize(size);
    return signature;
  }

  std::string token(const std::string& subject, const json& access) {
    json header = {{"alg", "RS256"}, {"typ", "JWT"}, {"x5c", json::array({base64(cert_der_)})}};
    long now = static_cast<long>(std::time(nullptr));
    json claims = {{"iss", issuer_},
                   {"sub", subject},
                   {"aud", service_},
                   {"exp", now + 300},
                   {"nbf", now - 10},
                   {"iat", now},
                   {"jti", std::to_string(++serial_)},
                   {"access", access}};
    std::string input = base64url(header.dump()) + "." + base64url(claims.dump());
    return input + "." + base64url(sign(input));
  }

  static void send_all(int fd, const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }

  void serve(int client) {
    std::string request;
    char buffer[8192];
    while (request.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::read(client, buffer, sizeof buffer);
      if (n <= 0) return;
      request.append(buffer, static_cast<size_t>(n));
    }
    std::string target = request.substr(4, request.find(' ', 4) - 4);
    std::vector<std::string> scopes;
    size_t query = target.find('?');
    if (query != std::string::npos) {
      std::string rest = target.substr(query + 1);
      size_t start = 0;
      while (start <= rest.size()) {
        size_t end = std::min(rest.find('&', start), rest.size());
        std::string pair = rest.substr(start, end - start);
        if (pair.starts_with("scope=")) scopes.push_back(percent_decode(pair.substr(6)));
        start = end + 1;
      }
    }
    std::string subject;
    size_t auth = request.find("\r\nAuthorization: Basic ");
    if (auth != std::string::npos) {
      size_t start = auth + 23;
      std::string given = request.substr(start, request.find("\r\n", start) - start);
      if (given != base64(std::string(kUser) + ":" + kPassword)) {
        ++refused;
        send_all(client,
                 "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                 "Content-Length: 2\r\nConnection: close\r\n\r\n{}");
        return;
      }
      subject = kUser;
    }
    json access = json::array();
    for (const std::string& scope : scopes) {
      // repository:NAME:ACTIONS
      size_t first = scope.find(':'), last = scope.rfind(':');
      if (first == std::string::npos || first == last) continue;
      std::string type = scope.substr(0, first);
      std::string name = scope.substr(first + 1, last - first - 1);
      json actions = json::array();
      std::string list = scope.substr(last + 1);
      size_t start = 0;
      while (start <= list.size()) {
        size_t end = std::min(list.find(',', start), list.size());
        std::string action = list.substr(start, end - start);
        if (action == "pull" || (!subject.empty() && !action.empty())) actions.push_back(action);
        start = end + 1;
      }
      access.push_back({{"type", type}, {"name", name}, {"actions", actions}});
    }
    (subject.empty() ? anonymous_tokens : user_tokens)++;
    std::string jwt = token(subject, access);
    json body = {{"token", jwt}, {"access_token", jwt}, {"expires_in", 300}};
    std::string text = body.dump();
    send_all(client, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                         std::to_string(text.size()) + "\r\nConnection: close\r\n\r\n" + text);
  }

  std::string service_, issuer_;
  std::unique_ptr<EVP_PKEY, KeyDeleter> key_;
  std::string cert_der_;
  std::atomic<long> serial_{0};
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
};

class TokenAuthRegistryTest : public BasicAuthRegistryTest {
 protected:
  static void SetUpTestSuite() {
    files_ = std::make_unique<ScratchDir>();
    const fs::path key = files_->path() / "token.key", cert = files_->path() / "token.crt";
    auto made = run_program({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                             key.string(), "-out", cert.string(), "-days", "2", "-subj",
                             "/CN=slipway test token issuer"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    tokens_ = std::make_unique<TokenServer>(key, cert, "slipway-test", "slipway-test-issuer");
    RegistryVariant variant;
    variant.auth_yaml = "auth:\n  token:\n    realm: " + tokens_->realm() +
                        "\n    service: slipway-test\n    issuer: slipway-test-issuer\n"
                        "    rootcertbundle: " +
                        cert.string() + "\n";
    registry_ = std::make_unique<LocalRegistry>(variant);
  }
  static void TearDownTestSuite() {
    registry_.reset();
    tokens_.reset();
    files_.reset();
  }
  static std::unique_ptr<TokenServer> tokens_;
};
std::unique_ptr<TokenServer> TokenAuthRegistryTest::tokens_;

TEST_F(TokenAuthRegistryTest, AnonymousPullPushOnlyWithCredentials) {
  ScratchDir first, second;
  const std::string name = host() + "/tokens/bb:1";
  make_image(first.path(), name);

  auto refused = slipway(first.path(), {"push", name});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("unauthorized"), std::string::npos) << refused.err;
  EXPECT_GT(tokens_->anonymous_tokens, 0);

  auto wrong =
      slipway(first.path(), {"login", "-u", kUser, "--password-stdin", host()}, kWrongPassword);
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_TRUE(wrong.err.starts_with("Error: unauthorized: ")) << wrong.err;
  expect_no_secret(wrong);
  EXPECT_FALSE(fs::exists(config_file()));
  EXPECT_GT(tokens_->refused, 0);

  auto login = slipway(first.path(), {"login", "-u", kUser, "--password-stdin", host()}, kPassword);
  ASSERT_EQ(login.exit_code, 0) << login.err;
  EXPECT_EQ(login.out, "Login Succeeded\n");
  auto pushed = slipway(first.path(), {"push", name});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  expect_no_secret(pushed);
  EXPECT_GT(tokens_->user_tokens, 0);
  std::string digest = field_after(pushed.out, "1: digest: ");

  // The same image to another repository: mounted, with one token for both repositories.
  const std::string other = host() + "/tokens/other:1";
  ASSERT_EQ(slipway(first.path(), {"tag", name, other}).exit_code, 0);
  auto mounted = slipway(first.path(), {"push", other});
  ASSERT_EQ(mounted.exit_code, 0) << mounted.err;
  EXPECT_EQ(count_lines_containing(mounted.out, ": Mounted from tokens/bb"), 1) << mounted.out;
  EXPECT_EQ(field_after(mounted.out, "1: digest: "), digest);

  // Anonymous pull: no credentials at all.
  auto logout = slipway(first.path(), {"logout", host()});
  ASSERT_EQ(logout.exit_code, 0) << logout.err;
  auto pulled = slipway(second.path(), {"pull", name});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_EQ(field_after(pulled.out, "Digest: "), digest);
  auto ran = slipway(second.path(), {"run", "--rm", name, "echo", "ok"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "ok\n");
  auto inspected = slipway(second.path(), {"manifest", "inspect", name});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
}

// ---------------------------------------------------------------- TLS

// A registry serving https with a certificate for 127.0.0.1 signed by a CA the test makes.
class TlsRegistryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    files_ = std::make_unique<ScratchDir>();
    const fs::path dir = files_->path();
    auto openssl = [&](const std::vector<std::string>& args) {
      std::vector<std::string> argv = {"openssl"};
      argv.insert(argv.end(), args.begin(), args.end());
      auto result = run_program(argv);
      if (result.exit_code != 0) throw std::runtime_error("openssl failed: " + result.err);
    };
    write_text(dir / "san.cnf", "subjectAltName=IP:127.0.0.1\n");
    openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", (dir / "ca.key").string(),
             "-out", (dir / "ca.crt").string(), "-days", "2", "-subj", "/CN=slipway test CA"});
    openssl({"req", "-newkey", "rsa:2048", "-nodes", "-keyout", (dir / "server.key").string(),
             "-out", (dir / "server.csr").string(), "-subj", "/CN=127.0.0.1"});
    openssl({"x509", "-req", "-in", (dir / "server.csr").string(), "-CA", (dir / "ca.crt").string(),
             "-CAkey", (dir / "ca.key").string(), "-CAcreateserial", "-out",
             (dir / "server.crt").string(), "-days", "2", "-extfile", (dir / "san.cnf").string()});
    RegistryVariant variant;
    variant.tls_certificate = dir / "server.crt";
    variant.tls_key = dir / "server.key";
    registry_ = std::make_unique<LocalRegistry>(variant);
  }
  static void TearDownTestSuite() {
    registry_.reset();
    files_.reset();
  }
  static std::string host() { return registry_->host(); }

  // slipway with SLIPWAY_CERTS_DIR=certs_; `with_ca` puts the test CA in certs_/HOST:PORT/,
  // else that directory is empty (the registry speaks TLS; no CA is known for it).
  CommandResult slipway(const fs::path& root, const std::vector<std::string>& args, bool with_ca) {
    fs::path host_dir = certs_.path() / host();
    fs::create_directories(host_dir);
    std::error_code ec;
    fs::remove(host_dir / "ca.crt", ec);
    if (with_ca) fs::copy_file(files_->path() / "ca.crt", host_dir / "ca.crt");
    return run_slipway_with(root, args,
                            {"SLIPWAY_CERTS_DIR=" + certs_.path().string(),
                             "DOCKER_CONFIG=" + config_.path().string()});
  }

  ScratchDir certs_, config_;
  static std::unique_ptr<ScratchDir> files_;
  static std::unique_ptr<LocalRegistry> registry_;
};
std::unique_ptr<ScratchDir> TlsRegistryTest::files_;
std::unique_ptr<LocalRegistry> TlsRegistryTest::registry_;

TEST_F(TlsRegistryTest, VerifiedWithTheCaInCertsDirAndRefusedWithoutIt) {
  ScratchDir first, second;
  const std::string name = host() + "/tls/bb:1";
  auto imported = slipway(first.path(), {"import", busybox_rootfs_tarball().string(), name}, false);
  ASSERT_EQ(imported.exit_code, 0) << imported.err;

  auto refused = slipway(first.path(), {"push", name}, false);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("certificate"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--tls-verify=false"), std::string::npos) << refused.err;

  auto pushed = slipway(first.path(), {"push", name}, true);
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  std::string digest = field_after(pushed.out, "1: digest: ");

  auto pulled = slipway(second.path(), {"pull", name}, true);
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_EQ(field_after(pulled.out, "Digest: "), digest);

  auto refused_pull = slipway(second.path(), {"manifest", "inspect", name}, false);
  EXPECT_EQ(refused_pull.exit_code, 1);
  EXPECT_NE(refused_pull.err.find("certificate"), std::string::npos) << refused_pull.err;

  auto unverified =
      slipway(second.path(), {"manifest", "inspect", "--tls-verify=false", name}, false);
  ASSERT_EQ(unverified.exit_code, 0) << unverified.err;

  ScratchDir skopeo_certs;
  fs::copy_file(files_->path() / "ca.crt", skopeo_certs.path() / "ca.crt");
  auto skopeo = run_program(
      {"skopeo", "inspect", "--cert-dir", skopeo_certs.path().string(), "docker://" + name});
  ASSERT_EQ(skopeo.exit_code, 0) << skopeo.err;
  EXPECT_EQ(json::parse(skopeo.out).at("Digest").get<std::string>(), digest);
}

}  // namespace
}  // namespace slipway::testing
