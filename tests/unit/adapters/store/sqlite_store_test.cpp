#include "adapters/store/sqlite_store.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sqlite3.h>
#include <sstream>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

namespace sdoh::store {
namespace {

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sdoh_store_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string pragma(const std::string& name) {
    sqlite3* db = nullptr;
    sqlite3_open((dir_ / "gateway.db").c_str(), &db);
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, ("PRAGMA " + name).c_str(), -1, &stmt, nullptr);
    std::string value;
    if (sqlite3_step(stmt) == SQLITE_ROW)
      value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
  }

  /// The store's clock in tests: moves only when a test advances it.
  StoreClock clock() {
    return [this] { return now_ms_.load(); };
  }
  void advance(std::chrono::milliseconds by) { now_ms_ += by.count(); }

  std::filesystem::path dir_;
  config::StoreConfig cfg_;
  std::atomic<std::int64_t> now_ms_{1'795'000'000'000};  // 2026-11-18
};

TEST_F(SqliteStoreTest, CreatesDatabaseInWalModeAtLatestSchema) {
  auto store = SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ((*store)->schema_version(), SqliteStore::latest_schema_version());
  EXPECT_TRUE((*store)->health().ok);
  EXPECT_EQ(pragma("journal_mode"), "wal");
  EXPECT_EQ(pragma("user_version"), std::to_string(SqliteStore::latest_schema_version()));
}

TEST_F(SqliteStoreTest, ReopeningKeepsTheSchema) {
  ASSERT_TRUE(SqliteStore::open(dir_ / "gateway.db", cfg_));
  auto again = SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ((*again)->schema_version(), SqliteStore::latest_schema_version());
}

TEST_F(SqliteStoreTest, RefusesANewerSchema) {
  ASSERT_TRUE(SqliteStore::open(dir_ / "gateway.db", cfg_));
  {
    sqlite3* db = nullptr;
    sqlite3_open((dir_ / "gateway.db").c_str(), &db);
    sqlite3_exec(db, "PRAGMA user_version=999", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  auto store = SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("newer than this build"), std::string::npos);
}

TEST_F(SqliteStoreTest, UnwritableLocationIsAnError) {
  auto store = SqliteStore::open("/proc/sdoh-cannot-write/gateway.db", cfg_);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().kind, ErrorKind::kUnavailable);
}

}  // namespace
}  // namespace sdoh::store

// The commit path: group commit, dedupe, failures.
namespace sdoh::store {
namespace {

namespace asio = boost::asio;

pipeline::CommitRequest request(const std::string& control_id, int events = 2) {
  pipeline::CommitRequest r;
  r.inbound = {"hl7v2", "EHR^PEDS_A",           control_id,      "ORU^R01",
               "CA",    "MSA|CA|" + control_id, "MSH|...payload"};
  for (int i = 0; i < events; ++i) {
    r.events.push_back({control_id + "-ev" + std::to_string(i), "org.sdoh.screening.v1",
                        "sdoh.screening.v1", "patient-key", "{\"n\":" + std::to_string(i) + "}"});
  }
  return r;
}

// A referral state from its first nine fields (the rest default).
pipeline::ReferralState row(std::string id, std::string system, std::string value,
                            std::string control_id, std::string agency, std::string category,
                            std::string status, std::string business_status, int sequence) {
  pipeline::ReferralState r;
  r.referral_id = std::move(id);
  r.clinic_number_system = std::move(system);
  r.clinic_number_value = std::move(value);
  r.source_control_id = std::move(control_id);
  r.agency_id = std::move(agency);
  r.category = std::move(category);
  r.status = std::move(status);
  r.business_status = std::move(business_status);
  r.sequence = sequence;
  return r;
}

Result<pipeline::CommitOutcome> commit_now(SqliteStore& store, pipeline::CommitRequest r) {
  asio::io_context ioc;
  auto fut = asio::co_spawn(ioc, store.commit(std::move(r)), asio::use_future);
  ioc.run();
  return fut.get();
}

TEST_F(SqliteStoreTest, CommitStoresInboundAndEventsInCommitOrder) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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

TEST_F(SqliteStoreTest, ResendGetsTheOriginalAnswerAndAddsNoEvents) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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

TEST_F(SqliteStoreTest, SameControlIdFromAnotherSenderIsNotADuplicate) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(commit_now(*store, request("A1", 1)));
  auto other = request("A1", 1);
  other.inbound.sender = "EHR^PEDS_B";
  other.events[0].event_id = "B-A1-ev0";
  auto outcome = commit_now(*store, std::move(other));
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->status, pipeline::CommitStatus::kCommitted);
}

TEST_F(SqliteStoreTest, CommittedDataSurvivesReopen) {
  {
    auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
    ASSERT_TRUE(commit_now(*store, request("A1", 3)));
  }
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
  EXPECT_EQ(store->stats().undelivered, 3);
  EXPECT_EQ(store->pending_events(0, 10)->size(), 3u);
}

