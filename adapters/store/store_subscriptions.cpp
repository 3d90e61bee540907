// The store's FHIR Subscriptions and their notification queue (pipeline/subscription_port).
// Notifications are queued by commits (store_commit.cpp, CommitRequest::notices); this file
// reads them, and records what the sender learned, on the writer thread.
#include <cstdio>
#include <ctime>

#include "adapters/store/sql_store_impl.hpp"

namespace sdoh::store {

namespace {

constexpr const char* kSubscriptionColumns =
    "SELECT id, agency_id, client_id, status, endpoint, content, secret, heartbeat_seconds, "
    "end_time, reason, error, events_since_start, version, last_updated, failures, "
    "first_failure_at, next_attempt_at, last_sent_at FROM subscriptions ";

pipeline::SubscriptionRow subscription_of(const Statement& st) {
  pipeline::SubscriptionRow r;
  r.id = st.column_text(0);
  r.agency_id = st.column_text(1);
  r.client_id = st.column_text(2);
  r.status = st.column_text(3);
  r.endpoint = st.column_text(4);
  r.content = st.column_text(5);
  r.secret = st.column_text(6);
  r.heartbeat_seconds = st.column_int(7);
  r.end = st.column_text(8);
  r.reason = st.column_text(9);
  r.error = st.column_text(10);
  r.events_since_start = st.column_int(11);
  r.version = st.column_int(12);
  r.last_updated = st.column_text(13);
  r.failures = static_cast<int>(st.column_int(14));
  r.first_failure_ms = st.column_int(15);
  r.next_attempt_ms = st.column_int(16);
  r.last_sent_ms = st.column_int(17);
  return r;
}

Result<std::vector<pipeline::SubscriptionRow>> subscription_rows(Statement& st) {
  std::vector<pipeline::SubscriptionRow> rows;
  for (;;) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r != kRow) return rows;
    rows.push_back(subscription_of(st));
  }
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

}  // namespace

Result<void> SqlStore::put_subscription(const pipeline::SubscriptionRow& row,
                                        std::int64_t expected_version) {
  return as_void(run_sync<bool>(*impl_, [row, expected_version](Impl& s) -> Result<bool> {
    // Gateways that put the same Subscription at once take turns (until the transaction ends).
    if (auto locked = s.conn->lock(sql::subscription_lock(row.id)); !locked) {
      return fail(locked.error());
    }
    std::int64_t current = 0;
    {
      Statement st;
      if (auto p = st.prepare(*s.conn, "SELECT version FROM subscriptions WHERE id = ?1 {lock}");
          !p) {
        return fail(p.error());
      }
      st.text(1, row.id);
      auto r = st.step();
      if (!r) return fail(r.error());
      if (*r == kRow) current = st.column_int(0);
    }
    if (current != expected_version) {
      return fail(Error::conflict("Subscription/" + row.id + " is at version " +
                                  std::to_string(current) + ", not " +
                                  std::to_string(expected_version)));
    }
    // The queue's numbering and the delivery state stay with the stored Subscription.
    auto n = sql::run_once(
        *s.conn,
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
        "next_attempt_at = 0",
        [&](Statement& st) {
          st.text(1, row.id).text(2, row.agency_id).text(3, row.client_id).text(4, row.status);
          st.text(5, row.endpoint).text(6, row.content).text(7, row.secret);
          st.integer(8, row.heartbeat_seconds).text(9, row.end).text(10, row.reason);
          st.text(11, row.error).integer(12, row.version).text(13, row.last_updated);
        });
    if (!n) return fail(n.error());
    return true;
  }));
}

Result<std::optional<pipeline::SubscriptionRow>> SqlStore::subscription(
    const std::string& id) const {
  auto conn = impl_->lease_reader();
  Statement st;
  if (auto p = st.prepare(*conn->conn, std::string(kSubscriptionColumns) + "WHERE id = ?1"); !p)
    return fail(p.error());
  st.text(1, id);
  auto rows = subscription_rows(st);
  if (!rows) return fail(rows.error());
  if (rows->empty()) return std::optional<pipeline::SubscriptionRow>();
  return std::optional<pipeline::SubscriptionRow>(std::move(rows->front()));
}

