// The measures routes (gateway/ops/measures_routes.cpp): the window a request asks for, the JSON
// the page reads, the access hook.
#include "gateway/ops/measures_routes.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/unit/support/run.hpp"

namespace sdoh::ops {
namespace {

constexpr std::int64_t kNow = 1'795'000'000'000;  // 2026-11-18T11:06:40Z
constexpr std::chrono::milliseconds kWindow{std::chrono::hours(24 * 395)};

TEST(RequestedWindow, DefaultsToTheMeasureWindow) {
  auto w = requested_window(std::nullopt, kNow, kWindow);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->from_ms, kNow - kWindow.count());
  EXPECT_EQ(w->to_ms, kNow);
}

TEST(RequestedWindow, TakesADurationBackFromNow) {
  EXPECT_EQ(requested_window("30d", kNow, kWindow)->from_ms, kNow - 30 * 86'400'000LL);
  EXPECT_EQ(requested_window("12h", kNow, kWindow)->from_ms, kNow - 12 * 3'600'000LL);
  EXPECT_EQ(requested_window("90m", kNow, kWindow)->from_ms, kNow - 90 * 60'000LL);
}

TEST(RequestedWindow, TakesAnInstantWithItsZone) {
  EXPECT_EQ(requested_window("2026-11-18T08:00:00Z", kNow, kWindow)->from_ms, 1'794'988'800'000);
  EXPECT_EQ(requested_window("2026-11-18T03:00:00.5-05:00", kNow, kWindow)->from_ms,
            1'794'988'800'500);
}

TEST(RequestedWindow, NeverReachesBeforeTheMeasureWindow) {
  EXPECT_EQ(requested_window("9999d", kNow, kWindow)->from_ms, kNow - kWindow.count());
}

TEST(RequestedWindow, RefusesWhatItCannotRead) {
  for (const char* bad : {"30", "30w", "-3d", "2026-11-18T08:00:00", "2026-13-01T00:00:00Z",
                          "yesterday", "2099-01-01T00:00:00Z"}) {
    auto w = requested_window(bad, kNow, kWindow);
    ASSERT_FALSE(w) << bad;
    EXPECT_EQ(w.error().where.expression, "since") << bad;
  }
}

class FixedTimelines final : public pipeline::TimelineReader {
 public:
  Result<std::vector<measures::ReferralTimeline>> timelines(std::int64_t) const override {
    return rows;
  }
  std::vector<measures::ReferralTimeline> rows;
};

http::Response get(http::Router& router, const std::string& target, std::string auth = "") {
  http::Request req;
  req.method = "GET";
  req.target = target;
  const auto q = target.find('?');
  req.path = target.substr(0, q);
  req.query = q == std::string::npos ? "" : target.substr(q + 1);
  if (!auth.empty()) req.headers.push_back({"Authorization", auth});
  auto m = router.match("GET", req.path);
  EXPECT_EQ(m.status, 0u) << target;
  return test::run((*m.handler)(req));
}

TEST(MeasuresRoutes, EquityAnswersPerTheContractWithSuppressedGroupsNull) {
  FixedTimelines store;
  for (int i = 0; i < 12; ++i) {
    measures::ReferralTimeline t;
    t.referral_id = "r" + std::to_string(i);
    t.agency = "ehv-durham";
    t.status = i < 6 ? "completed" : "requested";
    t.outcome = i < 6 ? "completed" : "";
    t.created_ms = t.released_ms = kNow - 86'400'000;
    t.closed_ms = i < 6 ? kNow : 0;
    t.race = i < 11 ? "2054-5" : "2028-9";
    store.rows.push_back(t);
  }
  http::Router router;
  MeasuresRouteOptions o;
  o.store = &store;
  o.clock = [] { return kNow; };
  o.sla = [](std::string_view) { return std::chrono::hours(72); };
  add_measures_routes(router, o);
  auto r = get(router, "/ops/api/v1/equity?since=30d");
  ASSERT_EQ(r.status, 200u) << r.body;
  rapidjson::Document doc;
  doc.Parse(r.body.c_str());
  ASSERT_TRUE(doc.IsObject()) << r.body;
  EXPECT_EQ(doc["minCell"].GetInt(), 11);
  EXPECT_EQ(doc["window"]["measureWindowDays"].GetInt(), 395);
  EXPECT_STREQ(doc["window"]["to"].GetString(), "2026-11-18T11:06:40.000Z");
  EXPECT_EQ(doc["overall"]["referrals"].GetInt(), 12);
  EXPECT_EQ(doc["overall"]["completionRate"].GetDouble(), 0.5);
  EXPECT_EQ(doc["overall"]["medianDaysToClose"].GetDouble(), 1.0);
  const auto& race = doc["dimensions"][0];
  EXPECT_STREQ(race["dimension"].GetString(), "race");
  const auto& asian = race["groups"][0];
  EXPECT_STREQ(asian["group"].GetString(), "2028-9");
  EXPECT_TRUE(asian["suppressed"].GetBool());
  EXPECT_TRUE(asian["referrals"].IsNull());
  EXPECT_TRUE(asian["completionRate"].IsNull());
  EXPECT_TRUE(asian["gapVsOverall"].IsNull());
  const auto& black = race["groups"][1];
  EXPECT_STREQ(black["label"].GetString(), "Black or African American");
  EXPECT_EQ(black["referrals"].GetInt(), 11);
  EXPECT_EQ(black["completed"].GetInt(), 6);
  EXPECT_STREQ(race["largestGap"]["group"].GetString(), "2054-5");
}

TEST(MeasuresRoutes, ABadSinceIsAProblemNamingIt) {
  FixedTimelines store;
  http::Router router;
  MeasuresRouteOptions o;
  o.store = &store;
  add_measures_routes(router, o);
  auto r = get(router, "/ops/api/v1/referrals?since=soon");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(r.content_type, "application/problem+json");
  EXPECT_NE(r.body.find("\"status\":400"), std::string::npos);
  EXPECT_NE(r.body.find("since must be"), std::string::npos);
}

TEST(MeasuresRoutes, TheAccessHookGuardsEveryRoute) {
  FixedTimelines store;
  http::Router router;
  MeasuresRouteOptions o;
  o.store = &store;
  o.access = [](const http::Request& req) -> std::optional<http::Response> {
    if (req.header("Authorization")) return std::nullopt;
    return http::Response::json(401, "{}");
  };
  add_measures_routes(router, o);
  EXPECT_EQ(get(router, "/ops/api/v1/referrals").status, 401u);
  EXPECT_EQ(get(router, "/ops/api/v1/equity").status, 401u);
  EXPECT_EQ(get(router, "/ops/api/v1/referrals", "Bearer x").status, 200u);
}

}  // namespace
}  // namespace sdoh::ops
