#include "adapters/store/sqlite_store.hpp"

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <functional>
#include <future>
#include <limits>
#include <mutex>
#include <set>
#include <sqlite3.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "gateway/log/log.hpp"

namespace sdoh::store {

namespace asio = boost::asio;

namespace {

// Read-only connections for the reads of HTTP handlers and other io threads (FHIR resources,
// referrals), lent one at a time; a caller waits only while all of them are lent.
constexpr int kResourceReaders = 4;

// Each entry moves the schema from version i to i+1. Never edit a released entry: add one.
const std::vector<const char*> kMigrations = {
    // 1: the store's identity.
    R"sql(
      CREATE TABLE gateway_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;
      INSERT INTO gateway_meta(key, value) VALUES ('created_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
    )sql",
    // 2: inbound messages (dedupe + original answers), the transactional outbox, dead letters.
    R"sql(
      CREATE TABLE inbound (
        id           INTEGER PRIMARY KEY,
        protocol     TEXT NOT NULL,
        sender       TEXT NOT NULL,
        dedupe_key   TEXT,              -- NULL: nothing to dedupe on
        message_type TEXT NOT NULL,
        received_at  INTEGER NOT NULL,  -- unix ms
        answer_code  TEXT NOT NULL,
        answer       BLOB NOT NULL,     -- returned as is to a resend
        payload      BLOB,              -- the message as received; NULL once pruned
        UNIQUE (protocol, sender, dedupe_key)
      ) STRICT;
      CREATE TABLE outbox (
        seq          INTEGER PRIMARY KEY,  -- commit order
        event_id     TEXT NOT NULL UNIQUE,
        inbound_id   INTEGER REFERENCES inbound(id),
        type         TEXT NOT NULL,
        topic        TEXT NOT NULL,
        key          TEXT NOT NULL,
        value        BLOB NOT NULL,
        created_at   INTEGER NOT NULL,
        delivered_at INTEGER,              -- NULL until Kafka acknowledged it
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT
      ) STRICT;
      CREATE INDEX outbox_undelivered ON outbox(seq) WHERE delivered_at IS NULL;
      CREATE INDEX outbox_delivered_at ON outbox(delivered_at) WHERE delivered_at IS NOT NULL;
      CREATE TABLE dead_letters (
        id             INTEGER PRIMARY KEY,
        dead_letter_id TEXT NOT NULL UNIQUE,
        inbound_id     INTEGER REFERENCES inbound(id),
        created_at     INTEGER NOT NULL,
        stage          TEXT NOT NULL,
        error_code     TEXT NOT NULL,
        error_text     TEXT NOT NULL,
        location       TEXT NOT NULL,
        replayed_at    INTEGER
      ) STRICT;
    )sql",
    // 3: events Kafka refuses for good leave the queue as dead letters; where deliveries
    // landed (restart reconciliation); indexes for retention.
    R"sql(
      ALTER TABLE outbox ADD COLUMN dead_at INTEGER;  -- refused for good; see dead_letters
      DROP INDEX outbox_undelivered;
      CREATE INDEX outbox_undelivered ON outbox(seq) WHERE delivered_at IS NULL AND dead_at IS NULL;
      CREATE INDEX outbox_inbound ON outbox(inbound_id);
      ALTER TABLE dead_letters ADD COLUMN outbox_seq INTEGER;  -- publish failures: the event
      ALTER TABLE dead_letters ADD COLUMN replay_outcome TEXT;
      CREATE INDEX dead_letters_inbound ON dead_letters(inbound_id);
      CREATE TABLE delivery_offsets (
        topic     TEXT NOT NULL,
        partition INTEGER NOT NULL,
        offset    INTEGER NOT NULL,  -- the highest offset Kafka acknowledged for our events
        PRIMARY KEY (topic, partition)
      ) STRICT;
    )sql",
    // 4: referral state for the closed loop: how an agency's answer finds its referral, the
    // current status and the sequence of its last status event.
    R"sql(
      CREATE TABLE referrals (
        referral_id          TEXT PRIMARY KEY,
        clinic_number_system TEXT NOT NULL,
        clinic_number_value  TEXT NOT NULL,
        source_control_id    TEXT NOT NULL,
        agency_id            TEXT NOT NULL,
        category             TEXT NOT NULL,
        status               TEXT NOT NULL,
        business_status      TEXT NOT NULL,
        sequence             INTEGER NOT NULL,
        updated_at           INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX referrals_clinic_number ON referrals(clinic_number_value);
      CREATE INDEX referrals_source ON referrals(source_control_id);
    )sql",
    // 5: FHIR resources: the current version of each, every kept version (history), and what
    // they are found by (identifiers, search parameters). Referrals remember when they began.
    R"sql(
      CREATE TABLE resources (
        type         TEXT NOT NULL,
        id           TEXT NOT NULL,
        version      INTEGER NOT NULL,
        last_updated TEXT NOT NULL,     -- RFC 3339, meta.lastUpdated
        updated_at   INTEGER NOT NULL,  -- unix ms, for retention
        source       TEXT NOT NULL,     -- the client that sent it
        PRIMARY KEY (type, id)
      ) STRICT;
      CREATE INDEX resources_updated ON resources(updated_at);
      CREATE TABLE resource_history (
        type         TEXT NOT NULL,
        id           TEXT NOT NULL,
        version      INTEGER NOT NULL,
        last_updated TEXT NOT NULL,
        updated_at   INTEGER NOT NULL,
        json         BLOB NOT NULL,
        PRIMARY KEY (type, id, version)
      ) STRICT;
      CREATE INDEX resource_history_updated ON resource_history(updated_at);
      CREATE TABLE resource_identifiers (
        type   TEXT NOT NULL,
        system TEXT NOT NULL,
        value  TEXT NOT NULL,
        id     TEXT NOT NULL,
        PRIMARY KEY (type, system, value, id)
      ) STRICT;
      CREATE INDEX resource_identifiers_id ON resource_identifiers(type, id);
      CREATE TABLE resource_search (
        type  TEXT NOT NULL,
        id    TEXT NOT NULL,
        name  TEXT NOT NULL,
        value TEXT NOT NULL
      ) STRICT;
      CREATE INDEX resource_search_lookup ON resource_search(type, name, value);
      CREATE INDEX resource_search_id ON resource_search(type, id);
      ALTER TABLE referrals ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
      UPDATE referrals SET created_at = updated_at;
      ALTER TABLE referrals ADD COLUMN overdue_at INTEGER;  -- its one overdue event was raised
      CREATE INDEX referrals_waiting ON referrals(created_at) WHERE status = 'requested' AND
        overdue_at IS NULL;
      ALTER TABLE referrals ADD COLUMN return_to TEXT NOT NULL DEFAULT '';   -- HL7 sender
      ALTER TABLE referrals ADD COLUMN return_pid TEXT NOT NULL DEFAULT '';  -- PID-3 as sent
      ALTER TABLE referrals ADD COLUMN race TEXT NOT NULL DEFAULT '';        -- equity codes
      ALTER TABLE referrals ADD COLUMN ethnicity TEXT NOT NULL DEFAULT '';
      ALTER TABLE referrals ADD COLUMN language TEXT NOT NULL DEFAULT '';
      CREATE TABLE outbound (
        id              INTEGER PRIMARY KEY,
        destination     TEXT NOT NULL,     -- host:port
        referral_id     TEXT NOT NULL,
        message         BLOB NOT NULL,
        created_at      INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        done_at         INTEGER,           -- acknowledged (or refused for good)
        outcome         TEXT,              -- AA/CA, or why it was given up
        last_error      TEXT
      ) STRICT;
      CREATE INDEX outbound_due ON outbound(next_attempt_at) WHERE done_at IS NULL;
    )sql",
    // 6: indexes for FHIR searches (a type's resources newest first; parameter lookups that
    // never touch the table) and for the retention of closed referrals.
    R"sql(
      CREATE INDEX resources_recent ON resources(type, updated_at DESC, id);
      DROP INDEX resource_search_lookup;
      CREATE INDEX resource_search_lookup ON resource_search(type, name, value, id);
      CREATE INDEX referrals_closed ON referrals(updated_at) WHERE status IN ('rejected',
        'completed', 'failed', 'cancelled');
    )sql",
    // 7: the overdue clock runs from when a referral began waiting for its agency (its last
    // change: creation, or the release of a hold), not from its creation.
    R"sql(
      DROP INDEX referrals_waiting;
      CREATE INDEX referrals_waiting ON referrals(updated_at) WHERE status = 'requested' AND
        overdue_at IS NULL;
    )sql",
    // 8: the patient's pseudonym, so that a screening does not open a second referral for a need
    // the child already has an open one for.
    R"sql(
      ALTER TABLE referrals ADD COLUMN patient TEXT NOT NULL DEFAULT '';
      CREATE INDEX referrals_open_by_patient ON referrals(patient, category) WHERE patient <> ''
        AND status NOT IN ('rejected', 'completed', 'failed', 'cancelled');
    )sql",
};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<void> exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err != nullptr ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    return fail(Error::unavailable(message));
  }
  return {};
}

Result<int> user_version(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr) != SQLITE_OK) {
    return fail(Error::unavailable(sqlite3_errmsg(db)));
  }
  int version = 0;
  if (sqlite3_step(stmt) == SQLITE_ROW) version = sqlite3_column_int(stmt, 0);
  sqlite3_finalize(stmt);
  return version;
}

/// A prepared statement, reset after each use.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() {
    if (stmt_ != nullptr) sqlite3_finalize(stmt_);
  }
  Result<void> prepare(sqlite3* db, const char* sql) {
    db_ = db;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
      return fail(Error::internal(std::string("prepare: ") + sqlite3_errmsg(db)));
    }
    return {};
  }
  Statement& text(int i, std::string_view v) {
    // A null pointer would bind NULL, which equals nothing: an empty view is the empty text.
    sqlite3_bind_text(stmt_, i, v.data() != nullptr ? v.data() : "", static_cast<int>(v.size()),
                      SQLITE_STATIC);
    return *this;
  }
  Statement& text_or_null(int i, std::string_view v) {
    if (v.empty()) {
      sqlite3_bind_null(stmt_, i);
    } else {
      text(i, v);
    }
    return *this;
  }
  Statement& blob(int i, std::string_view v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Statement& integer(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  /// Steps once: SQLITE_ROW or SQLITE_DONE, else an error.
  Result<int> step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) return rc;
    return fail(Error::unavailable(sqlite3_errmsg(db_)));
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::string column_text(int i) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
    return p == nullptr ? std::string()
                        : std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i)));
  }
  std::int64_t column_int(int i) const { return sqlite3_column_int64(stmt_, i); }
  sqlite3_stmt* raw() const { return stmt_; }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

/// Resets a statement when leaving scope.
struct ResetOnExit {
  Statement& s;
  ~ResetOnExit() { s.reset(); }
};

/// A read-only connection with the statements of the frequent reads prepared once. Used by one
/// thread at a time: SqliteStore::Impl lends it (lease_reader).
struct ReadConnection {
  struct Handle {
    sqlite3* db = nullptr;
    Handle() = default;
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() {
      if (db != nullptr) sqlite3_close_v2(db);
    }
  } handle;  // first member: closed after every statement below is finalized

  Statement begin, end;  // a read transaction: one snapshot for several statements
  Statement current_resource, resource_version, resource_id, resource_history;
  Statement referral_by_id, referral_by_number, referral_by_system_number, referral_by_control;
  /// Searches by their SQL text (its shape: how many parameters and values; values are bound).
  std::map<std::string, std::unique_ptr<Statement>, std::less<>> searches;
  static constexpr std::size_t kMaxSearches = 64;

  sqlite3* db() const { return handle.db; }

  Result<void> open(const std::filesystem::path& path);

