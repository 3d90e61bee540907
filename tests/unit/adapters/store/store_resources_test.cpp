// The SQLite store's FHIR resources (versions, conflicts, search, retention), its migrations and
// the upgrade of a store the previous release wrote.
#include "adapters/store/sql_store.hpp"
#include "tests/unit/adapters/store/store_fixture.hpp"

namespace sdoh::store {
namespace {

using namespace store_test_support;

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

// What a version 4 gateway had stored: one message with an undelivered event and one Kafka had
// acknowledged, one referral.
constexpr const char* kDataV4 = R"sql(
  INSERT INTO inbound(id, protocol, sender, dedupe_key, message_type, received_at, answer_code,
    answer, payload) VALUES (1, 'hl7v2', 'EHR^PEDS_A', 'OLD1', 'REF^I12', 1767600000000, 'CA',
    CAST('MSA|CA|OLD1' AS BLOB), CAST('MSH|...' AS BLOB));
  INSERT INTO outbox(seq, event_id, inbound_id, type, topic, key, value, created_at) VALUES (1,
    'OLD1-ev0', 1, 'org.sdoh.referral.v1', 'sdoh.referral.v1', 'r-old', CAST('{}' AS BLOB),
    1767600000000);
  INSERT INTO outbox(seq, event_id, inbound_id, type, topic, key, value, created_at,
    delivered_at) VALUES (2, 'OLD1-ev1', 1, 'org.sdoh.referral.v1', 'sdoh.referral.v1', 'r-old',
    CAST('{"delivered":true}' AS BLOB), 1767600000000, 1767600001000);
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
  auto opened = SqlStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(opened) << opened.error().message;
  auto& store = **opened;
  EXPECT_EQ(store.schema_version(), SqlStore::latest_schema_version());
  EXPECT_EQ(pragma("user_version"), std::to_string(SqlStore::latest_schema_version()));
  // The old data is all there: the undelivered event, the referral (made when last updated),
  // the dedupe record.
  auto pending = store.pending_events(0, 10);
  ASSERT_TRUE(pending);
  ASSERT_EQ(pending->size(), 1u) << "only the undelivered event is still pending";
  EXPECT_EQ((*pending)[0].event_id, "OLD1-ev0");
  EXPECT_EQ(store.stats().undelivered, 1);
  EXPECT_EQ(store.stats().undelivered_bytes, 2);  // "{}"
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

// What one request's resources do to the others, and what a resend, a replay and retention do
// (on every engine).
namespace sdoh::store {
namespace {

using namespace store_test_support;

class StoreResourcesTest : public StoreTest {};
SDOH_STORE_TEST_ON_EVERY_ENGINE(StoreResourcesTest);

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

TEST_P(StoreResourcesTest, UpdateWithTheCurrentVersionBecomesCurrentAndJoinsTheHistory) {
  auto store = *open_store(cfg_);
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

TEST_P(StoreResourcesTest, StaleExpectedVersionIsAConflictAndWritesNothingOfTheRequest) {
  auto store = *open_store(cfg_);
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

TEST_P(StoreResourcesTest, CreatingAnExistingResourceIsAConflict) {
  auto store = *open_store(cfg_);
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

TEST_P(StoreResourcesTest, AVersionThatDoesNotFollowTheCurrentOneIsRefused) {
  auto store = *open_store(cfg_);
  ASSERT_TRUE(commit_now(*store, with_resource("k1", task_write("t1", 1, "requested", "ehv"))));
  auto same = task_write("t1", 1, "accepted", "ehv");
  same.expected_version = 1;
  auto outcome = commit_now(*store, with_resource("k2", same));
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().kind, ErrorKind::kInternal);
  EXPECT_TRUE(store->health().ok);  // the caller's mistake, not the store's
}

TEST_P(StoreResourcesTest, AConflictUndoesOnlyItsOwnRequestInAGroup) {
  metrics::Registry registry;
  auto store = *open_store(cfg_, &registry);
  ASSERT_TRUE(commit_now(*store, with_resource("k0", task_write("t1", 1, "requested", "ehv"))));
  // Another connection holds the write lock: the writer waits with its first commit, and the
  // others queue behind it and are written together, as one group, once the lock is gone.
  auto other = hold_write_lock();
  ASSERT_TRUE(other) << other.error().message;
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
  ASSERT_TRUE((*other)->exec("ROLLBACK"));
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

TEST_P(StoreResourcesTest, AResendWritesNoResourcesAndNoReferralStates) {
  auto store = *open_store(cfg_);
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

TEST_P(StoreResourcesTest, AReplayWritesItsResourcesAndReferralStates) {
  auto store = *open_store(cfg_);
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

TEST_P(StoreResourcesTest, SearchMatchesEveryParameterAndAnyOfItsValues) {
  auto store = *open_store(cfg_);
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

TEST_P(StoreResourcesTest, SearchPagesNewestUpdateFirstThenById) {
  auto store = *open_store(cfg_, nullptr, clock());
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

TEST_P(StoreResourcesTest, IdentifiersFollowTheCurrentVersion) {
  auto store = *open_store(cfg_);
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

TEST_P(StoreResourcesTest, RetentionRemovesClosedReferralsAndCountsWhatItPrunes) {
  metrics::Registry registry;
  cfg_.resource_retention = std::chrono::milliseconds(0);
  auto store = *open_store(cfg_, &registry, clock());
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

TEST_P(StoreResourcesTest, RetentionKeepsWhatIsYoungerThanItsRetention) {
  cfg_.payload_retention = std::chrono::hours(1);  // the default resource_retention: 90 days
  auto store = *open_store(cfg_);
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

TEST_P(StoreResourcesTest, SearchTotalsAndPagesAgreeWhileCommitsAreWritten) {
  auto store = *open_store(cfg_);
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

using namespace store_test_support;

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
  auto opened = SqlStore::open(dir_ / "gateway.db", cfg_);
  ASSERT_TRUE(opened) << opened.error().message;
  auto& store = **opened;
  EXPECT_EQ(store.schema_version(), SqlStore::latest_schema_version());
  // Migrated with a rollback journal (schema 15 copies tables), then back in WAL mode, with
  // every foreign key holding.
  EXPECT_EQ(pragma("journal_mode"), "wal");
  EXPECT_EQ(pragma("foreign_key_check"), "");

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
