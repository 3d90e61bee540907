#include "adapters/auth/smart.hpp"

#include <openssl/rand.h>
#include <rapidjson/document.h>

#include "gateway/core/json_text.hpp"
#include "gateway/core/text.hpp"
#include "gateway/log/log.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/pipeline/store_executor.hpp"

namespace sdoh::auth {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kAssertionType =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
constexpr std::size_t kMaxJtiBytes = 256;
// SMART Backend Services: client assertions are signed RS384 or ES384.
constexpr Alg kAssertionAlgs[] = {Alg::kRS384, Alg::kES384};
// An organisation's authorization server may sign with any of the common asymmetric algorithms.
constexpr Alg kExternalAlgs[] = {Alg::kRS256, Alg::kRS384, Alg::kRS512, Alg::kES256, Alg::kES384};
constexpr Alg kOwnAlgs[] = {Alg::kES256};

// An OAuth error answer (RFC 6749 5.2).
struct OAuthError {
  unsigned status;
  std::string error;
  std::string description;
};

OAuthError bad_request(std::string error, std::string description) {
  return {400, std::move(error), std::move(description)};
}
OAuthError bad_client(std::string description) {
  // RFC 6749 5.2: client authentication failed; SMART: 400 or 401.
  return {401, "invalid_client", std::move(description)};
}

http::Response no_store(http::Response r) {
  // RFC 6749 5.1: token answers are never cached.
  r.headers.push_back({"Cache-Control", "no-store"});
  r.headers.push_back({"Pragma", "no-cache"});
  return r;
}

http::Response oauth_error(const OAuthError& e) {
  std::string body = "{\"error\":";
  append_json_string(body, e.error);
  body += ",\"error_description\":";
  append_json_string(body, e.description);
  body += "}";
  return no_store(http::Response::json(e.status, std::move(body)));
}

std::string random_id() {
  unsigned char bytes[16];
  RAND_bytes(bytes, sizeof bytes);
  return base64url_encode(std::string_view(reinterpret_cast<char*>(bytes), sizeof bytes));
}

bool contains(const std::vector<std::string>& list, std::string_view value) {
  for (const auto& v : list) {
    if (v == value) return true;
  }
  return false;
}

identity::Scopes allowed_scopes(const std::vector<std::string>& scopes) {
  std::string joined;
  for (const auto& s : scopes)
    joined += s + " ";
  return identity::Scopes::parse(joined);
}

// The time rules every JWT here follows (RFC 7519 4.1.4-4.1.6), with a bounded clock skew.
std::optional<std::string> time_problem(const Claims& c, std::int64_t now, std::int64_t skew) {
  if (!c.exp) return "it has no exp";
  if (*c.exp + skew < now) return "it expired (exp is in the past)";
  if (c.nbf && *c.nbf > now + skew) return "it is not valid yet (nbf is in the future)";
  if (c.iat && *c.iat > now + skew) return "it was issued in the future (iat)";
  return std::nullopt;
}

}  // namespace

SmartAuthority::SmartAuthority(SmartOptions options) : options_(std::move(options)) {
  keys_ = std::make_unique<JwksCache>(options_.fetch, options_.smart.jwks_refetch_interval,
                                      options_.smart.jwks_max_age, options_.steady_now);
}

std::int64_t SmartAuthority::now_seconds() const {
  const auto now = options_.now ? options_.now() : std::chrono::system_clock::now();
  return std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
}

Result<void> SmartAuthority::check(const config::GatewayConfig& cfg) {
  SmartOptions o;
  o.smart = cfg.smart;
  o.parties = cfg.parties;
  SmartAuthority authority(std::move(o));
  for (const auto& p : cfg.parties) {
    for (const auto& c : p.smart_clients) {
      const auto key = "parties." + p.id + ".smart_clients." + c.client_id;
      if (auto r = authority.keys_->add(c.client_id, {key, c.jwks_json, c.jwks_file, c.jwks_url});
          !r)
        return r;
    }
  }
  return {};
}

