#include "adapters/net/backoff.hpp"

#include <gtest/gtest.h>

namespace sdoh::net {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, DoublesFromTheInitialDelayWithoutJitterDrawn) {
  const BackoffPolicy policy;  // 1 s, ×2, at most 5 min
  EXPECT_EQ(backoff_delay(policy, 1, 0.0), milliseconds(1'000));
  EXPECT_EQ(backoff_delay(policy, 2, 0.0), milliseconds(2'000));
  EXPECT_EQ(backoff_delay(policy, 3, 0.0), milliseconds(4'000));
  EXPECT_EQ(backoff_delay(policy, 9, 0.0), milliseconds(256'000));
}

TEST(Backoff, IsCappedAtMaxHoweverManyFailures) {
  const BackoffPolicy policy;
  EXPECT_EQ(backoff_delay(policy, 10, 0.0), milliseconds(300'000));
  EXPECT_EQ(backoff_delay(policy, 64, 0.0), milliseconds(300'000));
  EXPECT_EQ(backoff_delay(policy, 1'000'000, 0.0), milliseconds(300'000));
}

TEST(Backoff, JitterOnlyShortensUpToItsShare) {
  const BackoffPolicy policy;                                          // jitter 0.25
  EXPECT_EQ(backoff_delay(policy, 3, 0.5), milliseconds(3'500));       // 4 s less 12.5 %
  EXPECT_EQ(backoff_delay(policy, 30, 0.999), milliseconds(225'075));  // never above max
}

TEST(Backoff, NoFailureNoDelay) {
  EXPECT_EQ(backoff_delay(BackoffPolicy{}, 0, 0.5), milliseconds(0));
  EXPECT_EQ(backoff_delay(BackoffPolicy{}, -3, 0.5), milliseconds(0));
}

TEST(Backoff, OutOfRangeSettingsAreClamped) {
  BackoffPolicy policy;
  policy.multiplier = 0.5;  // below 1: no growth rather than shrinking
  policy.jitter = 7.0;      // above 1: at most the whole delay
  EXPECT_EQ(backoff_delay(policy, 5, 0.0), milliseconds(1'000));
  EXPECT_EQ(backoff_delay(policy, 5, 0.5), milliseconds(500));
  EXPECT_EQ(backoff_delay(policy, 5, 2.0), milliseconds(0));  // a draw outside [0, 1) clamped
}

TEST(Backoff, RandomDrawsStayWithinTheJitterBand) {
  std::mt19937_64 rng(42);
  const BackoffPolicy policy;
  for (int i = 0; i < 1'000; ++i) {
    const auto d = backoff_delay(policy, 4, rng);  // 8 s, jitter 25 %
    EXPECT_GE(d, milliseconds(6'000));
    EXPECT_LE(d, milliseconds(8'000));
  }
}

}  // namespace
}  // namespace sdoh::net
