// The SQLite engine of sql.hpp.
#include "adapters/store/sql_sqlite.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

namespace sdoh::store::sql {
namespace {

/// The shared SQL text as SQLite reads it: markers removed (one writer holds the lock).
std::string dialect(std::string_view sql) {
  std::string out(sql);
  static constexpr std::string_view kLock = "{lock}";
  for (auto at = out.find(kLock); at != std::string::npos; at = out.find(kLock, at))
    out.erase(at, kLock.size());
  return out;
}

// The busy handler of wait_when_busy; `limit_ms` is its limit in ms. SQLite calls it with tries
// 0, 1, 2, ... while one statement waits for one lock, all on the thread running that statement:
// the wait's start is that thread's.
int busy_retry(void* limit_ms, int tries) {
  using Clock = std::chrono::steady_clock;
  thread_local Clock::time_point since;
  thread_local int last = -1;
  const auto now = Clock::now();
  const auto limit = std::chrono::milliseconds(reinterpret_cast<std::intptr_t>(limit_ms));
  // A new wait: tries 0, or (SQLite does not always start again from 0) not the next count.
  const bool fresh = tries == 0 || tries != last + 1;
  last = tries;
  if (fresh) {
    since = now;
  } else if (now - since >= limit) {
    return 0;  // SQLITE_BUSY to the statement
  }
  std::this_thread::sleep_for(std::chrono::microseconds(100));
  return 1;
}

Error error_of(sqlite3* db) {
  const int code = sqlite3_extended_errcode(db);
  std::string message = sqlite3_errmsg(db);
  if (code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY)
    return Error::conflict(message);
  return Error::unavailable(message);
}

class SqliteCursor final : public Cursor {
 public:
  SqliteCursor(sqlite3* db, sqlite3_stmt* st) : db_(db), st_(st) {}
  ~SqliteCursor() override { sqlite3_finalize(st_); }
  SqliteCursor(const SqliteCursor&) = delete;
  SqliteCursor& operator=(const SqliteCursor&) = delete;

  void bind_text(int i, std::string_view v) override {
    // A null pointer would bind NULL, which equals nothing: an empty view is the empty text.
    sqlite3_bind_text(st_, i, v.data() != nullptr ? v.data() : "", static_cast<int>(v.size()),
                      SQLITE_STATIC);
  }
  void bind_blob(int i, std::string_view v) override {
    sqlite3_bind_blob(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  void bind_int(int i, std::int64_t v) override { sqlite3_bind_int64(st_, i, v); }
  void bind_null(int i) override { sqlite3_bind_null(st_, i); }
  Result<int> step() override {
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_DONE) changes_ = sqlite3_changes64(db_);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) return rc;
    return fail(error_of(db_));
  }
  bool is_null(int i) const override { return sqlite3_column_type(st_, i) == SQLITE_NULL; }
  std::string text(int i) const override {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(st_, i));
    return p == nullptr ? std::string()
                        : std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st_, i)));
  }
  std::int64_t integer(int i) const override { return sqlite3_column_int64(st_, i); }
  std::int64_t changes() const override { return changes_; }
  void reset() override {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
    changes_ = 0;
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_;
  std::int64_t changes_ = 0;
};

class SqliteConnection final : public Connection {
 public:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  Engine engine() const override { return Engine::kSqlite; }
  Result<void> exec(std::string_view sql) override {
    const std::string text = dialect(sql);
    char* err = nullptr;
    if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string message = err != nullptr ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      return fail(Error::unavailable(message));
    }
    return {};
  }
  Result<std::unique_ptr<Cursor>> prepare(std::string_view sql) override {
    const std::string text = dialect(sql);
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v3(db_, text.c_str(), static_cast<int>(text.size()),
                           SQLITE_PREPARE_PERSISTENT, &st, nullptr) != SQLITE_OK) {
      return fail(Error::internal(std::string("prepare: ") + sqlite3_errmsg(db_)));
    }
    return std::unique_ptr<Cursor>(std::make_unique<SqliteCursor>(db_, st));
  }
  Result<void> begin_write() override { return exec("BEGIN IMMEDIATE"); }
  Result<void> begin_read() override { return exec("BEGIN"); }
  // Prepared once: they run around every write of the group.
  Result<void> savepoint() override { return run(savepoint_, "SAVEPOINT op"); }
  Result<void> release() override { return run(release_, "RELEASE op"); }
  Result<void> rollback_to() override { return run(rollback_to_, "ROLLBACK TO op"); }

 private:
  Result<void> run(std::unique_ptr<Cursor>& st, std::string_view sql) {
    if (st == nullptr) {
      auto p = prepare(sql);
      if (!p) return fail(p.error());
      st = std::move(*p);
    }
    auto r = st->step();
    st->reset();
    if (!r) return fail(r.error());
    return {};
  }

  sqlite3* db_;
  std::unique_ptr<Cursor> savepoint_, release_, rollback_to_;
};

}  // namespace

std::unique_ptr<Connection> sqlite_connection(sqlite3* db) {
  return std::make_unique<SqliteConnection>(db);
}

void wait_when_busy(sqlite3* db, std::chrono::milliseconds limit) {
  sqlite3_busy_handler(db, &busy_retry,
                       reinterpret_cast<void*>(static_cast<std::intptr_t>(limit.count())));
}

}  // namespace sdoh::store::sql
