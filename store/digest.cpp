#include "store/digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <memory>

#include "common/error.h"

namespace slipway::store {

void Sha256::CtxDeleter::operator()(evp_md_ctx_st* ctx) const {
  EVP_MD_CTX_free(ctx);
}

namespace {

struct MdDeleter {
  void operator()(EVP_MD* md) const { EVP_MD_free(md); }
};

// SHA-256 fetched once per process. With EVP_sha256() every EVP_DigestInit_ex looked for an
// engine and fetched the implementation again, and the first one loaded openssl.cnf: ~10% of a
// fully cached build's CPU (issue 14). This libcrypto is linked in for digests and base64 only
// (TLS is libcurl's, with its own), so the system's OpenSSL configuration has nothing to offer.
const EVP_MD* sha256_md() {
  static const std::unique_ptr<EVP_MD, MdDeleter> md = [] {
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
    return std::unique_ptr<EVP_MD, MdDeleter>(EVP_MD_fetch(nullptr, "SHA256", nullptr));
  }();
  return md.get();
}

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  const EVP_MD* md = sha256_md();
  if (!ctx_ || !md || EVP_DigestInit_ex(ctx_.get(), md, nullptr) != 1)
    throw Error("cannot initialise SHA-256");
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, size_t size) {
  if (size > 0) EVP_DigestUpdate(ctx_.get(), data, size);
}

std::string Sha256::finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_.get(), md, &len);
  static const char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

std::string sha256_digest(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

bool is_valid_digest(std::string_view digest) {
  constexpr std::string_view kPrefix = "sha256:";
  if (digest.size() != kPrefix.size() + 64 || digest.substr(0, kPrefix.size()) != kPrefix)
    return false;
  for (char c : digest.substr(kPrefix.size()))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string digest_hex(std::string_view digest) {
  if (!is_valid_digest(digest)) throw Error("invalid digest: " + std::string(digest));
  return std::string(digest.substr(7));
}

}  // namespace slipway::store
