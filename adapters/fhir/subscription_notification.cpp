#include "adapters/fhir/subscription_notification.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "adapters/net/backoff.hpp"

namespace sdoh::fhir {

namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void str(JsonWriter& w, std::string_view v) {
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}

void profile(JsonWriter& w, std::string_view name) {
  w.Key("meta");
  w.StartObject();
  w.Key("profile");
  w.StartArray();
  str(w, std::string(kBackport) + "/StructureDefinition/" + std::string(name));
  w.EndArray();
  w.EndObject();
}

// One Parameters.parameter with a value of type `type`.
void parameter(JsonWriter& w, std::string_view name, std::string_view type, std::string_view v) {
  w.StartObject();
  w.Key("name");
  str(w, name);
  w.Key(std::string("value").append(type).c_str());
  if (type == "Reference") {
    w.StartObject();
    w.Key("reference");
    str(w, v);
    w.EndObject();
  } else {
    str(w, v);
  }
  w.EndObject();
}

std::string hex(const unsigned char* p, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 0xf]);
  }
  return out;
}

}  // namespace

std::string topic_url(std::string_view base) {
  return std::string(base) + "/SubscriptionTopic/" + std::string(kTopicId);
}

std::string_view to_string(NotificationType t) {
  switch (t) {
    case NotificationType::kHandshake:
      return "handshake";
    case NotificationType::kHeartbeat:
      return "heartbeat";
    case NotificationType::kEventNotification:
      return "event-notification";
  }
  return "event-notification";
}

std::string notification_bundle(const NotificationContent& c) {
  const auto& sub = c.subscription;
  const std::string sub_url = c.base + "/Subscription/" + sub.id;
  const bool full = sub.content == "full-resource";
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("resourceType");
  w.String("Bundle");
  w.Key("id");
  str(w, c.bundle_id);
  profile(w, "backport-subscription-notification-r4");
  w.Key("type");
  w.String("history");
  w.Key("timestamp");
  str(w, c.timestamp);
  w.Key("entry");
  w.StartArray();

  // The SubscriptionStatus: always first.
  w.StartObject();
  w.Key("fullUrl");
  str(w, "urn:uuid:" + c.bundle_id + "-status");
  w.Key("resource");
  w.StartObject();
  w.Key("resourceType");
  w.String("Parameters");
  profile(w, "backport-subscription-status-r4");
  w.Key("parameter");
  w.StartArray();
  parameter(w, "subscription", "Reference", sub_url);
  parameter(w, "topic", "Canonical", topic_url(c.base));
  parameter(w, "status", "Code", sub.status);
  parameter(w, "type", "Code", to_string(c.type));
  // R4 has no integer64: the backport carries the count as a string.
  parameter(w, "events-since-subscription-start", "String", std::to_string(sub.events_since_start));
  if (c.type == NotificationType::kEventNotification) {
    for (const auto& e : c.events) {
      w.StartObject();
      w.Key("name");
      w.String("notification-event");
      w.Key("part");
      w.StartArray();
      parameter(w, "event-number", "String", std::to_string(e.event_number));
      parameter(w, "timestamp", "Instant", e.created_at);
      parameter(w, "focus", "Reference", c.base + "/Task/" + e.referral_id);
      w.EndArray();
      w.EndObject();
    }
  }
  w.EndArray();
  w.EndObject();  // Parameters
  w.Key("request");
  w.StartObject();
  w.Key("method");
  w.String("GET");
  w.Key("url");
  str(w, sub_url + "/$status");
  w.EndObject();
  w.Key("response");
  w.StartObject();
  w.Key("status");
  w.String("200");
  w.EndObject();
  w.EndObject();  // entry

  if (c.type == NotificationType::kEventNotification && full) {
    for (const auto& e : c.events) {
      if (e.task_json.empty()) continue;
      w.StartObject();
      w.Key("fullUrl");
      str(w, c.base + "/Task/" + e.referral_id);
      w.Key("resource");
      w.RawValue(e.task_json.data(), e.task_json.size(), rapidjson::kObjectType);
      w.Key("request");
      w.StartObject();
      w.Key("method");
      str(w, e.sequence <= 1 ? "POST" : "PUT");
      w.Key("url");
      str(w, e.sequence <= 1 ? std::string("Task") : "Task/" + e.referral_id);
      w.EndObject();
      w.Key("response");
      w.StartObject();
      w.Key("status");
      str(w, e.sequence <= 1 ? "201" : "200");
      w.EndObject();
      w.EndObject();
    }
  }
  if (c.type == NotificationType::kEventNotification && full) {
    for (const auto& [ref, json] : c.included) {
      w.StartObject();
      w.Key("fullUrl");
      str(w, c.base + "/" + ref);
      w.Key("resource");
      w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
      w.Key("request");
      w.StartObject();
      w.Key("method");
      w.String("GET");
      w.Key("url");
      str(w, ref);
      w.EndObject();
      w.Key("response");
      w.StartObject();
      w.Key("status");
      w.String("200");
      w.EndObject();
      w.EndObject();
    }
  }
  w.EndArray();
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

std::string signature(std::string_view secret, std::string_view timestamp, std::string_view body) {
  std::string signed_text;
  signed_text.reserve(timestamp.size() + 1 + body.size());
  signed_text.append(timestamp).append(".").append(body);
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signed_text.data()), signed_text.size(), mac.data(),
       &len);
  return hex(mac.data(), len);
}

std::string new_secret() {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) std::abort();  // no entropy
  return hex(bytes.data(), bytes.size());
}

FailureVerdict after_failure(const RetryPolicy& policy, int failures, std::int64_t first_failure_ms,
                             std::int64_t now_ms, double unit) {
  FailureVerdict v;
  v.failures = failures + 1;
  v.first_failure_ms = first_failure_ms > 0 ? first_failure_ms : now_ms;
  v.give_up = (policy.max_attempts > 0 && v.failures >= policy.max_attempts) ||
              (policy.give_up_after.count() > 0 &&
               now_ms - v.first_failure_ms >= policy.give_up_after.count());
  const net::BackoffPolicy backoff{policy.initial, policy.max, 2.0, 0.25};
  v.next_attempt_ms = now_ms + net::backoff_delay(backoff, v.failures, unit).count();
  return v;
}

}  // namespace sdoh::fhir
