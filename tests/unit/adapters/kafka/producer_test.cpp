#include "adapters/kafka/producer.hpp"

#include <chrono>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "adapters/kafka/embedded_broker.hpp"

namespace sdoh::kafka {
namespace {

using namespace std::chrono_literals;

config::KafkaConfig test_config() {
  config::KafkaConfig cfg;
  cfg.metadata_interval = std::chrono::milliseconds(200);
  cfg.metadata_timeout = std::chrono::milliseconds(500);
  cfg.flush_timeout = std::chrono::milliseconds(2000);
  return cfg;
}

ops::CheckState wait_for_health(const Producer& p, bool want, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  auto state = p.health();
  while (state.ok != want && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    state = p.health();
  }
  return state;
}

TEST(EmbeddedBroker, CreatesTheConfiguredTopics) {
  auto cfg = test_config();
  auto broker = EmbeddedBroker::start(1, cfg.topics.all(), 2);
  ASSERT_TRUE(broker) << broker.error().message;
  EXPECT_NE((*broker)->bootstrap_servers().find("127.0.0.1:"), std::string::npos);
  metrics::Registry registry;
  auto producer = Producer::create(cfg, (*broker)->bootstrap_servers(), {}, registry);
  ASSERT_TRUE(producer) << producer.error().message;
  auto state = wait_for_health(**producer, true, 5s);
  EXPECT_TRUE(state.ok) << state.detail;
  EXPECT_EQ(state.detail, "1 broker(s), 6 topics present");  // kafka.topics, the audit anchors too
}

TEST(Producer, DeliveryReportArrivesWithOffset) {
  auto cfg = test_config();
  auto broker = EmbeddedBroker::start(1, cfg.topics.all(), 1);
  ASSERT_TRUE(broker);
  metrics::Registry registry;
  auto producer = Producer::create(cfg, (*broker)->bootstrap_servers(), {}, registry);
  ASSERT_TRUE(producer);
  std::promise<DeliveryReport> reported;
  auto r = (*producer)->produce(
      {cfg.topics.screening, "key-1", "{}", {{"content-type", "application/cloudevents+json"}}},
      [&reported](const DeliveryReport& d) { reported.set_value(d); });
  ASSERT_TRUE(r) << r.error().message;
  auto future = reported.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  const auto report = future.get();
  EXPECT_EQ(report.outcome, Delivery::kDelivered) << report.error;
  EXPECT_EQ(report.partition, 0);
  EXPECT_EQ(report.offset, 0);
  EXPECT_EQ((*producer)->in_flight(), 0u);
  EXPECT_NE(registry.render().find("sdoh_kafka_messages_delivered_total 1\n"), std::string::npos);
}

TEST(Producer, HealthTurnsFalseWhenTheBrokerIsDown) {
  auto cfg = test_config();
  auto broker = EmbeddedBroker::start(1, cfg.topics.all(), 1);
  ASSERT_TRUE(broker);
  metrics::Registry registry;
  auto producer = Producer::create(cfg, (*broker)->bootstrap_servers(), {}, registry);
  ASSERT_TRUE(producer);
  ASSERT_TRUE(wait_for_health(**producer, true, 5s).ok);
  ASSERT_TRUE((*broker)->set_broker_down(1));
  EXPECT_FALSE(wait_for_health(**producer, false, 10s).ok);
  ASSERT_TRUE((*broker)->set_broker_up(1));
  EXPECT_TRUE(wait_for_health(**producer, true, 10s).ok);
}

TEST(Producer, MissingTopicMakesItNotReady) {
  auto cfg = test_config();
  auto broker = EmbeddedBroker::start(1, {cfg.topics.screening}, 1);
  ASSERT_TRUE(broker);
  metrics::Registry registry;
  auto producer = Producer::create(cfg, (*broker)->bootstrap_servers(), {}, registry);
  ASSERT_TRUE(producer);
  // Not ready from the start ("no metadata yet"): wait, with a deadline, for the verdict that
  // comes from the broker's metadata, which must name the topics that are missing.
  auto state = (*producer)->health();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (state.detail.find("missing topics") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    state = (*producer)->health();
  }
  EXPECT_FALSE(state.ok);
  EXPECT_NE(state.detail.find("missing topics: sdoh.referral.v1"), std::string::npos)
      << state.detail;
}

TEST(Producer, ValidateRejectsUnknownProperty) {
  auto cfg = test_config();
  cfg.properties["no.such.property"] = {"1", {}};
  auto r = Producer::validate(cfg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().where.expression, "kafka.properties.no.such.property");
}

TEST(Producer, ValidateRejectsUnresolvableSecret) {
  auto cfg = test_config();
  config::KafkaProperty prop;
  prop.secret = {config::SecretRef::Source::kEnv, "SDOH_TEST_UNSET_KAFKA_PASSWORD"};
  cfg.properties["sasl.password"] = prop;
  auto r = Producer::validate(cfg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().where.expression, "kafka.properties.sasl.password");
}

}  // namespace
}  // namespace sdoh::kafka
