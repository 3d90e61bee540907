// The store's audit trail (on every engine): records appended to the hash chain with the commit
// that makes the change and durably for reads; verification finds an edited record, a deleted one
// and (against an anchor) a deleted tail; a retention prune keeps the chain verifiable; search by
// entity, agent and time.
#include "adapters/store/sql_store.hpp"
#include "gateway/audit/audit_event.hpp"
#include "tests/unit/adapters/store/store_fixture.hpp"
#include "tests/unit/support/run.hpp"

namespace sdoh::store {
namespace {

using namespace store_test_support;

audit::AuditRecord read_of(std::string who, std::string reference) {
  return audit::AuditRecord(audit::AuditKind::kRead, {std::move(who), "agency", "127.0.0.1:5000"},
                            {audit::AuditEntity::resource(std::move(reference))});
}

class AuditChainTest : public StoreTest {
 protected:
  std::unique_ptr<SqlStore> open() {
    auto store = open_store(cfg_, nullptr, clock());
    EXPECT_TRUE(store) << store.error().message;
    (*store)->configure_audit({"gw-test", "sdoh.audit-anchors.v1", std::chrono::hours(24 * 365)});
    return std::move(*store);
  }
  void record(SqlStore& store, audit::AuditRecord r) {
    std::vector<audit::AuditRecord> records{std::move(r)};
    auto done = test::run(store.record(std::move(records)));
    ASSERT_TRUE(done) << done.error().message;
  }
  audit::ChainReport verify(std::vector<audit::Anchor> anchors = {}) {
    auto report =
        on_postgres()
            ? verify_postgres_audit_chain(*database_url(), "", std::move(anchors), "gw-test")
            : verify_audit_chain(dir_ / "gateway.db", std::move(anchors), "gw-test");
    EXPECT_TRUE(report) << report.error().message;
    return *report;
  }
  // What an attacker with the database does: drops the triggers that keep the trail
  // append-only.
  void tamper(const std::string& sql) {
    auto db = raw_database();
    ASSERT_TRUE(db) << db.error().message;
    const std::string drop =
        on_postgres() ? "DROP TRIGGER audit_events_append_only ON audit_events; DROP TRIGGER "
                        "audit_events_pruned_only ON audit_events; "
                      : "DROP TRIGGER audit_events_append_only; DROP TRIGGER "
                        "audit_events_pruned_only; ";
    auto done = (*db)->exec(drop + sql);
    ASSERT_TRUE(done) << done.error().message;
  }
  std::string sql_text(const std::string& sql) {
    auto db = raw_database();
    EXPECT_TRUE(db) << db.error().message;
    return db ? db->text(sql) : "";
  }
  // A record's json as text, and text back as the column's bytes, in each engine's SQL.
  std::string json_text() const {
    return on_postgres() ? "convert_from(json, 'UTF8')" : "CAST(json AS TEXT)";
  }
  std::string as_bytes(const std::string& text) const {
    return on_postgres() ? "convert_to(" + text + ", 'UTF8')" : "CAST(" + text + " AS BLOB)";
  }
};
SDOH_STORE_TEST_ON_EVERY_ENGINE(AuditChainTest);

TEST_P(AuditChainTest, RecordsAreNumberedAndEachHashesItsPredecessorAndItsContent) {
  auto store = open();
  record(*store, read_of("ehv-durham", "Task/t1"));
  record(*store, read_of("wic-east", "Task/t2"));
  store->flush();
  const auto first = sql_text("SELECT hash FROM audit_events WHERE seq = 1");
  EXPECT_EQ(sql_text("SELECT prev_hash FROM audit_events WHERE seq = 1"), audit::kGenesisHash);
  EXPECT_EQ(sql_text("SELECT prev_hash FROM audit_events WHERE seq = 2"), first);
  EXPECT_EQ(first, audit::chain_hash(audit::kGenesisHash,
                                     sql_text("SELECT json FROM audit_events WHERE seq = 1")));
  const auto report = verify();
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.records, 2);
  EXPECT_EQ(report.head_sequence, 2);
}

TEST_P(AuditChainTest, AChangeIsRecordedInTheCommitThatMakesIt) {
  auto store = open();
  auto change = request("A1", 1);
  change.audit.push_back(audit::AuditRecord(audit::AuditKind::kImport, {"EHR^PEDS_A", "sender", ""},
                                            {audit::AuditEntity::resource("Task/t9")}));
  ASSERT_TRUE(commit_now(*store, change));
  // A resend changes nothing: no second record.
  ASSERT_EQ(commit_now(*store, change)->status, pipeline::CommitStatus::kDuplicate);
  auto page = store->search_audit({"Task/t9", "", 0, 0, 10, 0});
  ASSERT_TRUE(page);
  ASSERT_EQ(page->total, 1);
  EXPECT_NE(page->events[0].find("\"action\":\"U\""), std::string::npos) << page->events[0];
}

TEST_P(AuditChainTest, TheAppendOnlyTriggersRefuseAnUpdateOrADelete) {
  auto store = open();
  record(*store, read_of("ehv-durham", "Task/t1"));
  store->flush();
  {
    auto db = raw_database();
    ASSERT_TRUE(db) << db.error().message;
    EXPECT_FALSE((*db)->exec("UPDATE audit_events SET agent = 'x'"));
    EXPECT_FALSE((*db)->exec("DELETE FROM audit_events"));
    // PostgreSQL has TRUNCATE too, which skips row triggers: refused by its own.
    if (on_postgres()) {
      EXPECT_FALSE((*db)->exec("TRUNCATE audit_events CASCADE"));
    }
    EXPECT_EQ(db->text("SELECT agent FROM audit_events WHERE seq = 1"), "ehv-durham");
  }
  EXPECT_TRUE(verify().ok);
}

TEST_P(AuditChainTest, AnEditedRecordIsFound) {
  {
    auto store = open();
    for (int i = 1; i <= 3; ++i)
      record(*store, read_of("ehv-durham", "Task/t" + std::to_string(i)));
  }
  tamper("UPDATE audit_events SET json = " +
         as_bytes("replace(" + json_text() + ", 'Task/t2', 'Task/t7')") + " WHERE seq = 2");
  const auto report = verify();
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.bad_sequence, 2);
  EXPECT_EQ(report.problem, "record 2 was edited: its content does not match its hash");
}

