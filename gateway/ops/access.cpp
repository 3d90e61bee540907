#include "gateway/ops/access.hpp"

#include "gateway/core/json_text.hpp"
#include "gateway/identity/admin_access.hpp"
#include "gateway/identity/parties.hpp"

namespace sdoh::ops {

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
  std::vector<std::string> ops_subjects;
  for (const auto& p : cfg.parties) {
    if (p.kind == "ops" && !p.certificate_subject.empty())
      ops_subjects.push_back(p.certificate_subject);
  }
  // Who is an admin is derived from the config in one place, for /admin too.
  return OpsAccess(std::move(*ops), std::move(ops_subjects),
                   identity::AdminAccess::from_config(cfg, std::move(*admin)), cfg.dev_mode());
}

namespace {

identity::AdminAccess admin_of(std::string token,
                               const std::vector<OpsAccess::CertificateRole>& certificates) {
  std::vector<std::string> subjects;
  for (const auto& c : certificates) {
    if (c.role == OpsRole::kAdmin) subjects.push_back(c.subject);
  }
  return identity::AdminAccess(std::move(token), std::move(subjects));
}

std::vector<std::string> ops_subjects(const std::vector<OpsAccess::CertificateRole>& certificates) {
  std::vector<std::string> subjects;
  for (const auto& c : certificates) {
    if (c.role == OpsRole::kOps) subjects.push_back(c.subject);
  }
  return subjects;
}

}  // namespace

OpsAccess::OpsAccess(std::string ops_token, std::vector<std::string> ops_subjects,
                     identity::AdminAccess admin, bool dev_mode)
    : ops_token_(std::move(ops_token)),
      ops_subjects_(std::move(ops_subjects)),
      admin_(std::move(admin)),
      open_(dev_mode && !configured()) {}

OpsAccess::OpsAccess(std::string ops_token, std::string admin_token, bool dev_mode,
                     std::vector<CertificateRole> certificates)
    : OpsAccess(std::move(ops_token), ops_subjects(certificates),
                admin_of(std::move(admin_token), certificates), dev_mode) {}

OpsRole OpsAccess::role_of(const http::Request& req) const {
  if (open_) return OpsRole::kAdmin;
  // Who is an admin is decided in one place (identity::AdminAccess), for /admin too.
  if (admin_.allows(req)) return OpsRole::kAdmin;
  if (auto token = identity::bearer_token(req)) {
    return identity::same_secret(*token, ops_token_) ? OpsRole::kOps : OpsRole::kNone;
  }
  // mTLS: an ops party's verified client certificate (a Prometheus scraper).
  for (const auto& s : ops_subjects_) {
    if (identity::certificate_matches(req.client_subject, s)) return OpsRole::kOps;
  }
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
    auto r = problem(401, "unauthorized",
                     "send Authorization: Bearer <ops.token> (or <admin.token>), or a client "
                     "certificate of an ops or admin party");
    r.headers.push_back({"WWW-Authenticate", "Bearer realm=\"sdoh-gateway ops\""});
    return r;
  }
  if (needed == OpsRole::kAdmin && role != OpsRole::kAdmin) {
    return problem(403, "admin only",
                   admin_.configured()
                       ? "dead-letter payloads and replays need the admin role"
                       : "dead-letter payloads and replays need the admin role; neither "
                         "admin.token nor a party of kind admin is configured");
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
