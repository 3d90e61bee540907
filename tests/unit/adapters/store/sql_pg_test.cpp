// The PostgreSQL engine of the SQL layer (adapters/store/sql_pg.cpp) and the store's schema on
// PostgreSQL (pg_schema.cpp), against a real server (tests/unit/support/pg_cluster.hpp).
#include "adapters/store/sql_pg.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <sqlite3.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "adapters/store/pg_schema.hpp"
#include "adapters/store/sql_store.hpp"
#include "tests/unit/support/pg_cluster.hpp"

namespace sdoh::store::sql {
namespace {

// --- The SQL text (no server) -------------------------------------------------------------

TEST(PgDialect, NumberedParametersBecomeDollarParametersInAnyOrder) {
  const auto text = pg_dialect("SELECT a FROM t WHERE b = ?2 AND c = ?1 AND d = ?12");
  EXPECT_EQ(text.sql, "SELECT a FROM t WHERE b = $2 AND c = $1 AND d = $12");
  EXPECT_EQ(text.parameters, 12);
}

TEST(PgDialect, QuotedTextIdentifiersAndCommentsAreLeftAlone) {
  const auto text = pg_dialect(
      "SELECT '?1', 'it''s ?2', E'\\'?3', \"?4\", ?5 -- ?6 {lock}\n/* ?7 /* ?8 */ */ ?9");
  EXPECT_EQ(text.sql,
            "SELECT '?1', 'it''s ?2', E'\\'?3', \"?4\", $5 -- ?6 {lock}\n/* ?7 /* ?8 */ */ $9");
  EXPECT_EQ(text.parameters, 9);
}

TEST(PgDialect, DollarQuotedBodiesAreLeftAlone) {
  const auto text = pg_dialect("SELECT $$ ?1 $$, $f$ {lock} ?2 $f$, ?3");
  EXPECT_EQ(text.sql, "SELECT $$ ?1 $$, $f$ {lock} ?2 $f$, $3");
  EXPECT_EQ(text.parameters, 3);
}

TEST(PgDialect, LockMarkerBecomesForUpdate) {
  EXPECT_EQ(pg_dialect("SELECT status FROM referrals WHERE referral_id = ?1 {lock}").sql,
            "SELECT status FROM referrals WHERE referral_id = $1 FOR UPDATE");
  EXPECT_EQ(pg_dialect("SELECT '{lock}'").sql, "SELECT '{lock}'");
}

TEST(PgDialect, QuestionMarkWithoutNumberIsKept) {
  const auto text = pg_dialect("SELECT doc ? 'key' FROM t");
  EXPECT_EQ(text.sql, "SELECT doc ? 'key' FROM t");
  EXPECT_EQ(text.parameters, 0);
}

TEST(PgConnect, UnparsableUrlIsAConfigErrorThatDoesNotQuoteIt) {
  auto c = pg_connect("postgresql://u:hunter2-secret@[::1/db", "");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, ErrorKind::kConfig);
  EXPECT_EQ(c.error().message.find("hunter2"), std::string::npos) << c.error().message;
}

// --- Against the server ---------------------------------------------------------------------

class SqlPg : public test::PgDatabaseTest {
 protected:
  std::unique_ptr<Connection> connect() {
    auto c = pg_connect(url_, "");
    EXPECT_TRUE(c) << (c ? "" : c.error().message);
    return c ? std::move(*c) : nullptr;
  }
  /// The first column of the first row of `sql`, as text.
  static std::string scalar(Connection& db, std::string_view sql) {
    Statement st;
    if (auto r = st.prepare(db, sql); !r) return "prepare: " + r.error().message;
    auto r = st.step();
    if (!r) return "step: " + r.error().message;
    return *r == kRow ? st.column_text(0) : "no row";
  }
};

TEST_F(SqlPg, ParametersArriveInTheirNumberedPlaces) {
  auto db = connect();
  ASSERT_TRUE(db);
  Statement st;
  ASSERT_TRUE(st.prepare(*db, "SELECT ?2 || ?1 || '?1'"));
  st.text(1, "first").text(2, "second");
  ASSERT_EQ(st.step().value_or(0), kRow);
  EXPECT_EQ(st.column_text(0), "secondfirst?1");
}

TEST_F(SqlPg, SkippedAndSurplusParametersAreToleratedAsOnSqlite) {
  auto db = connect();
  ASSERT_TRUE(db);
  Statement st;
  // ?2 is not in the text but bound (retention binds every number it might use); ?4 is beyond.
  ASSERT_TRUE(st.prepare(*db, "SELECT ?1::bigint + ?3::bigint"));
  st.integer(1, 40).integer(2, 7).integer(3, 2).integer(4, 9);
  auto r = st.step();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(st.column_int(0), 42);
  st.reset();
  st.integer(1, 1).integer(3, 2);  // ?2 left unbound: a NULL nobody reads
  r = st.step();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(st.column_int(0), 3);
}

TEST_F(SqlPg, IntegersTextAndNullRoundTrip) {
  auto db = connect();
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->exec("CREATE TABLE t (k BIGINT PRIMARY KEY, i BIGINT, s TEXT, b BYTEA)"));
  ASSERT_TRUE(run_once(*db, "INSERT INTO t(k, i, s, b) VALUES (?1, ?2, ?3, ?4)", [](Statement& st) {
    st.integer(1, 1).integer(2, INT64_MIN).text(3, "Zoë ☂").null(4);
  }));
  ASSERT_TRUE(run_once(*db, "INSERT INTO t(k, i, s, b) VALUES (?1, ?2, ?3, ?4)", [](Statement& st) {
    st.integer(1, 2).integer(2, INT64_MAX).text_or_null(3, "").blob(4, "");
  }));
  Statement st;
  ASSERT_TRUE(st.prepare(*db, "SELECT i, s, b FROM t ORDER BY k"));
  ASSERT_EQ(st.step().value_or(0), kRow);
  EXPECT_EQ(st.column_int(0), INT64_MIN);
  EXPECT_EQ(st.column_text(0), "-9223372036854775808");
  EXPECT_EQ(st.column_text(1), "Zoë ☂");
  EXPECT_TRUE(st.column_null(2));
  EXPECT_EQ(st.column_text(2), "");
  EXPECT_EQ(st.column_int(2), 0);
  ASSERT_EQ(st.step().value_or(0), kRow);
  EXPECT_EQ(st.column_int(0), INT64_MAX);
  EXPECT_TRUE(st.column_null(1));   // text_or_null("") binds NULL
  EXPECT_FALSE(st.column_null(2));  // the empty blob is not NULL
  EXPECT_EQ(st.column_text(2), "");
  EXPECT_EQ(st.step().value_or(0), kDone);
}

