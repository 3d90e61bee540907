// The store on every engine (StoreTest; SqliteStoreTest for SQLite's own file, pragmas and
// checkpoints): schema, commits and dedupe, the outbox, delivery and dead letters, retention and
// referral states. Resources, searches, migrations and upgrades: store_resources_test.cpp.
#include "adapters/store/sql_store.hpp"
#include "tests/unit/adapters/store/store_fixture.hpp"
#include "tests/unit/support/loopback.hpp"

namespace sdoh::store {
namespace {

using namespace store_test_support;

SDOH_STORE_TEST_ON_EVERY_ENGINE(StoreTest);

TEST_F(SqliteStoreTest, CreatesDatabaseInWalModeAtLatestSchema) {
  auto store = SqlStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ((*store)->schema_version(), SqlStore::latest_schema_version());
  EXPECT_TRUE((*store)->health().ok);
  EXPECT_EQ(pragma("journal_mode"), "wal");
  EXPECT_EQ(pragma("user_version"), std::to_string(SqlStore::latest_schema_version()));
}

TEST_P(StoreTest, ReopeningKeepsTheSchema) {
  {
    auto first = open_store(cfg_);
    ASSERT_TRUE(first) << first.error().message;
    EXPECT_EQ((*first)->schema_version(), latest_schema_version());
    EXPECT_TRUE((*first)->health().ok);
  }
  auto again = open_store(cfg_);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ((*again)->schema_version(), latest_schema_version());
}

TEST_P(StoreTest, RefusesANewerSchema) {
  ASSERT_TRUE(open_store(cfg_));
  {
    auto db = raw_database();
    ASSERT_TRUE(db) << db.error().message;
    // Where each engine records its version (sqlite_schema.cpp, pg_schema.cpp).
    ASSERT_TRUE((*db)->exec(on_postgres() ? "INSERT INTO schema_version(version) VALUES (999)"
                                          : "PRAGMA user_version=999"));
  }
  auto store = open_store(cfg_);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().kind, ErrorKind::kUnavailable);
  EXPECT_NE(store.error().message.find("newer than this build"), std::string::npos);
}

TEST_F(SqliteStoreTest, UnwritableLocationIsAnError) {
  auto store = SqlStore::open("/proc/sdoh-cannot-write/gateway.db", cfg_);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().kind, ErrorKind::kUnavailable);
}

// The writer keeps the dedupe keys in memory: a second writer of the file would miss them.
TEST_F(SqliteStoreTest, ASecondOpenOfTheSameFileIsRefusedUntilTheFirstCloses) {
  const auto file = dir_ / "gateway.db";
  auto first = SqlStore::open(file, cfg_);
  ASSERT_TRUE(first) << first.error().message;
  auto second = SqlStore::open(file, cfg_);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind, ErrorKind::kUnavailable);
  EXPECT_NE(second.error().message.find("in use by another process"), std::string::npos);
  first->reset();
  auto again = SqlStore::open(file, cfg_);
  EXPECT_TRUE(again) << again.error().message;
}

// PostgreSQL's equivalent: a server nobody answers at.
TEST_F(SqliteStoreTest, AnUnreachablePostgresIsAnError) {
  auto store =
      SqlStore::open_postgres("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2", "", cfg_);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().kind, ErrorKind::kUnavailable);
}

}  // namespace
}  // namespace sdoh::store

// The commit path: group commit, dedupe, failures.
namespace sdoh::store {
namespace {

namespace asio = boost::asio;

TEST_P(StoreTest, CommitStoresInboundAndEventsInCommitOrder) {
  auto store = *open_store(cfg_);
  auto outcome = commit_now(*store, request("A1", 2));
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_EQ(outcome->status, pipeline::CommitStatus::kCommitted);
  EXPECT_GT(outcome->inbound_id, 0);
  auto pending = store->pending_events(0, 10);
  ASSERT_TRUE(pending);
  ASSERT_EQ(pending->size(), 2u);
  EXPECT_EQ((*pending)[0].event_id, "A1-ev0");
  EXPECT_EQ((*pending)[1].event_id, "A1-ev1");
  EXPECT_LT((*pending)[0].seq, (*pending)[1].seq);
  EXPECT_EQ(store->stats().undelivered, 2);
}

TEST_P(StoreTest, ResendGetsTheOriginalAnswerAndAddsNoEvents) {
  auto store = *open_store(cfg_);
  ASSERT_TRUE(commit_now(*store, request("A1", 2)));
  auto resend = request("A1", 2);
  resend.inbound.answer = "a different answer that must not be used";
  auto outcome = commit_now(*store, std::move(resend));
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->status, pipeline::CommitStatus::kDuplicate);
  EXPECT_EQ(outcome->answer, "MSA|CA|A1");
  EXPECT_EQ(outcome->answer_code, "CA");
  EXPECT_EQ(store->pending_events(0, 10)->size(), 2u);
}

TEST_P(StoreTest, SameControlIdFromAnotherSenderIsNotADuplicate) {
  auto store = *open_store(cfg_);
  ASSERT_TRUE(commit_now(*store, request("A1", 1)));
  auto other = request("A1", 1);
  other.inbound.sender = "EHR^PEDS_B";
  other.events[0].event_id = "B-A1-ev0";
  auto outcome = commit_now(*store, std::move(other));
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->status, pipeline::CommitStatus::kCommitted);
}

// SQLite keeps the dedupe keys and event ids in memory (key_index.hpp): filled again at open,
// forgotten with a rolled-back write and with the rows retention removes.
TEST_P(StoreTest, ResendIsRecognisedAfterReopen) {
  {
    auto store = *open_store(cfg_);
    ASSERT_TRUE(commit_now(*store, request("A1", 2)));
    ASSERT_TRUE(commit_now(*store, request("A2", 1)));
  }
  auto store = *open_store(cfg_);
  auto resend = commit_now(*store, request("A1", 2));
  ASSERT_TRUE(resend) << resend.error().message;
  EXPECT_EQ(resend->status, pipeline::CommitStatus::kDuplicate);
  EXPECT_EQ(resend->answer, "MSA|CA|A1");
  EXPECT_EQ(resend->undelivered.size(), 2u);
  // Another message carrying an event stored before the restart adds only its new one.
  auto other = request("A3", 1);
  other.events.push_back(request("A2", 1).events[0]);
  auto committed = commit_now(*store, std::move(other));
  ASSERT_TRUE(committed) << committed.error().message;
  EXPECT_EQ(committed->status, pipeline::CommitStatus::kCommitted);
  EXPECT_EQ(committed->undelivered.size(), 1u);
  EXPECT_EQ(store->pending_events(0, 10)->size(), 4u);
}

