// FHIR Subscriptions (Subscriptions R5 Backport IG, R4): the notification Bundle, the signature,
// retries and the error threshold, and what an agency may subscribe to.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "adapters/fhir/subscription_notification.hpp"
#include "adapters/fhir/subscription_resource.hpp"

namespace sdoh::fhir {
namespace {

constexpr const char* kBase = "https://gw.example.org/fhir";

pipeline::SubscriptionRow active(std::string content) {
  pipeline::SubscriptionRow s;
  s.id = "sub1";
  s.agency_id = "ehv-durham";
  s.status = "active";
  s.endpoint = "https://agency.example.org/hook";
  s.content = std::move(content);
  s.events_since_start = 7;
  return s;
}

pipeline::NotificationRow event(std::int64_t number, std::string task) {
  pipeline::NotificationRow n;
  n.seq = number;
  n.event_number = number;
  n.referral_id = "task-1";
  n.sequence = 3;
  n.status = "accepted";
  n.task_json = std::move(task);
  n.created_at = "2026-11-25T10:00:00.000Z";
  return n;
}

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  EXPECT_FALSE(d.HasParseError()) << text;
  return d;
}

// The value of the Parameters parameter `name` (as a string), "" when absent.
std::string param(const rapidjson::Value& parameters, const char* name, const char* value_key) {
  for (const auto& p : parameters["parameter"].GetArray()) {
    if (std::string(p["name"].GetString()) == name) {
      const auto& v = p[value_key];
      return v.IsObject() ? v["reference"].GetString() : v.GetString();
    }
  }
  return "";
}

TEST(SubscriptionNotification, HandshakeIsAHistoryBundleWithTheStatusFirst) {
  NotificationContent c;
  c.type = NotificationType::kHandshake;
  c.base = kBase;
  c.subscription = active("id-only");
  c.subscription.status = "requested";
  c.timestamp = "2026-11-25T10:00:00Z";
  c.bundle_id = "b1";
  auto d = parse(notification_bundle(c));
  EXPECT_STREQ(d["resourceType"].GetString(), "Bundle");
  EXPECT_STREQ(d["type"].GetString(), "history");
  EXPECT_STREQ(d["meta"]["profile"][0].GetString(),
               "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
               "backport-subscription-notification-r4");
  ASSERT_EQ(d["entry"].Size(), 1u);
  const auto& status = d["entry"][0]["resource"];
  EXPECT_STREQ(status["resourceType"].GetString(), "Parameters");
  EXPECT_EQ(param(status, "type", "valueCode"), "handshake");
  EXPECT_EQ(param(status, "status", "valueCode"), "requested");
  EXPECT_EQ(param(status, "subscription", "valueReference"),
            "https://gw.example.org/fhir/Subscription/sub1");
  EXPECT_EQ(param(status, "topic", "valueCanonical"),
            "https://gw.example.org/fhir/SubscriptionTopic/agency-referrals");
  EXPECT_EQ(param(status, "events-since-subscription-start", "valueString"), "7");
}

TEST(SubscriptionNotification, IdOnlyNamesTheTaskAndCarriesNoResource) {
  NotificationContent c;
  c.base = kBase;
  c.subscription = active("id-only");
  c.events = {event(7, R"({"resourceType":"Task","id":"task-1","status":"accepted"})")};
  c.included = {{"ServiceRequest/sr-1", R"({"resourceType":"ServiceRequest","id":"sr-1"})"}};
  c.timestamp = "2026-11-25T10:00:00Z";
  c.bundle_id = "b2";
  auto d = parse(notification_bundle(c));
  ASSERT_EQ(d["entry"].Size(), 1u);
  const auto& status = d["entry"][0]["resource"];
  EXPECT_EQ(param(status, "type", "valueCode"), "event-notification");
  const auto& ev = status["parameter"][5];
  EXPECT_STREQ(ev["name"].GetString(), "notification-event");
  EXPECT_STREQ(ev["part"][0]["valueString"].GetString(), "7");
  EXPECT_STREQ(ev["part"][2]["valueReference"]["reference"].GetString(),
               "https://gw.example.org/fhir/Task/task-1");
}

TEST(SubscriptionNotification, FullResourceAddsTheTaskAfterTheStatus) {
  NotificationContent c;
  c.base = kBase;
  c.subscription = active("full-resource");
  c.events = {event(7, R"({"resourceType":"Task","id":"task-1","status":"accepted"})")};
  c.included = {{"ServiceRequest/sr-1", R"({"resourceType":"ServiceRequest","id":"sr-1"})"}};
  c.timestamp = "2026-11-25T10:00:00Z";
  c.bundle_id = "b3";
  auto d = parse(notification_bundle(c));
  ASSERT_EQ(d["entry"].Size(), 3u);
  EXPECT_STREQ(d["entry"][2]["fullUrl"].GetString(),
               "https://gw.example.org/fhir/ServiceRequest/sr-1");
  EXPECT_STREQ(d["entry"][2]["resource"]["resourceType"].GetString(), "ServiceRequest");
  EXPECT_STREQ(d["entry"][1]["fullUrl"].GetString(), "https://gw.example.org/fhir/Task/task-1");
  EXPECT_STREQ(d["entry"][1]["resource"]["status"].GetString(), "accepted");
  EXPECT_STREQ(d["entry"][1]["request"]["method"].GetString(), "PUT");
}

TEST(SubscriptionSignature, IsHmacSha256OfTimestampDotBodyInHex) {
  // Expected value computed with Python's hmac module.
  EXPECT_EQ(signature("0123456789abcdef-secret", "1796000000", R"({"resourceType":"Bundle"})"),
            "4a87711498e3179c0b97dc85d2ed73c213010d5f441026477d763acbcb7695a7");
}

TEST(SubscriptionSignature, GeneratedSecretsAre64HexDigitsAndDiffer) {
  const auto a = new_secret();
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, new_secret());
}

