// The token endpoint and the access-token check with a fixed clock and a map for the store,
// fed the client assertions of tests/data/jose/vectors.json (made by npm jose): iss = sub =
// "ehr", aud https://gw.example.org/auth/token, exp 1900000000, jti vector-1.
#include "adapters/auth/smart.hpp"

#include <fstream>
#include <map>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/core/json_parse.hpp"
#include "tests/unit/adapters/auth/vectors.hpp"

namespace sdoh::auth {
namespace {

using ::testing::HasSubstr;

constexpr std::int64_t kExp = 1'900'000'000;
constexpr const char* kFhirBase = "https://gw.example.org/fhir";

using test::text;
using test::vectors;

class MapStore final : public pipeline::AuthStore {
 public:
  Result<bool> record_assertion(std::string_view client_id, std::string_view jti,
                                std::int64_t expires_at_ms) override {
    return seen.emplace(std::string(client_id) + "|" + std::string(jti), expires_at_ms).second;
  }
  Result<pipeline::SigningKeyRow> signing_key(const pipeline::SigningKeyRow& candidate) override {
    if (!key) key = candidate;
    return *key;
  }
  std::map<std::string, std::int64_t> seen;
  std::optional<pipeline::SigningKeyRow> key;
};

class TokenEndpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    config::PartyConfig clinic;
    clinic.id = "peds-clinic-a";
    clinic.kind = "clinic";
    clinic.organization = "PEDS_A";
    clinic.name = "Peds A";
    config::SmartClientConfig ehr;
    ehr.client_id = "ehr";
    ehr.jwks_json = "{\"keys\":[" + text(vectors()["ES384"]["public"]) + "," +
                    text(vectors()["RS384"]["public"]) + "]}";
    ehr.scopes = {"system/Task.rs", "system/QuestionnaireResponse.c"};
    clinic.smart_clients.push_back(ehr);
    SmartOptions o;
    o.smart.token_endpoint = "https://gw.example.org/auth/token";
    o.fhir_base_url = kFhirBase;
    o.parties = {clinic};
    o.now = [this] { return std::chrono::system_clock::time_point(std::chrono::seconds(now_)); };
    auto made = SmartAuthority::create(std::move(o), store_);
    ASSERT_TRUE(made) << made.error().message;
    authority_ = std::move(*made);
  }

  http::Response post(const std::string& assertion, const std::string& scope = "system/Task.rs",
                      const std::string& grant = "client_credentials") {
    http::Request req;
    req.method = "POST";
    req.headers.push_back({"Content-Type", "application/x-www-form-urlencoded"});
    req.body = "grant_type=" + grant +
               "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-"
               "bearer&client_assertion=" +
               assertion + "&scope=" + scope;
    return authority_->token(req);
  }

  static std::string vector(const char* name) {
    const auto& v = vectors()[name];
    return v.IsString() ? v.GetString() : v["jwt"].GetString();
  }

  static rapidjson::Document body(const http::Response& r) {
    rapidjson::Document d;
    EXPECT_TRUE(json::parse(d, r.body));
    return d;
  }

  MapStore store_;
  std::int64_t now_ = kExp - 120;
  std::unique_ptr<SmartAuthority> authority_;
};

TEST_F(TokenEndpoint, AValidEs384AssertionGetsATokenForTheAllowedScopes) {
  auto r = post(vector("ES384"), "system/Task.rus+system/Patient.r");
  ASSERT_EQ(r.status, 200u) << r.body;
  auto b = body(r);
  EXPECT_STREQ(b["token_type"].GetString(), "bearer");
  EXPECT_EQ(b["expires_in"].GetInt(), 300);
  EXPECT_STREQ(b["scope"].GetString(), "system/Task.rs");
  EXPECT_EQ(store_.seen.at("ehr|vector-1"), (kExp + 60) * 1000);  // kept until exp + skew
}

TEST_F(TokenEndpoint, TheSameJtiTwiceIsAReplay) {
  ASSERT_EQ(post(vector("ES384")).status, 200u);
  auto r = post(vector("RS384"));  // another signature, the same client and jti
  EXPECT_EQ(r.status, 401u);
  EXPECT_THAT(r.body, HasSubstr("jti was used before"));
}

