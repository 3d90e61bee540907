#include "adapters/kafka/relay.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "gateway/core/thread_name.hpp"
#include "gateway/events/dead_letter.hpp"
#include "gateway/events/event.hpp"
#include "gateway/log/log.hpp"

namespace sdoh::kafka {

struct Relay::Impl {
  pipeline::Outbox& store;
  Producer& producer;
  RelayOptions options;

  std::thread thread;
  std::atomic<bool> running{false};
  // Waking the relay. A commit or a delivery report sets `notified`; only while the relay sleeps
  // waiting for it (`waiting_for`) does it also take the mutex and signal the condition, so a
  // notify while the relay is working costs one atomic store and one load, and no system call.
  // Both are sequentially consistent: the relay sets `waiting_for` and then reads `notified`, a
  // notifier sets `notified` and then reads `waiting_for`, so at least one sees the other.
  enum Waiting : int {
    kWorking = 0,
    kAnything = 1,  // caught up: a commit or a report
    kReports = 2,   // max_in_flight reached (an outage): only a report makes room
  };
  std::mutex mutex;
  std::condition_variable wake;
  std::atomic<bool> notified{false};
  std::atomic<int> waiting_for{kWorking};

  // Filled by delivery reports (poll thread), drained by the relay thread.
  std::mutex reports_mutex;
  std::vector<pipeline::DeliveredEvent> delivered;
  std::vector<std::pair<std::int64_t, DeliveryReport>> failed;

  // Relay thread only.
  std::int64_t cursor = 0;  // highest seq handed to the producer
  int read_size = 0;        // events asked of the next read: grows while behind
  // Whether the store's reads return events at or below the cursor (PostgreSQL reads this
  // process's share from the first undelivered event, outbox_port.hpp). Then each read asks for
  // room for those in flight as well; otherwise (SQLite) that room would only make each read of
  // a backlog return thousands of events that no longer fit. Learnt from the first read that
  // returns one: that read is then repeated at once with the room.
  bool store_rereads = false;
  std::set<std::int64_t> in_flight;  // produced, no report yet
  // Delivered, and its mark (queued to the store's writer) maybe not committed yet: a store that
  // reads from the first (PostgreSQL) may still return it as undelivered.
  std::set<std::int64_t> unmarked;
  std::chrono::milliseconds backoff{0};
  bool needs_reconcile = false;  // a retryable failure: reconcile before producing again
  std::int64_t epoch = 0;        // the store's relay_epoch() when last reconciled

  std::atomic<std::int64_t> consecutive_failures{0};
  std::atomic<bool> ready_to_publish{false};
  std::mutex status_mutex;
  std::string waiting_reason = "restart reconciliation not done yet";
  metrics::Counter* published;
  metrics::Counter* retried;
  metrics::Counter* fatal;
  metrics::Histogram* delivery_latency;

  Impl(pipeline::Outbox& s, Producer& p, RelayOptions o, metrics::Registry& registry)
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

  /// Restart reconciliation, retried until it succeeds: nothing is published before it did.
  bool prepare() {
    if (!options.reconcile) return true;
    const auto before = store.relay_epoch();
    auto r = options.reconcile();
    if (r) epoch = before;
    if (r) return true;
    {
      std::lock_guard lock(status_mutex);
      waiting_reason = "waiting for Kafka to reconcile the outbox: " + r.error().message;
    }
    log::warn("relay.reconcile_failed", {{"reason", r.error().message}});
    std::unique_lock lock(mutex);
    wake.wait_for(lock, options.max_backoff, [this] { return !running.load(); });
    return false;
  }

  /// Wakes the relay if it sleeps waiting for this (a commit: `report` false); else the relay
  /// finds `notified` before it sleeps, or at the end of its sleep.
  void notify(bool report) {
    notified.store(true);
    const auto waiting = waiting_for.load();
    if (waiting == kWorking || (waiting == kReports && !report)) return;
    { std::lock_guard lock(mutex); }  // the relay is in wait_for, or sees `notified` first
    wake.notify_one();
  }

