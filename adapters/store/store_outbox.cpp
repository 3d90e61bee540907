// The store's outbox as the relay reads it, and the dead letters operators replay.
#include "adapters/store/sql_store_impl.hpp"

namespace sdoh::store {

Result<ReplayableDeadLetter> replayable_dead_letter(sql::Connection& db, const std::string& id) {
  Statement st;
  if (auto r = st.prepare(db,
                          "SELECT coalesce(inbound_id, 0), coalesce(outbox_seq, 0), CASE WHEN "
                          "replayed_at IS NOT NULL THEN 1 ELSE 0 END FROM dead_letters WHERE "
                          "dead_letter_id = ?1 {lock}");
      !r) {
    return fail(r.error());
  }
  st.text(1, id);
  auto rc = st.step();
  if (!rc) return fail(rc.error());
  if (*rc != kRow) return fail(Error::not_found("no dead letter " + id));
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
    "coalesce(d.replay_outcome, ''), CASE WHEN i.payload IS NOT NULL THEN 1 ELSE 0 END, i.payload, "
    "i.answer FROM dead_letters d LEFT JOIN inbound i ON i.id = d.inbound_id ";

DeadLetterInfo read_dead_letter(const Statement& st, bool with_payload) {
  DeadLetterInfo d;
  d.dead_letter_id = st.column_text(0);
  d.created_at_ms = st.column_int(1);
  d.stage = st.column_text(2);
  d.error_code = st.column_text(3);
  d.error_text = st.column_text(4);
  d.location = st.column_text(5);
  d.protocol = st.column_text(6);
  d.sender = st.column_text(7);
  d.message_id = st.column_text(8);
  d.message_type = st.column_text(9);
  d.outbox_seq = st.column_int(10);
  d.replayed_at_ms = st.column_int(11);
  d.replay_outcome = st.column_text(12);
  d.payload_kept = st.column_int(13) != 0;
  if (with_payload) {
    d.payload = st.column_text(14);
    d.answer = st.column_text(15);
  }
  return d;
}

}  // namespace

Result<std::vector<PendingEvent>> SqlStore::pending_events(std::int64_t after_seq,
                                                           int limit) const {
  std::lock_guard lock(impl_->reader_mutex);
  auto& st = impl_->select_pending;  // prepared once: the relay polls often
  ResetOnExit reset{st};
  st.integer(1, after_seq).integer(2, limit);
  st.integer(3, impl_->durable_seq.load());  // never publish what is not on disk
  if (impl_->shared_database()) st.text(4, impl_->lease_owner);  // this process's buckets
  std::vector<PendingEvent> out;
  for (;;) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r != kRow) break;
    out.push_back({st.column_int(0), st.column_text(1), st.column_text(2), st.column_text(3),
                   st.column_text(4), st.column_int(5)});
  }
  return out;
}

Result<void> SqlStore::dead_letter_event(std::int64_t seq, const pipeline::DeadLetterRecord& record,
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
        if (*moved != kRow) return fail(Error::internal("a pending event has no outbox row"));
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
        if (has_inbound) {
          dl.integer(2, inbound_id);
        } else {
          dl.null(2);
        }
        if (auto d = dl.step(); !d) return fail(d.error());
        if (!notice) return std::int64_t{0};
        auto& ins = s.insert_outbox;
        ResetOnExit reset{ins};
        ins.text(1, notice->event_id).text(3, notice->type).text(4, notice->topic);
        ins.text(5, notice->key).blob(6, notice->value).integer(7, at);
        ins.integer(8, relay_bucket(notice->key));
        if (has_inbound) {
          ins.integer(2, inbound_id);
        } else {
          ins.null(2);
        }
        auto inserted = s.step_insert_event(notice->event_id);
        if (!inserted) return fail(inserted.error());
        if (!*inserted) return std::int64_t{0};  // this notice was queued before
        const auto notice_seq = **inserted;
        if (auto pr = s.add_pending(notice_seq, static_cast<std::int64_t>(notice->value.size()));
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

Result<EventOrigin> SqlStore::event_origin(std::int64_t seq) const {
  std::lock_guard lock(impl_->reader_mutex);
  Statement st;
  if (auto r =
          st.prepare(*impl_->reader_conn,
                     "SELECT o.event_id, o.topic, coalesce(i.protocol, ''), coalesce(i.sender, "
                     "''), coalesce(i.dedupe_key, ''), coalesce(i.message_type, '') FROM "
                     "outbox o LEFT JOIN inbound i ON i.id = o.inbound_id WHERE o.seq = ?1");
      !r) {
    return fail(r.error());
  }
  st.integer(1, seq);
  auto rc = st.step();
  if (!rc) return fail(rc.error());
  if (*rc != kRow) return fail(Error::not_found("no outbox event " + std::to_string(seq)));
  return EventOrigin{st.column_text(0), st.column_text(1), st.column_text(2),
                     st.column_text(3), st.column_text(4), st.column_text(5)};
}

Result<std::vector<UndeliveredRef>> SqlStore::undelivered_refs() const {
  std::lock_guard lock(impl_->reader_mutex);
  Statement st;
  if (auto r = st.prepare(*impl_->reader_conn,
                          "SELECT o.seq, o.event_id, o.topic FROM outbox_pending p JOIN outbox o "
                          "ON o.seq = p.seq ORDER BY p.seq");
      !r) {
    return fail(r.error());
  }
  std::vector<UndeliveredRef> out;
  for (;;) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r == kDone) return out;
    out.push_back({st.column_int(0), st.column_text(1), st.column_text(2)});
  }
}