  /// The prepared search statement for `sql`, prepared on first use.
  Result<Statement*> search(const std::string& sql) {
    if (auto it = searches.find(sql); it != searches.end()) return it->second.get();
    if (searches.size() >= kMaxSearches) searches.clear();  // many shapes: start again
    auto st = std::make_unique<Statement>();
    if (auto r = st->prepare(db(), sql.c_str()); !r) return fail(r.error());
    auto* raw = st.get();
    searches.emplace(sql, std::move(st));
    return raw;
  }
};

// A resource version with its resource's source.
constexpr const char* kResourceColumns =
    "SELECT h.type, h.id, h.version, h.last_updated, h.json, r.source FROM resources r JOIN "
    "resource_history h ON h.type = r.type AND h.id = r.id ";

constexpr const char* kReferralColumns =
    "SELECT referral_id, clinic_number_system, clinic_number_value, source_control_id, "
    "agency_id, category, status, business_status, sequence, overdue_at IS NOT NULL, created_at, "
    "return_to, return_pid, race, ethnicity, language FROM referrals ";

Result<void> ReadConnection::open(const std::filesystem::path& path) {
  if (sqlite3_open_v2(path.c_str(), &handle.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return fail(Error::unavailable("cannot open a reader on " + path.string()));
  }
  sqlite3_busy_timeout(handle.db, 5000);
  const std::string resource = kResourceColumns;
  const std::string referral = kReferralColumns;
  const std::pair<Statement*, std::string> statements[] = {
      {&begin, "BEGIN"},
      {&end, "COMMIT"},
      {&current_resource, resource + "AND h.version = r.version WHERE r.type = ?1 AND r.id = ?2"},
      {&resource_version, resource + "WHERE r.type = ?1 AND r.id = ?2 AND h.version = ?3"},
      {&resource_id,
       "SELECT id FROM resource_identifiers WHERE type = ?1 AND system = ?2 AND value = ?3 "
       "ORDER BY id LIMIT 1"},
      {&resource_history, resource + "WHERE r.type = ?1 AND r.id = ?2 ORDER BY h.version DESC"},
      // A clinic number or control id names a referral only when exactly one has it: LIMIT 2.
      {&referral_by_id, referral + "WHERE referral_id = ?1"},
      {&referral_by_number, referral + "WHERE clinic_number_value = ?1 LIMIT 2"},
      {&referral_by_system_number,
       referral + "WHERE clinic_number_value = ?1 AND clinic_number_system = ?2 LIMIT 2"},
      {&referral_by_control, referral + "WHERE source_control_id = ?1 LIMIT 2"},
  };
  for (const auto& [st, sql] : statements) {
    if (auto r = st->prepare(handle.db, sql.c_str()); !r) return r;
  }
  return {};
}

/// A read transaction on a lent connection, ended when leaving scope (statements used inside
/// must be reset before).
class ReadTransaction {
 public:
  explicit ReadTransaction(ReadConnection& conn) : conn_(conn) {
    ResetOnExit reset{conn_.begin};
    auto r = conn_.begin.step();
    if (r) {
      open_ = true;
    } else {
      error_ = r.error();
    }
  }
  ReadTransaction(const ReadTransaction&) = delete;
  ReadTransaction& operator=(const ReadTransaction&) = delete;
  ~ReadTransaction() {
    if (!open_) return;
    ResetOnExit reset{conn_.end};
    if (!conn_.end.step()) (void)sqlite3_exec(conn_.db(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  /// The error of BEGIN, if it failed.
  const std::optional<Error>& error() const { return error_; }

 private:
  ReadConnection& conn_;
  bool open_ = false;
  std::optional<Error> error_;
};

/// A dead letter that may be replayed: not replayed yet. Fails kNotFound / kConflict.
struct ReplayableDeadLetter {
  std::int64_t inbound_id = 0;
  std::int64_t outbox_seq = 0;  ///< 0: a rejected message, not a refused event
};

Result<ReplayableDeadLetter> replayable_dead_letter(sqlite3* db, const std::string& id) {
  Statement st;
  if (auto r = st.prepare(db,
                          "SELECT coalesce(inbound_id, 0), coalesce(outbox_seq, 0), replayed_at IS "
                          "NOT NULL FROM dead_letters WHERE dead_letter_id = ?1");
      !r) {
    return fail(r.error());
  }
  st.text(1, id);
  auto rc = st.step();
  if (!rc) return fail(rc.error());
  if (*rc != SQLITE_ROW) return fail(Error::not_found("no dead letter " + id));
  if (st.column_int(2) != 0)
    return fail(Error::conflict("dead letter " + id + " was already replayed"));
  return ReplayableDeadLetter{st.column_int(0), st.column_int(1)};
}

/// Marks a dead letter replayed (inside the replay's transaction, so exactly once).
Result<void> mark_replayed(sqlite3* db, const std::string& id, std::int64_t at,
                           const std::string& note) {
  Statement st;
  if (auto r = st.prepare(db,
                          "UPDATE dead_letters SET replayed_at = ?1, replay_outcome = ?2 WHERE "
                          "dead_letter_id = ?3 AND replayed_at IS NULL");
      !r) {
    return fail(r.error());
  }
  st.integer(1, at).text(2, note).text(3, id);
  if (auto r = st.step(); !r) return fail(r.error());
  return {};
}

}  // namespace

/// Someone waiting for Kafka to acknowledge a set of events (delivery.ack=delivered).
struct DeliveryWaiter {
  std::mutex mutex;
  std::set<std::int64_t> remaining;
  bool done = false;
  std::move_only_function<void(Result<void>)> complete;  // posts to the waiter's executor
  std::move_only_function<void()> cancel_timer;

  /// Removes `seq`; completes when none remain. Safe from any thread, idempotent per seq.
  void delivered(std::int64_t seq) {
    std::unique_lock lock(mutex);
    remaining.erase(seq);
    if (!remaining.empty() || done) return;
    done = true;
    lock.unlock();
    if (cancel_timer) cancel_timer();
    complete(Result<void>{});
  }
  void fail_with(Error error) {
    std::unique_lock lock(mutex);
    if (done) return;
    done = true;
    lock.unlock();
    if (cancel_timer) cancel_timer();
    complete(fail(std::move(error)));
  }
};

/// One unit of work for the writer thread. execute() runs inside the group's transaction
/// (under its own savepoint); finish() runs after the transaction committed or failed.
struct WriteOp {
  virtual ~WriteOp() = default;
  /// Whether finish() must wait for the fsync of the transaction (someone is told "durable").
  virtual bool needs_durability() const { return true; }
  virtual Result<void> execute(SqliteStore::Impl& store) = 0;
  virtual void finish(Result<void> result) = 0;
};

struct SqliteStore::Impl {
  StoreClock clock;  // wall-clock milliseconds for every time the store records or compares
  std::int64_t now() const { return clock(); }

  sqlite3* db = nullptr;      // the writer connection: writer thread only (after open)
  sqlite3* reader = nullptr;  // read-only connection, guarded by reader_mutex
  mutable std::mutex reader_mutex;
  std::filesystem::path path;
  int version = 0;

  Statement insert_inbound, select_inbound, insert_outbox, insert_dead_letter, mark_delivered,
      upsert_offset;
  // FHIR resources and referral states written with a commit.
  Statement resource_version, upsert_resource, insert_history, delete_identifiers,
      insert_identifier, delete_search, insert_search, referral_sequence, upsert_referral,
      insert_outbound;
  bool outbound_added = false;  // writer thread: a commit queued an outbound message

  config::StoreConfig cfg;
  std::chrono::steady_clock::time_point next_prune;
  std::int64_t payload_cleared_upto = 0;  // inbound ids below it had their payloads pruned

  std::vector<DeliveredEvent> retry_marks;  // writer thread only: marks whose commit failed

  // Pipelined group commit (store.synchronous=full): the writer commits a group without
  // waiting for the disk (SQLite synchronous=NORMAL) and hands it to the syncer, which
  // fdatasyncs the WAL and only then completes the group's commits. Meanwhile the writer
  // writes the next group, so one fsync is always in flight. An answer still leaves only once
  // its transaction is on disk, and the relay reads no event that is not (durable_seq).
  struct SyncGroup {
    std::vector<std::unique_ptr<WriteOp>> ops;
    std::vector<Result<void>> results;
    std::int64_t max_seq = 0;
  };
  bool pipelined = false;
  int wal_fd = -1;
  std::thread syncer;
  std::mutex sync_mutex;
  std::condition_variable sync_cv;
  std::deque<SyncGroup> to_sync;
  bool sync_stopping = false;
  std::atomic<std::int64_t> durable_seq{std::numeric_limits<std::int64_t>::max()};
  Statement max_seq, savepoint, release, rollback_to;
  Statement select_pending;  // on the reader connection, under reader_mutex

  Result<void> sync_wal() {
    if (wal_fd < 0) {
      const auto wal = path.string() + "-wal";
      wal_fd = ::open(wal.c_str(), O_RDWR | O_CLOEXEC);
      if (wal_fd < 0) return fail(Error::unavailable("cannot open " + wal + " to sync it"));
      // The WAL's directory entry too, once.
      const auto dir = path.has_parent_path() ? path.parent_path().string() : std::string(".");
      const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
      }
    }
    if (::fdatasync(wal_fd) != 0) {
      return fail(Error::unavailable(std::string("fsync of the write-ahead log failed: ") +
                                     std::strerror(errno)));
    }
    return {};
  }

  void syncer_loop() {
    for (;;) {
      std::deque<SyncGroup> work;
      {
        std::unique_lock lock(sync_mutex);
        sync_cv.wait(lock, [this] { return !to_sync.empty() || sync_stopping; });
        if (to_sync.empty()) return;
        work.swap(to_sync);
      }
      // One fsync makes every group written before it durable.
      auto synced = sync_wal();
      if (!synced) set_health(false, synced.error().message);
      std::int64_t newest = 0;
      for (const auto& g : work)
        newest = std::max(newest, g.max_seq);
      // Visible to the relay first, so that whoever is told "committed" finds it there.
      if (synced && newest > 0) {
        std::int64_t current = durable_seq.load();
        while (current < newest && !durable_seq.compare_exchange_weak(current, newest)) {
        }
      }
      for (auto& g : work) {
        for (std::size_t i = 0; i < g.ops.size(); ++i)
          g.ops[i]->finish(synced ? std::move(g.results[i]) : fail(synced.error()));
      }
    }
  }

  void stop_syncer() {
    {
      std::lock_guard lock(sync_mutex);
      sync_stopping = true;
    }
    sync_cv.notify_all();
    if (syncer.joinable()) syncer.join();
    if (wal_fd >= 0) ::close(wal_fd);
    wal_fd = -1;
  }

  std::mutex waiters_mutex;
  std::unordered_map<std::int64_t, std::shared_ptr<DeliveryWaiter>> waiters;  // by seq

  mutable std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::deque<std::unique_ptr<WriteOp>> queue;
  bool stopping = false;
  std::thread writer;
  std::size_t max_batch = 1024;

  mutable std::mutex health_mutex;
  ops::CheckState health{true, "open"};

  std::atomic<std::int64_t> undelivered{0};
  std::atomic<std::int64_t> undelivered_bytes{0};  // sum of the undelivered events' values
  std::atomic<std::int64_t> dead_letters{0};
  std::atomic<std::size_t> commits_in_flight{0};  // queued or being written/synced

  /// Why a new commit must be refused now (overload), or nothing: the outbox backlog past
  /// store.max_backlog_* (Kafka has been away too long) or the writer's queue full.
  std::optional<std::string> overloaded() const {
    if (cfg.max_backlog_events > 0 && undelivered.load() >= cfg.max_backlog_events) {
      return "the outbox holds " + std::to_string(undelivered.load()) +
             " undelivered events (store.max_backlog_events " +
             std::to_string(cfg.max_backlog_events) + "): Kafka is behind";
    }
    if (cfg.max_backlog_bytes > 0 && undelivered_bytes.load() >= cfg.max_backlog_bytes) {
      return "the outbox holds " + std::to_string(undelivered_bytes.load()) +
             " bytes of undelivered events (store.max_backlog_bytes " +
             std::to_string(cfg.max_backlog_bytes) + "): Kafka is behind";
    }
    if (commits_in_flight.load() >= cfg.max_queued_commits) {
      return "the store's commit queue is full (store.max_queued_commits " +
             std::to_string(cfg.max_queued_commits) + ")";
    }
    return std::nullopt;
  }

  metrics::Histogram* batch_size = nullptr;
  metrics::Histogram* commit_seconds = nullptr;
  metrics::Counter* commits_ok = nullptr;
  metrics::Counter* commits_duplicate = nullptr;
  metrics::Counter* commits_failed = nullptr;
  metrics::Counter* commits_refused = nullptr;  // overload: refused before being queued
  metrics::Counter* pruned = nullptr;

  /// Hands Kafka's acknowledgement (or refusal) of `seq` to whoever waits for it.
  void settle(std::int64_t seq, const std::optional<Error>& refused) {
    std::shared_ptr<DeliveryWaiter> waiter;
    {
      std::lock_guard lock(waiters_mutex);
      auto it = waiters.find(seq);
      if (it == waiters.end()) return;
      waiter = std::move(it->second);
      waiters.erase(it);
    }
    if (refused) {
      waiter->fail_with(*refused);
    } else {
      waiter->delivered(seq);
    }
  }

  std::unique_ptr<WriteOp> make_prune_op();
  std::unique_ptr<WriteOp> make_retry_marks_op();

  ~Impl() {
    {
      std::lock_guard lock(queue_mutex);
      stopping = true;
    }
    queue_cv.notify_all();
    if (writer.joinable()) writer.join();
    stop_syncer();
    readers.clear();
    if (reader != nullptr) sqlite3_close_v2(reader);
    if (db != nullptr) sqlite3_close_v2(db);
  }

  // The read pool (kResourceReaders connections) for reads from io threads.
  std::vector<std::unique_ptr<ReadConnection>> readers;
  std::vector<ReadConnection*> idle_readers;  // guarded by readers_mutex
  std::mutex readers_mutex;
  std::condition_variable readers_cv;

  /// A pooled connection, given back when the lease ends.
  class ReaderLease {
   public:
    ReaderLease(Impl& impl, ReadConnection& conn) : impl_(impl), conn_(conn) {}
    ReaderLease(const ReaderLease&) = delete;
    ReaderLease& operator=(const ReaderLease&) = delete;
    ~ReaderLease() {
      {
        std::lock_guard lock(impl_.readers_mutex);
        impl_.idle_readers.push_back(&conn_);
      }
      impl_.readers_cv.notify_one();
    }
    ReadConnection* operator->() const { return &conn_; }
    ReadConnection& operator*() const { return conn_; }

   private:
    Impl& impl_;
    ReadConnection& conn_;
  };
  /// Waits while every pooled connection is lent (reads are short: single-row lookups and
  /// index-driven pages).
  ReaderLease lease_reader() {
    std::unique_lock lock(readers_mutex);
    readers_cv.wait(lock, [this] { return !idle_readers.empty(); });
    auto* r = idle_readers.back();
    idle_readers.pop_back();
    return ReaderLease(*this, *r);
  }

  void enqueue(std::unique_ptr<WriteOp> op) {
    {
      std::lock_guard lock(queue_mutex);
      queue.push_back(std::move(op));
    }
    queue_cv.notify_one();
  }

  void set_health(bool ok, std::string detail) {
    std::lock_guard lock(health_mutex);
    if (ok != health.ok) {
      log::write(ok ? log::Level::kInfo : log::Level::kError,
                 ok ? "store.recovered" : "store.write_failed", {{"detail", detail}});
    }
    health = {ok, std::move(detail)};
  }

  void writer_loop() {
    std::vector<std::unique_ptr<WriteOp>> batch;
    std::vector<Result<void>> results;
    for (;;) {
      {
        std::unique_lock lock(queue_mutex);
        const auto wake_at =
            retry_marks.empty()
                ? next_prune
                : std::min(next_prune, std::chrono::steady_clock::now() + std::chrono::seconds(1));
        queue_cv.wait_until(lock, wake_at, [this] { return !queue.empty() || stopping; });
        if (queue.empty() && stopping) return;  // everything queued has been written
        while (!queue.empty() && batch.size() < max_batch) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      if (std::chrono::steady_clock::now() >= next_prune) {
        // Retention rides along with the commits in bounded chunks; the op sets next_prune.
        next_prune = std::chrono::steady_clock::now() + cfg.prune_interval;
        batch.push_back(make_prune_op());
      }
      if (!retry_marks.empty()) batch.push_back(make_retry_marks_op());
      if (batch.empty()) continue;
      const auto started = std::chrono::steady_clock::now();
      results.assign(batch.size(), Result<void>{});
      auto run = [](Statement& st) -> Result<void> {
        ResetOnExit reset{st};
        if (auto r = st.step(); !r) return fail(r.error());
        return {};
      };
      auto group = exec(db, "BEGIN IMMEDIATE");
      for (std::size_t i = 0; group && i < batch.size(); ++i) {
        group = run(savepoint);
        if (!group) break;
        results[i] = batch[i]->execute(*this);
        // A failed op is undone alone; the others in the group still commit.
        if (!results[i]) group = run(rollback_to);
        if (group) group = run(release);
      }
      if (group) group = exec(db, "COMMIT");
      if (!group) {
        (void)exec(db, "ROLLBACK");
        set_health(false, "last transaction failed: " + group.error().message);
        for (auto& r : results)
          r = fail(Error::unavailable("the store cannot write: " + group.error().message));
      } else {
        set_health(true, "open, schema v" + std::to_string(version));
      }
      if (batch_size != nullptr) {
        batch_size->observe(static_cast<double>(batch.size()));
        commit_seconds->observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      }
      if (group && pipelined) {
        SyncGroup g;
        {
          ResetOnExit reset{max_seq};
          if (auto r = max_seq.step(); r && *r == SQLITE_ROW) g.max_seq = max_seq.column_int(0);
        }
        for (std::size_t i = 0; i < batch.size(); ++i) {
          if (batch[i]->needs_durability()) {
            g.ops.push_back(std::move(batch[i]));
            g.results.push_back(std::move(results[i]));
          } else {
            batch[i]->finish(std::move(results[i]));
          }
        }
        {
          std::lock_guard lock(sync_mutex);
          to_sync.push_back(std::move(g));
        }
        sync_cv.notify_one();
      } else {
        for (std::size_t i = 0; i < batch.size(); ++i)
          batch[i]->finish(std::move(results[i]));
      }
      batch.clear();
    }
  }
};

namespace {

Result<std::vector<std::int64_t>> undelivered_of(SqliteStore::Impl& s, std::int64_t inbound_id);

Result<void> upsert_referral(SqliteStore::Impl& s, const pipeline::ReferralState& row,
                             std::int64_t now) {
  auto& st = s.upsert_referral;
  ResetOnExit reset{st};
  st.text(1, row.referral_id)
      .text(2, row.clinic_number_system)
      .text(3, row.clinic_number_value)
      .text(4, row.source_control_id)
      .text(5, row.agency_id)
      .text(6, row.category)
      .text(7, row.status)
      .text(8, row.business_status)
      .integer(9, row.sequence)
      .integer(10, now)
      .integer(11, row.overdue ? 1 : 0)
      .text(12, row.return_to)
      .text(13, row.return_pid)
      .text(14, row.race)
      .text(15, row.ethnicity)
      .text(16, row.language)
      .text(17, row.patient);
  if (auto r = st.step(); !r) return fail(r.error());
  return {};
}

struct CommitOp final : WriteOp {
  pipeline::CommitRequest request;
  pipeline::CommitOutcome outcome;
  std::move_only_function<void(Result<pipeline::CommitOutcome>)> complete;

  // The request's resource versions and referral states. A version that is not the successor
  // of the stored one fails the whole request (kConflict): the savepoint undoes it.
  Result<void> write_state(SqliteStore::Impl& s, std::int64_t received) {
    auto step = [](Statement& st) -> Result<void> {
      ResetOnExit reset{st};
      if (auto r = st.step(); !r) return fail(r.error());
      return {};
    };
    for (const auto& w : request.resources) {
      std::int64_t current = 0;
      {
        auto& st = s.resource_version;
        ResetOnExit reset{st};
        st.text(1, w.type).text(2, w.id);
        auto r = st.step();
        if (!r) return fail(r.error());
        if (*r == SQLITE_ROW) current = st.column_int(0);
      }
      // The messages name the resource and versions only, never its content (PHI).
      if (current != w.expected_version) {
        return fail(Error::conflict(w.expected_version == 0
                                        ? w.type + "/" + w.id + " already exists"
                                        : w.type + "/" + w.id + " is at version " +
                                              std::to_string(current) + ", not " +
                                              std::to_string(w.expected_version)));
      }
      if (w.version <= current) {
        return fail(Error::internal(w.type + "/" + w.id + " version " + std::to_string(w.version) +
                                    " does not follow version " + std::to_string(current)));
      }
      s.upsert_resource.text(1, w.type).text(2, w.id).integer(3, w.version);
      s.upsert_resource.text(4, w.last_updated).integer(5, received).text(6, w.source);
      if (auto r = step(s.upsert_resource); !r) return r;
      s.insert_history.text(1, w.type).text(2, w.id).integer(3, w.version);
      s.insert_history.text(4, w.last_updated).integer(5, received).blob(6, w.json);
      if (auto r = step(s.insert_history); !r) return r;
      if (current > 0) {
        s.delete_identifiers.text(1, w.type).text(2, w.id);
        if (auto r = step(s.delete_identifiers); !r) return r;
        s.delete_search.text(1, w.type).text(2, w.id);
        if (auto r = step(s.delete_search); !r) return r;
      }
      for (const auto& [system, value] : w.identifiers) {
        s.insert_identifier.text(1, w.type).text(2, system).text(3, value).text(4, w.id);
        if (auto r = step(s.insert_identifier); !r) return r;
      }
      for (const auto& [name, value] : w.search) {
        s.insert_search.text(1, w.type).text(2, w.id).text(3, name).text(4, value);
        if (auto r = step(s.insert_search); !r) return r;
      }
    }
    for (const auto& row : request.referrals) {
      if (row.expected_sequence) {
        // Optimistic locking: the referral must still be where its change was decided from.
        std::int64_t current = 0;
        {
          auto& st = s.referral_sequence;
          ResetOnExit reset{st};
          st.text(1, row.referral_id);
          auto r = st.step();
          if (!r) return fail(r.error());
          if (*r == SQLITE_ROW) current = st.column_int(0);
        }
        if (current != *row.expected_sequence) {
          return fail(Error::conflict("referral " + row.referral_id + " is at sequence " +
                                      std::to_string(current) + ", not " +
                                      std::to_string(*row.expected_sequence)));
        }
      }
      if (auto r = upsert_referral(s, row, received); !r) return r;
    }
    for (const auto& o : request.outbound) {
      auto& st = s.insert_outbound;
      st.text(1, o.destination).text(2, o.referral_id).blob(3, o.message).integer(4, received);
      if (auto r = step(st); !r) return r;
    }
    if (!request.outbound.empty()) s.outbound_added = true;
    return {};
  }

  Result<void> insert_events(SqliteStore::Impl& s, std::int64_t received) {
    for (const auto& e : request.events) {
      auto& st = s.insert_outbox;
      ResetOnExit reset{st};
      st.text(1, e.event_id).integer(2, outcome.inbound_id).text(3, e.type).text(4, e.topic);
      st.text(5, e.key).blob(6, e.value).integer(7, received);
      if (auto r = st.step(); !r) return fail(r.error());
      if (sqlite3_changes(s.db) > 0) {
        outcome.undelivered.push_back(sqlite3_last_insert_rowid(s.db));
        pending_bytes += static_cast<std::int64_t>(e.value.size());
      }
    }
    pending_undelivered = static_cast<std::int64_t>(outcome.undelivered.size());
    return {};
  }

  Result<void> replay(SqliteStore::Impl& s, std::int64_t received) {
    auto dl = replayable_dead_letter(s.db, request.replay_of);
    if (!dl) return fail(dl.error());
    if (request.dead_letter) {
      return fail(Error::invalid("still rejected: " + request.dead_letter->error_text + " (" +
                                 request.dead_letter->location + ")"));
    }
    outcome.status = pipeline::CommitStatus::kCommitted;
    outcome.inbound_id = dl->inbound_id;
    outcome.answer_code = request.inbound.answer_code;
    {
      // Later resends of the message get the answer it has now.
      Statement st;
      if (auto r =
              st.prepare(s.db, "UPDATE inbound SET answer_code = ?1, answer = ?2 WHERE id = ?3");
          !r) {
        return r;
      }
      st.text(1, request.inbound.answer_code)
          .blob(2, request.inbound.answer)
          .integer(3, dl->inbound_id);
      if (auto r = st.step(); !r) return fail(r.error());
    }
    if (auto r = insert_events(s, received); !r) return r;
    if (auto r = write_state(s, received); !r) return r;
    pending_dead_letters = -1;  // one fewer waiting for an operator
    return mark_replayed(s.db, request.replay_of, received,
                         "replayed: " + std::to_string(outcome.undelivered.size()) + " event(s)");
  }

  Result<void> execute(SqliteStore::Impl& s) override {
    const auto& in = request.inbound;
    const auto received = s.now();
    if (!request.replay_of.empty()) return replay(s, received);
    {
      auto& st = s.insert_inbound;
      ResetOnExit reset{st};
      st.text(1, in.protocol)
          .text(2, in.sender)
          .text_or_null(3, in.dedupe_key)
          .text(4, in.message_type);
      st.integer(5, received).text(6, in.answer_code).blob(7, in.answer).blob(8, in.payload);
      if (auto r = st.step(); !r) return fail(r.error());
    }
    if (sqlite3_changes(s.db) == 0) {
      // A resend: answer as the first time, add nothing.
      auto& st = s.select_inbound;
      ResetOnExit reset{st};
      st.text(1, in.protocol).text(2, in.sender).text(3, in.dedupe_key);
      auto r = st.step();
      if (!r) return fail(r.error());
      if (*r != SQLITE_ROW) return fail(Error::internal("duplicate inbound row vanished"));
      outcome.status = pipeline::CommitStatus::kDuplicate;
      outcome.inbound_id = st.column_int(0);
      outcome.answer_code = st.column_text(1);
      outcome.answer = st.column_text(2);
      auto pending = undelivered_of(s, outcome.inbound_id);
      if (!pending) return fail(pending.error());
      outcome.undelivered = std::move(*pending);
      return {};
    }
    outcome.status = pipeline::CommitStatus::kCommitted;
    outcome.inbound_id = sqlite3_last_insert_rowid(s.db);
    outcome.answer_code = in.answer_code;
    if (auto r = insert_events(s, received); !r) return r;
    if (request.dead_letter) {
      const auto& d = *request.dead_letter;
      auto& st = s.insert_dead_letter;
      ResetOnExit reset{st};
      st.text(1, d.dead_letter_id).integer(2, outcome.inbound_id).integer(3, received);
      st.text(4, d.stage).text(5, d.error_code).text(6, d.error_text).text(7, d.location);
      if (auto r = st.step(); !r) return fail(r.error());
    }
    pending_dead_letters = request.dead_letter ? 1 : 0;
    return write_state(s, received);
  }

  void finish(Result<void> result) override {
    store->commits_in_flight.fetch_sub(1);
    if (result) {
      store->undelivered.fetch_add(pending_undelivered);
      store->undelivered_bytes.fetch_add(pending_bytes);
      store->dead_letters.fetch_add(pending_dead_letters);
      (outcome.status == pipeline::CommitStatus::kDuplicate ? store->commits_duplicate
                                                            : store->commits_ok)
          ->inc();
      complete(std::move(outcome));
    } else {
      if (result.error().kind == ErrorKind::kUnavailable) store->commits_failed->inc();
      complete(fail(result.error()));
    }
  }

  SqliteStore::Impl* store = nullptr;
  std::int64_t pending_undelivered = 0;
  std::int64_t pending_bytes = 0;
  std::int64_t pending_dead_letters = 0;
};

Result<std::vector<std::int64_t>> undelivered_of(SqliteStore::Impl& s, std::int64_t inbound_id) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(s.db,
                         "SELECT seq FROM outbox WHERE inbound_id = ?1 AND delivered_at IS NULL "
                         "AND dead_at IS NULL ORDER BY seq",
                         -1, &st, nullptr) != SQLITE_OK) {
    return fail(Error::unavailable(sqlite3_errmsg(s.db)));
  }
  sqlite3_bind_int64(st, 1, inbound_id);
  std::vector<std::int64_t> seqs;
  int rc = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    seqs.push_back(sqlite3_column_int64(st, 0));
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return fail(Error::unavailable(sqlite3_errmsg(s.db)));
  return seqs;
}

struct MarkDeliveredOp final : WriteOp {
  std::vector<DeliveredEvent> events;
  std::int64_t marked = 0;
  std::int64_t marked_bytes = 0;
  bool needs_durability() const override { return false; }  // Kafka has them already

  Result<void> execute(SqliteStore::Impl& s) override {
    const auto at = s.now();
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> highest;
    for (const auto& e : events) {
      auto& st = s.mark_delivered;
      ResetOnExit reset{st};
      st.integer(1, at).integer(2, e.seq);
      auto r = st.step();
      if (!r) return fail(r.error());
      if (*r == SQLITE_ROW) {  // RETURNING: the row was undelivered until now
        ++marked;
        marked_bytes += st.column_int(0);
      }
      if (e.partition >= 0 && e.offset >= 0) {
        auto& h = highest[{e.topic, e.partition}];
        h = std::max(h, e.offset);
      }
    }
    for (const auto& [where, offset] : highest) {
      auto& st = s.upsert_offset;
      ResetOnExit reset{st};
      st.text(1, where.first).integer(2, where.second).integer(3, offset);
      if (auto r = st.step(); !r) return fail(r.error());
    }
    return {};
  }
  void finish(Result<void> result) override {
    if (!result) {
      // Not recorded (the store is failing): retried with the next transaction. Should the
      // process die first, the restart reconciliation finds them in Kafka.
      store->retry_marks.insert(store->retry_marks.end(), events.begin(), events.end());
      return;
    }
    store->undelivered.fetch_sub(marked);
    store->undelivered_bytes.fetch_sub(marked_bytes);
    for (const auto& e : events)
      store->settle(e.seq, std::nullopt);
  }
  SqliteStore::Impl* store = nullptr;
};

/// Runs `fn` inside the writer's transaction and hands its result back to a blocked caller.
template <class T>
struct SyncOp final : WriteOp {
  std::function<Result<T>(SqliteStore::Impl&)> fn;
  std::function<void(const Result<T>&)> after;  // on success, after the commit
  std::promise<Result<T>> done;
  std::optional<Result<T>> value;

  Result<void> execute(SqliteStore::Impl& s) override {
    value = fn(s);
    if (!*value) return fail(value->error());
    return {};
  }
  void finish(Result<void> result) override {
    if (!result) {
      done.set_value(fail(result.error()));
      return;
    }
    if (after) after(*value);
    done.set_value(std::move(*value));
  }
};

template <class T>
Result<T> run_sync(SqliteStore::Impl& impl, std::function<Result<T>(SqliteStore::Impl&)> fn,
                   std::function<void(const Result<T>&)> after = {}) {
  auto op = std::make_unique<SyncOp<T>>();
  op->fn = std::move(fn);
  op->after = std::move(after);
  auto done = op->done.get_future();
  impl.enqueue(std::move(op));
  return done.get();
}

Result<std::int64_t> step_changes(sqlite3* db, sqlite3_stmt* st) {
  const int rc = sqlite3_step(st);
  const auto changes = static_cast<std::int64_t>(sqlite3_changes(db));
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return fail(Error::unavailable(sqlite3_errmsg(db)));
  return changes;
}

/// Retention: bounded chunks, so a large backlog of expired rows never stalls the commits
/// that share the transaction.
struct PruneOp final : WriteOp {
  static constexpr int kChunk = 2000;
  bool needs_durability() const override { return false; }  // touches writer-thread state
  std::int64_t removed = 0;
  bool more = false;
  std::promise<Result<std::pair<std::int64_t, bool>>>* done = nullptr;  // prune_now()

  Result<void> execute(SqliteStore::Impl& s) override {
    const auto now = s.now();
    const auto& c = s.cfg;
    auto run = [&](const char* sql, std::int64_t a, std::int64_t b = 0) -> Result<std::int64_t> {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(s.db, sql, -1, &st, nullptr) != SQLITE_OK)
        return fail(Error::unavailable(sqlite3_errmsg(s.db)));
      sqlite3_bind_int64(st, 1, a);
      sqlite3_bind_int64(st, 2, b);
      sqlite3_bind_int(st, 3, kChunk);
      return step_changes(s.db, st);
    };
    // Delivered events past their retention.
    auto n = run(
        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE delivered_at IS NOT NULL "
        "AND delivered_at < ?1 ORDER BY delivered_at LIMIT ?3)",
        now - c.delivered_retention.count());
    if (!n) return fail(n.error());
    more = more || *n == kChunk;
    removed += *n;
    // Replayed dead letters past their retention (never one that waits for an operator).
    n = run(
        "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE replayed_at IS "
        "NOT NULL AND replayed_at < ?1 LIMIT ?3)",
        now - c.dead_letter_retention.count());
    if (!n) return fail(n.error());
    removed += *n;
    // FHIR resources past their retention, except referral Tasks still open (an open referral
    // never expires).
    {
      sqlite3_stmt* pick = nullptr;
      if (sqlite3_prepare_v2(
              s.db,
              "SELECT type, id FROM resources r WHERE updated_at < ?1 AND NOT (type = 'Task' AND "
              "EXISTS (SELECT 1 FROM resource_search t WHERE t.type = 'Task' AND t.id = r.id AND "
              "t.name = 'status' AND t.value IN ('requested', 'received', 'accepted', "
              "'in-progress', 'on-hold'))) LIMIT ?2",
              -1, &pick, nullptr) != SQLITE_OK)
        return fail(Error::unavailable(sqlite3_errmsg(s.db)));
      sqlite3_bind_int64(pick, 1, now - c.resource_retention.count());
      sqlite3_bind_int(pick, 2, kChunk);
      std::vector<std::pair<std::string, std::string>> old;
      auto text = [pick](int i) {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(pick, i));
        return p == nullptr ? std::string() : std::string(p);
      };
      while (sqlite3_step(pick) == SQLITE_ROW)
        old.emplace_back(text(0), text(1));
      sqlite3_finalize(pick);
      more = more || old.size() == static_cast<std::size_t>(kChunk);
      for (const char* sql : {"DELETE FROM resource_history WHERE type = ?1 AND id = ?2",
                              "DELETE FROM resource_identifiers WHERE type = ?1 AND id = ?2",
                              "DELETE FROM resource_search WHERE type = ?1 AND id = ?2",
                              "DELETE FROM resources WHERE type = ?1 AND id = ?2"}) {
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(s.db, sql, -1, &st, nullptr) != SQLITE_OK)
          return fail(Error::unavailable(sqlite3_errmsg(s.db)));
        for (const auto& [type, id] : old) {
          sqlite3_bind_text(st, 1, type.data(), static_cast<int>(type.size()), SQLITE_STATIC);
          sqlite3_bind_text(st, 2, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
          if (sqlite3_step(st) != SQLITE_DONE) {
            sqlite3_finalize(st);
            return fail(Error::unavailable(sqlite3_errmsg(s.db)));
          }
          removed += sqlite3_changes(s.db);
          sqlite3_reset(st);
        }
        sqlite3_finalize(st);
      }
    }
    // Closed referrals' states past the resource retention (since their last change).
    n = run(
        "DELETE FROM referrals WHERE referral_id IN (SELECT referral_id FROM referrals WHERE "
        "status IN ('rejected', 'completed', 'failed', 'cancelled') AND updated_at < ?1 LIMIT ?3)",
        now - c.resource_retention.count());
    if (!n) return fail(n.error());
    more = more || *n == kChunk;
    removed += *n;
    // Outbound messages the destination acknowledged, past the delivered retention.
    n = run(
        "DELETE FROM outbound WHERE id IN (SELECT id FROM outbound WHERE done_at IS NOT NULL AND "
        "done_at < ?1 LIMIT ?3)",
        now - c.delivered_retention.count());
    if (!n) return fail(n.error());
    removed += *n;
    // Earlier versions of resources past the payload retention (the current one stays).
    n = run(
        "DELETE FROM resource_history WHERE rowid IN (SELECT h.rowid FROM resource_history h JOIN "
        "resources r ON r.type = h.type AND r.id = h.id WHERE h.version < r.version AND "
        "h.updated_at < ?1 LIMIT ?3)",
        now - c.payload_retention.count());
    if (!n) return fail(n.error());
    more = more || *n == kChunk;
    removed += *n;
    // Inbound ids are in arrival order: everything below the first young one is old.
    auto first_young = [&](std::int64_t cutoff) -> std::int64_t {
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(s.db,
                         "SELECT coalesce((SELECT id FROM inbound WHERE received_at >= ?1 ORDER "
                         "BY id LIMIT 1), (SELECT max(id) + 1 FROM inbound), 0)",
                         -1, &st, nullptr);
      sqlite3_bind_int64(st, 1, cutoff);
      std::int64_t id = 0;
      if (sqlite3_step(st) == SQLITE_ROW) id = sqlite3_column_int64(st, 0);
      sqlite3_finalize(st);
      return id;
    };
    // Message bytes past their retention, except those of dead letters still to replay.
    const auto payload_below = first_young(now - c.payload_retention.count());
    if (payload_below > s.payload_cleared_upto) {
      const auto upto = std::min(payload_below, s.payload_cleared_upto + kChunk);
      n = run(
          "UPDATE inbound SET payload = NULL WHERE id >= ?1 AND id < ?2 AND payload IS NOT NULL "
          "AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.inbound_id = inbound.id AND "
          "d.replayed_at IS NULL)",
          s.payload_cleared_upto, upto);
      if (!n) return fail(n.error());
      removed += *n;
      next_payload_mark = upto;
      more = more || upto < payload_below;
    }
    // Inbound records past the dedupe window, once nothing refers to them any more.
    const auto inbound_below = first_young(now - c.dedupe_window.count());
    n = run(
        "DELETE FROM inbound WHERE id IN (SELECT id FROM inbound i WHERE id < ?1 AND NOT EXISTS "
        "(SELECT 1 FROM outbox o WHERE o.inbound_id = i.id) AND NOT EXISTS (SELECT 1 FROM "
        "dead_letters d WHERE d.inbound_id = i.id) ORDER BY id LIMIT ?3)",
        inbound_below);
    if (!n) return fail(n.error());
    more = more || *n == kChunk;
    removed += *n;
    return {};
  }
  void finish(Result<void> result) override {
    if (result) {
      if (next_payload_mark > 0) store->payload_cleared_upto = next_payload_mark;
      if (removed > 0) {
        store->pruned->inc(static_cast<std::uint64_t>(removed));
        log::debug("store.pruned", {{"rows", removed}});
      }
      // A full chunk: go on at once (between commits) instead of after the interval.
      if (more) store->next_prune = std::chrono::steady_clock::now();
    }
    if (done != nullptr) {
      done->set_value(result ? Result<std::pair<std::int64_t, bool>>(std::pair{removed, more})
                             : fail(result.error()));
    }
  }
  SqliteStore::Impl* store = nullptr;
  std::int64_t next_payload_mark = 0;
};