TEST_F(SqlPg, BlobWithNulBytesAndInvalidUtf8RoundTrips) {
  auto db = connect();
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->exec("CREATE TABLE t (b BYTEA NOT NULL)"));
  const std::string bytes("MSH|\0\xff\xfe\xc3(\x00z", 11);
  ASSERT_TRUE(
      run_once(*db, "INSERT INTO t(b) VALUES (?1)", [&](Statement& st) { st.blob(1, bytes); }));
  EXPECT_EQ(scalar(*db, "SELECT b FROM t"), bytes);
  EXPECT_EQ(scalar(*db, "SELECT octet_length(b) FROM t"), "11");
  EXPECT_EQ(scalar(*db, "SELECT encode(b, 'hex') FROM t"), "4d53487c00fffec328007a");
}

TEST_F(SqlPg, ChangesCountsTheRowsAStatementChanged) {
  auto db = connect();
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->exec("CREATE TABLE t (k BIGINT PRIMARY KEY, v TEXT)"));
  EXPECT_EQ(run_once(*db, "INSERT INTO t(k, v) SELECT g, 'x' FROM generate_series(1, 3) g"), 3);
  EXPECT_EQ(run_once(*db, "UPDATE t SET v = ?1 WHERE k >= ?2",
                     [](Statement& st) { st.text(1, "y").integer(2, 2); }),
            2);
  EXPECT_EQ(run_once(*db, "INSERT INTO t(k, v) VALUES (1, 'z') ON CONFLICT (k) DO NOTHING"), 0);
  EXPECT_EQ(run_once(*db, "DELETE FROM t WHERE k > 100"), 0);
}

