#pragma once
// The outbox relay: publishes committed events from the store to Kafka in commit order, with
// the idempotent producer, and marks each one delivered when Kafka acknowledges it (acks=all).
// After a restart or a broker outage it resumes from the first undelivered event.
//
// Threads: one relay thread reads the outbox and produces, in rounds; delivery reports arrive on
// the producer's poll thread and are handed back through a mutex-guarded list, applied once per
// round (one mark for the store's writer). Commits and reports wake the relay only when it
// sleeps for want of work; under load it gathers them for `gather` between rounds instead, and
// behind (a backlog after an outage) it reads on at once, in reads that grow to `max_batch`.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "adapters/kafka/producer.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/ops/health.hpp"
#include "gateway/ops/last_hour.hpp"
#include "gateway/pipeline/commit_observer.hpp"
#include "gateway/pipeline/outbox_port.hpp"

namespace sdoh::kafka {

struct RelayOptions {
  int batch = 500;       ///< events read from the outbox at a time when caught up
  int max_batch = 4000;  ///< ... and at most, doubling from `batch` while each read is full
  /// Events produced and not yet reported, at most: beyond it the relay waits for reports rather
  /// than read events that librdkafka's queue has no room for (during an outage it holds these).
  int max_in_flight = 10'000;
  /// Between two rounds that did work: commits and reports gather this long, so that one round
  /// serves many. An idle relay is woken at once, so a lone commit waits for none of it.
  std::chrono::milliseconds gather{1};
  std::chrono::milliseconds idle_poll{20};       ///< outbox poll interval when idle
  std::chrono::milliseconds retry_backoff{200};  ///< first backoff after a failed delivery
  std::chrono::milliseconds max_backoff{10'000};
  std::string gateway_id = "sdoh-gateway";  ///< source of dead-letter events
  std::string deadletter_topic = "sdoh.deadletter.v1";
  /// Restart reconciliation: run until it succeeds before anything is published, and again
  /// after a delivery librdkafka gave up on (the broker may have it all the same).
  std::function<Result<void>()> reconcile;
  /// Each delivery's time from commit to Kafka's acknowledgement, for the ops API's last hour;
  /// null: not kept. Must outlive the relay.
  ops::DeliveryLag* delivery_lag = nullptr;
};

/// Every commit notifies the relay (pipeline::ObservedCommitPort), so a committed event goes out
/// at once instead of at the next poll; a notify while the relay is working costs no system call.
class Relay final : public pipeline::CommitObserver {
 public:
  Relay(pipeline::Outbox& store, Producer& producer, RelayOptions options,
        metrics::Registry& registry);
  /// Stops the thread; undelivered events stay in the outbox for the next start.
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  void start();
  /// Wakes the relay at once if it is idle (called after a commit), instead of waiting for the
  /// next poll; if it is working, its next round sees the commit. Any thread; never blocks for
  /// longer than the relay holds its wake-up mutex (a few instructions).
  void notify();
  void committed(const pipeline::CommitOutcome&, const std::vector<mapping::StatusEvent>&,
                 bool) override {
    notify();
  }
  /// Waits up to `timeout` until every committed event is delivered; true when the outbox is
  /// empty. Used by the drain on SIGTERM.
  bool drain(std::chrono::milliseconds timeout);

  /// Ready unless deliveries keep failing or the restart reconciliation has not finished; the
  /// detail gives the backlog.
  ops::CheckState health() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdoh::kafka
