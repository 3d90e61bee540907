#include "adapters/kafka/update_consumer.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <thread>

#include <rapidjson/document.h>

#include "adapters/kafka/client_conf.hpp"
#include "gateway/core/json_parse.hpp"
#include "gateway/core/thread_name.hpp"
#include "gateway/log/log.hpp"

namespace sdoh::kafka {

namespace {

using namespace std::chrono_literals;

constexpr auto kFirstBackoff = 100ms;
constexpr auto kMaxBackoff = std::chrono::milliseconds(5s);
constexpr int kPollTimeoutMs = 200;
// How often a failed offset commit is tried again while no record arrives.
constexpr auto kCommitRetryInterval = 1s;
// A group coordinator away for longer than this (per librdkafka's statistics) makes the consumer
// unhealthy; shorter gaps are a coordinator moving or a rebalance.
constexpr std::int64_t kCoordinatorGraceMs = 10'000;

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

// "sdoh.referral-updates.v1[2]@41": how logs and health name a record (never by content).
std::string where(std::string_view topic, std::int32_t partition, std::int64_t offset) {
  return std::string(topic) + "[" + std::to_string(partition) + "]@" + std::to_string(offset);
}

std::string partitions_text(const rd_kafka_topic_partition_list_t& list) {
  std::string text;
  for (int i = 0; i < list.cnt; ++i) {
    text += (i == 0 ? "" : ", ") + std::string(list.elems[i].topic) + "[" +
            std::to_string(list.elems[i].partition) + "]";
  }
  return text;
}

// Errors that leave the consumer unable to reach the cluster at all (as opposed to one broker
// of several reconnecting, which librdkafka rides out).
bool is_cluster_unreachable(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
      return true;
    default:
      return false;
  }
}

}  // namespace

struct UpdateConsumer::Impl {
  rd_kafka_t* rk = nullptr;
  std::string group;
  std::vector<std::string> topics;  // the shared dev topic and/or each agency's own
  std::string topics_text;          // "a, b": for logs and health
  UpdateHandler handler;
  std::thread thread;
  bool started = false;  // start()/stop() caller's thread
  std::atomic<bool> stopping{false};
  std::mutex wait_mutex;
  std::condition_variable wait_cv;

  // Consumer thread only (librdkafka runs the callbacks below inside rd_kafka_consumer_poll and
  // rd_kafka_consumer_close, on that thread): records the handler answered kRetry, by
  // (topic, partition) → offset; nothing after one of them is handed over first.
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> held;
  int retry_attempts = 0;
  // Consumer thread only: the last commit failed; stored offsets wait for the next one.
  bool commit_pending = false;
  std::chrono::steady_clock::time_point last_commit_try;
  // Consumer thread only: errors librdkafka reported since the cluster was last reachable.
  std::set<std::string> reported_errors;

  // What health() reports; written by the consumer thread, read by any.
  struct Status {
    enum class Phase { kNotStarted, kRunning, kStopped } phase = Phase::kNotStarted;
    std::string cluster_problem;  ///< no broker / coordinator reachable, authentication
    std::string topic_problem;    ///< the topic is missing or not readable
    std::string commit_problem;   ///< the last offset commit failed
    std::string waiting;          ///< a record waits for the store (kRetry)
    int assigned = 0;
  };
  mutable std::mutex status_mutex;
  Status status;  // guarded by status_mutex

  metrics::Family<metrics::Counter>* records = nullptr;
  metrics::Counter* commit_failures = nullptr;
  metrics::Gauge* lag = nullptr;

  ~Impl() {
    if (rk != nullptr) rd_kafka_destroy(rk);
  }

  template <class Change>
  void update(Change change) {
    std::lock_guard lock(status_mutex);
    change(status);
  }

