#pragma once
// The gateway's durable store: one SQLite database in WAL mode with synchronous=FULL, so a
// committed transaction survives a crash or power loss. Schema migrations are versioned in
// code (PRAGMA user_version) and applied at open.
//
// Writes go through one writer thread that owns the write connection and commits in groups:
// every commit that arrives while a transaction is being written joins the next one, so many
// concurrent senders share one fsync (group commit). Each sender's commit() completes, on its
// own executor, once its transaction is durable.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/ops/health.hpp"
#include "gateway/pipeline/commit_port.hpp"

namespace sdoh::store {

/// An outbox event waiting for Kafka, in commit order.
struct PendingEvent {
  std::int64_t seq = 0;
  std::string event_id;
  std::string topic;
  std::string key;
  std::string value;
  std::int64_t created_at_ms = 0;
};

struct StoreStats {
  std::int64_t undelivered = 0;
  std::int64_t oldest_undelivered_ms = 0;  ///< created_at of the oldest undelivered event (0: none)
  std::int64_t dead_letters = 0;
};

class SqliteStore final : public pipeline::CommitPort {
 public:
  /// Opens (creating if needed) the database at `path`, applies pending migrations and starts
  /// the writer thread. `registry` may be null (tools).
  static Result<std::unique_ptr<SqliteStore>> open(const std::filesystem::path& path,
                                                   const config::StoreConfig& cfg,
                                                   metrics::Registry* registry = nullptr);
  /// Finishes queued writes, then stops the writer thread and closes.
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  boost::asio::awaitable<Result<pipeline::CommitOutcome>> commit(
      pipeline::CommitRequest request) override;

  /// The first `limit` undelivered events with seq > `after_seq`, in commit order.
  /// Reads on its own connection; never waits for the writer.
  Result<std::vector<PendingEvent>> pending_events(std::int64_t after_seq, int limit) const;
  /// Records Kafka's acknowledgement of these events (queued to the writer thread).
  void mark_delivered(std::vector<std::int64_t> seqs);
  /// Blocks until every write queued before the call has been committed (or failed) and its
  /// completion handed on. The runtime calls it before destroying the io_context.
  void flush();

  StoreStats stats() const;
  /// The schema version after migrations.
  int schema_version() const;
  /// Open, and the last transaction succeeded (never blocks).
  ops::CheckState health() const;

  /// The newest schema version this build knows.
  static int latest_schema_version();

  struct Impl;

 private:
  explicit SqliteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdoh::store
