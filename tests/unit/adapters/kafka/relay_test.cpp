#include "adapters/kafka/relay.hpp"

#include <filesystem>
#include <map>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include "adapters/kafka/embedded_broker.hpp"
#include "adapters/store/sql_store.hpp"

namespace sdoh::kafka {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

// Every message of `topic` (all partitions, from the beginning): ce_id header → count.
std::map<std::string, int> read_all(const std::string& bootstrap, const std::string& topic,
                                    int partitions) {
  char err[512];
  auto* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", "relay-test", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err);
  auto* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  auto* parts = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, parts);
  std::map<std::string, int> seen;
  int eofs = 0;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (eofs < partitions && std::chrono::steady_clock::now() < deadline) {
    auto* msg = rd_kafka_consumer_poll(rk, 200);
    if (msg == nullptr) continue;
    if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      ++eofs;
    } else if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_headers_t* headers = nullptr;
      const void* value = nullptr;
      size_t size = 0;
      if (rd_kafka_message_headers(msg, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          rd_kafka_header_get_last(headers, "ce_id", &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ++seen[std::string(static_cast<const char*>(value), size)];
      }
    }
    rd_kafka_message_destroy(msg);
  }
  rd_kafka_topic_partition_list_destroy(parts);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return seen;
}

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sdoh_relay_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    cfg_.metadata_interval = 200ms;
    cfg_.metadata_timeout = 500ms;
    cfg_.flush_timeout = 1000ms;
    broker_ = std::move(*EmbeddedBroker::start(1, cfg_.topics.all(), 2));
    store_ = std::move(*store::SqlStore::open(dir_ / "gateway.db", {}, &registry_));
    producer_ = std::move(*Producer::create(cfg_, broker_->bootstrap_servers(), {}, registry_));
  }
  void TearDown() override {
    relay_.reset();
    producer_.reset();
    store_.reset();
    broker_.reset();
    std::filesystem::remove_all(dir_);
  }

  void commit(int n, int from = 0) {
    asio::io_context ioc;
    for (int i = from; i < from + n; ++i) {
      pipeline::CommitRequest r;
      r.inbound = {"hl7v2", "EHR^A", "M" + std::to_string(i), "ORU^R01", "AA", "ack", ""};
      r.events.push_back({"ev-" + std::to_string(i), "org.sdoh.screening.v1", cfg_.topics.screening,
                          "patient-" + std::to_string(i % 7), "{\"i\":" + std::to_string(i) + "}"});
      asio::co_spawn(ioc, store_->commit(std::move(r)), asio::use_future);
    }
    ioc.run();
  }

  // A sample's value from the registry's exposition ("name" or "name{labels}"); -1 when absent.
  double metric(const std::string& sample) {
    const auto text = registry_.render();
    const auto at = text.find("\n" + sample + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + sample.size() + 2));
  }

  std::filesystem::path dir_;
  config::KafkaConfig cfg_;
  metrics::Registry registry_;
  std::unique_ptr<EmbeddedBroker> broker_;
  std::unique_ptr<store::SqlStore> store_;
  std::unique_ptr<Producer> producer_;
  std::unique_ptr<Relay> relay_;
};

TEST_F(RelayTest, PublishesEveryCommittedEventExactlyOnceAndMarksItDelivered) {
  commit(200);
  relay_ = std::make_unique<Relay>(*store_, *producer_, RelayOptions{}, registry_);
  relay_->start();
  ASSERT_TRUE(relay_->drain(20s)) << store_->stats().undelivered << " still undelivered";
  auto seen = read_all(broker_->bootstrap_servers(), cfg_.topics.screening, 2);
  EXPECT_EQ(seen.size(), 200u);
  for (const auto& [id, count] : seen)
    EXPECT_EQ(count, 1) << id;
  EXPECT_EQ(store_->stats().undelivered, 0);
  EXPECT_NE(registry_.render().find("sdoh_relay_events_total{outcome=\"delivered\"} 200"),
            std::string::npos);
}

TEST_F(RelayTest, ResumesAfterARestartFromTheFirstUndeliveredEvent) {
  commit(50);
  relay_ = std::make_unique<Relay>(*store_, *producer_, RelayOptions{}, registry_);
  relay_->start();
  ASSERT_TRUE(relay_->drain(20s));
  relay_.reset();
  commit(30, 50);  // committed while no relay runs
  EXPECT_EQ(store_->stats().undelivered, 30);
  metrics::Registry second_registry;  // a restarted process has fresh metrics
  relay_ = std::make_unique<Relay>(*store_, *producer_, RelayOptions{}, second_registry);
  relay_->start();
  ASSERT_TRUE(relay_->drain(20s));
  auto seen = read_all(broker_->bootstrap_servers(), cfg_.topics.screening, 2);
  EXPECT_EQ(seen.size(), 80u);
  for (const auto& [id, count] : seen)
    EXPECT_EQ(count, 1) << id;
}

TEST_F(RelayTest, BrokerOutageDelaysButLosesNothing) {
  relay_ = std::make_unique<Relay>(*store_, *producer_, RelayOptions{}, registry_);
  relay_->start();
  commit(20);
  ASSERT_TRUE(relay_->drain(20s));
  ASSERT_TRUE(broker_->set_broker_down(1));
  commit(40, 20);
  // Once the relay has handed all 40 to the producer, none of them may count as delivered
  // while the broker is down.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (metric("sdoh_kafka_messages_produced_total") < 60 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(metric("sdoh_kafka_messages_produced_total"), 60);
  EXPECT_EQ(store_->stats().undelivered, 40) << "nothing can be delivered while the broker is down";
  EXPECT_EQ(metric("sdoh_relay_events_total{outcome=\"delivered\"}"), 20);
  ASSERT_TRUE(broker_->set_broker_up(1));
  ASSERT_TRUE(relay_->drain(60s)) << store_->stats().undelivered << " still undelivered";
  auto seen = read_all(broker_->bootstrap_servers(), cfg_.topics.screening, 2);
  EXPECT_EQ(seen.size(), 60u);
  for (const auto& [id, count] : seen)
    EXPECT_EQ(count, 1) << id;
}

TEST_F(RelayTest, DuringAnOutageHoldsAtMostMaxInFlightEventsInTheProducer) {
  RelayOptions options;
  options.max_in_flight = 30;
  relay_ = std::make_unique<Relay>(*store_, *producer_, options, registry_);
  relay_->start();
  ASSERT_TRUE(broker_->set_broker_down(1));
  commit(100);
  // The relay produces in rounds of up to `batch` (500) events: without the bound its first round
  // would hand all 100 to the producer at once.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (metric("sdoh_kafka_messages_produced_total") < 30 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  // Several rounds later (idle polls and gathers), still no more than the bound.
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(metric("sdoh_kafka_messages_produced_total"), 30);
  EXPECT_EQ(metric("sdoh_kafka_messages_in_flight"), 30);
  EXPECT_EQ(store_->stats().undelivered, 100);
  ASSERT_TRUE(broker_->set_broker_up(1));
  ASSERT_TRUE(relay_->drain(60s)) << store_->stats().undelivered << " still undelivered";
  EXPECT_EQ(metric("sdoh_kafka_messages_produced_total"), 100) << "each produced once";
  auto seen = read_all(broker_->bootstrap_servers(), cfg_.topics.screening, 2);
  EXPECT_EQ(seen.size(), 100u);
  for (const auto& [id, count] : seen)
    EXPECT_EQ(count, 1) << id;
}

}  // namespace
}  // namespace sdoh::kafka
