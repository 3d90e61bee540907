// adapters/kafka/update_consumer.cpp against the embedded Kafka-protocol broker (librdkafka's
// mock cluster, whose group coordinator serves JoinGroup/SyncGroup/Heartbeat/LeaveGroup and
// OffsetCommit/OffsetFetch): records reach the handler in order, an offset is committed only
// after the handler answered, kRetry hands the same record over again, a new member of the
// group starts at the first record not handled.
//
// Timing (librdkafka 2.0's mock coordinator, rdkafka_mock_cgrp.c): a group's first join waits a
// fixed 3 s, and a member whose session times out meanwhile is dropped with its JoinGroup never
// answered, so session.timeout.ms must exceed 3 s (checked every second). A leave or a join to a
// running group waits session.timeout.ms - 1 s. With 4 s each test takes at most about 8 s.
#include "adapters/kafka/update_consumer.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include "adapters/kafka/embedded_broker.hpp"
#include "gateway/log/log.hpp"

namespace sdoh::kafka {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kTopic = "sdoh.referral-updates.v1";
const std::string kGroup = "gateway-test";
constexpr std::int64_t kNoOffset = -1001;  // RD_KAFKA_OFFSET_INVALID: the group committed nothing

// Sends `values` to one partition of `topic` with key "r1" and a content-type header, and waits
// for them.
void produce_to(const std::string& bootstrap, const std::string& topic, int partition,
                const std::vector<std::string>& values) {
  char err[512];
  auto* conf = rd_kafka_conf_new();
  ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err),
            RD_KAFKA_CONF_OK);
  auto* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ASSERT_NE(rk, nullptr) << err;
  for (const auto& value : values) {
    ASSERT_EQ(
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                          RD_KAFKA_V_KEY("r1", 2), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADER("content-type", "application/cloudevents+json", -1),
                          RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  EXPECT_EQ(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
}

void produce(const std::string& bootstrap, int partition, const std::vector<std::string>& values) {
  produce_to(bootstrap, kTopic, partition, values);
}

// The group's committed offset of kTopic[partition], read from outside the group.
std::int64_t committed_offset(const std::string& bootstrap, int partition) {
  char err[512];
  auto* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", kGroup.c_str(), err, sizeof err);
  auto* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) return -2;
  auto* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, kTopic.c_str(), partition);
  std::int64_t offset = -2;
  if (rd_kafka_committed(rk, list, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      list->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    offset = list->elems[0].offset;
  }
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return offset;
}

template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// What the handler was given, and when; answers with `decide(record, call number)`.
class Recorder {
 public:
  using Decide = std::function<UpdateDisposition(const UpdateRecord&, int)>;

  UpdateHandler handler(Decide decide) {
    return [this, decide = std::move(decide)](const UpdateRecord& r) {
      int call = 0;
      {
        std::lock_guard lock(mutex_);
        call = static_cast<int>(seen_.size());
        seen_.push_back(r);
        times_.push_back(Clock::now());
      }
      changed_.notify_all();
      return decide(r, call);
    };
  }

  bool wait_for(std::size_t count, std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [&] { return seen_.size() >= count; });
  }

  std::vector<std::string> values() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& r : seen_)
      out.push_back(r.value);
    return out;
  }
  std::vector<UpdateRecord> records() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  std::vector<Clock::time_point> times() const {
    std::lock_guard lock(mutex_);
    return times_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<UpdateRecord> seen_;
  std::vector<Clock::time_point> times_;
};

UpdateDisposition commit_all(const UpdateRecord&, int) {
  return UpdateDisposition::kCommitted;
}

class UpdateConsumerTest : public ::testing::Test {
 protected:
  void SetUp() override { start_broker(1); }

  void start_broker(int partitions) {
    auto broker = EmbeddedBroker::start(1, {kTopic}, partitions);
    ASSERT_TRUE(broker) << broker.error().message;
    broker_ = std::move(*broker);
    cfg_.properties["session.timeout.ms"] = {"4000", {}};
    cfg_.properties["heartbeat.interval.ms"] = {"250", {}};
    cfg_.properties["reconnect.backoff.max.ms"] = {"500", {}};
    // SDOH_KAFKA_DEBUG=cgrp,consumer: librdkafka's debug log of the consumers under test.
    if (const char* debug = std::getenv("SDOH_KAFKA_DEBUG"); debug != nullptr) {
      cfg_.properties["debug"] = {debug, {}};
      cfg_.properties["log_level"] = {"7", {}};
      log::init(log::Level::kDebug);
    }
  }

