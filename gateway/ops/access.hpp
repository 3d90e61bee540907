#pragma once
// Who may use /ops/api and /ui: the one gate every ops route passes through (the dashboard's own
// routes and the measures' routes alike, and /metrics in production). Two roles, from two bearer
// tokens or from a verified TLS client certificate of a party of that kind:
//   - ops   (`ops.token`, `parties.<id>: { kind: ops, certificate_subject }`): every /ops/api
//     read, and /metrics (a Prometheus scraper, which cannot do SMART Backend Services);
//   - admin (`admin.token`, a party of kind admin): everything ops may, plus dead-letter payloads
//     and replays.
// The rules:
//   - dev mode with neither token configured: open, every caller is admin (like the rest of a
//     development gateway);
//   - otherwise every /ops/api request needs `Authorization: Bearer <ops.token|admin.token>`
//     (401 without a known one), and an admin route the admin token (403 with the ops token);
//   - production with neither token configured: every /ops/api route answers 403 with a problem
//     saying which key to set (nothing is open by accident).
// A route joins the gate with guard():
//   router.add("GET", "/ops/api/v1/referrals", access.guard(OpsRole::kOps, handler));
// Errors are RFC 9457 problems (application/problem+json). The /ui files themselves are public
// (they hold no data); the page asks for a token when the API answers 401.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"
#include "gateway/http/message.hpp"
#include "gateway/identity/admin_access.hpp"

namespace sdoh::ops {

enum class OpsRole { kNone, kOps, kAdmin };

std::string_view to_string(OpsRole role);

/// An application/problem+json answer {type, title, status, detail}.
http::Response problem(unsigned status, std::string_view title, std::string_view detail);

/// A role's bearer token from its SecretRef (`key` names it in errors): empty when not
/// configured; at least 16 bytes otherwise.
Result<std::string> resolve_token(const config::SecretRef& ref, std::string_view key);

class OpsAccess {
 public:
  /// From ops.token, admin.token and the mode; the tokens must differ (an ops token that is the
  /// admin's would grant admin).
  static Result<OpsAccess> from_config(const config::GatewayConfig& cfg);

  /// A party of kind ops or admin whose verified client certificate names it (its subject, or
  /// just its CN, as parties.<id>.certificate_subject has it).
  struct CertificateRole {
    std::string subject;
    OpsRole role = OpsRole::kNone;
  };

  /// `ops_token` empty: not configured; `ops_subjects`: the ops parties' certificate subjects;
  /// `admin`: who is an admin. `dev_mode`: config `mode: dev`.
  OpsAccess(std::string ops_token, std::vector<std::string> ops_subjects,
            identity::AdminAccess admin, bool dev_mode);

  /// The same from explicit lists (tests): empty tokens are not configured.
  OpsAccess(std::string ops_token, std::string admin_token, bool dev_mode,
            std::vector<CertificateRole> certificates = {});

  /// The caller's role from its Authorization header (kNone: no known token, or production
  /// without tokens).
  OpsRole role_of(const http::Request& req) const;

  /// Nothing when `req` may use a route that needs `needed` (kOps or kAdmin); else the 401 or
  /// 403 problem to answer.
  std::optional<http::Response> refuse(const http::Request& req, OpsRole needed) const;

  /// Wraps a handler: it runs only when the caller holds `needed`.
  http::Handler guard(OpsRole needed, http::Handler handler) const;

  /// Open: dev mode with no token configured.
  bool open() const { return open_; }
  /// Whether ops.token, admin.token or an ops or admin party with a certificate is set
  /// (production without any serves nothing).
  bool configured() const {
    return !ops_token_.empty() || !ops_subjects_.empty() || admin_.configured();
  }

 private:
  std::string ops_token_;
  std::vector<std::string> ops_subjects_;
  identity::AdminAccess admin_;
  bool open_ = false;
};

}  // namespace sdoh::ops
