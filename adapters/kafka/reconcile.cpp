#include "adapters/kafka/reconcile.hpp"

#include <map>
#include <set>
#include <unordered_map>
#include <vector>

#include "adapters/kafka/client_conf.hpp"
#include "gateway/log/log.hpp"

namespace sdoh::kafka {

namespace {

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
};
struct ListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using ListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, ListDeleter>;

std::chrono::milliseconds left(std::chrono::steady_clock::time_point deadline) {
  return std::max(std::chrono::milliseconds(0),
                  std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now()));
}

}  // namespace

Result<ReconcileReport> reconcile_outbox(pipeline::Outbox& store, const config::KafkaConfig& cfg,
                                         const std::string& bootstrap_servers,
                                         std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ReconcileReport report;
  auto refs = store.undelivered_refs();
  if (!refs) return fail(refs.error());
  report.undelivered = static_cast<std::int64_t>(refs->size());
  if (refs->empty()) return report;
  std::unordered_map<std::string, std::int64_t> wanted;  // event id → seq
  std::set<std::string> topics;
  for (const auto& r : *refs) {
    wanted.emplace(r.event_id, r.seq);
    topics.insert(r.topic);
  }
  auto recorded = store.delivery_offsets();
  if (!recorded) return fail(recorded.error());

  auto conf = build_client_conf(cfg, bootstrap_servers, cfg.client_id + "-reconcile",
                                {{"group.id", cfg.client_id + "-reconcile"},
                                 {"enable.auto.commit", "false"},
                                 {"enable.auto.offset.store", "false"},
                                 {"enable.partition.eof", "true"},
                                 {"isolation.level", "read_uncommitted"},
                                 {"log_level", "4"}});
  if (!conf) return fail(conf.error());
  char errstr[512];
  std::unique_ptr<rd_kafka_t, HandleDeleter> rk(
      rd_kafka_new(RD_KAFKA_CONSUMER, conf->release(), errstr, sizeof errstr));
  if (!rk) return fail(Error::config("kafka", errstr));

  ListPtr assignment(rd_kafka_topic_partition_list_new(8));
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> ends;  // exclusive end offsets
  for (const auto& topic : topics) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    const auto err =
        rd_kafka_metadata(rk.get(), 0, t, &md, static_cast<int>(left(deadline).count()));
    rd_kafka_topic_destroy(t);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return fail(
          Error::unavailable("reading metadata of " + topic + ": " + rd_kafka_err2str(err)));
    }
    std::vector<std::int32_t> partitions;
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int i = 0; i < md->topics[0].partition_cnt; ++i)
        partitions.push_back(md->topics[0].partitions[i].id);
    }
    rd_kafka_metadata_destroy(md);
    // A missing topic holds none of our events: the relay reports it when it publishes.
    for (auto p : partitions) {
      std::int64_t low = 0, high = 0;
      const auto werr = rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), p, &low, &high,
                                                         static_cast<int>(left(deadline).count()));
      if (werr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return fail(Error::unavailable("reading the end of " + topic + "[" + std::to_string(p) +
                                       "]: " + rd_kafka_err2str(werr)));
      }
      std::int64_t start = low;
      if (auto it = recorded->find({topic, p}); it != recorded->end())
        start = std::max(low, it->second + 1);
      if (start >= high) continue;
      rd_kafka_topic_partition_list_add(assignment.get(), topic.c_str(), p)->offset = start;
      ends[{topic, p}] = high;
      ++report.partitions;
    }
  }
  std::vector<pipeline::DeliveredEvent> found;
  if (assignment->cnt > 0) {
    if (auto err = rd_kafka_assign(rk.get(), assignment.get()); err) {
      return fail(
          Error::unavailable(std::string("assigning partitions: ") + rd_kafka_err2str(err)));
    }
    auto remaining = ends;
    while (!remaining.empty()) {
      if (left(deadline).count() == 0) {
        return fail(Error::unavailable("reading the topics' tails took longer than " +
                                       std::to_string(timeout.count()) + " ms"));
      }
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 100);
      if (m == nullptr) continue;
      const std::string topic = m->rkt != nullptr ? rd_kafka_topic_name(m->rkt) : "";
      const std::pair<std::string, std::int32_t> where{topic, m->partition};
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (auto it = remaining.find(where); it != remaining.end() && m->offset >= it->second)
          remaining.erase(it);
      } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        const std::string reason = rd_kafka_message_errstr(m);
        rd_kafka_message_destroy(m);
        return fail(Error::unavailable("reading " + topic + ": " + reason));
      } else {
        ++report.scanned;
        rd_kafka_headers_t* headers = nullptr;
        const void* value = nullptr;
        std::size_t size = 0;
        if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_header_get_last(headers, "ce_id", &value, &size) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            value != nullptr) {
          const std::string id(static_cast<const char*>(value), size);
          if (auto it = wanted.find(id); it != wanted.end()) {
            found.push_back({it->second, topic, m->partition, m->offset});
            wanted.erase(it);
          }
        }
        if (auto it = remaining.find(where); it != remaining.end() && m->offset + 1 >= it->second)
          remaining.erase(it);
      }
      rd_kafka_message_destroy(m);
    }
  }
  report.found = static_cast<std::int64_t>(found.size());
  if (!found.empty()) {
    store.mark_delivered(std::move(found));
    store.flush();
    if (auto h = store.health(); !h.ok) {
      return fail(Error::unavailable("recording the events found in Kafka: " + h.detail));
    }
  }
  log::info("relay.reconciled", {{"undelivered", report.undelivered},
                                 {"partitions_read", report.partitions},
                                 {"messages_read", report.scanned},
                                 {"already_in_kafka", report.found}});
  return report;
}

}  // namespace sdoh::kafka