  /// Sleeps until notified of `what`, at most `longest`.
  void sleep_until_notified(Waiting what, std::chrono::milliseconds longest) {
    std::unique_lock lock(mutex);
    waiting_for.store(what);
    wake.wait_for(lock, longest, [this] { return notified.load() || !running.load(); });
    waiting_for.store(kWorking);
  }

  /// Sleeps `how_long` whatever commits or reports come meanwhile (only stopping ends it).
  void pause(std::chrono::milliseconds how_long) {
    std::unique_lock lock(mutex);
    wake.wait_for(lock, how_long, [this] { return !running.load(); });
  }

  /// What one round did.
  struct Round {
    bool worked = false;   // produced, or applied delivery reports
    bool behind = false;   // more is waiting in the outbox: read on at once
    bool blocked = false;  // max_in_flight reached: nothing to read before a report
  };

  void loop() {
    while (running.load() && !prepare()) {
    }
    ready_to_publish = true;
    read_size = options.batch;
    while (running.load()) {
      // What is committed or reported from here on is seen by this round or wakes the next.
      notified.store(false);
      Round round;
      round.worked = apply_reports();
      // Events this process took over from another gateway (outbox_port.hpp): reconciled, as
      // after a restart, before any is published.
      if (options.reconcile && store.relay_epoch() != epoch) needs_reconcile = true;
      if (needs_reconcile && in_flight.empty() && backoff.count() == 0) {
        // A delivery failed after librdkafka gave up retrying; the broker may still have
        // written it. Look before producing it again, so that it is in Kafka once.
        if (prepare()) needs_reconcile = false;
        continue;
      }
      if (backoff.count() == 0 && !needs_reconcile) {
        const auto produced = produce_batch();
        round.worked = round.worked || produced.worked;
        round.behind = produced.behind;
        round.blocked = produced.blocked;
      }
      if (backoff.count() > 0) {
        pause(backoff);
        backoff = std::chrono::milliseconds(0);  // try again after one backoff
      } else if (round.behind) {
        continue;
      } else if (round.worked) {
        // Under load: let commits and reports gather for a moment, so that one read, one
        // produce round and one mark serve many of them (each notify meanwhile costs nothing).
        pause(options.gather);
      } else {
        sleep_until_notified(round.blocked ? kReports : kAnything, options.idle_poll);
      }
    }
    apply_reports();
  }

