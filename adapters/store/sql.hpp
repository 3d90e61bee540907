#pragma once
// The store's two SQL engines behind one narrow interface: SQLite (embedded, the default) and
// PostgreSQL (store.url, several gateways on one database). The store's logic is written once,
// against sql::Connection and Statement; each engine implements them in one file of its own
// (sql_sqlite.cpp, sql_pg.cpp), and every engine-specific call stays there.
//
// The SQL text is shared. It is written as SQLite and PostgreSQL both read it, with numbered
// parameters `?1`, `?2`... (the PostgreSQL engine rewrites them as `$1`, `$2`...). Where the
// engines differ the text says so with a marker the engine replaces:
//   - `{lock}`  after a SELECT that decides a write: `FOR UPDATE` on PostgreSQL (another gateway
//               may change the row meanwhile), nothing on SQLite (one writer holds the lock).
// Schemas (DDL) are per engine: sqlite_schema (migrations, PRAGMA user_version) and pg_schema.
//
// Threads: a Connection and its statements belong to one thread at a time.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/core/result.hpp"

namespace sdoh::store::sql {

/// step()'s answers (numerically SQLite's SQLITE_ROW and SQLITE_DONE).
inline constexpr int kRow = 100;
inline constexpr int kDone = 101;

enum class Engine { kSqlite, kPostgres };

/// A prepared statement of one connection. Bound bytes are copied or must stay valid until the
/// statement is reset (SQLite binds them in place). Errors: kUnavailable (I/O, connection lost,
/// deadlock or serialization failure: try again), kConflict (a unique or check constraint),
/// kInternal (the statement itself is wrong).
class Cursor {
 public:
  virtual ~Cursor() = default;
  /// Parameters are numbered from 1, as in the SQL text.
  virtual void bind_text(int i, std::string_view v) = 0;
  /// Bytes that need not be UTF-8 text (payloads as received, JSON, HL7).
  virtual void bind_blob(int i, std::string_view v) = 0;
  virtual void bind_int(int i, std::int64_t v) = 0;
  virtual void bind_null(int i) = 0;
  /// Runs the statement on the first call, then moves to the next row: kRow or kDone.
  virtual Result<int> step() = 0;
  /// Runs a statement whose result nobody reads (no rows, no changes()). In a write
  /// transaction an engine may send it without waiting (PostgreSQL's pipeline mode): its error
  /// is then the answer of the next step() on the connection or of flush_sent(). Reset the
  /// statement before binding it again, as after step().
  virtual Result<void> send() {
    for (;;) {
      auto r = step();
      if (!r) return fail(r.error());
      if (*r == kDone) return {};
    }
  }
  /// Columns of the current row, numbered from 0. NULL reads as "" and 0.
  virtual bool is_null(int i) const = 0;
  virtual std::string text(int i) const = 0;
  virtual std::int64_t integer(int i) const = 0;
  /// The rows an INSERT, UPDATE or DELETE changed (after step()).
  virtual std::int64_t changes() const = 0;
  /// Ready to run again; bindings cleared.
  virtual void reset() = 0;
};

class Connection {
 public:
  virtual ~Connection() = default;
  virtual Engine engine() const = 0;
  /// Runs one or more statements without parameters (DDL, BEGIN, COMMIT).
  virtual Result<void> exec(std::string_view sql) = 0;
  /// Prepares one statement (markers and parameters as above).
  virtual Result<std::unique_ptr<Cursor>> prepare(std::string_view sql) = 0;
  /// Starts the transaction that writes: SQLite takes its write lock at once (BEGIN IMMEDIATE);
  /// PostgreSQL enters pipeline mode until COMMIT or ROLLBACK (exec), so that statements sent
  /// with send() share round trips.
  virtual Result<void> begin_write() = 0;
  /// Waits for every statement sent with send(): the first error among them.
  virtual Result<void> flush_sent() { return {}; }
  /// Starts a read-only transaction with one snapshot for all its statements.
  virtual Result<void> begin_read() = 0;
  /// The savepoint of one write inside the writer's group transaction: a write that fails is
  /// undone alone (rollback_to, then release) and the others still commit.
  virtual Result<void> savepoint() { return exec("SAVEPOINT op"); }
  virtual Result<void> release() { return exec("RELEASE op"); }
  virtual Result<void> rollback_to() { return exec("ROLLBACK TO op"); }
  /// Serialises the current transaction, until it ends, with every other transaction on the
  /// database that locks `key` (PostgreSQL: a transaction advisory lock; several gateways write
  /// at once). Nothing on SQLite, whose one writer already serialises every write.
  virtual Result<void> lock(std::int64_t key) {
    (void)key;
    return {};
  }
  /// As lock(), without waiting: whether the lock was taken.
  virtual Result<bool> try_lock(std::int64_t key) {
    (void)key;
    return true;
  }
};

/// The advisory lock keys of the store's serialised writes (lock(), try_lock()).
inline constexpr std::int64_t kAuditChainLock = 0x5344'4f48'0001;  // appends to the audit chain
inline constexpr std::int64_t kSigningKeyLock = 0x5344'4f48'0002;  // the first signing key
inline constexpr std::int64_t kRetentionLock = 0x5344'4f48'0003;   // one gateway prunes at a time
/// The lock of an event key: events of one key get their outbox sequence numbers in commit
/// order, so that the relay publishes them in that order (FNV-1a; the top bit is cleared so
/// that it never meets the store's own keys above).
inline std::int64_t key_lock(std::string_view key) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return static_cast<std::int64_t>((h >> 1) | (std::uint64_t{1} << 62));
}
/// The locks of one FHIR resource (its version is read, then written) and of one referral (its
/// sequence and timeline): gateways that change the same one at once take turns, so that the
/// later one reads what the earlier one wrote. A row lock (`{lock}`) cannot do it for a row that
/// does not exist yet: two creations would both find none.
inline std::int64_t resource_lock(std::string_view type, std::string_view id) {
  return key_lock(std::string("resource\x1f").append(type).append("/").append(id));
}
inline std::int64_t referral_lock(std::string_view referral_id) {
  return key_lock(std::string("referral\x1f").append(referral_id));
}
/// The lock of an agency's Subscriptions, whose event counters a commit's notices advance (row
/// locks on several agencies' rows, taken in the order of each commit's notices, would deadlock
/// two gateways that name them in different orders).
inline std::int64_t subscriptions_lock(std::string_view agency_id) {
  return key_lock(std::string("subscriptions\x1f").append(agency_id));
}
/// The lock of one Subscription, whose version put_subscription reads, then writes (as
/// resource_lock, for the one that does not exist yet).
inline std::int64_t subscription_lock(std::string_view id) {
  return key_lock(std::string("subscription\x1f").append(id));
}

