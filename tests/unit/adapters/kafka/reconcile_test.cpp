// adapters/kafka/reconcile.cpp against the embedded Kafka-protocol broker (librdkafka's mock
// cluster): records are written to the topics as a relay that crashed before recording its
// deliveries would have left them (a ce_id header each), then the outbox is reconciled. Events
// found by their ce_id are marked delivered where they landed, the others stay undelivered, only
// what lies after the highest recorded offset of a partition is read, and a broker that cannot
// be reached fails with kUnavailable within the timeout. The outbox is an in-memory fake, and the
// real SqlStore in one test.
#include "adapters/kafka/reconcile.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

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
using Clock = std::chrono::steady_clock;
namespace asio = boost::asio;

// Writes one record per entry to `partition` of `topic`, in order, each acknowledged before the
// next so that on a fresh topic the n-th entry lands at offset n. An entry is the record's ce_id
// header; "" writes a record without one (someone else's record).
void produce(const std::string& bootstrap, const std::string& topic, int partition,
             const std::vector<std::string>& ce_ids) {
  char err[512];
  auto* conf = rd_kafka_conf_new();
  ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err),
            RD_KAFKA_CONF_OK);
  auto* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ASSERT_NE(rk, nullptr) << err;
  for (const auto& id : ce_ids) {
    const std::string value = "{\"id\":\"" + id + "\"}";
    rd_kafka_headers_t* headers = rd_kafka_headers_new(2);
    rd_kafka_header_add(headers, "content-type", -1, "application/cloudevents+json", -1);
    if (!id.empty())
      rd_kafka_header_add(headers, "ce_id", -1, id.data(), static_cast<ssize_t>(id.size()));
    ASSERT_EQ(
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
                          RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
    ASSERT_EQ(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  rd_kafka_destroy(rk);
}

// The outbox as reconciliation sees it: the undelivered events and recorded offsets a test sets,
// and what it is told.
class FakeOutbox : public pipeline::Outbox {
 public:
  Result<std::vector<pipeline::PendingEvent>> pending_events(std::int64_t, int) const override {
    return std::vector<pipeline::PendingEvent>{};
  }
  void mark_delivered(std::vector<pipeline::DeliveredEvent> events) override {
    marked.insert(marked.end(), events.begin(), events.end());
    ++mark_calls;
  }
  Result<void> dead_letter_event(std::int64_t, const pipeline::DeadLetterRecord&,
                                 std::optional<pipeline::OutboxEvent>) override {
    ADD_FAILURE() << "reconciliation dead-lettered an event";
    return {};
  }
  Result<pipeline::EventOrigin> event_origin(std::int64_t) const override {
    return fail(Error::not_found("no origins in this fake"));
  }
  Result<std::vector<pipeline::UndeliveredRef>> undelivered_refs() const override {
    return undelivered;
  }
  Result<pipeline::DeliveryOffsets> delivery_offsets() const override { return offsets; }
  void flush() override { ++flushes; }
  pipeline::StoreStats stats() const override { return {}; }
  ops::CheckState health() const override { return {healthy, healthy ? "" : "disk I/O error"}; }

  /// Marked delivered so far, in seq order.
  std::vector<pipeline::DeliveredEvent> marked_by_seq() const {
    auto out = marked;
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.seq < b.seq; });
    return out;
  }

  std::vector<pipeline::UndeliveredRef> undelivered;
  pipeline::DeliveryOffsets offsets;
  std::vector<pipeline::DeliveredEvent> marked;
  int mark_calls = 0;
  int flushes = 0;
  bool healthy = true;
};

void expect_delivered(const pipeline::DeliveredEvent& e, std::int64_t seq, const std::string& topic,
                      std::int32_t partition, std::int64_t offset) {
  EXPECT_EQ(e.seq, seq);
  EXPECT_EQ(e.topic, topic);
  EXPECT_EQ(e.partition, partition) << "seq " << seq;
  EXPECT_EQ(e.offset, offset) << "seq " << seq;
}

class ReconcileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = EmbeddedBroker::start(1, {kTopic, kOtherTopic}, 2);
    ASSERT_TRUE(broker) << broker.error().message;
    broker_ = std::move(*broker);
  }

  Result<ReconcileReport> reconcile(pipeline::Outbox& outbox,
                                    std::chrono::milliseconds timeout = 10s) {
    return reconcile_outbox(outbox, cfg_, broker_->bootstrap_servers(), timeout);
  }
  const std::string& bootstrap() const { return broker_->bootstrap_servers(); }

  const std::string kTopic = "sdoh.screening.v1";
  const std::string kOtherTopic = "sdoh.referral.v1";
  config::KafkaConfig cfg_;
  std::unique_ptr<EmbeddedBroker> broker_;
  FakeOutbox outbox_;
};