TEST_P(StoreTest, AnEventIdIsStoredOnceWhateverMessageCarriesIt) {
  auto store = *open_store(cfg_);
  ASSERT_TRUE(commit_now(*store, request("A1", 1)));
  auto again = request("A2", 0);
  again.events.push_back(request("A1", 1).events[0]);
  auto outcome = commit_now(*store, std::move(again));
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_EQ(outcome->status, pipeline::CommitStatus::kCommitted);
  EXPECT_TRUE(outcome->undelivered.empty());
  EXPECT_EQ(store->pending_events(0, 10)->size(), 1u);
}

TEST_P(StoreTest, ConcurrentResendsOfOneMessageCommitItOnce) {
  auto store = *open_store(cfg_);
  // In flight together, so that most share a group transaction: one is committed, the rest
  // find it (in the same transaction) and get its answer.
  asio::io_context ioc;
  std::vector<std::future<Result<pipeline::CommitOutcome>>> outcomes;
  for (int i = 0; i < 16; ++i) {
    auto r = request("A1", 2);
    r.inbound.answer = "MSA|CA|A1|" + std::to_string(i);
    outcomes.push_back(asio::co_spawn(ioc, store->commit(std::move(r)), asio::use_future));
  }
  ioc.run();
  int committed = 0;
  std::string first_answer;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    auto o = outcomes[i].get();
    ASSERT_TRUE(o) << o.error().message;
    if (o->status == pipeline::CommitStatus::kCommitted) {
      ++committed;
      first_answer = "MSA|CA|A1|" + std::to_string(i);
    } else {
      EXPECT_EQ(o->status, pipeline::CommitStatus::kDuplicate);
    }
  }
  EXPECT_EQ(committed, 1);
  auto resend = commit_now(*store, request("A1", 2));
  EXPECT_EQ(resend->answer, first_answer);
  EXPECT_EQ(store->pending_events(0, 10)->size(), 2u);
}

TEST_P(StoreTest, CommittedDataSurvivesReopen) {
  {
    auto store = *open_store(cfg_);
    ASSERT_TRUE(commit_now(*store, request("A1", 3)));
  }
  auto store = *open_store(cfg_);
  EXPECT_EQ(store->stats().undelivered, 3);
  EXPECT_EQ(store->pending_events(0, 10)->size(), 3u);
}

TEST_P(StoreTest, MarkDeliveredRemovesFromPending) {
  auto store = *open_store(cfg_);
  ASSERT_TRUE(commit_now(*store, request("A1", 3)));
  auto pending = *store->pending_events(0, 10);
  store->mark_delivered(
      {{pending[0].seq, "sdoh.screening.v1", 0, 10}, {pending[1].seq, "sdoh.screening.v1", 0, 11}});
  ASSERT_TRUE(commit_now(*store, request("A2", 0)));  // the writer has run the mark by now
  auto left = *store->pending_events(0, 10);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].event_id, "A1-ev2");
  EXPECT_EQ(store->stats().undelivered, 1);
  // Where they landed is recorded for restart reconciliation: the highest offset.
  auto offsets = *store->delivery_offsets();
  EXPECT_EQ((offsets[{"sdoh.screening.v1", 0}]), 11);
  auto refs = *store->undelivered_refs();
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(refs[0].event_id, "A1-ev2");
}

// Overload: past store.max_backlog_events the store refuses new commits at once (nothing is
// queued), says so in capacity(), and takes them again once Kafka has caught up.
TEST_P(StoreTest, ABacklogPastTheLimitRefusesNewCommitsUntilItDrains) {
  cfg_.max_backlog_events = 4;
  auto store = *open_store(cfg_);
  ASSERT_TRUE(commit_now(*store, request("A1", 2)));
  EXPECT_TRUE(store->capacity().ok);
  auto second = commit_now(*store, request("A2", 2));
  ASSERT_TRUE(second);
  EXPECT_FALSE(store->capacity().ok);
  EXPECT_NE(store->capacity().detail.find("store.max_backlog_events 4"), std::string::npos)
      << store->capacity().detail;
  auto refused = commit_now(*store, request("A3", 1));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, ErrorKind::kUnavailable);
  EXPECT_NE(refused.error().message.find("Kafka is behind"), std::string::npos);
  EXPECT_EQ(store->stats().undelivered, 4);  // nothing of A3 was written

  store->mark_delivered({{second->undelivered[0], "sdoh.screening.v1", 0, 1}});
  store->flush();
  EXPECT_TRUE(store->capacity().ok) << store->capacity().detail;
  EXPECT_TRUE(commit_now(*store, request("A3", 1)));
}

TEST_P(StoreTest, TheBacklogsBytesAreCountedAndBoundedToo) {
  cfg_.max_backlog_bytes = 20;
  auto store = *open_store(cfg_);
  auto first = commit_now(*store, request("A1", 2));  // two values of 7 bytes: {"n":0}
  ASSERT_TRUE(first);
  EXPECT_EQ(store->stats().undelivered_bytes, 14);
  ASSERT_TRUE(commit_now(*store, request("A2", 1)));
  EXPECT_EQ(store->stats().undelivered_bytes, 21);
  auto refused = commit_now(*store, request("A3", 1));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("store.max_backlog_bytes 20"), std::string::npos);
  store->mark_delivered({{first->undelivered[0], "sdoh.screening.v1", 0, 1},
                         {first->undelivered[1], "sdoh.screening.v1", 0, 2}});
  store->flush();
  EXPECT_EQ(store->stats().undelivered_bytes, 7);
  // A restart counts them again from the table.
  store.reset();
  auto reopened = *open_store(cfg_);
  EXPECT_EQ(reopened->stats().undelivered_bytes, 7);
  EXPECT_TRUE(reopened->capacity().ok);
}

TEST_P(StoreTest, CommitAndResendReportTheUndeliveredEvents) {
  auto store = *open_store(cfg_);
  auto first = commit_now(*store, request("A1", 2));
  ASSERT_TRUE(first);
  ASSERT_EQ(first->undelivered.size(), 2u);
  store->mark_delivered({{first->undelivered[0], "sdoh.screening.v1", 1, 5}});
  auto again = commit_now(*store, request("A1", 2));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, pipeline::CommitStatus::kDuplicate);
  // The resend waits only for what is still undelivered of the original.
  EXPECT_EQ(again->undelivered, std::vector<std::int64_t>{first->undelivered[1]});
}