struct BarrierOp final : WriteOp {
  std::promise<void> done;
  Result<void> execute(SqliteStore::Impl&) override { return {}; }
  void finish(Result<void>) override { done.set_value(); }
};

}  // namespace

std::unique_ptr<WriteOp> SqliteStore::Impl::make_prune_op() {
  auto op = std::make_unique<PruneOp>();
  op->store = this;
  return op;
}

std::unique_ptr<WriteOp> SqliteStore::Impl::make_retry_marks_op() {
  auto op = std::make_unique<MarkDeliveredOp>();
  op->store = this;
  op->events.swap(retry_marks);
  return op;
}

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteStore::~SqliteStore() = default;

int SqliteStore::latest_schema_version() {
  return static_cast<int>(kMigrations.size());
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::filesystem::path& path,
                                                       const config::StoreConfig& cfg,
                                                       metrics::Registry* registry,
                                                       StoreClock clock) {
  auto impl = std::make_unique<Impl>();
  impl->clock = clock ? std::move(clock) : StoreClock(now_ms);
  impl->path = path;
  impl->cfg = cfg;
  impl->next_prune = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::error_code fs_ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), fs_ec);
  if (fs_ec) {
    return fail(Error::unavailable("cannot create " + path.parent_path().string() + ": " +
                                   fs_ec.message()));
  }
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &impl->db, flags, nullptr) != SQLITE_OK) {
    return fail(
        Error::unavailable("cannot open store " + path.string() + ": " +
                           (impl->db != nullptr ? sqlite3_errmsg(impl->db) : "out of memory")));
  }
  sqlite3_busy_timeout(impl->db, 5000);
  // WAL + synchronous=FULL: a COMMIT returns only after the WAL is fsync'd.
  // synchronous=full is kept by the syncer thread (pipelined group commit, see Impl); SQLite
  // itself then needs only NORMAL, which still syncs around checkpoints.
  impl->pipelined = cfg.synchronous == "full";
  const std::string pragmas = std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;") +
                              "; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
                              " PRAGMA journal_size_limit=67108864;";
  if (auto r = exec(impl->db, pragmas.c_str()); !r) {
    return fail(Error::unavailable("store " + path.string() + ": " + r.error().message));
  }
  auto version = user_version(impl->db);
  if (!version) return fail(version.error());
  if (*version > latest_schema_version()) {
    return fail(Error::unavailable("store " + path.string() + " has schema version " +
                                   std::to_string(*version) + ", newer than this build (" +
                                   std::to_string(latest_schema_version()) +
                                   "); upgrade the gateway"));
  }
  for (int v = *version; v < latest_schema_version(); ++v) {
    const std::string sql = std::string("BEGIN IMMEDIATE;") +
                            kMigrations[static_cast<std::size_t>(v)] +
                            "PRAGMA user_version=" + std::to_string(v + 1) + "; COMMIT;";
    if (auto r = exec(impl->db, sql.c_str()); !r) {
      (void)exec(impl->db, "ROLLBACK;");
      return fail(Error::unavailable("store migration to version " + std::to_string(v + 1) +
                                     " failed: " + r.error().message));
    }
  }
  impl->version = latest_schema_version();

  auto prepared = impl->insert_inbound.prepare(
      impl->db,
      "INSERT INTO inbound(protocol, sender, dedupe_key, message_type, received_at, answer_code, "
      "answer, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
      "ON CONFLICT(protocol, sender, dedupe_key) DO NOTHING");
  if (prepared) {
    prepared = impl->select_inbound.prepare(impl->db,
                                            "SELECT id, answer_code, answer FROM inbound WHERE "
                                            "protocol = ?1 AND sender = ?2 AND dedupe_key = ?3");
  }
  if (prepared) {
    prepared = impl->insert_outbox.prepare(
        impl->db,
        "INSERT INTO outbox(event_id, inbound_id, type, topic, key, value, created_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(event_id) DO NOTHING");
  }
  if (prepared) {
    prepared = impl->insert_dead_letter.prepare(
        impl->db,
        "INSERT INTO dead_letters(dead_letter_id, inbound_id, created_at, stage, error_code, "
        "error_text, location) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(dead_letter_id) DO "
        "NOTHING");
  }
  if (prepared) {
    prepared = impl->mark_delivered.prepare(
        impl->db,
        "UPDATE outbox SET delivered_at = ?1 WHERE seq = ?2 AND delivered_at IS NULL "
        "RETURNING length(value)");
  }
  if (prepared) {
    prepared = impl->upsert_offset.prepare(
        impl->db,
        "INSERT INTO delivery_offsets(topic, partition, offset) VALUES (?1, ?2, ?3) "
        "ON CONFLICT(topic, partition) DO UPDATE SET offset = max(offset, excluded.offset)");
  }
  if (prepared)
    prepared = impl->max_seq.prepare(impl->db, "SELECT coalesce(max(seq), 0) FROM outbox");
  if (prepared) {
    prepared = impl->resource_version.prepare(
        impl->db, "SELECT version FROM resources WHERE type = ?1 AND id = ?2");
  }
  if (prepared) {
    prepared = impl->referral_sequence.prepare(
        impl->db, "SELECT sequence FROM referrals WHERE referral_id = ?1");
  }
  if (prepared) {
    prepared = impl->upsert_resource.prepare(
        impl->db,
        "INSERT INTO resources(type, id, version, last_updated, updated_at, source) VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(type, id) DO UPDATE SET version = excluded.version, "
        "last_updated = excluded.last_updated, updated_at = excluded.updated_at, source = "
        "CASE WHEN excluded.source = '' THEN source ELSE excluded.source END");
  }
  if (prepared) {
    prepared = impl->insert_history.prepare(
        impl->db,
        "INSERT INTO resource_history(type, id, version, last_updated, updated_at, json) VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6)");
  }
  if (prepared) {
    prepared = impl->delete_identifiers.prepare(
        impl->db, "DELETE FROM resource_identifiers WHERE type = ?1 AND id = ?2");
  }
  if (prepared) {
    prepared = impl->insert_identifier.prepare(
        impl->db,
        "INSERT INTO resource_identifiers(type, system, value, id) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT DO NOTHING");
  }
  if (prepared) {
    prepared = impl->delete_search.prepare(
        impl->db, "DELETE FROM resource_search WHERE type = ?1 AND id = ?2");
  }
  if (prepared) {
    prepared = impl->insert_search.prepare(
        impl->db, "INSERT INTO resource_search(type, id, name, value) VALUES (?1, ?2, ?3, ?4)");
  }
  if (prepared) {
    prepared = impl->insert_outbound.prepare(
        impl->db,
        "INSERT INTO outbound(destination, referral_id, message, created_at, next_attempt_at) "
        "VALUES (?1, ?2, ?3, ?4, ?4)");
  }
  if (prepared) {
    prepared = impl->upsert_referral.prepare(
        impl->db,
        "INSERT INTO referrals(referral_id, clinic_number_system, clinic_number_value, "
        "source_control_id, agency_id, category, status, business_status, sequence, updated_at, "
        "created_at, overdue_at, return_to, return_pid, race, ethnicity, language, patient) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, CASE WHEN ?11 THEN ?10 END, ?12, "
        "?13, ?14, ?15, ?16, ?17) "
        "ON CONFLICT(referral_id) DO UPDATE "
        "SET status = excluded.status, "
        "agency_id = CASE WHEN agency_id = '' THEN excluded.agency_id ELSE agency_id END, "
        "patient = CASE WHEN patient = '' THEN excluded.patient ELSE patient END, "
        "business_status = excluded.business_status, sequence = excluded.sequence, updated_at = "
        "excluded.updated_at, overdue_at = coalesce(overdue_at, excluded.overdue_at) WHERE "
        "excluded.sequence >= sequence");
  }
  if (prepared) prepared = impl->savepoint.prepare(impl->db, "SAVEPOINT op");
  if (prepared) prepared = impl->release.prepare(impl->db, "RELEASE op");
  if (prepared) prepared = impl->rollback_to.prepare(impl->db, "ROLLBACK TO op");
  if (!prepared) return fail(prepared.error());

  if (sqlite3_open_v2(path.c_str(), &impl->reader, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return fail(Error::unavailable("cannot open a reader on " + path.string()));
  }
  for (int i = 0; i < kResourceReaders; ++i) {
    auto conn = std::make_unique<ReadConnection>();
    if (auto r = conn->open(path); !r) return fail(r.error());
    impl->idle_readers.push_back(conn.get());
    impl->readers.push_back(std::move(conn));
  }
  sqlite3_busy_timeout(impl->reader, 5000);
  if (auto r = impl->select_pending.prepare(
          impl->reader,
          "SELECT seq, event_id, topic, key, value, created_at FROM outbox WHERE delivered_at IS "
          "NULL AND dead_at IS NULL AND seq > ?1 AND seq <= ?3 ORDER BY seq LIMIT ?2");
      !r) {
    return fail(r.error());
  }
  {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(impl->reader,
                       "SELECT (SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND "
                       "dead_at IS NULL), (SELECT count(*) FROM dead_letters WHERE replayed_at "
                       "IS NULL), (SELECT coalesce(sum(length(value)), 0) FROM outbox WHERE "
                       "delivered_at IS NULL AND dead_at IS NULL)",
                       -1, &st, nullptr);
    if (sqlite3_step(st) == SQLITE_ROW) {
      impl->undelivered = sqlite3_column_int64(st, 0);
      impl->dead_letters = sqlite3_column_int64(st, 1);
      impl->undelivered_bytes = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
  }

  if (registry != nullptr) {
    auto& reg = *registry;
    impl->batch_size = &reg.histogram("sdoh_store_commit_batch_size",
                                      "Commits written together in one transaction (group commit).",
                                      {}, {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024})
                            .with();
    impl->commit_seconds = &reg.histogram("sdoh_store_commit_duration_seconds",
                                          "Time to write and fsync one group transaction.")
                                .with();
    auto& commits =
        reg.counter("sdoh_store_commits_total", "Inbound commits by outcome.", {"outcome"});
    impl->commits_ok = &commits.with({"committed"});
    impl->commits_duplicate = &commits.with({"duplicate"});
    impl->commits_failed = &commits.with({"failed"});
    impl->commits_refused = &commits.with({"refused_overload"});
    reg.gauge_callback(
        "sdoh_outbox_undelivered_bytes", "Bytes of committed events not yet acknowledged by Kafka.",
        [raw = impl.get()] { return static_cast<double>(raw->undelivered_bytes.load()); });
    auto* raw = impl.get();
    reg.gauge_callback("sdoh_outbox_undelivered_events",
                       "Committed events not yet acknowledged by Kafka.",
                       [raw] { return static_cast<double>(raw->undelivered.load()); });
    impl->pruned = &reg.counter("sdoh_store_pruned_rows_total",
                                "Rows removed or cleared by the retention policy.")
                        .with();
    reg.gauge_callback("sdoh_dead_letters_stored", "Dead letters waiting for an operator's replay.",
                       [raw] { return static_cast<double>(raw->dead_letters.load()); });
    reg.gauge_callback(
        "sdoh_outbox_oldest_undelivered_age_seconds",
        "Age of the oldest committed event Kafka has not acknowledged (0: none).", [raw] {
          std::lock_guard lock(raw->reader_mutex);
          sqlite3_stmt* st = nullptr;
          double age = 0;
          if (sqlite3_prepare_v2(raw->reader,
                                 "SELECT created_at FROM outbox WHERE delivered_at IS NULL AND "
                                 "dead_at IS NULL ORDER BY seq LIMIT 1",
                                 -1, &st, nullptr) == SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW) {
            age = static_cast<double>(raw->now() - sqlite3_column_int64(st, 0)) / 1000.0;
          }
          sqlite3_finalize(st);
          return age;
        });
  } else {
    static metrics::Counter unused_ok, unused_dup, unused_failed, unused_refused, unused_pruned;
    impl->commits_refused = &unused_refused;
    impl->pruned = &unused_pruned;
    impl->commits_ok = &unused_ok;
    impl->commits_duplicate = &unused_dup;
    impl->commits_failed = &unused_failed;
  }

  auto* raw = impl.get();
  if (impl->pipelined) {
    // Everything already in the database is durable (it was synced or checkpointed).
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(impl->db, "SELECT coalesce(max(seq), 0) FROM outbox", -1, &st, nullptr);
    if (sqlite3_step(st) == SQLITE_ROW) impl->durable_seq = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    impl->syncer = std::thread([raw] { raw->syncer_loop(); });
  }
  impl->writer = std::thread([raw] { raw->writer_loop(); });
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

asio::awaitable<Result<pipeline::CommitOutcome>> SqliteStore::commit(
    pipeline::CommitRequest request) {
  auto* impl = impl_.get();
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable),
                                          void(Result<pipeline::CommitOutcome>)>(
      [impl, &request](auto handler) {
        if (auto why = impl->overloaded()) {
          // Refused before it is queued: the sender retries later, nothing is held in memory.
          impl->commits_refused->inc();
          auto ex = asio::get_associated_executor(handler);
          asio::post(ex, [h = std::move(handler), e = Error::unavailable(*why)]() mutable {
            std::move(h)(fail(std::move(e)));
          });
          return;
        }
        impl->commits_in_flight.fetch_add(1);
        auto op = std::make_unique<CommitOp>();
        op->store = impl;
        op->request = std::move(request);
        op->complete = [h = std::move(handler)](Result<pipeline::CommitOutcome> r) mutable {
          // Back to the committing coroutine's own executor (its connection's strand).
          auto ex = asio::get_associated_executor(h);
          asio::post(
              ex, [h = std::move(h), r = std::move(r)]() mutable { std::move(h)(std::move(r)); });
        };
        impl->enqueue(std::move(op));
      },
      asio::use_awaitable);
}

Result<std::vector<PendingEvent>> SqliteStore::pending_events(std::int64_t after_seq,
                                                              int limit) const {
  std::lock_guard lock(impl_->reader_mutex);
  auto& st = impl_->select_pending;  // prepared once: the relay polls often
  ResetOnExit reset{st};
  st.integer(1, after_seq).integer(2, limit);
  st.integer(3, impl_->durable_seq.load());  // never publish what is not on disk
  std::vector<PendingEvent> out;
  for (;;) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r != SQLITE_ROW) break;
    out.push_back({st.column_int(0), st.column_text(1), st.column_text(2), st.column_text(3),
                   st.column_text(4), st.column_int(5)});
  }
  return out;
}

