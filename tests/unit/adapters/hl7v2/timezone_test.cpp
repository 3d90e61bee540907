#include "adapters/hl7v2/timezone.hpp"

#include <gtest/gtest.h>

#include "adapters/hl7v2/oru.hpp"

namespace sdoh::hl7v2 {
namespace {

namespace chrono = std::chrono;

TimeZone zone(const char* name) {
  auto z = TimeZone::load(name);
  EXPECT_TRUE(z) << (z ? "" : z.error().message);
  return std::move(*z);
}

chrono::sys_seconds utc(int y, unsigned m, unsigned d, int h, int min) {
  return chrono::sys_days(chrono::year(y) / chrono::month(m) / chrono::day(d)) + chrono::hours(h) +
         chrono::minutes(min);
}

chrono::local_seconds local(int y, unsigned m, unsigned d, int h, int min) {
  return chrono::local_days(chrono::year(y) / chrono::month(m) / chrono::day(d)) +
         chrono::hours(h) + chrono::minutes(min);
}

TEST(TimeZone, NewYorkWinterAndSummerOffsets) {
  auto ny = zone("America/New_York");
  EXPECT_EQ(ny.offset_at(utc(2026, 1, 15, 12, 0)), chrono::hours(-5));
  EXPECT_EQ(ny.offset_at(utc(2026, 7, 15, 12, 0)), chrono::hours(-4));
}

TEST(TimeZone, AfterTheLastTransitionTheFooterRuleApplies) {
  auto ny = zone("America/New_York");
  EXPECT_EQ(ny.offset_at(utc(2051, 7, 1, 12, 0)), chrono::hours(-4));
  EXPECT_EQ(ny.offset_at(utc(2051, 12, 1, 12, 0)), chrono::hours(-5));
}

TEST(TimeZone, SouthernHemisphereSummerIsInJanuary) {
  auto sydney = zone("Australia/Sydney");
  EXPECT_EQ(sydney.offset_at(utc(2026, 1, 15, 0, 0)), chrono::hours(11));
  EXPECT_EQ(sydney.offset_at(utc(2026, 7, 15, 0, 0)), chrono::hours(10));
  EXPECT_EQ(sydney.offset_at(utc(2060, 1, 15, 0, 0)), chrono::hours(11));
}

TEST(TimeZone, AmbiguousLocalTimeTakesTheEarlierInstant) {
  // 2026-11-01 01:30 happens twice in New York; the first is EDT (-04:00).
  auto ny = zone("America/New_York");
  EXPECT_EQ(ny.to_utc(local(2026, 11, 1, 1, 30)), utc(2026, 11, 1, 5, 30));
}

TEST(TimeZone, SkippedLocalTimeMovesForwardByTheGap) {
  // 2026-03-08 02:30 does not exist in New York; it is read as 03:30 EDT (07:30Z).
  auto ny = zone("America/New_York");
  EXPECT_EQ(ny.to_utc(local(2026, 3, 8, 2, 30)), utc(2026, 3, 8, 7, 30));
}

TEST(TimeZone, AfterTheLastTransitionGapsAndOverlapsFollowTheRule) {
  // Debian's zone files list transitions up to 2037; in 2051 only the footer rule knows that
  // 02:30 on 12 March is skipped and 01:30 on 5 November happens twice.
  auto ny = zone("America/New_York");
  EXPECT_EQ(ny.to_utc(local(2051, 3, 12, 2, 30)), utc(2051, 3, 12, 7, 30));
  EXPECT_EQ(ny.to_utc(local(2051, 11, 5, 1, 30)), utc(2051, 11, 5, 5, 30));
  EXPECT_EQ(ny.to_utc(local(2051, 7, 1, 12, 0)), utc(2051, 7, 1, 16, 0));
}

TEST(TimeZone, AZoneWithoutDaylightSavingHasOneOffset) {
  auto kolkata = zone("Asia/Kolkata");
  EXPECT_EQ(kolkata.offset_at(utc(2026, 1, 15, 0, 0)), chrono::hours(5) + chrono::minutes(30));
  EXPECT_EQ(kolkata.offset_at(utc(2060, 7, 15, 0, 0)), chrono::hours(5) + chrono::minutes(30));
  EXPECT_EQ(zone("UTC").offset_at(utc(2026, 7, 15, 0, 0)), chrono::seconds(0));
}

TEST(TimeZone, UnknownZoneIsAConfigErrorNamingIt) {
  auto z = TimeZone::load("Mars/Olympus_Mons");
  ASSERT_FALSE(z);
  EXPECT_EQ(z.error().kind, ErrorKind::kConfig);
  EXPECT_NE(z.error().message.find("Mars/Olympus_Mons"), std::string::npos);
  EXPECT_FALSE(TimeZone::load("../../etc/passwd"));
  EXPECT_FALSE(TimeZone::load(""));
}

TEST(DtmToRfc3339, SenderOffsetIsKeptAsSent) {
  auto chicago = zone("America/Chicago");
  EXPECT_EQ(dtm_to_rfc3339("20261120100000-0500", &chicago), "2026-11-20T10:00:00-05:00");
}

TEST(DtmToRfc3339, NoOffsetAndNoZoneGivesTheDateOnly) {
  EXPECT_EQ(dtm_to_rfc3339("20261120100000"), "2026-11-20");
}

TEST(DtmToRfc3339, NoOffsetIsReadInTheSendersZone) {
  auto chicago = zone("America/Chicago");
  EXPECT_EQ(dtm_to_rfc3339("20261120100000", &chicago), "2026-11-20T10:00:00-06:00");
  EXPECT_EQ(dtm_to_rfc3339("202607011000", &chicago), "2026-07-01T10:00:00-05:00");
  auto ny = zone("America/New_York");
  EXPECT_EQ(dtm_to_rfc3339("20261122090000", &ny), "2026-11-22T09:00:00-05:00");
}

TEST(DtmToRfc3339, SkippedHourIsShownAsTheRealInstant) {
  auto ny = zone("America/New_York");
  EXPECT_EQ(dtm_to_rfc3339("20260308023000", &ny), "2026-03-08T03:30:00-04:00");
}

TEST(DtmToRfc3339, MalformedValuesGiveNothing) {
  EXPECT_EQ(dtm_to_rfc3339("20261340"), "");
  EXPECT_EQ(dtm_to_rfc3339("202611202500"), "");
  EXPECT_EQ(dtm_to_rfc3339("202611202561"), "");
}

}  // namespace
}  // namespace sdoh::hl7v2
