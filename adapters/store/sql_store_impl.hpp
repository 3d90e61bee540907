#pragma once
// The store's internals, shared by its translation units (sql_store.cpp: open, retention and
// health; store_commit.cpp: the group committer and delivery marks; store_outbox.cpp: the outbox
// and dead letters; store_reads.cpp: resources, referrals and the outbound queue;
// store_leases.cpp: several gateways on PostgreSQL). Not for use outside adapters/store.
//
// Threads: one writer thread owns the write connection (`conn`) and runs every WriteOp in group
// transactions; on SQLite a syncer thread fsyncs the WAL when writes are pipelined; readers
// borrow one of
// kResourceReaders read-only connections (lease_reader) or use `reader` under reader_mutex, from
// any thread. Completions are posted back to the caller's executor, never run on the writer.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <functional>
#include <future>
#include <limits>
#include <mutex>
#include <set>
#include <sqlite3.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "adapters/store/key_index.hpp"
#include "adapters/store/sql_sqlite.hpp"
#include "adapters/store/sql_store.hpp"
#include "gateway/audit/chain.hpp"
#include "gateway/log/log.hpp"
#include "gateway/measures/timeline.hpp"

namespace sdoh::store {

namespace asio = boost::asio;

// Read-only connections for the reads of HTTP handlers and other io threads (FHIR resources,
// referrals), lent one at a time; a caller waits only while all of them are lent.
inline constexpr int kResourceReaders = 4;

/// Outbox events are relayed in buckets (a hash of the event key, so that one key's events stay
/// in one bucket and keep their order); with several gateways each bucket is leased to one.
inline constexpr std::int64_t kRelayBuckets = 64;
inline std::int64_t relay_bucket(std::string_view key) {
  return sql::key_lock(key) % kRelayBuckets;
}

/// A name for this process as a lease holder: host, pid and a random part.
std::string make_lease_owner();
/// The relay's read of undelivered events (?1 after, ?2 limit, ?3 durable, ?4 lease owner).
std::string pending_events_sql(bool shared);

/// Wall-clock milliseconds since the epoch (the default StoreClock).
std::int64_t now_ms();
/// The newest schema version of the SQLite engine (sqlite_schema.cpp).
int sqlite_schema_version();
/// Applies the pending migrations to `db`: the schema version after them. Refuses a database
/// newer than this build.
Result<int> migrate_sqlite(sql::Connection& db);

/// Whether an outbox event is delivered (column 0) or refused for good (column 1), 0 or 1 each:
/// for whoever waits for it (delivery.ack=delivered), whichever gateway published it.
inline constexpr const char* kDeliveryStateSql =
    "SELECT CASE WHEN dead_at IS NULL AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.seq "
    "= o.seq) THEN 1 ELSE 0 END, CASE WHEN dead_at IS NOT NULL THEN 1 ELSE 0 END FROM outbox o "
    "WHERE seq = ?1";

using sql::kDone;
using sql::kRow;
using sql::ResetOnExit;
using sql::Statement;

/// A read-only connection with the statements of the frequent reads prepared once. Used by one
/// thread at a time: SqlStore::Impl lends it (lease_reader).
struct ReadConnection {
  struct Handle {
    sqlite3* db = nullptr;
    Handle() = default;
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() {
      if (db != nullptr) sqlite3_close_v2(db);
    }
  } handle;  // first member: closed after every statement below is finalized
  std::unique_ptr<sql::Connection> conn;  // over handle.db

  Statement current_resource, resource_version, resource_id, resource_history;
  Statement referral_by_id, referral_by_number, referral_by_system_number, referral_by_control;
  /// Searches by their SQL text (its shape: how many parameters and values; values are bound).
  std::map<std::string, std::unique_ptr<Statement>, std::less<>> searches;
  static constexpr std::size_t kMaxSearches = 64;

  /// Opens `path` read-only (SQLite) and prepares the statements.
  Result<void> open(const std::filesystem::path& path);
  /// Prepares the statements on `conn`.
  Result<void> prepare();