Result<std::unique_ptr<SmartAuthority>> SmartAuthority::create(SmartOptions options,
                                                               pipeline::AuthStore& store,
                                                               metrics::Registry* registry) {
  std::unique_ptr<SmartAuthority> a(new SmartAuthority(std::move(options)));
  a->store_ = &store;
  if (registry != nullptr) {
    a->token_requests_ = &registry->counter(
        "sdoh_auth_token_requests_total",
        "Token requests at /auth/token, by outcome (granted or the OAuth error code).",
        {"outcome"});
  }
  for (const auto& p : a->options_.parties) {
    for (const auto& c : p.smart_clients) {
      const auto key = "parties." + p.id + ".smart_clients." + c.client_id;
      if (auto r =
              a->keys_->add("client:" + c.client_id, {key, c.jwks_json, c.jwks_file, c.jwks_url});
          !r)
        return fail(r.error());
      a->clients_[c.client_id] = {c.client_id, &p, allowed_scopes(c.scopes)};
    }
    if (p.external_issuer.configured()) {
      const auto& x = p.external_issuer;
      if (auto r = a->keys_->add("issuer:" + x.issuer,
                                 {"parties." + p.id + ".external_issuer", "", "", x.jwks_url});
          !r)
        return fail(r.error());
      a->issuers_[x.issuer] = {&p, allowed_scopes(x.scopes)};
    }
  }
  // The signing key every gateway on the database shares: ours is offered, the stored one wins.
  auto candidate = SigningKey::generate();
  if (!candidate) return fail(candidate.error());
  auto row = store.signing_key(
      {candidate->kid(), std::string(candidate->alg()), candidate->private_pem()});
  if (!row) return fail(row.error());
  auto key = SigningKey::from_pem(row->private_pem);
  if (!key) return fail(key.error());
  a->signing_key_ = std::move(*key);
  auto own = Jwk::from_json(a->signing_key_->public_jwk_json());
  if (!own) return fail(own.error());
  a->own_key_ = std::move(*own);
  return a;
}

std::string SmartAuthority::fhir_base(const http::Request& req) const {
  if (!options_.fhir_base_url.empty()) return options_.fhir_base_url;
  std::string host(req.header("Host").value_or("localhost"));
  return std::string(req.secure ? "https://" : "http://") + host + "/fhir";
}

std::string SmartAuthority::token_endpoint(std::string_view fhir_base) const {
  if (!options_.smart.token_endpoint.empty()) return options_.smart.token_endpoint;
  std::string base(fhir_base);
  if (base.ends_with("/fhir")) base.resize(base.size() - 5);
  return base + "/auth/token";
}