  Round produce_batch() {
    Round round;
    const int room = options.max_in_flight - static_cast<int>(in_flight.size());
    if (room <= 0) {
      round.blocked = true;  // the next delivery report wakes the relay; commits need not
      return round;
    }
    const int wanted = std::min(read_size, room);
    // Room for those in flight: a store that reads from the first (PostgreSQL) returns them too.
    const int limit =
        wanted + (store_rereads ? static_cast<int>(in_flight.size() + unmarked.size()) : 0);
    const auto read_after = cursor;
    auto pending = store.pending_events(read_after, limit);
    if (!pending) {
      log::warn("relay.outbox_read_failed", {{"reason", pending.error().message}});
      backoff = options.retry_backoff;
      return round;
    }
    forget_marked(*pending, limit);
    bool read_again_with_room = false;
    if (!store_rereads && !pending->empty() && pending->front().seq <= read_after) {
      store_rereads = true;
      read_again_with_room = true;  // read again with room for those in flight
    }
    // A full read: more is waiting. Read larger while behind, back to the batch once caught up.
    if (static_cast<int>(pending->size()) >= limit) {
      round.behind = true;
      read_size = std::min(read_size * 2, options.max_batch);
    } else {
      read_size = options.batch;
    }
    int produced = 0;
    for (auto& e : *pending) {
      if (in_flight.count(e.seq) != 0 || unmarked.count(e.seq) != 0) continue;
      if (produced >= wanted) break;
      const auto seq = e.seq;
      const auto created = e.created_at_ms;
      auto topic = e.topic;
      Message m{
          std::move(e.topic),
          std::move(e.key),
          std::move(e.value),
          {{"content-type", std::string(events::kContentType)}, {"ce_id", std::move(e.event_id)}}};
      // The value moves into the producer: librdkafka queues it from there, with no copy.
      auto r = producer.produce(std::move(m), [this, seq, created, topic = std::move(topic)](
                                                  const DeliveryReport& report) {
        const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        {
          std::lock_guard lock(reports_mutex);
          if (report.outcome == Delivery::kDelivered) {
            delivered.push_back({seq, topic, report.partition, report.offset});
          } else {
            failed.emplace_back(seq, report);
          }
        }
        if (report.outcome == Delivery::kDelivered) {
          delivery_latency->observe(static_cast<double>(now - created) / 1000.0);
          if (options.delivery_lag != nullptr)
            options.delivery_lag->record(std::chrono::milliseconds(now - created));
        }
        notify(true);
      });
      if (!r && r.error().kind != ErrorKind::kUnavailable) {
        // Refused before it left (larger than message.max.bytes...): it never will be sent.
        DeliveryReport refused;
        refused.outcome = Delivery::kFatal;
        const auto& text = r.error().message;
        const auto colon = text.find(": ");
        refused.error_name = colon == std::string::npos ? "" : text.substr(0, colon);
        refused.error = colon == std::string::npos ? text : text.substr(colon + 2);
        fatal->inc();
        dead_letter(seq, refused);
        cursor = std::max(cursor, seq);  // not read again (should the dead letter have failed)
        ++produced;                      // progress: read on at once
        round.worked = true;
        continue;
      }
      if (!r) {
        // Local queue full (the events are larger than max_in_flight allows for): stop here,
        // resume from this event later.
        backoff = options.retry_backoff;
        round.behind = false;
        return round;
      }
      in_flight.insert(seq);
      cursor = std::max(cursor, seq);
      ++produced;
      round.worked = true;
    }
    // A full read of which nothing could go (all of it in flight or delivered but unmarked,
    // after a rewind): reading on at once would only read the same again. Wait for reports.
    if (produced == 0) round.behind = false;
    round.behind = round.behind || read_again_with_room;
    return round;
  }

  /// Drops from `unmarked` what the read shows marked: not returned, though within its range.
  void forget_marked(const std::vector<pipeline::PendingEvent>& pending, int limit) {
    if (unmarked.empty()) return;
    const bool whole = static_cast<int>(pending.size()) < limit;
    const auto last = pending.empty() ? std::int64_t{0} : pending.back().seq;
    std::set<std::int64_t> returned;
    for (const auto& e : pending)
      returned.insert(e.seq);
    for (auto it = unmarked.begin(); it != unmarked.end();) {
      if (returned.count(*it) == 0 && (whole || *it <= last))
        it = unmarked.erase(it);
      else
        ++it;
    }
  }

