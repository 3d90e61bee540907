// gateway/events/kafka_binding.cpp: a CloudEvent in the Kafka binding's binary mode (ce_*
// headers, the value is data) read as the same event in structured mode, as SDKs send it.
#include "gateway/events/kafka_binding.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/unit/support/shipped.hpp"

namespace sdoh::events {
namespace {

using ::testing::HasSubstr;

KafkaHeaders sdk_headers() {
  // What the CloudEvents SDKs' Kafka binding writes by default.
  return {{"ce_specversion", "1.0"},
          {"ce_id", "7c1e2f0a-5b3d-4e8f-9a61-2d4c8b0e3f15"},
          {"ce_source", "urn:sdoh-agency:ehv-durham"},
          {"ce_type", "org.sdoh.referral.update.v1"},
          {"ce_time", "2026-11-22T14:05:00Z"},
          {"ce_traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
          {"content-type", "application/json"},
          {"x-producer", "not an attribute"}};
}

constexpr const char* kData =
    R"({"referralId":"d6f9b8e1f26703acd5c0e7bbf1f3f27a","status":"accepted",)"
    R"("businessStatus":null,"reason":null,"agency":{"id":"ehv-durham"}})";

TEST(KafkaBinding, ARecordWithCeSpecversionIsBinaryMode) {
  EXPECT_TRUE(is_binary_mode(sdk_headers()));
  EXPECT_FALSE(is_binary_mode({{"content-type", "application/cloudevents+json"}}));
  EXPECT_FALSE(is_binary_mode({}));
}

TEST(KafkaBinding, BinaryModeBecomesTheSameEventInStructuredMode) {
  auto structured = structured_from_binary(sdk_headers(), kData);
  ASSERT_TRUE(structured) << structured.error().message;
  rapidjson::Document d;
  d.Parse(structured->c_str());
  ASSERT_FALSE(d.HasParseError());
  EXPECT_STREQ(d["specversion"].GetString(), "1.0");
  EXPECT_STREQ(d["type"].GetString(), "org.sdoh.referral.update.v1");
  EXPECT_STREQ(d["datacontenttype"].GetString(), "application/json");
  EXPECT_STREQ(d["traceparent"].GetString(),
               "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_STREQ(d["data"]["status"].GetString(), "accepted");
  EXPECT_FALSE(d.HasMember("x-producer"));
  // And it is a valid event: subject and dataschema are optional in CloudEvents 1.0.
  auto catalog = test::shipped_catalog();
  auto valid = catalog->validate_event(*structured);
  EXPECT_TRUE(valid) << valid.error().message;
}

TEST(KafkaBinding, AValueThatIsNotJsonIsRefusedAsData) {
  auto structured = structured_from_binary(sdk_headers(), "accepted");
  ASSERT_FALSE(structured);
  EXPECT_EQ(structured.error().where.expression, "data");
  EXPECT_THAT(structured.error().message, HasSubstr("not JSON"));
}

TEST(KafkaBinding, AHeaderThatIsNotUtf8IsRefusedNamingItsAttribute) {
  auto headers = sdk_headers();
  headers.push_back({"ce_subject", "\xff\xfe"});
  auto structured = structured_from_binary(headers, kData);
  ASSERT_FALSE(structured);
  EXPECT_EQ(structured.error().where.expression, "subject");
}

TEST(CloudEventSchema, ARefusalNamesThePropertyAndTheRule) {
  auto catalog = test::shipped_catalog();
  auto headers = sdk_headers();
  // data.reason left out, as an SDK user may: "data.reason: required".
  auto structured = structured_from_binary(
      headers, R"({"referralId":"abc","status":"accepted","businessStatus":null,)"
               R"("agency":{"id":"ehv-durham"}})");
  ASSERT_TRUE(structured);
  auto valid = catalog->validate_event(*structured);
  ASSERT_FALSE(valid);
  EXPECT_THAT(valid.error().message, ::testing::StartsWith("data.reason: required"));
  EXPECT_EQ(valid.error().where.expression, "data.reason");
  // A bad value names its place and keyword.
  structured = structured_from_binary(
      headers, R"({"referralId":"abc","status":"approved","businessStatus":null,"reason":null,)"
               R"("agency":{"id":"ehv-durham"}})");
  valid = catalog->validate_event(*structured);
  ASSERT_FALSE(valid);
  EXPECT_THAT(valid.error().message, ::testing::StartsWith("data.status: enum"));
  // An envelope without its id.
  valid = catalog->validate_event(
      R"({"specversion":"1.0","source":"urn:sdoh-agency:a","type":"org.sdoh.referral.update.v1",)"
      R"("data":{}})");
  ASSERT_FALSE(valid);
  EXPECT_THAT(valid.error().message, ::testing::StartsWith("id: required"));
}

TEST(CloudEventSchema, ExtensionsAreAcceptedAndTraceparentIsChecked) {
  auto catalog = test::shipped_catalog();
  auto event = [](const std::string& extra) {
    return R"({"specversion":"1.0","id":"u1","source":"urn:sdoh-agency:ehv-durham",)"
           R"("type":"org.sdoh.referral.update.v1",)" +
           extra +
           R"("data":{"referralId":"abc","status":"accepted","businessStatus":null,)"
           R"("reason":null,"agency":{"id":"ehv-durham"}}})";
  };
  EXPECT_TRUE(catalog->validate_event(event(R"("partitionkey":"abc","sequence":7,)")));
  EXPECT_TRUE(catalog->validate_event(
      event(R"("traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",)")));
  auto bad = catalog->validate_event(event(R"("traceparent":"not-a-trace",)"));
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, ::testing::StartsWith("traceparent: pattern"));
  // CloudEvents attribute names are lower-case letters and digits.
  bad = catalog->validate_event(event(R"("Trace_Id":"x",)"));
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, ::testing::StartsWith("Trace_Id: additionalProperties"));
}

}  // namespace
}  // namespace sdoh::events