TEST_F(SqliteStoreTest, MarkDeliveredRemovesFromPending) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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
TEST_F(SqliteStoreTest, ABacklogPastTheLimitRefusesNewCommitsUntilItDrains) {
  cfg_.max_backlog_events = 4;
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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

TEST_F(SqliteStoreTest, TheBacklogsBytesAreCountedAndBoundedToo) {
  cfg_.max_backlog_bytes = 20;
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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
  auto reopened = *SqliteStore::open(dir_ / "gateway.db", cfg_);
  EXPECT_EQ(reopened->stats().undelivered_bytes, 7);
  EXPECT_TRUE(reopened->capacity().ok);
}

TEST_F(SqliteStoreTest, CommitAndResendReportTheUndeliveredEvents) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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

TEST_F(SqliteStoreTest, AwaitDeliveredCompletesOnTheAcknowledgementOrTimesOut) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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

TEST_F(SqliteStoreTest, RefusedEventBecomesADeadLetterAndReplaysOnce) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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

TEST_F(SqliteStoreTest, ReplayOfARejectedMessageCommitsItsEventsOnce) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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

TEST_F(SqliteStoreTest, ReferralStateIsFoundByIdOrByAUniqueClinicNumberAndSurvivesReopen) {
  {
    auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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

TEST_F(SqliteStoreTest, RetentionPrunesDeliveredEventsPayloadsAndOldInbound) {
  cfg_.delivered_retention = std::chrono::milliseconds(0);
  cfg_.payload_retention = std::chrono::milliseconds(0);
  cfg_.dedupe_window = std::chrono::hours(1);
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_, nullptr, clock());
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

TEST_F(SqliteStoreTest, ConcurrentCommitsShareTransactions) {
  metrics::Registry registry;
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_, &registry);
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

TEST_F(SqliteStoreTest, UnwritableStoreFailsTheCommitAndHealth) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(commit_now(*store, request("A1", 1)));
  // Another connection holds the write lock longer than the busy timeout allows... instead,
  // make the database read-only underneath: the next transaction must fail, not succeed.
  sqlite3* other = nullptr;
  sqlite3_open((dir_ / "gateway.db").c_str(), &other);
  sqlite3_busy_timeout(other, 100);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto outcome = commit_now(*store, request("A2", 1));
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
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

pipeline::ResourceWrite task_write(const std::string& id, std::int64_t version,
                                   const std::string& status, const std::string& owner) {
  pipeline::ResourceWrite w;
  w.type = "Task";
  w.id = id;
  w.version = version;
  w.expected_version = version - 1;
  w.last_updated = "2026-11-25T10:00:0" + std::to_string(version) + "Z";
  w.json = R"({"resourceType":"Task","id":")" + id + R"(","status":")" + status + "\"}";
  w.source = "clinic-a";
  w.identifiers = {{"urn:clinic", "REF-" + id}};
  w.search = {{"status", status}, {"owner", owner}, {"_id", id}};
  return w;
}

pipeline::CommitRequest with_resource(const std::string& key, pipeline::ResourceWrite w) {
  auto r = request(key, 1);
  r.inbound.protocol = "fhir";
  r.resources.push_back(std::move(w));
  return r;
}

TEST_F(SqliteStoreTest, ResourceVersionsHistoryIdentifiersAndSearch) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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

TEST_F(SqliteStoreTest, StaleVersionFailsTheWholeRequestAndNothingElse) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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

TEST_F(SqliteStoreTest, ReferralStatesCommitWithTheRequest) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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

TEST_F(SqliteStoreTest, AReferralWaitsForItsAgencyFromTheReleaseOfItsHold) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_, nullptr, clock());
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

TEST_F(SqliteStoreTest, FindsAPatientsOpenReferralForANeed) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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

TEST_F(SqliteStoreTest, RetentionKeepsOpenReferralTasksAndTheCurrentVersion) {
  cfg_.resource_retention = std::chrono::milliseconds(0);
  cfg_.payload_retention = std::chrono::milliseconds(0);
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_, nullptr, clock());
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

TEST_F(SqliteStoreTest, ReadersWorkWhileCommitsAreWritten) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
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
namespace sdoh::store {
namespace {

// The schema as version 4 of the gateway left it (migrations 1 to 4, as released).
constexpr const char* kSchemaV4 = R"sql(
  CREATE TABLE gateway_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
  INSERT INTO gateway_meta(key, value) VALUES ('created_at', '2026-01-05T09:00:00.000Z');
  CREATE TABLE inbound (
    id INTEGER PRIMARY KEY, protocol TEXT NOT NULL, sender TEXT NOT NULL, dedupe_key TEXT,
    message_type TEXT NOT NULL, received_at INTEGER NOT NULL, answer_code TEXT NOT NULL,
    answer BLOB NOT NULL, payload BLOB, UNIQUE (protocol, sender, dedupe_key)) STRICT;
  CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, inbound_id INTEGER REFERENCES
    inbound(id), type TEXT NOT NULL, topic TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
    created_at INTEGER NOT NULL, delivered_at INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT) STRICT;
  CREATE INDEX outbox_delivered_at ON outbox(delivered_at) WHERE delivered_at IS NOT NULL;
  CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY, dead_letter_id TEXT NOT NULL UNIQUE, inbound_id INTEGER REFERENCES
    inbound(id), created_at INTEGER NOT NULL, stage TEXT NOT NULL, error_code TEXT NOT NULL,
    error_text TEXT NOT NULL, location TEXT NOT NULL, replayed_at INTEGER) STRICT;
  ALTER TABLE outbox ADD COLUMN dead_at INTEGER;
  CREATE INDEX outbox_undelivered ON outbox(seq) WHERE delivered_at IS NULL AND dead_at IS NULL;
  CREATE INDEX outbox_inbound ON outbox(inbound_id);
  ALTER TABLE dead_letters ADD COLUMN outbox_seq INTEGER;
  ALTER TABLE dead_letters ADD COLUMN replay_outcome TEXT;
  CREATE INDEX dead_letters_inbound ON dead_letters(inbound_id);
  CREATE TABLE delivery_offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)) STRICT;
  CREATE TABLE referrals (
    referral_id TEXT PRIMARY KEY, clinic_number_system TEXT NOT NULL,
    clinic_number_value TEXT NOT NULL, source_control_id TEXT NOT NULL, agency_id TEXT NOT NULL,
    category TEXT NOT NULL, status TEXT NOT NULL, business_status TEXT NOT NULL,
    sequence INTEGER NOT NULL, updated_at INTEGER NOT NULL) STRICT;
  CREATE INDEX referrals_clinic_number ON referrals(clinic_number_value);
  CREATE INDEX referrals_source ON referrals(source_control_id);
  PRAGMA user_version=4;
)sql";

