// Several gateways on one PostgreSQL database: the relay's leases on outbox buckets, the
// database's role, and the outbox counts every gateway's commits and deliveries change.
//
// No leader: every gateway renews its own leases and takes any bucket whose lease expired
// (its holder died or lost the database), in the writer's group transaction. A bucket is held
// by one gateway at a time (the row's lock decides a race), so each event is published by one
// gateway, and a key's events (one bucket) in their order. Times are the database's clock, so
// that the gateways' clocks need not agree.
#include <random>
#include <unistd.h>

#include "adapters/store/sql_store_impl.hpp"

namespace sdoh::store {

namespace {

constexpr const char* kDatabaseNowMs =
    "CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)";

struct LeaseOp final : WriteOp {
  SqlStore::Impl* store = nullptr;
  std::set<std::int64_t> held;
  bool standby = false;
  std::int64_t undelivered = 0;
  std::int64_t undelivered_bytes = 0;
  std::int64_t dead_letters = 0;
  bool needs_durability() const override { return false; }  // nobody waits for it

  Result<void> execute(SqlStore::Impl& s) override {
    {
      Statement role;
      if (auto r = role.prepare(*s.conn, "SELECT CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END");
          !r) {
        return r;
      }
      auto r = role.step();
      if (!r) return fail(r.error());
      standby = *r == kRow && role.column_int(0) != 0;
    }
    if (standby) return {};  // a standby takes no writes: no leases, not ready
    Statement take;
    const std::string sql =
        std::string("INSERT INTO relay_leases(bucket, owner, expires_at) VALUES (?1, ?2, ") +
        kDatabaseNowMs +
        " + ?3) ON CONFLICT(bucket) DO UPDATE SET owner = excluded.owner, expires_at = "
        "excluded.expires_at WHERE relay_leases.owner = excluded.owner OR "
        "relay_leases.expires_at < " +
        kDatabaseNowMs + " RETURNING bucket";
    if (auto r = take.prepare(*s.conn, sql); !r) return r;
    for (std::int64_t b = 0; b < kRelayBuckets; ++b) {
      ResetOnExit reset{take};
      take.integer(1, b).text(2, s.lease_owner).integer(3, s.cfg.lease.count());
      auto r = take.step();
      if (!r) return fail(r.error());
      if (*r == kRow) held.insert(b);
    }
    // The backlog as the database has it: other gateways commit events this one publishes,
    // and publish events this one committed.
    Statement counts;
    if (auto r = counts.prepare(*s.conn,
                                "SELECT count(*), CAST(coalesce(sum(bytes), 0) AS BIGINT), (SELECT "
                                "count(*) FROM dead_letters WHERE replayed_at IS NULL) FROM "
                                "outbox_pending");
        !r) {
      return r;
    }
    auto r = counts.step();
    if (!r) return fail(r.error());
    undelivered = counts.column_int(0);
    undelivered_bytes = counts.column_int(1);
    dead_letters = counts.column_int(2);
    return {};
  }

  void finish(Result<void> result) override {
    if (!result) return;  // the leases run out; taken again (or by others) once it works
    store->standby = standby;
    store->undelivered = undelivered;
    store->undelivered_bytes = undelivered_bytes;
    store->dead_letters = dead_letters;
    bool gained = false;
    {
      std::lock_guard lock(store->leases_mutex);
      for (const auto b : held)
        gained = gained || store->leased.count(b) == 0;
      store->leased = std::move(held);
    }
    if (gained) {
      store->lease_epoch.fetch_add(1);
      log::info("store.relay_leases_taken",
                {{"buckets", static_cast<std::int64_t>(store->leased_count())}});
    }
  }
};

/// Which waited-for events are delivered or refused now, whoever published them.
struct DeliveryPollOp final : WriteOp {
  SqlStore::Impl* store = nullptr;
  std::vector<std::int64_t> delivered, refused;
  bool needs_durability() const override { return false; }