TEST_P(StoreTest, AwaitDeliveredCompletesOnTheAcknowledgementOrTimesOut) {
  auto store = *open_store(cfg_);
  auto committed = *commit_now(*store, request("A1", 2));
  asio::io_context ioc;
  std::optional<Result<void>> waited, timed_out;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        waited = co_await store->await_delivered(committed.undelivered, std::chrono::seconds(5));
      },
      asio::detached);
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        std::vector<std::int64_t> never{committed.undelivered[0] + 100};
        timed_out = co_await store->await_delivered(never, std::chrono::milliseconds(50));
      },
      asio::detached);
  std::thread kafka([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    store->mark_delivered({{committed.undelivered[0], "sdoh.screening.v1", 0, 1}});
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    store->mark_delivered({{committed.undelivered[1], "sdoh.screening.v1", 0, 2}});
  });
  ioc.run();
  kafka.join();
  ASSERT_TRUE(waited.has_value());
  EXPECT_TRUE(*waited);
  ASSERT_TRUE(timed_out.has_value());
  ASSERT_FALSE(*timed_out);
  EXPECT_EQ(timed_out->error().kind, ErrorKind::kUnavailable);
  // Already delivered before anyone waited: completes at once.
  asio::io_context again;
  std::optional<Result<void>> late;
  asio::co_spawn(
      again,
      [&]() -> asio::awaitable<void> {
        late = co_await store->await_delivered(committed.undelivered, std::chrono::seconds(5));
      },
      asio::detached);
  again.run();
  ASSERT_TRUE(late.has_value());
  EXPECT_TRUE(*late);
}

TEST_P(StoreTest, RefusedEventBecomesADeadLetterAndReplaysOnce) {
  auto store = *open_store(cfg_);
  auto committed = *commit_now(*store, request("A1", 1));
  const auto seq = committed.undelivered.at(0);
  auto origin = store->event_origin(seq);
  ASSERT_TRUE(origin);
  EXPECT_EQ(origin->message_id, "A1");
  EXPECT_EQ(origin->sender, "EHR^PEDS_A");
  pipeline::OutboxEvent notice{"dl-event-1", "org.sdoh.deadletter.v1", "sdoh.deadletter.v1", "dl-1",
                               "{}"};
  ASSERT_TRUE(store->dead_letter_event(
      seq, {"dl-1", "publish", "too-long", "Kafka refused it", "sdoh.screening.v1"}, notice));
  // Out of the queue, the notice in; one dead letter to replay.
  auto pending = *store->pending_events(0, 10);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].event_id, "dl-event-1");
  EXPECT_EQ(store->stats().dead_letters, 1);
  auto listed = *store->dead_letters(10, false);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].stage, "publish");
  EXPECT_EQ(listed[0].outbox_seq, seq);
  EXPECT_TRUE(listed[0].payload.empty());  // never without asking
  EXPECT_EQ(store->dead_letter("dl-1", true)->payload, "MSH|...payload");
  EXPECT_EQ(store->dead_letter("dl-1", true)->answer, "MSA|CA|A1");  // what a replay keeps ids of
  EXPECT_TRUE(listed[0].answer.empty());

  auto replayed = store->replay_event("dl-1");
  ASSERT_TRUE(replayed) << replayed.error().message;
  EXPECT_EQ(replayed->events, 1);
  EXPECT_EQ(store->pending_events(0, 10)->size(), 2u);  // back in the queue
  auto twice = store->replay_event("dl-1");
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(store->dead_letters(10, false)->size(), 0u);
  EXPECT_EQ(store->dead_letters(10, true)->size(), 1u);
  EXPECT_EQ(store->replay_event("nope").error().kind, ErrorKind::kNotFound);
}