// What a version 4 gateway had stored: one message with an undelivered event, one referral.
constexpr const char* kDataV4 = R"sql(
  INSERT INTO inbound(id, protocol, sender, dedupe_key, message_type, received_at, answer_code,
    answer, payload) VALUES (1, 'hl7v2', 'EHR^PEDS_A', 'OLD1', 'REF^I12', 1767600000000, 'CA',
    CAST('MSA|CA|OLD1' AS BLOB), CAST('MSH|...' AS BLOB));
  INSERT INTO outbox(seq, event_id, inbound_id, type, topic, key, value, created_at) VALUES (1,
    'OLD1-ev0', 1, 'org.sdoh.referral.v1', 'sdoh.referral.v1', 'r-old', CAST('{}' AS BLOB),
    1767600000000);
  INSERT INTO referrals VALUES ('r-old', 'urn:clinic', 'REF-OLD', 'OLD1', 'ehv',
    'food-insecurity', 'accepted', 'scheduled', 2, 1767600000000);
)sql";

TEST_F(SqliteStoreTest, MigratesAVersion4DatabaseAndKeepsItsData) {
  std::filesystem::create_directories(dir_);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "gateway.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, kSchemaV4, nullptr, nullptr, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, kDataV4, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto opened = SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(opened) << opened.error().message;
  auto& store = **opened;
  EXPECT_EQ(store.schema_version(), SqliteStore::latest_schema_version());
  EXPECT_EQ(pragma("user_version"), std::to_string(SqliteStore::latest_schema_version()));
  // The old data is all there: the undelivered event, the referral (made when last updated),
  // the dedupe record.
  auto pending = store.pending_events(0, 10);
  ASSERT_TRUE(pending);
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].event_id, "OLD1-ev0");
  auto referral = store.find_referral({"", "urn:clinic", "REF-OLD", ""});
  ASSERT_TRUE(referral && *referral);
  EXPECT_EQ((*referral)->referral_id, "r-old");
  EXPECT_EQ((*referral)->status, "accepted");
  EXPECT_EQ((*referral)->sequence, 2);
  EXPECT_EQ((*referral)->created_at_ms, 1767600000000);
  EXPECT_FALSE((*referral)->overdue);
  auto resend = request("OLD1", 1);
  EXPECT_EQ(commit_now(store, resend)->status, pipeline::CommitStatus::kDuplicate);
  // And the new tables work.
  auto task = request("NEW1", 1);
  pipeline::ResourceWrite w;
  w.type = "Task";
  w.id = "r-old";
  w.last_updated = "2026-11-25T10:00:00Z";
  w.json = R"({"resourceType":"Task","id":"r-old"})";
  w.search = {{"status", "accepted"}};
  task.resources.push_back(w);
  task.referrals.push_back(row("r-old", "urn:clinic", "REF-OLD", "OLD1", "ehv", "food-insecurity",
                               "in-progress", "", 3));
  auto committed = commit_now(store, task);
  ASSERT_TRUE(committed) << committed.error().message;
  EXPECT_EQ((*store.read_resource("Task", "r-old"))->version, 1);
  EXPECT_EQ((*store.find_referral({"r-old", "", "", ""}))->status, "in-progress");
}

}  // namespace
}  // namespace sdoh::store