TEST_F(SqlPg, StepYieldsEachRowThenDone) {
  auto db = connect();
  ASSERT_TRUE(db);
  Statement st;
  ASSERT_TRUE(st.prepare(*db, "SELECT g::bigint FROM generate_series(1, ?1) g"));
  st.integer(1, 3);
  std::vector<std::int64_t> seen;
  for (;;) {
    auto r = st.step();
    ASSERT_TRUE(r) << r.error().message;
    if (*r == kDone) break;
    ASSERT_EQ(*r, kRow);
    seen.push_back(st.column_int(0));
  }
  EXPECT_EQ(seen, (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(st.step().value_or(0), kDone);
}

TEST_F(SqlPg, AStatementRunAgainIsPreparedOncePerSetOfParameterTypes) {
  auto db = connect();
  ASSERT_TRUE(db);
  Statement st;
  ASSERT_TRUE(st.prepare(*db, "SELECT coalesce(?1, 'none')"));
  const std::vector<std::string> values = {"a", "b", "", "c", ""};
  std::vector<std::string> seen;
  for (const auto& v : values) {
    ResetOnExit reset{st};
    st.text_or_null(1, v);
    auto r = st.step();
    ASSERT_TRUE(r) << r.error().message;
    seen.push_back(st.column_text(0));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b", "none", "c", "none"}));
  // text: run unnamed once, then named; NULL: unnamed once, then named.
  EXPECT_EQ(scalar(*db, "SELECT count(*) FROM pg_prepared_statements"), "2");
}

TEST_F(SqlPg, NamedStatementsOfDestroyedCursorsAreDeallocatedBetweenTransactions) {
  auto db = connect();
  ASSERT_TRUE(db);
  for (int i = 0; i < 32; ++i) {  // kDeallocateBatch statements, each run twice (named)
    Statement st;
    ASSERT_TRUE(st.prepare(*db, "SELECT ?1::bigint"));
    for (int run = 0; run < 2; ++run) {
      ResetOnExit reset{st};
      st.integer(1, i);
      ASSERT_EQ(st.step().value_or(0), kRow);
    }
  }
  EXPECT_EQ(scalar(*db, "SELECT count(*) FROM pg_prepared_statements"), "32");
  ASSERT_TRUE(db->begin_read());
  EXPECT_EQ(scalar(*db, "SELECT count(*) FROM pg_prepared_statements"), "0");
  EXPECT_TRUE(db->exec("COMMIT"));
}

TEST_F(SqlPg, BooleanNumericAndRealColumnsRead) {
  auto db = connect();
  ASSERT_TRUE(db);
  Statement st;
  ASSERT_TRUE(st.prepare(*db,
                         "SELECT pg_is_in_recovery(), true, 12345678901234567890::numeric, "
                         "-1.50::numeric, 0.001::numeric, sum(x), 2.5::float8 "
                         "FROM (VALUES (1::bigint), (2::bigint)) v(x)"));
  ASSERT_EQ(st.step().value_or(0), kRow);
  EXPECT_EQ(st.column_int(0), 0);  // a primary
  EXPECT_EQ(st.column_int(1), 1);
  EXPECT_EQ(st.column_text(2), "12345678901234567890");
  EXPECT_EQ(st.column_text(3), "-1.50");
  EXPECT_EQ(st.column_int(3), -1);
  EXPECT_EQ(st.column_text(4), "0.001");
  EXPECT_EQ(st.column_int(5), 3);  // sum(bigint) is numeric
  EXPECT_EQ(st.column_text(6), "2.5");
}

TEST_F(SqlPg, AColumnOfAnotherTypeIsRefusedByName) {
  auto db = connect();
  ASSERT_TRUE(db);
  Statement st;
  ASSERT_TRUE(st.prepare(*db, "SELECT now() AS started"));
  auto r = st.step();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInternal);
  EXPECT_NE(r.error().message.find("started"), std::string::npos) << r.error().message;
}

TEST_F(SqlPg, UniqueViolationIsAConflictWithoutTheRowsValues) {
  auto db = connect();
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->exec("CREATE TABLE t (name TEXT UNIQUE)"));
  auto insert = [&] {
    return run_once(*db, "INSERT INTO t(name) VALUES (?1)",
                    [](Statement& st) { st.text(1, "Jane Doe"); });
  };
  ASSERT_TRUE(insert());
  auto r = insert();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kConflict);
  EXPECT_NE(r.error().message.find("23505"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find("Jane"), std::string::npos) << r.error().message;
}

TEST_F(SqlPg, SyntaxErrorIsInternal) {
  auto db = connect();
  ASSERT_TRUE(db);
  Statement st;
  ASSERT_TRUE(st.prepare(*db, "SELEC 1"));
  auto r = st.step();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInternal);
  EXPECT_NE(r.error().message.find("42601"), std::string::npos) << r.error().message;
  auto e = db->exec("CREATE TABLE (");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().kind, ErrorKind::kInternal);
}

