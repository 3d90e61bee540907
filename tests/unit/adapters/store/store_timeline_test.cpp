// The SQLite store's referral timelines: written in the commit that changes the referral, kept
// after the referral's Task and state are pruned, pruned after the measure window, filled by the
// migration from the referrals an older store has.
#include <sqlite3.h>

#include "adapters/store/sql_store.hpp"
#include "tests/unit/adapters/store/store_fixture.hpp"

namespace sdoh::store {
namespace {

using namespace store_test_support;

class StoreTimelineTest : public StoreTest {};
SDOH_STORE_TEST_ON_EVERY_ENGINE(StoreTimelineTest);

pipeline::CommitRequest referral_change(const std::string& key, pipeline::ReferralState state) {
  auto r = request(key, 1);
  r.referrals.push_back(std::move(state));
  return r;
}

std::optional<measures::ReferralTimeline> timeline_of(const SqlStore& store,
                                                      const std::string& id) {
  auto all = store.timelines(0);
  EXPECT_TRUE(all) << all.error().message;
  for (auto& t : *all)
    if (t.referral_id == id) return t;
  return std::nullopt;
}

TEST_P(StoreTimelineTest, ACommitThatChangesAReferralAdvancesItsTimeline) {
  auto store = *open_store(cfg_, nullptr, clock());
  const auto made = now_ms_.load();
  auto first = row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "requested", "", 1);
  first.race = "2054-5";
  first.zip3 = "277";
  first.clinic = "PEDS_CLINIC_A";
  ASSERT_TRUE(commit_now(*store, referral_change("k1", first)));
  advance(std::chrono::hours(2));
  ASSERT_TRUE(commit_now(*store, referral_change("k2", row("r1", "urn:clinic", "REF-1", "", "ehv",
                                                           "food-insecurity", "accepted", "", 2))));
  const auto t = timeline_of(*store, "r1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->created_ms, made);
  EXPECT_EQ(t->released_ms, made);
  EXPECT_EQ(t->accepted_ms, made + 2 * 3'600'000);
  EXPECT_EQ(t->status, "accepted");
  EXPECT_EQ(t->race, "2054-5");
  EXPECT_EQ(t->zip3, "277");
  EXPECT_EQ(t->clinic, "PEDS_CLINIC_A");
}

TEST_P(StoreTimelineTest, AResendRecordsNoSecondStep) {
  auto store = *open_store(cfg_, nullptr, clock());
  ASSERT_TRUE(
      commit_now(*store, referral_change("k1", row("r1", "urn:clinic", "REF-1", "", "ehv",
                                                   "food-insecurity", "requested", "", 1))));
  advance(std::chrono::hours(1));
  const auto accepted =
      row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "accepted", "", 2);
  ASSERT_TRUE(commit_now(*store, referral_change("k2", accepted)));
  const auto first_accept = timeline_of(*store, "r1")->accepted_ms;
  advance(std::chrono::hours(1));
  auto resent = commit_now(*store, referral_change("k2", accepted));
  ASSERT_TRUE(resent);
  EXPECT_EQ(resent->status, pipeline::CommitStatus::kDuplicate);
  EXPECT_EQ(timeline_of(*store, "r1")->accepted_ms, first_accept);
}

TEST_P(StoreTimelineTest, ACommitThatFailsWritesNoTimeline) {
  auto store = *open_store(cfg_, nullptr, clock());
  auto stale = row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "requested", "", 1);
  stale.expected_sequence = 3;  // not where the referral is: kConflict, nothing written
  EXPECT_FALSE(commit_now(*store, referral_change("k1", stale)));
  EXPECT_FALSE(timeline_of(*store, "r1"));
}

TEST_P(StoreTimelineTest, PruningAClosedReferralsTaskAndStateLeavesItsTimeline) {
  cfg_.resource_retention = std::chrono::hours(1);
  cfg_.timeline_retention = std::chrono::hours(24 * 395);
  auto store = *open_store(cfg_, nullptr, clock());
  auto r = referral_change(
      "k1", row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "requested", "", 1));
  r.resources.push_back(task_write("r1", 1, "requested", "ehv"));
  ASSERT_TRUE(commit_now(*store, std::move(r)));
  auto done = referral_change(
      "k2", row("r1", "urn:clinic", "REF-1", "", "ehv", "food-insecurity", "completed", "", 2));
  done.resources.push_back(task_write("r1", 2, "completed", "ehv"));
  ASSERT_TRUE(commit_now(*store, std::move(done)));
  advance(std::chrono::hours(2));
  ASSERT_TRUE(store->prune_now());
  EXPECT_FALSE(store->read_resource("Task", "r1")->has_value());
  EXPECT_FALSE(store->find_referral({"r1", "", "", ""})->has_value());
  const auto t = timeline_of(*store, "r1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->outcome, "completed");
}