TEST(SubscriptionRetry, BacksOffExponentiallyFromTheFirstFailure) {
  RetryPolicy p;
  p.initial = std::chrono::milliseconds(1000);
  p.max = std::chrono::milliseconds(300'000);
  auto first = after_failure(p, 0, 0, 10'000, 0.0);
  EXPECT_FALSE(first.give_up);
  EXPECT_EQ(first.failures, 1);
  EXPECT_EQ(first.first_failure_ms, 10'000);
  EXPECT_EQ(first.next_attempt_ms, 11'000);
  auto third = after_failure(p, 2, 10'000, 20'000, 0.0);
  EXPECT_EQ(third.failures, 3);
  EXPECT_EQ(third.first_failure_ms, 10'000);
  EXPECT_EQ(third.next_attempt_ms, 24'000);
  auto capped = after_failure(p, 8, 10'000, 20'000, 0.0);
  EXPECT_EQ(capped.next_attempt_ms, 20'000 + 256'000);
}

TEST(SubscriptionRetry, GivesUpAfterMaxAttemptsInARow) {
  RetryPolicy p;
  p.max_attempts = 10;
  EXPECT_FALSE(after_failure(p, 8, 1, 2, 0.0).give_up);
  EXPECT_TRUE(after_failure(p, 9, 1, 2, 0.0).give_up);
}

TEST(SubscriptionRetry, GivesUpWhenFailingLongerThanGiveUpAfter) {
  RetryPolicy p;
  p.max_attempts = 1000;
  p.give_up_after = std::chrono::hours(24);
  const std::int64_t day = 24LL * 3600 * 1000;
  EXPECT_FALSE(after_failure(p, 3, 1'000, 1'000 + day - 1, 0.0).give_up);
  EXPECT_TRUE(after_failure(p, 3, 1'000, 1'000 + day, 0.0).give_up);
}

std::string subscription_body(const std::string& endpoint, const std::string& extra = "") {
  return R"({"resourceType":"Subscription","status":"requested","reason":"r",)"
         R"("criteria":"https://gw.example.org/fhir/SubscriptionTopic/agency-referrals",)" +
         extra + R"("channel":{"type":"rest-hook","endpoint":")" + endpoint +
         R"(","payload":"application/fhir+json","_payload":{"extension":[{"url":)"
         R"("http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/)"
         R"(backport-payload-content","valueCode":"full-resource"}]},)"
         R"("extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/)"
         R"(StructureDefinition/backport-heartbeat-period","valueUnsignedInt":60}]}})";
}

const Client kAgency{"ehv-durham", "agency", "ehv-durham", "EHV", std::nullopt};

