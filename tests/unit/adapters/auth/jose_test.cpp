// The JOSE layer against keys and JWSs made by an independent implementation (panva/jose:
// tests/data/jose/vectors.json, written by tests/smart/make_jose_vectors.py) and RFC 7515's own
// ES256 example.
#include "adapters/auth/jose.hpp"

#include <fstream>
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

using test::text;
using test::vectors;

Jwk key(const char* alg) {
  auto k = Jwk::from_json(text(vectors()[alg]["public"]));
  EXPECT_TRUE(k) << k.error().message;
  return *k;
}

Jws jws(const std::string& token) {
  auto j = parse_compact(token);
  EXPECT_TRUE(j) << j.error().message;
  return *j;
}

constexpr Alg kAssertion[] = {Alg::kRS384, Alg::kES384};

TEST(Base64url, EncodesWithoutPaddingInTheUrlAlphabet) {
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64url_encode("any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw");
  EXPECT_EQ(base64url_decode("YW55IGNhcm5hbCBwbGVhcw"), "any carnal pleas");
}

TEST(Base64url, RefusesPaddingTheStandardAlphabetAndNonCanonicalTails) {
  EXPECT_FALSE(base64url_decode("YQ=="));
  EXPECT_FALSE(base64url_decode("+/8"));
  EXPECT_FALSE(base64url_decode("YR"));  // "a" is "YQ": R leaves non-zero unused bits
  EXPECT_FALSE(base64url_decode("Y"));
}

TEST(Jws, Es384AssertionFromAnotherImplementationVerifies) {
  auto j = jws(vectors()["ES384"]["jwt"].GetString());
  EXPECT_EQ(j.alg, "ES384");
  EXPECT_EQ(j.kid, "ec384");
  EXPECT_TRUE(verify(j, key("ES384"), kAssertion));
}

TEST(Jws, Rs384AssertionFromAnotherImplementationVerifies) {
  EXPECT_TRUE(verify(jws(vectors()["RS384"]["jwt"].GetString()), key("RS384"), kAssertion));
}

TEST(Jws, Rfc7515AppendixA3Es256Verifies) {
  // RFC 7515 A.3: the ES256 example, its key and its JWS.
  auto k = Jwk::from_json(
      R"({"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",)"
      R"("y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})");
  ASSERT_TRUE(k) << k.error().message;
  auto j =
      jws("eyJhbGciOiJFUzI1NiJ9."
          "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"
          "bS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-"
          "F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfK"
          "TUJqPP3-Kg6NU1Q");
  constexpr Alg es256[] = {Alg::kES256};
  EXPECT_TRUE(verify(j, *k, es256));
}

TEST(Jws, AlgNoneIsRefused) {
  auto j = parse_compact(vectors()["none"].GetString());
  ASSERT_TRUE(j);
  EXPECT_EQ(j->alg, "none");
  auto r = verify(*j, key("RS384"), kAssertion);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("alg \"none\" is not accepted"));
}

TEST(Jws, Hs256SignedWithThePublicKeyIsRefused) {
  auto r = verify(jws(vectors()["HS256_with_public_key"].GetString()), key("RS384"), kAssertion);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("alg \"HS256\" is not accepted"));
}

TEST(Jws, TheKeyTypeDecidesTheAlgorithmNotTheHeader) {
  // An ES384 JWS checked against the RSA key: the header's alg does not fit the key.
  auto r = verify(jws(vectors()["ES384"]["jwt"].GetString()), key("RS384"), kAssertion);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("does not sign with ES384"));
  // ES256 is a fine algorithm, but not for a client assertion.
  auto es256 = verify(jws(vectors()["ES256"]["jwt"].GetString()), key("ES256"), kAssertion);
  ASSERT_FALSE(es256);
  EXPECT_THAT(es256.error().message, HasSubstr("alg \"ES256\" is not accepted"));
}

TEST(Jws, AChangedPayloadDoesNotVerify) {
  auto j = jws(vectors()["ES384"]["jwt"].GetString());
  j.signing_input.back() = j.signing_input.back() == 'A' ? 'B' : 'A';
  auto r = verify(j, key("ES384"), kAssertion);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("does not verify"));
}

TEST(Jws, MalformedCompactFormsAreRefused) {
  EXPECT_FALSE(parse_compact("a.b"));
  EXPECT_FALSE(parse_compact("a.b.c.d"));
  EXPECT_FALSE(parse_compact("e30.e30.!!"));
  EXPECT_FALSE(parse_compact(base64url_encode(R"({"typ":"JWT"})") + ".e30."));  // no alg
  EXPECT_FALSE(parse_compact(base64url_encode(R"({"alg":"ES384","crit":["b64"]})") + ".e30."));
  EXPECT_FALSE(parse_compact(std::string(17 * 1024, 'a')));
}