TEST_P(AuditChainTest, ARecordEditedWithItsHashRecomputedBreaksTheNextLink) {
  {
    auto store = open();
    for (int i = 1; i <= 3; ++i)
      record(*store, read_of("ehv-durham", "Task/t" + std::to_string(i)));
  }
  const auto json = sql_text("SELECT replace(" + json_text() +
                             ", 'Task/t2', 'Task/t7') FROM audit_events WHERE seq = 2");
  const auto forged =
      audit::chain_hash(sql_text("SELECT prev_hash FROM audit_events WHERE seq = 2"), json);
  tamper("UPDATE audit_events SET json = " +
         as_bytes("replace(" + json_text() + ", 'Task/t2', 'Task/t7')") + ", hash = '" + forged +
         "' WHERE seq = 2");
  const auto report = verify();
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.bad_sequence, 3);
}

TEST_P(AuditChainTest, ADeletedRecordIsFound) {
  {
    auto store = open();
    for (int i = 1; i <= 4; ++i)
      record(*store, read_of("ehv-durham", "Task/t" + std::to_string(i)));
  }
  tamper("DELETE FROM audit_events WHERE seq = 2");
  const auto report = verify();
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.bad_sequence, 2);
  EXPECT_EQ(report.problem, "record 2 is missing");
}

TEST_P(AuditChainTest, ADeletedTailIsFoundOnlyAgainstAnAnchor) {
  audit::Anchor anchor;
  {
    auto store = open();
    for (int i = 1; i <= 3; ++i)
      record(*store, read_of("ehv-durham", "Task/t" + std::to_string(i)));
    auto anchored = store->anchor_audit();
    ASSERT_TRUE(anchored) << anchored.error().message;
    anchor = *anchored;
    // The anchor is queued for Kafka with the head.
    auto pending = store->pending_events(0, 10);
    ASSERT_EQ(pending->size(), 1u);
    EXPECT_EQ((*pending)[0].topic, "sdoh.audit-anchors.v1");
    auto parsed = audit::parse_anchors((*pending)[0].value);
    ASSERT_TRUE(parsed) << parsed.error().message;
    ASSERT_EQ(parsed->size(), 1u);
    EXPECT_EQ((*parsed)[0].sequence, 3);
    EXPECT_EQ((*parsed)[0].hash, anchor.hash);
  }
  EXPECT_EQ(anchor.sequence, 3);
  tamper("DELETE FROM audit_entities WHERE seq = 3; DELETE FROM audit_events WHERE seq = 3");
  EXPECT_TRUE(verify().ok) << "the shorter chain is consistent in itself";
  const auto report = verify({anchor});
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.bad_sequence, 3);
  EXPECT_NE(report.problem.find("records 3 to 3 were deleted"), std::string::npos)
      << report.problem;
}

