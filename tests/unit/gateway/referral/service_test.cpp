// gateway/referral/service.cpp: the referral service decides every move of a referral, whoever
// asks. Driven directly: every transition of the lifecycle table, who may make it, holds,
// routing, consent release and revocation, the clinic's cancel, overdue, and what a change adds
// to a commit (the optimistic lock included).
#include "gateway/referral/service.hpp"

#include <string>

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>

namespace sdoh::referral {
namespace {

using mapping::ReferralStatus;
using namespace std::chrono_literals;

constexpr const char* kAgency = "wic-durham";

std::string field(const std::string& json, const char* pointer) {
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  if (doc.HasParseError()) return "<invalid>";
  const auto* v = rapidjson::Pointer(pointer).Get(doc);
  if (v == nullptr) return "<absent>";
  if (v->IsString()) return v->GetString();
  if (v->IsInt()) return std::to_string(v->GetInt());
  if (v->IsNull()) return "<null>";
  return "<other>";
}

Referral referral(ReferralStatus status, std::string business_status = "",
                  std::string agency = kAgency, int sequence = 3) {
  Referral r;
  r.id = "r1";
  r.status = status;
  r.business_status = std::move(business_status);
  r.sequence = sequence;
  r.agency_id = std::move(agency);
  r.category = "food-insecurity";
  r.stored.clinic_number_system = "urn:clinic";
  r.stored.clinic_number_value = "R-1";
  r.stored.return_to = "EHR^PEDS";
  return r;
}

pipeline::ResourceRow task_row(std::string status = "requested") {
  return {"Task",
          "r1",
          4,
          "2026-12-01T00:00:00Z",
          R"({"resourceType":"Task","id":"r1","status":")" + status +
              R"(","intent":"order","owner":{"reference":"Organization/wic-durham"}})",
          "clinic-a"};
}

Move move(Actor by, ReferralStatus to, std::string business_status = "") {
  Move m;
  m.by = {by, by == Actor::kAgency ? kAgency : by == Actor::kClinic ? "peds-a" : "overdue"};
  m.status = to;
  m.business_status = std::move(business_status);
  return m;
}

class ReferralServiceTest : public ::testing::Test {
 protected:
  Service service_{{"gw-test", "sdoh.referral-status.v1"}};
  const std::string now_ = "2026-12-07T10:00:00Z";
};

TEST_F(ReferralServiceTest, EveryTransitionOfTheTableIsAllowedToItsPartyAndNoOtherParty) {
  int rows = 0;
  for (const auto& row : mapping::transitions()) {
    ++rows;
    for (auto by : {Actor::kAgency, Actor::kClinic, Actor::kGateway}) {
      const auto task = task_row(std::string(mapping::to_string(row.from)));
      auto out = service_.transition(referral(row.from), &task, move(by, row.to), now_);
      const auto label = std::string(mapping::to_string(row.from)) + " → " +
                         std::string(mapping::to_string(row.to)) + " by " +
                         std::string(mapping::to_string(by));
      if (by == row.by) {
        ASSERT_TRUE(out) << label << ": " << out.error().message;
        EXPECT_FALSE(out->unchanged) << label;
        EXPECT_EQ(out->after.status, row.to) << label;
        EXPECT_EQ(out->transition.previous, row.from) << label;
        EXPECT_EQ(out->transition.sequence, 4) << label;
        EXPECT_EQ(out->transition.updated_by_role, mapping::to_string(by)) << label;
      } else {
        // The same pair may have a row for another party too (none today); otherwise refused.
        bool other_row = false;
        for (const auto& r : mapping::transitions()) {
          other_row |= r.from == row.from && r.to == row.to && r.by == by;
        }
        if (!other_row) {
          EXPECT_FALSE(out) << label;
        }
      }
    }
  }
  EXPECT_GT(rows, 8);
}