  ops::CheckState state() const {
    std::lock_guard lock(status_mutex);
    using Phase = Status::Phase;
    if (status.phase == Phase::kNotStarted) return {false, "not started"};
    if (status.phase == Phase::kStopped) return {false, "stopped"};
    for (const auto* problem : {&status.cluster_problem, &status.topic_problem,
                                &status.commit_problem, &status.waiting}) {
      if (!problem->empty()) return {false, *problem};
    }
    return {true, "group " + group + " on " + topics_text + ": " + std::to_string(status.assigned) +
                      " partition(s) assigned"};
  }

  // Sleeps up to `d`; false when stop() was called meanwhile.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock lock(wait_mutex);
    return !wait_cv.wait_for(lock, d, [this] { return stopping.load(); });
  }

  void run() {
    ListPtr subscription(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
    for (const auto& t : topics)
      rd_kafka_topic_partition_list_add(subscription.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
    if (auto err = rd_kafka_subscribe(rk, subscription.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      update([&](Status& s) {
        s.cluster_problem = std::string("cannot subscribe: ") + rd_kafka_err2str(err);
      });
      log::error("kafka.updates_subscribe_failed",
                 {{"topics", topics_text}, {"group", group}, {"reason", rd_kafka_err2str(err)}});
      return;
    }
    log::info("kafka.updates_subscribed", {{"topics", topics_text}, {"group", group}});
    auto backoff = std::chrono::milliseconds(kFirstBackoff);
    while (!stopping) {
      MessagePtr m(rd_kafka_consumer_poll(rk, kPollTimeoutMs));
      if (!m) {
        if (commit_pending &&
            std::chrono::steady_clock::now() - last_commit_try >= kCommitRetryInterval) {
          commit_stored("retry");
        }
        continue;
      }
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        on_consumer_error(*m);
        continue;
      }
      if (!in_turn(*m)) continue;
      const auto record = record_of(*m);
      update([](Status& s) { s.topic_problem.clear(); });
      const auto disposition = handle(record);
      if (disposition == UpdateDisposition::kRetry) {
        hold(record, backoff);
        if (!pause(backoff)) break;
        backoff = std::min(backoff * 2, kMaxBackoff);
        continue;
      }
      backoff = kFirstBackoff;
      release(record);
      records->with({disposition == UpdateDisposition::kCommitted ? "committed" : "dead_lettered"})
          .inc();
      commit(record);
    }
    // Leaving the group revokes the assignment: on_rebalance commits what was handled.
    if (auto err = rd_kafka_consumer_close(rk); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log::warn("kafka.updates_close_failed",
                {{"topics", topics_text}, {"reason", rd_kafka_err2str(err)}});
    }
    log::info("kafka.updates_stopped", {{"topics", topics_text}, {"group", group}});
  }

  UpdateDisposition handle(const UpdateRecord& record) {
    try {
      return handler(record);
    } catch (...) {
      // A bug in the handler, not a reason to skip the record: it is handed over again. The
      // exception's text is not logged: it may quote the record.
      log::error(
          "kafka.updates_handler_threw",
          {{"topic", record.topic}, {"partition", record.partition}, {"offset", record.offset}});
      return UpdateDisposition::kRetry;
    }
  }

  // False for a record that must not be handed over now: one after a record waiting for a
  // retry (the seek back has not taken effect), which is dropped and the seek repeated.
  bool in_turn(const rd_kafka_message_t& m) {
    const std::string topic = rd_kafka_topic_name(m.rkt);
    const auto it = held.find({topic, m.partition});
    if (it == held.end() || m.offset == it->second) return true;
    if (m.offset > it->second) {
      std::int64_t low = RD_KAFKA_OFFSET_INVALID, high = RD_KAFKA_OFFSET_INVALID;
      if (rd_kafka_get_watermark_offsets(rk, topic.c_str(), m.partition, &low, &high) ==
              RD_KAFKA_RESP_ERR_NO_ERROR &&
          low > it->second) {
        // The topic's retention deleted the held record before the store could take it: there
        // is nothing left to hand over, and seeking to it would only reset to the log start.
        log::error("kafka.updates_record_expired", {{"topic", topic},
                                                    {"partition", m.partition},
                                                    {"offset", it->second},
                                                    {"log_start", low}});
        held.erase(it);
        show_held();
        return true;
      }
      seek(topic, m.partition, it->second);
      return false;
    }
    // Before the held record: the partition was reassigned and restarts from the group's
    // committed offset, so the hold is void.
    held.erase(it);
    return true;
  }

  void seek(const std::string& topic, std::int32_t partition, std::int64_t offset) {
    ListPtr at(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(at.get(), topic.c_str(), partition)->offset = offset;
    // Asynchronous: librdkafka bumps the partition's version at once, so records already
    // fetched after `offset` are discarded and the next one handed over is the record at
    // `offset` (in_turn() checks it).
    if (auto* e = rd_kafka_seek_partitions(rk, at.get(), 0); e != nullptr) {
      log::warn("kafka.updates_seek_failed", {{"topic", topic},
                                              {"partition", partition},
                                              {"offset", offset},
                                              {"reason", rd_kafka_error_string(e)}});
      rd_kafka_error_destroy(e);
    } else if (at->elems[0].err != RD_KAFKA_RESP_ERR_NO_ERROR &&
               at->elems[0].err != RD_KAFKA_RESP_ERR__IN_PROGRESS) {
      log::warn("kafka.updates_seek_failed", {{"topic", topic},
                                              {"partition", partition},
                                              {"offset", offset},
                                              {"reason", rd_kafka_err2str(at->elems[0].err)}});
    }
  }

  void hold(const UpdateRecord& record, std::chrono::milliseconds backoff) {
    records->with({"retry"}).inc();
    held[{record.topic, record.partition}] = record.offset;
    seek(record.topic, record.partition, record.offset);
    ++retry_attempts;
    if (retry_attempts == 1 || retry_attempts % 10 == 0) {
      log::warn("kafka.updates_retry", {{"topic", record.topic},
                                        {"partition", record.partition},
                                        {"offset", record.offset},
                                        {"attempt", retry_attempts},
                                        {"backoff_ms", backoff.count()}});
    }
    show_held();
  }

  void release(const UpdateRecord& record) {
    if (held.erase({record.topic, record.partition}) > 0 || retry_attempts > 0) {
      log::info("kafka.updates_retry_done", {{"topic", record.topic},
                                             {"partition", record.partition},
                                             {"offset", record.offset},
                                             {"attempts", retry_attempts}});
    }
    retry_attempts = 0;
    show_held();
  }

  void show_held() {
    std::string waiting;
    if (!held.empty()) {
      const auto& [at, offset] = *held.begin();
      waiting = "the store cannot take updates now; retrying " + where(at.first, at.second, offset);
    }
    update([&](Status& s) { s.waiting = std::move(waiting); });
  }

  // Synchronous, before the next record is taken: a restart never skips an update that was not
  // stored, and re-reads at most the records whose commit failed.
  void commit(const UpdateRecord& record) {
    ListPtr at(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(at.get(), record.topic.c_str(), record.partition)->offset =
        record.offset + 1;
    auto err = rd_kafka_offsets_store(rk, at.get());
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = at->elems[0].err;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Only when the partition is no longer assigned; its next owner reads the record again.
      log::warn("kafka.updates_offset_store_failed", {{"topic", record.topic},
                                                      {"partition", record.partition},
                                                      {"offset", record.offset},
                                                      {"reason", rd_kafka_err2str(err)}});
      return;
    }
    commit_stored(where(record.topic, record.partition, record.offset));
  }

  // Commits every stored offset of the assignment not committed yet (the ones of records
  // handled on this instance, nothing else: offsets are stored only after the handler's answer).
  void commit_stored(const std::string& after) {
    last_commit_try = std::chrono::steady_clock::now();
    const auto err = rd_kafka_commit(rk, nullptr, 0);
    commit_pending = err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET;
    if (!commit_pending) {
      update([](Status& s) { s.commit_problem.clear(); });
      return;
    }
    commit_failures->inc();
    log::warn("kafka.updates_commit_failed",
              {{"topics", topics_text}, {"after", after}, {"reason", rd_kafka_err2str(err)}});
    update([&](Status& s) {
      s.commit_problem = std::string("offset commit failed: ") + rd_kafka_err2str(err);
    });
  }

  void on_consumer_error(const rd_kafka_message_t& m) {
    if (m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    const std::string reason = rd_kafka_message_errstr(&m);
    const std::string topic = m.rkt != nullptr ? rd_kafka_topic_name(m.rkt) : topics_text;
    log::warn("kafka.updates_error", {{"topic", topic},
                                      {"partition", m.partition},
                                      {"code", rd_kafka_err2name(m.err)},
                                      {"reason", reason}});
    update([&](Status& s) {
      (is_cluster_unreachable(m.err) ? s.cluster_problem : s.topic_problem) =
          std::string("consumer error: ") + reason;
    });
  }

  void on_error(rd_kafka_resp_err_t err, const char* reason) {
    std::string text = reason != nullptr ? reason : rd_kafka_err2str(err);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      char buf[512];
      rd_kafka_fatal_error(rk, buf, sizeof buf);
      text = buf;
    }
    // librdkafka reports each failed reconnect: a repeat goes to the debug log.
    if (reported_errors.size() > 64) reported_errors.clear();
    const bool repeat = !reported_errors.insert(text).second;
    log::write(repeat ? log::Level::kDebug : log::Level::kWarn, "kafka.updates_error",
               {{"topics", topics_text}, {"code", rd_kafka_err2name(err)}, {"reason", text}});
    if (is_cluster_unreachable(err)) {
      update([&](Status& s) { s.cluster_problem = "Kafka: " + text; });
    }
  }

  void on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions) {
    const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      log::info("kafka.updates_assigned",
                {{"group", group}, {"partitions", partitions_text(*partitions)}});
      if (cooperative) {
        if (auto* e = rd_kafka_incremental_assign(rk, partitions); e != nullptr) {
          log::error("kafka.updates_assign_failed", {{"reason", rd_kafka_error_string(e)}});
          rd_kafka_error_destroy(e);
        }
      } else if (auto e = rd_kafka_assign(rk, partitions); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log::error("kafka.updates_assign_failed", {{"reason", rd_kafka_err2str(e)}});
      }
      update([&](Status& s) {
        s.assigned = cooperative ? s.assigned + partitions->cnt : partitions->cnt;
        s.cluster_problem.clear();
        if (partitions->cnt > 0) s.topic_problem.clear();
      });
      return;
    }
    const bool lost = rd_kafka_assignment_lost(rk) != 0;
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      log::info("kafka.updates_revoked",
                {{"group", group}, {"partitions", partitions_text(*partitions)}, {"lost", lost}});
      // Every handled record's offset was committed before the next was taken, unless that
      // commit failed: those go now. A record waiting for a retry is not handled, so its
      // offset was never stored and the next owner starts at it.
      if (!lost) commit_stored("revoke");
    } else {
      log::warn("kafka.updates_rebalance_error",
                {{"group", group}, {"reason", rd_kafka_err2str(err)}});
    }
    for (int i = 0; i < partitions->cnt; ++i)
      held.erase({partitions->elems[i].topic, partitions->elems[i].partition});
    if (held.empty()) retry_attempts = 0;
    show_held();
    if (cooperative && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      if (auto* e = rd_kafka_incremental_unassign(rk, partitions); e != nullptr) {
        log::error("kafka.updates_unassign_failed", {{"reason", rd_kafka_error_string(e)}});
        rd_kafka_error_destroy(e);
      }
    } else {
      rd_kafka_assign(rk, nullptr);
    }
    const bool partial = cooperative && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS;
    // With the whole assignment gone, so are the offsets a failed commit left: their next owner
    // reads those records again (the store deduplicates them).
    if (!partial) commit_pending = false;
    update([&](Status& s) {
      s.assigned = partial ? std::max(0, s.assigned - partitions->cnt) : 0;
      if (!partial) s.commit_problem.clear();
    });
  }

  // librdkafka's statistics (every second): whether the cluster and the group coordinator are
  // reachable, and the lag of the partitions this instance reads.
  void on_stats(const char* json, std::size_t len) {
    rapidjson::Document doc;
    if (!sdoh::json::parse(doc, {json, len}) || !doc.IsObject()) return;
    bool broker_up = false;
    if (doc.HasMember("brokers") && doc["brokers"].IsObject()) {
      for (const auto& b : doc["brokers"].GetObject()) {
        if (b.value.IsObject() && b.value.HasMember("state") && b.value["state"].IsString() &&
            std::string_view(b.value["state"].GetString()) == "UP") {
          broker_up = true;
        }
      }
    }
    std::string coordinator_state;
    std::int64_t coordinator_state_ms = 0;
    if (doc.HasMember("cgrp") && doc["cgrp"].IsObject()) {
      const auto& cgrp = doc["cgrp"];
      if (cgrp.HasMember("state") && cgrp["state"].IsString())
        coordinator_state = cgrp["state"].GetString();
      if (cgrp.HasMember("stateage") && cgrp["stateage"].IsInt64())
        coordinator_state_ms = cgrp["stateage"].GetInt64();
    }
    if (broker_up && coordinator_state == "up") reported_errors.clear();
    update([&](Status& s) {
      if (!broker_up) {
        if (s.cluster_problem.empty()) s.cluster_problem = "Kafka: no broker reachable";
      } else if (coordinator_state == "up") {
        s.cluster_problem.clear();
      } else if (!coordinator_state.empty() && coordinator_state_ms >= kCoordinatorGraceMs) {
        s.cluster_problem = "group coordinator not reachable (" + coordinator_state + " for " +
                            std::to_string(coordinator_state_ms / 1000) + " s)";
      }
    });
    std::int64_t total = 0;
    for (const auto& topic : topics) {
      if (!doc.HasMember("topics") || !doc["topics"].IsObject() ||
          !doc["topics"].HasMember(topic.c_str()) || !doc["topics"][topic.c_str()].IsObject()) {
        continue;
      }
      const auto& t = doc["topics"][topic.c_str()];
      if (t.HasMember("partitions") && t["partitions"].IsObject()) {
        for (const auto& p : t["partitions"].GetObject()) {
          total += partition_lag(p.value);
        }
      }
    }
    lag->set(static_cast<double>(total));
  }

  // Records of one partition this instance reads that the group has not committed past: from
  // the committed offset (or, before the group's first commit, the log start, which is where
  // auto.offset.reset=earliest begins) to the last stable offset (read_committed).
  static std::int64_t partition_lag(const rapidjson::Value& p) {
    auto number = [&p](const char* name) -> std::int64_t {
      return p.HasMember(name) && p[name].IsInt64() ? p[name].GetInt64() : -1;
    };
    if (!p.IsObject() || number("partition") < 0 || !p.HasMember("fetch_state") ||
        !p["fetch_state"].IsString() || std::string_view(p["fetch_state"].GetString()) != "active")
      return 0;
    const auto end = number("ls_offset");
    const auto committed = number("committed_offset");
    const auto from = committed >= 0 ? committed : number("lo_offset");
    return end >= 0 && from >= 0 && end > from ? end - from : 0;
  }
};

