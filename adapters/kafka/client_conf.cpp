#include "adapters/kafka/client_conf.hpp"

namespace sdoh::kafka {

Result<ConfPtr> build_client_conf(const config::KafkaConfig& cfg, const std::string& bootstrap,
                                  const std::string& client_id,
                                  const std::vector<std::pair<std::string, std::string>>& fixed) {
  ConfPtr conf(rd_kafka_conf_new());
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
