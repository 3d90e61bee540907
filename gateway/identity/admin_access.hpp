#pragma once
// Who is an admin: the one check for every admin-only route (/admin/*, GET /fhir/AuditEvent, the
// admin role of /ops/api and the dashboard). An admin is
//   - a connection whose verified TLS client certificate is a party of kind admin
//     (parties.<id>: { kind: admin, certificate_subject }), in any mode; or
//   - in dev mode, a request with `Authorization: Bearer <admin.token>` (production refuses a
//     static admin token: --check-config names it).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/http/message.hpp"

namespace sdoh::identity {

/// The token after "Bearer " in the Authorization header (the scheme in any case, RFC 7235
/// 2.1; blanks around the token ignored), or nothing.
std::optional<std::string_view> bearer_token(const http::Request& req);

/// Constant-time comparison of a presented secret with a configured one (never equal to none).
bool same_secret(std::string_view given, const std::string& known);

class AdminAccess {
 public:
  /// From admin.token (already resolved; empty: none) and the parties of kind admin.
  static AdminAccess from_config(const config::GatewayConfig& cfg, std::string token);

  /// `token` empty: no admin token. `certificate_subjects`: the admin parties' subjects (or CNs).
  explicit AdminAccess(std::string token, std::vector<std::string> certificate_subjects = {})
      : token_(std::move(token)), subjects_(std::move(certificate_subjects)) {}
  /// Whether the request is an admin's (constant-time comparison of the token; the certificate
  /// subject the listener verified).
  bool allows(const http::Request& req) const;
  /// Whether anyone can be an admin (a token or an admin party is configured).
  bool configured() const { return !token_.empty() || !subjects_.empty(); }
  /// The admin's id in audit records.
  static constexpr const char* kAgent = "admin";

 private:
  std::string token_;
  std::vector<std::string> subjects_;
};

}  // namespace sdoh::identity
