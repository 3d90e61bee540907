#include "gateway/ops/ops_api.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sdoh::ops {
namespace {

using ::testing::HasSubstr;

constexpr const char* kOps = "ops-token-0123456789";
constexpr const char* kAdmin = "admin-token-0123456789";

// Small fakes of the store's ports: what the routes read, written out.
class FakeOutbox final : public pipeline::Outbox {
 public:
  Result<std::vector<pipeline::PendingEvent>> pending_events(std::int64_t, int) const override {
    return std::vector<pipeline::PendingEvent>{};
  }
  void mark_delivered(std::vector<pipeline::DeliveredEvent>) override {}
  Result<void> dead_letter_event(std::int64_t, const pipeline::DeadLetterRecord&,
                                 std::optional<pipeline::OutboxEvent>) override {
    return {};
  }
  Result<pipeline::EventOrigin> event_origin(std::int64_t) const override {
    return fail(Error::not_found("none"));
  }
  Result<std::vector<pipeline::UndeliveredRef>> undelivered_refs() const override {
    return std::vector<pipeline::UndeliveredRef>{};
  }
  Result<pipeline::DeliveryOffsets> delivery_offsets() const override {
    return pipeline::DeliveryOffsets{};
  }
  void flush() override {}
  pipeline::StoreStats stats() const override { return {7, 7000, 0, 2}; }
  CheckState health() const override { return {true, "open"}; }
};

class FakeReads final : public pipeline::OpsReads {
 public:
  Result<std::vector<pipeline::HeldReferral>> held_referrals(const std::string& reason,
                                                             int) const override {
    asked_reason = reason;
    return std::vector<pipeline::HeldReferral>{
        {"r-1", "food-insecurity", "no-route", "EHR^PEDS_A", "", 1'796'655'600'000}};
  }
  Result<pipeline::OutboundSummary> outbound_summary() const override {
    return pipeline::OutboundSummary{3, 1, 0, 1};
  }
  mutable std::string asked_reason;
};

class FakeDeadLetters final : public pipeline::DeadLetters {
 public:
  Result<std::vector<pipeline::DeadLetterInfo>> dead_letters(int, bool) const override {
    return std::vector<pipeline::DeadLetterInfo>{letter(false)};
  }
  Result<pipeline::DeadLetterInfo> dead_letter(const std::string& id,
                                               bool with_payload) const override {
    if (id != "dl-1") return fail(Error::not_found("no dead letter " + id));
    return letter(with_payload);
  }
  Result<pipeline::ReplayResult> replay_event(const std::string&) override {
    return fail(Error::internal("not an event"));
  }
  std::int64_t dead_letters_waiting() const override { return 1; }

  static pipeline::DeadLetterInfo letter(bool with_payload) {
    pipeline::DeadLetterInfo d;
    d.dead_letter_id = "dl-1";
    d.created_at_ms = 1'796'655'600'000;
    d.stage = "validate";
    d.protocol = "hl7v2";
    d.sender = "EHR^PEDS_A";
    d.message_type = "ORU^R01";
    d.payload_kept = true;
    if (with_payload) d.payload = "MSH|^~\\&|";
    return d;
  }
};

class OpsApi : public ::testing::Test {
 protected:
  OpsApi() : access_(kOps, kAdmin, true) {
    health_.add_check("store", [] { return CheckState{true, "open"}; });
    OpsApiSources s;
    s.access = &access_;
    s.health = &health_;
    s.build = {"1.2.3", "abc"};
    s.mode = "dev";
    s.started = std::chrono::steady_clock::now();
    s.throughput = &throughput_;
    s.delivery_lag = &lag_;
    s.outbox = &outbox_;
    s.kafka = [] { return KafkaState{false, "127.0.0.1:9092", true, "broker down"}; };
    s.reads = &reads_;
    s.dead_letters = &letters_;
    s.replay_message = [this](const pipeline::DeadLetterInfo& d)
        -> boost::asio::awaitable<Result<pipeline::ReplayResult>> {
      ++replays_;
      co_return pipeline::ReplayResult{d.dead_letter_id, "replayed: 2 event(s) committed", 2};
    };
    add_ops_api_routes(router_, std::move(s));
  }

  http::Response call(const std::string& method, const std::string& target, const char* token) {
    http::Request req;
    req.method = method;
    const auto q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos) req.query = target.substr(q + 1);
    if (token != nullptr) req.headers.push_back({"Authorization", std::string("Bearer ") + token});
    auto m = router_.match(method, req.path);
    EXPECT_EQ(m.status, 0u) << target;
    req.params = m.params;
    boost::asio::io_context ioc;
    auto fut = boost::asio::co_spawn(ioc, (*m.handler)(req), boost::asio::use_future);
    ioc.run();
    return fut.get();
  }

  OpsAccess access_;
  Health health_;
  Throughput throughput_;
  DeliveryLag lag_;
  FakeOutbox outbox_;
  FakeReads reads_;
  FakeDeadLetters letters_;
  int replays_ = 0;
  http::Router router_;
};

