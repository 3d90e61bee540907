#include "adapters/kafka/admin.hpp"

#include <memory>

#include <librdkafka/rdkafka.h>

#include "adapters/kafka/client_conf.hpp"

namespace sdoh::kafka {

namespace {

constexpr const char* kKey = "kafka.provision_topics";

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
struct OptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* o) const { rd_kafka_AdminOptions_destroy(o); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
};
struct NewTopicsDeleter {
  std::size_t count = 0;
  void operator()(rd_kafka_NewTopic_t** topics) const {
    rd_kafka_NewTopic_destroy_array(topics, count);
    delete[] topics;
  }
};

}  // namespace

Result<std::vector<std::string>> create_topics(const config::KafkaConfig& cfg,
                                               const std::string& bootstrap_servers,
                                               const std::vector<NewTopic>& topics,
                                               std::chrono::milliseconds timeout) {
  if (topics.empty()) return std::vector<std::string>{};
  char errstr[512];
  // The request objects first: a spec librdkafka refuses (partitions, replication) is named
  // before anything connects.
  std::unique_ptr<rd_kafka_NewTopic_t*[], NewTopicsDeleter> specs(
      new rd_kafka_NewTopic_t* [topics.size()](), NewTopicsDeleter { 0 });
  for (const auto& t : topics) {
    auto* nt = rd_kafka_NewTopic_new(t.name.c_str(), t.partitions, t.replication_factor, errstr,
                                     sizeof errstr);
    if (nt == nullptr) {
      return fail(Error::config(kKey, "topic " + t.name + ": " + errstr));
    }
    specs[specs.get_deleter().count++] = nt;
    for (const auto& [name, value] : t.configs) {
      if (auto err = rd_kafka_NewTopic_set_config(nt, name.c_str(), value.c_str()); err) {
        return fail(Error::config(kKey, "topic " + t.name + ": config " + name + "=" + value +
                                            ": " + rd_kafka_err2str(err)));
      }
    }
  }

  auto conf = build_client_conf(cfg, bootstrap_servers, cfg.client_id + "-admin", {});
  if (!conf) return fail(conf.error());
  std::unique_ptr<rd_kafka_t, HandleDeleter> rk(
      rd_kafka_new(RD_KAFKA_PRODUCER, conf->release(), errstr, sizeof errstr));
  if (!rk) return fail(Error::config(kKey, std::string("Kafka admin client: ") + errstr));
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(rk.get()));
  std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter> options(
      rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS));
  const int timeout_ms = static_cast<int>(timeout.count());
  if (rd_kafka_AdminOptions_set_request_timeout(options.get(), timeout_ms, errstr, sizeof errstr) !=
          RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_AdminOptions_set_operation_timeout(options.get(), timeout_ms, errstr,
                                                  sizeof errstr) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return fail(Error::config(kKey, std::string("Kafka admin options: ") + errstr));
  }
  rd_kafka_CreateTopics(rk.get(), specs.get(), topics.size(), options.get(), queue.get());
  // The request's own timeout ends it; the margin only covers the result's way back.
  std::unique_ptr<rd_kafka_event_t, EventDeleter> event(
      rd_kafka_queue_poll(queue.get(), timeout_ms + 5'000));
  if (!event) {
    return fail(Error::config(kKey, "CreateTopics got no answer within " +
                                        std::to_string(timeout_ms) + "ms from " +
                                        bootstrap_servers));
  }
  if (auto err = rd_kafka_event_error(event.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* text = rd_kafka_event_error_string(event.get());
    return fail(Error::config(kKey, "CreateTopics through " + bootstrap_servers +
                                        " failed: " + rd_kafka_err2name(err) + ": " +
                                        (text != nullptr ? text : rd_kafka_err2str(err))));
  }
  const auto* result = rd_kafka_event_CreateTopics_result(event.get());
  std::size_t count = 0;
  const auto* results = rd_kafka_CreateTopics_result_topics(result, &count);
  std::vector<std::string> created;
  std::string refused;
  for (std::size_t i = 0; i < count; ++i) {
    const auto err = rd_kafka_topic_result_error(results[i]);
    const std::string name = rd_kafka_topic_result_name(results[i]);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      created.push_back(name);
    } else if (err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      const char* text = rd_kafka_topic_result_error_string(results[i]);
      refused += (refused.empty() ? "" : "; ") + name + ": " + rd_kafka_err2name(err) + ": " +
                 (text != nullptr ? text : rd_kafka_err2str(err));
    }
  }
  if (!refused.empty()) {
    return fail(Error::config(kKey, "CreateTopics refused " + refused));
  }
  return created;
}

}  // namespace sdoh::kafka
