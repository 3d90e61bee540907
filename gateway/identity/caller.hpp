#pragma once
// Who a request with an access token is: the port between the FHIR API, which asks, and the
// SMART authorization (adapters/auth), which verifies the gateway's own tokens and those of a
// party's external authorization server. The runtime hands the FHIR API an implementation;
// unit tests a fake.
#include <expected>
#include <string>
#include <string_view>

#include "gateway/identity/scopes.hpp"

namespace sdoh::identity {

/// A party as an access token proves it (parties.<id>), with what the token grants.
struct Caller {
  std::string party;         ///< parties.<id>
  std::string kind;          ///< clinic | agency
  std::string organization;  ///< parties.<id>.organization
  std::string name;          ///< parties.<id>.name
  std::string client_id;     ///< the SMART client, or the external token's client: for logs
  Scopes scopes;             ///< the token's scopes, within what the party may be granted
};

/// Why a token is refused: RFC 6750 error code ("invalid_token") and our own words, which name
/// the rule that failed but never echo the token.
struct TokenRefusal {
  std::string error = "invalid_token";
  std::string message;
};

class AccessTokenVerifier {
 public:
  virtual ~AccessTokenVerifier() = default;
  /// Checks `token` (a compact JWS) for a request that reached the FHIR base `fhir_base`. May
  /// fetch an issuer's JWKS (bounded by smart.jwks_timeout, rate-limited): call it from a store
  /// thread, never an I/O thread. Thread-safe.
  virtual std::expected<Caller, TokenRefusal> verify(std::string_view token,
                                                     std::string_view fhir_base) const = 0;
  /// Whether any token could be accepted (SMART clients or external issuers are configured).
  virtual bool active() const = 0;
};

}  // namespace sdoh::identity
