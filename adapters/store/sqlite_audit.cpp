// The SQLite store's audit trail (audit/chain.hpp): appends to the hash chain in the writer's
// transactions, searches for GET /fhir/AuditEvent, retention with its anchor, and the read-only
// verification tools/audit runs.
#include "adapters/store/sqlite_impl.hpp"
#include "gateway/audit/audit_event.hpp"
#include "gateway/events/event.hpp"

namespace sdoh::store {

namespace {

struct Head {
  std::int64_t sequence = 0;
  std::string hash = std::string(audit::kGenesisHash);
};

// The chain's head: the newest record, else the last pruned one, else the genesis.
Result<Head> read_head(SqliteStore::Impl& s) {
  Head head;
  for (Statement* st : {&s.audit_head, &s.audit_prune_head}) {
    ResetOnExit reset{*st};
    auto r = st->step();
    if (!r) return fail(r.error());
    if (*r == SQLITE_ROW) {
      head.sequence = st->column_int(0);
      head.hash = st->column_text(1);
      return head;
    }
  }
  return head;
}

// One-off statements outside the writer's prepared set.
Result<std::int64_t> run(sqlite3* db, const char* sql, std::int64_t a, std::int64_t b = 0) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK)
    return fail(Error::unavailable(sqlite3_errmsg(db)));
  sqlite3_bind_int64(st, 1, a);
  sqlite3_bind_int64(st, 2, b);
  return step_changes(db, st);
}

}  // namespace

Result<void> append_audit(SqliteStore::Impl& s, std::vector<audit::AuditRecord>& records,
                          std::int64_t now) {
  if (records.empty()) return {};
  auto head = read_head(s);
  if (!head) return fail(head.error());
  const auto gateway = s.audit_settings().gateway_id;
  for (auto& r : records) {
    if (r.recorded_ms == 0) r.recorded_ms = now;
    const auto seq = head->sequence + 1;
    const auto json = audit::audit_event_json(r, seq, gateway);
    auto hash = audit::chain_hash(head->hash, json);
    const std::string action(1, audit::action_code(audit::action_of(r)));
    {
      auto& st = s.insert_audit;
      ResetOnExit reset{st};
      st.integer(1, seq).integer(2, r.recorded_ms).text(3, action).text(4, r.agent.who);
      st.text(5, r.entities.empty() ? std::string_view() : std::string_view(r.entities[0].key()));
      st.text(6, head->hash).text(7, hash).blob(8, json);
      if (auto done = st.step(); !done) return fail(done.error());
    }
    for (const auto& e : r.entities) {
      auto& st = s.insert_audit_entity;
      ResetOnExit reset{st};
      st.text(1, e.key()).integer(2, seq);
      if (auto done = st.step(); !done) return fail(done.error());
    }
    head->sequence = seq;
    head->hash = std::move(hash);
  }
  return {};
}

Result<std::int64_t> queue_anchor(SqliteStore::Impl& s, const audit::Anchor& anchor) {
  const auto settings = s.audit_settings();
  events::Event e;
  e.type = events::EventType::kAuditAnchor;
  // Deterministic: the same head (and prune) anchored twice is one event.
  e.id = events::event_id("audit-anchor|" + settings.gateway_id + "|" +
                              std::to_string(anchor.sequence) + "|" + anchor.hash + "|" +
                              std::to_string(anchor.pruned_through),
                          0);
  e.source = events::event_source(settings.gateway_id);
  e.subject = std::to_string(anchor.sequence);
  e.time = anchor.time;
  e.topic = settings.anchor_topic;
  e.key = settings.gateway_id;
  e.data = audit::anchor_data_json(anchor);
  const auto value = e.envelope();
  auto& st = s.insert_outbox;
  ResetOnExit reset{st};
  st.text(1, e.id).text_or_null(2, "").text(3, events::type_name(e.type)).text(4, e.topic);
  st.text(5, e.key).blob(6, value).integer(7, s.now());
  if (auto r = st.step(); !r) return fail(r.error());
  if (sqlite3_changes(s.db) == 0) return std::int64_t{0};  // this head was anchored before
  const auto bytes = static_cast<std::int64_t>(value.size());
  if (auto r = s.add_pending(sqlite3_last_insert_rowid(s.db), bytes); !r) return fail(r.error());
  return bytes;
}

void log_anchor(const audit::Anchor& a) {
  log::info("audit.anchor", {{"gateway", a.gateway},
                             {"head_sequence", a.sequence},
                             {"head_hash", a.hash},
                             {"reason", a.reason},
                             {"pruned_through", a.pruned_through},
                             {"pruned_through_hash", a.pruned_through_hash}});
}

