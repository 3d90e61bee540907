#include "adapters/kafka/producer.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include <librdkafka/rdkafka.h>
#include <rapidjson/document.h>

#include "adapters/kafka/client_conf.hpp"
#include "gateway/core/json_parse.hpp"
#include "gateway/core/thread_name.hpp"
#include "gateway/log/log.hpp"

namespace sdoh::kafka {
namespace {

Result<ConfPtr> build_conf(const config::KafkaConfig& cfg, const std::string& bootstrap) {
  // The delivery promise: no duplicates from retries, every in-sync replica has it.
  return build_client_conf(cfg, bootstrap, cfg.client_id,
                           {{"enable.idempotence", "true"},
                            {"acks", "all"},
                            // Under load a request carries every message queued in these 2 ms;
                            // when idle an event waits at most this long for company.
                            {"linger.ms", "2"},
                            // After an outage the backlog waits for the reconnect: librdkafka
                            // doubles its reconnect backoff up to 10 s by default, so a broker back
                            // after a minute would be tried again only up to 15 s later. 1 s, the
                            // Java client's default.
                            {"reconnect.backoff.max.ms", "1000"},
                            // A bound on what waits in memory for Kafka (librdkafka's default is
                            // 1 GiB): the relay stops at "queue full" and the rest of a backlog
                            // waits in the outbox on disk.
                            {"queue.buffering.max.kbytes", "65536"},
                            {"log_level", "5"},
                            {"statistics.interval.ms", "1000"}});
}

bool is_permanent(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
      return true;
    default:
      return false;
  }
}

}  // namespace

struct Producer::Impl {
  /// What travels with one message as librdkafka's opaque, freed after its delivery report: the
  /// caller's callback, and the value when the caller handed it over (librdkafka then queues
  /// it without a copy at produce time).
  struct InFlight {
    DeliveryCallback callback;
    std::string value;
  };

  config::KafkaConfig cfg;
  std::string bootstrap;
  std::vector<std::string> topics;  // readiness: every one must exist
  // The librdkafka client. Replaced (unique lock) after a fatal error; used (shared lock) by
  // produce, poll, flush and the metadata refresh.
  rd_kafka_t* rk = nullptr;
  mutable std::shared_mutex client_mutex;
  // Set by librdkafka's error callback on a fatal error (an idempotent producer whose sequence
  // the broker no longer accepts, a fenced producer): every produce() fails from then on, so the
  // poll thread replaces the client (recover()).
  std::atomic<bool> fatal{false};
  std::atomic<bool> running{true};
  std::atomic<std::uint64_t> in_flight{0};
  std::thread poller;   // serves delivery reports
  std::thread monitor;  // refreshes broker metadata for readiness
  std::mutex monitor_mutex;
  std::condition_variable monitor_wake;

  mutable std::mutex health_mutex;
  ops::CheckState health{false, "no metadata yet"};

  // From librdkafka's statistics: requests the brokers failed and librdkafka retried.
  std::atomic<std::int64_t> broker_retries{0};
  std::atomic<std::int64_t> broker_errors{0};

  void on_stats(const char* json, std::size_t len) {
    rapidjson::Document doc;
    if (!sdoh::json::parse(doc, {json, len}) || !doc.IsObject() || !doc.HasMember("brokers"))
      return;
    std::int64_t retries = 0, errors = 0;
    for (const auto& b : doc["brokers"].GetObject()) {
      if (b.value.HasMember("txretries") && b.value["txretries"].IsInt64())
        retries += b.value["txretries"].GetInt64();
      if (b.value.HasMember("txerrs") && b.value["txerrs"].IsInt64())
        errors += b.value["txerrs"].GetInt64();
    }
    broker_retries = retries;
    broker_errors = errors;
  }

  metrics::Counter* produced = nullptr;
  metrics::Counter* delivered = nullptr;
  metrics::Counter* failed_retryable = nullptr;
  metrics::Counter* failed_fatal = nullptr;
  metrics::Counter* recreated = nullptr;

  Result<void> open_client();
  void recover();
  /// Queues `message` with `payload` as its value (the message's own, or the one `opaque` owns);
  /// `opaque` is deleted here when librdkafka refuses it, else after its delivery report.
  Result<void> produce(const Message& message, const std::string& payload, int flags,
                       InFlight* opaque);

