// A referral's timeline (gateway/measures/timeline.cpp): what each state change marks on it.
#include "gateway/measures/timeline.hpp"

#include <gtest/gtest.h>

namespace sdoh::measures {
namespace {

pipeline::ReferralState state(std::string status, std::string business_status, int sequence,
                              std::string agency = "ehv-durham") {
  pipeline::ReferralState s;
  s.referral_id = "r1";
  s.agency_id = std::move(agency);
  s.category = "food-insecurity";
  s.status = std::move(status);
  s.business_status = std::move(business_status);
  s.sequence = sequence;
  return s;
}

TEST(Timeline, ANewReferralForItsAgencyIsReleasedWhenMade) {
  auto s = state("requested", "", 1);
  s.race = "2054-5";
  s.zip3 = "277";
  s.clinic = "PEDS_CLINIC_A";
  const auto t = advance(std::nullopt, s, 1000);
  EXPECT_EQ(t.created_ms, 1000);
  EXPECT_EQ(t.released_ms, 1000);
  EXPECT_EQ(t.received_ms, 0);
  EXPECT_EQ(t.race, "2054-5");
  EXPECT_EQ(t.zip3, "277");
  EXPECT_EQ(t.clinic, "PEDS_CLINIC_A");
  EXPECT_TRUE(t.open());
}

TEST(Timeline, AHeldReferralIsNotReleasedUntilItsHoldEnds) {
  auto t = advance(std::nullopt, state("requested", "awaiting-consent", 1), 1000);
  EXPECT_EQ(t.released_ms, 0);
  EXPECT_EQ(t.started_ms(), 1000);  // placed in the window by its creation meanwhile
  EXPECT_EQ(t.held_reason(), "awaiting-consent");
  t = advance(t, state("requested", "", 2), 5000);
  EXPECT_EQ(t.released_ms, 5000);
  EXPECT_EQ(t.created_ms, 1000);
  EXPECT_EQ(t.held_reason(), "");
}

TEST(Timeline, AReleaseAfterANewHoldStartsTheClockAgain) {
  auto t = advance(std::nullopt, state("requested", "", 1), 1000);
  t = advance(t, state("requested", "awaiting-consent", 2), 2000);  // consent revoked
  EXPECT_EQ(t.released_ms, 1000);
  t = advance(t, state("requested", "", 3), 9000);  // consent again
  EXPECT_EQ(t.released_ms, 9000);
  t = advance(t, state("accepted", "", 4), 9500);
  EXPECT_EQ(t.accepted_ms - t.released_ms, 500);
}

TEST(Timeline, ANoRouteHoldReleasedByRoutingTakesTheAgency) {
  auto t = advance(std::nullopt, state("requested", "no-route", 1, ""), 1000);
  EXPECT_EQ(t.agency, "");
  EXPECT_EQ(t.held_reason(), "no-route");
  t = advance(t, state("requested", "", 2, "legal-aid"), 4000);
  EXPECT_EQ(t.agency, "legal-aid");
  EXPECT_EQ(t.released_ms, 4000);
}

TEST(Timeline, EachStepIsRecordedOnceAtItsFirstTime) {
  auto t = advance(std::nullopt, state("requested", "", 1), 1000);
  t = advance(t, state("received", "", 2), 2000);
  t = advance(t, state("accepted", "", 3), 3000);
  t = advance(t, state("in-progress", "enrolled", 4), 4000);
  t = advance(t, state("on-hold", "", 5), 5000);
  t = advance(t, state("in-progress", "", 6), 6000);
  t = advance(t, state("completed", "enrolled", 7), 7000);
  EXPECT_EQ(t.released_ms, 1000);
  EXPECT_EQ(t.received_ms, 2000);
  EXPECT_EQ(t.accepted_ms, 3000);
  EXPECT_EQ(t.closed_ms, 7000);
  EXPECT_EQ(t.outcome, "completed");
  EXPECT_EQ(t.status, "completed");
  EXPECT_EQ(t.sequence, 7);
}

TEST(Timeline, AnAcceptanceWithoutReceivedMarksBothSteps) {
  auto t = advance(std::nullopt, state("requested", "", 1), 1000);
  t = advance(t, state("accepted", "family-contacted", 2), 3000);
  EXPECT_EQ(t.received_ms, 3000);
  EXPECT_EQ(t.accepted_ms, 3000);
  EXPECT_TRUE(t.reached_received());
}

TEST(Timeline, AnOverdueAlertIsNotARelease) {
  auto t = advance(std::nullopt, state("requested", "", 1), 1000);
  t = advance(t, state("requested", "overdue", 2), 8000);
  EXPECT_EQ(t.released_ms, 1000);
  EXPECT_EQ(t.business_status, "overdue");
}

TEST(Timeline, AHeldReferralCancelledIsClosedWithoutARelease) {
  auto t = advance(std::nullopt, state("requested", "no-route", 1, ""), 1000);
  t = advance(t, state("cancelled", "", 2, ""), 2000);
  EXPECT_EQ(t.released_ms, 0);
  EXPECT_EQ(t.received_ms, 0);
  EXPECT_EQ(t.outcome, "cancelled");
  EXPECT_EQ(t.closed_ms, 2000);
}

TEST(Timeline, AnOlderStateChangesNothing) {
  auto t = advance(std::nullopt, state("requested", "", 1), 1000);
  t = advance(t, state("accepted", "", 3), 3000);
  const auto again = advance(t, state("received", "", 2), 4000);
  EXPECT_EQ(again.status, "accepted");
  EXPECT_EQ(again.sequence, 3);
}

TEST(Timeline, GroupsAreKeptFromTheFirstStateThatNamesThem) {
  auto first = state("requested", "", 1);
  first.zip3 = "277";
  first.language = "es";
  auto t = advance(std::nullopt, first, 1000);
  auto read_back = state("accepted", "", 2);  // a state read from the store: no ZIP area
  read_back.language = "en";
  t = advance(t, read_back, 2000);
  EXPECT_EQ(t.zip3, "277");
  EXPECT_EQ(t.language, "es");
}

TEST(Timeline, AClinicsReRoutingStartsTheNewAgencysClock) {
  auto t = advance(std::nullopt, state("requested", "", 1, "wic-east"), 1000);
  t = advance(t, state("requested", "", 2, "ehv-durham"), 6000);
  EXPECT_EQ(t.agency, "ehv-durham");
  EXPECT_EQ(t.released_ms, 6000);
}

}  // namespace
}  // namespace sdoh::measures