  std::unique_ptr<UpdateConsumer> start_consumer(UpdateHandler handler,
                                                 metrics::Registry& registry) {
    auto consumer = UpdateConsumer::create(cfg_, broker_->bootstrap_servers(), kGroup, {kTopic},
                                           std::move(handler), registry);
    EXPECT_TRUE(consumer) << consumer.error().message;
    if (!consumer) return nullptr;
    (*consumer)->start();
    return std::move(*consumer);
  }

  std::string bootstrap() const { return broker_->bootstrap_servers(); }

  config::KafkaConfig cfg_;
  std::unique_ptr<EmbeddedBroker> broker_;
  metrics::Registry registry_;
};

TEST_F(UpdateConsumerTest, HandsRecordsOverInOrderWithKeyHeadersAndPosition) {
  produce(bootstrap(), 0, {"update-0", "update-1", "update-2"});
  Recorder seen;
  auto consumer = start_consumer(seen.handler(commit_all), registry_);
  ASSERT_TRUE(seen.wait_for(3, 8s));
  const auto records = seen.records();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(records[i].value, "update-" + std::to_string(i));
    EXPECT_EQ(records[i].offset, i);
    EXPECT_EQ(records[i].partition, 0);
    EXPECT_EQ(records[i].topic, "sdoh.referral-updates.v1");
    EXPECT_EQ(records[i].key, "r1");
    ASSERT_EQ(records[i].headers.size(), 1u);
    EXPECT_EQ(records[i].headers[0].first, "content-type");
    EXPECT_EQ(records[i].headers[0].second, "application/cloudevents+json");
  }
  consumer->stop();
  EXPECT_NE(registry_.render().find("sdoh_kafka_updates_total{outcome=\"committed\"} 3\n"),
            std::string::npos)
      << registry_.render();
}

// Each agency has its update topic; a record held for a retry on one topic holds back nothing of
// another topic's partition with the same number.
TEST(UpdateConsumerTopics, ARetryOnOneTopicDoesNotHoldBackAnotherTopicsPartition) {
  const std::string agency_topic = "sdoh.referral-updates.ehv-durham";
  auto broker = EmbeddedBroker::start(1, {kTopic, agency_topic}, 1);
  ASSERT_TRUE(broker) << broker.error().message;
  const auto bootstrap = (*broker)->bootstrap_servers();
  produce_to(bootstrap, kTopic, 0, {"shared-0"});
  produce_to(bootstrap, agency_topic, 0, {"agency-0", "agency-1"});
  std::atomic<bool> store_back{false};
  Recorder seen;
  metrics::Registry registry;
  config::KafkaConfig cfg;
  auto consumer = UpdateConsumer::create(
      cfg, bootstrap, kGroup, {kTopic, agency_topic}, seen.handler([&](const UpdateRecord& r, int) {
        return r.topic == kTopic && !store_back ? UpdateDisposition::kRetry
                                                : UpdateDisposition::kCommitted;
      }),
      registry);
  ASSERT_TRUE(consumer) << consumer.error().message;
  (*consumer)->start();
  auto handled = [&](const std::string& value) {
    const auto values = seen.values();
    return std::count(values.begin(), values.end(), value);
  };
  // The shared topic's record waits for the store; the agency's records go through meanwhile.
  EXPECT_TRUE(eventually([&] { return handled("agency-1") == 1 && handled("shared-0") >= 2; }, 10s))
      << ::testing::PrintToString(seen.values());
  EXPECT_EQ(handled("agency-0"), 1);
  EXPECT_TRUE(contains((*consumer)->health().detail, "retrying sdoh.referral-updates.v1[0]@0"))
      << (*consumer)->health().detail;
  store_back = true;
  EXPECT_TRUE(eventually([&] { return (*consumer)->health().ok; }, 10s))
      << (*consumer)->health().detail;
  (*consumer)->stop();
  EXPECT_EQ(handled("agency-0"), 1);
  EXPECT_EQ(handled("agency-1"), 1);
  EXPECT_NE(registry.render().find("sdoh_kafka_updates_total{outcome=\"committed\"} 3\n"),
            std::string::npos)
      << registry.render();
}