  void on_fatal(std::string reason) {
    {
      std::lock_guard lock(health_mutex);
      health = {false, "the Kafka producer had a fatal error (" + reason +
                           "): replacing it; nothing is published until it is"};
    }
    fatal = true;
  }

  ~Impl() {
    running = false;
    monitor_wake.notify_all();
    if (monitor.joinable()) monitor.join();
    std::unique_lock client(client_mutex);
    if (rk != nullptr) {
      rd_kafka_flush(rk, static_cast<int>(cfg.flush_timeout.count()));
      if (rd_kafka_outq_len(rk) > 0) {
        log::warn("kafka.flush_incomplete", {{"remaining", rd_kafka_outq_len(rk)}});
        rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(rk, 0);  // runs the purged messages' callbacks
      }
    }
    client.unlock();
    if (poller.joinable()) poller.join();
    if (rk != nullptr) rd_kafka_destroy(rk);
  }

  void on_delivery(const rd_kafka_message_t* m) {
    auto* message = static_cast<InFlight*>(m->_private);
    DeliveryReport report;
    report.partition = m->partition;
    report.offset = m->offset;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      report.outcome = Delivery::kDelivered;
      delivered->inc();
    } else {
      report.error = rd_kafka_err2str(m->err);
      report.error_name = rd_kafka_err2name(m->err);
      report.possibly_persisted =
          rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED;
      report.outcome = is_permanent(m->err) ? Delivery::kFatal : Delivery::kRetryable;
      (report.outcome == Delivery::kFatal ? failed_fatal : failed_retryable)->inc();
    }
    in_flight.fetch_sub(1);
    if (message != nullptr) {
      if (message->callback) message->callback(report);
      delete message;
    }
  }

  void refresh_metadata() {
    std::shared_lock client(client_mutex);
    if (rk == nullptr || fatal.load()) return;  // the health says why
    const rd_kafka_metadata_t* md = nullptr;
    const auto err =
        rd_kafka_metadata(rk, 1, nullptr, &md, static_cast<int>(cfg.metadata_timeout.count()));
    client.unlock();
    ops::CheckState state;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      state = {false, std::string("metadata request failed: ") + rd_kafka_err2str(err)};
    } else {
      std::string missing;
      for (const auto& topic : topics) {
        bool found = false;
        for (int i = 0; i < md->topic_cnt; ++i) {
          if (topic == md->topics[i].topic && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            found = true;
          }
        }
        if (!found) missing += (missing.empty() ? "" : ", ") + topic;
      }
      if (md->broker_cnt == 0) {
        state = {false, "no brokers in metadata"};
      } else if (!missing.empty()) {
        state = {false, "missing topics: " + missing};
      } else {
        state = {true, std::to_string(md->broker_cnt) + " broker(s), " +
                           std::to_string(topics.size()) + " topics present"};
      }
      rd_kafka_metadata_destroy(md);
    }
    std::lock_guard lock(health_mutex);
    if (fatal.load()) return;
    if (state.ok != health.ok) {
      log::write(state.ok ? log::Level::kInfo : log::Level::kWarn,
                 state.ok ? "kafka.reachable" : "kafka.unreachable", {{"detail", state.detail}});
    }
    health = std::move(state);
  }
};

namespace {

void delivery_report_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  static_cast<Producer::Impl*>(opaque)->on_delivery(m);
}

int stats_cb(rd_kafka_t*, char* json, size_t len, void* opaque) {
  static_cast<Producer::Impl*>(opaque)->on_stats(json, len);
  return 0;  // librdkafka frees the JSON
}

void error_cb(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  const bool fatal = err == RD_KAFKA_RESP_ERR__FATAL;
  if (fatal) {
    char buf[512];
    const auto code = rd_kafka_fatal_error(rk, buf, sizeof buf);
    log::error("kafka.fatal_error",
               {{"code", rd_kafka_err2name(code)}, {"reason", std::string_view(buf)}});
    static_cast<Producer::Impl*>(opaque)->on_fatal(rd_kafka_err2name(code));
  } else {
    log::warn("kafka.error", {{"code", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))},
                              {"reason", reason}});
  }
}

}  // namespace

