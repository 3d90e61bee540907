#pragma once
// GET /healthz (the process is alive), GET /readyz (it can take traffic), GET /metrics
// (Prometheus). Pure handlers over Health and the metrics Registry.
#include <chrono>
#include <string>

#include "gateway/http/message.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/ops/health.hpp"

namespace sdoh::ops {

struct BuildInfo {
  std::string version;
  std::string commit;
};

/// Registers the process metrics (uptime, start time, build info, memory) on `registry`.
void register_process_metrics(metrics::Registry& registry, const BuildInfo& build,
                              std::chrono::system_clock::time_point started);

/// Adds /healthz, /readyz and /metrics to `router`. The references must outlive the router.
void add_ops_routes(http::Router& router, const Health& health, const metrics::Registry& registry,
                    const BuildInfo& build, std::chrono::steady_clock::time_point started);

}  // namespace sdoh::ops