void SqliteStore::mark_delivered(std::vector<DeliveredEvent> events) {
  auto op = std::make_unique<MarkDeliveredOp>();
  op->store = impl_.get();
  op->events = std::move(events);
  impl_->enqueue(std::move(op));
}

asio::awaitable<Result<void>> SqliteStore::await_delivered(std::vector<std::int64_t> seqs,
                                                           std::chrono::milliseconds timeout) {
  if (seqs.empty()) co_return Result<void>{};
  auto* impl = impl_.get();
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(Result<void>)>(
      [impl, &seqs, timeout](auto handler) {
        auto ex = asio::get_associated_executor(handler);
        auto waiter = std::make_shared<DeliveryWaiter>();
        waiter->remaining.insert(seqs.begin(), seqs.end());
        waiter->complete = [ex, h = std::move(handler)](Result<void> r) mutable {
          asio::post(
              ex, [h = std::move(h), r = std::move(r)]() mutable { std::move(h)(std::move(r)); });
        };
        auto timer = std::make_shared<asio::steady_timer>(ex, timeout);
        waiter->cancel_timer = [ex, timer] { asio::post(ex, [timer] { timer->cancel(); }); };
        {
          std::lock_guard lock(impl->waiters_mutex);
          for (auto seq : seqs)
            impl->waiters[seq] = waiter;
        }
        timer->async_wait([impl, waiter, seqs, timeout](const boost::system::error_code& ec) {
          if (ec) return;
          {
            std::lock_guard lock(impl->waiters_mutex);
            for (auto seq : seqs) {
              auto it = impl->waiters.find(seq);
              if (it != impl->waiters.end() && it->second == waiter) impl->waiters.erase(it);
            }
          }
          waiter->fail_with(Error::unavailable(
              "Kafka has not acknowledged the message's events within " +
              std::to_string(timeout.count()) + " ms; they are committed and will be delivered"));
        });
        // Deliveries acknowledged before the waiter was registered.
        std::vector<std::int64_t> done;
        {
          std::lock_guard lock(impl->reader_mutex);
          sqlite3_stmt* st = nullptr;
          sqlite3_prepare_v2(impl->reader,
                             "SELECT delivered_at IS NOT NULL, dead_at IS NOT NULL FROM outbox "
                             "WHERE seq = ?1",
                             -1, &st, nullptr);
          for (auto seq : seqs) {
            sqlite3_bind_int64(st, 1, seq);
            if (sqlite3_step(st) == SQLITE_ROW) {
              if (sqlite3_column_int(st, 0) != 0) done.push_back(seq);
              if (sqlite3_column_int(st, 1) != 0) done.push_back(-seq);
            }
            sqlite3_reset(st);
          }
          sqlite3_finalize(st);
        }
        for (auto seq : done) {
          impl->settle(seq < 0 ? -seq : seq,
                       seq < 0 ? std::optional<Error>(Error::unavailable(
                                     "Kafka refused an event of this message; see dead letters"))
                               : std::nullopt);
        }
      },
      asio::use_awaitable);
}