TEST_F(ReferralServiceTest, AChangeMovesTheTaskAndNamesWhoMadeIt) {
  const auto task = task_row();
  auto m = move(Actor::kAgency, ReferralStatus::kAccepted, "scheduled");
  m.reason = "first visit booked";
  m.note = "call after 3pm";
  auto out = service_.transition(referral(ReferralStatus::kReceived), &task, m, now_);
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_TRUE(out->task);
  EXPECT_EQ(out->task->version, 5);
  EXPECT_EQ(out->task->expected_version, 4);
  EXPECT_EQ(out->task->source, "clinic-a");
  EXPECT_EQ(field(out->task->json, "/status"), "accepted");
  EXPECT_EQ(field(out->task->json, "/businessStatus/coding/0/code"), "scheduled");
  EXPECT_EQ(field(out->task->json, "/statusReason/text"), "first visit booked");
  EXPECT_EQ(field(out->task->json, "/note/0/text"), "call after 3pm");
  EXPECT_EQ(out->transition.updated_by_id, kAgency);
  EXPECT_EQ(out->transition.business_status, "scheduled");
  EXPECT_EQ(out->transition.time, now_);
  EXPECT_EQ(out->after.sequence, 4);
  EXPECT_EQ(out->after.business_status, "scheduled");
}

TEST_F(ReferralServiceTest, AnAgencyMovesOnlyItsOwnReferrals) {
  const auto task = task_row();
  auto m = move(Actor::kAgency, ReferralStatus::kReceived);
  m.by.id = "ehv-durham";
  auto out = service_.transition(referral(ReferralStatus::kRequested), &task, m, now_);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().kind, Refusal::Kind::kForbidden);
}

TEST_F(ReferralServiceTest, WhoMayNotIsABusinessRuleAndFromAFinalStatusAConflict) {
  const auto task = task_row();
  auto clinic_accepts = service_.transition(referral(ReferralStatus::kReceived), &task,
                                            move(Actor::kClinic, ReferralStatus::kAccepted), now_);
  ASSERT_FALSE(clinic_accepts);
  EXPECT_EQ(clinic_accepts.error().kind, Refusal::Kind::kBusinessRule);
  EXPECT_EQ(clinic_accepts.error().why, mapping::Refusal::kWrongActor);
  auto agency_cancels = service_.transition(referral(ReferralStatus::kAccepted), &task,
                                            move(Actor::kAgency, ReferralStatus::kCancelled), now_);
  ASSERT_FALSE(agency_cancels);
  EXPECT_EQ(agency_cancels.error().kind, Refusal::Kind::kBusinessRule);
  auto after_final = service_.transition(referral(ReferralStatus::kCompleted), &task,
                                         move(Actor::kAgency, ReferralStatus::kInProgress), now_);
  ASSERT_FALSE(after_final);
  EXPECT_EQ(after_final.error().kind, Refusal::Kind::kConflict);
  EXPECT_EQ(after_final.error().why, mapping::Refusal::kFinal);
  auto skipped = service_.transition(referral(ReferralStatus::kRequested), &task,
                                     move(Actor::kAgency, ReferralStatus::kCompleted), now_);
  ASSERT_FALSE(skipped);
  EXPECT_EQ(skipped.error().why, mapping::Refusal::kNotInTable);
}

TEST_F(ReferralServiceTest, BusinessStatusMustGoWithTheStatusAndOnlyTheGatewaySetsItsOwn) {
  const auto task = task_row();
  auto wrong =
      service_.transition(referral(ReferralStatus::kReceived), &task,
                          move(Actor::kAgency, ReferralStatus::kAccepted, "overdue"), now_);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind, Refusal::Kind::kBusinessRule);
  EXPECT_EQ(wrong.error().field, mapping::LifecycleField::kBusinessStatus);
  auto unknown =
      service_.transition(referral(ReferralStatus::kReceived), &task,
                          move(Actor::kAgency, ReferralStatus::kAccepted, "no-such-code"), now_);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().why, mapping::Refusal::kUnknownBusinessStatus);
}

