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

/// Runs the gateway until SIGTERM/SIGINT; returns the process exit code (0 after a drain,
/// 1 when start-up failed).
int run(const config::GatewayConfig& cfg);

}  // namespace sdoh::runtime