TEST_P(StoreTest, ReplayOfARejectedMessageCommitsItsEventsOnce) {
  auto store = *open_store(cfg_);
  auto rejected = request("B1", 0);
  rejected.inbound.answer_code = "AE";
  rejected.dead_letter = pipeline::DeadLetterRecord{"dl-b1", "map", "103", "no table", "OBX^1^3"};
  ASSERT_TRUE(commit_now(*store, rejected));
  // Replayed and rejected again: nothing committed, the dead letter stays.
  auto again = request("B1", 0);
  again.replay_of = "dl-b1";
  again.dead_letter = rejected.dead_letter;
  auto still = commit_now(*store, again);
  ASSERT_FALSE(still);
  EXPECT_EQ(still.error().kind, ErrorKind::kInvalid);
  EXPECT_EQ(store->dead_letters(10, false)->size(), 1u);
  // Replayed after a fix: the events are committed and resends get the new answer.
  auto fixed = request("B1", 2);
  fixed.replay_of = "dl-b1";
  auto done = commit_now(*store, fixed);
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(done->undelivered.size(), 2u);
  EXPECT_EQ(store->dead_letters(10, false)->size(), 0u);
  auto resend = commit_now(*store, request("B1", 2));
  ASSERT_TRUE(resend);
  EXPECT_EQ(resend->status, pipeline::CommitStatus::kDuplicate);
  EXPECT_EQ(resend->answer_code, "CA");
  auto once_more = commit_now(*store, fixed);
  ASSERT_FALSE(once_more);
  EXPECT_EQ(once_more.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(store->stats().undelivered, 2);
}

TEST_P(StoreTest, ReferralStateIsFoundByIdOrByAUniqueClinicNumberAndSurvivesReopen) {
  {
    auto store = *open_store(cfg_);
    store->record_referral(
        row("r1", "urn:clinic", "REF-1", "A1", "ehv", "food-insecurity", "requested", "", 1));
    store->record_referral(
        row("r2", "urn:clinic", "REF-2", "A2", "ehv", "housing-instability", "requested", "", 1));
    store->record_referral(
        row("r3", "urn:other", "REF-2", "A3", "wic", "food-insecurity", "requested", "", 1));
    store->record_referral(row("r1", "urn:clinic", "REF-1", "A1", "ehv", "food-insecurity",
                               "accepted", "scheduled", 2));
    // An older state arriving late never goes back.
    store->record_referral(
        row("r1", "urn:clinic", "REF-1", "A1", "ehv", "food-insecurity", "requested", "", 1));
    store->flush();
  }
  auto store = *open_store(cfg_);
  auto r1 = store->find_referral({"r1", "", "", ""});
  ASSERT_TRUE(r1 && *r1);
  EXPECT_EQ((*r1)->status, "accepted");
  EXPECT_EQ((*r1)->sequence, 2);
  EXPECT_EQ((*store->find_referral({"", "", "REF-1", ""}))->referral_id, "r1");
  // REF-2 is two referrals' number: only with its system is it one.
  EXPECT_FALSE(*store->find_referral({"", "", "REF-2", ""}));
  EXPECT_EQ((*store->find_referral({"", "urn:other", "REF-2", ""}))->referral_id, "r3");
  EXPECT_EQ((*store->find_referral({"", "", "", "A2"}))->referral_id, "r2");
  EXPECT_FALSE(*store->find_referral({"nope", "", "", ""}));
}

TEST_P(StoreTest, RetentionPrunesDeliveredEventsPayloadsAndOldInbound) {
  cfg_.delivered_retention = std::chrono::milliseconds(0);
  cfg_.payload_retention = std::chrono::milliseconds(0);
  cfg_.dedupe_window = std::chrono::hours(1);
  auto store = *open_store(cfg_, nullptr, clock());
  auto a = *commit_now(*store, request("A1", 2));
  auto rejected = request("B1", 0);
  rejected.dead_letter = pipeline::DeadLetterRecord{"dl-b1", "map", "103", "no table", "OBX^1^3"};
  ASSERT_TRUE(commit_now(*store, rejected));
  store->mark_delivered({{a.undelivered[0], "sdoh.screening.v1", 0, 1}});
  store->flush();
  advance(std::chrono::milliseconds(5));
  auto pruned = store->prune_now();
  ASSERT_TRUE(pruned) << pruned.error().message;
  // One delivered event deleted; A1's payload cleared; B1's kept for its replay.
  EXPECT_EQ(*pruned, 2);
  EXPECT_EQ(store->pending_events(0, 10)->size(), 1u);
  EXPECT_TRUE(store->dead_letter("dl-b1", true)->payload_kept);
  // Dedupe still holds within the window.
  EXPECT_EQ(commit_now(*store, request("A1", 2))->status, pipeline::CommitStatus::kDuplicate);
  EXPECT_EQ(*store->prune_now(), 0);
}

// Commits A1 and A2 with an event each, and marks both events delivered: A1's outcome, A2's.
std::pair<pipeline::CommitOutcome, pipeline::CommitOutcome> two_delivered(SqlStore& store) {
  auto a = *commit_now(store, request("A1", 1));
  auto b = *commit_now(store, request("A2", 1));
  store.mark_delivered({{a.undelivered[0], "sdoh.screening.v1", 0, 1},
                        {b.undelivered[0], "sdoh.screening.v1", 0, 2}});
  store.flush();
  return {a, b};
}

// A retention round that fails half way is undone whole: the event it had deleted is back, and
// so is its id among the keys, so that the event is still not stored twice.
TEST_P(StoreTest, AFailedRetentionRoundGivesBackTheKeysOfWhatItHadDeleted) {
  cfg_.delivered_retention = std::chrono::milliseconds(0);
  cfg_.dedupe_window = std::chrono::milliseconds(0);
  metrics::Registry registry;
  auto store = *open_store(cfg_, &registry, clock());
  two_delivered(*store);
  advance(std::chrono::milliseconds(5));
  {
    // Inbound records are deleted after the events: the round fails after A1's event went.
    auto db = raw_database();
    ASSERT_TRUE(db) << db.error().message;
    ASSERT_TRUE((*db)->exec(
        on_postgres()
            ? "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
              "RAISE EXCEPTION 'injected'; END $$; CREATE TRIGGER refuse_inbound_delete BEFORE "
              "DELETE ON inbound FOR EACH ROW EXECUTE FUNCTION refuse_delete()"
            : "CREATE TRIGGER refuse_inbound_delete BEFORE DELETE ON inbound BEGIN SELECT "
              "RAISE(ABORT, 'injected'); END"));
  }
  auto failed = store->prune_now();
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message.find("injected"), std::string::npos) << failed.error().message;
  // A1's event is stored (and known) still: a message carrying it adds nothing.
  auto carrier = request("A3", 0);
  carrier.events.push_back(request("A1", 1).events[0]);
  auto outcome = commit_now(*store, std::move(carrier));
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_TRUE(outcome->undelivered.empty());
  EXPECT_EQ(commit_now(*store, request("A1", 1))->status, pipeline::CommitStatus::kDuplicate);
  if (!on_postgres()) {
    EXPECT_EQ(metric(registry.render(), "sdoh_store_memory_keys"), 5);  // 3 messages, 2 events
  }
  {
    auto db = raw_database();
    ASSERT_TRUE(db) << db.error().message;
    ASSERT_TRUE((*db)->exec("DROP TRIGGER refuse_inbound_delete" +
                            std::string(on_postgres() ? " ON inbound" : "")));
  }
  // Once it can, the round deletes A1's event and A1. A2's event is the newest and stays, and
  // keeps A2; A3 is the newest record.
  auto pruned = store->prune_now();
  ASSERT_TRUE(pruned) << pruned.error().message;
  EXPECT_EQ(*pruned, 2);
  if (!on_postgres()) {
    EXPECT_EQ(metric(registry.render(), "sdoh_store_memory_keys"), 3);
  }
}

TEST_P(StoreTest, PastTheDedupeWindowAPrunedMessageAndItsEventsCommitAgain) {
  cfg_.delivered_retention = std::chrono::milliseconds(0);
  cfg_.dedupe_window = std::chrono::milliseconds(0);
  metrics::Registry registry;
  auto store = *open_store(cfg_, &registry, clock());
  const auto b = two_delivered(*store).second;
  // SQLite holds each message's dedupe key and its event's id in memory (PostgreSQL: none).
  const bool in_memory = GetParam() == sql::Engine::kSqlite;
  EXPECT_EQ(metric(registry.render(), "sdoh_store_memory_keys"), in_memory ? 4 : -1);
  advance(std::chrono::milliseconds(5));
  auto pruned = store->prune_now();
  ASSERT_TRUE(pruned) << pruned.error().message;
  // A1's event, then its inbound record. A2's stay, old as they are: the newest of each table
  // is kept, so that numbering never goes back.
  EXPECT_EQ(*pruned, 2);
  EXPECT_EQ(metric(registry.render(), "sdoh_store_memory_keys"), in_memory ? 2 : -1);
  // Gone from the store, and so from its keys: the message is new again, with its event,
  // numbered after every event before it.
  auto again = commit_now(*store, request("A1", 1));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->status, pipeline::CommitStatus::kCommitted);
  ASSERT_EQ(again->undelivered.size(), 1u);
  EXPECT_GT(again->undelivered[0], b.undelivered[0]);
  EXPECT_GT(again->inbound_id, b.inbound_id);
  EXPECT_EQ(commit_now(*store, request("A1", 1))->status, pipeline::CommitStatus::kDuplicate);
  EXPECT_EQ(commit_now(*store, request("A2", 1))->status, pipeline::CommitStatus::kDuplicate);
}

