// gateway/mapping/lifecycle.cpp: the transition table, who may make each change, the
// businessStatus vocabulary, the gateway's holds and moves, the overdue rule, and that
// schemas/README.md documents exactly the same tables.
#include "gateway/mapping/lifecycle.hpp"

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sdoh::mapping {
namespace {

using ::testing::HasSubstr;
using S = ReferralStatus;
using namespace std::chrono_literals;

const std::vector<S> kAll = {S::kRequested, S::kReceived,   S::kAccepted,
                             S::kRejected,  S::kInProgress, S::kOnHold,
                             S::kCompleted, S::kFailed,     S::kCancelled};
const std::vector<Actor> kActors = {Actor::kAgency, Actor::kClinic, Actor::kGateway};

// ---------------------------------------------------------------------------------------------
// Status transitions (the table)

TEST(Lifecycle, EveryRowOfTheTableIsAllowedToItsActorOnly) {
  for (const auto& t : transitions()) {
    for (auto actor : kActors) {
      auto c = check_transition(t.from, t.to, actor);
      if (actor == t.by) {
        EXPECT_TRUE(c.allowed()) << to_string(t.from) << "->" << to_string(t.to);
      } else {
        EXPECT_EQ(c.verdict, Verdict::kBusinessRule)
            << to_string(t.from) << "->" << to_string(t.to) << " by " << to_string(actor);
        EXPECT_EQ(c.refusal, Refusal::kWrongActor);
      }
    }
  }
}

TEST(Lifecycle, EveryRowIsAlsoAllowedAsAChangeWithoutBusinessStatus) {
  for (const auto& t : transitions()) {
    auto c = check_change({t.from, ""}, {t.to, ""}, t.by);
    EXPECT_TRUE(c.allowed()) << to_string(t.from) << "->" << to_string(t.to) << ": " << c.message;
    EXPECT_FALSE(c.unchanged);
  }
}

TEST(Lifecycle, WhatIsNotInTheTableIsRefusedAsConflict) {
  std::set<std::pair<S, S>> allowed;
  for (const auto& t : transitions())
    allowed.insert({t.from, t.to});
  int refused = 0;
  for (auto from : kAll) {
    for (auto to : kAll) {
      if (from == to || allowed.contains({from, to})) continue;
      for (auto actor : kActors) {
        auto c = check_transition(from, to, actor);
        EXPECT_EQ(c.verdict, Verdict::kConflict) << to_string(from) << "->" << to_string(to);
        EXPECT_FALSE(c.message.empty());
      }
      ++refused;
    }
  }
  EXPECT_EQ(refused, 9 * 8 - 20);
}

TEST(Lifecycle, ASkipOrAStepBackIsAConflictNamingBothStatuses) {
  auto skip = check_transition(S::kRequested, S::kCompleted, Actor::kAgency);
  EXPECT_EQ(skip.verdict, Verdict::kConflict);
  EXPECT_EQ(skip.refusal, Refusal::kNotInTable);
  EXPECT_EQ(skip.message,
            "a referral that is requested cannot become completed (see the referral lifecycle "
            "table)");
  auto back = check_transition(S::kAccepted, S::kRequested, Actor::kAgency);
  EXPECT_EQ(back.verdict, Verdict::kConflict);
  EXPECT_EQ(back.field, LifecycleField::kStatus);
}

TEST(Lifecycle, FinalStatusesChangeNothingNotEvenBusinessStatus) {
  for (auto s : {S::kRejected, S::kCompleted, S::kFailed, S::kCancelled}) {
    EXPECT_TRUE(is_final(s));
    for (auto to : kAll) {
      for (auto actor : kActors) {
        auto c = check_transition(s, to, actor);
        EXPECT_EQ(c.verdict, Verdict::kConflict);
        EXPECT_EQ(c.refusal, Refusal::kFinal);
      }
    }
    auto business = check_change({s, ""}, {s, "declined-by-family"}, Actor::kAgency);
    EXPECT_EQ(business.verdict, Verdict::kConflict);
    EXPECT_EQ(business.refusal, Refusal::kFinal);
  }
  EXPECT_EQ(check_transition(S::kCompleted, S::kInProgress, Actor::kAgency).message,
            "the referral is completed, a final status: nothing changes it any more");
}

TEST(Lifecycle, OnlyTheClinicCancelsOnlyTheAgencyMovesForward) {
  auto agency_cancels = check_transition(S::kAccepted, S::kCancelled, Actor::kAgency);
  EXPECT_EQ(agency_cancels.verdict, Verdict::kBusinessRule);
  EXPECT_EQ(agency_cancels.message,
            "only the clinic that requested the referral may cancel it (agency tried); an agency "
            "rejects or fails it");
  auto clinic_accepts = check_transition(S::kRequested, S::kAccepted, Actor::kClinic);
  EXPECT_EQ(clinic_accepts.verdict, Verdict::kBusinessRule);
  EXPECT_EQ(clinic_accepts.message,
            "only the agency that owns the referral may move it from requested to accepted "
            "(clinic tried)");
  auto gateway_completes = check_transition(S::kInProgress, S::kCompleted, Actor::kGateway);
  EXPECT_EQ(gateway_completes.verdict, Verdict::kBusinessRule);
}

TEST(Lifecycle, TheFirstNamesOfTheVerdictsAreTheSameVerdicts) {
  EXPECT_EQ(Verdict::kNotFromState, Verdict::kConflict);
  EXPECT_EQ(Verdict::kNotThisActor, Verdict::kBusinessRule);
}

TEST(Lifecycle, ActorsReadFromTheirRoleNames) {
  for (auto a : kActors)
    EXPECT_EQ(actor_from(to_string(a)), a);
  EXPECT_EQ(actor_from("cbo"), std::nullopt);
}

TEST(Lifecycle, EveryRefusalHasAName) {
  std::set<std::string_view> names;
  for (auto r : {Refusal::kNone, Refusal::kFinal, Refusal::kNotInTable, Refusal::kHeld,
                 Refusal::kGatewayMove, Refusal::kWrongActor, Refusal::kUnknownBusinessStatus,
                 Refusal::kBusinessStatusMismatch, Refusal::kReservedBusinessStatus}) {
    EXPECT_TRUE(names.insert(to_string(r)).second) << to_string(r);
  }
}

// ---------------------------------------------------------------------------------------------
// Status and businessStatus together

TEST(LifecycleChange, BusinessStatusAloneByTheAgency) {
  auto c = check_change({S::kInProgress, "family-contacted"}, {S::kInProgress, "enrolled"},
                        Actor::kAgency);
  EXPECT_TRUE(c.allowed()) << c.message;
  EXPECT_FALSE(c.unchanged);
  EXPECT_TRUE(
      check_change({S::kAccepted, "scheduled"}, {S::kAccepted, ""}, Actor::kAgency).allowed());
}

TEST(LifecycleChange, BusinessStatusAloneNotByTheClinic) {
  auto c = check_change({S::kAccepted, ""}, {S::kAccepted, "family-contacted"}, Actor::kClinic);
  EXPECT_EQ(c.verdict, Verdict::kBusinessRule);
  EXPECT_EQ(c.refusal, Refusal::kWrongActor);
  EXPECT_EQ(c.field, LifecycleField::kBusinessStatus);
}

TEST(LifecycleChange, NothingChangedIsAllowedAndMakesNoEvent) {
  for (auto s : kAll) {
    for (auto actor : kActors) {
      auto c = check_change({s, "x"}, {s, "x"}, actor);
      EXPECT_TRUE(c.allowed());
      EXPECT_TRUE(c.unchanged);
    }
  }
}

TEST(LifecycleChange, AnUnknownBusinessStatusIsABusinessRuleRefusal) {
  auto c = check_change({S::kAccepted, ""}, {S::kAccepted, "called-mom"}, Actor::kAgency);
  EXPECT_EQ(c.verdict, Verdict::kBusinessRule);
  EXPECT_EQ(c.refusal, Refusal::kUnknownBusinessStatus);
  EXPECT_EQ(c.field, LifecycleField::kBusinessStatus);
  EXPECT_THAT(c.message, HasSubstr("\"called-mom\" is not a referral businessStatus code"));
}

TEST(LifecycleChange, ABusinessStatusMustGoWithTheNewStatus) {
  auto c = check_change({S::kRequested, ""}, {S::kAccepted, "enrolled"}, Actor::kAgency);
  EXPECT_EQ(c.verdict, Verdict::kBusinessRule);
  EXPECT_EQ(c.refusal, Refusal::kBusinessStatusMismatch);
  EXPECT_EQ(c.message,
            "businessStatus \"enrolled\" does not go with status accepted (only with in-progress, "
            "completed)");
  EXPECT_TRUE(
      check_change({S::kAccepted, ""}, {S::kInProgress, "enrolled"}, Actor::kAgency).allowed());
}

TEST(LifecycleChange, AnAgencyHasNoBusinessStatusBeforeItReceivesTheReferral) {
  auto c = check_change({S::kRequested, ""}, {S::kRequested, "family-contacted"}, Actor::kAgency);
  EXPECT_EQ(c.refusal, Refusal::kBusinessStatusMismatch);
}

TEST(LifecycleChange, OnlyTheGatewaySetsItsOwnCodes) {
  for (auto code : {kOverdue, kNoRoute, kUncategorised, kAwaitingConsent}) {
    auto c = check_change({S::kRequested, ""}, {S::kRequested, code}, Actor::kAgency);
    EXPECT_EQ(c.verdict, Verdict::kBusinessRule) << code;
    EXPECT_EQ(c.refusal, Refusal::kReservedBusinessStatus) << code;
  }
}

TEST(LifecycleChange, AnAgencyCannotClearOverdueWithoutAnsweringTheReferral) {
  auto cleared = check_change({S::kRequested, kOverdue}, {S::kRequested, ""}, Actor::kAgency);
  EXPECT_EQ(cleared.verdict, Verdict::kBusinessRule);
  EXPECT_EQ(cleared.refusal, Refusal::kReservedBusinessStatus);
  EXPECT_TRUE(
      check_change({S::kRequested, kOverdue}, {S::kReceived, ""}, Actor::kAgency).allowed());
  EXPECT_TRUE(
      check_change({S::kRequested, kOverdue}, {S::kAccepted, "family-contacted"}, Actor::kAgency)
          .allowed());
}

TEST(LifecycleChange, AClinicCancelsWithItsOwnCodesOnly) {
  EXPECT_TRUE(
      check_change({S::kInProgress, ""}, {S::kCancelled, "declined-by-family"}, Actor::kClinic)
          .allowed());
  EXPECT_TRUE(
      check_change({S::kRequested, ""}, {S::kCancelled, "duplicate-referral"}, Actor::kClinic)
          .allowed());
  auto c = check_change({S::kRequested, ""}, {S::kRejected, "ineligible"}, Actor::kClinic);
  EXPECT_EQ(c.refusal, Refusal::kWrongActor);
  auto code = check_change({S::kOnHold, ""}, {S::kCancelled, "no-capacity"}, Actor::kClinic);
  EXPECT_EQ(code.refusal, Refusal::kBusinessStatusMismatch);
}

TEST(LifecycleChange, ACarriedOverCodeThatDoesNotFitIsRefusedUntilCarriedOver) {
  const LifecycleState from{S::kInProgress, "family-contacted"};
  const LifecycleState asked{S::kCancelled, "family-contacted"};
  auto raw = check_change(from, asked, Actor::kClinic);
  EXPECT_EQ(raw.refusal, Refusal::kBusinessStatusMismatch);
  EXPECT_THAT(raw.message, HasSubstr("send a businessStatus for the new status, or none"));
  const auto carried = carry_over(from, asked);
  EXPECT_EQ(carried, (LifecycleState{S::kCancelled, ""}));
  EXPECT_TRUE(check_change(from, carried, Actor::kClinic).allowed());
}

TEST(LifecycleChange, CarryOverKeepsACodeThatFitsAndWhatWasAskedFor) {
  EXPECT_EQ(carry_over({S::kAccepted, "family-contacted"}, {S::kInProgress, "family-contacted"}),
            (LifecycleState{S::kInProgress, "family-contacted"}));
  EXPECT_EQ(carry_over({S::kRequested, kOverdue}, {S::kReceived, kOverdue}),
            (LifecycleState{S::kReceived, ""}));
  EXPECT_EQ(carry_over({S::kRequested, kOverdue}, {S::kReceived, "waitlisted"}),
            (LifecycleState{S::kReceived, "waitlisted"}));
  // The same status: nothing is carried over, the request is what it asks.
  EXPECT_EQ(carry_over({S::kRequested, kOverdue}, {S::kRequested, kOverdue}),
            (LifecycleState{S::kRequested, kOverdue}));
}

// ---------------------------------------------------------------------------------------------
// Holds and the gateway's moves

TEST(LifecycleHolds, ANewReferralStartsRequestedWithItsHold) {
  EXPECT_EQ(initial_state(true, true), (LifecycleState{S::kRequested, ""}));
  EXPECT_EQ(initial_state(true, false), (LifecycleState{S::kRequested, kAwaitingConsent}));
  EXPECT_EQ(initial_state(false, true), (LifecycleState{S::kRequested, kNoRoute}));
  EXPECT_EQ(initial_state(false, false), (LifecycleState{S::kRequested, kNoRoute}));
}

TEST(LifecycleHolds, HeldMeansNoRouteUncategorisedOrAwaitingConsentWhileRequested) {
  EXPECT_TRUE(held({S::kRequested, kNoRoute}));
  EXPECT_TRUE(held({S::kRequested, kUncategorised}));
  EXPECT_TRUE(held({S::kRequested, kAwaitingConsent}));
  EXPECT_FALSE(held({S::kRequested, ""}));
  EXPECT_FALSE(held({S::kRequested, kOverdue}));
  EXPECT_FALSE(held({S::kAccepted, "family-contacted"}));
}

TEST(LifecycleHolds, NoAgencyMovesAReferralHeldForNoRoute) {
  for (auto to : {S::kReceived, S::kAccepted, S::kRejected}) {
    auto c = check_change({S::kRequested, kNoRoute}, {to, ""}, Actor::kAgency);
    EXPECT_EQ(c.verdict, Verdict::kConflict) << to_string(to);
    EXPECT_EQ(c.refusal, Refusal::kHeld);
  }
}

TEST(LifecycleHolds, NoAgencyMovesAnUncategorisedReferralAndOnlyTheGatewayReleasesIt) {
  for (auto to : {S::kReceived, S::kAccepted, S::kRejected}) {
    auto c = check_change({S::kRequested, kUncategorised}, {to, ""}, Actor::kAgency);
    EXPECT_EQ(c.verdict, Verdict::kConflict) << to_string(to);
    EXPECT_EQ(c.refusal, Refusal::kHeld);
  }
  for (auto to : {std::string_view(""), kAwaitingConsent, kNoRoute}) {
    EXPECT_TRUE(check_change({S::kRequested, kUncategorised}, {S::kRequested, to}, Actor::kGateway)
                    .allowed())
        << to;
  }
  // Nothing goes back to uncategorised, and overdue never comes from it.
  EXPECT_FALSE(
      check_change({S::kRequested, kNoRoute}, {S::kRequested, kUncategorised}, Actor::kGateway)
          .allowed());
  EXPECT_FALSE(
      check_change({S::kRequested, kUncategorised}, {S::kRequested, kOverdue}, Actor::kGateway)
          .allowed());
  EXPECT_TRUE(
      check_change({S::kRequested, kUncategorised}, {S::kCancelled, ""}, Actor::kClinic).allowed());
}

TEST(LifecycleHolds, TheClinicMayCancelAHeldReferral) {
  EXPECT_TRUE(
      check_change({S::kRequested, kNoRoute}, {S::kCancelled, ""}, Actor::kClinic).allowed());
  EXPECT_TRUE(check_change({S::kRequested, kAwaitingConsent}, {S::kCancelled, ""}, Actor::kClinic)
                  .allowed());
}

TEST(LifecycleHolds, TheAgencyMayAnswerAReferralAwaitingConsent) {
  EXPECT_TRUE(check_change({S::kRequested, kAwaitingConsent}, {S::kAccepted, ""}, Actor::kAgency)
                  .allowed());
  EXPECT_TRUE(
      check_change({S::kRequested, kAwaitingConsent}, {S::kRejected, "ineligible"}, Actor::kAgency)
          .allowed());
  auto alone = check_change({S::kRequested, kAwaitingConsent}, {S::kRequested, ""}, Actor::kAgency);
  EXPECT_EQ(alone.refusal, Refusal::kReservedBusinessStatus);
}

TEST(LifecycleHolds, EveryGatewayMoveIsAllowedToTheGatewayOnly) {
  for (const auto& m : gateway_moves()) {
    const LifecycleState from{S::kRequested, m.from};
    const LifecycleState to{S::kRequested, m.to};
    EXPECT_TRUE(check_change(from, to, Actor::kGateway).allowed()) << m.from << "->" << m.to;
    EXPECT_FALSE(check_change(from, to, Actor::kAgency).allowed()) << m.from << "->" << m.to;
    EXPECT_FALSE(check_change(from, to, Actor::kClinic).allowed()) << m.from << "->" << m.to;
  }
}

TEST(LifecycleHolds, TheGatewayMakesNoOtherMove) {
  auto reroute = check_change({S::kRequested, ""}, {S::kRequested, kNoRoute}, Actor::kGateway);
  EXPECT_EQ(reroute.verdict, Verdict::kConflict);
  EXPECT_EQ(reroute.refusal, Refusal::kGatewayMove);
  auto late = check_change({S::kReceived, ""}, {S::kReceived, kOverdue}, Actor::kGateway);
  EXPECT_EQ(late.verdict, Verdict::kConflict);
  EXPECT_EQ(late.refusal, Refusal::kGatewayMove);
  auto status = check_change({S::kRequested, ""}, {S::kAccepted, ""}, Actor::kGateway);
  EXPECT_EQ(status.verdict, Verdict::kConflict);
  EXPECT_EQ(status.field, LifecycleField::kStatus);
  auto again = check_change({S::kRequested, kOverdue}, {S::kRequested, ""}, Actor::kGateway);
  EXPECT_EQ(again.refusal, Refusal::kGatewayMove);
}

TEST(LifecycleHolds, ReleasingAHoldNeedsAMoveOutOfIt) {
  std::set<std::string_view> released;
  for (const auto& m : gateway_moves()) {
    if (m.from == kNoRoute || m.from == kAwaitingConsent) released.insert(m.from);
  }
  EXPECT_EQ(released, (std::set<std::string_view>{kNoRoute, kAwaitingConsent}));
}

// ---------------------------------------------------------------------------------------------
// businessStatus vocabulary

TEST(BusinessStatus, CodesAreUniqueTokensThatGoWithSomeStatus) {
  const std::regex token("^[a-z0-9]+(-[a-z0-9]+)*$");
  std::set<std::string_view> codes;
  for (const auto& c : business_status_codes()) {
    EXPECT_TRUE(codes.insert(c.code).second) << c.code;
    EXPECT_TRUE(std::regex_match(std::string(c.code), token)) << c.code;
    EXPECT_LE(c.code.size(), 64u);
    EXPECT_NE(c.statuses, 0) << c.code;
    EXPECT_NE(c.set_by, 0) << c.code;
    EXPECT_FALSE(c.display.empty());
    EXPECT_FALSE(c.definition.empty());
    EXPECT_EQ(find_business_status(c.code), &c);
  }
  EXPECT_EQ(find_business_status("nope"), nullptr);
}

TEST(BusinessStatus, TheGatewayCodesGoOnlyWithRequestedAndOnlyTheGatewaySetsThem) {
  for (auto code : {kAwaitingConsent, kNoRoute, kOverdue}) {
    const auto* c = find_business_status(code);
    ASSERT_NE(c, nullptr) << code;
    EXPECT_TRUE(c->reserved());
    EXPECT_EQ(c->statuses, status_bit(S::kRequested));
  }
  int reserved = 0;
  for (const auto& c : business_status_codes())
    reserved += c.reserved() ? 1 : 0;
  EXPECT_EQ(reserved, 4);
}

TEST(BusinessStatus, CheckFollowsTheVocabularyForEveryCodeStatusAndActor) {
  for (const auto& c : business_status_codes()) {
    for (auto s : kAll) {
      for (auto a : kActors) {
        const auto check = check_business_status(s, c.code, a);
        EXPECT_EQ(check.allowed(), c.goes_with(s) && c.settable_by(a))
            << c.code << " " << to_string(s) << " " << to_string(a);
        if (!check.allowed()) {
          EXPECT_EQ(check.verdict, Verdict::kBusinessRule);
          EXPECT_EQ(check.field, LifecycleField::kBusinessStatus);
        }
      }
    }
  }
  for (auto s : kAll)
    EXPECT_TRUE(check_business_status(s, "", Actor::kClinic).allowed());
}

TEST(BusinessStatus, TheCodesAgenciesAndHl7UseAreKnown) {
  EXPECT_TRUE(check_business_status(S::kAccepted, "family-contacted", Actor::kAgency).allowed());
  EXPECT_TRUE(check_business_status(S::kInProgress, "enrolled", Actor::kAgency).allowed());
  EXPECT_TRUE(check_business_status(S::kFailed, "unable-to-contact", Actor::kAgency).allowed());
  EXPECT_TRUE(check_business_status(S::kOnHold, "waitlisted", Actor::kAgency).allowed());
  EXPECT_TRUE(check_business_status(S::kFailed, "expired", Actor::kAgency).allowed());  // RF1-1 E
  EXPECT_EQ(find_business_status("enrolled")->sdohcc, "enrolled");
}

// ---------------------------------------------------------------------------------------------
// Overdue

const Clock::time_point kSent =
    Clock::time_point(std::chrono::sys_days(std::chrono::year(2026) / 11 / 20)) + 15h;

TEST(Overdue, OnlyWhileWaitingForTheAgency) {
  EXPECT_TRUE(awaiting_agency(S::kRequested, ""));
  EXPECT_TRUE(awaiting_agency(S::kRequested, kOverdue));
  EXPECT_FALSE(awaiting_agency(S::kRequested, kNoRoute));
  EXPECT_FALSE(awaiting_agency(S::kRequested, kAwaitingConsent));
  EXPECT_FALSE(awaiting_agency(S::kReceived, ""));
  EXPECT_FALSE(awaiting_agency(S::kAccepted, ""));
}

TEST(Overdue, DueAtTheEndOfTheSlaNotBefore) {
  const LifecycleState waiting{S::kRequested, ""};
  EXPECT_EQ(overdue_at(waiting, kSent, 72h), kSent + 72h);
  EXPECT_FALSE(overdue_due(waiting, kSent, 72h, kSent + 72h - 1s));
  EXPECT_TRUE(overdue_due(waiting, kSent, 72h, kSent + 72h));
  EXPECT_TRUE(overdue_due(waiting, kSent, 72h, kSent + 100h));
}

TEST(Overdue, NotDueOnceTheAgencyReceivedOrAcceptedIt) {
  for (auto s : {S::kReceived, S::kAccepted, S::kRejected, S::kInProgress, S::kCancelled}) {
    EXPECT_EQ(overdue_at({s, ""}, kSent, 72h), std::nullopt) << to_string(s);
    EXPECT_FALSE(overdue_due({s, ""}, kSent, 72h, kSent + 1000h)) << to_string(s);
  }
}

TEST(Overdue, NotDueWhileHeld) {
  EXPECT_FALSE(overdue_due({S::kRequested, kNoRoute}, kSent, 72h, kSent + 1000h));
  EXPECT_FALSE(overdue_due({S::kRequested, kAwaitingConsent}, kSent, 72h, kSent + 1000h));
}

TEST(Overdue, RaisedOnceAsAGatewayBusinessStatusWithTheStatusUnchanged) {
  const LifecycleState waiting{S::kRequested, ""};
  ASSERT_TRUE(overdue_due(waiting, kSent, 72h, kSent + 80h));
  const auto alert = overdue_alert();
  EXPECT_EQ(alert, (LifecycleState{S::kRequested, kOverdue}));
  auto raise = check_change(waiting, alert, Actor::kGateway);
  EXPECT_TRUE(raise.allowed()) << raise.message;
  EXPECT_FALSE(raise.unchanged);
  // Once raised, it is not due again, however late, and cannot be reset to be raised again.
  EXPECT_EQ(overdue_at(alert, kSent, 72h), std::nullopt);
  EXPECT_FALSE(overdue_due(alert, kSent, 72h, kSent + 1000h));
  EXPECT_FALSE(check_change(alert, waiting, Actor::kGateway).allowed());
  EXPECT_FALSE(check_change(alert, waiting, Actor::kAgency).allowed());
  EXPECT_TRUE(check_change(alert, alert, Actor::kGateway).unchanged);
}

// ---------------------------------------------------------------------------------------------
// schemas/README.md documents the same tables

std::string readme() {
  std::ifstream in(std::string(SDOH_SOURCE_DIR) + "/schemas/README.md");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The rows of the first markdown table after `heading`, each a list of cells with spaces and
// backticks trimmed.
std::vector<std::vector<std::string>> table_after(const std::string& text,
                                                  const std::string& heading) {
  std::vector<std::vector<std::string>> rows;
  const auto start = text.find("\n" + heading + "\n");
  EXPECT_NE(start, std::string::npos) << heading;
  if (start == std::string::npos) return rows;
  std::istringstream lines(text.substr(start + heading.size() + 2));
  std::string line;
  bool in_table = false, header = true;
  while (std::getline(lines, line)) {
    if (line.starts_with("#")) break;
    if (!line.starts_with("|")) {
      if (in_table) break;
      continue;
    }
    in_table = true;
    if (header || line.starts_with("| ---")) {
      header = false;
      continue;
    }
    std::vector<std::string> cells;
    std::istringstream cols(line.substr(1));
    std::string cell;
    while (std::getline(cols, cell, '|')) {
      std::string out;
      for (char ch : cell) {
        if (ch != '`') out += ch;
      }
      const auto b = out.find_first_not_of(' ');
      const auto e = out.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? std::string() : out.substr(b, e - b + 1));
    }
    rows.push_back(std::move(cells));
  }
  return rows;
}

TEST(LifecycleDocs, TheDocumentedTableIsTheTable) {
  std::set<std::tuple<std::string, std::string, std::string>> documented;
  for (const auto& row : table_after(readme(), "### Allowed transitions")) {
    ASSERT_GE(row.size(), 3u);
    documented.insert({row[0], row[1], row[2]});
  }
  std::set<std::tuple<std::string, std::string, std::string>> table;
  for (const auto& t : transitions()) {
    table.insert({std::string(to_string(t.from)), std::string(to_string(t.to)),
                  std::string(to_string(t.by))});
  }
  EXPECT_EQ(documented, table);
}

TEST(LifecycleDocs, TheDocumentedBusinessStatusCodesAreTheVocabulary) {
  // | code | display | with status | set by | meaning | SDOHCC |
  std::set<std::tuple<std::string, std::string, std::string, std::string>> documented;
  for (const auto& row : table_after(readme(), "### businessStatus")) {
    ASSERT_GE(row.size(), 4u);
    documented.insert({row[0], row[1], row[2], row[3]});
  }
  std::set<std::tuple<std::string, std::string, std::string, std::string>> vocabulary;
  for (const auto& c : business_status_codes()) {
    std::string statuses, actors;
    for (auto s : kAll) {
      if (!c.goes_with(s)) continue;
      statuses += (statuses.empty() ? "" : ", ") + std::string(to_string(s));
    }
    for (auto a : kActors) {
      if (!c.settable_by(a)) continue;
      actors += (actors.empty() ? "" : ", ") + std::string(to_string(a));
    }
    vocabulary.insert({std::string(c.code), std::string(c.display), statuses, actors});
  }
  EXPECT_EQ(documented, vocabulary);
}

TEST(LifecycleDocs, TheDocumentedGatewayMovesAreTheMoves) {
  // | from | to | when |, "none" for no businessStatus.
  std::set<std::pair<std::string, std::string>> documented;
  for (const auto& row : table_after(readme(), "### Holds and the gateway's moves")) {
    ASSERT_GE(row.size(), 2u);
    documented.insert({row[0], row[1]});
  }
  std::set<std::pair<std::string, std::string>> moves;
  auto name = [](std::string_view code) {
    return code.empty() ? std::string("none") : std::string(code);
  };
  for (const auto& m : gateway_moves())
    moves.insert({name(m.from), name(m.to)});
  EXPECT_EQ(documented, moves);
}

}  // namespace
}  // namespace sdoh::mapping
