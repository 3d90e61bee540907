#include "adapters/kafka/relay.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "gateway/events/event.hpp"
#include "gateway/log/log.hpp"

namespace sdoh::kafka {

struct Relay::Impl {
  store::SqliteStore& store;
  Producer& producer;
  RelayOptions options;

  std::thread thread;
  std::atomic<bool> running{false};
  std::mutex mutex;
  std::condition_variable wake;
  bool notified = false;

  // Filled by delivery reports (poll thread), drained by the relay thread.
  std::vector<std::int64_t> delivered;
  std::vector<std::pair<std::int64_t, DeliveryReport>> failed;

  // Relay thread only.
  std::int64_t cursor = 0;           // highest seq handed to the producer
  std::set<std::int64_t> in_flight;  // produced, no report yet
  std::chrono::milliseconds backoff{0};

  std::atomic<std::int64_t> consecutive_failures{0};
  metrics::Counter* published;
  metrics::Counter* retried;
  metrics::Counter* fatal;
  metrics::Histogram* delivery_latency;

  Impl(store::SqliteStore& s, Producer& p, RelayOptions o, metrics::Registry& registry)
      : store(s), producer(p), options(o) {
    auto& events = registry.counter("sdoh_relay_events_total", "Outbox events by delivery outcome.",
                                    {"outcome"});
    published = &events.with({"delivered"});
    retried = &events.with({"retried"});
    fatal = &events.with({"dead-lettered"});
    delivery_latency = &registry
                            .histogram("sdoh_relay_delivery_seconds",
                                       "Time from commit to Kafka's acknowledgement.")
                            .with();
  }

  void loop() {
    while (running.load()) {
      apply_reports();
      bool produced_any = false;
      if (backoff.count() == 0) produced_any = produce_batch();
      std::unique_lock lock(mutex);
      const auto wait = backoff.count() > 0 ? backoff : options.idle_poll;
      if (!produced_any && !notified)
        wake.wait_for(lock, wait, [this] { return notified || !running.load(); });
      notified = false;
      if (backoff.count() > 0)
        backoff = std::chrono::milliseconds(0);  // try again after one backoff
    }
    apply_reports();
  }

  bool produce_batch() {
    auto pending = store.pending_events(cursor, options.batch);
    if (!pending) {
      log::warn("relay.outbox_read_failed", {{"reason", pending.error().message}});
      backoff = options.retry_backoff;
      return false;
    }
    for (auto& e : *pending) {
      if (in_flight.count(e.seq) != 0) continue;
      Message m{e.topic,
                e.key,
                std::move(e.value),
                {{"content-type", std::string(events::kContentType)}, {"ce_id", e.event_id}}};
      const auto seq = e.seq;
      const auto created = e.created_at_ms;
      auto r = producer.produce(m, [this, seq, created](const DeliveryReport& report) {
        std::lock_guard lock(mutex);
        if (report.outcome == Delivery::kDelivered) {
          delivered.push_back(seq);
          const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
          delivery_latency->observe(static_cast<double>(now - created) / 1000.0);
        } else {
          failed.emplace_back(seq, report);
        }
        notified = true;
        wake.notify_one();
      });
      if (!r) {
        // Local queue full (broker slow or down): stop here, resume from this event later.
        backoff = options.retry_backoff;
        return true;
      }
      in_flight.insert(seq);
      cursor = std::max(cursor, seq);
    }
    return !pending->empty();
  }

  void apply_reports() {
    std::vector<std::int64_t> ok;
    std::vector<std::pair<std::int64_t, DeliveryReport>> bad;
    {
      std::lock_guard lock(mutex);
      ok.swap(delivered);
      bad.swap(failed);
    }
    for (auto seq : ok)
      in_flight.erase(seq);
    if (!ok.empty()) {
      published->inc(ok.size());
      store.mark_delivered(std::move(ok));
      consecutive_failures = 0;
    }
    if (bad.empty()) return;
    std::int64_t rewind = cursor;
    for (const auto& [seq, report] : bad) {
      in_flight.erase(seq);
      if (report.outcome == Delivery::kFatal) {
        // It will never succeed as it is: the event stays in the outbox (never lost) and is
        // reported; an operator fixes the topic or limit and it is retried after a restart.
        fatal->inc();
        log::error("relay.delivery_failed_permanently", {{"seq", seq}, {"reason", report.error}});
        continue;
      }
      retried->inc();
      rewind = std::min(rewind, seq - 1);
    }
    if (rewind < cursor) {
      // Re-read from the first failed event so that every undelivered event is produced again.
      cursor = rewind;
      const auto failures = consecutive_failures.fetch_add(1) + 1;
      const std::chrono::milliseconds grown =
          options.retry_backoff * (1 << std::min<int>(static_cast<int>(failures), 6));
      backoff = std::min(options.max_backoff, grown);
      log::warn("relay.delivery_failed", {{"failed", bad.size()},
                                          {"backoff_ms", backoff.count()},
                                          {"reason", bad.front().second.error}});
    }
  }
};

Relay::Relay(store::SqliteStore& store, Producer& producer, RelayOptions options,
             metrics::Registry& registry)
    : impl_(std::make_unique<Impl>(store, producer, options, registry)) {}

Relay::~Relay() {
  impl_->running = false;
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void Relay::start() {
  impl_->running = true;
  impl_->thread = std::thread([this] { impl_->loop(); });
}

void Relay::notify() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->notified = true;
  }
  impl_->wake.notify_one();
}

bool Relay::drain(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (impl_->store.stats().undelivered > 0 && std::chrono::steady_clock::now() < deadline) {
    notify();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return impl_->store.stats().undelivered == 0;
}

ops::CheckState Relay::health() const {
  const auto backlog = impl_->store.stats().undelivered;
  const bool failing = impl_->consecutive_failures.load() >= 5;
  return {!failing, std::to_string(backlog) + " event(s) awaiting Kafka" +
                        (failing ? ", deliveries failing" : "")};
}

}  // namespace sdoh::kafka
