#include "adapters/auth/jwks_cache.hpp"

#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "adapters/auth/jose.hpp"

namespace sdoh::auth {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// A JWKS of one fresh P-256 public key named `kid`.
std::string jwks(const std::string& kid) {
  auto k = SigningKey::generate();  // any P-256 key: the cache only looks keys up
  std::string jwk = k->public_jwk_json();
  const auto at = jwk.find(k->kid());
  jwk.replace(at, k->kid().size(), kid);
  return R"({"keys":[)" + jwk + "]}";
}

struct FakeUrl {
  std::string body;
  int fetched = 0;
};

class Cache : public ::testing::Test {
 protected:
  Cache()
      : cache_(
            [this](const std::string&) -> Result<std::string> {
              ++url_.fetched;
              return url_.body;
            },
            60s, 1h, [this] { return now_; }) {}
  FakeUrl url_;
  std::chrono::steady_clock::time_point now_{std::chrono::hours(1)};
  JwksCache cache_;
};

TEST_F(Cache, AUrlIsFetchedOnFirstUseAndThenServedFromTheCache) {
  url_.body = jwks("k1");
  ASSERT_TRUE(cache_.add("c", {"parties.a.smart_clients.c", "", "", "https://a.example/jwks"}));
  EXPECT_EQ(url_.fetched, 0);
  EXPECT_TRUE(cache_.find("c", "k1", Alg::kES256));
  EXPECT_TRUE(cache_.find("c", "k1", Alg::kES256));
  EXPECT_EQ(url_.fetched, 1);
}

TEST_F(Cache, AnUnknownKidFetchesAgainAtMostOncePerInterval) {
  url_.body = jwks("k1");
  ASSERT_TRUE(cache_.add("c", {"k", "", "", "https://a.example/jwks"}));
  ASSERT_TRUE(cache_.find("c", "k1", Alg::kES256));
  now_ += 61s;
  auto unknown = cache_.find("c", "k2", Alg::kES256);
  ASSERT_FALSE(unknown);
  EXPECT_THAT(unknown.error().message, HasSubstr("fetched again just now"));
  EXPECT_EQ(url_.fetched, 2);
  // The owner rotates to k2, but a second unknown kid within the interval fetches nothing.
  url_.body = jwks("k2");
  now_ += 10s;
  auto limited = cache_.find("c", "k2", Alg::kES256);
  ASSERT_FALSE(limited);
  EXPECT_THAT(limited.error().message, HasSubstr("the last fetch is too recent"));
  EXPECT_EQ(url_.fetched, 2);
  now_ += 51s;
  EXPECT_TRUE(cache_.find("c", "k2", Alg::kES256));
  EXPECT_EQ(url_.fetched, 3);
}

TEST_F(Cache, AKeyThatDoesNotFitTheAlgIsRefusedByName) {
  url_.body = jwks("k1");
  ASSERT_TRUE(cache_.add("c", {"k", "", "", "https://a.example/jwks"}));
  auto r = cache_.find("c", "k1", Alg::kES384);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("does not sign with ES384"));
}

TEST_F(Cache, InlineKeysAreCheckedWhenAddedAndNeverFetched) {
  EXPECT_TRUE(cache_.add("c", {"k", jwks("k1"), "", ""}));
  auto r = cache_.find("c", "other", Alg::kES256);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("no key \"other\" is registered"));
  EXPECT_EQ(url_.fetched, 0);
  auto bad = cache_.add("d", {"parties.a.smart_clients.d", R"({"keys":[]})", "", ""});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().where.expression, "parties.a.smart_clients.d");
}

}  // namespace
}  // namespace sdoh::auth