  /// The prepared search statement for `sql`, prepared on first use.
  Result<Statement*> search(const std::string& sql) {
    if (auto it = searches.find(sql); it != searches.end()) return it->second.get();
    if (searches.size() >= kMaxSearches) searches.clear();  // many shapes: start again
    auto st = std::make_unique<Statement>();
    if (auto r = st->prepare(*conn, sql); !r) return fail(r.error());
    auto* raw = st.get();
    searches.emplace(sql, std::move(st));
    return raw;
  }
};

// A resource version with its resource's source.
constexpr const char* kResourceColumns =
    "SELECT h.type, h.id, h.version, h.last_updated, h.json, r.source FROM resources r JOIN "
    "resource_history h ON h.type = r.type AND h.id = r.id ";

constexpr const char* kReferralColumns =
    "SELECT referral_id, clinic_number_system, clinic_number_value, source_control_id, "
    "agency_id, category, status, business_status, sequence, CASE WHEN overdue_at IS NOT NULL "
    "THEN 1 ELSE 0 END, created_at, return_to, return_pid, race, ethnicity, language FROM "
    "referrals ";

constexpr const char* kTimelineColumns =
    "SELECT referral_id, created_at, released_at, received_at, accepted_at, closed_at, outcome, "
    "status, business_status, sequence, agency_id, category, clinic, race, ethnicity, language, "
    "zip3 FROM referral_timeline ";

/// A timeline from a statement selecting kTimelineColumns.
inline measures::ReferralTimeline timeline_row(const Statement& st) {
  measures::ReferralTimeline t;
  t.referral_id = st.column_text(0);
  t.created_ms = st.column_int(1);
  t.released_ms = st.column_int(2);  // NULL reads as 0: not (yet) so
  t.received_ms = st.column_int(3);
  t.accepted_ms = st.column_int(4);
  t.closed_ms = st.column_int(5);
  t.outcome = st.column_text(6);
  t.status = st.column_text(7);
  t.business_status = st.column_text(8);
  t.sequence = static_cast<int>(st.column_int(9));
  t.agency = st.column_text(10);
  t.category = st.column_text(11);
  t.clinic = st.column_text(12);
  t.race = st.column_text(13);
  t.ethnicity = st.column_text(14);
  t.language = st.column_text(15);
  t.zip3 = st.column_text(16);
  return t;
}

class ReadTransaction {
 public:
  explicit ReadTransaction(ReadConnection& conn) : conn_(conn) {
    auto r = conn_.conn->begin_read();
    if (r) {
      open_ = true;
    } else {
      error_ = r.error();
    }
  }
  ReadTransaction(const ReadTransaction&) = delete;
  ReadTransaction& operator=(const ReadTransaction&) = delete;
  ~ReadTransaction() {
    if (!open_) return;
    if (!conn_.conn->exec("COMMIT")) (void)conn_.conn->exec("ROLLBACK");
  }
  /// The error of BEGIN, if it failed.
  const std::optional<Error>& error() const { return error_; }

 private:
  ReadConnection& conn_;
  bool open_ = false;
  std::optional<Error> error_;
};

/// Someone waiting for Kafka to acknowledge a set of events (delivery.ack=delivered).
struct DeliveryWaiter {
  std::mutex mutex;
  std::set<std::int64_t> remaining;
  bool done = false;
  std::move_only_function<void(Result<void>)> complete;  // posts to the waiter's executor
  std::move_only_function<void()> cancel_timer;

  /// Removes `seq`; completes when none remain. Safe from any thread, idempotent per seq.
  void delivered(std::int64_t seq) {
    std::unique_lock lock(mutex);
    remaining.erase(seq);
    if (!remaining.empty() || done) return;
    done = true;
    lock.unlock();
    if (cancel_timer) cancel_timer();
    complete(Result<void>{});
  }
  void fail_with(Error error) {
    std::unique_lock lock(mutex);
    if (done) return;
    done = true;
    lock.unlock();
    if (cancel_timer) cancel_timer();
    complete(fail(std::move(error)));
  }
};

/// One unit of work for the writer thread. execute() runs inside the group's transaction
/// (under its own savepoint); finish() runs after the transaction committed or failed.
struct WriteOp {
  virtual ~WriteOp() = default;
  /// Whether finish() must wait for the fsync of the transaction (someone is told "durable").
  virtual bool needs_durability() const { return true; }
  virtual Result<void> execute(SqlStore::Impl& store) = 0;
  virtual void finish(Result<void> result) = 0;
  /// The advisory locks (sql.hpp) the op will need, taken for the whole group before any op
  /// runs, in ascending order, so that two gateways' groups never wait for each other in a
  /// cycle. Only PostgreSQL asks.
  virtual void add_locks(std::vector<std::int64_t>& keys) const { (void)keys; }
};

struct SqlStore::Impl {
  StoreClock clock;  // wall-clock milliseconds for every time the store records or compares
  std::int64_t now() const { return clock(); }

  sqlite3* db = nullptr;                  // the writer connection: writer thread only (after open)
  std::unique_ptr<sql::Connection> conn;  // the writer connection as the shared code sees it
  sqlite3* reader = nullptr;              // read-only connection, guarded by reader_mutex
  std::unique_ptr<sql::Connection> reader_conn;  // over reader
  mutable std::mutex reader_mutex;
  std::filesystem::path path;
  int version = 0;