TEST_P(StoreTest, ConcurrentCommitsShareTransactions) {
  metrics::Registry registry;
  auto store = *open_store(cfg_, &registry);
  asio::io_context ioc;
  constexpr int kSenders = 16, kEach = 50;
  int committed = 0;
  for (int s = 0; s < kSenders; ++s) {
    asio::co_spawn(
        ioc,
        [&, s]() -> asio::awaitable<void> {
          for (int i = 0; i < kEach; ++i) {
            auto r = co_await store->commit(
                request("S" + std::to_string(s) + "-" + std::to_string(i), 1));
            if (r && r->status == pipeline::CommitStatus::kCommitted) ++committed;
          }
        },
        asio::detached);
  }
  ioc.run();
  EXPECT_EQ(committed, kSenders * kEach);
  EXPECT_EQ(store->stats().undelivered, kSenders * kEach);
  const auto text = registry.render();
  // Fewer transactions than commits: concurrent senders were grouped.
  const auto count_at = text.find("sdoh_store_commit_batch_size_count ");
  ASSERT_NE(count_at, std::string::npos);
  const auto transactions = std::stol(text.substr(count_at + 35));
  EXPECT_LT(transactions, kSenders * kEach);
  EXPECT_NE(text.find("sdoh_store_commits_total{outcome=\"committed\"} 800"), std::string::npos);
}

// The RRI^I12 answers to clinics: queued with the commit that causes them, due until the clinic
// acknowledges them or they are given up, retried when the sender says, summarised for ops.
TEST_P(StoreTest, OutboundMessagesAreDueUntilAcknowledgedOrGivenUp) {
  auto store = *open_store(cfg_, nullptr, clock());
  const auto now = now_ms_.load();
  auto r = request("A1", 1);
  r.outbound = {{"clinic-a:2575", "MSH|A\rMSA|AA", "r1"}, {"clinic-b:2575", "MSH|B", "r2"}};
  ASSERT_TRUE(commit_now(*store, r));
  auto due = store->due_outbound(now, 10);
  ASSERT_TRUE(due) << due.error().message;
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].destination, "clinic-a:2575");
  EXPECT_EQ((*due)[0].message, "MSH|A\rMSA|AA");
  EXPECT_EQ((*due)[0].referral_id, "r1");
  EXPECT_EQ((*due)[0].attempts, 0);
  EXPECT_EQ((*due)[1].referral_id, "r2");
  EXPECT_EQ(store->due_outbound(now, 1)->size(), 1u);
  auto summary = store->outbound_summary();
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_EQ(summary->waiting, 2);
  EXPECT_EQ(summary->retrying, 0);
  EXPECT_EQ(summary->oldest_waiting_ms, now);
  EXPECT_EQ(summary->given_up, 0);

  const auto a = (*due)[0].id, b = (*due)[1].id;
  store->record_outbound_attempt(a, false, "", "connection refused", now + 60'000);
  store->record_outbound_attempt(b, true, "AR", "", 0);
  store->flush();
  EXPECT_TRUE(store->due_outbound(now, 10)->empty());
  due = store->due_outbound(now + 60'000, 10);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].id, a);
  EXPECT_EQ((*due)[0].attempts, 1);
  summary = store->outbound_summary();
  EXPECT_EQ(summary->waiting, 1);
  EXPECT_EQ(summary->retrying, 1);
  EXPECT_EQ(summary->given_up, 1);
  store->record_outbound_attempt(a, true, "AA", "", 0);
  store->flush();
  EXPECT_TRUE(store->due_outbound(now + 60'000, 10)->empty());
  summary = store->outbound_summary();
  EXPECT_EQ(summary->waiting, 0);
  EXPECT_EQ(summary->oldest_waiting_ms, 0);
  EXPECT_EQ(summary->given_up, 1);  // acknowledged is not given up
}

// Ops: referrals held before they reach an agency, longest held first, with who sent them.
TEST_P(StoreTest, HeldReferralsAreListedLongestHeldFirstWithTheirSender) {
  auto store = *open_store(cfg_, nullptr, clock());
  auto hl7 =
      row("r-hl7", "urn:clinic", "REF-1", "A1", "", "food-insecurity", "requested", "no-route", 1);
  hl7.return_to = "EHR^PEDS_A";
  store->record_referral(hl7);
  store->flush();
  advance(std::chrono::milliseconds(10));
  auto fhir = with_resource("k1", task_write("r-fhir", 1, "requested", "ehv"));
  fhir.referrals.push_back(row("r-fhir", "urn:clinic", "REF-2", "", "ehv", "housing-instability",
                               "requested", "awaiting-consent", 1));
  ASSERT_TRUE(commit_now(*store, fhir));
  store->record_referral(
      row("r-sent", "urn:clinic", "REF-3", "A3", "ehv", "food-insecurity", "requested", "", 1));
  store->record_referral(row("r-accepted", "urn:clinic", "REF-4", "A4", "ehv", "food-insecurity",
                             "accepted", "no-route", 2));
  store->flush();
  auto held = store->held_referrals("", 10);
  ASSERT_TRUE(held) << held.error().message;
  ASSERT_EQ(held->size(), 2u);
  EXPECT_EQ((*held)[0].referral_id, "r-hl7");
  EXPECT_EQ((*held)[0].reason, "no-route");
  EXPECT_EQ((*held)[0].sender, "EHR^PEDS_A");
  EXPECT_EQ((*held)[0].agency_id, "");
  EXPECT_EQ((*held)[1].referral_id, "r-fhir");
  EXPECT_EQ((*held)[1].category, "housing-instability");
  EXPECT_EQ((*held)[1].sender, "clinic-a");  // its Task's source
  EXPECT_LT((*held)[0].since_ms, (*held)[1].since_ms);
  auto consent = store->held_referrals("awaiting-consent", 10);
  ASSERT_TRUE(consent);
  ASSERT_EQ(consent->size(), 1u);
  EXPECT_EQ((*consent)[0].referral_id, "r-fhir");
  EXPECT_EQ(store->held_referrals("", 1)->size(), 1u);
}

// What a sender sent, the events' values and what the gateway answered are kept byte for byte,
// whatever the bytes (NULs, and text that is not UTF-8: a Latin-1 message is refused, and its
// dead letter keeps it).
TEST_P(StoreTest, BytesAreKeptAsTheyCame) {
  auto store = *open_store(cfg_);
  const auto bytes = [](const auto& literal) { return std::string(literal, sizeof literal - 1); };
  const auto payload = bytes("MSH|^~\\&|CL\xcdNICA|\x00\xff\r");
  const auto answer = bytes("MSA|AR|\xe9\x00");
  const auto value = bytes("{\"n\":\"\x00\xfe\"}");
  auto r = request("B1", 1);
  r.inbound.payload = payload;
  r.inbound.answer = answer;
  r.inbound.answer_code = "AR";
  r.events[0].value = value;
  r.dead_letter = pipeline::DeadLetterRecord{"dl-b1", "parse", "103", "not UTF-8", "MSH^1^4"};
  auto committed = commit_now(*store, r);
  ASSERT_TRUE(committed) << committed.error().message;
  auto pending = store->pending_events(0, 10);
  ASSERT_TRUE(pending) << pending.error().message;
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].value, value);
  auto dl = store->dead_letter("dl-b1", true);
  ASSERT_TRUE(dl) << dl.error().message;
  EXPECT_EQ(dl->payload, payload);
  auto resend = commit_now(*store, r);
  ASSERT_TRUE(resend) << resend.error().message;
  EXPECT_EQ(resend->status, pipeline::CommitStatus::kDuplicate);
  EXPECT_EQ(resend->answer, answer);
  EXPECT_EQ(store->stats().undelivered_bytes, 10);
}

TEST_P(StoreTest, UnwritableStoreFailsTheCommitAndHealth) {
  auto store = *open_store(cfg_);
  ASSERT_TRUE(commit_now(*store, request("A1", 1)));
  // Another connection holds the write lock: the next transaction must fail, not succeed. On
  // SQLite it is held longer than the store's busy timeout allows; PostgreSQL waits for as long
  // as it takes, so the writer's session is ended while it waits, as when the server goes away.
  auto other = hold_write_lock();
  ASSERT_TRUE(other) << other.error().message;
  std::optional<Result<pipeline::CommitOutcome>> sent;
  std::thread sender([&] { sent = commit_now(*store, request("A2", 1)); });
  bool locked = true;
  if (on_postgres()) {
    bool ended = false;
    if (test::eventually([&] { return sessions_waiting_for_a_lock() == 1; })) {
      auto admin = raw_database();
      ended = admin && admin->text(
                           "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                           "datname = current_database() AND wait_event_type = 'Lock'") == "1";
    }
    EXPECT_TRUE(ended) << "the writer's session was not ended while it waited";
    if (!ended) locked = !(*other)->exec("ROLLBACK");  // the sender must not wait forever
  }
  sender.join();
  if (locked) {
    EXPECT_TRUE((*other)->exec("ROLLBACK"));
  }
  ASSERT_TRUE(sent.has_value());
  auto& outcome = *sent;
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().kind, ErrorKind::kUnavailable);
  EXPECT_FALSE(store->health().ok);
  EXPECT_NE(store->health().detail.find("last transaction failed"), std::string::npos);
  // And it recovers once the store can write again.
  ASSERT_TRUE(commit_now(*store, request("A3", 1)));
  EXPECT_TRUE(store->health().ok);
}

}  // namespace
}  // namespace sdoh::store

