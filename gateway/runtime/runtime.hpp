#pragma once
// The composition root: builds every component from the config, runs the io_context, writes
// runtime.json when ready, and drains on SIGTERM/SIGINT. Only this part of gateway/ includes
// adapter headers.
#include <string>

#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"
#include "gateway/ops/ops_routes.hpp"

namespace sdoh::runtime {

/// Version and commit of this build.
ops::BuildInfo build_info();

/// Checks what parsing cannot: librdkafka accepts the Kafka properties, secrets resolve, TLS
/// certificates and keys load. Used by --check-config and at start-up.
Result<void> check_config(const config::GatewayConfig& cfg);

/// The kafka-topics.sh and kafka-acls.sh commands (kafka_provision.hpp) for the config's topics
/// and its routing's agencies, as a sh script; `source` names the config file in it. Reads the
/// mapping tables and the routing file, not the secrets.
Result<std::string> kafka_provision(const config::GatewayConfig& cfg, const std::string& source,
                                    bool topics_only);

/// Runs the gateway until SIGTERM/SIGINT; returns the process exit code (0 after a drain,
/// 1 when start-up failed).
int run(const config::GatewayConfig& cfg);

}  // namespace sdoh::runtime
