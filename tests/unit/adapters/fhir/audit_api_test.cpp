// GET /fhir/AuditEvent through the Router as the HTTP server calls it, over a fake audit trail:
// who may read, how the search parameters become the store's query, and FHIR dates as ranges.
#include "adapters/fhir/audit_api.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

namespace sdoh::fhir {
namespace {

namespace asio = boost::asio;

class FakeTrail final : public pipeline::AuditTrail {
 public:
  asio::awaitable<Result<void>> record(std::vector<audit::AuditRecord>) override {
    co_return Result<void>{};
  }
  Result<pipeline::AuditPage> search_audit(const pipeline::AuditQuery& q) const override {
    last = q;
    return pipeline::AuditPage{1, {R"({"resourceType":"AuditEvent","id":"7"})"}};
  }
  Result<std::optional<std::string>> audit_event(std::int64_t seq) const override {
    if (seq != 7) return std::optional<std::string>();
    return std::optional<std::string>(R"({"resourceType":"AuditEvent","id":"7"})");
  }
  mutable pipeline::AuditQuery last;
};

class AuditApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    add_audit_routes(
        router_, trail_,
        {&admin_, [](const http::Request&) { return std::string("https://gw/fhir"); }, nullptr});
  }
  http::Response get(std::string target, std::string token = "admin-token-0123456789") {
    http::Request req;
    req.method = "GET";
    req.target = target;
    const auto q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos) req.query = target.substr(q + 1);
    if (!token.empty()) req.headers.push_back({"Authorization", "Bearer " + token});
    auto match = router_.match(req.method, req.path);
    EXPECT_NE(match.handler, nullptr);
    req.params = match.params;
    asio::io_context ioc;
    auto fut = asio::co_spawn(ioc, (*match.handler)(req), asio::use_future);
    ioc.run();
    return fut.get();
  }
  identity::AdminAccess admin_{"admin-token-0123456789"};
  FakeTrail trail_;
  http::Router router_;
};

TEST_F(AuditApiTest, OnlyTheAdminReadsTheTrail) {
  EXPECT_EQ(get("/fhir/AuditEvent", "").status, 401u);
  EXPECT_EQ(get("/fhir/AuditEvent", "an-agency-token-0123456789").status, 401u);
  EXPECT_EQ(get("/fhir/AuditEvent/7", "").status, 401u);
  EXPECT_EQ(get("/fhir/AuditEvent").status, 200u);
}

TEST_F(AuditApiTest, SearchParametersBecomeTheQuery) {
  auto r =
      get("/fhir/AuditEvent?entity=Task/t1&agent=Organization/ehv-durham"
          "&date=ge2026-12-07&date=lt2026-12-08T00:00:00Z&_count=5");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(trail_.last.entity, "Task/t1");
  EXPECT_EQ(trail_.last.agent, "ehv-durham");
  EXPECT_EQ(trail_.last.from_ms, 1'796'601'600'000);  // 2026-12-07T00:00:00Z
  EXPECT_EQ(trail_.last.to_ms, 1'796'687'999'999);
  EXPECT_EQ(trail_.last.count, 5);
  EXPECT_NE(r.body.find(R"("fullUrl":"https://gw/fhir/AuditEvent/7")"), std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find(R"("type":"searchset","total":1)"), std::string::npos) << r.body;
}

TEST_F(AuditApiTest, AnUnknownParameterOrABadDateIsA400) {
  EXPECT_EQ(get("/fhir/AuditEvent?patient=Patient/p1").status, 400u);
  EXPECT_EQ(get("/fhir/AuditEvent?date=ge2026-12-07T10:00").status, 400u) << "a time needs a zone";
  EXPECT_EQ(get("/fhir/AuditEvent?date=ap2026-12-07").status, 400u);
}

TEST_F(AuditApiTest, ReadByIdOr404) {
  EXPECT_EQ(get("/fhir/AuditEvent/7").status, 200u);
  EXPECT_EQ(get("/fhir/AuditEvent/8").status, 404u);
  EXPECT_EQ(get("/fhir/AuditEvent/abc").status, 404u);
}

TEST(FhirInstantRange, ADateIsItsWholeDayAndADateTimeItsPrecision) {
  using Range = std::pair<std::int64_t, std::int64_t>;
  EXPECT_EQ(fhir_instant_range("2026-12-07"), (Range{1'796'601'600'000, 1'796'687'999'999}));
  EXPECT_EQ(fhir_instant_range("2026-12-07T01:02:03Z"),
            (Range{1'796'605'323'000, 1'796'605'323'999}));
  EXPECT_EQ(fhir_instant_range("2026-12-07T01:02:03.5-05:00"),
            (Range{1'796'623'323'500, 1'796'623'323'500}));
  EXPECT_FALSE(fhir_instant_range("2026-02-30"));
  EXPECT_FALSE(fhir_instant_range("yesterday"));
}

}  // namespace
}  // namespace sdoh::fhir