TEST_P(StoreTimelineTest, TimelinesClosedBeforeTheWindowArePrunedOpenOnesNever) {
  cfg_.timeline_retention = std::chrono::hours(24);
  auto store = *open_store(cfg_, nullptr, clock());
  ASSERT_TRUE(
      commit_now(*store, referral_change("k1", row("closed", "urn:clinic", "REF-1", "", "ehv",
                                                   "food-insecurity", "requested", "", 1))));
  ASSERT_TRUE(
      commit_now(*store, referral_change("k2", row("open", "urn:clinic", "REF-2", "", "ehv",
                                                   "food-insecurity", "requested", "", 1))));
  ASSERT_TRUE(
      commit_now(*store, referral_change("k3", row("closed", "urn:clinic", "REF-1", "", "ehv",
                                                   "food-insecurity", "cancelled", "", 2))));
  advance(std::chrono::hours(24));  // exactly the window: still kept
  ASSERT_TRUE(store->prune_now());
  EXPECT_TRUE(timeline_of(*store, "closed"));
  advance(std::chrono::milliseconds(1));
  ASSERT_TRUE(store->prune_now());
  EXPECT_FALSE(timeline_of(*store, "closed"));
  EXPECT_TRUE(timeline_of(*store, "open"));
}

TEST_P(StoreTimelineTest, TimelinesReadsThoseStartedSinceAndEveryOpenOne) {
  auto store = *open_store(cfg_, nullptr, clock());
  ASSERT_TRUE(
      commit_now(*store, referral_change("k1", row("old-open", "urn:clinic", "A", "", "ehv",
                                                   "food-insecurity", "requested", "", 1))));
  ASSERT_TRUE(
      commit_now(*store, referral_change("k2", row("old-closed", "urn:clinic", "B", "", "ehv",
                                                   "food-insecurity", "requested", "", 1))));
  ASSERT_TRUE(
      commit_now(*store, referral_change("k3", row("old-closed", "urn:clinic", "B", "", "ehv",
                                                   "food-insecurity", "rejected", "", 2))));
  advance(std::chrono::hours(1));
  const auto since = now_ms_.load();
  ASSERT_TRUE(
      commit_now(*store, referral_change("k4", row("new", "urn:clinic", "C", "", "ehv",
                                                   "food-insecurity", "requested", "", 1))));
  auto read = store->timelines(since);
  ASSERT_TRUE(read);
  std::vector<std::string> ids;
  for (const auto& t : *read)
    ids.push_back(t.referral_id);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"new", "old-open"}));
}

TEST_F(SqliteStoreTest, TheMigrationFillsTimelinesFromTheReferralsAStoreHas) {
  {
    auto store = *SqlStore::open(dir_ / "gateway.db", cfg_, nullptr, clock());
    for (const auto& [id, status, business] :
         {std::tuple{"waiting", "requested", ""}, std::tuple{"held", "requested", "no-route"},
          std::tuple{"accepted", "accepted", ""}, std::tuple{"done", "completed", "enrolled"}}) {
      store->record_referral(row(id, "urn:clinic", id, "",
                                 std::string(business) == "no-route" ? "" : "ehv",
                                 "food-insecurity", status, business, 2));
    }
    store->flush();
  }
  {
    // As a store of schema 10 has it: referrals, no timelines, and none of the tables of later
    // versions.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "gateway.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(
        sqlite3_exec(db,
                     "DROP TABLE referral_timeline; DROP TABLE auth_assertions; DROP TABLE "
                     "auth_signing_keys; DROP TABLE audit_events; DROP TABLE "
                     "audit_entities; DROP TABLE audit_prunes; DROP TABLE relay_leases; ALTER "
                     "TABLE outbox DROP COLUMN bucket; DROP INDEX inbound_keys; "
                     "PRAGMA user_version=10;",
                     nullptr, nullptr, nullptr),
        SQLITE_OK);
    sqlite3_close(db);
  }
  advance(std::chrono::hours(5));
  auto store = *SqlStore::open(dir_ / "gateway.db", cfg_, nullptr, clock());
  const auto made = now_ms_.load() - 5 * 3'600'000;
  const auto waiting = timeline_of(*store, "waiting");
  ASSERT_TRUE(waiting);
  EXPECT_EQ(waiting->released_ms, made);
  EXPECT_EQ(timeline_of(*store, "held")->released_ms, 0);
  EXPECT_EQ(timeline_of(*store, "held")->held_reason(), "no-route");
  EXPECT_EQ(timeline_of(*store, "accepted")->accepted_ms, made);
  const auto done = timeline_of(*store, "done");
  EXPECT_EQ(done->outcome, "completed");
  EXPECT_EQ(done->closed_ms, made);
  EXPECT_TRUE(done->reached_accepted());  // no time for it, but the funnel counts it
  EXPECT_EQ(done->accepted_ms, 0);
}

}  // namespace
}  // namespace sdoh::store