TEST_F(SqlPg, LockMarkerIsAcceptedInAWriteTransaction) {
  auto db = connect();
  ASSERT_TRUE(db);
  ASSERT_TRUE(
      db->exec("CREATE TABLE t (k BIGINT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a')"));
  ASSERT_TRUE(db->begin_write());
  Statement st;
  ASSERT_TRUE(st.prepare(*db, "SELECT v FROM t WHERE k = ?1 {lock}"));
  st.integer(1, 1);
  ASSERT_EQ(st.step().value_or(0), kRow);
  EXPECT_EQ(st.column_text(0), "a");
  st.reset();
  // The row is locked: another session cannot take it without waiting.
  auto other = connect();
  ASSERT_TRUE(other);
  ASSERT_TRUE(other->begin_write());
  auto nowait = run_once(*other, "SELECT v FROM t WHERE k = 1 FOR UPDATE NOWAIT");
  ASSERT_FALSE(nowait);
  EXPECT_EQ(nowait.error().kind, ErrorKind::kUnavailable);  // 55P03: try again
  ASSERT_TRUE(other->exec("ROLLBACK"));
  EXPECT_TRUE(db->exec("COMMIT"));
}

TEST_F(SqlPg, SentStatementsAreVisibleToTheNextReadInTheWriteTransaction) {
  auto db = connect();
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->exec("CREATE TABLE t (k BIGINT PRIMARY KEY, v BYTEA)"));
  ASSERT_TRUE(db->begin_write());
  Statement ins;
  ASSERT_TRUE(ins.prepare(*db, "INSERT INTO t(k, v) VALUES (?1, ?2)"));
  for (int k = 1; k <= 3; ++k) {  // sent without waiting (pipeline mode), the 2nd and 3rd named
    ins.integer(1, k).blob(2, std::string("v\0", 2) + std::to_string(k));
    ASSERT_TRUE(ins.send());
    ins.reset();
  }
  EXPECT_EQ(scalar(*db, "SELECT CAST(count(*) AS BIGINT) FROM t"), "3");
  ASSERT_TRUE(db->exec("COMMIT"));
  EXPECT_EQ(scalar(*db, "SELECT CAST(sum(k) AS BIGINT) FROM t"), "6");
}