TEST_P(AuditChainTest, AnUnchangedHeadIsAnchoredOnce) {
  auto store = open();
  record(*store, read_of("ehv-durham", "Task/t1"));
  ASSERT_TRUE(store->anchor_audit());
  ASSERT_TRUE(store->anchor_audit());
  EXPECT_EQ(store->pending_events(0, 10)->size(), 1u);
}

TEST_P(AuditChainTest, APruneKeepsTheChainVerifiableFromTheFirstKeptRecord) {
  std::vector<audit::Anchor> anchors;
  {
    auto store = open();
    record(*store, read_of("ehv-durham", "Task/old1"));
    record(*store, read_of("ehv-durham", "Task/old2"));
    advance(std::chrono::hours(24 * 400));  // past the year of retention
    record(*store, read_of("ehv-durham", "Task/new"));
    ASSERT_TRUE(store->prune_now());
    store->flush();  // the prune's anchor is durable, so the relay may read it
    auto pending = store->pending_events(0, 10);
    ASSERT_TRUE(pending);
    for (const auto& e : *pending) {
      auto parsed = audit::parse_anchors(e.value);
      ASSERT_TRUE(parsed);
      anchors.insert(anchors.end(), parsed->begin(), parsed->end());
    }
    EXPECT_EQ(store->search_audit({"Task/old1", "", 0, 0, 10, 0})->total, 0);
    EXPECT_EQ(store->search_audit({"Task/new", "", 0, 0, 10, 0})->total, 1);
  }
  ASSERT_EQ(anchors.size(), 1u);
  EXPECT_EQ(anchors[0].reason, "prune");
  EXPECT_EQ(anchors[0].pruned_through, 2);
  EXPECT_EQ(anchors[0].sequence, 3);
  const auto report = verify(anchors);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.first_sequence, 3);
  EXPECT_EQ(report.records, 1);
  // A prune that no anchor records is not one the gateway made.
  audit::Anchor other = anchors[0];
  other.pruned_through = 1;
  const auto unrecorded = verify({other});
  EXPECT_FALSE(unrecorded.ok);
  EXPECT_NE(unrecorded.problem.find("no anchor records that prune"), std::string::npos);
}

TEST_P(AuditChainTest, SearchByEntityAgentAndTimeNewestFirst) {
  auto store = open();
  record(*store, read_of("ehv-durham", "Task/t1"));
  const auto later = now_ms_.load() + 60'000;
  advance(std::chrono::minutes(1));
  record(*store, read_of("wic-east", "Task/t1"));
  record(*store, read_of("ehv-durham", "Task/t2"));
  auto by_entity = store->search_audit({"Task/t1", "", 0, 0, 10, 0});
  ASSERT_EQ(by_entity->total, 2);
  EXPECT_EQ(by_entity->events[0].substr(0, 38), "{\"resourceType\":\"AuditEvent\",\"id\":\"2\",");
  EXPECT_EQ(store->search_audit({"", "ehv-durham", 0, 0, 10, 0})->total, 2);
  EXPECT_EQ(store->search_audit({"Task/t1", "ehv-durham", 0, 0, 10, 0})->total, 1);
  EXPECT_EQ(store->search_audit({"", "", later, 0, 10, 0})->total, 2);
  EXPECT_EQ(store->search_audit({"", "", 0, later - 1, 10, 0})->total, 1);
  auto one = store->audit_event(3);
  ASSERT_TRUE(one && *one);
  EXPECT_NE((*one)->find("Task/t2"), std::string::npos);
  EXPECT_FALSE(*store->audit_event(9));
}

}  // namespace
}  // namespace sdoh::store