// FHIR resources and referral states written with a commit, and their reads.
namespace sdoh::store {
namespace {

TEST_P(StoreTest, ResourceVersionsHistoryIdentifiersAndSearch) {
  auto store = *open_store(cfg_);
  ASSERT_TRUE(commit_now(*store, with_resource("k1", task_write("t1", 1, "requested", "ehv"))));
  ASSERT_TRUE(commit_now(*store, with_resource("k2", task_write("t2", 1, "requested", "wic"))));
  auto update = task_write("t1", 2, "accepted", "ehv");
  update.source = "";  // an update keeps who sent the resource
  update.identifiers = {{"urn:clinic", "REF-t1-new"}};
  ASSERT_TRUE(commit_now(*store, with_resource("k3", update)));

  auto current = store->read_resource("Task", "t1");
  ASSERT_TRUE(current && *current);
  EXPECT_EQ((*current)->version, 2);
  EXPECT_EQ((*current)->source, "clinic-a");
  EXPECT_NE((*current)->json.find("accepted"), std::string::npos);
  auto v1 = store->read_resource("Task", "t1", 1);
  ASSERT_TRUE(v1 && *v1);
  EXPECT_NE((*v1)->json.find("requested"), std::string::npos);
  EXPECT_FALSE(*store->read_resource("Task", "t1", 3));
  EXPECT_FALSE(*store->read_resource("Task", "nope"));
  auto history = store->resource_history("Task", "t1");
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].version, 2);
  EXPECT_EQ((*history)[1].version, 1);
  // Identifiers follow the current version.
  EXPECT_EQ(*store->find_resource_id("Task", "urn:clinic", "REF-t1-new"), "t1");
  EXPECT_FALSE(*store->find_resource_id("Task", "urn:clinic", "REF-t1"));

  ResourceQuery q;
  q.type = "Task";
  q.params = {{"status", {"requested", "accepted"}}};
  auto page = store->search_resources(q);
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->total, 2);
  q.params.push_back({"owner", {"ehv"}});
  page = store->search_resources(q);
  ASSERT_EQ(page->total, 1);
  EXPECT_EQ(page->rows[0].id, "t1");
  EXPECT_EQ(page->rows[0].version, 2);
  q.params = {{"status", {"requested"}}};
  EXPECT_EQ(store->search_resources(q)->rows[0].id, "t2");  // t1 is accepted now
  // Paging: newest update first.
  q.params.clear();
  q.count = 1;
  page = store->search_resources(q);
  EXPECT_EQ(page->total, 2);
  ASSERT_EQ(page->rows.size(), 1u);
  EXPECT_EQ(page->rows[0].id, "t1");
  q.offset = 1;
  EXPECT_EQ(store->search_resources(q)->rows[0].id, "t2");
  q.params = {{"status", {"it'); DROP TABLE resources; --"}}};
  EXPECT_EQ(store->search_resources(q)->total, 0);
  EXPECT_TRUE(store->read_resource("Task", "t1")->has_value());
}