  Statement insert_inbound, select_inbound, insert_outbox, insert_pending, insert_dead_letter,
      take_pending, upsert_offset;

  // SQLite: the inbound dedupe keys and the event ids are looked up in memory, not in unique
  // indexes (key_index.hpp, store_keys.cpp). Null on PostgreSQL, whose unique indexes several
  // gateways share. Writer thread (filled by load_keys before it starts).
  std::unique_ptr<UniqueKeys> unique_keys;
  std::atomic<std::int64_t> keys_in_memory{0};  // their count after the last group (a gauge)
  Statement inbound_by_id, event_by_seq;
  Result<void> load_keys();
  struct SeenInbound {
    std::int64_t id = 0;
    std::string answer_code;
    std::string answer;
  };
  /// SQLite: the stored message with this dedupe key, if any.
  Result<std::optional<SeenInbound>> find_inbound(std::string_view protocol,
                                                  std::string_view sender,
                                                  std::string_view dedupe_key);
  /// The in-memory keys follow the rows the writer inserts and deletes (no-ops on PostgreSQL).
  void inbound_added(std::string_view protocol, std::string_view sender,
                     std::string_view dedupe_key, std::int64_t id);
  void inbound_removed(std::string_view protocol, std::string_view sender,
                       std::string_view dedupe_key, std::int64_t id);
  void event_removed(std::string_view event_id, std::int64_t seq);
  /// Steps the bound insert_outbox (?1 is `event_id`): the new event's seq, or nothing when an
  /// event with this id is stored already (a resend adds nothing).
  Result<std::optional<std::int64_t>> step_insert_event(std::string_view event_id);

  /// The outbox event `seq` (of `bytes` bytes) waits for Kafka from now on. Writer thread.
  Result<void> add_pending(std::int64_t seq, std::int64_t bytes) {
    ResetOnExit reset{insert_pending};
    insert_pending.integer(1, seq).integer(2, bytes);
    return insert_pending.send();
  }
  /// Event `seq` no longer waits (Kafka has it, or refused it for good): its size when it was
  /// waiting until now, nothing when it was not. Writer thread.
  Result<std::optional<std::int64_t>> remove_pending(std::int64_t seq) {
    ResetOnExit reset{take_pending};
    take_pending.integer(1, seq);
    auto r = take_pending.step();
    if (!r) return fail(r.error());
    if (*r != SQLITE_ROW) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(take_pending.column_int(0));
  }
  // FHIR resources and referral states written with a commit.
  Statement resource_version, upsert_resource, insert_history, delete_identifiers,
      insert_identifier, delete_search, insert_search, referral_sequence, upsert_referral,
      insert_outbound, count_subscription_event, insert_notification;
  // Referral timelines, advanced with the referral states (upsert_referral).
  Statement select_timeline, upsert_timeline;
  bool outbound_added = false;  // writer thread: a commit queued an outbound message

  // The audit trail (store_audit.cpp): the chain's head and the appends, writer thread only.
  Statement audit_head, audit_prune_head, insert_audit, insert_audit_entity;
  mutable std::mutex audit_mutex;
  AuditSettings audit;  // guarded by audit_mutex (set by the runtime while the writer runs)
  AuditSettings audit_settings() const {
    std::lock_guard lock(audit_mutex);
    return audit;
  }
  metrics::Counter* audit_records = nullptr;

  config::StoreConfig cfg;
  std::chrono::steady_clock::time_point next_prune;
  std::int64_t payload_cleared_upto = 0;  // inbound ids below it had their payloads pruned

  std::vector<DeliveredEvent> retry_marks;  // writer thread only: marks whose commit failed

  // Pipelined group commit (store.synchronous=full): the writer commits a group without
  // waiting for the disk (SQLite synchronous=NORMAL) and hands it to the syncer, which
  // fdatasyncs the WAL and only then completes the group's commits. Meanwhile the writer
  // writes the next group, so one fsync is always in flight. An answer still leaves only once
  // its transaction is on disk, and the relay reads no event that is not (durable_seq).
  struct SyncGroup {
    std::vector<std::unique_ptr<WriteOp>> ops;
    std::vector<Result<void>> results;
    std::int64_t max_seq = 0;
  };
  bool pipelined = false;
  int wal_fd = -1;
  std::thread syncer;
  std::mutex sync_mutex;
  std::condition_variable sync_cv;
  std::deque<SyncGroup> to_sync;
  bool sync_stopping = false;
  std::atomic<std::int64_t> durable_seq{std::numeric_limits<std::int64_t>::max()};
  Statement max_seq;
  Statement select_pending;  // on the reader connection, under reader_mutex

