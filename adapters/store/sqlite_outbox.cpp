// The SQLite store's outbox as the relay reads it, and the dead letters operators replay.
#include "adapters/store/sqlite_impl.hpp"

namespace sdoh::store {

Result<ReplayableDeadLetter> replayable_dead_letter(sql::Connection& db, const std::string& id) {
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
Result<void> mark_replayed(sql::Connection& db, const std::string& id, std::int64_t at,
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

namespace {

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
        // Only an event still pending leaves the queue (not one delivered meanwhile).
        auto left = s.remove_pending(seq);
        if (!left) return fail(left.error());
        if (!*left) return std::int64_t{-1};
        left_bytes = **left;
        Statement st;
        if (auto p = st.prepare(*s.conn,
                                "UPDATE outbox SET dead_at = ?1, last_error = ?2, attempts = "
                                "attempts + 1 WHERE seq = ?3 RETURNING inbound_id");
            !p) {
          return fail(p.error());
        }
        st.integer(1, at).text(2, record.error_text).integer(3, seq);
        auto moved = st.step();
        if (!moved) return fail(moved.error());
        if (*moved != SQLITE_ROW) return fail(Error::internal("a pending event has no outbox row"));
        const bool has_inbound = !st.column_null(0);
        const auto inbound_id = st.column_int(0);
        st.reset();  // finishes the UPDATE
        Statement dl;
        if (auto p =
                dl.prepare(*s.conn,
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
        if (sqlite3_changes(s.db) == 0) return std::int64_t{0};
        if (auto pr = s.add_pending(sqlite3_last_insert_rowid(s.db),
                                    static_cast<std::int64_t>(notice->value.size()));
            !pr) {
          return fail(pr.error());
        }
        return std::int64_t{1};
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
                     "SELECT o.seq, o.event_id, o.topic FROM outbox_pending p JOIN outbox o ON "
                     "o.seq = p.seq ORDER BY p.seq",
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
        auto dl = replayable_dead_letter(*s.conn, dead_letter_id);
        if (!dl) return fail(dl.error());
        if (dl->outbox_seq == 0) {
          return fail(Error::invalid("dead letter " + dead_letter_id +
                                     " is a rejected message, not a refused event"));
        }
        Statement st;
        if (auto r = st.prepare(*s.conn,
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
        if (requeued != 0) {
          if (auto pr = s.add_pending(dl->outbox_seq, requeued_bytes); !pr) return fail(pr.error());
        }
        const std::string note = "requeued for Kafka";
        if (auto r = mark_replayed(*s.conn, dead_letter_id, s.now(), note); !r) return fail(r.error());
        return ReplayResult{dead_letter_id, note, requeued};
      },
      [impl, &requeued_bytes](const Result<ReplayResult>& r) {
        impl->undelivered.fetch_add(r->events);
        impl->undelivered_bytes.fetch_add(requeued_bytes);
        impl->dead_letters.fetch_sub(1);
      });
}

}  // namespace sdoh::store
