#pragma once
// SMART Backend Services (HL7 SMART App Launch 2.x, "Backend Services"; RFC 7523, RFC 6749 4.4):
// the gateway as the authorization server of its own FHIR API.
//
//   GET  /.well-known/smart-configuration, /fhir/.well-known/smart-configuration   discovery
//   POST /auth/token    client_credentials with a private_key_jwt assertion → an access token
//   GET  /auth/jwks     the public key the gateway's access tokens are signed with
//
// Clients are registered in the parties section (parties.<id>.smart_clients): each has its
// client_id, its JWKS and the scopes it may be granted; its party says who it is. Assertions
// are RS384 or ES384, the algorithm fitting the registered key; iss = sub = client_id, aud =
// the token endpoint's URL, exp at most smart.max_assertion_lifetime ahead, nbf and iat not in
// the future (smart.clock_skew), and a jti used once (kept in the store until it expires, so
// every gateway on the database refuses a replay). The access token is an ES256 JWT (RFC 9068)
// signed with the key in the store, valid smart.access_token_lifetime.
//
// As identity::AccessTokenVerifier it checks, for the FHIR API, these tokens and those of a
// party's own authorization server (parties.<id>.external_issuer).
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/auth/jose.hpp"
#include "adapters/auth/jwks_cache.hpp"
#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"
#include "gateway/http/message.hpp"
#include "gateway/identity/caller.hpp"
#include "gateway/pipeline/auth_port.hpp"

namespace sdoh::metrics {
class Registry;
class Counter;
template <class T>
class Family;
}  // namespace sdoh::metrics
namespace sdoh::pipeline {
class StoreExecutor;
}

namespace sdoh::auth {

struct SmartOptions {
  config::SmartConfig smart;
  std::string fhir_base_url;  ///< fhir.base_url; empty: from the request's Host header
  std::vector<config::PartyConfig> parties;
  JwksFetch fetch;  ///< for JWKS URLs
  /// Wall clock (tests set their own).
  std::function<std::chrono::system_clock::time_point()> now;
  /// Steady clock of the JWKS cache's rate limit (tests set their own).
  JwksCache::Clock steady_now;
};

class SmartAuthority final : public identity::AccessTokenVerifier {
 public:
  /// Reads every client's and issuer's key source (inline and file JWKS now; errors name the
  /// config key) and the token-signing key from `store` (made on the first start).
  static Result<std::unique_ptr<SmartAuthority>> create(SmartOptions options,
                                                        pipeline::AuthStore& store,
                                                        metrics::Registry* registry = nullptr);
  /// --check-config: the key sources alone, without a store.
  static Result<void> check(const config::GatewayConfig& cfg);

  /// POST /auth/token. Blocks (the store records the jti; a JWKS may be fetched): on a store
  /// thread.
  http::Response token(const http::Request& req);
  /// The smart-configuration document for a request (its URLs follow the FHIR base).
  std::string configuration(const http::Request& req) const;
  std::string token_endpoint(std::string_view fhir_base) const;
  /// The absolute FHIR base URL a request reached.
  std::string fhir_base(const http::Request& req) const;

  std::expected<identity::Caller, identity::TokenRefusal> verify(
      std::string_view token, std::string_view fhir_base) const override;
  bool active() const override { return !clients_.empty() || !issuers_.empty(); }

  /// Adds the routes above; `store_threads` runs the token endpoint (null: inline, tests).
  void add_routes(http::Router& router, pipeline::StoreExecutor* store_threads);

  /// The JWKS cache (tests read its fetch count).
  const JwksCache& keys() const { return *keys_; }

  // `party` points into options_.parties, which is never changed after create().
  struct Client {
    std::string client_id;
    const config::PartyConfig* party = nullptr;
    identity::Scopes allowed;
  };
  struct Issuer {
    const config::PartyConfig* party = nullptr;
    identity::Scopes allowed;
  };

 private:
  explicit SmartAuthority(SmartOptions options);
  std::int64_t now_seconds() const;

  SmartOptions options_;
  std::unique_ptr<JwksCache> keys_;        // thread-safe
  std::map<std::string, Client> clients_;  // by client_id; immutable after create
  std::map<std::string, Issuer> issuers_;  // by iss; immutable after create
  std::optional<SigningKey> signing_key_;
  std::optional<Jwk> own_key_;  // the signing key's public half
  pipeline::AuthStore* store_ = nullptr;
  metrics::Family<metrics::Counter>* token_requests_ = nullptr;  // null without a registry
};

}  // namespace sdoh::auth
