#include "gateway/events/event.hpp"

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gateway/events/schema_catalog.hpp"

namespace sdoh::events {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<SchemaCatalog> catalog() {
  auto c = SchemaCatalog::load(std::filesystem::path(SDOH_SOURCE_DIR) / "schemas" / "events");
  EXPECT_TRUE(c) << c.error().message;
  return c ? std::move(*c) : nullptr;
}

Event status_event() {
  Event e;
  e.type = EventType::kReferralStatus;
  e.id = event_id("fhir|ehv-durham|Task/abc|v2", 0);
  e.source = event_source("sdoh-gateway-dev");
  e.subject = "abc";
  e.time = now_rfc3339();
  e.topic = "sdoh.referral-status.v1";
  e.key = "abc";
  e.data =
      R"({"referralId":"abc","status":"accepted","previousStatus":"requested","businessStatus":"family-contacted",)"
      R"("reason":null,"updatedBy":{"role":"agency","id":"ehv-durham"},"time":")" +
      e.time + R"(","sequence":2,"agency":{"id":"ehv-durham"},"category":"food-insecurity"})";
  return e;
}

TEST(Event, IdIsDeterministicPerSourceAndPosition) {
  EXPECT_EQ(event_id("hl7v2|EHR^A|A1000001", 0), event_id("hl7v2|EHR^A|A1000001", 0));
  EXPECT_NE(event_id("hl7v2|EHR^A|A1000001", 0), event_id("hl7v2|EHR^A|A1000001", 1));
  EXPECT_NE(event_id("hl7v2|EHR^A|A1000001", 0), event_id("hl7v2|EHR^B|A1000001", 0));
  EXPECT_THAT(event_id("x", 0), ::testing::MatchesRegex("^[0-9a-f]{32}$"));
}

TEST(Event, EnvelopeIsAValidCloudEvent) {
  auto c = catalog();
  ASSERT_TRUE(c);
  const auto text = status_event().envelope();
  auto valid = c->validate_event(text);
  EXPECT_TRUE(valid) << valid.error().message << "\n" << text;
  EXPECT_THAT(text, HasSubstr(R"("specversion":"1.0")"));
  EXPECT_THAT(text, HasSubstr(R"("type":"org.sdoh.referral.status.v1")"));
  EXPECT_THAT(text, HasSubstr(R"("dataschema":"urn:sdoh:schema:referral-status:v1")"));
}

TEST(Event, CatalogueRejectsDataThatBreaksTheSchema) {
  auto c = catalog();
  ASSERT_TRUE(c);
  auto e = status_event();
  e.data.replace(e.data.find("\"accepted\""), 10, "\"approved\"");
  auto valid = c->validate_event(e.envelope());
  ASSERT_FALSE(valid);
  EXPECT_THAT(valid.error().message, HasSubstr("/status"));
}

TEST(Event, ATraceparentGoesIntoTheEnvelopeOnlyWhenItIsOne) {
  constexpr std::string_view kTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  EXPECT_TRUE(is_traceparent(kTrace));
  EXPECT_FALSE(is_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  EXPECT_FALSE(is_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
  EXPECT_FALSE(is_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(is_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(is_traceparent("not a trace"));
  auto c = catalog();
  const auto plain = status_event().envelope();
  const auto traced = with_traceparent(plain, kTrace);
  EXPECT_THAT(traced, HasSubstr(R"("traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-)"));
  auto valid = c->validate_event(traced);
  EXPECT_TRUE(valid) << valid.error().message;
  EXPECT_EQ(with_traceparent(plain, "00-bad"), plain);
  EXPECT_EQ(with_traceparent(plain, ""), plain);
}

TEST(Event, TimeIsRfc3339Utc) {
  EXPECT_THAT(now_rfc3339(),
              ::testing::MatchesRegex(
                  "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$"));
}

TEST(Event, Rfc3339InstantsReadBackAsTheirMilliseconds) {
  EXPECT_EQ(ms_from_rfc3339("2026-11-20T15:30:00.000Z"), 1795188600000);
  EXPECT_EQ(ms_from_rfc3339(rfc3339_from_ms(1795188600123)), 1795188600123);
  EXPECT_EQ(ms_from_rfc3339("2026-11-20T10:30:00.5-05:00"), 1795188600500);
  EXPECT_EQ(ms_from_rfc3339("1970-01-01T00:00:00Z"), 0);
  for (const char* bad : {"", "2026-11-20", "2026-11-20T15:30:00", "2026-02-30T00:00:00Z",
                          "2026-11-20T25:00:00Z", "2026-11-20T15:30:00.Z", "2026-11-20T15:30:00Zx"})
    EXPECT_EQ(ms_from_rfc3339(bad), std::nullopt) << bad;
}

TEST(Event, CatalogueRefusesHostileJsonWithoutCrashing) {
  auto c = catalog();
  ASSERT_TRUE(c);
  auto deep = c->validate_event(std::string(150'000, '{'));
  ASSERT_FALSE(deep);
  EXPECT_NE(deep.error().message.find("not valid JSON"), std::string::npos);
  auto nested = c->validate_event(std::string(150'000, '['));
  ASSERT_FALSE(nested);
  EXPECT_NE(nested.error().message.find("nested deeper than 64 levels"), std::string::npos);
  auto surrogate = c->validate("urn:sdoh:schema:referral-update:v1", "{\"a\":\"\\udc00\"}");
  ASSERT_FALSE(surrogate);
}

}  // namespace
}  // namespace sdoh::events
