#include "gateway/ops/last_hour.hpp"

#include <gtest/gtest.h>

namespace sdoh::ops {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// 2026-12-07T15:00:30Z
const WallClock::time_point kNow{seconds(1'796'655'630)};

std::int64_t count_of(const std::vector<Throughput::Minute>& hour, std::size_t minute,
                      const std::string& sender, const std::string& code) {
  for (const auto& s : hour.at(minute).by_sender) {
    if (s.sender != sender) continue;
    auto it = s.codes.find(code);
    return it == s.codes.end() ? 0 : it->second;
  }
  return 0;
}

TEST(Throughput, CountsAnswersBySenderAndCodePerMinute) {
  Throughput t;
  t.record("hl7v2", "EHR^PEDS_A", "AA", kNow - minutes(2));
  t.record("hl7v2", "EHR^PEDS_A", "AA", kNow);
  t.record("hl7v2", "EHR^PEDS_A", "AE", kNow);
  t.record("fhir", "clinic-a", "201", kNow);
  auto hour = t.last_hour(kNow);
  ASSERT_EQ(hour.size(), 60u);
  EXPECT_EQ(hour.back().minute_ms, 1'796'655'600'000);  // 15:00:00
  EXPECT_EQ(count_of(hour, 59, "EHR^PEDS_A", "AA"), 1);
  EXPECT_EQ(count_of(hour, 59, "EHR^PEDS_A", "AE"), 1);
  EXPECT_EQ(count_of(hour, 59, "clinic-a", "201"), 1);
  EXPECT_EQ(count_of(hour, 57, "EHR^PEDS_A", "AA"), 1);
  EXPECT_TRUE(hour.at(58).by_sender.empty());
}

TEST(Throughput, AMinuteOlderThanAnHourIsGoneAndItsSlotReused) {
  Throughput t;
  t.record("hl7v2", "EHR^PEDS_A", "AA", kNow - minutes(60));
  EXPECT_EQ(count_of(t.last_hour(kNow - minutes(1)), 0, "EHR^PEDS_A", "AA"), 1);
  for (const auto& m : t.last_hour(kNow))
    EXPECT_TRUE(m.by_sender.empty());
  t.record("hl7v2", "EHR^PEDS_B", "AR", kNow);  // the same slot, an hour on
  auto hour = t.last_hour(kNow);
  EXPECT_EQ(count_of(hour, 59, "EHR^PEDS_B", "AR"), 1);
  EXPECT_EQ(count_of(hour, 59, "EHR^PEDS_A", "AA"), 0);
}

TEST(Throughput, SendersBeyondTheCapAreCountedAsOther) {
  Throughput t;
  for (std::size_t i = 0; i < Throughput::kMaxSenders + 5; ++i)
    t.record("hl7v2", "S" + std::to_string(i), "AA", kNow);
  auto hour = t.last_hour(kNow);
  EXPECT_EQ(hour.back().by_sender.size(), Throughput::kMaxSenders + 1);
  EXPECT_EQ(count_of(hour, 59, "(other)", "AA"), 5);
}

TEST(DeliveryLag, NothingDeliveredHasNoPercentiles) {
  DeliveryLag lag;
  auto s = lag.last_hour(kNow);
  EXPECT_EQ(s.delivered, 0);
  EXPECT_EQ(s.p50_seconds, 0);
  EXPECT_EQ(s.p99_seconds, 0);
}

TEST(DeliveryLag, PercentilesAreTheUpperBoundOfTheirBucket) {
  DeliveryLag lag;
  for (int i = 0; i < 98; ++i)
    lag.record(milliseconds(10), kNow - minutes(i % 30));
  lag.record(milliseconds(5000), kNow);
  lag.record(milliseconds(5000), kNow);
  auto s = lag.last_hour(kNow);
  EXPECT_EQ(s.delivered, 100);
  // 10 ms falls in the bucket up to 1.25^11 ms = 11.64 ms; 5 s in the one up to 1.25^39 ms.
  EXPECT_NEAR(s.p50_seconds, 0.011642, 1e-6);
  EXPECT_NEAR(s.p99_seconds, 6.018531, 1e-6);
}

TEST(DeliveryLag, DeliveriesOlderThanAnHourDropOut) {
  DeliveryLag lag;
  lag.record(milliseconds(10), kNow - minutes(61));
  lag.record(milliseconds(10), kNow - minutes(59));
  EXPECT_EQ(lag.last_hour(kNow).delivered, 1);
}

}  // namespace
}  // namespace sdoh::ops