  Result<void> sync_wal() {
    if (wal_fd < 0) {
      const auto wal = path.string() + "-wal";
      wal_fd = ::open(wal.c_str(), O_RDWR | O_CLOEXEC);
      if (wal_fd < 0) return fail(Error::unavailable("cannot open " + wal + " to sync it"));
      // The WAL's directory entry too, once.
      const auto dir = path.has_parent_path() ? path.parent_path().string() : std::string(".");
      const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
      }
    }
    if (::fdatasync(wal_fd) != 0) {
      return fail(Error::unavailable(std::string("fsync of the write-ahead log failed: ") +
                                     std::strerror(errno)));
    }
    return {};
  }

  // Completions of a finished group, posted together per execution context: the syncer (or the
  // writer) gathers them while it finishes the group, then posts one function to each context
  // (the I/O threads' io_context, the store executor's pool) that dispatches each completion on
  // its own executor there (at once, when that is a strand of the thread running it). A group of
  // N commits then wakes a thread of each context once instead of N times, and a context never
  // waits for another (at shutdown the io_context stops before the pool is joined).
  struct Completion {
    asio::any_io_executor executor;
    std::move_only_function<void()> run;
  };
  static inline thread_local std::vector<Completion>* gathering = nullptr;
  /// Runs `fn` on `executor`: with the group's other completions when one is being finished on
  /// this thread, else posted at once.
  static void complete_on(asio::any_io_executor executor, std::move_only_function<void()> fn) {
    if (gathering != nullptr) {
      gathering->push_back({std::move(executor), std::move(fn)});
      return;
    }
    asio::post(executor, std::move(fn));
  }
  /// Gathers the completions of the group `finish_all` finishes, then posts them together.
  template <class F>
  static void finish_gathered(F&& finish_all) {
    std::vector<Completion> gathered;
    gathering = &gathered;
    finish_all();
    gathering = nullptr;
    while (!gathered.empty()) {
      // This context's completions, in their order; the others wait for the next round.
      auto& context = asio::query(gathered.front().executor, asio::execution::context);
      std::vector<Completion> batch, others;
      for (auto& c : gathered)
        (&asio::query(c.executor, asio::execution::context) == &context ? batch : others)
            .push_back(std::move(c));
      auto first = batch.front().executor;
      asio::post(first, [batch = std::move(batch)]() mutable {
        for (auto& c : batch)
          asio::dispatch(c.executor, std::move(c.run));
      });
      gathered = std::move(others);
    }
  }

  void syncer_loop() {
    for (;;) {
      std::deque<SyncGroup> work;
      {
        std::unique_lock lock(sync_mutex);
        sync_cv.wait(lock, [this] { return !to_sync.empty() || sync_stopping; });
        if (to_sync.empty()) return;
        work.swap(to_sync);
      }
      // One fsync makes every group written before it durable.
      auto synced = sync_wal();
      if (!synced) set_health(false, synced.error().message);
      std::int64_t newest = 0;
      for (const auto& g : work)
        newest = std::max(newest, g.max_seq);
      // Visible to the relay first, so that whoever is told "committed" finds it there.
      if (synced && newest > 0) {
        std::int64_t current = durable_seq.load();
        while (current < newest && !durable_seq.compare_exchange_weak(current, newest)) {
        }
      }
      finish_gathered([&] {
        for (auto& g : work) {
          for (std::size_t i = 0; i < g.ops.size(); ++i)
            g.ops[i]->finish(synced ? std::move(g.results[i]) : fail(synced.error()));
        }
      });
    }
  }

  void stop_syncer() {
    {
      std::lock_guard lock(sync_mutex);
      sync_stopping = true;
    }
    sync_cv.notify_all();
    if (syncer.joinable()) syncer.join();
    if (wal_fd >= 0) ::close(wal_fd);
    wal_fd = -1;
  }

  // The WAL checkpoint runs off the commit path: SQLite's automatic checkpoint (which the
  // committing writer would run, copying pages and syncing the database file between two
  // groups) is off; the writer's WAL hook wakes this thread once the WAL holds
  // kCheckpointPages pages, and it checkpoints PASSIVE on a connection of its own (never
  // waiting for the writer or readers), and RESTART only when the WAL passes
  // kWalRestartPages, so that the WAL stays bounded while writes never stop.
  static constexpr int kCheckpointPages = 50;
  static constexpr int kWalRestartPages = 8000;  // ~32 MiB with 4 KiB pages
  sqlite3* checkpoint_db = nullptr;
  std::thread checkpointer;
  std::mutex checkpoint_mutex;
  std::condition_variable checkpoint_cv;
  bool checkpoint_due = false;
  bool checkpoint_stopping = false;
  std::atomic<int> wal_pages{0};           // the WAL's size in pages after the last commit
  std::atomic<int> checkpointed_pages{0};  // the WAL's size when the last checkpoint began
  metrics::Counter* checkpoints = nullptr;