TEST_F(UpdateConsumerTest, HealthNamesTheGroupAndItsAssignmentOnceJoined) {
  Recorder seen;
  auto consumer = UpdateConsumer::create(cfg_, bootstrap(), kGroup, {kTopic},
                                         seen.handler(commit_all), registry_);
  ASSERT_TRUE(consumer);
  EXPECT_FALSE((*consumer)->health().ok);
  EXPECT_EQ((*consumer)->health().detail, "not started");
  (*consumer)->start();
  const std::string joined =
      "group gateway-test on sdoh.referral-updates.v1: 1 partition(s) assigned";
  EXPECT_TRUE(eventually([&] { return (*consumer)->health().detail == joined; }, 8s))
      << (*consumer)->health().detail;
  EXPECT_TRUE((*consumer)->health().ok);
  (*consumer)->stop();
  EXPECT_FALSE((*consumer)->health().ok);
  EXPECT_EQ((*consumer)->health().detail, "stopped");
}

TEST_F(UpdateConsumerTest, CommitsAnOffsetOnlyAfterTheHandlerReturns) {
  produce(bootstrap(), 0, {"update-0"});
  std::mutex m;
  std::condition_variable cv;
  bool entered = false, release = false;
  auto consumer = start_consumer(
      [&](const UpdateRecord&) {
        std::unique_lock lock(m);
        entered = true;
        cv.notify_all();
        cv.wait(lock, [&] { return release; });
        return UpdateDisposition::kCommitted;
      },
      registry_);
  {
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 8s, [&] { return entered; }));
  }
  // The handler is still storing the update: the group has committed nothing.
  EXPECT_EQ(committed_offset(bootstrap(), 0), kNoOffset);
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  EXPECT_TRUE(eventually([&] { return committed_offset(bootstrap(), 0) == 1; }, 5s));
  consumer->stop();
}

TEST_F(UpdateConsumerTest, ANewConsumerOfTheGroupStartsAtTheFirstUnhandledRecord) {
  produce(bootstrap(), 0, {"update-0", "update-1", "update-2", "update-3", "update-4"});
  Recorder first;
  // Three are stored; the store cannot take the fourth.
  auto consumer = start_consumer(first.handler([](const UpdateRecord& r, int) {
    return r.offset < 3 ? UpdateDisposition::kCommitted : UpdateDisposition::kRetry;
  }),
                                 registry_);
  ASSERT_TRUE(first.wait_for(4, 8s));
  consumer->stop();
  EXPECT_EQ(committed_offset(bootstrap(), 0), 3);

  Recorder second;
  metrics::Registry second_registry;
  auto next = start_consumer(second.handler(commit_all), second_registry);
  ASSERT_TRUE(second.wait_for(2, 8s));
  next->stop();
  // Not before (update-2 was stored), not after (update-3 was not).
  EXPECT_EQ(second.values(), (std::vector<std::string>{"update-3", "update-4"}));
}

TEST_F(UpdateConsumerTest, RetryHandsTheSameRecordAgainAfterAGrowingBackoffThenTheNext) {
  produce(bootstrap(), 0, {"update-0", "update-1"});
  Recorder seen;
  auto consumer = start_consumer(seen.handler([](const UpdateRecord&, int call) {
    return call < 3 ? UpdateDisposition::kRetry : UpdateDisposition::kCommitted;
  }),
                                 registry_);
  ASSERT_TRUE(seen.wait_for(5, 10s));
  consumer->stop();
  EXPECT_EQ(seen.values(),
            (std::vector<std::string>{"update-0", "update-0", "update-0", "update-0", "update-1"}));
  const auto t = seen.times();
  // 100 ms, then 200 ms, then 400 ms (a little early is the clock's, not the consumer's).
  EXPECT_GE(t[1] - t[0], 90ms);
  EXPECT_GE(t[2] - t[1], 190ms);
  EXPECT_GE(t[3] - t[2], 390ms);
  const auto metrics = registry_.render();
  EXPECT_TRUE(contains(metrics, "sdoh_kafka_updates_total{outcome=\"retry\"} 3\n")) << metrics;
  EXPECT_TRUE(contains(metrics, "sdoh_kafka_updates_total{outcome=\"committed\"} 2\n")) << metrics;
  EXPECT_EQ(committed_offset(bootstrap(), 0), 2);
}

