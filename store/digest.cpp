#include "store/digest.h"

#include <openssl/sha.h>

#include <memory>

#include "common/error.h"

namespace slipway::store {

// The SHA256_* functions, deprecated in OpenSSL 3 in favour of EVP, run the same assembly
// (SHA-NI, AVX2) and link alone. EVP_MD_fetch pulled in OpenSSL's provider machinery: its
// algorithm and ASN.1 object tables were 16 600 of the binary's 25 300 relocations, which the
// loader writes on every start, a page fault per page: `ps -a` went from 301 page faults and
// 14.2 ms to 201 and 12.2 ms (issue 14: start-up).
Sha256::Sha256() : ctx_(std::make_unique<SHA256_CTX>()) {
  if (SHA256_Init(ctx_.get()) != 1) throw Error("cannot initialise SHA-256");
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, size_t size) {
  if (size > 0) SHA256_Update(ctx_.get(), data, size);
}

std::string Sha256::finish() {
  unsigned char md[SHA256_DIGEST_LENGTH];
  unsigned int len = SHA256_DIGEST_LENGTH;
  SHA256_Final(md, ctx_.get());
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
