#include "adapters/store/sqlite_store.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <sqlite3.h>
#include <thread>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "gateway/log/log.hpp"

namespace sdoh::store {

namespace asio = boost::asio;

namespace {

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
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
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

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

/// Resets a statement when leaving scope.
struct ResetOnExit {
  Statement& s;
  ~ResetOnExit() { s.reset(); }
};

}  // namespace

/// One unit of work for the writer thread. execute() runs inside the group's transaction
/// (under its own savepoint); finish() runs after the transaction committed or failed.
struct WriteOp {
  virtual ~WriteOp() = default;
  virtual Result<void> execute(SqliteStore::Impl& store) = 0;
  virtual void finish(Result<void> result) = 0;
};

struct SqliteStore::Impl {
  sqlite3* db = nullptr;      // the writer connection: writer thread only (after open)
  sqlite3* reader = nullptr;  // read-only connection, guarded by reader_mutex
  mutable std::mutex reader_mutex;
  std::filesystem::path path;
  int version = 0;

  Statement insert_inbound, select_inbound, insert_outbox, insert_dead_letter, mark_delivered;

  std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::deque<std::unique_ptr<WriteOp>> queue;
  bool stopping = false;
  std::thread writer;
  std::size_t max_batch = 1024;

  mutable std::mutex health_mutex;
  ops::CheckState health{true, "open"};

  std::atomic<std::int64_t> undelivered{0};
  std::atomic<std::int64_t> dead_letters{0};

  metrics::Histogram* batch_size = nullptr;
  metrics::Histogram* commit_seconds = nullptr;
  metrics::Counter* commits_ok = nullptr;
  metrics::Counter* commits_duplicate = nullptr;
  metrics::Counter* commits_failed = nullptr;

  ~Impl() {
    {
      std::lock_guard lock(queue_mutex);
      stopping = true;
    }
    queue_cv.notify_all();
    if (writer.joinable()) writer.join();
    if (reader != nullptr) sqlite3_close_v2(reader);
    if (db != nullptr) sqlite3_close_v2(db);
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
        queue_cv.wait(lock, [this] { return !queue.empty() || stopping; });
        if (queue.empty()) return;  // stopping, and everything queued has been written
        while (!queue.empty() && batch.size() < max_batch) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      const auto started = std::chrono::steady_clock::now();
      results.assign(batch.size(), Result<void>{});
      auto group = exec(db, "BEGIN IMMEDIATE");
      for (std::size_t i = 0; group && i < batch.size(); ++i) {
        group = exec(db, "SAVEPOINT op");
        if (!group) break;
        results[i] = batch[i]->execute(*this);
        // A failed op is undone alone; the others in the group still commit.
        if (!results[i]) group = exec(db, "ROLLBACK TO op");
        if (group) group = exec(db, "RELEASE op");
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
      for (std::size_t i = 0; i < batch.size(); ++i)
        batch[i]->finish(std::move(results[i]));
      batch.clear();
    }
  }
};

namespace {

struct CommitOp final : WriteOp {
  pipeline::CommitRequest request;
  pipeline::CommitOutcome outcome;
  std::move_only_function<void(Result<pipeline::CommitOutcome>)> complete;

  Result<void> execute(SqliteStore::Impl& s) override {
    const auto& in = request.inbound;
    const auto received = now_ms();
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
      return {};
    }
    outcome.status = pipeline::CommitStatus::kCommitted;
    outcome.inbound_id = sqlite3_last_insert_rowid(s.db);
    outcome.answer_code = in.answer_code;
    std::int64_t added = 0;
    for (const auto& e : request.events) {
      auto& st = s.insert_outbox;
      ResetOnExit reset{st};
      st.text(1, e.event_id).integer(2, outcome.inbound_id).text(3, e.type).text(4, e.topic);
      st.text(5, e.key).blob(6, e.value).integer(7, received);
      if (auto r = st.step(); !r) return fail(r.error());
      added += sqlite3_changes(s.db);
    }
    if (request.dead_letter) {
      const auto& d = *request.dead_letter;
      auto& st = s.insert_dead_letter;
      ResetOnExit reset{st};
      st.text(1, d.dead_letter_id).integer(2, outcome.inbound_id).integer(3, received);
      st.text(4, d.stage).text(5, d.error_code).text(6, d.error_text).text(7, d.location);
      if (auto r = st.step(); !r) return fail(r.error());
    }
    pending_undelivered = added;
    pending_dead_letters = request.dead_letter ? 1 : 0;
    return {};
  }

  void finish(Result<void> result) override {
    if (result) {
      store->undelivered.fetch_add(pending_undelivered);
      store->dead_letters.fetch_add(pending_dead_letters);
      (outcome.status == pipeline::CommitStatus::kDuplicate ? store->commits_duplicate
                                                            : store->commits_ok)
          ->inc();
      complete(std::move(outcome));
    } else {
      store->commits_failed->inc();
      complete(fail(result.error()));
    }
  }

  SqliteStore::Impl* store = nullptr;
  std::int64_t pending_undelivered = 0;
  std::int64_t pending_dead_letters = 0;
};

struct MarkDeliveredOp final : WriteOp {
  std::vector<std::int64_t> seqs;
  std::int64_t marked = 0;