  /// The writer connection's WAL hook: after every commit, with the WAL's size in pages.
  static int on_wal_commit(void* self, sqlite3*, const char*, int pages) {
    auto* impl = static_cast<Impl*>(self);
    impl->wal_pages.store(pages, std::memory_order_relaxed);
    // The WAL started over (smaller than at the last checkpoint): count from its start.
    if (pages < impl->checkpointed_pages.load(std::memory_order_relaxed))
      impl->checkpointed_pages.store(0, std::memory_order_relaxed);
    if (pages - impl->checkpointed_pages.load(std::memory_order_relaxed) >= kCheckpointPages) {
      {
        std::lock_guard lock(impl->checkpoint_mutex);
        if (impl->checkpoint_due) return SQLITE_OK;  // already woken
        impl->checkpoint_due = true;
      }
      impl->checkpoint_cv.notify_one();
    }
    return SQLITE_OK;
  }

  void checkpointer_loop() {
    for (;;) {
      {
        std::unique_lock lock(checkpoint_mutex);
        checkpoint_cv.wait_for(lock, std::chrono::seconds(1),
                               [this] { return checkpoint_due || checkpoint_stopping; });
        if (checkpoint_stopping) return;
        checkpoint_due = false;
      }
      int log_pages = 0;
      int done_pages = 0;
      checkpointed_pages.store(wal_pages.load(std::memory_order_relaxed),
                               std::memory_order_relaxed);
      const int rc = sqlite3_wal_checkpoint_v2(checkpoint_db, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                               &log_pages, &done_pages);
      if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        log::warn("store.checkpoint_failed", {{"detail", sqlite3_errmsg(checkpoint_db)}});
        continue;
      }
      if (checkpoints != nullptr) checkpoints->inc();
      if (wal_pages.load(std::memory_order_relaxed) >= kWalRestartPages) {
        // Writes never paused long enough for the WAL to start over: make it. It waits for the
        // current group and for readers on old frames, and holds new groups back meanwhile;
        // both sides retry every 100 µs (sql::wait_when_busy), so the hold lasts about as long
        // as the readers do, and at most 50 ms (then it is tried again after the next PASSIVE).
        (void)sqlite3_wal_checkpoint_v2(checkpoint_db, nullptr, SQLITE_CHECKPOINT_RESTART,
                                        &log_pages, &done_pages);
      }
    }
  }

  void stop_checkpointer() {
    {
      std::lock_guard lock(checkpoint_mutex);
      checkpoint_stopping = true;
    }
    checkpoint_cv.notify_all();
    if (checkpointer.joinable()) checkpointer.join();
    if (checkpoint_db != nullptr) sqlite3_close_v2(checkpoint_db);
    checkpoint_db = nullptr;
  }

  std::mutex waiters_mutex;
  std::unordered_map<std::int64_t, std::shared_ptr<DeliveryWaiter>> waiters;  // by seq

  mutable std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::deque<std::unique_ptr<WriteOp>> queue;
  bool stopping = false;
  std::thread writer;
  std::size_t max_batch = 1024;

  mutable std::mutex health_mutex;
  ops::CheckState health{true, "open"};

  std::atomic<std::int64_t> undelivered{0};
  std::atomic<std::int64_t> undelivered_bytes{0};  // sum of the undelivered events' values
  std::atomic<std::int64_t> dead_letters{0};
  std::atomic<std::size_t> commits_in_flight{0};  // queued or being written/synced

  /// Why a new commit must be refused now (overload), or nothing: the outbox backlog past
  /// store.max_backlog_* (Kafka has been away too long) or the writer's queue full.
  std::optional<std::string> overloaded() const {
    if (cfg.max_backlog_events > 0 && undelivered.load() >= cfg.max_backlog_events) {
      return "the outbox holds " + std::to_string(undelivered.load()) +
             " undelivered events (store.max_backlog_events " +
             std::to_string(cfg.max_backlog_events) + "): Kafka is behind";
    }
    if (cfg.max_backlog_bytes > 0 && undelivered_bytes.load() >= cfg.max_backlog_bytes) {
      return "the outbox holds " + std::to_string(undelivered_bytes.load()) +
             " bytes of undelivered events (store.max_backlog_bytes " +
             std::to_string(cfg.max_backlog_bytes) + "): Kafka is behind";
    }
    if (commits_in_flight.load() >= cfg.max_queued_commits) {
      return "the store's commit queue is full (store.max_queued_commits " +
             std::to_string(cfg.max_queued_commits) + ")";
    }
    return std::nullopt;
  }

  metrics::Histogram* batch_size = nullptr;
  metrics::Histogram* commit_seconds = nullptr;
  metrics::Counter* commits_ok = nullptr;
  metrics::Counter* commits_duplicate = nullptr;
  metrics::Counter* commits_failed = nullptr;
  metrics::Counter* commits_refused = nullptr;  // overload: refused before being queued
  metrics::Counter* pruned = nullptr;

  /// Hands Kafka's acknowledgement (or refusal) of `seq` to whoever waits for it.
  void settle(std::int64_t seq, const std::optional<Error>& refused) {
    std::shared_ptr<DeliveryWaiter> waiter;
    {
      std::lock_guard lock(waiters_mutex);
      auto it = waiters.find(seq);
      if (it == waiters.end()) return;
      waiter = std::move(it->second);
      waiters.erase(it);
    }
    if (refused) {
      waiter->fail_with(*refused);
    } else {
      waiter->delivered(seq);
    }
  }

  /// Prepares the shared statements, reads the outbox's counts, registers the metrics and
  /// starts the threads, once the engine's connections are open.
  Result<void> start(metrics::Registry* registry);
  /// created_at of the oldest undelivered event (0: none).
  std::int64_t oldest_undelivered_ms() const;

  std::unique_ptr<WriteOp> make_prune_op();

  // Several gateways on one database (PostgreSQL): the relay's leases on outbox buckets
  // (store_leases.cpp). The writer renews them every store.lease / 3 and takes those whose
  // lease expired; the relay reads only the events of buckets leased to this process.
  bool shared_database() const { return conn->engine() == sql::Engine::kPostgres; }
  std::string lease_owner;  // this process: host, pid and a random part
  std::chrono::steady_clock::time_point next_lease;
  std::mutex leases_mutex;
  std::set<std::int64_t> leased;  // guarded by leases_mutex
  /// Grows each time this process takes a bucket it did not hold: the relay reconciles those
  /// buckets' events against Kafka before publishing (their last holder may have sent some).
  std::atomic<std::int64_t> lease_epoch{0};
  std::atomic<bool> standby{false};  // the database is a read-only standby (pg_is_in_recovery)
  std::unique_ptr<WriteOp> make_lease_op();
  /// delivery.ack=delivered with several gateways: another gateway may publish the events
  /// someone here waits for, so the database is asked every kDeliveryPoll while anyone waits.
  static constexpr std::chrono::milliseconds kDeliveryPoll{50};
  std::chrono::steady_clock::time_point next_delivery_poll;
  bool has_waiters() {
    std::lock_guard lock(waiters_mutex);
    return !waiters.empty();
  }
  std::unique_ptr<WriteOp> make_delivery_poll_op();
  /// Takes the leases at open, before the writer thread starts (and before the relay starts
  /// and reconciles).
  Result<void> take_leases_now();
  std::size_t leased_count();
  bool holds_lease(std::int64_t bucket) {
    std::lock_guard lock(leases_mutex);
    return leased.count(bucket) != 0;
  }
  /// Gives this process's leases back (shutdown), so that others take them at once.
  void release_leases();

  /// Takes every advisory lock the group's ops need, once each, in ascending order.
  Result<void> lock_all(const std::vector<std::unique_ptr<WriteOp>>& batch) {
    std::vector<std::int64_t> keys;
    for (const auto& op : batch)
      op->add_locks(keys);
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    for (const auto key : keys) {
      if (auto r = conn->lock(key); !r) return r;
    }
    return {};
  }
  std::unique_ptr<WriteOp> make_retry_marks_op();

  ~Impl() {
    {
      std::lock_guard lock(queue_mutex);
      stopping = true;
    }
    queue_cv.notify_all();
    if (writer.joinable()) writer.join();
    stop_syncer();
    stop_checkpointer();
    readers.clear();
    if (reader != nullptr) sqlite3_close_v2(reader);
    if (db != nullptr) sqlite3_close_v2(db);
    if (owner_fd >= 0) ::close(owner_fd);  // releases the flock
  }

  // SQLite: an exclusive flock(2) on <store>-lock for the life of the store, so that no second
  // process writes the file (the in-memory keys would miss its rows).
  int owner_fd = -1;

  // The read pool (kResourceReaders connections) for reads from io threads.
  std::vector<std::unique_ptr<ReadConnection>> readers;
  std::vector<ReadConnection*> idle_readers;  // guarded by readers_mutex
  std::mutex readers_mutex;
  std::condition_variable readers_cv;

  /// A pooled connection, given back when the lease ends.
  class ReaderLease {
   public:
    ReaderLease(Impl& impl, ReadConnection& conn) : impl_(impl), conn_(conn) {}
    ReaderLease(const ReaderLease&) = delete;
    ReaderLease& operator=(const ReaderLease&) = delete;
    ~ReaderLease() {
      {
        std::lock_guard lock(impl_.readers_mutex);
        impl_.idle_readers.push_back(&conn_);
      }
      impl_.readers_cv.notify_one();
    }
    ReadConnection* operator->() const { return &conn_; }
    ReadConnection& operator*() const { return conn_; }

   private:
    Impl& impl_;
    ReadConnection& conn_;
  };
  /// Waits while every pooled connection is lent (reads are short: single-row lookups and
  /// index-driven pages).
  ReaderLease lease_reader() {
    std::unique_lock lock(readers_mutex);
    readers_cv.wait(lock, [this] { return !idle_readers.empty(); });
    auto* r = idle_readers.back();
    idle_readers.pop_back();
    return ReaderLease(*this, *r);
  }

  void enqueue(std::unique_ptr<WriteOp> op) {
    {
      std::lock_guard lock(queue_mutex);
      queue.push_back(std::move(op));
    }
    queue_cv.notify_one();
  }

  void set_health(bool ok, std::string detail) {
    std::lock_guard lock(health_mutex);
    if (ok != health.ok) {
      log::write(ok ? log::Level::kInfo : log::Level::kError,
                 ok ? "store.recovered" : "store.write_failed", {{"detail", detail}});
    }
    health = {ok, std::move(detail)};
  }

  void writer_loop() {
    std::vector<std::unique_ptr<WriteOp>> batch;
    std::vector<Result<void>> results;
    for (;;) {
      {
        std::unique_lock lock(queue_mutex);
        auto wake_at =
            retry_marks.empty()
                ? next_prune
                : std::min(next_prune, std::chrono::steady_clock::now() + std::chrono::seconds(1));
        if (shared_database()) {
          wake_at = std::min(wake_at, next_lease);
          if (has_waiters()) wake_at = std::min(wake_at, next_delivery_poll);
        }
        queue_cv.wait_until(lock, wake_at, [this] { return !queue.empty() || stopping; });
        if (queue.empty() && stopping) return;  // everything queued has been written
        while (!queue.empty() && batch.size() < max_batch) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      if (std::chrono::steady_clock::now() >= next_prune) {
        // Retention rides along with the commits in bounded chunks; the op sets next_prune.
        next_prune = std::chrono::steady_clock::now() + cfg.prune_interval;
        batch.push_back(make_prune_op());
      }
      if (!retry_marks.empty()) batch.push_back(make_retry_marks_op());
      if (shared_database() && has_waiters() &&
          std::chrono::steady_clock::now() >= next_delivery_poll) {
        next_delivery_poll = std::chrono::steady_clock::now() + kDeliveryPoll;
        batch.push_back(make_delivery_poll_op());
      }
      if (shared_database() && std::chrono::steady_clock::now() >= next_lease) {
        next_lease = std::chrono::steady_clock::now() + cfg.lease / 3;
        batch.push_back(make_lease_op());
      }
      if (batch.empty()) continue;
      const auto started = std::chrono::steady_clock::now();
      results.assign(batch.size(), Result<void>{});
      auto group = conn->begin_write();
      if (group && conn->engine() == sql::Engine::kPostgres) group = lock_all(batch);
      // The in-memory keys are undone with the savepoint that changed them; for a failed group
      // (whose COMMIT may have failed after writing) only the keys it removed come back.
      const auto group_keys = unique_keys ? unique_keys->mark() : 0;
      for (std::size_t i = 0; group && i < batch.size(); ++i) {
        group = conn->savepoint();
        if (!group) break;
        const auto op_keys = unique_keys ? unique_keys->mark() : 0;
        results[i] = batch[i]->execute(*this);
        // The errors of statements the op sent without waiting (Statement::send) are its own.
        if (results[i]) results[i] = conn->flush_sent();
        // A failed op is undone alone; the others in the group still commit.
        if (!results[i]) {
          group = conn->rollback_to();
          if (unique_keys) unique_keys->undo_to(op_keys);
        }
        if (group) group = conn->release();
      }
      if (group) group = conn->exec("COMMIT");
      if (unique_keys) {
        if (group) {
          unique_keys->keep();
        } else {
          unique_keys->undo_to(group_keys, /*keep_added=*/true);
        }
        keys_in_memory.store(
            static_cast<std::int64_t>(unique_keys->inbound.size() + unique_keys->events.size()));
      }
      if (!group) {
        (void)conn->exec("ROLLBACK");
        set_health(false, "last transaction failed: " + group.error().message);
        for (auto& r : results)
          r = fail(Error::unavailable("the store cannot write: " + group.error().message));
      } else {
        set_health(true, "open, schema v" + std::to_string(version));
      }
      if (batch_size != nullptr) {
        batch_size->observe(static_cast<double>(batch.size()));
        commit_seconds->observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      }
      if (group && pipelined) {
        SyncGroup g;
        {
          ResetOnExit reset{max_seq};
          if (auto r = max_seq.step(); r && *r == SQLITE_ROW) g.max_seq = max_seq.column_int(0);
        }
        for (std::size_t i = 0; i < batch.size(); ++i) {
          if (batch[i]->needs_durability()) {
            g.ops.push_back(std::move(batch[i]));
            g.results.push_back(std::move(results[i]));
          } else {
            batch[i]->finish(std::move(results[i]));
          }
        }
        {
          std::lock_guard lock(sync_mutex);
          to_sync.push_back(std::move(g));
        }
        sync_cv.notify_one();
      } else {
        finish_gathered([&] {
          for (std::size_t i = 0; i < batch.size(); ++i)
            batch[i]->finish(std::move(results[i]));
        });
      }
      batch.clear();
    }
  }
};

