// gateway/pipeline: the commit wrappers every commit goes through (observed_commit_port,
// delivered_ack_port, replay_port), over a small fake of the store's commit port.
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include "gateway/events/event.hpp"
#include "gateway/mapping/referral.hpp"
#include "gateway/pipeline/delivered_ack_port.hpp"
#include "gateway/pipeline/observed_commit_port.hpp"
#include "gateway/pipeline/replay_port.hpp"
#include "tests/unit/support/run.hpp"
namespace sdoh::pipeline {
namespace {

using test::run;

namespace asio = boost::asio;
using namespace std::chrono_literals;

// The store as the wrappers see it: records what it was asked to commit, answers as told.
class FakeStore final : public CommitPort {
 public:
  std::vector<CommitRequest> committed;
  std::optional<Error> fail_with;
  CommitStatus status = CommitStatus::kCommitted;

  asio::awaitable<Result<CommitOutcome>> commit(CommitRequest request) override {
    if (fail_with) co_return fail(*fail_with);
    CommitOutcome out;
    out.status = status;
    out.answer_code = request.inbound.answer_code;
    for (std::size_t i = 0; i < request.events.size(); ++i)
      out.undelivered.push_back(static_cast<std::int64_t>(100 + i));
    committed.push_back(std::move(request));
    co_return out;
  }
};

CommitRequest request(std::string answer_code, int status_events = 0) {
  CommitRequest r;
  r.inbound = {"hl7v2", "EHR^A", "M1", "RRI^I12", std::move(answer_code), "ack", ""};
  for (int i = 0; i < status_events; ++i) {
    mapping::ReferralTransition t;
    t.referral_id = "ref-" + std::to_string(i);
    t.status = mapping::ReferralStatus::kAccepted;
    t.previous = mapping::ReferralStatus::kReceived;
    t.updated_by_role = "agency";
    t.updated_by_id = "ehv";
    t.time = "2026-11-20T10:00:00Z";
    t.sequence = 3;
    events::Event e;
    e.type = events::EventType::kReferralStatus;
    e.id = "ev-" + t.referral_id;
    e.source = events::event_source("gw");
    e.subject = t.referral_id;
    e.time = t.time;
    e.data = mapping::referral_status_data(t);
    const auto envelope = e.envelope();
    r.events.push_back({"ev-" + t.referral_id, "org.sdoh.referral.status.v1",
                        "sdoh.referral-status.v1", t.referral_id, envelope});
  }
  return r;
}

struct RecordingObserver final : CommitObserver {
  RecordingObserver(std::string n, std::vector<std::string>* j) : name(std::move(n)), journal(j) {}
  std::string name;
  std::vector<std::string>* journal = nullptr;
  std::size_t changes_seen = 0;
  bool outbound_seen = false;
  bool add_outbound = false;
  void preparing(CommitRequest& r, const std::vector<mapping::StatusEvent>& changes) override {
    journal->push_back(name + ".preparing");
    changes_seen = changes.size();
    if (add_outbound) r.outbound.push_back({"127.0.0.1:2576", "MSH|...", "ref-0"});
  }
  void committed(const CommitOutcome&, const std::vector<mapping::StatusEvent>& changes,
                 bool outbound) override {
    journal->push_back(name + ".committed");
    changes_seen = changes.size();
    outbound_seen = outbound;
  }
};

TEST(ObservedCommitPort, EveryObserverPreparesThenHearsOfTheDurableCommitInOrder) {
  FakeStore store;
  std::vector<std::string> journal;
  RecordingObserver a("a", &journal);
  RecordingObserver b("b", &journal);
  a.add_outbound = true;
  ObservedCommitPort port(store, {&a, &b});
  auto outcome = run(port.commit(request("AA", 2)));
  ASSERT_TRUE(outcome);
  EXPECT_EQ(journal,
            (std::vector<std::string>{"a.preparing", "b.preparing", "a.committed", "b.committed"}));
  EXPECT_EQ(a.changes_seen, 2u);
  EXPECT_EQ(b.changes_seen, 2u);
  EXPECT_TRUE(b.outbound_seen);  // what an observer added went into the same commit
  ASSERT_EQ(store.committed.size(), 1u);
  EXPECT_EQ(store.committed[0].outbound.size(), 1u);
}

TEST(ObservedCommitPort, AFailedCommitIsHeardByNoOne) {
  FakeStore store;
  store.fail_with = Error::unavailable("disk full");
  std::vector<std::string> journal;
  RecordingObserver a("a", &journal);
  ObservedCommitPort port(store, {&a});
  auto outcome = run(port.commit(request("AA")));
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().message, "disk full");
  EXPECT_EQ(journal, std::vector<std::string>{"a.preparing"});
}

TEST(StatusEvents, ReadsOnlyTheRequestsStatusEvents) {
  auto r = request("AA", 1);
  r.events.push_back({"other", "org.sdoh.screening.v1", "sdoh.screening.v1", "k", "{}"});
  const auto changes = status_events(r);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].event_id, "ev-ref-0");
  EXPECT_EQ(changes[0].transition.status, mapping::ReferralStatus::kAccepted);
  EXPECT_EQ(changes[0].transition.sequence, 3);
}

