// gateway/mapping/lifecycle.cpp: the transition table, who may make each change, and that
// schemas/README.md documents exactly the same table.
#include "gateway/mapping/lifecycle.hpp"

#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include <gtest/gtest.h>

namespace sdoh::mapping {
namespace {

using S = ReferralStatus;

const std::vector<S> kAll = {S::kRequested, S::kReceived,   S::kAccepted,
                             S::kRejected,  S::kInProgress, S::kOnHold,
                             S::kCompleted, S::kFailed,     S::kCancelled};

TEST(Lifecycle, EveryRowOfTheTableIsAllowedToItsActorOnly) {
  for (const auto& t : transitions()) {
    for (auto actor : {Actor::kAgency, Actor::kClinic, Actor::kGateway}) {
      auto c = check_transition(t.from, t.to, actor);
      if (actor == t.by) {
        EXPECT_TRUE(c.allowed()) << to_string(t.from) << "->" << to_string(t.to);
      } else {
        EXPECT_EQ(c.verdict, Verdict::kNotThisActor)
            << to_string(t.from) << "->" << to_string(t.to) << " by " << to_string(actor);
      }
    }
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
      auto c = check_transition(from, to, Actor::kAgency);
      EXPECT_EQ(c.verdict, Verdict::kNotFromState) << to_string(from) << "->" << to_string(to);
      EXPECT_FALSE(c.message.empty());
      ++refused;
    }
  }
  EXPECT_GT(refused, 40);
  EXPECT_EQ(check_transition(S::kCompleted, S::kInProgress, Actor::kAgency).verdict,
            Verdict::kNotFromState);
  EXPECT_EQ(check_transition(S::kAccepted, S::kRequested, Actor::kAgency).verdict,
            Verdict::kNotFromState);
}

TEST(Lifecycle, FinalStatusesChangeNothingNotEvenBusinessStatus) {
  for (auto s : {S::kRejected, S::kCompleted, S::kFailed, S::kCancelled}) {
    for (auto to : kAll)
      EXPECT_FALSE(check_transition(s, to, Actor::kAgency).allowed());
    EXPECT_FALSE(check_transition(s, s, Actor::kGateway).allowed());
  }
}

TEST(Lifecycle, BusinessStatusAloneByTheAgencyOrTheGatewayNotTheClinic) {
  EXPECT_TRUE(check_transition(S::kInProgress, S::kInProgress, Actor::kAgency).allowed());
  EXPECT_TRUE(check_transition(S::kRequested, S::kRequested, Actor::kGateway).allowed());
  EXPECT_EQ(check_transition(S::kAccepted, S::kAccepted, Actor::kClinic).verdict,
            Verdict::kNotThisActor);
}

TEST(Lifecycle, OnlyTheClinicCancelsOnlyTheAgencyMovesForward) {
  auto agency_cancels = check_transition(S::kAccepted, S::kCancelled, Actor::kAgency);
  EXPECT_EQ(agency_cancels.verdict, Verdict::kNotThisActor);
  EXPECT_NE(agency_cancels.message.find("clinic"), std::string::npos);
  auto clinic_accepts = check_transition(S::kRequested, S::kAccepted, Actor::kClinic);
  EXPECT_EQ(clinic_accepts.verdict, Verdict::kNotThisActor);
  EXPECT_NE(clinic_accepts.message.find("agency"), std::string::npos);
}

TEST(Lifecycle, OverdueOnlyWhileWaitingForTheAgency) {
  EXPECT_TRUE(awaiting_agency(S::kRequested, ""));
  EXPECT_TRUE(awaiting_agency(S::kRequested, "overdue"));
  EXPECT_FALSE(awaiting_agency(S::kRequested, kNoRoute));
  EXPECT_FALSE(awaiting_agency(S::kRequested, kAwaitingConsent));
  EXPECT_FALSE(awaiting_agency(S::kReceived, ""));
  EXPECT_FALSE(awaiting_agency(S::kAccepted, ""));
}

TEST(Lifecycle, TheDocumentedTableIsTheTable) {
  std::ifstream in(std::string(SDOH_SOURCE_DIR) + "/schemas/README.md");
  std::stringstream ss;
  ss << in.rdbuf();
  const auto text = ss.str();
  const auto start = text.find("### Allowed transitions");
  ASSERT_NE(start, std::string::npos);
  std::set<std::tuple<std::string, std::string, std::string>> documented;
  std::istringstream lines(text.substr(start));
  std::string line;
  bool in_table = false;
  while (std::getline(lines, line)) {
    if (line.starts_with("| from")) {
      in_table = true;
      continue;
    }
    if (!in_table || line.starts_with("| ---")) continue;
    if (!line.starts_with("|")) break;
    std::vector<std::string> cells;
    std::istringstream cols(line);
    std::string cell;
    while (std::getline(cols, cell, '|')) {
      const auto b = cell.find_first_not_of(' ');
      const auto e = cell.find_last_not_of(' ');
      if (b != std::string::npos) cells.push_back(cell.substr(b, e - b + 1));
    }
    ASSERT_EQ(cells.size(), 3u) << line;
    documented.insert({cells[0], cells[1], cells[2]});
  }
  std::set<std::tuple<std::string, std::string, std::string>> table;
  for (const auto& t : transitions()) {
    table.insert({std::string(to_string(t.from)), std::string(to_string(t.to)),
                  std::string(to_string(t.by))});
  }
  EXPECT_EQ(documented, table);
}

}  // namespace
}  // namespace sdoh::mapping
