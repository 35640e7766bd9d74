#pragma once
// sha256 digests as Docker writes them ("sha256:<64 lowercase hex>") and the ChainID rule.
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata {

// Streaming SHA-256 over OpenSSL EVP (uses SHA-NI where the CPU has it).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t len);
  // "sha256:<hex>"; the hasher must not be used afterwards.
  std::string finish();

 private:
  EVP_MD_CTX* ctx_;
};

std::string sha256_digest(std::string_view bytes);

// True for "sha256:" followed by exactly 64 lowercase hex chars.
bool is_valid_digest(std::string_view d);
// Throws strata::Error naming `what` unless is_valid_digest(d).
void require_valid_digest(std::string_view d, std::string_view what);
// The 64 hex chars of a valid digest.
std::string digest_hex(std::string_view d);

// chain(L1) = diff(L1); chain(L1..Ln) = sha256("<chain(L1..Ln-1)> <diff(Ln)>").
std::string chain_id(std::string_view parent_chain, std::string_view diff_id);
std::vector<std::string> chain_ids(const std::vector<std::string>& diff_ids);

// 32 random bytes as 64 hex chars (cache-ids), and 26 chars of base32 (overlay2 short links).
std::string random_hex_id();
std::string random_link_id();

}  // namespace strata