Result<void> Producer::Impl::open_client() {
  auto conf = build_conf(cfg, bootstrap);
  if (!conf) return fail(conf.error());
  rd_kafka_conf_set_opaque(conf->get(), this);
  rd_kafka_conf_set_dr_msg_cb(conf->get(), delivery_report_cb);
  rd_kafka_conf_set_error_cb(conf->get(), error_cb);
  rd_kafka_conf_set_stats_cb(conf->get(), stats_cb);
  char errstr[512];
  rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf->release(), errstr, sizeof errstr);
  if (rk == nullptr) return fail(Error::config("kafka", errstr));
  return {};
}

// After a fatal error: every message still queued or in flight is reported back as retryable
// (purged), so the relay reconciles with Kafka before producing them again and none is lost or
// doubled; then a new client, with a new producer id, takes the old one's place. Poll thread.
void Producer::Impl::recover() {
  std::unique_lock client(client_mutex);
  if (rk != nullptr) {
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (rd_kafka_outq_len(rk) > 0 && std::chrono::steady_clock::now() < deadline)
      rd_kafka_poll(rk, 50);
    rd_kafka_poll(rk, 0);
    rd_kafka_destroy(rk);
    rk = nullptr;
  }
  if (auto opened = open_client(); !opened) {
    log::error("kafka.producer_recreate_failed", {{"reason", opened.error().message}});
    client.unlock();
    std::unique_lock lock(monitor_mutex);
    monitor_wake.wait_for(lock, std::chrono::seconds(1), [this] { return !running.load(); });
    return;
  }
  fatal = false;
  recreated->inc();
  {
    std::lock_guard lock(health_mutex);
    health = {false, "the Kafka producer was replaced after a fatal error; no metadata yet"};
  }
  // Ready again at the next metadata refresh (kafka.metadata_interval).
  log::warn("kafka.producer_recreated", {{"times", recreated->value()}});
}

Producer::Producer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Producer::~Producer() = default;

Result<void> Producer::validate(const config::KafkaConfig& cfg) {
  auto conf = build_conf(cfg, cfg.brokers.empty() ? "127.0.0.1:9092" : cfg.brokers);
  if (!conf) return fail(conf.error());
  return {};
}

Result<std::unique_ptr<Producer>> Producer::create(const config::KafkaConfig& cfg,
                                                   const std::string& bootstrap_servers,
                                                   std::vector<std::string> topics,
                                                   metrics::Registry& registry) {
  if (auto conf = build_conf(cfg, bootstrap_servers); !conf) return fail(conf.error());
  auto impl = std::make_unique<Impl>();
  impl->cfg = cfg;
  impl->topics = topics.empty() ? cfg.topics.all() : std::move(topics);
  auto& produced = registry.counter("sdoh_kafka_messages_produced_total",
                                    "Messages handed to the Kafka producer.");
  auto& delivered = registry.counter("sdoh_kafka_messages_delivered_total",
                                     "Messages Kafka acknowledged (acks=all).");
  auto& failed =
      registry.counter("sdoh_kafka_messages_failed_total",
                       "Delivery reports with an error, by whether a retry can help.", {"kind"});
  impl->produced = &produced.with();
  impl->delivered = &delivered.with();
  impl->failed_retryable = &failed.with({"retryable"});
  impl->failed_fatal = &failed.with({"fatal"});
  auto* raw = impl.get();
  registry.gauge_callback("sdoh_kafka_messages_in_flight", "Messages queued and not yet reported.",
                          [raw] { return static_cast<double>(raw->in_flight.load()); });

  registry.gauge_callback("sdoh_kafka_request_retries",
                          "Requests librdkafka sent again after a timeout or a lost connection "
                          "(since start).",
                          [raw] { return static_cast<double>(raw->broker_retries.load()); });
  registry.gauge_callback("sdoh_kafka_request_errors",
                          "Requests to the brokers that failed (since start).",
                          [raw] { return static_cast<double>(raw->broker_errors.load()); });
  impl->recreated = &registry
                         .counter("sdoh_kafka_producer_recreated_total",
                                  "Times the Kafka producer was replaced after a fatal error.")
                         .with();
  impl->bootstrap = bootstrap_servers;
  if (auto opened = impl->open_client(); !opened) return fail(opened.error());

  impl->poller = std::thread([raw] {
    name_this_thread("kafka-reports");
    while (raw->running.load() || raw->in_flight.load() > 0) {
      if (raw->fatal.load()) {
        raw->recover();
        continue;
      }
      std::shared_lock client(raw->client_mutex);
      rd_kafka_poll(raw->rk, 100);
      if (!raw->running.load() && rd_kafka_outq_len(raw->rk) == 0) break;
    }
  });
  impl->monitor = std::thread([raw] {
    name_this_thread("kafka-metadata");
    while (raw->running.load()) {
      raw->refresh_metadata();
      std::unique_lock lock(raw->monitor_mutex);
      raw->monitor_wake.wait_for(lock, raw->cfg.metadata_interval,
                                 [raw] { return !raw->running.load(); });
    }
  });
  return std::unique_ptr<Producer>(new Producer(std::move(impl)));
}

