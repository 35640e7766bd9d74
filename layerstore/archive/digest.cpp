#include "layerstore/archive/digest.hpp"

#include <openssl/rand.h>

#include "layerstore/error.hpp"

namespace strata {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) throw Error("sha256: init failed");
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(const void* data, size_t len) {
  if (len) EVP_DigestUpdate(ctx_, data, len);
}

static std::string to_hex(const unsigned char* p, size_t n) {
  static const char* k = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (size_t i = 0; i < n; i++) {
    s[2 * i] = k[p[i] >> 4];
    s[2 * i + 1] = k[p[i] & 15];
  }
  return s;
}

std::string Sha256::finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_, md, &n);
  return "sha256:" + to_hex(md, n);
}

std::string sha256_digest(std::string_view bytes) {
  Sha256 h;
  h.update(bytes.data(), bytes.size());
  return h.finish();
}

bool is_valid_digest(std::string_view d) {
  if (d.size() != 71 || d.substr(0, 7) != "sha256:") return false;
  for (char c : d.substr(7))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

void require_valid_digest(std::string_view d, std::string_view what) {
  if (!is_valid_digest(d))
    throw Error(std::string(what) + ": invalid digest \"" + std::string(d.substr(0, 80)) + "\"");
}

std::string digest_hex(std::string_view d) { return std::string(d.substr(7)); }

std::string chain_id(std::string_view parent_chain, std::string_view diff_id) {
  if (parent_chain.empty()) return std::string(diff_id);
  std::string joined;
  joined.append(parent_chain).append(" ").append(diff_id);
  return sha256_digest(joined);
}

std::vector<std::string> chain_ids(const std::vector<std::string>& diff_ids) {
  std::vector<std::string> out;
  std::string parent;
  for (const auto& d : diff_ids) {
    parent = chain_id(parent, d);
    out.push_back(parent);
  }
  return out;
}

std::string random_hex_id() {
  unsigned char b[32];
  if (RAND_bytes(b, sizeof b) != 1) throw Error("random: RAND_bytes failed");
  return to_hex(b, sizeof b);
}

std::string random_link_id() {
  // Docker: base32 of 16 random bytes, first 26 chars ([A-Z2-7], no padding).
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) throw Error("random: RAND_bytes failed");
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : b) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 5 && out.size() < 26) {
      out.push_back(alphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0 && out.size() < 26) out.push_back(alphabet[(buffer << (5 - bits)) & 31]);
  return out;
}

}  // namespace strata