// What one request's resources do to the others, and what a resend, a replay and retention do.
namespace sdoh::store {
namespace {

// The value of one sample ("name{labels}") in a /metrics text, -1 when absent.
double metric(const std::string& text, const std::string& sample) {
  const auto at = text.find("\n" + sample + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + sample.size() + 2));
}

pipeline::ResourceWrite questionnaire_response(const std::string& id) {
  pipeline::ResourceWrite w;
  w.type = "QuestionnaireResponse";
  w.id = id;
  w.last_updated = "2026-11-25T10:00:00Z";
  w.json = R"({"resourceType":"QuestionnaireResponse","id":")" + id + "\"}";
  w.source = "clinic-a";
  w.identifiers = {{"urn:qr", id}};
  w.search = {{"status", "completed"}};
  return w;
}

TEST_F(SqliteStoreTest, UpdateWithTheCurrentVersionBecomesCurrentAndJoinsTheHistory) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(commit_now(*store, with_resource("k1", task_write("t1", 1, "requested", "ehv"))));
  auto created = store->read_resource("Task", "t1");
  ASSERT_TRUE(created && *created);
  EXPECT_EQ((*created)->version, 1);
  EXPECT_EQ((*created)->last_updated, "2026-11-25T10:00:01Z");
  EXPECT_EQ((*created)->json, R"({"resourceType":"Task","id":"t1","status":"requested"})");
  ASSERT_TRUE(commit_now(*store, with_resource("k2", task_write("t1", 2, "accepted", "ehv"))));
  auto current = store->read_resource("Task", "t1");
  EXPECT_EQ((*current)->version, 2);
  EXPECT_EQ((*current)->json, R"({"resourceType":"Task","id":"t1","status":"accepted"})");
  auto history = *store->resource_history("Task", "t1");
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].version, 2);
  EXPECT_EQ(history[0].last_updated, "2026-11-25T10:00:02Z");
  EXPECT_EQ(history[1].version, 1);
  EXPECT_EQ(history[1].json, R"({"resourceType":"Task","id":"t1","status":"requested"})");
  EXPECT_TRUE(store->resource_history("Task", "nope")->empty());
}

TEST_F(SqliteStoreTest, StaleExpectedVersionIsAConflictAndWritesNothingOfTheRequest) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(commit_now(*store, with_resource("k1", task_write("t1", 1, "requested", "ehv"))));
  ASSERT_TRUE(commit_now(*store, with_resource("k2", task_write("t1", 2, "received", "ehv"))));
  const auto events_before = store->pending_events(0, 100)->size();
  // Based on version 1, which is no longer current.
  auto stale = with_resource("k3", task_write("t1", 2, "rejected", "wic"));
  stale.resources.push_back(questionnaire_response("qr1"));
  stale.referrals.push_back(
      row("t1", "urn:clinic", "REF-t1", "", "ehv", "food-insecurity", "rejected", "", 3));
  auto outcome = commit_now(*store, stale);
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(outcome.error().message, "Task/t1 is at version 2, not 1");
  // Nothing of it: no events, no resource change, no other resource, no referral state.
  EXPECT_EQ(store->pending_events(0, 100)->size(), events_before);
  EXPECT_EQ(store->stats().undelivered, static_cast<std::int64_t>(events_before));
  EXPECT_EQ((*store->read_resource("Task", "t1"))->json,
            R"({"resourceType":"Task","id":"t1","status":"received"})");
  EXPECT_EQ(store->resource_history("Task", "t1")->size(), 2u);
  ResourceQuery owned_by_wic;
  owned_by_wic.type = "Task";
  owned_by_wic.params = {{"owner", {"wic"}}};
  EXPECT_EQ(store->search_resources(owned_by_wic)->total, 0);
  EXPECT_FALSE(store->read_resource("QuestionnaireResponse", "qr1")->has_value());
  EXPECT_FALSE(store->find_referral({"t1", "", "", ""})->has_value());
  // No inbound record either: sent again on the current version, it is committed.
  auto again = with_resource("k3", task_write("t1", 3, "rejected", "wic"));
  auto committed = commit_now(*store, again);
  ASSERT_TRUE(committed) << committed.error().message;
  EXPECT_EQ(committed->status, pipeline::CommitStatus::kCommitted);
  EXPECT_EQ(store->pending_events(0, 100)->size(), events_before + 1);
  EXPECT_EQ(store->search_resources(owned_by_wic)->total, 1);
}

