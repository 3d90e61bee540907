#pragma once
// The outbox relay: publishes committed events from the store to Kafka in commit order, with
// the idempotent producer, and marks each one delivered when Kafka acknowledges it (acks=all).
// After a restart or a broker outage it resumes from the first undelivered event.
//
// Threads: one relay thread reads the outbox and produces; delivery reports arrive on the
// producer's poll thread and are handed back through a mutex-guarded list.
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
  int batch = 500;                               ///< events read from the outbox at a time
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

/// Every commit wakes the relay (pipeline::ObservedCommitPort), so a committed event goes out
/// at once instead of at the next poll.
class Relay final : public pipeline::CommitObserver {
 public:
  Relay(pipeline::Outbox& store, Producer& producer, RelayOptions options,
        metrics::Registry& registry);
  /// Stops the thread; undelivered events stay in the outbox for the next start.
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  void start();
  /// Wakes the relay at once (called after a commit), instead of waiting for the next poll.
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