  void dead_letter(std::int64_t seq, const DeliveryReport& report) {
    auto origin = store.event_origin(seq);
    if (!origin) {
      log::error("relay.dead_letter_failed", {{"seq", seq}, {"reason", origin.error().message}});
      return;
    }
    events::DeadLetter dl;
    dl.dead_letter_id = events::event_id("deadletter|publish|" + origin->event_id, 0);
    dl.received_at = events::now_rfc3339();
    dl.protocol = origin->protocol.empty() ? "kafka" : origin->protocol;
    dl.sender = origin->sender.empty() ? "unknown" : origin->sender;
    if (!origin->message_id.empty()) dl.message_id = origin->message_id;
    if (!origin->message_type.empty()) dl.message_type = origin->message_type;
    dl.stage = "publish";
    // FHIR issue-type codes, as for every non-HL7 dead letter; Kafka's own name is in the text.
    const auto& name = report.error_name;
    dl.code = name.find("TOO_LARGE") != std::string::npos       ? "too-long"
              : name.find("UNKNOWN_TOPIC") != std::string::npos ? "not-found"
              : name.find("AUTHORIZATION") != std::string::npos ? "security"
                                                                : "exception";
    dl.text = "Kafka refused event " + origin->event_id + " for topic " + origin->topic + ": " +
              report.error + " (" + name + ")";
    dl.where.expression = origin->topic;
    pipeline::DeadLetterRecord record{dl.dead_letter_id, "publish", dl.code, dl.text,
                                      origin->topic};
    std::optional<pipeline::OutboxEvent> notice;
    if (origin->topic != options.deadletter_topic) {
      events::Event e;
      e.type = events::EventType::kDeadLetter;
      e.id = dl.dead_letter_id;
      e.source = events::event_source(options.gateway_id);
      e.subject = dl.dead_letter_id;
      e.time = dl.received_at;
      e.topic = options.deadletter_topic;
      e.key = dl.dead_letter_id;
      e.data = events::dead_letter_data(dl);
      notice = pipeline::OutboxEvent{e.id, std::string(events::type_name(e.type)), e.topic, e.key,
                                     e.envelope()};
    }
    if (auto r = store.dead_letter_event(seq, record, std::move(notice)); !r) {
      // Still in the outbox: retried after a restart, never lost.
      log::error("relay.dead_letter_failed", {{"seq", seq}, {"reason", r.error().message}});
      return;
    }
    log::error("relay.event_dead_lettered", {{"dead_letter_id", dl.dead_letter_id},
                                             {"event_id", origin->event_id},
                                             {"topic", origin->topic},
                                             {"reason", report.error}});
  }

  /// Applies every delivery report received since the last round, the deliveries with one mark
  /// (one operation for the store's writer). True when there were any.
  bool apply_reports() {
    std::vector<pipeline::DeliveredEvent> ok;
    std::vector<std::pair<std::int64_t, DeliveryReport>> bad;
    {
      std::lock_guard lock(reports_mutex);
      ok.swap(delivered);
      bad.swap(failed);
    }
    const bool any = !ok.empty() || !bad.empty();
    for (const auto& e : ok) {
      in_flight.erase(e.seq);
      unmarked.insert(e.seq);
    }
    if (!ok.empty()) {
      published->inc(ok.size());
      store.mark_delivered(std::move(ok));
      consecutive_failures = 0;
    }
    if (bad.empty()) return any;
    std::int64_t rewind = cursor;
    for (const auto& [seq, report] : bad) {
      in_flight.erase(seq);
      if (report.outcome == Delivery::kFatal) {
        // It will never succeed as it is: it leaves the queue as a dead letter (kept, with the
        // event, for an operator to replay once the topic or limit is fixed).
        fatal->inc();
        dead_letter(seq, report);
        continue;
      }
      retried->inc();
      rewind = std::min(rewind, seq - 1);
      if (options.reconcile) needs_reconcile = true;
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
    return any;
  }
};

Relay::Relay(pipeline::Outbox& store, Producer& producer, RelayOptions options,
             metrics::Registry& registry)
    : impl_(std::make_unique<Impl>(store, producer, options, registry)) {}

Relay::~Relay() {
  impl_->running = false;
  { std::lock_guard lock(impl_->mutex); }  // a relay about to wait sees `running` false first
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void Relay::start() {
  impl_->running = true;
  impl_->thread = std::thread([this] {
    name_this_thread("relay");
    impl_->loop();
  });
}

void Relay::notify() {
  impl_->notify(false);
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
  if (!impl_->ready_to_publish.load()) {
    std::lock_guard lock(impl_->status_mutex);
    return {false, std::to_string(backlog) + " event(s) awaiting Kafka; " + impl_->waiting_reason};
  }
  const bool failing = impl_->consecutive_failures.load() >= 5;
  return {!failing, std::to_string(backlog) + " event(s) awaiting Kafka" +
                        (failing ? ", deliveries failing" : "")};
}

}  // namespace sdoh::kafka