TEST_F(SqliteStoreTest, CreatingAnExistingResourceIsAConflict) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(commit_now(*store, with_resource("k1", task_write("t1", 1, "requested", "ehv"))));
  auto outcome = commit_now(*store, with_resource("k2", task_write("t1", 1, "accepted", "wic")));
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(outcome.error().message, "Task/t1 already exists");
  EXPECT_EQ((*store->read_resource("Task", "t1"))->version, 1);
  EXPECT_EQ(store->pending_events(0, 100)->size(), 1u);
  // Updating what does not exist is one too.
  auto missing = commit_now(*store, with_resource("k3", task_write("t2", 2, "accepted", "ehv")));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(missing.error().message, "Task/t2 is at version 0, not 1");
}

TEST_F(SqliteStoreTest, AVersionThatDoesNotFollowTheCurrentOneIsRefused) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(commit_now(*store, with_resource("k1", task_write("t1", 1, "requested", "ehv"))));
  auto same = task_write("t1", 1, "accepted", "ehv");
  same.expected_version = 1;
  auto outcome = commit_now(*store, with_resource("k2", same));
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().kind, ErrorKind::kInternal);
  EXPECT_TRUE(store->health().ok);  // the caller's mistake, not the store's
}

TEST_F(SqliteStoreTest, AConflictUndoesOnlyItsOwnRequestInAGroup) {
  metrics::Registry registry;
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_, &registry);
  ASSERT_TRUE(commit_now(*store, with_resource("k0", task_write("t1", 1, "requested", "ehv"))));
  // Another connection holds the write lock: the writer waits with its first commit, and the
  // others queue behind it and are written together, as one group, once the lock is gone.
  sqlite3* other = nullptr;
  sqlite3_open((dir_ / "gateway.db").c_str(), &other);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  asio::io_context ioc;
  std::map<std::string, Result<pipeline::CommitOutcome>> results;
  auto spawn = [&](const std::string& key, pipeline::ResourceWrite w) {
    asio::co_spawn(
        ioc,
        [&, key, w]() -> asio::awaitable<void> {
          auto req = with_resource(key, w);
          auto r = co_await store->commit(std::move(req));
          results.emplace(key, std::move(r));
        },
        asio::detached);
  };
  spawn("first", task_write("t-first", 1, "requested", "ehv"));
  ioc.poll();
  // The writer has taken "first" into its transaction and waits for the lock: nothing queued.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (store->queued_writes() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  ASSERT_EQ(store->queued_writes(), 0u);
  spawn("a", task_write("t-a", 1, "requested", "ehv"));
  spawn("stale", task_write("t1", 3, "accepted", "ehv"));  // t1 is at version 1
  spawn("b", task_write("t1", 2, "accepted", "ehv"));
  spawn("exists", task_write("t-a", 1, "requested", "wic"));  // created by "a" in this group
  spawn("c", questionnaire_response("qr1"));
  ioc.poll();
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  ioc.run();
  ASSERT_EQ(results.size(), 6u);
  for (const auto* key : {"first", "a", "b", "c"}) {
    ASSERT_TRUE(results.at(key)) << key << ": " << results.at(key).error().message;
    EXPECT_EQ(results.at(key)->status, pipeline::CommitStatus::kCommitted) << key;
  }
  EXPECT_EQ(results.at("stale").error().message, "Task/t1 is at version 1, not 2");
  EXPECT_EQ(results.at("exists").error().message, "Task/t-a already exists");
  EXPECT_EQ((*store->read_resource("Task", "t1"))->version, 2);
  EXPECT_EQ((*store->read_resource("Task", "t-a"))->json,
            R"({"resourceType":"Task","id":"t-a","status":"requested"})");
  EXPECT_TRUE(store->read_resource("QuestionnaireResponse", "qr1")->has_value());
  EXPECT_EQ(store->pending_events(0, 100)->size(), 5u);  // k0, first, a, b, c
  // The five after "first" shared one transaction.
  const auto text = registry.render();
  EXPECT_EQ(metric(text, "sdoh_store_commit_batch_size_count"), 3);
  EXPECT_EQ(metric(text, "sdoh_store_commit_batch_size_bucket{le=\"4\"}"), 2);
  EXPECT_EQ(metric(text, "sdoh_store_commits_total{outcome=\"failed\"}"), 0);
}

