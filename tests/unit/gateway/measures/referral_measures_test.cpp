// The funnel, times, overdue and held figures (gateway/measures/referral_measures.cpp), and the
// equity view (equity.cpp), over timelines written out by hand.
#include "gateway/measures/referral_measures.hpp"

#include <gtest/gtest.h>

#include "gateway/measures/equity.hpp"

namespace sdoh::measures {
namespace {

constexpr std::int64_t kHour = 3'600'000;
constexpr std::int64_t kDay = 24 * kHour;
constexpr std::int64_t kNow = 100 * kDay;

ReferralTimeline timeline(std::string id, std::string agency, std::string status,
                          std::int64_t released, std::int64_t accepted = 0,
                          std::int64_t closed = 0) {
  ReferralTimeline t;
  t.referral_id = std::move(id);
  t.agency = std::move(agency);
  t.category = "food-insecurity";
  t.status = status;
  t.created_ms = released;
  t.released_ms = released;
  t.accepted_ms = accepted;
  t.received_ms = accepted;
  t.closed_ms = closed;
  if (status == "completed" || status == "rejected" || status == "failed" || status == "cancelled")
    t.outcome = status;
  return t;
}

const Window kWindow{kNow - 30 * kDay, kNow};

TEST(Quantile, MedianOfAnEvenCountIsBetweenTheMiddleTwo) {
  EXPECT_EQ(*quantile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_EQ(*quantile({1, 2, 3}, 0.5), 2);
  EXPECT_FALSE(quantile({}, 0.5));
}

TEST(Quantile, P90InterpolatesBetweenNearestRanks) {
  std::vector<double> ten{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_DOUBLE_EQ(*quantile(ten, 0.9), 9.1);
  EXPECT_EQ(*quantile({7}, 0.9), 7);
}

TEST(Funnel, IsMonotoneAndCountsEveryEnd) {
  std::vector<ReferralTimeline> t{
      timeline("a", "ehv", "requested", kNow - kDay),
      timeline("b", "ehv", "completed", kNow - 2 * kDay, kNow - kDay, kNow - kHour),
      timeline("c", "ehv", "rejected", kNow - 2 * kDay, 0, kNow - kDay),
      timeline("d", "ehv", "cancelled", kNow - 2 * kDay, 0, kNow - kDay),
  };
  t[2].received_ms = kNow - kDay;  // rejected after receiving it
  // Completed without any step recorded (a timeline filled from an older store): still counted
  // as received and accepted.
  auto e = timeline("e", "ehv", "completed", kNow - 3 * kDay, 0, kNow - kDay);
  t.push_back(e);
  const auto rows = funnel(t, kWindow);
  ASSERT_EQ(rows.size(), 4u);  // (ehv, food), (ehv, *), (*, food), (*, *)
  const auto& r = rows.front();
  EXPECT_EQ(r.agency, "ehv");
  EXPECT_EQ(r.category, "food-insecurity");
  EXPECT_EQ(r.requested, 5);
  EXPECT_EQ(r.received, 3);
  EXPECT_EQ(r.accepted, 2);
  EXPECT_EQ(r.completed, 2);
  EXPECT_EQ(r.rejected, 1);
  EXPECT_EQ(r.cancelled, 1);
  EXPECT_EQ(r.failed, 0);
  EXPECT_EQ(r.open, 1);
  EXPECT_EQ(rows.back().agency, "*");
  EXPECT_EQ(rows.back().category, "*");
  EXPECT_EQ(rows.back().requested, 5);
}

TEST(Funnel, CountsOnlyReferralsReleasedInTheWindow) {
  std::vector<ReferralTimeline> t{
      timeline("in", "ehv", "requested", kWindow.from_ms),          // on the boundary: in
      timeline("before", "ehv", "requested", kWindow.from_ms - 1),  // a millisecond before: out
      timeline("held", "ehv", "requested", 0),                      // never released: out
  };
  t[2].created_ms = kNow - kDay;
  t[2].business_status = "awaiting-consent";
  const auto rows = funnel(t, kWindow);
  EXPECT_EQ(rows.back().requested, 1);
}

TEST(Times, AreMeasuredFromReleasePerAgency) {
  std::vector<ReferralTimeline> t{
      timeline("a", "ehv", "accepted", kNow - 10 * kDay, kNow - 10 * kDay + kHour),
      timeline("b", "ehv", "completed", kNow - 10 * kDay, kNow - 10 * kDay + 3 * kHour,
               kNow - 4 * kDay),
      timeline("c", "wic", "requested", kNow - kDay),
  };
  const auto rows = times(t, kWindow);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].agency, "ehv");
  EXPECT_EQ(rows[0].to_accept.count, 2);
  EXPECT_EQ(*rows[0].to_accept.median_seconds, 7200);
  EXPECT_EQ(rows[0].to_complete.count, 1);
  EXPECT_EQ(*rows[0].to_complete.median_seconds, 6 * 86400);
  EXPECT_EQ(rows[1].agency, "wic");
  EXPECT_EQ(rows[1].to_accept.count, 0);
  EXPECT_FALSE(rows[1].to_accept.median_seconds);
  EXPECT_FALSE(rows[1].to_complete.p90_seconds);
}

TEST(Overdue, ListsReferralsWaitingPastTheirAgencysSlaFromRelease) {
  std::vector<ReferralTimeline> t{
      timeline("late", "ehv", "requested", kNow - 4 * kDay),
      timeline("due-now", "ehv", "requested", kNow - 3 * kDay),
      timeline("in-time", "ehv", "requested", kNow - 3 * kDay + 1),
      timeline("received", "ehv", "received", kNow - 9 * kDay, 0),
      timeline("held", "ehv", "requested", kNow - 9 * kDay),
  };
  t[3].received_ms = kNow - 8 * kDay;
  t[4].business_status = "awaiting-consent";
  const auto rows = overdue(t, kNow, [](std::string_view) { return std::chrono::hours(72); });
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].referral_id, "late");
  EXPECT_EQ(rows[0].due_ms, kNow - kDay);
  EXPECT_EQ(rows[0].overdue_seconds, 86400);
  EXPECT_EQ(rows[1].referral_id, "due-now");
  EXPECT_EQ(rows[1].overdue_seconds, 0);
}