Result<void> SqliteStore::dead_letter_event(std::int64_t seq,
                                            const pipeline::DeadLetterRecord& record,
                                            std::optional<pipeline::OutboxEvent> notice) {
  auto* impl = impl_.get();
  // The op's value: -1 when the event was delivered or dead-lettered meanwhile, else how many
  // notice events it queued (0 or 1).
  std::int64_t left_bytes = 0;  // the refused event's size, leaving the backlog
  std::int64_t notice_bytes = notice ? static_cast<std::int64_t>(notice->value.size()) : 0;
  auto r = run_sync<std::int64_t>(
      *impl,
      [seq, &record, &notice, &left_bytes](Impl& s) -> Result<std::int64_t> {
        const auto at = s.now();
        Statement st;
        if (auto p = st.prepare(s.db,
                                "UPDATE outbox SET dead_at = ?1, last_error = ?2, attempts = "
                                "attempts + 1 WHERE seq = ?3 AND delivered_at IS NULL AND dead_at "
                                "IS NULL RETURNING inbound_id, length(value)");
            !p) {
          return fail(p.error());
        }
        st.integer(1, at).text(2, record.error_text).integer(3, seq);
        auto moved = st.step();
        if (!moved) return fail(moved.error());
        if (*moved != SQLITE_ROW) return std::int64_t{-1};
        const bool has_inbound = sqlite3_column_type(st.raw(), 0) != SQLITE_NULL;
        const auto inbound_id = st.column_int(0);
        left_bytes = st.column_int(1);
        st.reset();  // finishes the UPDATE
        Statement dl;
        if (auto p =
                dl.prepare(s.db,
                           "INSERT INTO dead_letters(dead_letter_id, inbound_id, created_at, "
                           "stage, error_code, error_text, location, outbox_seq) VALUES (?1, "
                           "?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(dead_letter_id) DO NOTHING");
            !p) {
          return fail(p.error());
        }
        dl.text(1, record.dead_letter_id).integer(3, at).text(4, record.stage);
        dl.text(5, record.error_code).text(6, record.error_text).text(7, record.location);
        dl.integer(8, seq);
        if (has_inbound) dl.integer(2, inbound_id);
        if (auto d = dl.step(); !d) return fail(d.error());
        if (!notice) return std::int64_t{0};
        auto& ins = s.insert_outbox;
        ResetOnExit reset{ins};
        ins.text(1, notice->event_id).text(3, notice->type).text(4, notice->topic);
        ins.text(5, notice->key).blob(6, notice->value).integer(7, at);
        if (has_inbound) ins.integer(2, inbound_id);
        if (auto ir = ins.step(); !ir) return fail(ir.error());
        return static_cast<std::int64_t>(sqlite3_changes(s.db));
      },
      [impl, seq, &left_bytes, notice_bytes](const Result<std::int64_t>& added) {
        if (*added < 0) return;
        impl->undelivered.fetch_add(*added - 1);
        impl->undelivered_bytes.fetch_add((*added > 0 ? notice_bytes : 0) - left_bytes);
        impl->dead_letters.fetch_add(1);
        impl->settle(seq, Error::unavailable("Kafka refused an event of this message for good"));
      });
  if (!r) return fail(r.error());
  return {};
}