TEST_F(ReconcileTest, EventsAlreadyOnTheTopicAreMarkedDeliveredWhereTheyLanded) {
  produce(bootstrap(), kTopic, 0, {"", "ev-1"});
  produce(bootstrap(), kTopic, 1, {"ev-2", ""});
  outbox_.undelivered = {{1, "ev-1", kTopic}, {2, "ev-2", kTopic}};

  auto report = reconcile(outbox_);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->undelivered, 2);
  EXPECT_EQ(report->partitions, 2);
  EXPECT_EQ(report->scanned, 4);
  EXPECT_EQ(report->found, 2);
  const auto marked = outbox_.marked_by_seq();
  ASSERT_EQ(marked.size(), 2u);
  expect_delivered(marked[0], 1, kTopic, 0, 1);
  expect_delivered(marked[1], 2, kTopic, 1, 0);
  EXPECT_EQ(outbox_.flushes, 1) << "what was found is committed before reconciliation returns";
}

TEST_F(ReconcileTest, EventsNotOnTheTopicStayUndelivered) {
  produce(bootstrap(), kTopic, 0, {"ev-1", "someone-else"});
  outbox_.undelivered = {{1, "ev-1", kTopic}, {2, "ev-2", kTopic}, {3, "ev-3", kTopic}};

  auto report = reconcile(outbox_);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->undelivered, 3);
  EXPECT_EQ(report->found, 1);
  const auto marked = outbox_.marked_by_seq();
  ASSERT_EQ(marked.size(), 1u);
  expect_delivered(marked[0], 1, kTopic, 0, 0);
}

TEST_F(ReconcileTest, NothingFoundMarksNothing) {
  produce(bootstrap(), kTopic, 1, {"", "someone-else"});
  outbox_.undelivered = {{1, "ev-1", kTopic}};

  auto report = reconcile(outbox_);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->partitions, 1) << "partition 0 is empty";
  EXPECT_EQ(report->scanned, 2);
  EXPECT_EQ(report->found, 0);
  EXPECT_EQ(outbox_.mark_calls, 0);
  EXPECT_TRUE(outbox_.marked.empty());
}

TEST_F(ReconcileTest, ReadsOnlyAfterTheHighestRecordedOffset) {
  produce(bootstrap(), kTopic, 0, {"ev-1", "ev-2", "ev-3"});
  produce(bootstrap(), kTopic, 1, {"ev-4"});
  // Every one of them undelivered, as far as the outbox says; but deliveries up to offset 1 of
  // partition 0 were recorded, so only offset 2 of partition 0 and all of partition 1 are read.
  outbox_.undelivered = {
      {1, "ev-1", kTopic}, {2, "ev-2", kTopic}, {3, "ev-3", kTopic}, {4, "ev-4", kTopic}};
  outbox_.offsets[{kTopic, 0}] = 1;

  auto report = reconcile(outbox_);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->partitions, 2);
  EXPECT_EQ(report->scanned, 2);
  EXPECT_EQ(report->found, 2);
  const auto marked = outbox_.marked_by_seq();
  ASSERT_EQ(marked.size(), 2u);
  expect_delivered(marked[0], 3, kTopic, 0, 2);
  expect_delivered(marked[1], 4, kTopic, 1, 0);
}

TEST_F(ReconcileTest, PartitionsWithNothingAfterTheRecordedOffsetAreNotRead) {
  produce(bootstrap(), kTopic, 0, {"ev-1", "ev-2"});
  produce(bootstrap(), kTopic, 1, {"ev-3"});
  outbox_.undelivered = {{1, "ev-1", kTopic}, {2, "ev-2", kTopic}, {3, "ev-3", kTopic}};
  outbox_.offsets[{kTopic, 0}] = 1;
  outbox_.offsets[{kTopic, 1}] = 0;

  auto report = reconcile(outbox_);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->undelivered, 3);
  EXPECT_EQ(report->partitions, 0);
  EXPECT_EQ(report->scanned, 0);
  EXPECT_EQ(report->found, 0);
  EXPECT_TRUE(outbox_.marked.empty());
}

TEST_F(ReconcileTest, ReadsOnlyTheTopicsOfUndeliveredEvents) {
  produce(bootstrap(), kTopic, 0, {"ev-1"});
  produce(bootstrap(), kOtherTopic, 0, {"ev-2", ""});
  outbox_.undelivered = {{2, "ev-2", kOtherTopic}};

  auto report = reconcile(outbox_);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->partitions, 1);
  EXPECT_EQ(report->scanned, 2) << "the record on " << kTopic << " is not read";
  const auto marked = outbox_.marked_by_seq();
  ASSERT_EQ(marked.size(), 1u);
  expect_delivered(marked[0], 2, kOtherTopic, 0, 0);
}