TEST_F(ReferralServiceTest, ACodeThatDoesNotGoWithTheNewStatusIsNotCarriedIntoIt) {
  const auto task = task_row();
  // The overdue alert stays on a requested referral; receiving it ends the alert.
  auto out = service_.transition(referral(ReferralStatus::kRequested, "overdue"), &task,
                                 move(Actor::kAgency, ReferralStatus::kReceived, "overdue"), now_);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(out->after.business_status, "");
  EXPECT_EQ(field(out->task->json, "/businessStatus"), "<absent>");
}

TEST_F(ReferralServiceTest, ARepeatChangesNothingAndWritesNothing) {
  const auto task = task_row("accepted");
  auto out =
      service_.transition(referral(ReferralStatus::kAccepted, "scheduled"), &task,
                          move(Actor::kAgency, ReferralStatus::kAccepted, "scheduled"), now_);
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->unchanged);
  EXPECT_FALSE(out->task);
  pipeline::CommitRequest commit;
  service_.add_to(commit, *out, now_);
  EXPECT_TRUE(commit.events.empty());
  EXPECT_TRUE(commit.referrals.empty());
  EXPECT_TRUE(commit.resources.empty());
}

TEST_F(ReferralServiceTest, ATaskAsThePartyWroteItIsKeptWithTheGatewaysCode) {
  const auto task = task_row("received");
  auto m = move(Actor::kAgency, ReferralStatus::kAccepted, "scheduled");
  m.task_json = R"({"resourceType":"Task","id":"r1","status":"accepted","intent":"order",)"
                R"("businessStatus":{"text":"Visit booked"},"note":[{"text":"hi"}]})";
  auto out = service_.transition(referral(ReferralStatus::kReceived), &task, m, now_);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(field(out->task->json, "/note/0/text"), "hi");
  EXPECT_EQ(field(out->task->json, "/businessStatus/coding/0/code"), "scheduled");
  EXPECT_EQ(field(out->task->json, "/businessStatus/text"), "Visit booked");
  EXPECT_EQ(field(out->task->json, "/meta/versionId"), "5");
}

TEST_F(ReferralServiceTest, AnUnreadableTaskRefusesTheChange) {
  auto task = task_row();
  task.json = "not json";
  auto out = service_.transition(referral(ReferralStatus::kRequested), &task,
                                 move(Actor::kAgency, ReferralStatus::kReceived), now_);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().kind, Refusal::Kind::kTaskUnreadable);
}

TEST_F(ReferralServiceTest, TheClinicCancelsItsReferralEvenWhileHeld) {
  const auto task = task_row();
  auto out = service_.cancel(referral(ReferralStatus::kRequested, "no-route", ""), &task,
                             {Actor::kClinic, "peds-a"}, "family moved", now_);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(out->after.status, ReferralStatus::kCancelled);
  EXPECT_EQ(out->after.business_status, "");  // no-route does not follow it into cancelled
  EXPECT_EQ(out->transition.updated_by_role, "clinic");
  EXPECT_EQ(out->transition.reason, "family moved");
  auto again = service_.cancel(out->after, &task, {Actor::kClinic, "peds-a"}, "", now_);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->unchanged);  // a resent cancel
  auto done = service_.cancel(referral(ReferralStatus::kCompleted), &task,
                              {Actor::kClinic, "peds-a"}, "", now_);
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().kind, Refusal::Kind::kConflict);
}

TEST_F(ReferralServiceTest, AHeldReferralIsMovedOnlyByRoutingOrTheClinic) {
  const auto task = task_row();
  const auto held = referral(ReferralStatus::kRequested, "no-route", "");
  auto agency =
      service_.transition(held, &task, move(Actor::kAgency, ReferralStatus::kReceived), now_);
  EXPECT_FALSE(agency);
  auto routed = service_.route(held, &task, kAgency, "WIC Durham", true, now_);
  ASSERT_TRUE(routed);
  EXPECT_EQ(routed->after.agency_id, kAgency);
  EXPECT_EQ(routed->after.business_status, "");
  EXPECT_EQ(routed->transition.updated_by_id, "routing");
  EXPECT_EQ(routed->transition.agency_id, kAgency);
  EXPECT_EQ(field(routed->task->json, "/owner/reference"), "Organization/wic-durham");
  EXPECT_EQ(field(routed->task->json, "/owner/display"), "WIC Durham");
  auto without_consent = service_.route(held, &task, kAgency, "", false, now_);
  ASSERT_TRUE(without_consent);
  EXPECT_EQ(without_consent->after.business_status, "awaiting-consent");
  EXPECT_FALSE(
      service_.route(referral(ReferralStatus::kRequested), &task, kAgency, "", true, now_));
}

