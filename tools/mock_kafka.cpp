// mock-kafka: librdkafka's Kafka-protocol mock cluster as its own process, for fault tests and
// for trying the gateway against a broker that can be taken down. Prints
//   bootstrap <host:port,...>
// once the cluster is up, then reads commands on stdin, one per line, answering "ok" or
// "error <why>" on stdout:
//   down [ID]            take broker ID (default: all) down: connections refused and closed
//   up [ID]              bring it back
//   errors API N CODE    the next N requests of API (Produce, Fetch, Metadata, ...) fail with
//                        CODE (a Kafka error name such as NOT_ENOUGH_REPLICAS or a number)
//   create TOPIC N       create a topic with N partitions
//   quit                 stop (also on end of input)
// The cluster lives in memory: its data is gone when the process exits.
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, sep);)
    if (!part.empty()) out.push_back(part);
  return out;
}

int api_key(const std::string& name) {
  static const std::map<std::string, int> keys = {
      {"Produce", 0},      {"Fetch", 1},          {"ListOffsets", 2},      {"Metadata", 3},
      {"OffsetCommit", 8}, {"OffsetFetch", 9},    {"FindCoordinator", 10}, {"JoinGroup", 11},
      {"Heartbeat", 12},   {"InitProducerId", 22}};
  if (auto it = keys.find(name); it != keys.end()) return it->second;
  try {
    return std::stoi(name);
  } catch (...) {
    return -1;
  }
}

int error_code(const std::string& name) {
  const struct rd_kafka_err_desc* descs = nullptr;
  size_t count = 0;
  rd_kafka_get_err_descs(&descs, &count);
  for (size_t i = 0; i < count; ++i) {
    if (descs[i].name != nullptr && name == descs[i].name) return descs[i].code;
  }
  try {
    return std::stoi(name);
  } catch (...) {
    return -1000;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"librdkafka's mock Kafka cluster as a process, driven through stdin"};
  int brokers = 3;
  int partitions = 3;
  std::string topics =
      "sdoh.screening.v1,sdoh.referral.v1,sdoh.referral-status.v1,sdoh.deadletter.v1,"
      "sdoh.audit-anchors.v1,sdoh.referral-updates.v1";
  app.add_option("--brokers", brokers, "brokers in the cluster")->check(CLI::Range(1, 9));
  app.add_option("--partitions", partitions, "partitions per topic")->check(CLI::Range(1, 64));
  app.add_option("--topics", topics, "comma-separated topics to create");
  CLI11_PARSE(app, argc, argv);

  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "client.id", "mock-kafka", errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
  rd_kafka_t* owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (owner == nullptr) {
    std::cerr << "mock-kafka: " << errstr << "\n";
    return 1;
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(owner, brokers);
  if (cluster == nullptr) {
    std::cerr << "mock-kafka: cannot start the cluster\n";
    return 1;
  }
  for (const auto& topic : split(topics, ',')) {
    if (auto err = rd_kafka_mock_topic_create(cluster, topic.c_str(), partitions, brokers); err) {
      std::cerr << "mock-kafka: create " << topic << ": " << rd_kafka_err2str(err) << "\n";
      return 1;
    }
  }
  std::cout << "bootstrap " << rd_kafka_mock_cluster_bootstraps(cluster) << std::endl;

  auto each_broker = [&](const std::vector<std::string>& words, bool down) -> std::string {
    std::vector<int> ids;
    if (words.size() > 1) {
      ids.push_back(std::atoi(words[1].c_str()));
    } else {
      for (int i = 1; i <= brokers; ++i)
        ids.push_back(i);
    }
    for (int id : ids) {
      auto err = down ? rd_kafka_mock_broker_set_down(cluster, id)
                      : rd_kafka_mock_broker_set_up(cluster, id);
      if (err) return std::string("error ") + rd_kafka_err2str(err);
    }
    return "ok";
  };

  for (std::string line; std::getline(std::cin, line);) {
    const auto words = split(line, ' ');
    if (words.empty()) continue;
    std::string answer = "ok";
    if (words[0] == "quit") break;
    if (words[0] == "down" || words[0] == "up") {
      answer = each_broker(words, words[0] == "down");
    } else if (words[0] == "errors" && words.size() == 4) {
      const int api = api_key(words[1]);
      const int count = std::atoi(words[2].c_str());
      const int code = error_code(words[3]);
      if (api < 0 || count <= 0 || code == -1000) {
        answer = "error usage: errors API N CODE";
      } else {
        std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count),
                                                static_cast<rd_kafka_resp_err_t>(code));
        rd_kafka_mock_push_request_errors_array(cluster, static_cast<int16_t>(api), errors.size(),
                                                errors.data());
      }
    } else if (words[0] == "create" && words.size() == 3) {
      if (auto err = rd_kafka_mock_topic_create(cluster, words[1].c_str(),
                                                std::atoi(words[2].c_str()), brokers);
          err) {
        answer = std::string("error ") + rd_kafka_err2str(err);
      }
    } else {
      answer =
          "error unknown command (down [ID], up [ID], errors API N CODE, create TOPIC N, quit)";
    }
    std::cout << answer << std::endl;
  }
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(owner);
  return 0;
}