  Result<void> execute(SqlStore::Impl& s) override {
    std::vector<std::int64_t> seqs;
    {
      std::lock_guard lock(s.waiters_mutex);
      for (const auto& [seq, waiter] : s.waiters)
        seqs.push_back(seq);
    }
    Statement st;
    if (auto r = st.prepare(*s.conn, kDeliveryStateSql); !r) {
      return r;
    }
    for (const auto seq : seqs) {
      ResetOnExit reset{st};
      st.integer(1, seq);
      auto r = st.step();
      if (!r) return fail(r.error());
      if (*r != kRow) continue;
      if (st.column_int(0) != 0) delivered.push_back(seq);
      if (st.column_int(1) != 0) refused.push_back(seq);
    }
    return {};
  }
  void finish(Result<void> result) override {
    if (!result) return;  // asked again at the next poll
    for (const auto seq : delivered)
      store->settle(seq, std::nullopt);
    for (const auto seq : refused)
      store->settle(seq, Error::unavailable("Kafka refused an event of this message; see dead "
                                            "letters"));
  }
};

}  // namespace

std::unique_ptr<WriteOp> SqlStore::Impl::make_delivery_poll_op() {
  auto op = std::make_unique<DeliveryPollOp>();
  op->store = this;
  return op;
}

std::string make_lease_owner() {
  char host[256] = {};
  (void)::gethostname(host, sizeof host - 1);
  std::random_device rd;
  const auto nonce = (static_cast<std::uint64_t>(rd()) << 32) | rd();
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(nonce));
  return std::string(host) + ":" + std::to_string(::getpid()) + ":" + suffix;
}

std::unique_ptr<WriteOp> SqlStore::Impl::make_lease_op() {
  auto op = std::make_unique<LeaseOp>();
  op->store = this;
  return op;
}

std::size_t SqlStore::Impl::leased_count() {
  std::lock_guard lock(leases_mutex);
  return leased.size();
}

void SqlStore::Impl::release_leases() {
  (void)run_sync<std::int64_t>(*this, [](SqlStore::Impl& s) -> Result<std::int64_t> {
    return sql::run_once(*s.conn, "DELETE FROM relay_leases WHERE owner = ?1",
                         [&](Statement& st) { st.text(1, s.lease_owner); });
  });
  std::lock_guard lock(leases_mutex);
  leased.clear();
}

Result<void> SqlStore::Impl::take_leases_now() {
  // Before the writer thread starts: its connection is still this thread's.
  LeaseOp op;
  op.store = this;
  if (auto r = conn->begin_write(); !r) return r;
  auto taken = op.execute(*this);
  if (taken) taken = conn->exec("COMMIT");
  if (!taken) {
    (void)conn->exec("ROLLBACK");
    return taken;
  }
  op.finish(Result<void>{});
  return {};
}

std::string pending_events_sql(bool shared) {
  if (!shared) {
    return "SELECT o.seq, o.event_id, o.topic, o.key, o.value, o.created_at FROM outbox_pending "
           "p JOIN outbox o ON o.seq = p.seq WHERE p.seq > ?1 AND p.seq <= ?3 ORDER BY p.seq "
           "LIMIT ?2";
  }
  // Sequence numbers come from several gateways' transactions, which commit in any order: an
  // event may appear after one with a higher number was read. So every undelivered event of
  // this process's buckets is read from the first (?1 and ?3 are not used); the relay skips
  // those it has in flight. A key's events keep their order: a key's lock (CommitOp) numbers
  // them in commit order. ?1 and ?3, bound but not named here, are ignored (sql_pg.hpp).
  return std::string(
             "SELECT o.seq, o.event_id, o.topic, o.key, o.value, o.created_at FROM "
             "outbox_pending p JOIN outbox o ON o.seq = p.seq JOIN relay_leases l ON l.bucket = "
             "o.bucket WHERE l.owner = ?4 AND l.expires_at > ") +
         kDatabaseNowMs + " ORDER BY p.seq LIMIT ?2";
}

}  // namespace sdoh::store
