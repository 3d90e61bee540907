#include "adapters/kafka/update_consumer.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "adapters/kafka/client_conf.hpp"
#include "gateway/log/log.hpp"

namespace sdoh::kafka {

namespace {

struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;

struct ListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using ListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, ListDeleter>;

UpdateRecord record_of(const rd_kafka_message_t& m) {
  UpdateRecord r;
  r.topic = rd_kafka_topic_name(m.rkt);
  r.partition = m.partition;
  r.offset = m.offset;
  if (m.key != nullptr) r.key.assign(static_cast<const char*>(m.key), m.key_len);
  if (m.payload != nullptr) r.value.assign(static_cast<const char*>(m.payload), m.len);
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(&m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0;
         rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      r.headers.emplace_back(name, value == nullptr
                                       ? std::string()
                                       : std::string(static_cast<const char*>(value), size));
    }
  }
  return r;
}

}  // namespace

struct UpdateConsumer::Impl {
  rd_kafka_t* rk = nullptr;
  std::string group;
  std::string topic;
  UpdateHandler handler;
  std::thread thread;
  std::atomic<bool> stopping{false};
  std::mutex wait_mutex;
  std::condition_variable wait_cv;

  mutable std::mutex health_mutex;
  ops::CheckState state{false, "not started"};

  metrics::Family<metrics::Counter>* records = nullptr;
  metrics::Counter* commit_failures = nullptr;

  ~Impl() {
    if (rk != nullptr) rd_kafka_destroy(rk);
  }

  void set_state(bool ok, std::string detail) {
    std::lock_guard lock(health_mutex);
    state = {ok, std::move(detail)};
  }

  // Sleeps up to `d`; false when stop() was called meanwhile.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock lock(wait_mutex);
    return !wait_cv.wait_for(lock, d, [this] { return stopping.load(); });
  }

  void run() {
    ListPtr topics(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(topics.get(), topic.c_str(), RD_KAFKA_PARTITION_UA);
    if (auto err = rd_kafka_subscribe(rk, topics.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      set_state(false, std::string("cannot subscribe: ") + rd_kafka_err2str(err));
      log::error("kafka.updates_subscribe_failed",
                 {{"topic", topic}, {"reason", rd_kafka_err2str(err)}});
      return;
    }
    set_state(true, "subscribed to " + topic + " as group " + group);
    auto backoff = std::chrono::milliseconds(100);
    while (!stopping) {
      MessagePtr m(rd_kafka_consumer_poll(rk, 200));
      if (!m) continue;
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
        set_state(false, std::string("consumer error: ") + rd_kafka_err2str(m->err));
        log::warn("kafka.updates_error", {{"topic", topic}, {"reason", rd_kafka_err2str(m->err)}});
        continue;
      }
      const auto record = record_of(*m);
      const auto disposition = handler(record);
      if (disposition == UpdateDisposition::kRetry) {
        records->with({"retry"}).inc();
        // Read the same record again after the pause: nothing after it is taken first.
        ListPtr at(rd_kafka_topic_partition_list_new(1));
        rd_kafka_topic_partition_list_add(at.get(), record.topic.c_str(), record.partition)
            ->offset = record.offset;
        if (auto* e = rd_kafka_seek_partitions(rk, at.get(), 5000); e != nullptr) {
          log::warn("kafka.updates_seek_failed", {{"reason", rd_kafka_error_string(e)}});
          rd_kafka_error_destroy(e);
        }
        set_state(false, "the store cannot take updates now; retrying");
        if (!pause(backoff)) break;
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
        continue;
      }
      backoff = std::chrono::milliseconds(100);
      records->with({disposition == UpdateDisposition::kCommitted ? "committed" : "dead_lettered"})
          .inc();
      // Synchronous: the next record of this partition is taken only once this one's offset is
      // committed, so a restart never skips an update that was not stored.
      if (auto err = rd_kafka_commit_message(rk, m.get(), 0); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        commit_failures->inc();
        log::warn("kafka.updates_commit_failed", {{"topic", record.topic},
                                                  {"partition", record.partition},
                                                  {"offset", record.offset},
                                                  {"reason", rd_kafka_err2str(err)}});
        set_state(false, std::string("offset commit failed: ") + rd_kafka_err2str(err));
      } else {
        set_state(true, "subscribed to " + topic + " as group " + group);
      }
    }
    rd_kafka_consumer_close(rk);
  }
};

Result<std::unique_ptr<UpdateConsumer>> UpdateConsumer::create(const config::KafkaConfig& cfg,
                                                               const std::string& bootstrap,
                                                               std::string group, std::string topic,
                                                               UpdateHandler handler,
                                                               metrics::Registry& registry) {
  auto conf = build_client_conf(cfg, bootstrap, cfg.client_id + "-updates",
                                {{"group.id", group},
                                 {"enable.auto.commit", "false"},
                                 {"enable.auto.offset.store", "false"},
                                 {"auto.offset.reset", "earliest"},
                                 {"isolation.level", "read_committed"},
                                 {"log_level", "4"}});
  if (!conf) return fail(conf.error());
  auto impl = std::make_unique<Impl>();
  char errstr[512];
  impl->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf->release(), errstr, sizeof errstr);
  if (impl->rk == nullptr) return fail(Error::config("kafka", errstr));
  rd_kafka_poll_set_consumer(impl->rk);
  impl->group = std::move(group);
  impl->topic = std::move(topic);
  impl->handler = std::move(handler);
  impl->records = &registry.counter("sdoh_kafka_updates_total",
                                    "Agency updates read from Kafka, by what became of them "
                                    "(committed, dead_lettered, retry).",
                                    {"outcome"});
  impl->commit_failures = &registry
                               .counter("sdoh_kafka_update_offset_commit_failures_total",
                                        "Offset commits of handled agency updates that failed "
                                        "(the update is read again and deduplicated).")
                               .with();
  return std::unique_ptr<UpdateConsumer>(new UpdateConsumer(std::move(impl)));
}

UpdateConsumer::UpdateConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

UpdateConsumer::~UpdateConsumer() {
  stop();
}

void UpdateConsumer::start() {
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

void UpdateConsumer::stop() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->wait_mutex);
    impl_->stopping = true;
  }
  impl_->wait_cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

ops::CheckState UpdateConsumer::health() const {
  std::lock_guard lock(impl_->health_mutex);
  return impl_->state;
}

}  // namespace sdoh::kafka
