// The SQLite store's FHIR Subscriptions and their notification queue (pipeline/subscription_port).
// Notifications are queued by commits (sqlite_commit.cpp, CommitRequest::notices); this file
// reads them, and records what the sender learned, on the writer thread.
#include <cstdio>
#include <ctime>

#include "adapters/store/sqlite_impl.hpp"

namespace sdoh::store {

namespace {

constexpr const char* kSubscriptionColumns =
    "SELECT id, agency_id, client_id, status, endpoint, content, secret, heartbeat_seconds, "
    "end_time, reason, error, events_since_start, version, last_updated, failures, "
    "first_failure_at, next_attempt_at, last_sent_at FROM subscriptions ";

// A statement of its own on a borrowed connection, finalized on scope exit.
class OwnStatement {
 public:
  OwnStatement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK) st_ = nullptr;
  }
  ~OwnStatement() {
    if (st_ != nullptr) sqlite3_finalize(st_);
  }
  OwnStatement(const OwnStatement&) = delete;
  OwnStatement& operator=(const OwnStatement&) = delete;
  bool ok() const { return st_ != nullptr; }
  Error error() const { return Error::unavailable(sqlite3_errmsg(db_)); }
  OwnStatement& text(int i, std::string_view v) {
    sqlite3_bind_text(st_, i, v.data() != nullptr ? v.data() : "", static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  OwnStatement& integer(int i, std::int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  sqlite3_stmt* get() const { return st_; }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

pipeline::SubscriptionRow subscription_of(sqlite3_stmt* st) {
  pipeline::SubscriptionRow r;
  r.id = column(st, 0);
  r.agency_id = column(st, 1);
  r.client_id = column(st, 2);
  r.status = column(st, 3);
  r.endpoint = column(st, 4);
  r.content = column(st, 5);
  r.secret = column(st, 6);
  r.heartbeat_seconds = sqlite3_column_int64(st, 7);
  r.end = column(st, 8);
  r.reason = column(st, 9);
  r.error = column(st, 10);
  r.events_since_start = sqlite3_column_int64(st, 11);
  r.version = sqlite3_column_int64(st, 12);
  r.last_updated = column(st, 13);
  r.failures = sqlite3_column_int(st, 14);
  r.first_failure_ms = sqlite3_column_int64(st, 15);
  r.next_attempt_ms = sqlite3_column_int64(st, 16);
  r.last_sent_ms = sqlite3_column_int64(st, 17);
  return r;
}

Result<std::vector<pipeline::SubscriptionRow>> subscription_rows(OwnStatement& st) {
  if (!st.ok()) return fail(st.error());
  std::vector<pipeline::SubscriptionRow> rows;
  int rc = 0;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW)
    rows.push_back(subscription_of(st.get()));
  if (rc != SQLITE_DONE) return fail(st.error());
  return rows;
}

std::string rfc3339_of_ms(std::int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

Result<void> as_void(Result<bool> r) {
  if (!r) return fail(r.error());
  return {};
}

// Runs one statement on the writer connection: the rows it changed.
Result<std::int64_t> write(sqlite3* db, OwnStatement& st) {
  if (!st.ok()) return fail(st.error());
  if (sqlite3_step(st.get()) != SQLITE_DONE) return fail(st.error());
  return static_cast<std::int64_t>(sqlite3_changes(db));
}

}  // namespace

Result<void> SqliteStore::put_subscription(const pipeline::SubscriptionRow& row,
                                           std::int64_t expected_version) {
  return as_void(run_sync<bool>(*impl_, [row, expected_version](Impl& s) -> Result<bool> {
    std::int64_t current = 0;
    {
      OwnStatement st(s.db, "SELECT version FROM subscriptions WHERE id = ?1");
      if (!st.ok()) return fail(st.error());
      st.text(1, row.id);
      if (sqlite3_step(st.get()) == SQLITE_ROW) current = sqlite3_column_int64(st.get(), 0);
    }
    if (current != expected_version) {
      return fail(Error::conflict("Subscription/" + row.id + " is at version " +
                                  std::to_string(current) + ", not " +
                                  std::to_string(expected_version)));
    }
    // The queue's numbering and the delivery state stay with the stored Subscription.
    OwnStatement st(
        s.db,
        "INSERT INTO subscriptions(id, agency_id, client_id, status, endpoint, content, "
        "secret, heartbeat_seconds, end_time, reason, error, events_since_start, "
        "version, "
        "last_updated, failures, first_failure_at, next_attempt_at, last_sent_at) "
        "VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12, ?13, 0, 0, 0, 0) "
        "ON CONFLICT(id) DO UPDATE SET status = excluded.status, endpoint = "
        "excluded.endpoint, content = excluded.content, secret = excluded.secret, "
        "heartbeat_seconds = excluded.heartbeat_seconds, end_time = excluded.end_time, "
        "reason = excluded.reason, error = excluded.error, version = excluded.version, "
        "last_updated = excluded.last_updated, failures = 0, first_failure_at = 0, "
        "next_attempt_at = 0");
    st.text(1, row.id).text(2, row.agency_id).text(3, row.client_id).text(4, row.status);
    st.text(5, row.endpoint).text(6, row.content).text(7, row.secret);
    st.integer(8, row.heartbeat_seconds).text(9, row.end).text(10, row.reason);
    st.text(11, row.error).integer(12, row.version).text(13, row.last_updated);
    auto n = write(s.db, st);
    if (!n) return fail(n.error());
    return true;
  }));
}

Result<std::optional<pipeline::SubscriptionRow>> SqliteStore::subscription(
    const std::string& id) const {
  auto conn = impl_->lease_reader();
  OwnStatement st(conn->db(), (std::string(kSubscriptionColumns) + "WHERE id = ?1").c_str());
  if (st.ok()) st.text(1, id);
  auto rows = subscription_rows(st);
  if (!rows) return fail(rows.error());
  if (rows->empty()) return std::optional<pipeline::SubscriptionRow>();
  return std::optional<pipeline::SubscriptionRow>(std::move(rows->front()));
}

Result<std::vector<pipeline::SubscriptionRow>> SqliteStore::subscriptions(
    const std::string& agency_id) const {
  auto conn = impl_->lease_reader();
  OwnStatement st(
      conn->db(),
      (std::string(kSubscriptionColumns) + "WHERE ?1 = '' OR agency_id = ?1 ORDER BY id").c_str());
  if (st.ok()) st.text(1, agency_id);
  return subscription_rows(st);
}

Result<bool> SqliteStore::delete_subscription(const std::string& id) {
  return run_sync<bool>(*impl_, [id](Impl& s) -> Result<bool> {
    OwnStatement queue(s.db, "DELETE FROM subscription_notifications WHERE subscription_id = ?1");
    if (queue.ok()) queue.text(1, id);
    if (auto n = write(s.db, queue); !n) return fail(n.error());
    OwnStatement st(s.db, "DELETE FROM subscriptions WHERE id = ?1");
    if (st.ok()) st.text(1, id);
    auto n = write(s.db, st);
    if (!n) return fail(n.error());
    return *n > 0;
  });
}

Result<std::vector<pipeline::NotificationRow>> SqliteStore::queued_notifications(
    const std::string& id, int limit) const {
  auto conn = impl_->lease_reader();
  OwnStatement st(conn->db(),
                  "SELECT seq, subscription_id, event_number, referral_id, sequence, status, "
                  "task_json, created_at FROM subscription_notifications WHERE subscription_id = "
                  "?1 ORDER BY seq LIMIT ?2");
  if (!st.ok()) return fail(st.error());
  st.text(1, id).integer(2, limit);
  std::vector<pipeline::NotificationRow> rows;
  int rc = 0;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    auto* s = st.get();
    pipeline::NotificationRow r;
    r.seq = sqlite3_column_int64(s, 0);
    r.subscription_id = column(s, 1);
    r.event_number = sqlite3_column_int64(s, 2);
    r.referral_id = column(s, 3);
    r.sequence = sqlite3_column_int(s, 4);
    r.status = column(s, 5);
    r.task_json = column(s, 6);
    r.created_at = rfc3339_of_ms(sqlite3_column_int64(s, 7));
    rows.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return fail(st.error());
  return rows;
}

Result<std::int64_t> SqliteStore::queued_notification_count() const {
  auto conn = impl_->lease_reader();
  OwnStatement st(conn->db(), "SELECT count(*) FROM subscription_notifications");
  if (!st.ok()) return fail(st.error());
  if (sqlite3_step(st.get()) != SQLITE_ROW) return fail(st.error());
  return sqlite3_column_int64(st.get(), 0);
}

Result<void> SqliteStore::record_delivery(const pipeline::DeliveryRecord& record) {
  return as_void(run_sync<bool>(*impl_, [record](Impl& s) -> Result<bool> {
    OwnStatement st(s.db,
                    "UPDATE subscriptions SET status = ?2, error = ?3, failures = ?4, "
                    "first_failure_at = ?5, next_attempt_at = ?6, last_sent_at = ?7 WHERE "
                    "id = ?1 AND version = ?8");
    if (st.ok()) {
      st.text(1, record.subscription_id).text(2, record.status).text(3, record.error);
      st.integer(4, record.failures).integer(5, record.first_failure_ms);
      st.integer(6, record.next_attempt_ms).integer(7, record.last_sent_ms);
      st.integer(8, record.version);
    }
    auto n = write(s.db, st);
    if (!n) return fail(n.error());
    // Changed or deleted meanwhile: what was delivered was still delivered.
    OwnStatement del(s.db,
                     "DELETE FROM subscription_notifications WHERE seq = ?1 AND "
                     "subscription_id = ?2");
    if (!del.ok()) return fail(del.error());
    for (auto seq : record.delivered) {
      sqlite3_reset(del.get());
      del.integer(1, seq).text(2, record.subscription_id);
      if (sqlite3_step(del.get()) != SQLITE_DONE) return fail(del.error());
    }
    return true;
  }));
}

}  // namespace sdoh::store