TEST_F(SqlPg, ASentStatementsErrorIsFlushedAndItsSavepointUndoesOnlyIt) {
  auto db = connect();
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->exec("CREATE TABLE t (k BIGINT PRIMARY KEY)"));
  ASSERT_TRUE(db->begin_write());
  ASSERT_TRUE(db->savepoint());
  ASSERT_TRUE(run_once(*db, "INSERT INTO t VALUES (1)"));
  ASSERT_TRUE(db->release());
  ASSERT_TRUE(db->savepoint());
  Statement dup;
  ASSERT_TRUE(dup.prepare(*db, "INSERT INTO t VALUES (?1)"));
  dup.integer(1, 1);
  ASSERT_TRUE(dup.send());  // not waited for: its unique violation comes with the flush
  dup.reset();
  dup.integer(1, 2);
  ASSERT_TRUE(dup.send());  // aborted by the server after the failure before it
  auto flushed = db->flush_sent();
  ASSERT_FALSE(flushed);
  EXPECT_EQ(flushed.error().kind, ErrorKind::kConflict);
  ASSERT_TRUE(db->rollback_to());
  ASSERT_TRUE(db->release());
  ASSERT_TRUE(run_once(*db, "INSERT INTO t VALUES (3)"));
  ASSERT_TRUE(db->exec("COMMIT"));
  EXPECT_EQ(scalar(*db, "SELECT string_agg(CAST(k AS TEXT), ',' ORDER BY k) FROM t"), "1,3");
}

TEST_F(SqlPg, AdvisoryLocksSerialiseTwoWriteTransactions) {
  auto a = connect();
  auto b = connect();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->begin_write());
  ASSERT_TRUE(a->lock(kAuditChainLock));
  EXPECT_EQ(scalar(*a, "SELECT 1"), "1");  // the sent lock is held once a read returns
  ASSERT_TRUE(b->begin_write());
  auto taken = b->try_lock(kAuditChainLock);
  ASSERT_TRUE(taken);
  EXPECT_FALSE(*taken);  // held by the other transaction
  ASSERT_TRUE(a->exec("COMMIT"));
  ASSERT_TRUE(b->exec("ROLLBACK"));
  ASSERT_TRUE(b->begin_write());
  taken = b->try_lock(kAuditChainLock);
  ASSERT_TRUE(taken);
  EXPECT_TRUE(*taken);  // released with the transaction that held it
  ASSERT_TRUE(b->exec("COMMIT"));
}

TEST_F(SqlPg, TextThatIsNotUtf8IsStoredWithReplacementCharactersTheSameWayEachTime) {
  auto db = connect();
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->exec("CREATE TABLE t (k TEXT PRIMARY KEY)"));
  const std::string sender("EHR^CL\xCDNICA\0", 12);  // Latin-1 and a NUL: not UTF-8 text
  for (int attempt = 0; attempt < 2; ++attempt) {
    Statement st;
    ASSERT_TRUE(st.prepare(*db, "INSERT INTO t(k) VALUES (?1) ON CONFLICT DO NOTHING"));
    st.text(1, sender);
    auto r = st.run();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, attempt == 0 ? 1 : 0);  // the second finds the first: a resend's key matches
  }
  EXPECT_EQ(scalar(*db, "SELECT k FROM t"), "EHR^CL\xEF\xBF\xBDNICA\xEF\xBF\xBD");
}

TEST_F(SqlPg, ReadTransactionIsReadOnly) {
  auto db = connect();
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->exec("CREATE TABLE t (k BIGINT)"));
  ASSERT_TRUE(db->begin_read());
  EXPECT_EQ(scalar(*db, "SELECT current_setting('transaction_isolation')"), "repeatable read");
  auto r = run_once(*db, "INSERT INTO t VALUES (1)");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("25006"), std::string::npos) << r.error().message;
  EXPECT_TRUE(db->exec("ROLLBACK"));
}