TEST_P(StoreTest, StaleVersionFailsTheWholeRequestAndNothingElse) {
  auto store = *open_store(cfg_);
  ASSERT_TRUE(commit_now(*store, with_resource("k1", task_write("t1", 1, "requested", "ehv"))));
  const auto before = store->pending_events(0, 100)->size();
  // Two updates from version 1 at once: one wins, the other conflicts and leaves no trace.
  asio::io_context ioc;
  std::vector<Result<pipeline::CommitOutcome>> results;
  for (const auto* key : {"k2", "k3"}) {
    asio::co_spawn(
        ioc,
        [&, key]() -> asio::awaitable<void> {
          auto r = co_await store->commit(
              with_resource(key, task_write("t1", 2, std::string("accepted-") + key, "ehv")));
          results.push_back(std::move(r));
        },
        asio::detached);
  }
  ioc.run();
  ASSERT_EQ(results.size(), 2u);
  const int ok = (results[0] ? 1 : 0) + (results[1] ? 1 : 0);
  EXPECT_EQ(ok, 1);
  const auto& failed = results[0] ? results[1] : results[0];
  EXPECT_EQ(failed.error().kind, ErrorKind::kConflict);
  EXPECT_NE(failed.error().message.find("is at version 2, not 1"), std::string::npos);
  EXPECT_EQ(store->pending_events(0, 100)->size(), before + 1);  // only the winner's event
  EXPECT_EQ(store->resource_history("Task", "t1")->size(), 2u);
  // The loser's request left no inbound record: sent again, it is not a duplicate.
  const auto* loser = results[0] ? "k3" : "k2";
  auto again = commit_now(*store, with_resource(loser, task_write("t1", 3, "in-progress", "ehv")));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->status, pipeline::CommitStatus::kCommitted);
  // Creating what exists is a conflict too; a duplicate writes nothing.
  auto exists = commit_now(*store, with_resource("k9", task_write("t1", 1, "requested", "ehv")));
  ASSERT_FALSE(exists);
  EXPECT_EQ(exists.error().kind, ErrorKind::kConflict);
  auto dup = commit_now(*store, with_resource("k1", task_write("t1", 9, "x", "ehv")));
  ASSERT_TRUE(dup);
  EXPECT_EQ(dup->status, pipeline::CommitStatus::kDuplicate);
  EXPECT_EQ((*store->read_resource("Task", "t1"))->version, 3);
}

TEST_P(StoreTest, ReferralStatesCommitWithTheRequest) {
  auto store = *open_store(cfg_);
  auto r = request("k1", 1);
  r.referrals.push_back(
      row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "requested", "", 1));
  ASSERT_TRUE(commit_now(*store, r));
  auto found = store->find_referral({"r1", "", "", ""});
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->status, "requested");
  auto later = request("k2", 1);
  later.referrals.push_back(row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity",
                                "accepted", "family-contacted", 2));
  ASSERT_TRUE(commit_now(*store, later));
  auto stale = request("k3", 1);
  stale.referrals.push_back(
      row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "received", "", 1));
  ASSERT_TRUE(commit_now(*store, stale));
  found = store->find_referral({"", "urn:clinic", "REF-1", ""});
  EXPECT_EQ((*found)->status, "accepted");
  EXPECT_EQ((*found)->sequence, 2);
}

// The referral service's lock: a change is written only if the referral is still at the
// sequence it was decided from; the loser's whole request (its events too) is not written.
TEST_P(StoreTest, AReferralChangeDecidedFromAnOlderSequenceIsAConflictAndWritesNothing) {
  auto store = *open_store(cfg_);
  auto opened = request("k1", 1);
  auto first = row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "requested", "", 1);
  first.expected_sequence = 0;  // only if no referral has the id
  opened.referrals.push_back(first);
  ASSERT_TRUE(commit_now(*store, opened));
  auto again = request("k1b", 1);
  again.referrals.push_back(first);
  auto twice = commit_now(*store, again);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().kind, ErrorKind::kConflict);

  auto received = request("k2", 1);
  auto at2 = row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "received", "", 2);
  at2.expected_sequence = 1;
  received.referrals.push_back(at2);
  ASSERT_TRUE(commit_now(*store, received));
  // Another message decided from sequence 1 too, and comes second.
  auto rejected = request("k3", 2);
  auto also2 = row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "rejected", "", 2);
  also2.expected_sequence = 1;
  rejected.referrals.push_back(also2);
  const auto pending_before = store->pending_events(0, 100)->size();
  auto lost = commit_now(*store, rejected);
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().kind, ErrorKind::kConflict);
  EXPECT_NE(lost.error().message.find("is at sequence 2, not 1"), std::string::npos);
  EXPECT_EQ(store->pending_events(0, 100)->size(), pending_before);  // none of its events
  auto found = store->find_referral({"r1", "", "", ""});
  EXPECT_EQ((*found)->status, "received");
  // Decided again from what is stored now: written.
  also2.sequence = 3;
  also2.expected_sequence = 2;
  auto retried = request("k3", 2);
  retried.referrals.push_back(also2);
  ASSERT_TRUE(commit_now(*store, retried));
  EXPECT_EQ((*store->find_referral({"r1", "", "", ""}))->status, "rejected");
}

TEST_P(StoreTest, AReferralWaitsForItsAgencyFromTheReleaseOfItsHold) {
  auto store = *open_store(cfg_, nullptr, clock());
  auto held = request("k1", 1);
  held.referrals.push_back(row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity",
                               "requested", "awaiting-consent", 1));
  held.referrals.push_back(
      row("r2", "urn:clinic", "REF-2", "", "ehv", "food-insecurity", "requested", "", 1));
  ASSERT_TRUE(commit_now(*store, held));
  const auto far_future = std::numeric_limits<std::int64_t>::max();
  auto waiting = store->referrals_awaiting_agency(far_future, 10);
  ASSERT_TRUE(waiting);
  ASSERT_EQ(waiting->size(), 1u);  // a held referral's SLA does not run
  EXPECT_EQ((*waiting)[0].referral.referral_id, "r2");
  const auto r2_since = (*waiting)[0].waiting_since_ms;

  advance(std::chrono::milliseconds(20));
  auto released = request("k2", 1);
  released.referrals.push_back(
      row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "requested", "", 2));
  ASSERT_TRUE(commit_now(*store, released));
  waiting = store->referrals_awaiting_agency(far_future, 10);
  ASSERT_TRUE(waiting);
  ASSERT_EQ(waiting->size(), 2u);
  EXPECT_EQ((*waiting)[0].referral.referral_id, "r2");  // longest waiting first
  EXPECT_EQ((*waiting)[1].referral.referral_id, "r1");
  // r1 was made with r2 but has waited only since its release.
  EXPECT_EQ((*waiting)[1].referral.created_at_ms, (*waiting)[0].referral.created_at_ms);
  EXPECT_GE((*waiting)[1].waiting_since_ms, r2_since + 20);
  auto before_release = store->referrals_awaiting_agency((*waiting)[1].waiting_since_ms, 10);
  ASSERT_TRUE(before_release);
  EXPECT_EQ(before_release->size(), 1u);
}