namespace {

void rebalance_cb(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                  void* opaque) {
  static_cast<UpdateConsumer::Impl*>(opaque)->on_rebalance(err, partitions);
}

void error_cb(rd_kafka_t*, int err, const char* reason, void* opaque) {
  static_cast<UpdateConsumer::Impl*>(opaque)->on_error(static_cast<rd_kafka_resp_err_t>(err),
                                                       reason);
}

int stats_cb(rd_kafka_t*, char* json, size_t len, void* opaque) {
  static_cast<UpdateConsumer::Impl*>(opaque)->on_stats(json, len);
  return 0;  // librdkafka frees the JSON
}

}  // namespace

Result<std::unique_ptr<UpdateConsumer>> UpdateConsumer::create(
    const config::KafkaConfig& cfg, const std::string& bootstrap, std::string group,
    std::vector<std::string> topics, UpdateHandler handler, metrics::Registry& registry) {
  // The delivery promise: offsets are stored and committed by hand after the store commit;
  // a new group starts at the beginning; aborted transactions' records are never read.
  auto conf = build_client_conf(cfg, bootstrap, cfg.client_id + "-updates",
                                {{"group.id", group},
                                 {"enable.auto.commit", "false"},
                                 {"enable.auto.offset.store", "false"},
                                 {"auto.offset.reset", "earliest"},
                                 {"isolation.level", "read_committed"},
                                 {"statistics.interval.ms", "1000"},
                                 {"log_level", "4"}});
  if (!conf) return fail(conf.error());
  auto impl = std::make_unique<Impl>();
  rd_kafka_conf_set_opaque(conf->get(), impl.get());
  rd_kafka_conf_set_rebalance_cb(conf->get(), rebalance_cb);
  rd_kafka_conf_set_error_cb(conf->get(), error_cb);
  rd_kafka_conf_set_stats_cb(conf->get(), stats_cb);
  char errstr[512];
  impl->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf->release(), errstr, sizeof errstr);
  if (impl->rk == nullptr) return fail(Error::config("kafka", errstr));
  // Errors, statistics and rebalances are served by rd_kafka_consumer_poll on one thread.
  rd_kafka_poll_set_consumer(impl->rk);
  impl->group = std::move(group);
  for (const auto& t : topics)
    impl->topics_text += (impl->topics_text.empty() ? "" : ", ") + t;
  impl->topics = std::move(topics);
  impl->handler = std::move(handler);
  impl->records = &registry.counter("sdoh_kafka_updates_total",
                                    "Agency updates read from Kafka, by what became of them "
                                    "(committed, dead_lettered, retry: each attempt the store "
                                    "could not take).",
                                    {"outcome"});
  impl->commit_failures = &registry
                               .counter("sdoh_kafka_update_offset_commit_failures_total",
                                        "Offset commits of handled agency updates that failed "
                                        "(the update is read again and deduplicated).")
                               .with();
  impl->lag = &registry
                   .gauge("sdoh_kafka_updates_lag",
                          "Agency updates on this instance's partitions not yet handled and "
                          "committed (from librdkafka's statistics, every second).")
                   .with();
  return std::unique_ptr<UpdateConsumer>(new UpdateConsumer(std::move(impl)));
}

UpdateConsumer::UpdateConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

UpdateConsumer::~UpdateConsumer() {
  stop();
}

void UpdateConsumer::start() {
  if (impl_->started) return;
  impl_->started = true;
  impl_->update([](Impl::Status& s) { s.phase = Impl::Status::Phase::kRunning; });
  impl_->thread = std::thread([impl = impl_.get()] {
    name_this_thread("agency-updates");
    impl->run();
  });
}

void UpdateConsumer::stop() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->wait_mutex);
    impl_->stopping = true;
  }
  impl_->wait_cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
  if (impl_->started) {
    impl_->update([](Impl::Status& s) { s.phase = Impl::Status::Phase::kStopped; });
  }
}

ops::CheckState UpdateConsumer::health() const {
  return impl_->state();
}

}  // namespace sdoh::kafka