TEST_F(ReferralServiceTest, AnUncategorisedReferralOpensHeldWhateverItsConsent) {
  auto r = referral(ReferralStatus::kRequested, std::string(mapping::kUncategorised), "");
  r.category = std::string(mapping::kUnspecifiedCategory);
  auto opened = service_.open(r, true, {Actor::kClinic, "peds-a"}, "");
  EXPECT_EQ(opened.after.business_status, "uncategorised");
  EXPECT_EQ(opened.transition.business_status, "uncategorised");
  EXPECT_EQ(opened.transition.category, "sdoh-category-unspecified");
  EXPECT_EQ(opened.transition.updated_by_role, "gateway");
  EXPECT_TRUE(mapping::held(opened.after.lifecycle()));
  // Without the marker, a referral without an agency is held for no route as before.
  auto plain = referral(ReferralStatus::kRequested, "", "");
  EXPECT_EQ(service_.open(plain, true, {Actor::kClinic, "peds-a"}, "").after.business_status,
            "no-route");
}

TEST_F(ReferralServiceTest, ATranslatedNeedReleasesAnUncategorisedReferral) {
  auto held = referral(ReferralStatus::kRequested, std::string(mapping::kUncategorised), "");
  held.category = std::string(mapping::kUnspecifiedCategory);
  const auto task = task_row();
  // To the agency the clinic named (or routing found), with consent on file: waiting for it.
  auto sent = service_.categorise(held, &task, "educational-attainment", "ei-durham",
                                  "Early Intervention Durham", true, now_);
  ASSERT_TRUE(sent);
  EXPECT_EQ(sent->after.category, "educational-attainment");
  EXPECT_EQ(sent->after.agency_id, "ei-durham");
  EXPECT_EQ(sent->after.business_status, "");
  EXPECT_EQ(sent->transition.category, "educational-attainment");
  EXPECT_EQ(sent->transition.business_status, "");
  EXPECT_EQ(sent->transition.updated_by_id, "routing");
  EXPECT_EQ(sent->after.sequence, held.sequence + 1);
  EXPECT_EQ(field(sent->task->json, "/reasonCode/coding/0/code"), "educational-attainment");
  EXPECT_EQ(field(sent->task->json, "/owner/reference"), "Organization/ei-durham");
  EXPECT_EQ(field(sent->task->json, "/businessStatus"), "<absent>");
  // Without consent: the agency has it without contact details.
  auto waiting = service_.categorise(held, &task, "stress", "ehv-durham", "", false, now_);
  ASSERT_TRUE(waiting);
  EXPECT_EQ(waiting->after.business_status, "awaiting-consent");
  // No agency named and no route: held for no route now, with its need known.
  auto unrouted = service_.categorise(held, &task, "stress", "", "", true, now_);
  ASSERT_TRUE(unrouted);
  EXPECT_EQ(unrouted->after.business_status, "no-route");
  EXPECT_EQ(unrouted->after.category, "stress");
  EXPECT_EQ(field(unrouted->task->json, "/businessStatus/coding/0/code"), "no-route");
  // Only a referral held uncategorised is categorised.
  EXPECT_FALSE(service_.categorise(referral(ReferralStatus::kRequested, "no-route", ""), &task,
                                   "stress", "ehv-durham", "", true, now_));
  EXPECT_FALSE(service_.categorise(held, &task, "", "ehv-durham", "", true, now_));
}

