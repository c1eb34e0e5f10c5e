// SHA-256 through OpenSSL's SHA256_* functions (SHA-NI where the CPU has it). Digests are written
// the OCI way: "sha256:<64 lowercase hex>".
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct SHA256state_st;

namespace slipway::store {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void update(const void* data, size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // "sha256:<hex>"; the object must not be used afterwards.
  std::string finish();

 private:
  std::unique_ptr<SHA256state_st> ctx_;
};

std::string sha256_digest(std::string_view data);

// True for "sha256:" followed by exactly 64 lowercase hex digits.
bool is_valid_digest(std::string_view digest);

// The 64 hex digits of a valid digest; throws Error otherwise.
std::string digest_hex(std::string_view digest);

}  // namespace slipway::store