namespace {

std::string column(sqlite3_stmt* st, int i) {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(st, i));
  return p == nullptr ? std::string()
                      : std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st, i)));
}

constexpr const char* kDeadLetterColumns =
    "SELECT d.dead_letter_id, d.created_at, d.stage, d.error_code, d.error_text, d.location, "
    "coalesce(i.protocol, ''), coalesce(i.sender, ''), coalesce(i.dedupe_key, ''), "
    "coalesce(i.message_type, ''), coalesce(d.outbox_seq, 0), coalesce(d.replayed_at, 0), "
    "coalesce(d.replay_outcome, ''), i.payload IS NOT NULL, i.payload FROM dead_letters d LEFT "
    "JOIN inbound i ON i.id = d.inbound_id ";

DeadLetterInfo read_dead_letter(sqlite3_stmt* st, bool with_payload) {
  DeadLetterInfo d;
  d.dead_letter_id = column(st, 0);
  d.created_at_ms = sqlite3_column_int64(st, 1);
  d.stage = column(st, 2);
  d.error_code = column(st, 3);
  d.error_text = column(st, 4);
  d.location = column(st, 5);
  d.protocol = column(st, 6);
  d.sender = column(st, 7);
  d.message_id = column(st, 8);
  d.message_type = column(st, 9);
  d.outbox_seq = sqlite3_column_int64(st, 10);
  d.replayed_at_ms = sqlite3_column_int64(st, 11);
  d.replay_outcome = column(st, 12);
  d.payload_kept = sqlite3_column_int(st, 13) != 0;
  if (with_payload) d.payload = column(st, 14);
  return d;
}

}  // namespace