TEST_P(StoreTest, FindsAPatientsOpenReferralForANeed) {
  auto store = *open_store(cfg_);
  auto r = request("k1", 1);
  auto open = row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "accepted", "", 2);
  open.patient = "p-one";
  auto closed = row("r2", "urn:clinic", "REF-2", "", "ehv", "stress", "completed", "", 3);
  closed.patient = "p-one";
  r.referrals = {open, closed};
  ASSERT_TRUE(commit_now(*store, r));
  EXPECT_EQ(*store->open_referral_for("p-one", "food-insecurity"), "r1");
  EXPECT_EQ(*store->open_referral_for("p-one", "stress"), std::nullopt);  // closed
  EXPECT_EQ(*store->open_referral_for("p-two", "food-insecurity"), std::nullopt);
  EXPECT_EQ(*store->open_referral_for("", "food-insecurity"), std::nullopt);
  // A later state without the patient keeps it.
  auto later = request("k2", 1);
  later.referrals.push_back(
      row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "in-progress", "", 3));
  ASSERT_TRUE(commit_now(*store, later));
  EXPECT_EQ(*store->open_referral_for("p-one", "food-insecurity"), "r1");
}

TEST_P(StoreTest, RetentionKeepsOpenReferralTasksAndTheCurrentVersion) {
  cfg_.resource_retention = std::chrono::milliseconds(0);
  cfg_.payload_retention = std::chrono::milliseconds(0);
  auto store = *open_store(cfg_, nullptr, clock());
  ASSERT_TRUE(commit_now(*store, with_resource("k1", task_write("open", 1, "requested", "ehv"))));
  ASSERT_TRUE(commit_now(*store, with_resource("k2", task_write("open", 2, "accepted", "ehv"))));
  auto done = with_resource("k3", task_write("done", 1, "completed", "ehv"));
  done.referrals.push_back(
      row("done", "urn:clinic", "REF-d", "", "ehv", "food-insecurity", "completed", "", 4));
  ASSERT_TRUE(commit_now(*store, done));
  pipeline::ResourceWrite qr;
  qr.type = "QuestionnaireResponse";
  qr.id = "qr1";
  qr.last_updated = "2026-11-25T10:00:00Z";
  qr.json = "{}";
  qr.identifiers = {{"urn:qr", "1"}};
  ASSERT_TRUE(commit_now(*store, with_resource("k4", qr)));
  advance(std::chrono::milliseconds(5));
  auto pruned = store->prune_now();
  ASSERT_TRUE(pruned) << pruned.error().message;
  EXPECT_TRUE(store->read_resource("Task", "open")->has_value());
  EXPECT_EQ(store->resource_history("Task", "open")->size(), 1u);  // version 1 pruned
  EXPECT_FALSE(store->read_resource("Task", "done")->has_value());
  EXPECT_FALSE(store->find_referral({"done", "", "", ""})->has_value());
  EXPECT_FALSE(store->read_resource("QuestionnaireResponse", "qr1")->has_value());
  EXPECT_FALSE(store->find_resource_id("QuestionnaireResponse", "urn:qr", "1")->has_value());
}

TEST_P(StoreTest, ReadersWorkWhileCommitsAreWritten) {
  auto store = *open_store(cfg_);
  ASSERT_TRUE(commit_now(*store, with_resource("k0", task_write("t0", 1, "requested", "ehv"))));
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, reads{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 6; ++i) {
    readers.emplace_back([&] {
      while (!stop) {
        auto r = store->read_resource("Task", "t0");
        ResourceQuery q;
        q.type = "Task";
        auto p = store->search_resources(q);
        if (!r || !*r || !p) ++failures;
        ++reads;
      }
    });
  }
  for (int i = 1; i <= 50; ++i) {
    ASSERT_TRUE(commit_now(
        *store, with_resource("w" + std::to_string(i),
                              task_write("t" + std::to_string(i), 1, "requested", "ehv"))));
  }
  stop = true;
  for (auto& t : readers)
    t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_GT(reads, 0);
  ResourceQuery q;
  q.type = "Task";
  EXPECT_EQ(store->search_resources(q)->total, 51);
}

}  // namespace
}  // namespace sdoh::store

// Schema migrations from databases older builds left behind.
// The WAL is copied into the database file by the checkpoint thread, off the commit path, once
// it holds enough new pages; every commit stays readable.
namespace sdoh::store {
namespace {

using namespace store_test_support;

TEST_F(SqliteStoreTest, TheCheckpointThreadCopiesTheLogIntoTheDatabaseFile) {
  metrics::Registry registry;
  auto opened = SqlStore::open(dir_ / "gateway.db", cfg_, &registry);
  ASSERT_TRUE(opened) << opened.error().message;
  auto& store = **opened;
  const auto db_bytes_before = std::filesystem::file_size(dir_ / "gateway.db");
  // Each commit writes a 6 KB event: together, far more than one checkpoint's worth of pages.
  for (int i = 0; i < 60; ++i) {
    auto r = request("CKPT" + std::to_string(i), 1);
    r.events[0].value = std::string(6000, 'x');
    ASSERT_TRUE(commit_now(store, std::move(r)));
  }
  EXPECT_TRUE(test::eventually([&] {
    return test::metric_sample(registry, "sdoh_store_wal_checkpoints_total") >= 1;
  })) << registry.render();
  EXPECT_GT(test::metric_sample(registry, "sdoh_store_wal_pages"), 0);
  EXPECT_GT(std::filesystem::file_size(dir_ / "gateway.db"), db_bytes_before + 60 * 6000 / 2)
      << "the checkpoint copies the committed pages into the database file";
  auto pending = store.pending_events(0, 100);
  ASSERT_TRUE(pending);
  EXPECT_EQ(pending->size(), 60u);
}

}  // namespace
}  // namespace sdoh::store