TEST(Jwk, JwkAlgAndUseRestrictWhatTheKeyVerifies) {
  auto k = Jwk::from_json(text(vectors()["RS384"]["public"]));
  ASSERT_TRUE(k);
  EXPECT_TRUE(k->fits(Alg::kRS384));
  EXPECT_FALSE(k->fits(Alg::kRS256));  // the JWK says "alg": "RS384"
  EXPECT_FALSE(k->fits(Alg::kES384));
  EXPECT_TRUE(key("ES384").fits(Alg::kES384));
  EXPECT_FALSE(key("ES384").fits(Alg::kES256));  // P-384 signs ES384 only
}

TEST(Jwk, PrivateKeysSmallRsaKeysAndOtherKtysAreRefused) {
  auto priv = Jwk::from_json(
      R"({"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",)"
      R"("y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"})");
  ASSERT_FALSE(priv);
  EXPECT_THAT(priv.error().message, HasSubstr("private key"));
  // RFC 7517 A.1's RSA key is 2048 bits; one of 1024 bits is refused.
  auto small = Jwk::from_json(R"({"kty":"RSA","e":"AQAB","n":")" +
                              base64url_encode(std::string(128, '\xc5')) + "\"}");
  ASSERT_FALSE(small);
  EXPECT_THAT(small.error().message, HasSubstr("1024 bits"));
  auto oct = Jwk::from_json(R"({"kty":"oct","k":"c2VjcmV0"})");
  ASSERT_FALSE(oct);
  EXPECT_THAT(oct.error().message, HasSubstr("unsupported kty \"oct\""));
  auto off_curve = Jwk::from_json(
      R"({"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",)"
      R"("y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a1"})");
  EXPECT_FALSE(off_curve);
}

TEST(Jwks, UnusableKeysAreSkippedWithTheirReason) {
  auto set = parse_jwks(R"({"keys":[)" + text(vectors()["ES384"]["public"]) +
                        R"(,{"kty":"oct","k":"c2VjcmV0"}]})");
  ASSERT_TRUE(set);
  ASSERT_EQ(set->keys.size(), 1u);
  EXPECT_EQ(set->keys[0].kid(), "ec384");
  ASSERT_EQ(set->skipped.size(), 1u);
  EXPECT_FALSE(parse_jwks(R"({"kty":"EC"})"));
}

TEST(Claims, AudIsAListAndTimesAreNumbers) {
  auto c = parse_claims(R"({"iss":"a","aud":"x","exp":1900000000,"nbf":1.5e9})");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->aud, std::vector<std::string>{"x"});
  EXPECT_EQ(c->exp, 1900000000);
  EXPECT_EQ(c->nbf, 1500000000);
  auto list = parse_claims(R"({"aud":["x","y"]})");
  ASSERT_TRUE(list);
  EXPECT_EQ(list->aud, (std::vector<std::string>{"x", "y"}));
  EXPECT_FALSE(parse_claims(R"({"exp":"tomorrow"})"));
  EXPECT_FALSE(parse_claims(R"({"iss":7})"));
  EXPECT_FALSE(parse_claims("[]"));
}

TEST(SigningKey, SignsWhatItsPublicJwkVerifies) {
  auto k = SigningKey::generate();
  ASSERT_TRUE(k) << k.error().message;
  auto token = k->sign(R"({"iss":"gw"})", "at+jwt");
  ASSERT_TRUE(token);
  auto j = jws(*token);
  EXPECT_EQ(j.alg, "ES256");
  EXPECT_EQ(j.typ, "at+jwt");
  EXPECT_EQ(j.kid, k->kid());
  EXPECT_EQ(j.payload_json, R"({"iss":"gw"})");
  auto pub = Jwk::from_json(k->public_jwk_json());
  ASSERT_TRUE(pub);
  constexpr Alg es256[] = {Alg::kES256};
  EXPECT_TRUE(verify(j, *pub, es256));
}

TEST(SigningKey, PemRoundTripKeepsTheKid) {
  auto k = SigningKey::generate();
  ASSERT_TRUE(k);
  auto again = SigningKey::from_pem(k->private_pem());
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->kid(), k->kid());
  EXPECT_EQ(k->kid().size(), 43u);  // base64url of a SHA-256 thumbprint (RFC 7638)
}

}  // namespace
}  // namespace sdoh::auth
