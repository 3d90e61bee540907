#pragma once
// The store tests' fixtures and helpers that build commits. SqliteStoreTest: a temporary
// directory and an injected clock, for tests about SQLite itself (its file, pragmas and
// migrations). StoreTest: the same, run once per engine (SQLite, PostgreSQL) for tests that use
// only the store's ports, so that both engines pass one suite.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sqlite3.h>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include "adapters/store/pg_schema.hpp"
#include "adapters/store/sql_pg.hpp"
#include "adapters/store/sql_sqlite.hpp"
#include "adapters/store/sql_store.hpp"
#include "tests/unit/support/pg_cluster.hpp"

namespace sdoh::store::store_test_support {

namespace asio = boost::asio;

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

/// A connection of a test's own to its store's database, beside the store's (SQL the ports do not
/// offer: holding a lock, reading or tampering with rows).
class RawDatabase {
 public:
  RawDatabase() = default;
  RawDatabase(RawDatabase&& other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)), conn_(std::move(other.conn_)) {}
  RawDatabase(const RawDatabase&) = delete;
  RawDatabase& operator=(const RawDatabase&) = delete;
  RawDatabase& operator=(RawDatabase&&) = delete;
  ~RawDatabase() {
    conn_.reset();
    if (handle_ != nullptr) sqlite3_close(handle_);
  }
  static Result<RawDatabase> sqlite(const std::filesystem::path& path) {
    RawDatabase db;
    if (sqlite3_open(path.c_str(), &db.handle_) != SQLITE_OK)
      return fail(Error::unavailable("cannot open " + path.string()));
    sqlite3_busy_timeout(db.handle_, 5000);
    db.conn_ = sql::sqlite_connection(db.handle_);
    return db;
  }
  static Result<RawDatabase> postgres(const std::string& url) {
    auto conn = sql::pg_connect(url, "");
    if (!conn) return fail(conn.error());
    RawDatabase db;
    db.conn_ = std::move(*conn);
    return db;
  }
  sql::Connection& operator*() { return *conn_; }
  sql::Connection* operator->() { return conn_.get(); }
  /// The first column of the first row ("" when none, or on an error).
  std::string text(const std::string& query) {
    sql::Statement st;
    if (!st.prepare(*conn_, query)) return "";
    auto r = st.step();
    return r && *r == sql::kRow ? st.column_text(0) : "";
  }

 private:
  sqlite3* handle_ = nullptr;
  std::unique_ptr<sql::Connection> conn_;
};

/// A test run once per engine: open_store() opens the test's store on GetParam()'s engine, the
/// SQLite file dir_/gateway.db or a PostgreSQL database of the test's own on the binary's
/// cluster (created at the first open; later opens, as after a restart, find the same one).
class StoreTest : public SqliteStoreTest, public ::testing::WithParamInterface<sql::Engine> {
 protected:
  sql::Engine engine() const { return GetParam(); }
  bool on_postgres() const { return GetParam() == sql::Engine::kPostgres; }

  Result<std::unique_ptr<SqlStore>> open_store(const config::StoreConfig& cfg,
                                               metrics::Registry* registry = nullptr,
                                               StoreClock clock = {}) {
    if (!on_postgres()) return SqlStore::open(dir_ / "gateway.db", cfg, registry, clock);
    auto url = database_url();
    if (!url) return fail(url.error());
    return SqlStore::open_postgres(*url, "", cfg, registry, std::move(clock));
  }
  /// The newest schema version of the test's engine (each engine numbers its own migrations).
  int latest_schema_version() const {
    return on_postgres() ? latest_postgres_schema_version() : SqlStore::latest_schema_version();
  }
  /// A connection of the test's own to the store's database (opened at least once before).
  Result<RawDatabase> raw_database() {
    if (!on_postgres()) return RawDatabase::sqlite(dir_ / "gateway.db");
    auto url = database_url();
    if (!url) return fail(url.error());
    return RawDatabase::postgres(*url);
  }
  /// Another connection that holds the store's write lock until it rolls back: SQLite's (BEGIN
  /// IMMEDIATE), or on PostgreSQL a lock on the inbound table that every commit's insert waits
  /// for.
  Result<RawDatabase> hold_write_lock() {
    auto db = raw_database();
    if (!db) return fail(db.error());
    auto locked = (*db)->exec(on_postgres() ? "BEGIN; LOCK TABLE inbound IN EXCLUSIVE MODE"
                                            : "BEGIN IMMEDIATE");
    if (!locked) return fail(locked.error());
    return db;
  }
  /// PostgreSQL: the sessions on the test's database that wait for a lock.
  std::int64_t sessions_waiting_for_a_lock() {
    auto db = raw_database();
    if (!db) return -1;
    const auto n = db->text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
        "wait_event_type = 'Lock'");
    return n.empty() ? -1 : std::stoll(n);
  }
  /// The test's PostgreSQL database, created at the first call.
  Result<std::string> database_url() {
    if (!url_.empty()) return url_;
    auto cluster = test::PgCluster::shared();
    if (!cluster) return fail(cluster.error());
    // The readable start of the test's name and a hash of all of it: one database per test,
    // within PostgreSQL's 63 bytes for a name.
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    const std::string full = std::string(info->test_suite_name()) + "." + info->name();
    char hash[20];
    std::snprintf(hash, sizeof hash, "%016zx", std::hash<std::string>{}(full));
    auto url = (*cluster)->create_database(std::string(info->name()).substr(0, 40) + "_" + hash);
    if (!url) return fail(url.error());
    url_ = *url;
    return url_;
  }

 private:
  std::string url_;
};

inline std::string engine_name(const ::testing::TestParamInfo<sql::Engine>& info) {
  return info.param == sql::Engine::kSqlite ? "Sqlite" : "Postgres";
}

/// Runs every TEST_P of `suite` (a StoreTest) once per engine: Engines/suite.Name/Sqlite and
/// Engines/suite.Name/Postgres.
#define SDOH_STORE_TEST_ON_EVERY_ENGINE(suite)                                       \
  INSTANTIATE_TEST_SUITE_P(Engines, suite,                                           \
                           ::testing::Values(::sdoh::store::sql::Engine::kSqlite,    \
                                             ::sdoh::store::sql::Engine::kPostgres), \
                           ::sdoh::store::store_test_support::engine_name)

/// The value of one sample ("name{labels}") in a /metrics text, -1 when absent.
inline double metric(const std::string& text, const std::string& sample) {
  const auto at = text.find("\n" + sample + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + sample.size() + 2));
}

inline pipeline::CommitRequest request(const std::string& control_id, int events = 2) {
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
inline pipeline::ReferralState row(std::string id, std::string system, std::string value,
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

inline Result<pipeline::CommitOutcome> commit_now(SqlStore& store, pipeline::CommitRequest r) {
  asio::io_context ioc;
  auto fut = asio::co_spawn(ioc, store.commit(std::move(r)), asio::use_future);
  ioc.run();
  return fut.get();
}

inline pipeline::ResourceWrite task_write(const std::string& id, std::int64_t version,
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

inline pipeline::CommitRequest with_resource(const std::string& key, pipeline::ResourceWrite w) {
  auto r = request(key, 1);
  r.inbound.protocol = "fhir";
  r.resources.push_back(std::move(w));
  return r;
}

}  // namespace sdoh::store::store_test_support
