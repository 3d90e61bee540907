// adapters/kafka/update_consumer.cpp against the embedded Kafka-protocol broker: records reach
// the handler in order, offsets are committed only after the handler stored them, kRetry hands
// the same record over again.
#include "adapters/kafka/update_consumer.hpp"

#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include "adapters/kafka/embedded_broker.hpp"

namespace sdoh::kafka {
namespace {

using namespace std::chrono_literals;

void produce(const std::string& bootstrap, const std::string& topic, int from, int to) {
  char err[512];
  auto* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
  auto* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  for (int i = from; i < to; ++i) {
    const auto value = "update-" + std::to_string(i);
    rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(0),
                      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                      RD_KAFKA_V_KEY("r1", 2), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                      RD_KAFKA_V_END);
  }
  rd_kafka_flush(rk, 10000);
  rd_kafka_destroy(rk);
}

class UpdateConsumerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = std::move(*EmbeddedBroker::start(1, {topic_}, 1));
    cfg_.properties["session.timeout.ms"] = {"6000", {}};
    cfg_.properties["heartbeat.interval.ms"] = {"500", {}};
    cfg_.properties["topic.metadata.refresh.interval.ms"] = {"500", {}};
  }

  // Runs a consumer until `want` records were handled (or 20 s); returns what it saw.
  // A consumer that joins after another left may wait for the group to rebalance (longer on a
  // loaded machine): `timeout` bounds the wait.
  std::vector<std::string> consume(int want, std::function<UpdateDisposition(int)> decide,
                                   bool healthy = true, std::chrono::seconds timeout = 60s) {
    std::mutex m;
    std::vector<std::string> seen;
    metrics::Registry registry;
    int calls = 0;
    auto consumer = UpdateConsumer::create(
        cfg_, broker_->bootstrap_servers(), "gateway-test", topic_,
        [&](const UpdateRecord& r) {
          std::lock_guard lock(m);
          EXPECT_EQ(r.key, "r1");
          seen.push_back(r.value);
          return decide(calls++);
        },
        registry);
    EXPECT_TRUE(consumer) << consumer.error().message;
    (*consumer)->start();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard lock(m);
        if (static_cast<int>(seen.size()) >= want) break;
      }
      std::this_thread::sleep_for(20ms);
    }
    // The consumer reports a retry just after the handler returns: give it a moment.
    const auto settle = std::chrono::steady_clock::now() + 5s;
    while ((*consumer)->health().ok != healthy && std::chrono::steady_clock::now() < settle)
      std::this_thread::sleep_for(10ms);
    EXPECT_EQ((*consumer)->health().ok, healthy) << (*consumer)->health().detail;
    (*consumer)->stop();
    return seen;
  }

  std::string topic_ = "sdoh.referral-updates.v1";
  config::KafkaConfig cfg_;
  std::unique_ptr<EmbeddedBroker> broker_;
};

TEST_F(UpdateConsumerTest, HandlesInOrderAndResumesAfterTheLastCommitted) {
  produce(broker_->bootstrap_servers(), topic_, 0, 5);
  auto first = consume(3, [](int) { return UpdateDisposition::kCommitted; });
  ASSERT_GE(first.size(), 3u);
  EXPECT_EQ(first[0], "update-0");
  EXPECT_EQ(first[1], "update-1");
  EXPECT_EQ(first[2], "update-2");
  // A new consumer of the group starts right after the last record handled and committed.
  const auto handled = first.size();
  produce(broker_->bootstrap_servers(), topic_, 5, 6);
  auto second =
      consume(static_cast<int>(6 - handled), [](int) { return UpdateDisposition::kDeadLettered; });
  ASSERT_FALSE(second.empty());
  EXPECT_EQ(second.front(), "update-" + std::to_string(handled));
  EXPECT_EQ(second.back(), "update-5");
}

TEST_F(UpdateConsumerTest, RetryHandsTheSameRecordAgainBeforeTheNext) {
  produce(broker_->bootstrap_servers(), topic_, 0, 2);
  auto seen = consume(4, [](int call) {
    return call < 2 ? UpdateDisposition::kRetry : UpdateDisposition::kCommitted;
  });
  ASSERT_GE(seen.size(), 4u);
  EXPECT_EQ(seen[0], "update-0");
  EXPECT_EQ(seen[1], "update-0");
  EXPECT_EQ(seen[2], "update-0");
  EXPECT_EQ(seen[3], "update-1");
}

TEST_F(UpdateConsumerTest, AnUncommittedRecordIsReadAgainByTheNextConsumer) {
  produce(broker_->bootstrap_servers(), topic_, 0, 2);
  // The first consumer stops while its record still waits to be stored.
  auto first = consume(
      1, [](int) { return UpdateDisposition::kRetry; }, false);
  ASSERT_FALSE(first.empty());
  auto second = consume(2, [](int) { return UpdateDisposition::kCommitted; });
  ASSERT_GE(second.size(), 2u);
  EXPECT_EQ(second[0], "update-0");
  EXPECT_EQ(second[1], "update-1");
}

}  // namespace
}  // namespace sdoh::kafka