Result<std::vector<pipeline::SubscriptionRow>> SqlStore::subscriptions(
    const std::string& agency_id) const {
  auto conn = impl_->lease_reader();
  Statement st;
  if (auto p = st.prepare(*conn->conn, std::string(kSubscriptionColumns) +
                                           "WHERE ?1 = '' OR agency_id = ?1 ORDER BY id");
      !p) {
    return fail(p.error());
  }
  st.text(1, agency_id);
  return subscription_rows(st);
}

Result<bool> SqlStore::delete_subscription(const std::string& id) {
  return run_sync<bool>(*impl_, [id](Impl& s) -> Result<bool> {
    auto bind_id = [&](Statement& st) { st.text(1, id); };
    if (auto n = sql::run_once(
            *s.conn, "DELETE FROM subscription_notifications WHERE subscription_id = ?1", bind_id);
        !n) {
      return fail(n.error());
    }
    auto n = sql::run_once(*s.conn, "DELETE FROM subscriptions WHERE id = ?1", bind_id);
    if (!n) return fail(n.error());
    return *n > 0;
  });
}

Result<std::vector<pipeline::NotificationRow>> SqlStore::queued_notifications(const std::string& id,
                                                                              int limit) const {
  auto conn = impl_->lease_reader();
  Statement st;
  if (auto p = st.prepare(*conn->conn,
                          "SELECT seq, subscription_id, event_number, referral_id, sequence, "
                          "status, task_json, created_at FROM subscription_notifications WHERE "
                          "subscription_id = ?1 ORDER BY seq LIMIT ?2");
      !p) {
    return fail(p.error());
  }
  st.text(1, id).integer(2, limit);
  std::vector<pipeline::NotificationRow> rows;
  for (;;) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r != kRow) return rows;
    pipeline::NotificationRow n;
    n.seq = st.column_int(0);
    n.subscription_id = st.column_text(1);
    n.event_number = st.column_int(2);
    n.referral_id = st.column_text(3);
    n.sequence = static_cast<int>(st.column_int(4));
    n.status = st.column_text(5);
    n.task_json = st.column_text(6);
    n.created_at = rfc3339_of_ms(st.column_int(7));
    rows.push_back(std::move(n));
  }
}

Result<std::int64_t> SqlStore::queued_notification_count() const {
  auto conn = impl_->lease_reader();
  Statement st;
  if (auto p = st.prepare(*conn->conn, "SELECT count(*) FROM subscription_notifications"); !p)
    return fail(p.error());
  auto r = st.step();
  if (!r) return fail(r.error());
  if (*r != kRow) return fail(Error::internal("count(*) gave no row"));
  return st.column_int(0);
}

Result<void> SqlStore::record_delivery(const pipeline::DeliveryRecord& record) {
  return as_void(run_sync<bool>(*impl_, [record](Impl& s) -> Result<bool> {
    auto n = sql::run_once(*s.conn,
                           "UPDATE subscriptions SET status = ?2, error = ?3, failures = ?4, "
                           "first_failure_at = ?5, next_attempt_at = ?6, last_sent_at = ?7 WHERE "
                           "id = ?1 AND version = ?8",
                           [&](Statement& st) {
                             st.text(1, record.subscription_id).text(2, record.status);
                             st.text(3, record.error).integer(4, record.failures);
                             st.integer(5, record.first_failure_ms);
                             st.integer(6, record.next_attempt_ms);
                             st.integer(7, record.last_sent_ms).integer(8, record.version);
                           });
    if (!n) return fail(n.error());
    // Changed or deleted meanwhile: what was delivered was still delivered.
    Statement del;
    if (auto p = del.prepare(*s.conn,
                             "DELETE FROM subscription_notifications WHERE seq = ?1 AND "
                             "subscription_id = ?2");
        !p) {
      return fail(p.error());
    }
    for (auto seq : record.delivered) {
      ResetOnExit reset{del};
      del.integer(1, seq).text(2, record.subscription_id);
      if (auto d = del.run(); !d) return fail(d.error());
    }
    return true;
  }));
}

}  // namespace sdoh::store