/// A dead letter that may be replayed: not replayed yet. Fails kNotFound / kConflict.
struct ReplayableDeadLetter {
  std::int64_t inbound_id = 0;
  std::int64_t outbox_seq = 0;  ///< 0: a rejected message, not a refused event
};
Result<ReplayableDeadLetter> replayable_dead_letter(sql::Connection& db, const std::string& id);
/// Marks a dead letter replayed (inside the replay's transaction, so exactly once).
Result<void> mark_replayed(sql::Connection& db, const std::string& id, std::int64_t at,
                           const std::string& note);

/// Appends `records` to the audit chain inside the writer's transaction (the head is read from
/// the table, so a rolled-back savepoint never leaves a stale head). Records with no time get
/// `now`.
Result<void> append_audit(SqlStore::Impl& s, std::vector<audit::AuditRecord>& records,
                          std::int64_t now);
/// Retention of the audit trail, inside the prune's transaction: removes up to `limit` records
/// recorded before the cut-off (never the head), keeps the hash of the last one removed and queues
/// the prune anchor. Returns the anchor when something was pruned.
Result<std::optional<audit::Anchor>> prune_audit(SqlStore::Impl& s, std::int64_t now, int limit,
                                                 std::int64_t* queued_bytes);
/// Queues the anchor event of `anchor` in the outbox (writer thread): its size, when queued.
Result<std::int64_t> queue_anchor(SqlStore::Impl& s, const audit::Anchor& anchor);
/// Writes an anchor to the log (head sequence and hash, no PHI).
void log_anchor(const audit::Anchor& anchor);