Result<EventOrigin> SqliteStore::event_origin(std::int64_t seq) const {
  std::lock_guard lock(impl_->reader_mutex);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(impl_->reader,
                     "SELECT o.event_id, o.topic, coalesce(i.protocol, ''), coalesce(i.sender, "
                     "''), coalesce(i.dedupe_key, ''), coalesce(i.message_type, '') FROM outbox o "
                     "LEFT JOIN inbound i ON i.id = o.inbound_id WHERE o.seq = ?1",
                     -1, &st, nullptr);
  sqlite3_bind_int64(st, 1, seq);
  const int rc = sqlite3_step(st);
  EventOrigin o;
  if (rc == SQLITE_ROW) {
    o = {column(st, 0), column(st, 1), column(st, 2), column(st, 3), column(st, 4), column(st, 5)};
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW) return fail(Error::not_found("no outbox event " + std::to_string(seq)));
  return o;
}

Result<std::vector<UndeliveredRef>> SqliteStore::undelivered_refs() const {
  std::lock_guard lock(impl_->reader_mutex);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(impl_->reader,
                     "SELECT seq, event_id, topic FROM outbox WHERE delivered_at IS NULL AND "
                     "dead_at IS NULL ORDER BY seq",
                     -1, &st, nullptr);
  std::vector<UndeliveredRef> out;
  int rc = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    out.push_back({sqlite3_column_int64(st, 0), column(st, 1), column(st, 2)});
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return fail(Error::unavailable(sqlite3_errmsg(impl_->reader)));
  return out;
}

Result<std::map<std::pair<std::string, std::int32_t>, std::int64_t>> SqliteStore::delivery_offsets()
    const {
  std::lock_guard lock(impl_->reader_mutex);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(impl_->reader, "SELECT topic, partition, offset FROM delivery_offsets", -1,
                     &st, nullptr);
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> out;
  int rc = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    out[{column(st, 0), sqlite3_column_int(st, 1)}] = sqlite3_column_int64(st, 2);
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return fail(Error::unavailable(sqlite3_errmsg(impl_->reader)));
  return out;
}

Result<std::vector<DeadLetterInfo>> SqliteStore::dead_letters(int limit,
                                                              bool include_replayed) const {
  std::lock_guard lock(impl_->reader_mutex);
  const std::string sql = std::string(kDeadLetterColumns) +
                          (include_replayed ? "" : "WHERE d.replayed_at IS NULL ") +
                          "ORDER BY d.id DESC LIMIT ?1";
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(impl_->reader, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
    return fail(Error::unavailable(sqlite3_errmsg(impl_->reader)));
  sqlite3_bind_int(st, 1, limit);
  std::vector<DeadLetterInfo> out;
  int rc = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    out.push_back(read_dead_letter(st, false));
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return fail(Error::unavailable(sqlite3_errmsg(impl_->reader)));
  return out;
}

Result<DeadLetterInfo> SqliteStore::dead_letter(const std::string& dead_letter_id,
                                                bool with_payload) const {
  std::lock_guard lock(impl_->reader_mutex);
  const std::string sql = std::string(kDeadLetterColumns) + "WHERE d.dead_letter_id = ?1";
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(impl_->reader, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
    return fail(Error::unavailable(sqlite3_errmsg(impl_->reader)));
  sqlite3_bind_text(st, 1, dead_letter_id.data(), static_cast<int>(dead_letter_id.size()),
                    SQLITE_STATIC);
  const int rc = sqlite3_step(st);
  std::optional<DeadLetterInfo> d;
  if (rc == SQLITE_ROW) d = read_dead_letter(st, with_payload);
  sqlite3_finalize(st);
  if (!d) return fail(Error::not_found("no dead letter " + dead_letter_id));
  return *d;
}

Result<ReplayResult> SqliteStore::replay_event(const std::string& dead_letter_id) {
  auto* impl = impl_.get();
  std::int64_t requeued_bytes = 0;
  return run_sync<ReplayResult>(
      *impl,
      [&dead_letter_id, &requeued_bytes](Impl& s) -> Result<ReplayResult> {
        auto dl = replayable_dead_letter(s.db, dead_letter_id);
        if (!dl) return fail(dl.error());
        if (dl->outbox_seq == 0) {
          return fail(Error::invalid("dead letter " + dead_letter_id +
                                     " is a rejected message, not a refused event"));
        }
        Statement st;
        if (auto r = st.prepare(s.db,
                                "UPDATE outbox SET dead_at = NULL WHERE seq = ?1 AND dead_at IS "
                                "NOT NULL RETURNING length(value)");
            !r) {
          return fail(r.error());
        }
        st.integer(1, dl->outbox_seq);
        auto stepped = st.step();
        if (!stepped) return fail(stepped.error());
        const std::int64_t requeued = *stepped == SQLITE_ROW ? 1 : 0;
        if (requeued != 0) requeued_bytes = st.column_int(0);
        st.reset();
        const std::string note = "requeued for Kafka";
        if (auto r = mark_replayed(s.db, dead_letter_id, s.now(), note); !r) return fail(r.error());
        return ReplayResult{dead_letter_id, note, requeued};
      },
      [impl, &requeued_bytes](const Result<ReplayResult>& r) {
        impl->undelivered.fetch_add(r->events);
        impl->undelivered_bytes.fetch_add(requeued_bytes);
        impl->dead_letters.fetch_sub(1);
      });
}

namespace {

struct RecordReferralOp final : WriteOp {
  ReferralRow row;
  Result<void> execute(SqliteStore::Impl& s) override { return upsert_referral(s, row, s.now()); }
  void finish(Result<void> result) override {
    if (!result) {
      log::error("store.referral_not_recorded",
                 {{"referral_id", row.referral_id}, {"reason", result.error().message}});
    }
  }
};

}  // namespace

void SqliteStore::record_referral(ReferralRow row) {
  auto op = std::make_unique<RecordReferralOp>();
  op->row = std::move(row);
  impl_->enqueue(std::move(op));
}

namespace {

ReferralRow referral_row(const Statement& st) {
  ReferralRow r;
  r.referral_id = st.column_text(0);
  r.clinic_number_system = st.column_text(1);
  r.clinic_number_value = st.column_text(2);
  r.source_control_id = st.column_text(3);
  r.agency_id = st.column_text(4);
  r.category = st.column_text(5);
  r.status = st.column_text(6);
  r.business_status = st.column_text(7);
  r.sequence = static_cast<int>(st.column_int(8));
  r.overdue = st.column_int(9) != 0;
  r.created_at_ms = st.column_int(10);
  r.return_to = st.column_text(11);
  r.return_pid = st.column_text(12);
  r.race = st.column_text(13);
  r.ethnicity = st.column_text(14);
  r.language = st.column_text(15);
  return r;
}

ResourceRow resource_row(const Statement& st) {
  return {st.column_text(0), st.column_text(1), st.column_int(2),
          st.column_text(3), st.column_text(4), st.column_text(5)};
}

/// The one referral a bound statement finds (none when it finds none or several).
Result<std::optional<ReferralRow>> single_referral(Statement& st) {
  ResetOnExit reset{st};
  std::optional<ReferralRow> found;
  for (int rows = 0;; ++rows) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r != SQLITE_ROW) break;
    if (rows > 0) return std::optional<ReferralRow>{};  // not unique: names none
    found = referral_row(st);
  }
  return found;
}

/// Every row of a bound statement that selects kResourceColumns.
Result<std::vector<ResourceRow>> resource_rows(Statement& st) {
  ResetOnExit reset{st};
  std::vector<ResourceRow> rows;
  for (;;) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r != SQLITE_ROW) return rows;
    rows.push_back(resource_row(st));
  }
}

}  // namespace

Result<std::optional<ReferralRow>> SqliteStore::find_referral(const ReferralKeysRow& keys) const {
  auto conn = impl_->lease_reader();
  // Most specific first; a clinic number or control id only when exactly one referral has it.
  if (!keys.referral_id.empty()) {
    conn->referral_by_id.text(1, keys.referral_id);
    auto r = single_referral(conn->referral_by_id);
    if (!r || *r) return r;
  }
  if (!keys.clinic_number_value.empty()) {
    auto& st = keys.clinic_number_system.empty() ? conn->referral_by_number
                                                 : conn->referral_by_system_number;
    st.text(1, keys.clinic_number_value);
    if (!keys.clinic_number_system.empty()) st.text(2, keys.clinic_number_system);
    auto r = single_referral(st);
    if (!r || *r) return r;
  }
  if (!keys.source_control_id.empty()) {
    conn->referral_by_control.text(1, keys.source_control_id);
    return single_referral(conn->referral_by_control);
  }
  return std::optional<ReferralRow>{};
}