class FakeTracker final : public DeliveryTracker {
 public:
  std::vector<std::vector<std::int64_t>> asked;
  std::optional<Error> fail_with;
  asio::awaitable<Result<void>> await_delivered(std::vector<std::int64_t> seqs,
                                                std::chrono::milliseconds timeout) override {
    EXPECT_EQ(timeout, 250ms);
    asked.push_back(std::move(seqs));
    if (fail_with) co_return fail(*fail_with);
    co_return Result<void>{};
  }
};

TEST(DeliveredAckPort, APositiveAnswerWaitsForKafkaToHaveEveryEvent) {
  FakeStore store;
  FakeTracker tracker;
  DeliveredAckPort port(store, tracker, 250ms);
  auto outcome = run(port.commit(request("CA", 2)));
  ASSERT_TRUE(outcome);
  ASSERT_EQ(tracker.asked.size(), 1u);
  EXPECT_EQ(tracker.asked[0], (std::vector<std::int64_t>{100, 101}));
}

TEST(DeliveredAckPort, KafkaNotAcknowledgingInTimeIsANegativeAnswer) {
  FakeStore store;
  FakeTracker tracker;
  tracker.fail_with = Error::unavailable("not delivered within 250 ms");
  DeliveredAckPort port(store, tracker, 250ms);
  auto outcome = run(port.commit(request("201", 1)));
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().kind, ErrorKind::kUnavailable);
  EXPECT_EQ(store.committed.size(), 1u);  // committed all the same: a resend finds it
}

TEST(DeliveredAckPort, ANegativeAnswerDoesNotWait) {
  FakeStore store;
  FakeTracker tracker;
  DeliveredAckPort port(store, tracker, 250ms);
  for (const auto* code : {"AE", "AR", "CR", "400", "422"}) {
    auto outcome = run(port.commit(request(code, 1)));
    ASSERT_TRUE(outcome) << code;
  }
  EXPECT_TRUE(tracker.asked.empty());
}

TEST(PositiveAnswer, IsHl7AaOrCaOrHttp2xx) {
  for (const auto* yes : {"AA", "CA", "200", "201"})
    EXPECT_TRUE(positive_answer(yes)) << yes;
  for (const auto* no : {"AE", "AR", "CE", "CR", "400", "503", ""})
    EXPECT_FALSE(positive_answer(no)) << no;
}

TEST(ReplayPort, EveryCommitIsTheReplayOfItsDeadLetter) {
  FakeStore store;
  ReplayPort port(store, "dl-1");
  EXPECT_FALSE(port.result());  // nothing committed yet
  auto outcome = run(port.commit(request("AA", 2)));
  ASSERT_TRUE(outcome);
  EXPECT_EQ(store.committed[0].replay_of, "dl-1");
  ASSERT_TRUE(port.result());
  EXPECT_EQ(port.result()->dead_letter_id, "dl-1");
  EXPECT_EQ(port.result()->events, 2);
  EXPECT_EQ(port.result()->outcome, "replayed: 2 event(s) committed");
}

TEST(ReplayPort, AReplayThatFailsSaysWhy) {
  FakeStore store;
  store.fail_with = Error::invalid("still rejected: OBX-3 is empty");
  ReplayPort port(store, "dl-2");
  ASSERT_FALSE(run(port.commit(request("AE"))));
  ASSERT_FALSE(port.result());
  EXPECT_EQ(port.result().error().message, "still rejected: OBX-3 is empty");
}

}  // namespace
}  // namespace sdoh::pipeline