TEST_F(SqliteStoreTest, AResendWritesNoResourcesAndNoReferralStates) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
  auto first = with_resource("k1", task_write("t1", 1, "requested", "ehv"));
  first.referrals.push_back(
      row("t1", "urn:clinic", "REF-t1", "", "ehv", "food-insecurity", "requested", "", 1));
  ASSERT_TRUE(commit_now(*store, first));
  // The same message again, whatever it would write now.
  auto resend = with_resource("k1", task_write("t1", 2, "accepted", "ehv"));
  resend.resources.push_back(questionnaire_response("qr1"));
  resend.referrals.push_back(
      row("t1", "urn:clinic", "REF-t1", "", "ehv", "food-insecurity", "accepted", "", 2));
  auto outcome = commit_now(*store, resend);
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->status, pipeline::CommitStatus::kDuplicate);
  EXPECT_EQ((*store->read_resource("Task", "t1"))->version, 1);
  EXPECT_EQ(store->resource_history("Task", "t1")->size(), 1u);
  EXPECT_FALSE(store->read_resource("QuestionnaireResponse", "qr1")->has_value());
  EXPECT_EQ((*store->find_referral({"t1", "", "", ""}))->status, "requested");
}

TEST_F(SqliteStoreTest, AReplayWritesItsResourcesAndReferralStates) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
  auto rejected = request("B1", 0);
  rejected.inbound.answer_code = "AE";
  rejected.dead_letter = pipeline::DeadLetterRecord{"dl-b1", "map", "103", "no table", "OBX^1^3"};
  ASSERT_TRUE(commit_now(*store, rejected));
  EXPECT_EQ(store->stats().dead_letters, 1);
  auto fixed = with_resource("B1", task_write("t1", 1, "requested", "ehv"));
  fixed.replay_of = "dl-b1";
  fixed.referrals.push_back(
      row("t1", "urn:clinic", "REF-t1", "B1", "ehv", "food-insecurity", "requested", "", 1));
  auto outcome = commit_now(*store, fixed);
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_EQ(outcome->status, pipeline::CommitStatus::kCommitted);
  EXPECT_EQ((*store->read_resource("Task", "t1"))->version, 1);
  EXPECT_EQ(*store->find_resource_id("Task", "urn:clinic", "REF-t1"), "t1");
  EXPECT_EQ((*store->find_referral({"", "", "", "B1"}))->referral_id, "t1");
  EXPECT_EQ(store->stats().dead_letters, 0);  // none waiting for an operator any more
}

TEST_F(SqliteStoreTest, SearchMatchesEveryParameterAndAnyOfItsValues) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(commit_now(*store, with_resource("k1", task_write("t1", 1, "requested", "ehv"))));
  ASSERT_TRUE(commit_now(*store, with_resource("k2", task_write("t2", 1, "accepted", "ehv"))));
  ASSERT_TRUE(commit_now(*store, with_resource("k3", task_write("t3", 1, "accepted", "wic"))));
  ASSERT_TRUE(commit_now(*store, with_resource("k4", task_write("t4", 1, "completed", "ehv"))));
  ASSERT_TRUE(commit_now(*store, with_resource("k5", questionnaire_response("qr1"))));
  auto ids = [&](ResourceQuery q) {
    std::vector<std::string> out;
    auto page = store->search_resources(q);
    if (!page) return std::vector<std::string>{"error: " + page.error().message};
    for (const auto& r : page->rows)
      out.push_back(r.id);
    std::sort(out.begin(), out.end());
    return out;
  };
  ResourceQuery q;
  q.type = "Task";
  q.params = {{"status", {"requested", "accepted"}}, {"owner", {"ehv"}}};
  EXPECT_EQ(ids(q), (std::vector<std::string>{"t1", "t2"}));
  q.params = {{"status", {"accepted"}}, {"owner", {"ehv", "wic"}}};
  EXPECT_EQ(ids(q), (std::vector<std::string>{"t2", "t3"}));
  // The same parameter twice: both must match.
  q.params = {{"status", {"accepted"}}, {"status", {"completed"}}};
  EXPECT_EQ(ids(q), std::vector<std::string>{});
  q.params = {{"status", {"completed"}}};  // Tasks only, not the QuestionnaireResponse
  EXPECT_EQ(ids(q), std::vector<std::string>{"t4"});
  q.params = {{"status", {}}};
  EXPECT_EQ(store->search_resources(q)->total, 0);
  q.params = {{"nope", {"x"}}};
  EXPECT_EQ(store->search_resources(q)->total, 0);
  // Too many values to bind is the client's mistake.
  q.params = {{"_id", std::vector<std::string>(500, "t1")}};
  EXPECT_EQ(store->search_resources(q).error().kind, ErrorKind::kInvalid);
}

