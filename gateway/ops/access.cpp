#include "gateway/ops/access.hpp"

#include <openssl/crypto.h>

#include "gateway/core/json_text.hpp"
#include "gateway/identity/parties.hpp"

namespace sdoh::ops {
namespace {

bool same_secret(std::string_view given, const std::string& known) {
  return !known.empty() && given.size() == known.size() &&
         CRYPTO_memcmp(given.data(), known.data(), known.size()) == 0;
}

// The token after "Bearer " (scheme case-insensitive, RFC 7235 2.1), or nothing.
std::optional<std::string_view> bearer(const http::Request& req) {
  auto h = req.header("Authorization");
  if (!h || h->size() < 7) return std::nullopt;
  auto scheme = h->substr(0, 7);
  constexpr std::string_view kBearer = "bearer ";
  for (std::size_t i = 0; i < 7; ++i) {
    const char c = scheme[i];
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (lower != kBearer[i]) return std::nullopt;
  }
  auto token = h->substr(7);
  while (!token.empty() && token.front() == ' ')
    token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ')
    token.remove_suffix(1);
  return token;
}

}  // namespace

std::string_view to_string(OpsRole role) {
  switch (role) {
    case OpsRole::kOps:
      return "ops";
    case OpsRole::kAdmin:
      return "admin";
    case OpsRole::kNone:
      break;
  }
  return "none";
}

http::Response problem(unsigned status, std::string_view title, std::string_view detail) {
  std::string body = "{\"type\":\"about:blank\",\"title\":";
  append_json_string(body, title);
  body += ",\"status\":" + std::to_string(status) + ",\"detail\":";
  append_json_string(body, detail);
  body += "}";
  auto r = http::Response::json(status, std::move(body));
  r.content_type = "application/problem+json";
  return r;
}

Result<std::string> resolve_token(const config::SecretRef& ref, std::string_view key) {
  if (!ref.configured()) return std::string();
  auto token = ref.resolve();
  if (!token) return fail(Error::config(std::string(key), token.error().message));
  if (token->size() < 16) {
    return fail(Error::config(std::string(key), "the token must be at least 16 bytes (" +
                                                    ref.describe() + " has " +
                                                    std::to_string(token->size()) + ")"));
  }
  return token;
}

Result<OpsAccess> OpsAccess::from_config(const config::GatewayConfig& cfg) {
  auto ops = resolve_token(cfg.ops.token, "ops.token");
  if (!ops) return fail(ops.error());
  auto admin = resolve_token(cfg.admin.token, "admin.token");
  if (!admin) return fail(admin.error());
  if (!ops->empty() && *ops == *admin) {
    return fail(Error::config("ops.token",
                              "is the same as admin.token: the ops role would be admin; give "
                              "each role its own token"));
  }
  std::vector<CertificateRole> certificates;
  for (const auto& p : cfg.parties) {
    if (p.certificate_subject.empty()) continue;
    if (p.kind == "ops") certificates.push_back({p.certificate_subject, OpsRole::kOps});
    if (p.kind == "admin") certificates.push_back({p.certificate_subject, OpsRole::kAdmin});
  }
  return OpsAccess(std::move(*ops), std::move(*admin), cfg.dev_mode(), std::move(certificates));
}

OpsAccess::OpsAccess(std::string ops_token, std::string admin_token, bool dev_mode,
                     std::vector<CertificateRole> certificates)
    : ops_token_(std::move(ops_token)),
      admin_token_(std::move(admin_token)),
      certificates_(std::move(certificates)),
      open_(dev_mode && !configured()) {}

OpsRole OpsAccess::role_of(const http::Request& req) const {
  if (open_) return OpsRole::kAdmin;
  auto token = bearer(req);
  if (!token) {
    // mTLS: the verified client certificate's subject, as the listener read it.
    if (req.client_subject.empty()) return OpsRole::kNone;
    auto role = OpsRole::kNone;
    for (const auto& c : certificates_) {
      if (identity::certificate_matches(req.client_subject, c.subject) && c.role > role)
        role = c.role;
    }
    return role;
  }
  // Both compared, whichever matches, so the time taken says nothing about which one is set.
  const bool admin = same_secret(*token, admin_token_);
  const bool ops = same_secret(*token, ops_token_);
  if (admin) return OpsRole::kAdmin;
  if (ops) return OpsRole::kOps;
  return OpsRole::kNone;
}

std::optional<http::Response> OpsAccess::refuse(const http::Request& req, OpsRole needed) const {
  if (open_) return std::nullopt;
  if (!configured()) {
    return problem(403, "ops API not configured",
                   "production mode serves /ops/api and /metrics only to the ops and admin roles: "
                   "set ops.token (reads) and admin.token (dead-letter payloads and replays), or "
                   "parties of kind ops or admin with a certificate_subject");
  }
  const auto role = role_of(req);
  if (role == OpsRole::kNone) {
    auto r =
        problem(401, "unauthorized",
                "send Authorization: Bearer <ops.token> (or <admin.token>), or a client "
                "certificate of an ops or admin party");
    r.headers.push_back({"WWW-Authenticate", "Bearer realm=\"sdoh-gateway ops\""});
    return r;
  }
  if (needed == OpsRole::kAdmin && role != OpsRole::kAdmin) {
    return problem(403, "admin only",
                   admin_token_.empty()
                       ? "dead-letter payloads and replays need the admin token; admin.token is "
                         "not configured"
                       : "dead-letter payloads and replays need the admin token");
  }
  return std::nullopt;
}

http::Handler OpsAccess::guard(OpsRole needed, http::Handler handler) const {
  return [this, needed, handler = std::move(handler)](
             http::Request& req) -> boost::asio::awaitable<http::Response> {
    if (auto refused = refuse(req, needed)) co_return std::move(*refused);
    co_return co_await handler(req);
  };
}

}  // namespace sdoh::ops