TEST_F(SqlPg, ApplicationNameIsTheGateway) {
  auto db = connect();
  ASSERT_TRUE(db);
  EXPECT_EQ(db->engine(), Engine::kPostgres);
  EXPECT_EQ(scalar(*db, "SELECT current_setting('application_name')"), "sdoh-gateway");
}

TEST_F(SqlPg, ConnectErrorNamesHostPortAndDatabaseButNotThePassword) {
  auto c = pg_connect(
      "postgresql://postgres@127.0.0.1:" + std::to_string(cluster_->port()) + "/no_such_db",
      "s3cret-pw");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, ErrorKind::kUnavailable);
  EXPECT_NE(c.error().message.find("127.0.0.1:" + std::to_string(cluster_->port()) + "/no_such_db"),
            std::string::npos)
      << c.error().message;
  EXPECT_EQ(c.error().message.find("s3cret"), std::string::npos) << c.error().message;
}

TEST_F(SqlPg, ReconnectsAfterTheServerRestarts) {
  auto db = connect();
  ASSERT_TRUE(db);
  Statement st;
  ASSERT_TRUE(st.prepare(*db, "SELECT ?1::bigint + 1"));
  for (int i = 0; i < 2; ++i) {  // run twice: prepared by name on the first session
    ResetOnExit reset{st};
    st.integer(1, i);
    ASSERT_EQ(st.step().value_or(0), kRow);
  }
  ASSERT_TRUE(cluster_->restart());
  {
    ResetOnExit reset{st};
    st.integer(1, 40);
    auto lost = st.step();  // finds the connection closed by the restart
    ASSERT_FALSE(lost);
    EXPECT_EQ(lost.error().kind, ErrorKind::kUnavailable) << lost.error().message;
  }
  {
    ResetOnExit reset{st};
    st.integer(1, 41);  // a new session: the named statement is prepared again
    auto r = st.step();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(st.column_int(0), 42);
  }
  // A transaction begun after a restart begins on a new session at once.
  ASSERT_TRUE(cluster_->restart());
  auto begun = db->begin_write();
  ASSERT_TRUE(begun) << begun.error().message;
  EXPECT_EQ(scalar(*db, "SELECT 7::bigint"), "7");
  EXPECT_TRUE(db->exec("COMMIT"));
}

TEST_F(SqlPg, AStatementNamedBeforeARestartRunsInTheNextWriteTransaction) {
  auto db = connect();
  ASSERT_TRUE(db);
  Statement st;
  ASSERT_TRUE(st.prepare(*db, "SELECT ?1::bigint + 1"));
  ASSERT_TRUE(db->begin_write());
  for (int i = 0; i < 2; ++i) {  // sent in pipeline mode, named on the first session
    ResetOnExit reset{st};
    st.integer(1, i);
    ASSERT_EQ(st.step().value_or(0), kRow);
  }
  ASSERT_TRUE(db->exec("COMMIT"));
  ASSERT_TRUE(cluster_->restart());
  ASSERT_TRUE(db->begin_write());  // on a new session, without the old one's names
  {
    ResetOnExit reset{st};
    st.integer(1, 41);
    auto r = st.step();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(st.column_int(0), 42);
  }
  EXPECT_TRUE(db->exec("COMMIT"));
}

// --- The schema -----------------------------------------------------------------------------

class PgSchema : public SqlPg {};

TEST_F(PgSchema, MigratingTwiceLeavesTheSameVersion) {
  auto db = connect();
  ASSERT_TRUE(db);
  const int latest = latest_postgres_schema_version();
  EXPECT_EQ(migrate_postgres(*db).value_or(-1), latest);
  EXPECT_EQ(migrate_postgres(*db).value_or(-1), latest);
  EXPECT_EQ(scalar(*db, "SELECT count(*) FROM schema_version"), std::to_string(latest));
  EXPECT_EQ(scalar(*db, "SELECT max(version) FROM schema_version"), std::to_string(latest));
}

