#include "gateway/ops/ops_routes.hpp"

#include <fstream>
#include <unistd.h>

#include "gateway/core/json_text.hpp"

namespace sdoh::ops {
namespace {

double resident_memory_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (!(statm >> pages_total >> pages_resident)) return 0;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

}  // namespace

void register_process_metrics(metrics::Registry& registry, const BuildInfo& build,
                              std::chrono::system_clock::time_point started) {
  const auto steady_start = std::chrono::steady_clock::now();
  registry.gauge_callback(
      "sdoh_process_uptime_seconds", "Seconds since the gateway started.", [steady_start] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - steady_start)
            .count();
      });
  const double start_seconds = std::chrono::duration<double>(started.time_since_epoch()).count();
  registry.gauge_callback("sdoh_process_start_time_seconds",
                          "Start time of the process since the Unix epoch in seconds.",
                          [start_seconds] { return start_seconds; });
  registry.gauge_callback("sdoh_process_resident_memory_bytes", "Resident memory size in bytes.",
                          resident_memory_bytes);
  registry
      .gauge("sdoh_build_info", "Version and commit of the running binary (value is 1).",
             {"version", "commit"})
      .with({build.version, build.commit})
      .set(1);
}

void add_ops_routes(http::Router& router, const Health& health, const metrics::Registry& registry,
                    const BuildInfo& build, std::chrono::steady_clock::time_point started,
                    MetricsUpdate metrics_update) {
  router.add("GET", "/healthz",
             [&build, started](http::Request&) -> boost::asio::awaitable<http::Response> {
               const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
                                       std::chrono::steady_clock::now() - started)
                                       .count();
               std::string body = "{\"status\":\"ok\",\"version\":";
               append_json_string(body, build.version);
               body += ",\"uptime_seconds\":" + std::to_string(uptime) + "}";
               co_return http::Response::json(200, std::move(body));
             });

  router.add("GET", "/readyz", [&health](http::Request&) -> boost::asio::awaitable<http::Response> {
    const auto report = health.readiness();
    std::string body = "{\"status\":";
    body += report.ready ? "\"ready\"" : (report.draining ? "\"draining\"" : "\"not-ready\"");
    body += ",\"checks\":{";
    bool first = true;
    for (const auto& [name, state] : report.checks) {
      if (!first) body += ',';
      first = false;
      append_json_string(body, name);
      body += ":{\"ok\":";
      body += state.ok ? "true" : "false";
      body += ",\"detail\":";
      append_json_string(body, state.detail);
      body += '}';
    }
    body += "}}";
    co_return http::Response::json(report.ready ? 200 : 503, std::move(body));
  });

  http::Handler metrics = [&registry, update = std::move(metrics_update.update)](
                              http::Request&) -> boost::asio::awaitable<http::Response> {
    if (update) update();
    http::Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = registry.render();
    co_return r;
  };
  if (metrics_update.store_threads != nullptr)
    metrics = metrics_update.store_threads->wrap(std::move(metrics));
  if (metrics_update.access) {
    // Refused before anything is computed or read.
    metrics = [access = std::move(metrics_update.access), inner = std::move(metrics)](
                  http::Request& req) -> boost::asio::awaitable<http::Response> {
      if (auto refused = access(req)) co_return std::move(*refused);
      co_return co_await inner(req);
    };
  }
  router.add("GET", "/metrics", std::move(metrics));
}

}  // namespace sdoh::ops
