#include "adapters/kafka/embedded_broker.hpp"

#include <vector>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace sdoh::kafka {

struct EmbeddedBroker::Impl {
  rd_kafka_t* owner = nullptr;  // the mock cluster lives inside a librdkafka handle
  rd_kafka_mock_cluster_t* cluster = nullptr;
  std::string bootstraps;
  int brokers = 0;

  ~Impl() {
    if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
    if (owner != nullptr) rd_kafka_destroy(owner);
  }
};

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::start(
    int brokers, const std::vector<std::string>& topics, int partitions) {
  auto impl = std::make_unique<Impl>();
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The owner handle never connects anywhere; it only hosts the mock cluster's threads.
  if (rd_kafka_conf_set(conf, "client.id", "sdoh-embedded-broker", errstr, sizeof errstr) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return fail(Error::internal(std::string("embedded broker config: ") + errstr));
  }
  impl->owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (impl->owner == nullptr) {
    return fail(Error::internal(std::string("embedded broker: ") + errstr));
  }
  impl->cluster = rd_kafka_mock_cluster_new(impl->owner, brokers);
  if (impl->cluster == nullptr)
    return fail(Error::internal("embedded broker: cannot start cluster"));
  impl->bootstraps = rd_kafka_mock_cluster_bootstraps(impl->cluster);
  impl->brokers = brokers;
  const int replication = brokers;
  for (const auto& topic : topics) {
    if (auto err =
            rd_kafka_mock_topic_create(impl->cluster, topic.c_str(), partitions, replication);
        err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return fail(Error::internal("embedded broker: cannot create topic " + topic + ": " +
                                  rd_kafka_err2str(err)));
    }
  }
  return std::unique_ptr<EmbeddedBroker>(new EmbeddedBroker(std::move(impl)));
}

EmbeddedBroker::EmbeddedBroker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EmbeddedBroker::~EmbeddedBroker() = default;

const std::string& EmbeddedBroker::bootstrap_servers() const {
  return impl_->bootstraps;
}
int EmbeddedBroker::broker_count() const {
  return impl_->brokers;
}

Result<void> EmbeddedBroker::set_broker_down(int broker_id) {
  if (auto err = rd_kafka_mock_broker_set_down(impl_->cluster, broker_id); err) {
    return fail(Error::invalid(std::string("broker down: ") + rd_kafka_err2str(err)));
  }
  return {};
}

Result<void> EmbeddedBroker::set_broker_up(int broker_id) {
  if (auto err = rd_kafka_mock_broker_set_up(impl_->cluster, broker_id); err) {
    return fail(Error::invalid(std::string("broker up: ") + rd_kafka_err2str(err)));
  }
  return {};
}

void EmbeddedBroker::push_request_errors(int api_key, int count, int error_code) {
  std::vector<rd_kafka_resp_err_t> errors(static_cast<std::size_t>(count),
                                          static_cast<rd_kafka_resp_err_t>(error_code));
  rd_kafka_mock_push_request_errors_array(impl_->cluster, static_cast<int16_t>(api_key),
                                          errors.size(), errors.data());
}

Result<void> EmbeddedBroker::create_topic(const std::string& topic, int partitions) {
  if (auto err =
          rd_kafka_mock_topic_create(impl_->cluster, topic.c_str(), partitions, impl_->brokers);
      err) {
    return fail(Error::invalid(std::string("create topic: ") + rd_kafka_err2str(err)));
  }
  return {};
}

}  // namespace sdoh::kafka
