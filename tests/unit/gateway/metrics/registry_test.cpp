#include "gateway/metrics/registry.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sdoh::metrics {
namespace {

using ::testing::HasSubstr;

TEST(Registry, RendersCounterWithHelpTypeAndLabels) {
  Registry r;
  auto& c = r.counter("sdoh_test_total", "Things counted.", {"route", "status"});
  c.with({"/healthz", "200"}).inc();
  c.with({"/healthz", "200"}).inc(2);
  EXPECT_EQ(r.render(),
            "# HELP sdoh_test_total Things counted.\n"
            "# TYPE sdoh_test_total counter\n"
            "sdoh_test_total{route=\"/healthz\",status=\"200\"} 3\n");
}

TEST(Registry, EscapesLabelValues) {
  Registry r;
  r.gauge("sdoh_g", "G.", {"v"}).with({"a\"b\\c\nd"}).set(1);
  EXPECT_THAT(r.render(), HasSubstr(R"(sdoh_g{v="a\"b\\c\nd"} 1)"));
}

TEST(Registry, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry r;
  auto& h = r.histogram("sdoh_latency_seconds", "Latency.", {}, {0.1, 1}).with();
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  EXPECT_EQ(r.render(),
            "# HELP sdoh_latency_seconds Latency.\n"
            "# TYPE sdoh_latency_seconds histogram\n"
            "sdoh_latency_seconds_bucket{le=\"0.1\"} 1\n"
            "sdoh_latency_seconds_bucket{le=\"1\"} 2\n"
            "sdoh_latency_seconds_bucket{le=\"+Inf\"} 3\n"
            "sdoh_latency_seconds_sum 5.55\n"
            "sdoh_latency_seconds_count 3\n");
}

TEST(Registry, GaugeCallbackIsEvaluatedAtScrape) {
  Registry r;
  double backlog = 4;
  r.gauge_callback("sdoh_backlog", "Backlog.", [&backlog] { return backlog; });
  EXPECT_THAT(r.render(), HasSubstr("sdoh_backlog 4\n"));
  backlog = 7;
  EXPECT_THAT(r.render(), HasSubstr("sdoh_backlog 7\n"));
}

TEST(Registry, DuplicateNameIsAProgrammingError) {
  Registry r;
  r.counter("sdoh_x_total", "X.");
  EXPECT_THROW(r.counter("sdoh_x_total", "X again."), std::logic_error);
}

TEST(Histogram, QuantileInterpolatesWithinBucket) {
  Histogram h({1, 2, 4});
  for (int i = 0; i < 100; ++i)
    h.observe(1.5);  // all in (1, 2]
  EXPECT_NEAR(h.quantile(0.5), 1.5, 1e-9);
  EXPECT_NEAR(h.quantile(0.99), 1.99, 1e-9);
}

TEST(Gauge, IncAndDec) {
  Gauge g;
  g.inc();
  g.inc();
  g.dec();
  EXPECT_EQ(g.value(), 1);
}

}  // namespace
}  // namespace sdoh::metrics