TEST_F(UpdateConsumerTest, HealthNamesTheRecordWaitingForTheStore) {
  produce(bootstrap(), 0, {"update-0"});
  Recorder seen;
  auto consumer = start_consumer(
      seen.handler([](const UpdateRecord&, int) { return UpdateDisposition::kRetry; }), registry_);
  ASSERT_TRUE(seen.wait_for(2, 8s));
  const auto health = consumer->health();
  EXPECT_FALSE(health.ok);
  EXPECT_EQ(health.detail,
            "the store cannot take updates now; retrying sdoh.referral-updates.v1[0]@0");
  consumer->stop();
}

TEST_F(UpdateConsumerTest, DeadLetteredRecordsAreCommittedToo) {
  produce(bootstrap(), 0, {"update-0", "update-1"});
  Recorder seen;
  auto consumer = start_consumer(
      seen.handler([](const UpdateRecord&, int) { return UpdateDisposition::kDeadLettered; }),
      registry_);
  ASSERT_TRUE(seen.wait_for(2, 8s));
  EXPECT_TRUE(eventually([&] { return committed_offset(bootstrap(), 0) == 2; }, 5s));
  consumer->stop();
  EXPECT_TRUE(
      contains(registry_.render(), "sdoh_kafka_updates_total{outcome=\"dead_lettered\"} 2\n"));
}

TEST_F(UpdateConsumerTest, StopDuringARetryReturnsPromptlyAndCommitsNothing) {
  produce(bootstrap(), 0, {"update-0"});
  Recorder seen;
  auto consumer = start_consumer(
      seen.handler([](const UpdateRecord&, int) { return UpdateDisposition::kRetry; }), registry_);
  // After the fifth attempt the consumer waits 1.6 s before the sixth.
  ASSERT_TRUE(seen.wait_for(5, 10s));
  const auto before = Clock::now();
  consumer->stop();
  EXPECT_LT(Clock::now() - before, 1s);
  EXPECT_EQ(seen.values().size(), 5u);
  EXPECT_EQ(committed_offset(bootstrap(), 0), kNoOffset);
}

TEST_F(UpdateConsumerTest, ReportsTheLagOfRecordsNotYetCommitted) {
  produce(bootstrap(), 0, {"update-0", "update-1", "update-2", "update-3", "update-4"});
  Recorder seen;
  auto consumer = start_consumer(seen.handler([](const UpdateRecord& r, int) {
    return r.offset < 2 ? UpdateDisposition::kCommitted : UpdateDisposition::kRetry;
  }),
                                 registry_);
  ASSERT_TRUE(seen.wait_for(3, 8s));
  EXPECT_TRUE(
      eventually([&] { return contains(registry_.render(), "\nsdoh_kafka_updates_lag 3\n"); }, 5s))
      << registry_.render();
  consumer->stop();
}

TEST_F(UpdateConsumerTest, ABrokerOutageMakesItUnhealthyUntilTheBrokerReturns) {
  Recorder seen;
  auto consumer = start_consumer(seen.handler(commit_all), registry_);
  ASSERT_TRUE(eventually([&] { return consumer->health().ok; }, 8s)) << consumer->health().detail;
  ASSERT_TRUE(broker_->set_broker_down(1));
  EXPECT_TRUE(eventually([&] { return !consumer->health().ok; }, 5s));
  EXPECT_TRUE(contains(consumer->health().detail, "Kafka: ")) << consumer->health().detail;
  ASSERT_TRUE(broker_->set_broker_up(1));
  EXPECT_TRUE(eventually([&] { return consumer->health().ok; }, 8s)) << consumer->health().detail;
  consumer->stop();
}