TEST_F(SqliteStoreTest, SearchPagesNewestUpdateFirstThenById) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_, nullptr, clock());
  // Written together (the same update time): ordered by id.
  auto together = with_resource("k1", task_write("t-b", 1, "requested", "ehv"));
  together.resources.push_back(task_write("t-c", 1, "requested", "ehv"));
  together.resources.push_back(task_write("t-a", 1, "requested", "ehv"));
  ASSERT_TRUE(commit_now(*store, together));
  advance(std::chrono::milliseconds(3));
  ASSERT_TRUE(commit_now(*store, with_resource("k2", task_write("t-z", 1, "requested", "ehv"))));
  advance(std::chrono::milliseconds(3));
  ASSERT_TRUE(commit_now(*store, with_resource("k3", task_write("t-b", 2, "accepted", "ehv"))));
  ResourceQuery q;
  q.type = "Task";
  q.count = 2;
  std::vector<std::string> order;
  for (q.offset = 0; q.offset < 6; q.offset += 2) {
    auto page = store->search_resources(q);
    ASSERT_TRUE(page) << page.error().message;
    EXPECT_EQ(page->total, 4);
    for (const auto& r : page->rows)
      order.push_back(r.id + "/" + std::to_string(r.version));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"t-b/2", "t-z/1", "t-a/1", "t-c/1"}));
  q.count = 0;  // the total alone
  auto total_only = store->search_resources(q);
  EXPECT_EQ(total_only->total, 4);
  EXPECT_TRUE(total_only->rows.empty());
}

TEST_F(SqliteStoreTest, IdentifiersFollowTheCurrentVersion) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
  auto v1 = task_write("t1", 1, "requested", "ehv");
  v1.identifiers = {{"urn:clinic", "REF-1"}, {"urn:other", "X-1"}};
  ASSERT_TRUE(commit_now(*store, with_resource("k1", v1)));
  EXPECT_EQ(*store->find_resource_id("Task", "urn:clinic", "REF-1"), "t1");
  EXPECT_EQ(*store->find_resource_id("Task", "urn:other", "X-1"), "t1");
  EXPECT_FALSE(*store->find_resource_id("ServiceRequest", "urn:clinic", "REF-1"));
  EXPECT_FALSE(*store->find_resource_id("Task", "urn:other", "REF-1"));
  auto v2 = task_write("t1", 2, "accepted", "ehv");
  v2.identifiers = {{"urn:clinic", "REF-2"}};
  ASSERT_TRUE(commit_now(*store, with_resource("k2", v2)));
  EXPECT_EQ(*store->find_resource_id("Task", "urn:clinic", "REF-2"), "t1");
  EXPECT_FALSE(*store->find_resource_id("Task", "urn:clinic", "REF-1"));
  EXPECT_FALSE(*store->find_resource_id("Task", "urn:other", "X-1"));
}

TEST_F(SqliteStoreTest, RetentionRemovesClosedReferralsAndCountsWhatItPrunes) {
  metrics::Registry registry;
  cfg_.resource_retention = std::chrono::milliseconds(0);
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_, &registry, clock());
  for (const auto* status : {"requested", "received", "accepted", "in-progress", "on-hold",
                             "rejected", "completed", "failed", "cancelled"}) {
    store->record_referral(row(std::string("r-") + status, "urn:clinic", status, "", "ehv",
                               "food-insecurity", status, "", 1));
  }
  store->flush();
  advance(std::chrono::milliseconds(5));
  auto pruned = store->prune_now();
  ASSERT_TRUE(pruned) << pruned.error().message;
  EXPECT_EQ(*pruned, 4);
  for (const auto* open : {"requested", "received", "accepted", "in-progress", "on-hold"})
    EXPECT_TRUE(store->find_referral({std::string("r-") + open, "", "", ""})->has_value()) << open;
  for (const auto* closed : {"rejected", "completed", "failed", "cancelled"}) {
    EXPECT_FALSE(store->find_referral({std::string("r-") + closed, "", "", ""})->has_value())
        << closed;
  }
  EXPECT_EQ(metric(registry.render(), "sdoh_store_pruned_rows_total"), 4);
}