TEST_F(TokenEndpoint, ExpIsCheckedWithTheClockSkewAndNoFurther) {
  now_ = kExp + 60;
  EXPECT_EQ(post(vector("ES384")).status, 200u);
  store_.seen.clear();
  now_ = kExp + 61;
  auto r = post(vector("ES384"));
  EXPECT_EQ(r.status, 401u);
  EXPECT_THAT(r.body, HasSubstr("expired"));
}

TEST_F(TokenEndpoint, AnExpMoreThanFiveMinutesAheadIsRefused) {
  now_ = kExp - 361;  // 300 s lifetime + 60 s skew
  auto r = post(vector("ES384"));
  EXPECT_EQ(r.status, 401u);
  EXPECT_THAT(r.body, HasSubstr("more than 300 s in the future"));
  EXPECT_TRUE(store_.seen.empty());  // a refused assertion spends no jti
}

TEST_F(TokenEndpoint, NoneHs256AndEs256AreRefusedBeforeAnyKeyIsTried) {
  for (const char* name : {"none", "HS256_with_public_key", "ES256"}) {
    auto r = post(vector(name));
    EXPECT_EQ(r.status, 401u) << name;
    EXPECT_STREQ(body(r)["error"].GetString(), "invalid_client") << name;
    EXPECT_THAT(r.body, HasSubstr("is not accepted: RS384 or ES384")) << name;
  }
}

TEST_F(TokenEndpoint, OAuthErrorsOfTheRequestItself) {
  auto grant = post(vector("ES384"), "system/Task.rs", "password");
  EXPECT_EQ(grant.status, 400u);
  EXPECT_STREQ(body(grant)["error"].GetString(), "unsupported_grant_type");
  auto scope = post(vector("ES384"), "system/Patient.c");
  EXPECT_EQ(scope.status, 400u);
  EXPECT_STREQ(body(scope)["error"].GetString(), "invalid_scope");
  std::string cache_control;
  for (const auto& h : scope.headers) {
    if (h.name == "Cache-Control") cache_control = h.value;
  }
  EXPECT_EQ(cache_control, "no-store");
}

TEST_F(TokenEndpoint, ItsAccessTokenIsAcceptedUntilItExpires) {
  auto r = post(vector("ES384"), "system/Task.rs");
  ASSERT_EQ(r.status, 200u);
  const std::string token = body(r)["access_token"].GetString();
  auto caller = authority_->verify(token, kFhirBase);
  ASSERT_TRUE(caller) << caller.error().message;
  EXPECT_EQ(caller->party, "peds-clinic-a");
  EXPECT_EQ(caller->kind, "clinic");
  EXPECT_EQ(caller->organization, "PEDS_A");
  EXPECT_EQ(caller->client_id, "ehr");
  EXPECT_EQ(caller->scopes.to_string(), "system/Task.rs");
  EXPECT_FALSE(authority_->verify(token, "https://other.example.org/fhir"));
  now_ += 300 + 61;
  auto late = authority_->verify(token, kFhirBase);
  ASSERT_FALSE(late);
  EXPECT_THAT(late.error().message, HasSubstr("expired"));
}

TEST(SmartCheck, AnUnusableInlineJwksIsNamedByItsConfigKey) {
  config::GatewayConfig cfg;
  config::PartyConfig party;
  party.id = "peds-clinic-a";
  config::SmartClientConfig ehr;
  ehr.client_id = "ehr";
  ehr.jwks_json = R"({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})";
  party.smart_clients.push_back(ehr);
  cfg.parties.push_back(party);
  auto r = SmartAuthority::check(cfg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().where.expression, "parties.peds-clinic-a.smart_clients.ehr");
  EXPECT_THAT(r.error().message, HasSubstr("no usable key: unsupported kty \"oct\""));
  cfg.parties[0].smart_clients[0].jwks_json =
      "{\"keys\":[" + text(vectors()["ES384"]["public"]) + "]}";
  EXPECT_TRUE(SmartAuthority::check(cfg));
}

}  // namespace
}  // namespace sdoh::auth