TEST_F(ReferralServiceTest, NoAgencyMovesAnUncategorisedReferral) {
  auto held = referral(ReferralStatus::kRequested, std::string(mapping::kUncategorised), "");
  const auto task = task_row();
  auto out =
      service_.transition(held, &task, move(Actor::kAgency, ReferralStatus::kAccepted), now_);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().kind, Refusal::Kind::kForbidden);  // no agency owns it
  // Not even one that it names: held means held.
  auto named = held;
  named.agency_id = kAgency;
  auto refused =
      service_.transition(named, &task, move(Actor::kAgency, ReferralStatus::kAccepted), now_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, Refusal::Kind::kConflict);
  // The clinic can still cancel it.
  EXPECT_TRUE(service_.cancel(held, &task, {Actor::kClinic, "peds-a"}, "", now_));
}

TEST_F(ReferralServiceTest, ConsentReleasesAWaitingReferralAndRevocationHoldsItAgain) {
  const auto task = task_row();
  auto released =
      service_.consent(referral(ReferralStatus::kRequested, "awaiting-consent"), &task, true, now_);
  ASSERT_TRUE(released);
  EXPECT_EQ(released->after.business_status, "");
  EXPECT_EQ(released->transition.updated_by_role, "gateway");
  EXPECT_EQ(released->transition.updated_by_id, "consent");
  auto held = service_.consent(referral(ReferralStatus::kRequested), &task, false, now_);
  ASSERT_TRUE(held);
  EXPECT_EQ(held->after.business_status, "awaiting-consent");
  EXPECT_EQ(field(held->task->json, "/businessStatus/coding/0/code"), "awaiting-consent");
  // Nothing to do: already so, no longer waiting, or no agency to give consent to.
  EXPECT_FALSE(service_.consent(referral(ReferralStatus::kRequested), &task, true, now_));
  EXPECT_FALSE(service_.consent(referral(ReferralStatus::kAccepted), &task, false, now_));
  EXPECT_FALSE(
      service_.consent(referral(ReferralStatus::kRequested, "no-route", ""), &task, true, now_));
}

TEST_F(ReferralServiceTest, OverdueIsRaisedOnceAndOnlyWhenDue) {
  const auto task = task_row();
  const auto now = mapping::Clock::now();
  auto due = service_.overdue(referral(ReferralStatus::kRequested), &task, now - 2h, 1h, now, now_);
  ASSERT_TRUE(due);
  EXPECT_EQ(due->after.business_status, "overdue");
  EXPECT_TRUE(due->after.stored.overdue);
  EXPECT_EQ(due->transition.updated_by_id, "overdue");
  EXPECT_FALSE(
      service_.overdue(referral(ReferralStatus::kRequested), &task, now - 30min, 1h, now, now_));
  EXPECT_FALSE(service_.overdue(due->after, &task, now - 5h, 1h, now, now_));  // raised once
  EXPECT_FALSE(service_.overdue(referral(ReferralStatus::kRequested, "awaiting-consent"), &task,
                                now - 5h, 1h, now, now_));  // held: the SLA waits
}

TEST_F(ReferralServiceTest, OpeningGivesTheFirstStateAndWhoAnnouncedIt) {
  auto r = referral(ReferralStatus::kRequested);
  auto routed = service_.open(r, true, {Actor::kClinic, "peds-a"}, "2026-12-07T09:00:00-05:00");
  EXPECT_EQ(routed.after.sequence, 1);
  EXPECT_EQ(routed.after.business_status, "");
  EXPECT_EQ(routed.transition.updated_by_role, "clinic");
  EXPECT_EQ(routed.transition.time, "2026-12-07T09:00:00-05:00");
  EXPECT_FALSE(routed.transition.previous);
  EXPECT_EQ(service_.open(r, false, {Actor::kClinic, "peds-a"}, "").after.business_status,
            "awaiting-consent");
  auto held = service_.open(referral(ReferralStatus::kRequested, "", ""), true,
                            {Actor::kClinic, "peds-a"}, "");
  EXPECT_EQ(held.after.business_status, "no-route");
  EXPECT_EQ(held.transition.updated_by_role + "/" + held.transition.updated_by_id,
            "gateway/routing");
  pipeline::CommitRequest commit;
  service_.add_to(commit, held, now_);
  ASSERT_EQ(commit.referrals.size(), 1u);
  EXPECT_EQ(commit.referrals[0].expected_sequence, 0);      // only if no referral has its id
  EXPECT_EQ(field(commit.events[0].value, "/time"), now_);  // no time given: when received
}