Result<std::optional<audit::Anchor>> prune_audit(SqliteStore::Impl& s, std::int64_t now, int limit,
                                                 std::int64_t* queued_bytes) {
  const auto settings = s.audit_settings();
  auto head = read_head(s);
  if (!head) return fail(head.error());
  std::int64_t pruned = 0;
  // The last record to remove: the newest one recorded before the cut-off, never the head, at
  // most `limit` past the current prune point.
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(s.db,
                         "SELECT seq, hash FROM audit_events WHERE seq < ?2 AND seq <= "
                         "coalesce((SELECT max(pruned_through) FROM audit_prunes), 0) + ?3 AND "
                         "recorded < ?1 ORDER BY seq DESC LIMIT 1",
                         -1, &st, nullptr) != SQLITE_OK) {
    return fail(Error::unavailable(sqlite3_errmsg(s.db)));
  }
  sqlite3_bind_int64(st, 1, now - settings.retention.count());
  sqlite3_bind_int64(st, 2, head->sequence);
  sqlite3_bind_int(st, 3, limit);
  std::string through_hash;
  if (sqlite3_step(st) == SQLITE_ROW) {
    pruned = sqlite3_column_int64(st, 0);
    through_hash = column(st, 1);
  }
  sqlite3_finalize(st);
  if (pruned == 0) return std::optional<audit::Anchor>();
  // The prune point first: the delete trigger lets only pruned records go.
  {
    sqlite3_stmt* ins = nullptr;
    if (sqlite3_prepare_v2(s.db,
                           "INSERT INTO audit_prunes(pruned_through, hash, pruned_at) VALUES "
                           "(?1, ?2, ?3)",
                           -1, &ins, nullptr) != SQLITE_OK) {
      return fail(Error::unavailable(sqlite3_errmsg(s.db)));
    }
    sqlite3_bind_int64(ins, 1, pruned);
    sqlite3_bind_text(ins, 2, through_hash.data(), static_cast<int>(through_hash.size()),
                      SQLITE_STATIC);
    sqlite3_bind_int64(ins, 3, now);
    if (auto r = step_changes(s.db, ins); !r) return fail(r.error());
  }
  if (auto r = run(s.db, "DELETE FROM audit_entities WHERE seq <= ?1", pruned); !r)
    return fail(r.error());
  if (auto r = run(s.db, "DELETE FROM audit_events WHERE seq <= ?1", pruned); !r)
    return fail(r.error());
  audit::Anchor a;
  a.gateway = settings.gateway_id;
  a.sequence = head->sequence;
  a.hash = head->hash;
  a.reason = "prune";
  a.pruned_through = pruned;
  a.pruned_through_hash = through_hash;
  a.time = events::rfc3339_from_ms(now);
  auto queued = queue_anchor(s, a);
  if (!queued) return fail(queued.error());
  *queued_bytes = *queued;
  return std::optional<audit::Anchor>(std::move(a));
}

// --- the port --------------------------------------------------------------------------------

namespace {

struct AuditOp final : WriteOp {
  std::vector<audit::AuditRecord> records;
  std::move_only_function<void(Result<void>)> complete;
  SqliteStore::Impl* store = nullptr;
  Result<void> execute(SqliteStore::Impl& s) override { return append_audit(s, records, s.now()); }
  void finish(Result<void> result) override {
    if (result && store->audit_records != nullptr) store->audit_records->inc(records.size());
    complete(std::move(result));
  }
};

}  // namespace

asio::awaitable<Result<void>> SqliteStore::record(std::vector<audit::AuditRecord> records) {
  auto* impl = impl_.get();
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(Result<void>)>(
      [impl, &records](auto handler) {
        // Never refused for overload: a read waits for its record rather than go unaudited, and
        // the records are small.
        auto op = std::make_unique<AuditOp>();
        op->store = impl;
        op->records = std::move(records);
        op->complete = [h = std::move(handler)](Result<void> r) mutable {
          auto ex = asio::get_associated_executor(h);
          asio::post(
              ex, [h = std::move(h), r = std::move(r)]() mutable { std::move(h)(std::move(r)); });
        };
        impl->enqueue(std::move(op));
      },
      asio::use_awaitable);
}

void SqliteStore::configure_audit(AuditSettings settings) {
  std::lock_guard lock(impl_->audit_mutex);
  impl_->audit = std::move(settings);
}

Result<audit::Anchor> SqliteStore::anchor_audit() {
  auto* impl = impl_.get();
  return run_sync<audit::Anchor>(
      *impl,
      [](SqliteStore::Impl& s) -> Result<audit::Anchor> {
        auto head = read_head(s);
        if (!head) return fail(head.error());
        audit::Anchor a;
        a.gateway = s.audit_settings().gateway_id;
        a.sequence = head->sequence;
        a.hash = head->hash;
        a.reason = "periodic";
        a.time = events::rfc3339_from_ms(s.now());
        if (a.sequence == 0) return a;  // nothing recorded yet: nothing to anchor
        auto queued = queue_anchor(s, a);
        if (!queued) return fail(queued.error());
        if (*queued > 0) {
          s.undelivered.fetch_add(1);
          s.undelivered_bytes.fetch_add(*queued);
        }
        return a;
      },
      [](const Result<audit::Anchor>& a) {
        if (a && a->sequence > 0) log_anchor(*a);
      });
}

