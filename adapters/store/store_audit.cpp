// The store's audit trail (audit/chain.hpp): appends to the hash chain in the writer's
// transactions, searches for GET /fhir/AuditEvent, retention with its anchor, and the read-only
// verification tools/audit runs.
#include "adapters/store/sql_pg.hpp"
#include "adapters/store/sql_store_impl.hpp"
#include "gateway/audit/audit_event.hpp"
#include "gateway/events/event.hpp"

namespace sdoh::store {

namespace {

struct Head {
  std::int64_t sequence = 0;
  std::string hash = std::string(audit::kGenesisHash);
};

// The chain's head: the newest record, else the last pruned one, else the genesis.
Result<Head> read_head(SqlStore::Impl& s) {
  Head head;
  for (Statement* st : {&s.audit_head, &s.audit_prune_head}) {
    ResetOnExit reset{*st};
    auto r = st->step();
    if (!r) return fail(r.error());
    if (*r == kRow) {
      head.sequence = st->column_int(0);
      head.hash = st->column_text(1);
      return head;
    }
  }
  return head;
}

}  // namespace

Result<void> append_audit(SqlStore::Impl& s, std::vector<audit::AuditRecord>& records,
                          std::int64_t now) {
  if (records.empty()) return {};
  // One chain for every gateway on the database: appends are serialised (taken already when
  // the op declared it, add_locks).
  if (auto locked = s.conn->lock(sql::kAuditChainLock); !locked) return locked;
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
      if (auto done = st.send(); !done) return done;
    }
    for (const auto& e : r.entities) {
      auto& st = s.insert_audit_entity;
      ResetOnExit reset{st};
      st.text(1, e.key()).integer(2, seq);
      if (auto done = st.send(); !done) return done;
    }
    head->sequence = seq;
    head->hash = std::move(hash);
  }
  return {};
}

Result<std::int64_t> queue_anchor(SqlStore::Impl& s, const audit::Anchor& anchor) {
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
  std::int64_t seq = 0;
  {
    auto& st = s.insert_outbox;
    ResetOnExit reset{st};
    st.text(1, e.id).null(2).text(3, events::type_name(e.type)).text(4, e.topic);
    st.text(5, e.key).blob(6, value).integer(7, s.now()).integer(8, relay_bucket(e.key));
    auto r = s.step_insert_event(e.id);
    if (!r) return fail(r.error());
    if (!*r) return std::int64_t{0};  // this head was anchored before
    seq = **r;
  }
  const auto bytes = static_cast<std::int64_t>(value.size());
  if (auto r = s.add_pending(seq, bytes); !r) return fail(r.error());
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

Result<std::optional<audit::Anchor>> prune_audit(SqlStore::Impl& s, std::int64_t now, int limit,
                                                 std::int64_t* queued_bytes) {
  const auto settings = s.audit_settings();
  auto head = read_head(s);
  if (!head) return fail(head.error());
  std::int64_t pruned = 0;
  // The last record to remove: the newest one recorded before the cut-off, never the head, at
  // most `limit` past the current prune point.
  std::string through_hash;
  {
    Statement st;
    if (auto p = st.prepare(*s.conn,
                            "SELECT seq, hash FROM audit_events WHERE seq < ?2 AND seq <= "
                            "coalesce((SELECT max(pruned_through) FROM audit_prunes), 0) + ?3 AND "
                            "recorded < ?1 ORDER BY seq DESC LIMIT 1 {lock}");
        !p) {
      return fail(p.error());
    }
    st.integer(1, now - settings.retention.count()).integer(2, head->sequence).integer(3, limit);
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r == kRow) {
      pruned = st.column_int(0);
      through_hash = st.column_text(1);
    }
  }
  if (pruned == 0) return std::optional<audit::Anchor>();
  // The prune point first: the delete trigger lets only pruned records go.
  if (auto r = sql::run_once(
          *s.conn,
          "INSERT INTO audit_prunes(pruned_through, hash, pruned_at) VALUES "
          "(?1, ?2, ?3)",
          [&](Statement& st) { st.integer(1, pruned).text(2, through_hash).integer(3, now); });
      !r) {
    return fail(r.error());
  }
  auto bind_pruned = [pruned](Statement& st) { st.integer(1, pruned); };
  if (auto r = sql::run_once(*s.conn, "DELETE FROM audit_entities WHERE seq <= ?1", bind_pruned);
      !r) {
    return fail(r.error());
  }
  if (auto r = sql::run_once(*s.conn, "DELETE FROM audit_events WHERE seq <= ?1", bind_pruned);
      !r) {
    return fail(r.error());
  }
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
  SqlStore::Impl* store = nullptr;
  Result<void> execute(SqlStore::Impl& s) override { return append_audit(s, records, s.now()); }
  void finish(Result<void> result) override {
    if (result && store->audit_records != nullptr) store->audit_records->inc(records.size());
    complete(std::move(result));
  }
  void add_locks(std::vector<std::int64_t>& keys) const override {
    keys.push_back(sql::kAuditChainLock);
  }
};

}  // namespace