Result<void> Producer::produce(const Message& message, DeliveryCallback on_delivery) {
  auto* in_flight = new Impl::InFlight{std::move(on_delivery), {}};
  return impl_->produce(message, message.value, RD_KAFKA_MSG_F_COPY, in_flight);
}

Result<void> Producer::produce(Message&& message, DeliveryCallback on_delivery) {
  auto* in_flight = new Impl::InFlight{std::move(on_delivery), std::move(message.value)};
  // librdkafka queues the value the opaque owns (freed after the report): no copy to queue it.
  return impl_->produce(message, in_flight->value, 0, in_flight);
}

Result<void> Producer::Impl::produce(const Message& message, const std::string& payload, int flags,
                                     InFlight* opaque) {
  rd_kafka_headers_t* headers = rd_kafka_headers_new(message.headers.size());
  for (const auto& [name, value] : message.headers) {
    rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                        static_cast<ssize_t>(value.size()));
  }
  std::shared_lock client(client_mutex);
  if (rk == nullptr || fatal.load()) {
    rd_kafka_headers_destroy(headers);
    delete opaque;
    return fail(Error::unavailable("the Kafka producer is being replaced after a fatal error"));
  }
  in_flight.fetch_add(1);
  const auto err =
      rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(message.topic.c_str()),
                        RD_KAFKA_V_KEY(message.key.data(), message.key.size()),
                        RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
                        RD_KAFKA_V_MSGFLAGS(flags), RD_KAFKA_V_HEADERS(headers),
                        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // On failure librdkafka keeps ownership of nothing: free what we made.
    in_flight.fetch_sub(1);
    rd_kafka_headers_destroy(headers);
    delete opaque;
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      return fail(Error::unavailable("Kafka producer queue is full"));
    }
    if (is_permanent(err) || err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
      // Refused before it left (too large for message.max.bytes, unknown partition...): the
      // error name leads the text so the caller can classify it.
      return fail(
          Error::invalid(std::string(rd_kafka_err2name(err)) + ": " + rd_kafka_err2str(err)));
    }
    // The producer itself is broken (a fatal error, a client state error): the message is
    // fine, so it is never dead-lettered for this; the caller backs off and tries again.
    if (err == RD_KAFKA_RESP_ERR__FATAL) fatal = true;
    return fail(Error::unavailable(std::string("the Kafka producer cannot take messages now: ") +
                                   rd_kafka_err2name(err)));
  }
  produced->inc();
  return {};
}

int Producer::flush(std::chrono::milliseconds timeout) {
  std::shared_lock client(impl_->client_mutex);
  if (impl_->rk == nullptr) return static_cast<int>(impl_->in_flight.load());
  rd_kafka_flush(impl_->rk, static_cast<int>(timeout.count()));
  return rd_kafka_outq_len(impl_->rk);
}

std::uint64_t Producer::in_flight() const {
  return impl_->in_flight.load();
}

ops::CheckState Producer::health() const {
  std::lock_guard lock(impl_->health_mutex);
  return impl_->health;
}

}  // namespace sdoh::kafka