Result<pipeline::AuditPage> SqliteStore::search_audit(const pipeline::AuditQuery& q) const {
  std::string where = " WHERE 1";
  if (!q.entity.empty())
    where += " AND e.seq IN (SELECT seq FROM audit_entities WHERE entity = ?1)";
  if (!q.agent.empty()) where += " AND e.agent = ?2";
  if (q.from_ms > 0) where += " AND e.recorded >= ?3";
  if (q.to_ms > 0) where += " AND e.recorded <= ?4";
  auto lease = impl_->lease_reader();
  auto* db = lease->db();
  ReadTransaction tx(*lease);
  if (tx.error()) return fail(*tx.error());
  auto bind = [&](sqlite3_stmt* st) {
    sqlite3_bind_text(st, 1, q.entity.data(), static_cast<int>(q.entity.size()), SQLITE_STATIC);
    sqlite3_bind_text(st, 2, q.agent.data(), static_cast<int>(q.agent.size()), SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, q.from_ms);
    sqlite3_bind_int64(st, 4, q.to_ms);
    sqlite3_bind_int(st, 5, q.count);
    sqlite3_bind_int(st, 6, q.offset);
  };
  pipeline::AuditPage page;
  sqlite3_stmt* st = nullptr;
  const auto count_sql = "SELECT count(*) FROM audit_events e" + where;
  if (sqlite3_prepare_v2(db, count_sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
    return fail(Error::unavailable(sqlite3_errmsg(db)));
  bind(st);
  if (sqlite3_step(st) == SQLITE_ROW) page.total = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  const auto sql =
      "SELECT e.json FROM audit_events e" + where + " ORDER BY e.seq DESC LIMIT ?5 OFFSET ?6";
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
    return fail(Error::unavailable(sqlite3_errmsg(db)));
  bind(st);
  int rc = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    page.events.push_back(column(st, 0));
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return fail(Error::unavailable(sqlite3_errmsg(db)));
  return page;
}

Result<std::optional<std::string>> SqliteStore::audit_event(std::int64_t sequence) const {
  auto lease = impl_->lease_reader();
  auto* db = lease->db();
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT json FROM audit_events WHERE seq = ?1", -1, &st, nullptr) !=
      SQLITE_OK)
    return fail(Error::unavailable(sqlite3_errmsg(db)));
  sqlite3_bind_int64(st, 1, sequence);
  std::optional<std::string> out;
  const int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) out = column(st, 0);
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail(Error::unavailable(sqlite3_errmsg(db)));
  return out;
}

Result<audit::ChainReport> verify_audit_chain(const std::filesystem::path& path,
                                              std::vector<audit::Anchor> anchors,
                                              std::string gateway) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close_v2(db);
    return fail(Error::unavailable("cannot open " + path.string() + " read-only"));
  }
  sqlite3_busy_timeout(db, 5000);
  auto close = [db] { sqlite3_close_v2(db); };
  // One snapshot for the prune point and the records.
  if (auto r = exec(db, "BEGIN"); !r) {
    close();
    return fail(r.error());
  }
  audit::ChainStart start;
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db,
                         "SELECT pruned_through, hash FROM audit_prunes ORDER BY pruned_through "
                         "DESC LIMIT 1",
                         -1, &st, nullptr) != SQLITE_OK) {
    auto e = Error::unavailable(path.string() + " has no audit trail (" + sqlite3_errmsg(db) + ")");
    close();
    return fail(std::move(e));
  }
  if (sqlite3_step(st) == SQLITE_ROW) {
    start.pruned_through = sqlite3_column_int64(st, 0);
    start.pruned_through_hash = column(st, 1);
  }
  sqlite3_finalize(st);
  audit::ChainVerifier verifier(start, std::move(anchors), std::move(gateway));
  sqlite3_prepare_v2(db, "SELECT seq, prev_hash, hash, json FROM audit_events ORDER BY seq", -1,
                     &st, nullptr);
  int rc = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    verifier.add({sqlite3_column_int64(st, 0), column(st, 1), column(st, 2), column(st, 3)});
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) {
    auto e = Error::unavailable(sqlite3_errmsg(db));
    close();
    return fail(std::move(e));
  }
  (void)exec(db, "COMMIT");
  close();
  return verifier.finish();
}

}  // namespace sdoh::store