TEST(Held, CountsEachReasonAlwaysListingAllThree) {
  std::vector<ReferralTimeline> t{timeline("a", "", "requested", 0),
                                  timeline("b", "", "requested", 0),
                                  timeline("c", "ehv", "requested", kNow)};
  t[0].business_status = "no-route";
  t[1].business_status = "no-route";
  const auto h = held(t);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].reason, "no-route");
  EXPECT_EQ(h[0].count, 2);
  EXPECT_EQ(h[1].reason, "awaiting-consent");
  EXPECT_EQ(h[1].count, 0);
  EXPECT_EQ(h[2].reason, "uncategorised");
  EXPECT_EQ(h[2].count, 0);
}

// `n` referrals of a race group, `completed` of them completed `days` after release.
void add_group(std::vector<ReferralTimeline>& t, const std::string& race, int n, int completed,
               int days = 4) {
  for (int i = 0; i < n; ++i) {
    const auto released = kNow - 20 * kDay;
    auto r = i < completed ? timeline(race + std::to_string(i), "ehv", "completed", released,
                                      released + kHour, released + days * kDay)
                           : timeline(race + std::to_string(i), "ehv", "requested", released);
    r.race = race;
    t.push_back(r);
  }
}

TEST(Equity, AGroupOfTenIsSuppressedAndOfElevenShown) {
  std::vector<ReferralTimeline> t;
  add_group(t, "2054-5", 11, 4);
  add_group(t, "2028-9", 10, 10);
  const auto e = equity(t, kWindow, 11);
  const auto& race = e.dimensions[0];
  ASSERT_EQ(race.dimension, "race");
  ASSERT_EQ(race.groups.size(), 2u);
  EXPECT_EQ(race.groups[0].group, "2028-9");
  EXPECT_EQ(race.groups[0].label, "Asian");
  EXPECT_TRUE(race.groups[0].suppressed);
  EXPECT_FALSE(race.groups[0].gap_vs_overall);
  EXPECT_EQ(race.groups[1].group, "2054-5");
  EXPECT_FALSE(race.groups[1].suppressed);
  EXPECT_EQ(race.groups[1].figures.referrals, 11);
  EXPECT_EQ(race.groups[1].figures.completed, 4);
  // The overall figures count every referral, suppressed groups' too.
  EXPECT_EQ(e.overall.referrals, 21);
  EXPECT_EQ(e.overall.completed, 14);
  EXPECT_DOUBLE_EQ(*race.groups[1].gap_vs_overall, 4.0 / 11 - 14.0 / 21);
  ASSERT_TRUE(race.largest_gap);
  EXPECT_EQ(race.largest_gap->group, "2054-5");
}

TEST(Equity, MedianDaysToCloseAndUnknownAsAGroup) {
  std::vector<ReferralTimeline> t;
  add_group(t, "", 12, 12, 3);
  const auto e = equity(t, kWindow, 11);
  const auto& race = e.dimensions[0];
  ASSERT_EQ(race.groups.size(), 1u);
  EXPECT_EQ(race.groups[0].group, "unknown");
  EXPECT_EQ(*race.groups[0].figures.completion_rate, 1.0);
  EXPECT_EQ(*race.groups[0].figures.median_days_to_close, 3.0);
  EXPECT_EQ(*race.groups[0].gap_vs_overall, 0.0);
  EXPECT_EQ(e.dimensions[3].dimension, "zip3");
}

TEST(Equity, OneLanguageIsOneGroupWhateverCodeTheClinicSent) {
  ReferralTimeline t;
  for (const auto* code : {"es", "spa", "es-MX", "ES", "SPA"}) {
    t.language = code;
    EXPECT_EQ(group_of(t, "language"), "es") << code;
  }
  t.language = "vie";
  EXPECT_EQ(group_of(t, "language"), "vi");
  EXPECT_EQ(group_label("language", "vi"), "Vietnamese");
  t.language = "hmn";  // no two-letter form: kept as sent
  EXPECT_EQ(group_of(t, "language"), "hmn");
  t.language = "";
  EXPECT_EQ(group_of(t, "language"), "unknown");
}

TEST(Equity, NoLargestGapWhenEveryGroupIsSuppressed) {
  std::vector<ReferralTimeline> t;
  add_group(t, "2106-3", 3, 1);
  const auto e = equity(t, kWindow, 11);
  EXPECT_FALSE(e.dimensions[0].largest_gap);
  EXPECT_EQ(e.overall.referrals, 3);
}

}  // namespace
}  // namespace sdoh::measures