TEST_F(OpsApi, AccessSaysTheCallersRoleWithoutATokenToo) {
  EXPECT_EQ(call("GET", "/ops/api/v1/access", nullptr).body,
            R"({"role":"none","open":false,"tokensConfigured":true})");
  EXPECT_EQ(call("GET", "/ops/api/v1/access", kOps).body,
            R"({"role":"ops","open":false,"tokensConfigured":true})");
  EXPECT_EQ(call("GET", "/ops/api/v1/access", kAdmin).body,
            R"({"role":"admin","open":false,"tokensConfigured":true})");
}

TEST_F(OpsApi, EveryReadNeedsAToken) {
  for (const auto* path :
       {"/ops/api/v1/health", "/ops/api/v1/throughput", "/ops/api/v1/deliveries",
        "/ops/api/v1/held", "/ops/api/v1/dead-letters", "/ops/api/v1/dead-letters/dl-1"}) {
    EXPECT_EQ(call("GET", path, nullptr).status, 401u) << path;
    EXPECT_EQ(call("GET", path, kOps).status, 200u) << path;
  }
}

TEST_F(OpsApi, HealthGivesEveryCheckTheVersionAndTheMode) {
  auto r = call("GET", "/ops/api/v1/health", kOps);
  EXPECT_THAT(
      r.body,
      HasSubstr(
          R"({"status":"ready","ready":true,"checks":[{"name":"store","ok":true,"detail":"open"}],"version":"1.2.3","uptimeSeconds":0,"mode":"dev")"));
}

TEST_F(OpsApi, DeliveriesGivesTheBacklogKafkaAndTheOutboundQueue) {
  lag_.record(std::chrono::milliseconds(10));
  auto r = call("GET", "/ops/api/v1/deliveries", kOps);
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(
      r.body,
      R"({"outbox":{"backlog":7,"backlogBytes":7000,"oldestUndeliveredAgeSeconds":null,"deliveredLastHour":1,"lagSeconds":{"p50":0.012,"p99":0.012}},)"
      R"("kafka":{"connected":false,"brokers":"127.0.0.1:9092","embedded":true,"lastError":"broker down"},)"
      R"("outbound":{"waiting":3,"retrying":1,"oldestWaitingAgeSeconds":null,"givenUp":1},"deadLetters":{"waiting":1}})");
}

TEST_F(OpsApi, ThroughputListsTheHourBySender) {
  throughput_.record("hl7v2", "EHR^PEDS_A", "AA");
  auto r = call("GET", "/ops/api/v1/throughput", kOps);
  EXPECT_THAT(
      r.body,
      HasSubstr(R"("bySender":[{"sender":"EHR^PEDS_A","protocol":"hl7v2","codes":{"AA":1}}]}]})"));
}

TEST_F(OpsApi, HeldFiltersByAKnownReasonOnly) {
  auto r = call("GET", "/ops/api/v1/held?reason=no-route", kOps);
  EXPECT_EQ(reads_.asked_reason, "no-route");
  EXPECT_EQ(
      r.body,
      R"({"reason":"no-route","referrals":[{"referralId":"r-1","category":"food-insecurity","reason":"no-route","sender":"EHR^PEDS_A","agency":null,"since":"2026-12-07T15:00:00.000Z"}],"truncated":false})");
  auto bad = call("GET", "/ops/api/v1/held?reason=lost", kOps);
  EXPECT_EQ(bad.status, 400u);
  EXPECT_EQ(bad.content_type, "application/problem+json");
}

TEST_F(OpsApi, APayloadIsForAdminOnly) {
  EXPECT_EQ(call("GET", "/ops/api/v1/dead-letters/dl-1?payload=true", kOps).status, 403u);
  auto r = call("GET", "/ops/api/v1/dead-letters/dl-1?payload=true", kAdmin);
  EXPECT_EQ(r.status, 200u);
  EXPECT_THAT(r.body, HasSubstr(R"("payload":"MSH|^~\\&|")"));
  auto plain = call("GET", "/ops/api/v1/dead-letters/dl-1", kOps);
  EXPECT_THAT(plain.body, ::testing::Not(HasSubstr("payload\":")));
}

TEST_F(OpsApi, ReplayIsForAdminOnlyAndAnUnknownLetterIs404) {
  EXPECT_EQ(call("POST", "/ops/api/v1/dead-letters/dl-1/replay", kOps).status, 403u);
  EXPECT_EQ(replays_, 0);
  auto r = call("POST", "/ops/api/v1/dead-letters/dl-1/replay", kAdmin);
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body,
            R"({"deadLetterId":"dl-1","outcome":"replayed: 2 event(s) committed","events":2})");
  EXPECT_EQ(replays_, 1);
  auto missing = call("POST", "/ops/api/v1/dead-letters/dl-9/replay", kAdmin);
  EXPECT_EQ(missing.status, 404u);
  EXPECT_EQ(missing.content_type, "application/problem+json");
}

TEST_F(OpsApi, AnUnknownRouteIsAProblemToo) {
  auto r = router_.error_response("/ops/api/v1/nothing", 404, "not-found", "no such route");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(r.content_type, "application/problem+json");
  EXPECT_EQ(r.body,
            R"({"type":"about:blank","title":"not-found","status":404,"detail":"no such route"})");
}

}  // namespace
}  // namespace sdoh::ops