TEST_F(UpdateConsumerTest, ARebalanceHandsPartitionsOverAtTheirFirstUnhandledRecord) {
  start_broker(2);
  Recorder a_seen, b_seen;
  auto a = start_consumer(a_seen.handler(commit_all), registry_);
  produce(bootstrap(), 0, {"p0-0", "p0-1", "p0-2"});
  produce(bootstrap(), 1, {"p1-0", "p1-1", "p1-2"});
  ASSERT_TRUE(a_seen.wait_for(6, 8s));

  metrics::Registry b_registry;
  auto b = start_consumer(b_seen.handler(commit_all), b_registry);
  const auto one_each = [&] {
    return contains(a->health().detail, ": 1 partition(s) assigned") &&
           contains(b->health().detail, ": 1 partition(s) assigned");
  };
  ASSERT_TRUE(eventually(one_each, 8s)) << a->health().detail << " / " << b->health().detail;
  produce(bootstrap(), 0, {"p0-3", "p0-4"});
  produce(bootstrap(), 1, {"p1-3", "p1-4"});
  ASSERT_TRUE(
      eventually([&] { return a_seen.values().size() + b_seen.values().size() >= 10; }, 8s));
  a->stop();
  b->stop();
  // Each record once: the handed-over partition starts right after what A handled.
  std::map<std::string, int> count;
  for (const auto& v : a_seen.values())
    ++count[v];
  for (const auto& v : b_seen.values())
    ++count[v];
  for (const auto* v :
       {"p0-0", "p0-1", "p0-2", "p0-3", "p0-4", "p1-0", "p1-1", "p1-2", "p1-3", "p1-4"}) {
    EXPECT_EQ(count[v], 1) << v;
  }
  EXPECT_EQ(b_seen.values().size(), 2u);
}

TEST(UpdateConsumer, AnUnreachableBootstrapIsUnhealthyAndStopsCleanly) {
  config::KafkaConfig cfg;
  metrics::Registry registry;
  std::atomic<bool> called{false};
  // Nothing listens on port 1: every connection is refused.
  auto consumer = UpdateConsumer::create(
      cfg, "127.0.0.1:1", kGroup, {kTopic},
      [&](const UpdateRecord&) {
        called = true;
        return UpdateDisposition::kCommitted;
      },
      registry);
  ASSERT_TRUE(consumer) << consumer.error().message;
  (*consumer)->start();
  EXPECT_TRUE(eventually([&] { return contains((*consumer)->health().detail, "Kafka: "); }, 5s))
      << (*consumer)->health().detail;
  EXPECT_FALSE((*consumer)->health().ok);
  const auto before = Clock::now();
  (*consumer)->stop();
  EXPECT_LT(Clock::now() - before, 2s);
  EXPECT_FALSE(called);
}

TEST(UpdateConsumer, SecuritySettingsInKafkaPropertiesApplyToTheConsumer) {
  config::KafkaConfig cfg;
  cfg.properties["security.protocol"] = {"ssl", {}};
  cfg.properties["ssl.ca.location"] = {"/nonexistent/kafka-ca.crt", {}};
  metrics::Registry registry;
  auto consumer = UpdateConsumer::create(
      cfg, "127.0.0.1:9092", kGroup, {kTopic},
      [](const UpdateRecord&) { return UpdateDisposition::kCommitted; }, registry);
  ASSERT_FALSE(consumer);
  EXPECT_EQ(consumer.error().kind, ErrorKind::kConfig);
  EXPECT_TRUE(contains(consumer.error().message, "ssl.ca.location")) << consumer.error().message;
}

TEST(UpdateConsumer, KafkaPropertiesCannotLoosenTheDeliveryPromise) {
  for (const auto* name : {"group.id", "enable.auto.commit", "enable.auto.offset.store",
                           "auto.offset.reset", "isolation.level", "statistics.interval.ms"}) {
    config::KafkaConfig cfg;
    cfg.properties[name] = {"true", {}};
    metrics::Registry registry;
    auto consumer = UpdateConsumer::create(
        cfg, "127.0.0.1:9092", kGroup, {kTopic},
        [](const UpdateRecord&) { return UpdateDisposition::kCommitted; }, registry);
    ASSERT_FALSE(consumer) << name;
    EXPECT_EQ(consumer.error().where.expression, std::string("kafka.properties.") + name);
  }
}

TEST_F(UpdateConsumerTest, ProducerSettingsInKafkaPropertiesDoNotStopTheConsumer) {
  cfg_.properties["linger.ms"] = {"5", {}};
  cfg_.properties["compression.type"] = {"lz4", {}};
  cfg_.properties["message.max.bytes"] = {"1200", {}};
  cfg_.properties["max.in.flight.requests.per.connection"] = {"1", {}};
  produce(bootstrap(), 0, {"update-0"});
  Recorder seen;
  auto consumer = start_consumer(seen.handler(commit_all), registry_);
  ASSERT_NE(consumer, nullptr);
  EXPECT_TRUE(seen.wait_for(1, 8s));
  consumer->stop();
}

}  // namespace
}  // namespace sdoh::kafka