TEST_F(PgSchema, ADatabaseNewerThanTheBuildIsRefused) {
  auto db = connect();
  ASSERT_TRUE(db);
  ASSERT_TRUE(migrate_postgres(*db));
  const int newer = latest_postgres_schema_version() + 1;
  ASSERT_TRUE(run_once(*db, "INSERT INTO schema_version(version) VALUES (?1)",
                       [&](Statement& st) { st.integer(1, newer); }));
  auto r = migrate_postgres(*db);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kUnavailable);
  EXPECT_NE(
      r.error().message.find("schema version " + std::to_string(newer) + ", newer than this build"),
      std::string::npos)
      << r.error().message;
}

TEST_F(PgSchema, TwoGatewaysMigratingAtOnceBothSucceed) {
  auto a = connect();
  auto b = connect();
  ASSERT_TRUE(a && b);
  Result<int> ra = 0, rb = 0;
  std::thread ta([&] { ra = migrate_postgres(*a); });
  std::thread tb([&] { rb = migrate_postgres(*b); });
  ta.join();
  tb.join();
  ASSERT_TRUE(ra) << ra.error().message;
  ASSERT_TRUE(rb) << rb.error().message;
  EXPECT_EQ(*ra, latest_postgres_schema_version());
  EXPECT_EQ(*rb, latest_postgres_schema_version());
  EXPECT_EQ(scalar(*a, "SELECT count(*) FROM schema_version"),
            std::to_string(latest_postgres_schema_version()));
}

TEST_F(PgSchema, TheAuditTrailIsAppendOnly) {
  auto db = connect();
  ASSERT_TRUE(db);
  ASSERT_TRUE(migrate_postgres(*db));
  for (int seq = 1; seq <= 2; ++seq) {
    ASSERT_TRUE(run_once(*db,
                         "INSERT INTO audit_events(seq, recorded, action, agent, entity, "
                         "prev_hash, hash, json) VALUES (?1, 0, 'C', 'a', 'e', '', 'h', ?2)",
                         [&](Statement& st) { st.integer(1, seq).blob(2, "{}"); }));
  }
  auto update = run_once(*db, "UPDATE audit_events SET agent = 'b' WHERE seq = 1");
  ASSERT_FALSE(update);
  EXPECT_NE(update.error().message.find("the audit trail is append-only"), std::string::npos)
      << update.error().message;
  auto remove = run_once(*db, "DELETE FROM audit_events WHERE seq = 1");
  ASSERT_FALSE(remove);
  EXPECT_NE(remove.error().message.find("removed only by a retention prune"), std::string::npos)
      << remove.error().message;
  EXPECT_FALSE(db->exec("TRUNCATE audit_events"));
  // A prune point covers seq 1: it may go, seq 2 may not; the prune point itself stays.
  ASSERT_TRUE(run_once(*db,
                       "INSERT INTO audit_prunes(pruned_through, hash, pruned_at) "
                       "VALUES (1, 'h', 0)"));
  EXPECT_EQ(run_once(*db, "DELETE FROM audit_events WHERE seq = 1").value_or(-1), 1);
  EXPECT_FALSE(run_once(*db, "DELETE FROM audit_events WHERE seq = 2"));
  EXPECT_FALSE(run_once(*db, "DELETE FROM audit_prunes"));
  EXPECT_FALSE(run_once(*db, "UPDATE audit_prunes SET hash = 'x'"));
}

TEST_F(PgSchema, IdentityColumnsNumberRowsAndOffsetIsQuoted) {
  auto db = connect();
  ASSERT_TRUE(db);
  ASSERT_TRUE(migrate_postgres(*db));
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(run_once(*db,
                         "INSERT INTO outbox(event_id, type, topic, key, value, created_at) "
                         "VALUES (?1, 't', 'topic', 'k', ?2, 0)",
                         [&](Statement& st) {
                           st.text(1, "e" + std::to_string(i)).blob(2, std::string("\0v", 2));
                         }));
  }
  EXPECT_EQ(scalar(*db, "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM outbox"), "1,2");
  ASSERT_TRUE(run_once(*db,
                       "INSERT INTO delivery_offsets(topic, partition, \"offset\") "
                       "VALUES ('t', 0, 5)"));
  EXPECT_EQ(scalar(*db, "SELECT \"offset\" FROM delivery_offsets"), "5");
}