/// A referral's state written inside a transaction (commits, record_referral).
Result<void> upsert_referral(SqlStore::Impl& s, const pipeline::ReferralState& row,
                             std::int64_t now);

/// Runs `fn` inside the writer's transaction and hands its result back to a blocked caller.
template <class T>
struct SyncOp final : WriteOp {
  std::function<Result<T>(SqlStore::Impl&)> fn;
  std::function<void(const Result<T>&)> after;  // on success, after the commit
  std::promise<Result<T>> done;
  std::optional<Result<T>> value;

  Result<void> execute(SqlStore::Impl& s) override {
    value = fn(s);
    if (!*value) return fail(value->error());
    return {};
  }
  void finish(Result<void> result) override {
    if (!result) {
      done.set_value(fail(result.error()));
      return;
    }
    if (after) after(*value);
    done.set_value(std::move(*value));
  }
};

template <class T>
Result<T> run_sync(SqlStore::Impl& impl, std::function<Result<T>(SqlStore::Impl&)> fn,
                   std::function<void(const Result<T>&)> after = {}) {
  auto op = std::make_unique<SyncOp<T>>();
  op->fn = std::move(fn);
  op->after = std::move(after);
  auto done = op->done.get_future();
  impl.enqueue(std::move(op));
  return done.get();
}

}  // namespace sdoh::store
