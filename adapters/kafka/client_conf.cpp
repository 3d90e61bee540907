#include "adapters/kafka/client_conf.hpp"

#include <string_view>

#include "gateway/log/log.hpp"

namespace sdoh::kafka {

namespace {

// Settings the gateway's clients depend on, which kafka.properties may not change (config.cpp
// already refuses bootstrap.servers, enable.idempotence and acks). kafka.properties apply to
// every client — producer, update consumer, reconciler — so a producer-only property reaches the
// consumers too, where librdkafka ignores it with a warning in the log, and these would reach
// all of them.
constexpr std::pair<std::string_view, std::string_view> kGatewayOwned[] = {
    {"group.id", "the update consumer's group is kafka.consumer_group"},
    {"enable.auto.commit", "offsets of agency updates are committed only after they are stored"},
    {"enable.auto.offset.store",
     "offsets of agency updates are committed only after they are stored"},
    {"auto.offset.reset",
     "a new consumer group reads the updates agencies sent before the gateway first started"},
    {"isolation.level", "records of aborted transactions are not agency updates"},
    {"enable.partition.eof", "the restart reconciler reads to the end of each partition"},
    {"statistics.interval.ms", "the Kafka metrics and health checks are read from statistics"},
};

// librdkafka's own log lines, as the gateway's JSON log. They name brokers and topics, never
// message content.
void log_cb(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
  const auto lvl = level <= 3   ? log::Level::kError
                   : level <= 4 ? log::Level::kWarn
                   : level <= 6 ? log::Level::kInfo
                                : log::Level::kDebug;
  log::write(lvl, "kafka.client",
             {{"client", rk != nullptr ? rd_kafka_name(rk) : ""},
              {"facility", facility},
              {"detail", message}});
}

}  // namespace

Result<ConfPtr> build_client_conf(const config::KafkaConfig& cfg, const std::string& bootstrap,
                                  const std::string& client_id,
                                  const std::vector<std::pair<std::string, std::string>>& fixed) {
  ConfPtr conf(rd_kafka_conf_new());
  rd_kafka_conf_set_log_cb(conf.get(), log_cb);
  char errstr[512];
  auto set = [&](const std::string& name, const std::string& value,
                 const std::string& key_path) -> Result<void> {
    if (rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
      return fail(Error::config(key_path, errstr));
    }
    return {};
  };
  if (auto r = set("bootstrap.servers", bootstrap, "kafka.brokers"); !r) return fail(r.error());
  if (auto r = set("client.id", client_id, "kafka.client_id"); !r) return fail(r.error());
  for (const auto& [name, value] : fixed) {
    if (auto r = set(name, value, "kafka"); !r) return fail(r.error());
  }
  for (const auto& [name, prop] : cfg.properties) {
    const auto key_path = "kafka.properties." + name;
    for (const auto& [owned, why] : kGatewayOwned) {
      if (name == owned) {
        return fail(Error::config(
            key_path, "is set by the gateway and cannot be overridden (" + std::string(why) + ")"));
      }
    }
    std::string value = prop.value;
    if (prop.secret.configured()) {
      auto secret = prop.secret.resolve();
      if (!secret) return fail(Error::config(key_path, secret.error().message));
      value = std::move(*secret);
    }
    if (auto r = set(name, value, key_path); !r) return fail(r.error());
  }
  return conf;
}

}  // namespace sdoh::kafka
