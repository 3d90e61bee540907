#pragma once
// GET /healthz (the process is alive), GET /readyz (it can take traffic), GET /metrics
// (Prometheus). Pure handlers over Health and the metrics Registry.
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "gateway/http/message.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/ops/health.hpp"
#include "gateway/pipeline/store_executor.hpp"

namespace sdoh::ops {

struct BuildInfo {
  std::string version;
  std::string commit;
};

/// Registers the process metrics (uptime, start time, build info, memory) on `registry`.
void register_process_metrics(metrics::Registry& registry, const BuildInfo& build,
                              std::chrono::system_clock::time_point started);

/// What /metrics does before it renders: series computed from the store when read (the
/// referral measures) are brought up to date by `update`, on `store_threads` (it reads the store;
/// so do gauges that read the store when rendered). Empty: render at once, where it is asked.
struct MetricsUpdate {
  std::function<void()> update;
  pipeline::StoreExecutor* store_threads = nullptr;
  /// Who may read /metrics: the answer to refuse with, or nothing. Empty: anyone (dev mode).
  std::function<std::optional<http::Response>(const http::Request&)> access;
};

/// Adds /healthz, /readyz and /metrics to `router`. The references must outlive the router.
void add_ops_routes(http::Router& router, const Health& health, const metrics::Registry& registry,
                    const BuildInfo& build, std::chrono::steady_clock::time_point started,
                    MetricsUpdate metrics_update = {});

}  // namespace sdoh::ops
