#include "gateway/ops/ops_routes.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sdoh::ops {
namespace {

using ::testing::HasSubstr;

class OpsRoutes : public ::testing::Test {
 protected:
  OpsRoutes() {
    add_ops_routes(router_, health_, registry_, build_, std::chrono::steady_clock::now());
  }

  http::Response get(const std::string& path) {
    auto m = router_.match("GET", path);
    EXPECT_EQ(m.status, 0u);
    http::Request req;
    req.method = "GET";
    req.path = path;
    boost::asio::io_context ioc;
    auto fut = boost::asio::co_spawn(ioc, (*m.handler)(req), boost::asio::use_future);
    ioc.run();
    return fut.get();
  }

  metrics::Registry registry_;
  Health health_;
  http::Router router_;
  BuildInfo build_{"1.2.3", "abc"};
};

TEST_F(OpsRoutes, HealthzIsAliveWithVersion) {
  auto r = get("/healthz");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_THAT(r.body, HasSubstr("\"status\":\"ok\""));
  EXPECT_THAT(r.body, HasSubstr("\"version\":\"1.2.3\""));
}

TEST_F(OpsRoutes, ReadyzIs200WhenEveryCheckPasses) {
  health_.add_check("store", [] { return CheckState{true, "open"}; });
  health_.add_check("kafka", [] { return CheckState{true, "1 broker(s)"}; });
  auto r = get("/readyz");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(
      r.body,
      R"json({"status":"ready","checks":{"store":{"ok":true,"detail":"open"},"kafka":{"ok":true,"detail":"1 broker(s)"}}})json");
}

TEST_F(OpsRoutes, ReadyzIs503WhenOneCheckFails) {
  health_.add_check("store", [] { return CheckState{true, "open"}; });
  health_.add_check("kafka", [] { return CheckState{false, "metadata request failed"}; });
  auto r = get("/readyz");
  EXPECT_EQ(r.status, 503u);
  EXPECT_THAT(r.body, HasSubstr("\"status\":\"not-ready\""));
  EXPECT_THAT(r.body, HasSubstr("\"kafka\":{\"ok\":false,\"detail\":\"metadata request failed\"}"));
}

TEST_F(OpsRoutes, ReadyzIs503WhileDraining) {
  health_.add_check("store", [] { return CheckState{true, "open"}; });
  health_.set_draining();
  auto r = get("/readyz");
  EXPECT_EQ(r.status, 503u);
  EXPECT_THAT(r.body, HasSubstr("\"status\":\"draining\""));
}

TEST_F(OpsRoutes, MetricsUsesPrometheusTextFormat) {
  register_process_metrics(registry_, build_, std::chrono::system_clock::now());
  auto r = get("/metrics");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(r.body, HasSubstr("# TYPE sdoh_process_uptime_seconds gauge\n"));
  EXPECT_THAT(r.body, HasSubstr("sdoh_build_info{version=\"1.2.3\",commit=\"abc\"} 1\n"));
}

}  // namespace
}  // namespace sdoh::ops
