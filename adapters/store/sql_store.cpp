// The store: open on either engine (SQLite, PostgreSQL), the shared start, retention, health
// (sql_store_impl.hpp).
#include <sys/file.h>

#include "adapters/store/pg_schema.hpp"
#include "adapters/store/sql_pg.hpp"
#include "adapters/store/sql_store_impl.hpp"
#include "gateway/core/thread_name.hpp"

namespace sdoh::store {

namespace {

/// Retention: bounded chunks, so a large backlog of expired rows never stalls the commits
/// that share the transaction.
struct PruneOp final : WriteOp {
  static constexpr int kChunk = 2000;
  bool needs_durability() const override { return false; }  // touches writer-thread state
  std::int64_t removed = 0;
  bool more = false;
  std::promise<Result<std::pair<std::int64_t, bool>>>* done = nullptr;  // prune_now()

  void add_locks(std::vector<std::int64_t>& keys) const override {
    keys.push_back(sql::kAuditChainLock);  // it prunes the audit chain too
  }

  Result<void> execute(SqlStore::Impl& s) override {
    // Several gateways on one database: one prunes at a time, the others skip this round.
    auto ours = s.conn->try_lock(sql::kRetentionLock);
    if (!ours) return fail(ours.error());
    if (!*ours) return {};
    const auto now = s.now();
    const auto& c = s.cfg;
    auto run = [&](const char* sql, std::int64_t a, std::int64_t b = 0) -> Result<std::int64_t> {
      return sql::run_once(
          *s.conn, sql, [&](Statement& st) { st.integer(1, a).integer(2, b).integer(3, kChunk); });
    };
    // The rows a DELETE ... RETURNING removed; `row` sees each (the in-memory keys forget them).
    auto remove = [&](const char* sql, std::int64_t a,
                      const std::function<void(Statement&)>& row) -> Result<std::int64_t> {
      Statement st;
      if (auto r = st.prepare(*s.conn, sql); !r) return fail(r.error());
      st.integer(1, a).integer(2, 0).integer(3, kChunk);  // as run() binds them
      return st.each_row(row);
    };
    // Delivered events past their retention.
    // Seqs are in commit order: only those below the first young one are looked at, and of
    // them only the delivered (not pending, not dead). The newest event always stays: SQLite
    // numbers a new row max + 1, and an emptied table would start again below the relay's
    // cursor (the same holds for inbound ids below).
    auto n = remove(
        "DELETE FROM outbox WHERE seq IN (SELECT o.seq FROM outbox o WHERE o.seq < coalesce("
        "(SELECT seq FROM outbox WHERE created_at >= ?1 ORDER BY seq LIMIT 1), "
        "(SELECT max(seq) FROM outbox), 0) AND o.dead_at IS NULL AND NOT EXISTS (SELECT 1 "
        "FROM outbox_pending p WHERE p.seq = o.seq) ORDER BY o.seq LIMIT ?3) RETURNING seq, "
        "event_id",
        now - c.delivered_retention.count(),
        [&](Statement& st) { s.event_removed(st.column_text(1), st.column_int(0)); });
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
      Statement pick;
      if (auto r = pick.prepare(
              *s.conn,
              "SELECT type, id FROM resources r WHERE updated_at < ?1 AND NOT (type = 'Task' AND "
              "EXISTS (SELECT 1 FROM resource_search t WHERE t.type = 'Task' AND t.id = r.id AND "
              "t.name = 'status' AND t.value IN ('requested', 'received', 'accepted', "
              "'in-progress', 'on-hold'))) LIMIT ?2");
          !r) {
        return fail(r.error());
      }
      pick.integer(1, now - c.resource_retention.count()).integer(2, kChunk);
      std::vector<std::pair<std::string, std::string>> old;
      for (;;) {
        auto r = pick.step();
        if (!r) return fail(r.error());
        if (*r == kDone) break;
        old.emplace_back(pick.column_text(0), pick.column_text(1));
      }
      more = more || old.size() == static_cast<std::size_t>(kChunk);
      for (const char* sql : {"DELETE FROM resource_history WHERE type = ?1 AND id = ?2",
                              "DELETE FROM resource_identifiers WHERE type = ?1 AND id = ?2",
                              "DELETE FROM resource_search WHERE type = ?1 AND id = ?2",
                              "DELETE FROM resources WHERE type = ?1 AND id = ?2"}) {
        Statement st;
        if (auto r = st.prepare(*s.conn, sql); !r) return fail(r.error());
        for (const auto& [type, id] : old) {
          ResetOnExit reset{st};
          st.text(1, type).text(2, id);
          auto changed = st.run();
          if (!changed) return fail(changed.error());
          removed += *changed;
        }
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
    // Referral timelines closed before the measure window (their referral's state and Task may
    // have gone long before: the measures keep them for the window).
    n =
        run("DELETE FROM referral_timeline WHERE referral_id IN (SELECT referral_id FROM "
            "referral_timeline WHERE closed_at IS NOT NULL AND closed_at < ?1 LIMIT ?3)",
            now - c.timeline_retention.count());
    if (!n) return fail(n.error());
    more = more || *n == kChunk;
    removed += *n;
    // Client assertions past their expiry: a replay of one is refused by its exp now.
    n =
        run("DELETE FROM auth_assertions WHERE (client_id, jti) IN (SELECT client_id, jti FROM "
            "auth_assertions WHERE expires_at < ?1 LIMIT ?3)",
            now);
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
    n =
        run("DELETE FROM resource_history WHERE (type, id, version) IN (SELECT h.type, h.id, "
            "h.version FROM resource_history h JOIN resources r ON r.type = h.type AND r.id = h.id "
            "WHERE h.version < r.version AND h.updated_at < ?1 LIMIT ?3)",
            now - c.payload_retention.count());
    if (!n) return fail(n.error());
    more = more || *n == kChunk;
    removed += *n;
    // Inbound ids are in arrival order: everything below the first young one is old. With
    // `keep_newest`, the newest record counts as young whatever its age.
    auto first_young = [&](std::int64_t cutoff, bool keep_newest) -> Result<std::int64_t> {
      Statement st;
      if (auto r = st.prepare(*s.conn,
                              "SELECT coalesce((SELECT id FROM inbound WHERE received_at >= ?1 "
                              "ORDER BY id LIMIT 1), (SELECT max(id) + ?2 FROM inbound), 0)");
          !r) {
        return fail(r.error());
      }
      st.integer(1, cutoff).integer(2, keep_newest ? 0 : 1);
      auto r = st.step();
      if (!r) return fail(r.error());
      return *r == kRow ? st.column_int(0) : 0;
    };
    // Message bytes past their retention, except those of dead letters still to replay.
    auto young_payload = first_young(now - c.payload_retention.count(), false);
    if (!young_payload) return fail(young_payload.error());
    const auto payload_below = *young_payload;
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
    auto young_inbound = first_young(now - c.dedupe_window.count(), true);
    if (!young_inbound) return fail(young_inbound.error());
    const auto inbound_below = *young_inbound;
    n = remove(
        "DELETE FROM inbound WHERE id IN (SELECT id FROM inbound i WHERE id < ?1 AND NOT EXISTS "
        "(SELECT 1 FROM outbox o WHERE o.inbound_id = i.id) AND NOT EXISTS (SELECT 1 FROM "
        "dead_letters d WHERE d.inbound_id = i.id) ORDER BY id LIMIT ?3) RETURNING id, protocol, "
        "sender, coalesce(dedupe_key, '')",
        inbound_below, [&](Statement& st) {
          s.inbound_removed(st.column_text(1), st.column_text(2), st.column_text(3),
                            st.column_int(0));
        });
    if (!n) return fail(n.error());
    more = more || *n == kChunk;
    removed += *n;
    // The audit trail past audit.retention, with its anchor (the last removed record's hash).
    auto anchored = prune_audit(s, now, kChunk, &anchor_bytes);
    if (!anchored) return fail(anchored.error());
    if (*anchored) audit_anchor = std::move(*anchored);
    return {};
  }
  void finish(Result<void> result) override {
    if (result && audit_anchor) {
      log_anchor(*audit_anchor);
      if (anchor_bytes > 0) {
        store->undelivered.fetch_add(1);
        store->undelivered_bytes.fetch_add(anchor_bytes);
      }
    }
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
  SqlStore::Impl* store = nullptr;
  std::int64_t next_payload_mark = 0;
  std::optional<audit::Anchor> audit_anchor;
  std::int64_t anchor_bytes = 0;
};

struct BarrierOp final : WriteOp {
  std::promise<void> done;
  Result<void> execute(SqlStore::Impl&) override { return {}; }
  void finish(Result<void>) override { done.set_value(); }
};

}  // namespace

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<void> ReadConnection::open(const std::filesystem::path& path) {
  if (sqlite3_open_v2(path.c_str(), &handle.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return fail(Error::unavailable("cannot open a reader on " + path.string()));
  }
  sql::wait_when_busy(handle.db);
  conn = sql::sqlite_connection(handle.db);
  return prepare();
}

Result<void> ReadConnection::prepare() {
  const std::string resource = kResourceColumns;
  const std::string referral = kReferralColumns;
  const std::pair<Statement*, std::string> statements[] = {
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
    if (auto r = st->prepare(*conn, sql); !r) return r;
  }
  return {};
}

/// A read transaction on a lent connection, ended when leaving scope (statements used inside
/// must be reset before).
std::unique_ptr<WriteOp> SqlStore::Impl::make_prune_op() {
  auto op = std::make_unique<PruneOp>();
  op->store = this;
  return op;
}

SqlStore::SqlStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqlStore::~SqlStore() {
  if (impl_->shared_database()) impl_->release_leases();  // others take them over at once
}

int SqlStore::latest_schema_version() {
  return sqlite_schema_version();
}

namespace {

/// The SQLite engine: the file (created if needed), its pragmas and migrations, the read-only
/// handles and the checkpointer's connection.
Result<void> open_sqlite(SqlStore::Impl* impl, const std::filesystem::path& path,
                         const config::StoreConfig& cfg) {
  impl->path = path;
  std::error_code fs_ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), fs_ec);
  if (fs_ec) {
    return fail(Error::unavailable("cannot create " + path.parent_path().string() + ": " +
                                   fs_ec.message()));
  }
  // One process at a time: the writer keeps the dedupe keys and event ids in memory.
  const auto owner = path.string() + "-lock";
  impl->owner_fd = ::open(owner.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (impl->owner_fd < 0) {
    return fail(Error::unavailable("cannot open " + owner + ": " + std::strerror(errno)));
  }
  if (::flock(impl->owner_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return fail(Error::unavailable("store " + path.string() + " is in use by another process (" +
                                     owner + " is locked)"));
    }
    return fail(Error::unavailable("cannot lock " + owner + ": " + std::strerror(errno)));
  }
  // SQLite's allocation statistics take one process-wide mutex on every malloc and free of every
  // connection (the writer's, the readers', the checkpointer's); nothing here reads them. Only
  // possible before SQLite's first use in the process: later it is refused, and harmless.
  static const bool unmetered = [] {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK;
  }();
  (void)unmetered;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &impl->db, flags, nullptr) != SQLITE_OK) {
    return fail(
        Error::unavailable("cannot open store " + path.string() + ": " +
                           (impl->db != nullptr ? sqlite3_errmsg(impl->db) : "out of memory")));
  }
  sql::wait_when_busy(impl->db);
  impl->conn = sql::sqlite_connection(impl->db);
  // WAL + synchronous=FULL: a COMMIT returns only after the WAL is fsync'd.
  // synchronous=full is kept by the syncer thread (pipelined group commit, see Impl); SQLite
  // itself then needs only NORMAL, which still syncs around checkpoints.
  impl->pipelined = cfg.synchronous == "full";
  const std::string pragmas = std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;") +
                              "; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
                              " PRAGMA journal_size_limit=67108864;"
                              // The writer's page cache (2 MiB by default): the index pages its
                              // inserts land on stay in memory instead of being read again.
                              " PRAGMA cache_size=-32768;";
  if (auto r = impl->conn->exec(pragmas); !r) {
    return fail(Error::unavailable("store " + path.string() + ": " + r.error().message));
  }
  auto version = migrate_sqlite(*impl->conn);
  if (!version) {
    return fail(Error::unavailable("store " + path.string() + ": " + version.error().message));
  }
  impl->version = SqlStore::latest_schema_version();
  if (sqlite3_open_v2(path.c_str(), &impl->reader, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return fail(Error::unavailable("cannot open a reader on " + path.string()));
  }
  sql::wait_when_busy(impl->reader);
  impl->reader_conn = sql::sqlite_connection(impl->reader);
  for (int i = 0; i < kResourceReaders; ++i) {
    auto conn = std::make_unique<ReadConnection>();
    if (auto r = conn->open(path); !r) return fail(r.error());
    impl->idle_readers.push_back(conn.get());
    impl->readers.push_back(std::move(conn));
  }
  if (impl->pipelined) {
    // Everything already in the database is durable (it was synced or checkpointed).
    auto max = sql::Statement();
    if (auto r = max.prepare(*impl->conn, "SELECT coalesce(max(seq), 0) FROM outbox"); !r) return r;
    if (auto r = max.step(); r && *r == kRow) impl->durable_seq = max.column_int(0);
  }
  // Checkpoints off the commit path (see Impl::checkpointer_loop).
  if (sqlite3_open_v2(path.c_str(), &impl->checkpoint_db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    return fail(Error::unavailable("cannot open store " + path.string() + " to checkpoint it"));
  }
  // Its RESTART holds new writer groups back while it waits for readers: it gives up after
  // 50 ms (readers take microseconds; a long one is waited for at the next checkpoint instead).
  sql::wait_when_busy(impl->checkpoint_db, std::chrono::milliseconds(50));
  (void)sql::sqlite_connection(impl->checkpoint_db)->exec("PRAGMA synchronous=NORMAL");
  sqlite3_wal_hook(impl->db, &SqlStore::Impl::on_wal_commit, impl);  // replaces autocheckpoint
  return {};
}

}  // namespace

Result<std::unique_ptr<SqlStore>> SqlStore::open(const std::filesystem::path& path,
                                                 const config::StoreConfig& cfg,
                                                 metrics::Registry* registry, StoreClock clock) {
  auto impl = std::make_unique<Impl>();
  impl->clock = clock ? std::move(clock) : StoreClock(now_ms);
  impl->cfg = cfg;
  if (auto r = open_sqlite(impl.get(), path, cfg); !r) return fail(r.error());
  if (auto r = impl->start(registry); !r) return fail(r.error());
  return std::unique_ptr<SqlStore>(new SqlStore(std::move(impl)));
}

Result<std::unique_ptr<SqlStore>> SqlStore::open_postgres(const std::string& url,
                                                          const std::string& password,
                                                          const config::StoreConfig& cfg,
                                                          metrics::Registry* registry,
                                                          StoreClock clock) {
  auto impl = std::make_unique<Impl>();
  impl->clock = clock ? std::move(clock) : StoreClock(now_ms);
  impl->cfg = cfg;
  // A COMMIT returns once PostgreSQL flushed its WAL (synchronous_commit, on by default; with
  // synchronous standbys, once they have it too): nothing to sync after it.
  impl->pipelined = false;
  auto connect = [&]() { return sql::pg_connect(url, password); };
  auto writer = connect();
  if (!writer) return fail(writer.error());
  impl->conn = std::move(*writer);
  auto version = migrate_postgres(*impl->conn);
  if (!version) return fail(version.error());
  impl->version = *version;
  auto reader = connect();
  if (!reader) return fail(reader.error());
  impl->reader_conn = std::move(*reader);
  for (int i = 0; i < kResourceReaders; ++i) {
    auto conn = std::make_unique<ReadConnection>();
    auto c = connect();
    if (!c) return fail(c.error());
    conn->conn = std::move(*c);
    if (auto r = conn->prepare(); !r) return fail(r.error());
    impl->idle_readers.push_back(conn.get());
    impl->readers.push_back(std::move(conn));
  }
  // The relay's buckets before it starts (its first reconciliation covers them).
  impl->lease_owner = make_lease_owner();
  if (auto r = impl->take_leases_now(); !r) return fail(r.error());
  impl->next_lease = std::chrono::steady_clock::now() + cfg.lease / 3;
  if (auto r = impl->start(registry); !r) return fail(r.error());
  return std::unique_ptr<SqlStore>(new SqlStore(std::move(impl)));
}

Result<std::unique_ptr<SqlStore>> SqlStore::open_configured(
    const std::filesystem::path& sqlite_path, const config::StoreConfig& cfg,
    metrics::Registry* registry) {
  if (cfg.url.empty()) return open(sqlite_path, cfg, registry);
  std::string password;
  if (cfg.password.configured()) {
    auto p = cfg.password.resolve();
    if (!p) return fail(p.error());
    password = std::move(*p);
  }
  return open_postgres(cfg.url, password, cfg, registry);
}

Result<void> SqlStore::Impl::start(metrics::Registry* registry) {
  auto* impl = this;
  next_prune = std::chrono::steady_clock::now() + std::chrono::seconds(5);

  // SQLite has no unique index on the dedupe keys and event ids: its writer looks them up in
  // memory before it inserts (store_keys.cpp). PostgreSQL's unique indexes answer for every
  // gateway on the database.
  const bool memory_keys = impl->conn->engine() == sql::Engine::kSqlite;
  auto prepared = impl->insert_inbound.prepare(
      *impl->conn,
      std::string("INSERT INTO inbound(protocol, sender, dedupe_key, message_type, received_at, "
                  "answer_code, answer, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ") +
          (memory_keys ? "" : "ON CONFLICT(protocol, sender, dedupe_key) DO NOTHING ") +
          "RETURNING id");
  if (prepared) {
    prepared = impl->select_inbound.prepare(*impl->conn,
                                            "SELECT id, answer_code, answer FROM inbound WHERE "
                                            "protocol = ?1 AND sender = ?2 AND dedupe_key = ?3");
  }
  if (prepared) {
    prepared = impl->insert_outbox.prepare(
        *impl->conn,
        std::string(
            "INSERT INTO outbox(event_id, inbound_id, type, topic, key, value, created_at, bucket) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ") +
            (memory_keys ? "" : "ON CONFLICT(event_id) DO NOTHING ") + "RETURNING seq");
  }
  if (prepared && memory_keys) prepared = impl->load_keys();
  if (prepared) {
    prepared = impl->insert_pending.prepare(
        *impl->conn, "INSERT INTO outbox_pending(seq, bytes) VALUES (?1, ?2)");
  }
  if (prepared) {
    prepared = impl->insert_dead_letter.prepare(
        *impl->conn,
        "INSERT INTO dead_letters(dead_letter_id, inbound_id, created_at, stage, error_code, "
        "error_text, location) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(dead_letter_id) DO "
        "NOTHING");
  }
  if (prepared) {
    prepared = impl->take_pending.prepare(
        *impl->conn, "DELETE FROM outbox_pending WHERE seq = ?1 RETURNING bytes");
  }
  if (prepared) {
    prepared = impl->upsert_offset.prepare(
        *impl->conn,
        "INSERT INTO delivery_offsets(topic, partition, \"offset\") VALUES (?1, ?2, ?3) "
        "ON CONFLICT(topic, partition) DO UPDATE SET \"offset\" = CASE WHEN excluded.\"offset\" > "
        "delivery_offsets.\"offset\" THEN excluded.\"offset\" ELSE delivery_offsets.\"offset\" "
        "END");
  }
  if (prepared)
    prepared = impl->max_seq.prepare(*impl->conn, "SELECT coalesce(max(seq), 0) FROM outbox");
  if (prepared) {
    prepared = impl->resource_version.prepare(
        *impl->conn, "SELECT version FROM resources WHERE type = ?1 AND id = ?2 {lock}");
  }
  if (prepared) {
    prepared = impl->referral_sequence.prepare(
        *impl->conn, "SELECT sequence FROM referrals WHERE referral_id = ?1 {lock}");
  }
  if (prepared) {
    prepared = impl->upsert_resource.prepare(
        *impl->conn,
        "INSERT INTO resources(type, id, version, last_updated, updated_at, source) VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(type, id) DO UPDATE SET version = excluded.version, "
        "last_updated = excluded.last_updated, updated_at = excluded.updated_at, source = "
        "CASE WHEN excluded.source = '' THEN resources.source ELSE excluded.source END");
  }
  if (prepared) {
    prepared = impl->insert_history.prepare(
        *impl->conn,
        "INSERT INTO resource_history(type, id, version, last_updated, updated_at, json) VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6)");
  }
  if (prepared) {
    prepared = impl->delete_identifiers.prepare(
        *impl->conn, "DELETE FROM resource_identifiers WHERE type = ?1 AND id = ?2");
  }
  if (prepared) {
    prepared = impl->insert_identifier.prepare(
        *impl->conn,
        "INSERT INTO resource_identifiers(type, system, value, id) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT DO NOTHING");
  }
  if (prepared) {
    prepared = impl->delete_search.prepare(
        *impl->conn, "DELETE FROM resource_search WHERE type = ?1 AND id = ?2");
  }
  if (prepared) {
    prepared = impl->insert_search.prepare(
        *impl->conn, "INSERT INTO resource_search(type, id, name, value) VALUES (?1, ?2, ?3, ?4)");
  }
  if (prepared) {
    prepared = impl->insert_outbound.prepare(
        *impl->conn,
        "INSERT INTO outbound(destination, referral_id, message, created_at, next_attempt_at) "
        "VALUES (?1, ?2, ?3, ?4, ?4)");
  }
  if (prepared) {
    prepared = impl->count_subscription_event.prepare(
        *impl->conn,
        "UPDATE subscriptions SET events_since_start = events_since_start + 1 WHERE agency_id = "
        "?1");
  }
  if (prepared) {
    prepared = impl->insert_notification.prepare(
        *impl->conn,
        "INSERT INTO subscription_notifications(subscription_id, event_number, referral_id, "
        "sequence, status, task_json, created_at) SELECT id, events_since_start, ?2, ?3, ?4, ?5, "
        "?6 FROM subscriptions WHERE agency_id = ?1 ORDER BY id");
  }
  if (prepared) {
    prepared = impl->upsert_referral.prepare(
        *impl->conn,
        "INSERT INTO referrals(referral_id, clinic_number_system, clinic_number_value, "
        "source_control_id, agency_id, category, status, business_status, sequence, updated_at, "
        "created_at, overdue_at, return_to, return_pid, race, ethnicity, language, patient) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, CASE WHEN ?11 <> 0 THEN ?10 END, "
        "?12, "
        "?13, ?14, ?15, ?16, ?17) "
        "ON CONFLICT(referral_id) DO UPDATE "
        "SET status = excluded.status, "
        "agency_id = CASE WHEN referrals.agency_id = '' THEN excluded.agency_id ELSE "
        "referrals.agency_id END, "
        "patient = CASE WHEN referrals.patient = '' THEN excluded.patient ELSE referrals.patient "
        "END, "
        "business_status = excluded.business_status, sequence = excluded.sequence, updated_at = "
        "excluded.updated_at, overdue_at = coalesce(referrals.overdue_at, excluded.overdue_at) "
        "WHERE "
        "excluded.sequence >= referrals.sequence");
  }
  if (prepared) {
    prepared = impl->select_timeline.prepare(
        *impl->conn, std::string(kTimelineColumns).append("WHERE referral_id = ?1").c_str());
  }
  if (prepared) {
    prepared = impl->upsert_timeline.prepare(
        *impl->conn,
        "INSERT INTO referral_timeline(referral_id, created_at, released_at, received_at, "
        "accepted_at, closed_at, outcome, status, business_status, sequence, agency_id, "
        "category, clinic, race, ethnicity, language, zip3, started_at) VALUES (?1, ?2, "
        "nullif(?3, 0), nullif(?4, 0), nullif(?5, 0), nullif(?6, 0), ?7, ?8, ?9, ?10, ?11, ?12, "
        "?13, ?14, ?15, ?16, ?17, ?18) ON CONFLICT(referral_id) DO UPDATE SET created_at = "
        "excluded.created_at, released_at = excluded.released_at, received_at = "
        "excluded.received_at, accepted_at = excluded.accepted_at, closed_at = "
        "excluded.closed_at, outcome = excluded.outcome, status = excluded.status, "
        "business_status = excluded.business_status, sequence = excluded.sequence, agency_id = "
        "excluded.agency_id, category = excluded.category, clinic = excluded.clinic, race = "
        "excluded.race, ethnicity = excluded.ethnicity, language = excluded.language, zip3 = "
        "excluded.zip3, started_at = excluded.started_at");
    prepared = impl->audit_head.prepare(
        *impl->conn, "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1");
  }
  if (prepared) {
    prepared = impl->audit_prune_head.prepare(
        *impl->conn,
        "SELECT pruned_through, hash FROM audit_prunes ORDER BY pruned_through DESC LIMIT 1");
  }
  if (prepared) {
    prepared = impl->insert_audit.prepare(
        *impl->conn,
        "INSERT INTO audit_events(seq, recorded, action, agent, entity, prev_hash, hash, json) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  }
  if (prepared) {
    prepared = impl->insert_audit_entity.prepare(
        *impl->conn,
        "INSERT INTO audit_entities(entity, seq) VALUES (?1, ?2) ON CONFLICT DO NOTHING");
  }
  if (!prepared) return fail(prepared.error());

  if (auto r = impl->select_pending.prepare(*impl->reader_conn,
                                            pending_events_sql(impl->shared_database()));
      !r) {
    return fail(r.error());
  }
  {
    Statement st;
    if (auto r = st.prepare(*impl->reader_conn,
                            "SELECT (SELECT count(*) FROM outbox_pending), (SELECT count(*) FROM "
                            "dead_letters WHERE replayed_at IS NULL), (SELECT CAST(coalesce("
                            "sum(bytes), 0) AS BIGINT) FROM outbox_pending)");
        !r) {
      return r;
    }
    auto r = st.step();
    if (!r) return fail(r.error());
    impl->undelivered = st.column_int(0);
    impl->dead_letters = st.column_int(1);
    impl->undelivered_bytes = st.column_int(2);
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
    reg.gauge_callback("sdoh_outbox_undelivered_bytes",
                       "Bytes of committed events not yet acknowledged by Kafka.",
                       [raw = impl] { return static_cast<double>(raw->undelivered_bytes.load()); });
    auto* raw = impl;
    reg.gauge_callback("sdoh_outbox_undelivered_events",
                       "Committed events not yet acknowledged by Kafka.",
                       [raw] { return static_cast<double>(raw->undelivered.load()); });
    impl->checkpoints = &reg.counter("sdoh_store_wal_checkpoints_total",
                                     "WAL checkpoints run by the store's checkpoint thread.")
                             .with();
    reg.gauge_callback("sdoh_store_wal_pages",
                       "Pages in the write-ahead log after the last commit.",
                       [raw = impl] { return static_cast<double>(raw->wal_pages.load()); });
    impl->audit_records = &reg.counter("sdoh_audit_records_total",
                                       "Audit records appended to the hash-chained audit trail.")
                               .with();
    impl->pruned = &reg.counter("sdoh_store_pruned_rows_total",
                                "Rows removed or cleared by the retention policy.")
                        .with();
    if (impl->unique_keys) {
      reg.gauge_callback(
          "sdoh_store_memory_keys",
          "Inbound dedupe keys and event ids the SQLite store looks up in memory (23 to 46 bytes "
          "each); they follow the retention of the inbound records and the events.",
          [raw] { return static_cast<double>(raw->keys_in_memory.load()); });
    }
    reg.gauge_callback("sdoh_dead_letters_stored", "Dead letters waiting for an operator's replay.",
                       [raw] { return static_cast<double>(raw->dead_letters.load()); });
    reg.gauge_callback(
        "sdoh_outbox_oldest_undelivered_age_seconds",
        "Age of the oldest committed event Kafka has not acknowledged (0: none).", [raw] {
          const auto oldest = raw->oldest_undelivered_ms();
          return oldest == 0 ? 0.0 : static_cast<double>(raw->now() - oldest) / 1000.0;
        });
  } else {
    static metrics::Counter unused_ok, unused_dup, unused_failed, unused_refused, unused_pruned;
    impl->commits_refused = &unused_refused;
    impl->pruned = &unused_pruned;
    impl->commits_ok = &unused_ok;
    impl->commits_duplicate = &unused_dup;
    impl->commits_failed = &unused_failed;
  }

  auto* raw = impl;
  if (impl->pipelined)
    impl->syncer = std::thread([raw] {
      name_this_thread("store-sync");
      raw->syncer_loop();
    });
  if (impl->checkpoint_db != nullptr)
    impl->checkpointer = std::thread([raw] {
      name_this_thread("store-checkpt");
      raw->checkpointer_loop();
    });
  impl->writer = std::thread([raw] {
    name_this_thread("store-writer");
    raw->writer_loop();
  });
  return {};
}

std::int64_t SqlStore::Impl::oldest_undelivered_ms() const {
  std::lock_guard lock(reader_mutex);
  Statement st;
  if (!st.prepare(*reader_conn,
                  "SELECT o.created_at FROM outbox_pending p JOIN outbox o ON o.seq = p.seq ORDER "
                  "BY p.seq LIMIT 1")) {
    return 0;
  }
  auto r = st.step();
  return r && *r == kRow ? st.column_int(0) : 0;
}

Result<std::int64_t> SqlStore::prune_now() {
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

void SqlStore::flush() {
  auto op = std::make_unique<BarrierOp>();
  auto done = op->done.get_future();
  impl_->enqueue(std::move(op));
  done.wait();
}

StoreStats SqlStore::stats() const {
  StoreStats s;
  // Never below zero: with several gateways, this one's count falls when it publishes another's
  // events, until the next lease round reads the database's count.
  s.undelivered = std::max<std::int64_t>(0, impl_->undelivered.load());
  s.undelivered_bytes = std::max<std::int64_t>(0, impl_->undelivered_bytes.load());
  s.dead_letters = impl_->dead_letters.load();
  s.oldest_undelivered_ms = impl_->oldest_undelivered_ms();
  return s;
}

std::int64_t SqlStore::relay_epoch() const {
  return impl_->lease_epoch.load();
}

int SqlStore::schema_version() const {
  return impl_->version;
}

std::size_t SqlStore::queued_writes() const {
  std::lock_guard lock(impl_->queue_mutex);
  return impl_->queue.size();
}

ops::CheckState SqlStore::capacity() const {
  if (auto why = impl_->overloaded()) return {false, "refusing new messages: " + *why};
  return {true, std::to_string(impl_->undelivered.load()) + " undelivered events, " +
                    std::to_string(impl_->undelivered_bytes.load()) + " bytes"};
}

ops::CheckState SqlStore::health() const {
  std::unique_lock lock(impl_->health_mutex);
  auto state = impl_->health;
  if (state.ok && impl_->standby.load()) {
    return {false,
            "the database is a read-only standby (pg_is_in_recovery): point store.url at "
            "the primary"};
  }
  if (state.ok) {
    state.detail = std::string(impl_->shared_database() ? "PostgreSQL primary" : "open") +
                   ", schema v" + std::to_string(impl_->version);
  }
  return state;
}

}  // namespace sdoh::store