/// A prepared statement with the binding shorthand the store's code uses; reset after each use
/// (ResetOnExit).
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Result<void> prepare(Connection& db, std::string_view sql) {
    auto c = db.prepare(sql);
    if (!c) return fail(c.error());
    cursor_ = std::move(*c);
    return {};
  }
  bool prepared() const { return cursor_ != nullptr; }

  Statement& text(int i, std::string_view v) {
    cursor_->bind_text(i, v);
    return *this;
  }
  /// NULL for the empty text.
  Statement& text_or_null(int i, std::string_view v) {
    if (v.empty()) {
      cursor_->bind_null(i);
    } else {
      cursor_->bind_text(i, v);
    }
    return *this;
  }
  Statement& blob(int i, std::string_view v) {
    cursor_->bind_blob(i, v);
    return *this;
  }
  Statement& integer(int i, std::int64_t v) {
    cursor_->bind_int(i, v);
    return *this;
  }
  Statement& null(int i) {
    cursor_->bind_null(i);
    return *this;
  }
  /// Steps once: kRow or kDone, else an error.
  Result<int> step() { return cursor_->step(); }
  /// Runs it without reading its result (Cursor::send).
  Result<void> send() { return cursor_->send(); }
  /// Steps to the end: the rows changed.
  Result<std::int64_t> run() {
    for (;;) {
      auto r = cursor_->step();
      if (!r) return fail(r.error());
      if (*r == kDone) return cursor_->changes();
    }
  }
  /// Steps to the end, calling `row(*this)` at each row: the number of rows.
  template <class F>
  Result<std::int64_t> each_row(F&& row) {
    std::int64_t rows = 0;
    for (;;) {
      auto r = cursor_->step();
      if (!r) return fail(r.error());
      if (*r == kDone) return rows;
      ++rows;
      row(*this);
    }
  }
  void reset() { cursor_->reset(); }
  std::string column_text(int i) const { return cursor_->text(i); }
  std::int64_t column_int(int i) const { return cursor_->integer(i); }
  bool column_null(int i) const { return cursor_->is_null(i); }
  std::int64_t changes() const { return cursor_->changes(); }

 private:
  std::unique_ptr<Cursor> cursor_;
};

/// Resets a statement when leaving scope.
struct ResetOnExit {
  Statement& s;
  ~ResetOnExit() { s.reset(); }
};

/// Prepares, runs to the end and resets a one-off statement: the rows it changed. `bind` binds
/// its parameters.
template <class Bind>
Result<std::int64_t> run_once(Connection& db, std::string_view sql, Bind&& bind) {
  Statement st;
  if (auto r = st.prepare(db, sql); !r) return fail(r.error());
  bind(st);
  return st.run();
}
inline Result<std::int64_t> run_once(Connection& db, std::string_view sql) {
  return run_once(db, sql, [](Statement&) {});
}

}  // namespace sdoh::store::sql