std::string SmartAuthority::configuration(const http::Request& req) const {
  const auto base = fhir_base(req);
  const auto token_url = token_endpoint(base);
  std::string jwks_url = token_url;
  if (jwks_url.ends_with("/token")) jwks_url.resize(jwks_url.size() - 6);
  jwks_url += "/jwks";
  std::string out = "{\"issuer\":";
  append_json_string(out, token_url);
  out += ",\"token_endpoint\":";
  append_json_string(out, token_url);
  out += ",\"jwks_uri\":";
  append_json_string(out, jwks_url);
  out +=
      R"(,"grant_types_supported":["client_credentials"],)"
      R"("token_endpoint_auth_methods_supported":["private_key_jwt"],)"
      R"("token_endpoint_auth_signing_alg_values_supported":["RS384","ES384"],)"
      R"("scopes_supported":["system/*.cruds","system/*.rs","system/Patient.c","system/QuestionnaireResponse.c","system/Observation.c","system/ServiceRequest.crs","system/Consent.c","system/Task.cruds","system/Subscription.cruds","system/*.read","system/*.write"],)"
      R"("response_types_supported":["token"],)"
      R"("capabilities":["client-confidential-asymmetric","permission-v2","permission-v1"]})";
  return out;
}

http::Response SmartAuthority::token(const http::Request& req) {
  const auto now = now_seconds();
  const auto skew = static_cast<std::int64_t>(options_.smart.clock_skew.count());
  std::string client_for_log;
  auto refuse = [&](const OAuthError& e) {
    if (token_requests_ != nullptr) token_requests_->with({e.error}).inc();
    log::warn("auth.token_refused",
              {{"client_id", client_for_log}, {"error", e.error}, {"reason", e.description}});
    return oauth_error(e);
  };

  const auto ct = ascii_lower(trim_blanks(req.header("Content-Type").value_or("")));
  if (!ct.starts_with("application/x-www-form-urlencoded")) {
    return refuse(bad_request("invalid_request",
                              "the token request is a form: Content-Type: "
                              "application/x-www-form-urlencoded"));
  }
  std::map<std::string, std::string> form;
  std::string_view rest = req.body;
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const auto item = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (item.empty()) continue;
    const auto eq = item.find('=');
    auto name = http::url_decode(item.substr(0, eq));
    auto value =
        eq == std::string_view::npos ? std::string() : http::url_decode(item.substr(eq + 1));
    // RFC 6749 3.2: request parameters MUST NOT be included more than once.
    if (!form.emplace(name, std::move(value)).second)
      return refuse(bad_request("invalid_request", "the parameter " + name + " is given twice"));
  }
  auto param = [&form](const char* name) -> std::string {
    auto it = form.find(name);
    return it == form.end() ? std::string() : it->second;
  };
  const auto grant_type = param("grant_type");
  if (grant_type.empty()) return refuse(bad_request("invalid_request", "grant_type is missing"));
  if (grant_type != "client_credentials") {
    return refuse(
        bad_request("unsupported_grant_type", "only grant_type=client_credentials is supported"));
  }
  if (param("client_assertion_type") != kAssertionType) {
    return refuse(bad_request("invalid_request",
                              "client_assertion_type must be " + std::string(kAssertionType)));
  }
  const auto assertion = param("client_assertion");
  if (assertion.empty())
    return refuse(bad_request("invalid_request", "client_assertion is missing"));
  const auto requested_text = param("scope");
  if (requested_text.empty()) {
    return refuse(bad_request("invalid_request",
                              "scope is missing: ask for system scopes such as system/Task.rus"));
  }

  auto jws = parse_compact(assertion);
  if (!jws) return refuse(bad_client("the client assertion is not a JWS: " + jws.error().message));
  if (!jws->typ.empty() && ascii_lower(jws->typ) != "jwt")
    return refuse(bad_client("the client assertion's typ must be JWT"));
  const auto alg = alg_from_name(jws->alg);
  if (!alg || (*alg != Alg::kRS384 && *alg != Alg::kES384)) {
    return refuse(bad_client("the client assertion's alg \"" + jws->alg +
                             "\" is not accepted: RS384 or ES384"));
  }
  auto claims = parse_claims(jws->payload_json);
  if (!claims) return refuse(bad_client(claims.error().message));
  if (claims->iss.empty() || claims->iss != claims->sub)
    return refuse(bad_client("the client assertion's iss and sub must both be the client_id"));
  if (auto id = param("client_id"); !id.empty() && id != claims->iss)
    return refuse(bad_client("client_id does not match the client assertion's iss"));
  auto client = clients_.find(claims->iss);
  if (client == clients_.end())
    return refuse(bad_client("client_id " + claims->iss + " is not registered"));
  client_for_log = claims->iss;
  if (jws->kid.empty()) return refuse(bad_client("the client assertion's header has no kid"));
  auto key = keys_->find("client:" + claims->iss, jws->kid, *alg);
  if (!key) return refuse(bad_client(key.error().message));
  if (auto r = auth::verify(*jws, *key, kAssertionAlgs); !r)
    return refuse(bad_client(r.error().message));

  const auto token_url = token_endpoint(fhir_base(req));
  if (!contains(claims->aud, token_url))
    return refuse(bad_client("the client assertion's aud must be the token endpoint " + token_url));
  if (auto p = time_problem(*claims, now, skew))
    return refuse(bad_client("the client assertion: " + *p));
  const auto max_lifetime =
      static_cast<std::int64_t>(options_.smart.max_assertion_lifetime.count());
  if (*claims->exp > now + max_lifetime + skew) {
    return refuse(bad_client("the client assertion's exp is more than " +
                             std::to_string(max_lifetime) + " s in the future"));
  }
  if (claims->jti.empty() || claims->jti.size() > kMaxJtiBytes)
    return refuse(bad_client("the client assertion needs a jti (at most 256 bytes)"));

  identity::Scopes requested = identity::Scopes::parse(requested_text);
  auto granted = requested.intersect(client->second.allowed);
  if (granted.empty()) {
    return refuse(
        bad_request("invalid_scope", "none of the requested scopes is allowed for " + claims->iss +
                                         " (allowed: " + client->second.allowed.to_string() + ")"));
  }
  // Last, once everything else holds: a jti is spent only by an assertion that would succeed.
  auto fresh = store_->record_assertion(claims->iss, claims->jti, (*claims->exp + skew) * 1000);
  if (!fresh) {
    log::error("auth.jti_store_failed", {{"reason", fresh.error().message}});
    return no_store(http::Response::json(
        503,
        R"({"error":"temporarily_unavailable","error_description":"the gateway cannot record the assertion now; retry"})"));
  }
  if (!*fresh) return refuse(bad_client("the client assertion's jti was used before"));

  const auto lifetime = static_cast<std::int64_t>(options_.smart.access_token_lifetime.count());
  std::string payload = "{\"iss\":";
  append_json_string(payload, token_url);
  payload += ",\"sub\":";
  append_json_string(payload, claims->iss);
  payload += ",\"client_id\":";
  append_json_string(payload, claims->iss);
  payload += ",\"aud\":";
  append_json_string(payload, fhir_base(req));
  payload += ",\"iat\":" + std::to_string(now) + ",\"exp\":" + std::to_string(now + lifetime);
  payload += ",\"jti\":";
  append_json_string(payload, random_id());
  payload += ",\"scope\":";
  append_json_string(payload, granted.to_string());
  payload += "}";
  auto access_token = signing_key_->sign(payload, "at+jwt");
  if (!access_token) {
    return no_store(http::Response::json(
        500,
        R"({"error":"server_error","error_description":"the access token cannot be signed"})"));
  }
  if (token_requests_ != nullptr) token_requests_->with({"granted"}).inc();
  log::info("auth.token_granted", {{"client_id", claims->iss},
                                   {"party", client->second.party->id},
                                   {"scope", granted.to_string()}});
  std::string body = "{\"access_token\":";
  append_json_string(body, *access_token);
  body += ",\"token_type\":\"bearer\",\"expires_in\":" + std::to_string(lifetime) + ",\"scope\":";
  append_json_string(body, granted.to_string());
  body += "}";
  return no_store(http::Response::json(200, std::move(body)));
}

std::expected<identity::Caller, identity::TokenRefusal> SmartAuthority::verify(
    std::string_view token, std::string_view fhir_base) const {
  auto refuse = [](std::string message) {
    return std::unexpected(identity::TokenRefusal{"invalid_token", std::move(message)});
  };
  auto jws = parse_compact(token);
  if (!jws) return refuse("the access token is not a JWS: " + jws.error().message);
  auto claims = parse_claims(jws->payload_json);
  if (!claims) return refuse(claims.error().message);
  const auto now = now_seconds();
  const auto skew = static_cast<std::int64_t>(options_.smart.clock_skew.count());
  identity::Caller caller;
  identity::Scopes allowed;
  const config::PartyConfig* party = nullptr;
  if (own_key_ && jws->kid == own_key_->kid()) {
    // One of ours.
    if (auto r = auth::verify(*jws, *own_key_, kOwnAlgs); !r) return refuse(r.error().message);
    if (claims->iss != token_endpoint(fhir_base))
      return refuse("the access token was issued for another server");
    if (!contains(claims->aud, fhir_base))
      return refuse("the access token's aud is not " + std::string(fhir_base));
    auto client = clients_.find(claims->client_id);
    if (client == clients_.end())
      return refuse("the access token's client " + claims->client_id + " is no longer registered");
    caller.client_id = client->first;
    party = client->second.party;
    allowed = client->second.allowed;
  } else {
    auto issuer = issuers_.find(claims->iss);
    if (issuer == issuers_.end())
      return refuse("the access token is neither this gateway's nor a configured issuer's");
    const auto alg = alg_from_name(jws->alg);
    if (!alg) return refuse("the access token's alg \"" + jws->alg + "\" is not accepted");
    auto key = keys_->find("issuer:" + claims->iss, jws->kid, *alg);
    if (!key) return refuse(key.error().message);
    if (auto r = auth::verify(*jws, *key, kExternalAlgs); !r) return refuse(r.error().message);
    const auto& x = issuer->second.party->external_issuer;
    if (!contains(claims->aud, x.audience))
      return refuse("the access token's aud is not " + x.audience);
    caller.client_id = !claims->client_id.empty() ? claims->client_id : claims->sub;
    party = issuer->second.party;
    allowed = issuer->second.allowed;
  }
  if (auto p = time_problem(*claims, now, skew)) return refuse("the access token: " + *p);
  caller.party = party->id;
  caller.kind = party->kind;
  caller.organization = party->organization;
  caller.name = party->name;
  // What the token says it grants, within what the party may be granted now.
  caller.scopes = identity::Scopes::parse(claims->scope).intersect(allowed);
  return caller;
}

void SmartAuthority::add_routes(http::Router& router, pipeline::StoreExecutor* store_threads) {
  http::Handler token_handler = [this](http::Request& req) -> asio::awaitable<http::Response> {
    co_return token(req);
  };
  if (store_threads != nullptr) token_handler = store_threads->wrap(std::move(token_handler));
  router.add("POST", "/auth/token", std::move(token_handler));
  auto discovery = [this](http::Request& req) -> asio::awaitable<http::Response> {
    auto r = http::Response::json(200, configuration(req));
    r.headers.push_back({"Cache-Control", "max-age=3600"});
    co_return r;
  };
  router.add("GET", "/.well-known/smart-configuration", discovery);
  router.add("GET", "/fhir/.well-known/smart-configuration", discovery);
  router.add("GET", "/auth/jwks", [this](http::Request&) -> asio::awaitable<http::Response> {
    co_return http::Response::json(200, "{\"keys\":[" + signing_key_->public_jwk_json() + "]}");
  });
}

}  // namespace sdoh::auth