namespace {

// A statement on a lent reader connection, finalized when done.
class ReadStatement {
 public:
  ReadStatement(sqlite3* db, const std::string& sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st_, nullptr) != SQLITE_OK) st_ = nullptr;
  }
  ~ReadStatement() {
    if (st_ != nullptr) sqlite3_finalize(st_);
  }
  ReadStatement(const ReadStatement&) = delete;
  ReadStatement& operator=(const ReadStatement&) = delete;
  bool ok() const { return st_ != nullptr; }
  Error error() const { return Error::unavailable(sqlite3_errmsg(db_)); }
  void text(int i, std::string_view v) {
    sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void integer(int i, std::int64_t v) { sqlite3_bind_int64(st_, i, v); }
  sqlite3_stmt* get() const { return st_; }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

/// The most values one search binds (every parameter's values together).
constexpr std::size_t kMaxSearchValues = 200;

}  // namespace

Result<std::optional<ResourceRow>> SqliteStore::read_resource(std::string_view type,
                                                              std::string_view id,
                                                              std::int64_t version) const {
  auto conn = impl_->lease_reader();
  auto& st = version == 0 ? conn->current_resource : conn->resource_version;
  st.text(1, type).text(2, id);
  if (version != 0) st.integer(3, version);
  auto rows = resource_rows(st);
  if (!rows) return fail(rows.error());
  if (rows->empty()) return std::optional<ResourceRow>{};
  return std::optional<ResourceRow>(std::move(rows->front()));
}

Result<std::optional<std::string>> SqliteStore::find_resource_id(std::string_view type,
                                                                 std::string_view system,
                                                                 std::string_view value) const {
  auto conn = impl_->lease_reader();
  auto& st = conn->resource_id;
  ResetOnExit reset{st};
  st.text(1, type).text(2, system).text(3, value);
  auto r = st.step();
  if (!r) return fail(r.error());
  if (*r != SQLITE_ROW) return std::optional<std::string>{};
  return std::optional<std::string>(st.column_text(0));
}

Result<ResourcePage> SqliteStore::search_resources(const ResourceQuery& query) const {
  // Every parameter narrows the type's resources to the ids having one of its values (an index
  // lookup each); the SQL text depends only on how many parameters and values there are, and
  // every value is bound.
  std::string where = "WHERE r.type = ?1";
  std::vector<std::string_view> binds{query.type};
  for (const auto& [name, values] : query.params) {
    if (values.empty()) return ResourcePage{};
    where += " AND r.id IN (SELECT s.id FROM resource_search s WHERE s.type = ?1 AND s.name = ?" +
             std::to_string(binds.size() + 1) + " AND s.value IN (";
    binds.push_back(name);
    for (std::size_t i = 0; i < values.size(); ++i) {
      where += (i > 0 ? ", ?" : "?") + std::to_string(binds.size() + 1);
      binds.push_back(values[i]);
    }
    where += "))";
  }
  if (binds.size() > kMaxSearchValues) {
    return fail(Error::invalid("a search takes at most " + std::to_string(kMaxSearchValues) +
                               " parameter values"));
  }
  const std::string count_sql = "SELECT count(*) FROM resources r " + where;
  const std::string page_sql = std::string(kResourceColumns) + "AND h.version = r.version " +
                               where + " ORDER BY r.updated_at DESC, r.id LIMIT ?" +
                               std::to_string(binds.size() + 1) + " OFFSET ?" +
                               std::to_string(binds.size() + 2);
  auto conn = impl_->lease_reader();
  auto counter = conn->search(count_sql);
  if (!counter) return fail(counter.error());
  auto pager = conn->search(page_sql);
  if (!pager) return fail(pager.error());
  // The total and the page from one snapshot, whatever the writer commits meanwhile.
  ReadTransaction snapshot(*conn);
  if (snapshot.error()) return fail(*snapshot.error());
  ResourcePage page;
  {
    auto& st = **counter;
    ResetOnExit reset{st};
    for (std::size_t i = 0; i < binds.size(); ++i)
      st.text(static_cast<int>(i + 1), binds[i]);
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r == SQLITE_ROW) page.total = st.column_int(0);
  }
  const std::int64_t offset = std::max(query.offset, 0);
  if (query.count <= 0 || page.total <= offset) return page;
  auto& st = **pager;
  for (std::size_t i = 0; i < binds.size(); ++i)
    st.text(static_cast<int>(i + 1), binds[i]);
  st.integer(static_cast<int>(binds.size() + 1), query.count);
  st.integer(static_cast<int>(binds.size() + 2), offset);
  auto rows = resource_rows(st);
  if (!rows) return fail(rows.error());
  page.rows = std::move(*rows);
  return page;
}

Result<std::vector<ResourceRow>> SqliteStore::resource_history(std::string_view type,
                                                               std::string_view id) const {
  auto conn = impl_->lease_reader();
  auto& st = conn->resource_history;
  st.text(1, type).text(2, id);
  return resource_rows(st);
}

Result<std::vector<SqliteStore::WaitingReferral>> SqliteStore::referrals_awaiting_agency(
    std::int64_t waiting_before_ms, int limit) const {
  auto conn = impl_->lease_reader();
  ReadStatement st(conn->db(),
                   "SELECT referral_id, clinic_number_system, clinic_number_value, "
                   "source_control_id, agency_id, category, status, business_status, sequence, "
                   "created_at, updated_at FROM referrals WHERE status = 'requested' AND "
                   "overdue_at IS NULL AND business_status NOT IN ('no-route', "
                   "'awaiting-consent') AND updated_at < ?1 ORDER BY updated_at LIMIT ?2");
  if (!st.ok()) return fail(st.error());
  st.integer(1, waiting_before_ms);
  st.integer(2, limit);
  std::vector<WaitingReferral> rows;
  int rc = 0;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    auto* s = st.get();
    ReferralRow r;
    r.referral_id = column(s, 0);
    r.clinic_number_system = column(s, 1);
    r.clinic_number_value = column(s, 2);
    r.source_control_id = column(s, 3);
    r.agency_id = column(s, 4);
    r.category = column(s, 5);
    r.status = column(s, 6);
    r.business_status = column(s, 7);
    r.sequence = sqlite3_column_int(s, 8);
    r.created_at_ms = sqlite3_column_int64(s, 9);
    rows.push_back({std::move(r), sqlite3_column_int64(s, 10)});
  }
  if (rc != SQLITE_DONE) return fail(st.error());
  return rows;
}

Result<std::optional<std::string>> SqliteStore::open_referral_for(std::string_view patient,
                                                                  std::string_view category) const {
  if (patient.empty()) return std::optional<std::string>();
  auto conn = impl_->lease_reader();
  ReadStatement st(conn->db(),
                   "SELECT referral_id FROM referrals WHERE patient = ?1 AND category = ?2 AND "
                   "patient <> '' AND status NOT IN ('rejected', 'completed', 'failed', "
                   "'cancelled') ORDER BY created_at LIMIT 1");
  if (!st.ok()) return fail(st.error());
  st.text(1, patient);
  st.text(2, category);
  const int rc = sqlite3_step(st.get());
  if (rc == SQLITE_ROW) return std::optional<std::string>(column(st.get(), 0));
  if (rc != SQLITE_DONE) return fail(st.error());
  return std::optional<std::string>();
}

Result<std::vector<ReferralCount>> SqliteStore::referral_counts() const {
  auto conn = impl_->lease_reader();
  ReadStatement st(conn->db(),
                   "SELECT status, business_status, agency_id, category, race, ethnicity, "
                   "language, count(*) FROM referrals GROUP BY 1, 2, 3, 4, 5, 6, 7");
  if (!st.ok()) return fail(st.error());
  std::vector<ReferralCount> rows;
  int rc = 0;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    auto* s = st.get();
    rows.push_back({column(s, 0), column(s, 1), column(s, 2), column(s, 3), column(s, 4),
                    column(s, 5), column(s, 6), sqlite3_column_int64(s, 7)});
  }
  if (rc != SQLITE_DONE) return fail(st.error());
  return rows;
}

Result<std::vector<OutboundRow>> SqliteStore::due_outbound(std::int64_t now_ms, int limit) const {
  auto conn = impl_->lease_reader();
  ReadStatement st(conn->db(),
                   "SELECT id, destination, referral_id, message, attempts FROM outbound WHERE "
                   "done_at IS NULL AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2");
  if (!st.ok()) return fail(st.error());
  st.integer(1, now_ms);
  st.integer(2, limit);
  std::vector<OutboundRow> rows;
  int rc = 0;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    auto* s = st.get();
    rows.push_back({sqlite3_column_int64(s, 0), column(s, 1), column(s, 2), column(s, 3),
                    sqlite3_column_int(s, 4)});
  }
  if (rc != SQLITE_DONE) return fail(st.error());
  return rows;
}

namespace {

struct OutboundAttemptOp final : WriteOp {
  std::int64_t id = 0;
  bool done = false;
  std::string outcome;
  std::string error;
  std::int64_t next_attempt_ms = 0;
  bool needs_durability() const override { return false; }
  Result<void> execute(SqliteStore::Impl& s) override {
    Statement st;
    if (auto r = st.prepare(s.db,
                            "UPDATE outbound SET attempts = attempts + 1, next_attempt_at = ?2, "
                            "done_at = CASE WHEN ?3 THEN ?4 END, outcome = ?5, last_error = ?6 "
                            "WHERE id = ?1");
        !r) {
      return r;
    }
    st.integer(1, id).integer(2, next_attempt_ms).integer(3, done ? 1 : 0).integer(4, s.now());
    st.text_or_null(5, outcome).text_or_null(6, error);
    if (auto r = st.step(); !r) return fail(r.error());
    return {};
  }
  void finish(Result<void> result) override {
    if (!result) {
      log::warn("store.outbound_not_recorded", {{"id", id}, {"reason", result.error().message}});
    }
  }
};

}  // namespace

void SqliteStore::record_outbound_attempt(std::int64_t id, bool done, std::string outcome,
                                          std::string error, std::int64_t next_attempt_ms) {
  auto op = std::make_unique<OutboundAttemptOp>();
  op->id = id;
  op->done = done;
  op->outcome = std::move(outcome);
  op->error = std::move(error);
  op->next_attempt_ms = next_attempt_ms;
  impl_->enqueue(std::move(op));
}

Result<std::int64_t> SqliteStore::prune_now() {
  std::int64_t total = 0;
  for (;;) {
    auto op = std::make_unique<PruneOp>();
    op->store = impl_.get();
    std::promise<Result<std::pair<std::int64_t, bool>>> done;
    op->done = &done;
    auto future = done.get_future();
    impl_->enqueue(std::move(op));
    auto r = future.get();
    if (!r) return fail(r.error());
    total += r->first;
    if (!r->second) return total;  // no chunk was full: nothing more is due
  }
}

void SqliteStore::flush() {
  auto op = std::make_unique<BarrierOp>();
  auto done = op->done.get_future();
  impl_->enqueue(std::move(op));
  done.wait();
}

StoreStats SqliteStore::stats() const {
  StoreStats s;
  s.undelivered = impl_->undelivered.load();
  s.undelivered_bytes = impl_->undelivered_bytes.load();
  s.dead_letters = impl_->dead_letters.load();
  std::lock_guard lock(impl_->reader_mutex);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(
          impl_->reader,
          "SELECT created_at FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL ORDER BY "
          "seq LIMIT 1",
          -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    s.oldest_undelivered_ms = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  return s;
}

int SqliteStore::schema_version() const {
  return impl_->version;
}

std::size_t SqliteStore::queued_writes() const {
  std::lock_guard lock(impl_->queue_mutex);
  return impl_->queue.size();
}

ops::CheckState SqliteStore::capacity() const {
  if (auto why = impl_->overloaded()) return {false, "refusing new messages: " + *why};
  return {true, std::to_string(impl_->undelivered.load()) + " undelivered events, " +
                    std::to_string(impl_->undelivered_bytes.load()) + " bytes"};
}

ops::CheckState SqliteStore::health() const {
  std::lock_guard lock(impl_->health_mutex);
  auto state = impl_->health;
  if (state.ok) state.detail = "open, schema v" + std::to_string(impl_->version);
  return state;
}

}  // namespace sdoh::store
