#include "gateway/identity/admin_access.hpp"

#include <openssl/crypto.h>

#include "gateway/identity/parties.hpp"

namespace sdoh::identity {

std::optional<std::string_view> bearer_token(const http::Request& req) {
  auto h = req.header("Authorization");
  if (!h || h->size() < 7) return std::nullopt;
  constexpr std::string_view kBearer = "bearer ";
  for (std::size_t i = 0; i < kBearer.size(); ++i) {
    const char c = (*h)[i];
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (lower != kBearer[i]) return std::nullopt;
  }
  auto token = h->substr(kBearer.size());
  while (!token.empty() && token.front() == ' ')
    token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ')
    token.remove_suffix(1);
  return token;
}

bool same_secret(std::string_view given, const std::string& known) {
  return !known.empty() && given.size() == known.size() &&
         CRYPTO_memcmp(given.data(), known.data(), known.size()) == 0;
}

AdminAccess AdminAccess::from_config(const config::GatewayConfig& cfg, std::string token) {
  std::vector<std::string> subjects;
  for (const auto& p : cfg.parties) {
    if (p.kind == "admin" && !p.certificate_subject.empty())
      subjects.push_back(p.certificate_subject);
  }
  return AdminAccess(std::move(token), std::move(subjects));
}

bool AdminAccess::allows(const http::Request& req) const {
  if (req.header("Authorization")) {
    auto token = bearer_token(req);
    return token && same_secret(*token, token_);
  }
  // mTLS: an admin party's certificate.
  if (req.client_subject.empty()) return false;
  for (const auto& s : subjects_) {
    if (certificate_matches(req.client_subject, s)) return true;
  }
  return false;
}

}  // namespace sdoh::identity
