// gateway/identity/rate_limits.cpp: a token bucket per party.
#include "gateway/identity/rate_limits.hpp"

#include <gtest/gtest.h>

namespace sdoh::identity {
namespace {

using namespace std::chrono_literals;

config::RateLimitsConfig limits(double per_second, double burst) {
  config::RateLimitsConfig cfg;
  cfg.default_limit = {per_second, burst};
  return cfg;
}

TEST(RateLimits, APartyMaySendItsBurstAtOnceThenWaits) {
  RateLimits rl(limits(2, 3));
  const auto t0 = RateLimits::Clock::time_point{} + 100s;
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(rl.take("clinic-a", t0).allowed) << i;
  const auto refused = rl.take("clinic-a", t0);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, 1s);  // half a second to the next token, said as whole seconds
  EXPECT_TRUE(rl.take("clinic-a", t0 + 500ms).allowed);
  EXPECT_FALSE(rl.take("clinic-a", t0 + 500ms).allowed);
}

TEST(RateLimits, EachPartyHasItsOwnBucket) {
  RateLimits rl(limits(1, 1));
  const auto t0 = RateLimits::Clock::time_point{} + 100s;
  EXPECT_TRUE(rl.take("clinic-a", t0).allowed);
  EXPECT_FALSE(rl.take("clinic-a", t0).allowed);
  EXPECT_TRUE(rl.take("clinic-b", t0).allowed);  // clinic A's loop does not stop clinic B
}

TEST(RateLimits, TheBucketRefillsUpToTheBurstOnly) {
  RateLimits rl(limits(10, 2));
  const auto t0 = RateLimits::Clock::time_point{} + 100s;
  EXPECT_TRUE(rl.take("a", t0).allowed);
  // An hour idle refills two tokens, not 36,000.
  EXPECT_TRUE(rl.take("a", t0 + 1h).allowed);
  EXPECT_TRUE(rl.take("a", t0 + 1h).allowed);
  EXPECT_FALSE(rl.take("a", t0 + 1h).allowed);
}

TEST(RateLimits, APartyOwnLimitOverridesTheDefaultAndZeroMeansNone) {
  auto cfg = limits(1, 1);
  cfg.parties["bulk-loader"] = {0, 1};
  cfg.parties["wic"] = {1, 5};
  RateLimits rl(cfg);
  const auto t0 = RateLimits::Clock::time_point{} + 100s;
  for (int i = 0; i < 1000; ++i)
    ASSERT_TRUE(rl.take("bulk-loader", t0).allowed);
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(rl.take("wic", t0).allowed);
  EXPECT_FALSE(rl.take("wic", t0).allowed);
}

TEST(RateLimits, RetryAfterSaysHowLongASlowBucketTakes) {
  auto cfg = limits(1, 1);
  cfg.default_limit.per_second = 0.25;  // one token every 4 s
  RateLimits slow(cfg);
  const auto t0 = RateLimits::Clock::time_point{} + 100s;
  EXPECT_TRUE(slow.take("a", t0).allowed);
  EXPECT_EQ(slow.take("a", t0).retry_after, 4s);
  EXPECT_EQ(slow.take("a", t0 + 3s).retry_after, 1s);
}

TEST(RateLimits, AConnectionCountsAsItsPartyElseItsAddress) {
  EXPECT_EQ(RateLimits::key_for("peds-clinic-a", "10.1.2.3:5000"), "peds-clinic-a");
  EXPECT_EQ(RateLimits::key_for("", "10.1.2.3:5000"), "peer:10.1.2.3");
  EXPECT_EQ(RateLimits::key_for("", "[2001:db8::1]:5000"), "peer:2001:db8::1");
}

}  // namespace
}  // namespace sdoh::identity