TEST_F(ReconcileTest, AnEmptyOutboxNeedsNoKafka) {
  // Nothing undelivered: nothing to look for, so an unreachable broker does not matter.
  auto report = reconcile_outbox(outbox_, cfg_, "127.0.0.1:1", 2s);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->undelivered, 0);
  EXPECT_EQ(report->partitions, 0);
  EXPECT_EQ(report->found, 0);
}

TEST_F(ReconcileTest, UnreachableBrokerFailsWithUnavailableWithinTheTimeout) {
  outbox_.undelivered = {{1, "ev-1", kTopic}};
  const auto started = Clock::now();
  // Port 1 on loopback: nothing listens there.
  auto report = reconcile_outbox(outbox_, cfg_, "127.0.0.1:1", 1s);
  const auto took = Clock::now() - started;
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().kind, ErrorKind::kUnavailable) << report.error().message;
  EXPECT_LT(took, 4s) << "the 1 s timeout, and closing the client";
  EXPECT_TRUE(outbox_.marked.empty());
}

TEST_F(ReconcileTest, BrokerDownFailsWithUnavailableWithinTheTimeout) {
  produce(bootstrap(), kTopic, 0, {"ev-1"});
  outbox_.undelivered = {{1, "ev-1", kTopic}};
  ASSERT_TRUE(broker_->set_broker_down(1));
  const auto started = Clock::now();
  auto report = reconcile(outbox_, 1s);
  const auto took = Clock::now() - started;
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().kind, ErrorKind::kUnavailable) << report.error().message;
  EXPECT_LT(took, 4s);
  EXPECT_TRUE(outbox_.marked.empty());

  ASSERT_TRUE(broker_->set_broker_up(1));  // the caller's retry succeeds once it is back
  auto retried = reconcile(outbox_);
  ASSERT_TRUE(retried) << retried.error().message;
  EXPECT_EQ(retried->found, 1);
}

TEST_F(ReconcileTest, StoreThatCannotRecordWhatWasFoundFailsWithUnavailable) {
  produce(bootstrap(), kTopic, 0, {"ev-1"});
  outbox_.undelivered = {{1, "ev-1", kTopic}};
  outbox_.healthy = false;
  auto report = reconcile(outbox_);
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().kind, ErrorKind::kUnavailable);
  EXPECT_NE(report.error().message.find("disk I/O error"), std::string::npos)
      << report.error().message;
}

TEST_F(ReconcileTest, WithTheSqliteStoreFoundEventsLeaveTheOutboxAndTheirOffsetsAreRecorded) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("sdoh_reconcile_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto opened = store::SqlStore::open(dir / "gateway.db", {});
  ASSERT_TRUE(opened) << opened.error().message;
  auto& store = **opened;
  {
    asio::io_context ioc;
    std::vector<std::future<Result<pipeline::CommitOutcome>>> commits;
    for (int i = 0; i < 3; ++i) {
      pipeline::CommitRequest r;
      r.inbound = {"hl7v2", "EHR^A", "M" + std::to_string(i), "ORU^R01", "AA", "ack", ""};
      r.events.push_back({"ev-" + std::to_string(i), "org.sdoh.screening.v1", kTopic, "patient",
                          "{\"i\":" + std::to_string(i) + "}"});
      commits.push_back(asio::co_spawn(ioc, store.commit(std::move(r)), asio::use_future));
    }
    ioc.run();
    for (auto& c : commits)
      ASSERT_TRUE(c.get());
  }
  ASSERT_EQ(store.stats().undelivered, 3);
  // The relay produced the first two, then the process died before recording it.
  produce(bootstrap(), kTopic, 1, {"ev-0", "ev-1"});

  auto report = reconcile(store);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->undelivered, 3);
  EXPECT_EQ(report->found, 2);
  EXPECT_EQ(store.stats().undelivered, 1);
  auto left = store.undelivered_refs();
  ASSERT_TRUE(left);
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ(left->front().event_id, "ev-2");
  auto offsets = store.delivery_offsets();
  ASSERT_TRUE(offsets);
  EXPECT_EQ(offsets->at({kTopic, 1}), 1);

  // The next start reads nothing it has read before.
  auto again = reconcile(store);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->undelivered, 1);
  EXPECT_EQ(again->partitions, 0);
  EXPECT_EQ(again->scanned, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sdoh::kafka