Result<std::map<std::pair<std::string, std::int32_t>, std::int64_t>> SqlStore::delivery_offsets()
    const {
  std::lock_guard lock(impl_->reader_mutex);
  Statement st;
  if (auto r = st.prepare(*impl_->reader_conn,
                          "SELECT topic, partition, \"offset\" FROM delivery_offsets");
      !r) {
    return fail(r.error());
  }
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> out;
  for (;;) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r == kDone) return out;
    out[{st.column_text(0), static_cast<std::int32_t>(st.column_int(1))}] = st.column_int(2);
  }
}

Result<std::vector<DeadLetterInfo>> SqlStore::dead_letters(int limit, bool include_replayed) const {
  std::lock_guard lock(impl_->reader_mutex);
  const std::string sql = std::string(kDeadLetterColumns) +
                          (include_replayed ? "" : "WHERE d.replayed_at IS NULL ") +
                          "ORDER BY d.id DESC LIMIT ?1";
  Statement st;
  if (auto r = st.prepare(*impl_->reader_conn, sql); !r) return fail(r.error());
  st.integer(1, limit);
  std::vector<DeadLetterInfo> out;
  for (;;) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r == kDone) return out;
    out.push_back(read_dead_letter(st, false));
  }
}

Result<DeadLetterInfo> SqlStore::dead_letter(const std::string& dead_letter_id,
                                             bool with_payload) const {
  std::lock_guard lock(impl_->reader_mutex);
  const std::string sql = std::string(kDeadLetterColumns) + "WHERE d.dead_letter_id = ?1";
  Statement st;
  if (auto r = st.prepare(*impl_->reader_conn, sql); !r) return fail(r.error());
  st.text(1, dead_letter_id);
  auto rc = st.step();
  if (!rc) return fail(rc.error());
  if (*rc != kRow) return fail(Error::not_found("no dead letter " + dead_letter_id));
  return read_dead_letter(st, with_payload);
}

Result<ReplayResult> SqlStore::replay_event(const std::string& dead_letter_id) {
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
        const std::int64_t requeued = *stepped == kRow ? 1 : 0;
        if (requeued != 0) requeued_bytes = st.column_int(0);
        st.reset();
        if (requeued != 0) {
          if (auto pr = s.add_pending(dl->outbox_seq, requeued_bytes); !pr) return fail(pr.error());
        }
        const std::string note = "requeued for Kafka";
        if (auto r = mark_replayed(*s.conn, dead_letter_id, s.now(), note); !r)
          return fail(r.error());
        return ReplayResult{dead_letter_id, note, requeued};
      },
      [impl, &requeued_bytes](const Result<ReplayResult>& r) {
        impl->undelivered.fetch_add(r->events);
        impl->undelivered_bytes.fetch_add(requeued_bytes);
        impl->dead_letters.fetch_sub(1);
      });
}

}  // namespace sdoh::store
