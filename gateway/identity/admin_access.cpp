#include "gateway/identity/admin_access.hpp"

#include <openssl/crypto.h>

namespace sdoh::identity {

bool AdminAccess::allows(const http::Request& req) const {
  if (token_.empty()) return false;
  auto header = req.header("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (!header || header->size() != kBearer.size() + token_.size() ||
      header->substr(0, kBearer.size()) != kBearer) {
    return false;
  }
  return CRYPTO_memcmp(header->data() + kBearer.size(), token_.data(), token_.size()) == 0;
}

}  // namespace sdoh::identity