TEST(SubscriptionResource, AnAgencySubscribesToItsOwnReferrals) {
  auto row = read_subscription(subscription_body("https://agency.example.org/hook"), kAgency,
                               {kBase, false});
  ASSERT_TRUE(row) << row.error().operation_outcome();
  EXPECT_EQ(row->agency_id, "ehv-durham");
  EXPECT_EQ(row->status, "requested");
  EXPECT_EQ(row->content, "full-resource");
  EXPECT_EQ(row->heartbeat_seconds, 60);
  EXPECT_EQ(row->secret, "");
}

TEST(SubscriptionResource, AnAgencyCannotSubscribeToAnotherAgencysReferrals) {
  const std::string filter =
      R"("_criteria":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/)"
      R"(StructureDefinition/backport-filter-criteria","valueString":)"
      R"("Task?owner=Organization/wic-east"}]},)";
  auto row = read_subscription(subscription_body("https://agency.example.org/hook", filter),
                               kAgency, {kBase, false});
  ASSERT_FALSE(row);
  EXPECT_EQ(row.error().http_status(), 403);
}

TEST(SubscriptionResource, AClinicCannotSubscribe) {
  const Client clinic{"clinic-a", "clinic", "PEDS_A", "Clinic", std::nullopt};
  auto row = read_subscription(subscription_body("https://agency.example.org/hook"), clinic,
                               {kBase, false});
  ASSERT_FALSE(row);
  EXPECT_EQ(row.error().http_status(), 403);
}

TEST(SubscriptionResource, ProductionRefusesPlainHttpWhateverTheHost) {
  auto remote = read_subscription(subscription_body("http://agency.example.org/hook"), kAgency,
                                  {kBase, false});
  ASSERT_FALSE(remote);
  EXPECT_EQ(remote.error().http_status(), 422);
  EXPECT_NE(remote.error().operation_outcome().find("Subscription.channel.endpoint"),
            std::string::npos);
  // Not to this machine either: an endpoint is never a way to reach the gateway's neighbours.
  EXPECT_FALSE(
      read_subscription(subscription_body("http://127.0.0.1:9000/hook"), kAgency, {kBase, false}));
  EXPECT_TRUE(
      read_subscription(subscription_body("https://127.0.0.1:9000/hook"), kAgency, {kBase, false}));
  EXPECT_TRUE(read_subscription(subscription_body("http://agency.example.org/hook"), kAgency,
                                {kBase, true}));
}

TEST(SubscriptionResource, OnlyTheAgencyReferralsTopicIsOffered) {
  auto body = subscription_body("https://agency.example.org/hook");
  body.replace(body.find("agency-referrals"), 16, "everything");
  auto row = read_subscription(body, kAgency, {kBase, false});
  ASSERT_FALSE(row);
  EXPECT_NE(row.error().operation_outcome().find("Subscription.criteria"), std::string::npos);
}

TEST(SubscriptionResource, EndIsAnInstantWithAZone) {
  EXPECT_EQ(instant_ms("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(instant_ms("2026-12-01T00:00:00.250Z"), 1'796'083'200'250);
  EXPECT_EQ(instant_ms("2026-11-30T19:00:00-05:00"), 1'796'083'200'000);
  EXPECT_EQ(instant_ms("2026-12-01"), std::nullopt);
  EXPECT_EQ(instant_ms("2026-12-01T00:00:00"), std::nullopt);
  EXPECT_EQ(instant_ms("2026-02-30T00:00:00Z"), std::nullopt);
  auto body = subscription_body("https://agency.example.org/hook", R"("end":"tomorrow",)");
  auto row = read_subscription(body, kAgency, {kBase, false});
  ASSERT_FALSE(row);
  EXPECT_NE(row.error().operation_outcome().find("Subscription.end"), std::string::npos);
}

TEST(SubscriptionResource, TheSecretIsShownOnlyWhenAsked) {
  auto row = active("id-only");
  row.secret = "s3cr3t-s3cr3t-s3cr3t";
  EXPECT_EQ(subscription_json(row, kBase, false).find("s3cr3t"), std::string::npos);
  EXPECT_NE(subscription_json(row, kBase, true).find("s3cr3t"), std::string::npos);
  auto d = parse(subscription_json(row, kBase, false));
  EXPECT_STREQ(d["criteria"].GetString(),
               "https://gw.example.org/fhir/SubscriptionTopic/agency-referrals");
  EXPECT_STREQ(d["channel"]["type"].GetString(), "rest-hook");
}

}  // namespace
}  // namespace sdoh::fhir
