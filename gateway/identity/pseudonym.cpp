#include "gateway/identity/pseudonym.hpp"

#include <array>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "gateway/core/text.hpp"

namespace sdoh::identity {
namespace {

std::string to_hex(const unsigned char* bytes, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xF];
  }
  return out;
}

}  // namespace

std::string Pseudonymizer::pseudonym(std::string_view authority,
                                     std::string_view identifier) const {
  std::string_view canonical = trim_blanks(authority);
  if (auto it = aliases_.find(std::string(canonical)); it != aliases_.end()) canonical = it->second;
  std::string message;
  message.reserve(canonical.size() + identifier.size() + 1);
  message.append(canonical).append("|").append(trim_blanks(identifier));
  return mac_hex(message);
}

std::string Pseudonymizer::referral_id(std::string_view system, std::string_view value) const {
  // Its own domain ("referral|"), so that no referralId is ever a prefix of a pseudonym.
  std::string message = "referral|";
  message.append(system).append("|").append(value);
  return mac_hex(message).substr(0, 32);
}

std::string Pseudonymizer::mac_hex(std::string_view message) const {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac.data(), &len);
  return to_hex(mac.data(), len);
}

std::string sha256_hex(std::string_view text) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  return to_hex(digest.data(), digest.size());
}

}  // namespace sdoh::identity
