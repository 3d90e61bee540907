#pragma once
// The outbox as the Kafka relay and the restart reconciliation see it: committed events in
// commit order, their delivery, and the ones Kafka refuses for good. Implemented by the SQLite
// store (adapters/store); events are written to it only through CommitPort.
//
// Threads: reads never wait for the writer and may be called from any thread;
// mark_delivered() queues to the writer and returns at once; dead_letter_event() blocks until
// committed, so it is called from the relay's own thread, never from an I/O thread.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gateway/core/result.hpp"
#include "gateway/ops/health.hpp"
#include "gateway/pipeline/commit_port.hpp"

namespace sdoh::pipeline {

/// An outbox event waiting for Kafka, in commit order.
struct PendingEvent {
  std::int64_t seq = 0;
  std::string event_id;
  std::string topic;
  std::string key;
  std::string value;
  std::int64_t created_at_ms = 0;
};

/// Kafka's acknowledgement of one outbox event: where it landed.
struct DeliveredEvent {
  std::int64_t seq = 0;
  std::string topic;
  std::int32_t partition = -1;
  std::int64_t offset = -1;
};

/// An undelivered event's identity, for restart reconciliation against the topics.
struct UndeliveredRef {
  std::int64_t seq = 0;
  std::string event_id;
  std::string topic;
};

/// The source of an outbox event, for the dead letter of an event Kafka refuses for good.
struct EventOrigin {
  std::string event_id;
  std::string topic;
  std::string protocol;
  std::string sender;
  std::string message_id;
  std::string message_type;
};

struct StoreStats {
  std::int64_t undelivered = 0;
  std::int64_t undelivered_bytes = 0;  ///< the undelivered events' size (store.max_backlog_bytes)
  std::int64_t oldest_undelivered_ms = 0;  ///< created_at of the oldest undelivered event (0: none)
  std::int64_t dead_letters = 0;
};

using DeliveryOffsets = std::map<std::pair<std::string, std::int32_t>, std::int64_t>;

class Outbox {
 public:
  virtual ~Outbox() = default;
  /// The first `limit` undelivered events with seq > `after_seq`, in commit order. Where
  /// commits from several gateways become visible out of sequence order (PostgreSQL), the
  /// undelivered events of this process's share from the first, `after_seq` not applying: the
  /// caller skips those it has in flight.
  virtual Result<std::vector<PendingEvent>> pending_events(std::int64_t after_seq,
                                                           int limit) const = 0;
  /// Records Kafka's acknowledgement of these events and the highest offset seen per
  /// partition (queued to the writer).
  virtual void mark_delivered(std::vector<DeliveredEvent> events) = 0;
  /// Kafka refused this event for good (topic missing, message too large): it leaves the
  /// outbox's queue, a dead letter records why, and `notice` (the org.sdoh.deadletter.v1
  /// event, if any) is queued for publishing. Blocks until committed.
  virtual Result<void> dead_letter_event(std::int64_t seq, const DeadLetterRecord& record,
                                         std::optional<OutboxEvent> notice) = 0;
  virtual Result<EventOrigin> event_origin(std::int64_t seq) const = 0;
  /// Grows when this process becomes responsible for events it was not (several gateways on
  /// one database: it took over a bucket of the outbox from another). The relay then
  /// reconciles against Kafka before publishing: the last holder may have sent some.
  virtual std::int64_t relay_epoch() const { return 0; }
  /// For restart reconciliation: every undelivered event, and the highest acknowledged
  /// offset per (topic, partition).
  virtual Result<std::vector<UndeliveredRef>> undelivered_refs() const = 0;
  virtual Result<DeliveryOffsets> delivery_offsets() const = 0;
  /// Blocks until every write queued before the call has been committed (or failed).
  virtual void flush() = 0;
  virtual StoreStats stats() const = 0;
  /// Open, and the last transaction succeeded (never blocks).
  virtual ops::CheckState health() const = 0;
};

}  // namespace sdoh::pipeline