  Result<void> execute(SqliteStore::Impl& s) override {
    const auto at = now_ms();
    for (auto seq : seqs) {
      auto& st = s.mark_delivered;
      ResetOnExit reset{st};
      st.integer(1, at).integer(2, seq);
      if (auto r = st.step(); !r) return fail(r.error());
      marked += sqlite3_changes(s.db);
    }
    return {};
  }
  void finish(Result<void> result) override {
    // Not marked (store failing): the events stay undelivered and are published again after a
    // restart; consumers dedupe on the event id.
    if (result) store->undelivered.fetch_sub(marked);
  }
  SqliteStore::Impl* store = nullptr;
};

struct BarrierOp final : WriteOp {
  std::promise<void> done;
  Result<void> execute(SqliteStore::Impl&) override { return {}; }
  void finish(Result<void>) override { done.set_value(); }
};

}  // namespace

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteStore::~SqliteStore() = default;

int SqliteStore::latest_schema_version() {
  return static_cast<int>(kMigrations.size());
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::filesystem::path& path,
                                                       const config::StoreConfig& cfg,
                                                       metrics::Registry* registry) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
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
  const std::string pragmas = std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=") +
                              (cfg.synchronous == "normal" ? "NORMAL" : "FULL") +
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
        impl->db, "UPDATE outbox SET delivered_at = ?1 WHERE seq = ?2 AND delivered_at IS NULL");
  }
  if (!prepared) return fail(prepared.error());

  if (sqlite3_open_v2(path.c_str(), &impl->reader, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return fail(Error::unavailable("cannot open a reader on " + path.string()));
  }
  sqlite3_busy_timeout(impl->reader, 5000);
  {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(impl->reader,
                       "SELECT (SELECT count(*) FROM outbox WHERE delivered_at IS NULL), "
                       "(SELECT count(*) FROM dead_letters)",
                       -1, &st, nullptr);
    if (sqlite3_step(st) == SQLITE_ROW) {
      impl->undelivered = sqlite3_column_int64(st, 0);
      impl->dead_letters = sqlite3_column_int64(st, 1);
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
    auto* raw = impl.get();
    reg.gauge_callback("sdoh_outbox_undelivered_events",
                       "Committed events not yet acknowledged by Kafka.",
                       [raw] { return static_cast<double>(raw->undelivered.load()); });
    reg.gauge_callback("sdoh_dead_letters_stored", "Dead letters kept in the store.",
                       [raw] { return static_cast<double>(raw->dead_letters.load()); });
    reg.gauge_callback(
        "sdoh_outbox_oldest_undelivered_age_seconds",
        "Age of the oldest committed event Kafka has not acknowledged (0: none).", [raw] {
          std::lock_guard lock(raw->reader_mutex);
          sqlite3_stmt* st = nullptr;
          double age = 0;
          if (sqlite3_prepare_v2(raw->reader,
                                 "SELECT created_at FROM outbox WHERE delivered_at IS NULL "
                                 "ORDER BY seq LIMIT 1",
                                 -1, &st, nullptr) == SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW) {
            age = static_cast<double>(now_ms() - sqlite3_column_int64(st, 0)) / 1000.0;
          }
          sqlite3_finalize(st);
          return age;
        });
  } else {
    static metrics::Counter unused_ok, unused_dup, unused_failed;
    impl->commits_ok = &unused_ok;
    impl->commits_duplicate = &unused_dup;
    impl->commits_failed = &unused_failed;
  }

  auto* raw = impl.get();
  impl->writer = std::thread([raw] { raw->writer_loop(); });
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

asio::awaitable<Result<pipeline::CommitOutcome>> SqliteStore::commit(
    pipeline::CommitRequest request) {
  auto* impl = impl_.get();
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable),
                                          void(Result<pipeline::CommitOutcome>)>(
      [impl, &request](auto handler) {
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
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(impl_->reader,
                         "SELECT seq, event_id, topic, key, value, created_at FROM outbox "
                         "WHERE delivered_at IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2",
                         -1, &st, nullptr) != SQLITE_OK) {
    return fail(Error::unavailable(sqlite3_errmsg(impl_->reader)));
  }
  sqlite3_bind_int64(st, 1, after_seq);
  sqlite3_bind_int(st, 2, limit);
  std::vector<PendingEvent> out;
  int rc = 0;
  auto text = [st](int i) {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(st, i));
    return p == nullptr ? std::string()
                        : std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st, i)));
  };
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    out.push_back({sqlite3_column_int64(st, 0), text(1), text(2), text(3), text(4),
                   sqlite3_column_int64(st, 5)});
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return fail(Error::unavailable(sqlite3_errmsg(impl_->reader)));
  return out;
}

void SqliteStore::mark_delivered(std::vector<std::int64_t> seqs) {
  auto op = std::make_unique<MarkDeliveredOp>();
  op->store = impl_.get();
  op->seqs = std::move(seqs);
  impl_->enqueue(std::move(op));
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
  s.dead_letters = impl_->dead_letters.load();
  std::lock_guard lock(impl_->reader_mutex);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(
          impl_->reader,
          "SELECT created_at FROM outbox WHERE delivered_at IS NULL ORDER BY seq LIMIT 1", -1, &st,
          nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    s.oldest_undelivered_ms = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  return s;
}

int SqliteStore::schema_version() const {
  return impl_->version;
}

ops::CheckState SqliteStore::health() const {
  std::lock_guard lock(impl_->health_mutex);
  auto state = impl_->health;
  if (state.ok) state.detail = "open, schema v" + std::to_string(impl_->version);
  return state;
}

}  // namespace sdoh::store