asio::awaitable<Result<void>> SqlStore::record(std::vector<audit::AuditRecord> records) {
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

void SqlStore::configure_audit(AuditSettings settings) {
  std::lock_guard lock(impl_->audit_mutex);
  impl_->audit = std::move(settings);
}

Result<audit::Anchor> SqlStore::anchor_audit() {
  auto* impl = impl_.get();
  return run_sync<audit::Anchor>(
      *impl,
      [](SqlStore::Impl& s) -> Result<audit::Anchor> {
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

Result<pipeline::AuditPage> SqlStore::search_audit(const pipeline::AuditQuery& q) const {
  // Parameters numbered in the order of the conditions present, with no gaps (an unused one
  // would have no type on PostgreSQL).
  int params = 0;
  const int entity_at = q.entity.empty() ? 0 : ++params;
  const int agent_at = q.agent.empty() ? 0 : ++params;
  const int from_at = q.from_ms > 0 ? ++params : 0;
  const int to_at = q.to_ms > 0 ? ++params : 0;
  auto param = [](int at) { return "?" + std::to_string(at); };
  std::string where = " WHERE 1 = 1";
  if (entity_at > 0) {
    where +=
        " AND e.seq IN (SELECT seq FROM audit_entities WHERE entity = " + param(entity_at) + ")";
  }
  if (agent_at > 0) where += " AND e.agent = " + param(agent_at);
  if (from_at > 0) where += " AND e.recorded >= " + param(from_at);
  if (to_at > 0) where += " AND e.recorded <= " + param(to_at);
  auto bind = [&](Statement& st) {
    if (entity_at > 0) st.text(entity_at, q.entity);
    if (agent_at > 0) st.text(agent_at, q.agent);
    if (from_at > 0) st.integer(from_at, q.from_ms);
    if (to_at > 0) st.integer(to_at, q.to_ms);
  };
  auto lease = impl_->lease_reader();
  auto& db = *lease->conn;
  ReadTransaction tx(*lease);
  if (tx.error()) return fail(*tx.error());
  pipeline::AuditPage page;
  {
    Statement st;
    if (auto p = st.prepare(db, "SELECT count(*) FROM audit_events e" + where); !p)
      return fail(p.error());
    bind(st);
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r == kRow) page.total = st.column_int(0);
  }
  Statement st;
  if (auto p = st.prepare(db, "SELECT e.json FROM audit_events e" + where +
                                  " ORDER BY e.seq DESC LIMIT " + param(params + 1) + " OFFSET " +
                                  param(params + 2));
      !p) {
    return fail(p.error());
  }
  bind(st);
  st.integer(params + 1, q.count).integer(params + 2, q.offset);
  for (;;) {
    auto r = st.step();
    if (!r) return fail(r.error());
    if (*r != kRow) return page;
    page.events.push_back(st.column_text(0));
  }
}

Result<std::optional<std::string>> SqlStore::audit_event(std::int64_t sequence) const {
  auto lease = impl_->lease_reader();
  Statement st;
  if (auto p = st.prepare(*lease->conn, "SELECT json FROM audit_events WHERE seq = ?1"); !p)
    return fail(p.error());
  st.integer(1, sequence);
  auto r = st.step();
  if (!r) return fail(r.error());
  if (*r != kRow) return std::optional<std::string>();
  return std::optional<std::string>(st.column_text(0));
}

namespace {

// verify_audit_chain's own read-only connection to a store file (not an open store's).
struct ReadOnlyFile {
  ReadConnection::Handle handle;          // closed after conn and its statements
  std::unique_ptr<sql::Connection> conn;  // over handle.db
};

Result<std::unique_ptr<ReadOnlyFile>> open_read_only(const std::filesystem::path& path) {
  auto file = std::make_unique<ReadOnlyFile>();
  if (sqlite3_open_v2(path.c_str(), &file->handle.db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    return fail(Error::unavailable("cannot open " + path.string() + " read-only"));
  }
  sql::wait_when_busy(file->handle.db);
  file->conn = sql::sqlite_connection(file->handle.db);
  return file;
}

// Verifies the chain on `db` (no transaction open), whichever the engine; `where` names the
// store in errors.
Result<audit::ChainReport> verify_chain(sql::Connection& db, const std::string& where,
                                        std::vector<audit::Anchor> anchors, std::string gateway) {
  // One snapshot for the prune point and the records.
  if (auto r = db.begin_read(); !r) return fail(r.error());
  audit::ChainStart start;
  {
    Statement st;
    if (auto p = st.prepare(
            db,
            "SELECT pruned_through, hash FROM audit_prunes ORDER BY pruned_through DESC LIMIT 1");
        !p) {
      return fail(Error::unavailable(where + " has no audit trail (" + p.error().message + ")"));
    }
    auto r = st.step();
    if (!r) {
      return fail(Error::unavailable(where + " has no audit trail (" + r.error().message + ")"));
    }
    if (*r == kRow) {
      start.pruned_through = st.column_int(0);
      start.pruned_through_hash = st.column_text(1);
    }
  }
  audit::ChainVerifier verifier(start, std::move(anchors), std::move(gateway));
  {
    Statement st;
    if (auto p = st.prepare(db, "SELECT seq, prev_hash, hash, json FROM audit_events ORDER BY seq");
        !p) {
      return fail(p.error());
    }
    for (;;) {
      auto r = st.step();
      if (!r) return fail(r.error());
      if (*r != kRow) break;
      verifier.add({st.column_int(0), st.column_text(1), st.column_text(2), st.column_text(3)});
    }
  }
  (void)db.exec("COMMIT");
  return verifier.finish();
}

}  // namespace

Result<audit::ChainReport> verify_audit_chain(const std::filesystem::path& path,
                                              std::vector<audit::Anchor> anchors,
                                              std::string gateway) {
  auto file = open_read_only(path);
  if (!file) return fail(file.error());
  return verify_chain(*(*file)->conn, path.string(), std::move(anchors), std::move(gateway));
}

Result<audit::ChainReport> verify_postgres_audit_chain(const std::string& url,
                                                       const std::string& password,
                                                       std::vector<audit::Anchor> anchors,
                                                       std::string gateway) {
  auto conn = sql::pg_connect(url, password);
  if (!conn) return fail(conn.error());
  return verify_chain(**conn, "the PostgreSQL store", std::move(anchors), std::move(gateway));
}

}  // namespace sdoh::store