/// Table -> its columns in order, as "name type nullable".
using Shape = std::map<std::string, std::vector<std::string>>;

Shape sqlite_shape(const std::filesystem::path& file) {
  Shape shape;
  sqlite3* db = nullptr;
  sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT m.name, c.name, c.type, c.\"notnull\", c.pk FROM sqlite_master m, "
                     "pragma_table_info(m.name) c WHERE m.type = 'table' AND m.name NOT LIKE "
                     "'sqlite_%' ORDER BY m.name, c.cid",
                     -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    auto text = [&](int i) {
      return std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, i)));
    };
    const std::string type = text(2) == "INTEGER" ? "bigint" : text(2) == "BLOB" ? "bytea" : "text";
    const bool nullable = sqlite3_column_int(st, 3) == 0 && sqlite3_column_int(st, 4) == 0;
    shape[text(0)].push_back(text(1) + " " + type + (nullable ? " null" : " not null"));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return shape;
}

std::vector<std::string> sqlite_indexes(const std::filesystem::path& file) {
  std::vector<std::string> names;
  sqlite3* db = nullptr;
  sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     // inbound_keys fills SQLite's in-memory dedupe keys at open; PostgreSQL
                     // keeps its unique index on them instead.
                     "SELECT name FROM sqlite_master WHERE type IN ('index', 'trigger') AND name "
                     "NOT LIKE 'sqlite_%' AND name <> 'inbound_keys' ORDER BY name",
                     -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW)
    names.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return names;
}

TEST_F(PgSchema, HasEveryTableColumnIndexAndTriggerOfTheSqliteSchema) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("sdoh_pg_shape_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    auto store = SqlStore::open(dir / "gateway.db", config::StoreConfig{}, nullptr, {});
    ASSERT_TRUE(store) << store.error().message;
  }
  const auto expected = sqlite_shape(dir / "gateway.db");
  const auto expected_names = sqlite_indexes(dir / "gateway.db");
  std::filesystem::remove_all(dir);
  ASSERT_GE(expected.size(), 20u);

  auto db = connect();
  ASSERT_TRUE(db);
  ASSERT_TRUE(migrate_postgres(*db));
  Shape actual;
  Statement st;
  ASSERT_TRUE(st.prepare(*db,
                         "SELECT table_name::text, column_name::text, data_type::text, "
                         "is_nullable::text FROM information_schema.columns WHERE table_schema = "
                         "'public' AND table_name <> 'schema_version' "
                         "ORDER BY table_name, ordinal_position"));
  for (;;) {
    auto r = st.step();
    ASSERT_TRUE(r) << r.error().message;
    if (*r == kDone) break;
    actual[st.column_text(0)].push_back(st.column_text(1) + " " + st.column_text(2) +
                                        (st.column_text(3) == "YES" ? " null" : " not null"));
  }
  EXPECT_EQ(actual, expected);

  std::vector<std::string> names;
  Statement idx;
  ASSERT_TRUE(idx.prepare(*db,
                          "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' AND "
                          "indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key' "
                          "UNION ALL SELECT tgname::text FROM pg_trigger WHERE NOT tgisinternal "
                          "AND tgname NOT LIKE '%\\_not\\_truncated' ORDER BY 1"));
  for (;;) {
    auto r = idx.step();
    ASSERT_TRUE(r) << r.error().message;
    if (*r == kDone) break;
    names.push_back(idx.column_text(0));
  }
  EXPECT_EQ(names, expected_names);
}

}  // namespace
}  // namespace sdoh::store::sql