TEST_F(ReferralServiceTest, ACommittedChangeIsLockedToTheSequenceItWasDecidedFrom) {
  const auto task = task_row();
  auto out = service_.transition(referral(ReferralStatus::kRequested, "", kAgency, 7), &task,
                                 move(Actor::kAgency, ReferralStatus::kReceived), now_);
  ASSERT_TRUE(out);
  pipeline::CommitRequest commit;
  service_.add_to(commit, *out, now_);
  ASSERT_EQ(commit.referrals.size(), 1u);
  EXPECT_EQ(commit.referrals[0].expected_sequence, 7);
  EXPECT_EQ(commit.referrals[0].sequence, 8);
  EXPECT_EQ(commit.referrals[0].status, "received");
  EXPECT_EQ(commit.referrals[0].return_to, "EHR^PEDS");  // the rest of the state is kept
  ASSERT_EQ(commit.resources.size(), 1u);
  EXPECT_EQ(commit.resources[0].expected_version, 4);
  ASSERT_EQ(commit.events.size(), 1u);
  EXPECT_EQ(commit.events[0].topic, "sdoh.referral-status.v1");
  EXPECT_EQ(commit.events[0].key, "r1");
  EXPECT_EQ(field(commit.events[0].value, "/data/sequence"), "8");
  // The same change decided again (a resend) has the same event id: consumers dedupe on it.
  pipeline::CommitRequest again;
  service_.add_to(again, *out, now_);
  EXPECT_EQ(again.events[0].event_id, commit.events[0].event_id);
}

}  // namespace
}  // namespace sdoh::referral

namespace sdoh::referral {
namespace {

TEST(ReferralServiceReroute, OnlyWhileNoAgencyHasReceivedIt) {
  const Service service({"gw-test", "sdoh.referral-status.v1"});
  const auto task = task_row();
  const Party clinic{Actor::kClinic, "peds-a"};
  const std::string now = "2026-12-07T10:00:00Z";
  auto moved = service.reroute(referral(ReferralStatus::kRequested, "overdue"), &task, clinic,
                               "ehv-durham", "EHV", true, now);
  ASSERT_TRUE(moved) << moved.error().message;
  EXPECT_EQ(moved->after.agency_id, "ehv-durham");
  EXPECT_EQ(moved->after.business_status, "");  // the old agency's overdue alert is not carried
  EXPECT_EQ(moved->transition.agency_id, "ehv-durham");
  EXPECT_EQ(moved->transition.updated_by_role, "clinic");
  EXPECT_EQ(field(moved->task->json, "/owner/reference"), "Organization/ehv-durham");
  auto same =
      service.reroute(referral(ReferralStatus::kRequested), &task, clinic, kAgency, "", true, now);
  ASSERT_TRUE(same);
  EXPECT_TRUE(same->unchanged);
  auto held = service.reroute(referral(ReferralStatus::kRequested, "no-route", ""), &task, clinic,
                              "ehv-durham", "", false, now);
  ASSERT_TRUE(held);
  EXPECT_EQ(held->transition.updated_by_id, "routing");  // a held referral is routed
  EXPECT_EQ(held->after.business_status, "awaiting-consent");
  auto received = service.reroute(referral(ReferralStatus::kReceived), &task, clinic, "ehv-durham",
                                  "", true, now);
  ASSERT_FALSE(received);
  EXPECT_EQ(received.error().kind, Refusal::Kind::kConflict);
}

}  // namespace
}  // namespace sdoh::referral