TEST_F(SqliteStoreTest, RetentionKeepsWhatIsYoungerThanItsRetention) {
  cfg_.payload_retention = std::chrono::hours(1);  // the default resource_retention: 90 days
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(commit_now(*store, with_resource("k1", task_write("t1", 1, "requested", "ehv"))));
  ASSERT_TRUE(commit_now(*store, with_resource("k2", task_write("t1", 2, "completed", "ehv"))));
  ASSERT_TRUE(commit_now(*store, with_resource("k3", questionnaire_response("qr1"))));
  store->record_referral(
      row("t1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "completed", "", 5));
  store->flush();
  ASSERT_TRUE(store->prune_now());
  EXPECT_EQ(store->resource_history("Task", "t1")->size(), 2u);
  EXPECT_TRUE(store->read_resource("QuestionnaireResponse", "qr1")->has_value());
  EXPECT_TRUE(store->find_referral({"t1", "", "", ""})->has_value());
}

TEST_F(SqliteStoreTest, SearchTotalsAndPagesAgreeWhileCommitsAreWritten) {
  auto store = *SqliteStore::open(dir_ / "gateway.db", cfg_);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, disagreements{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&, i] {
      while (!stop) {
        ResourceQuery q;
        q.type = "Task";
        q.count = 1000;
        if (i % 2 == 1) q.params = {{"status", {"requested"}}};
        auto page = store->search_resources(q);
        if (!page) {
          ++failures;
          continue;
        }
        if (static_cast<std::int64_t>(page->rows.size()) != page->total) ++disagreements;
        auto task = store->read_resource("Task", "t1");
        auto history = store->resource_history("Task", "t1");
        auto id = store->find_resource_id("Task", "urn:clinic", "REF-t1");
        auto referral = store->find_referral({"t1", "", "", ""});
        if (!task || !history || !id || !referral) ++failures;
        // The history, read after the current version, has at least as many versions.
        if (task && *task && history &&
            static_cast<std::int64_t>(history->size()) < (*task)->version) {
          ++disagreements;
        }
      }
    });
  }
  for (int i = 1; i <= 40; ++i) {
    auto r = with_resource("w" + std::to_string(i),
                           task_write("t" + std::to_string(i), 1, "requested", "ehv"));
    r.referrals.push_back(row("t" + std::to_string(i), "urn:clinic", "REF-" + std::to_string(i), "",
                              "ehv", "food-insecurity", "requested", "", 1));
    ASSERT_TRUE(commit_now(*store, r));
    if (i > 1) {
      auto update = with_resource("u" + std::to_string(i), task_write("t1", i, "requested", "ehv"));
      ASSERT_TRUE(commit_now(*store, update));
    }
  }
  stop = true;
  for (auto& t : readers)
    t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(disagreements, 0);
  EXPECT_EQ((*store->read_resource("Task", "t1"))->version, 40);
}

}  // namespace
}  // namespace sdoh::store

// Upgrades: a store written by an earlier schema opens with its referrals' ids, states and
// histories intact, and resends are still recognised. tests/data/store-v8.sql is a v8 store
// made from the shared samples (see its header).
namespace sdoh::store {
namespace {

class SqliteStoreUpgradeTest : public SqliteStoreTest {
 protected:
  void load_fixture(const std::string& name) {
    std::ifstream in(std::string(SDOH_SOURCE_DIR) + "/tests/data/" + name);
    std::stringstream sql;
    sql << in.rdbuf();
    ASSERT_FALSE(sql.str().empty()) << name;
    std::filesystem::create_directories(dir_);
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "gateway.db").c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    const int rc = sqlite3_exec(db, sql.str().c_str(), nullptr, nullptr, &error);
    EXPECT_EQ(rc, SQLITE_OK) << (error != nullptr ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  }
};

TEST_F(SqliteStoreUpgradeTest, AVersion8StoreKeepsItsReferralsIdsStatesAndHistory) {
  load_fixture("store-v8.sql");
  EXPECT_EQ(pragma("user_version"), "8");
  auto opened = SqliteStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(opened) << opened.error().message;
  auto& store = **opened;
  EXPECT_EQ(store.schema_version(), SqliteStore::latest_schema_version());

  // The HL7 referral, answered by its agency over RRI^I12: found by id and by the clinic's number.
  auto hl7 = store.find_referral({"30f3bd00d5ce9c0145130f6f25b893e1", "", "", ""});
  ASSERT_TRUE(hl7 && *hl7);
  EXPECT_EQ((*hl7)->status, "accepted");
  EXPECT_EQ((*hl7)->sequence, 2);
  EXPECT_EQ((*hl7)->agency_id, "ehv-durham");
  EXPECT_EQ((*hl7)->return_to, "EHR^PEDS_CLINIC_A");
  auto by_number = store.find_referral({"", "PEDS_A", "REF-2026-0001", ""});
  ASSERT_TRUE(by_number && *by_number);
  EXPECT_EQ((*by_number)->referral_id, "30f3bd00d5ce9c0145130f6f25b893e1");

  // The FHIR referral, received by PATCH: its Task's two versions.
  auto fhir = store.find_referral({"bc267ce829753d7db4a4234d1b488498", "", "", ""});
  ASSERT_TRUE(fhir && *fhir);
  EXPECT_EQ((*fhir)->status, "received");
  auto history = store.resource_history("Task", "bc267ce829753d7db4a4234d1b488498");
  ASSERT_TRUE(history);
  ASSERT_EQ(history->size(), 2u);
  auto current = store.read_resource("Task", "bc267ce829753d7db4a4234d1b488498");
  ASSERT_TRUE(current && *current);
  EXPECT_EQ((*current)->version, 2);
  EXPECT_NE((*current)->json.find("\"status\":\"received\""), std::string::npos);

  // A clinic resending its REF^I12 gets the stored answer and adds nothing.
  pipeline::CommitRequest resend;
  resend.inbound = {"hl7v2", "EHR^PEDS_CLINIC_A", "A1000003", "REF^I12", "CA", "new answer", ""};
  auto outcome = commit_now(store, std::move(resend));
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_EQ(outcome->status, pipeline::CommitStatus::kDuplicate);
  EXPECT_EQ(outcome->answer_code, "CA");
}

}  // namespace
}  // namespace sdoh::store
