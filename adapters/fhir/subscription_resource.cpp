#include "adapters/fhir/subscription_resource.hpp"

#include <chrono>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "adapters/fhir/subscription_notification.hpp"
#include "adapters/net/http_client.hpp"
#include "gateway/core/json_parse.hpp"

namespace sdoh::fhir {

namespace {

using Value = rapidjson::Value;
constexpr std::int64_t kMaxHeartbeatSeconds = 86'400;

Problem invalid(std::string expression, std::string why) {
  return Problem::unprocessable(IssueType::kInvalid, std::move(expression), std::move(why));
}
Problem required(std::string expression, std::string why) {
  return Problem::bad_request(IssueType::kRequired, std::move(expression), std::move(why));
}

const Value* member(const Value& v, const char* name) {
  if (!v.IsObject()) return nullptr;
  auto it = v.FindMember(name);
  return it == v.MemberEnd() ? nullptr : &it->value;
}

std::optional<std::string> string_member(const Value& v, const char* name) {
  const auto* m = member(v, name);
  if (m == nullptr || !m->IsString()) return std::nullopt;
  return std::string(m->GetString(), m->GetStringLength());
}

// The extension with `url` in v.extension, if any.
const Value* extension(const Value* v, std::string_view url) {
  if (v == nullptr) return nullptr;
  const auto* ext = member(*v, "extension");
  if (ext == nullptr || !ext->IsArray()) return nullptr;
  for (const auto& e : ext->GetArray()) {
    auto u = string_member(e, "url");
    if (u && *u == url) return &e;
  }
  return nullptr;
}

// "Task?owner=Organization/x" or "Task?owner=x" → "x"; nullopt when it is another filter.
std::optional<std::string> owner_of_filter(std::string_view f) {
  constexpr std::string_view kPrefix = "Task?owner=";
  if (!f.starts_with(kPrefix)) return std::nullopt;
  f.remove_prefix(kPrefix.size());
  if (f.starts_with("Organization/")) f.remove_prefix(13);
  if (f.empty() || f.find_first_of("&?=/ ") != std::string_view::npos) return std::nullopt;
  return std::string(f);
}

bool digits(std::string_view s, std::size_t at, std::size_t n, int& out) {
  if (at + n > s.size()) return false;
  out = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace

std::optional<std::int64_t> instant_ms(std::string_view t) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!digits(t, 0, 4, y) || t.size() < 20 || t[4] != '-' || !digits(t, 5, 2, mo) || t[7] != '-' ||
      !digits(t, 8, 2, d) || t[10] != 'T' || !digits(t, 11, 2, h) || t[13] != ':' ||
      !digits(t, 14, 2, mi) || t[16] != ':' || !digits(t, 17, 2, sec))
    return std::nullopt;
  std::size_t at = 19;
  std::int64_t ms = 0;
  if (t[at] == '.') {
    std::size_t n = 0;
    int scale = 100;
    for (++at; at < t.size() && t[at] >= '0' && t[at] <= '9'; ++at, ++n) {
      if (scale > 0) ms += (t[at] - '0') * scale;
      scale /= 10;
    }
    if (n == 0) return std::nullopt;
  }
  int offset_min = 0;
  if (at < t.size() && t[at] == 'Z' && at + 1 == t.size()) {
  } else if (at + 6 == t.size() && (t[at] == '+' || t[at] == '-') && t[at + 3] == ':') {
    int oh = 0, om = 0;
    if (!digits(t, at + 1, 2, oh) || !digits(t, at + 4, 2, om) || oh > 14 || om > 59)
      return std::nullopt;
    offset_min = (t[at] == '+' ? 1 : -1) * (oh * 60 + om);
  } else {
    return std::nullopt;
  }
  const std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(mo),
                                        std::chrono::day(d)};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  const auto days = std::chrono::sys_days(ymd).time_since_epoch().count();
  return ((static_cast<std::int64_t>(days) * 86'400 + h * 3'600 + mi * 60 + sec) -
          offset_min * 60LL) *
             1'000 +
         ms;
}

std::expected<pipeline::SubscriptionRow, Problem> read_subscription(
    std::string_view json, const Client& client, const SubscriptionRules& rules) {
  rapidjson::Document doc;
  if (auto parsed = json::parse(doc, json); !parsed) {
    return std::unexpected(Problem::bad_request(IssueType::kStructure, "",
                                                "the body is not JSON: " + parsed.error().message));
  }
  if (!doc.IsObject() || string_member(doc, "resourceType") != "Subscription") {
    return std::unexpected(Problem::bad_request(IssueType::kStructure, "resourceType",
                                                "the body must be a Subscription resource"));
  }
  pipeline::SubscriptionRow row;
  row.client_id = client.id;

  const auto status = string_member(doc, "status").value_or("requested");
  if (status != "requested" && status != "active" && status != "off") {
    return std::unexpected(invalid("Subscription.status",
                                   "a Subscription is created or updated as requested (or off), "
                                   "not " +
                                       status));
  }
  row.status = status == "off" ? "off" : "requested";

  const auto criteria = string_member(doc, "criteria");
  if (!criteria) {
    return std::unexpected(
        required("Subscription.criteria", "criteria must name the topic " + topic_url(rules.base)));
  }
  // The topic by its canonical; a client that reaches the gateway by another host name still
  // names the same topic.
  if (*criteria != topic_url(rules.base) &&
      !criteria->ends_with("/SubscriptionTopic/" + std::string(kTopicId))) {
    return std::unexpected(
        invalid("Subscription.criteria", "the only topic offered is " + topic_url(rules.base) +
                                             " (an agency's referrals and their status changes)"));
  }
  std::optional<std::string> filtered_owner;
  if (const auto* f = extension(member(doc, "_criteria"), kFilterCriteriaUrl)) {
    const auto v = string_member(*f, "valueString").value_or("");
    filtered_owner = owner_of_filter(v);
    if (!filtered_owner) {
      return std::unexpected(invalid("Subscription.criteria.extension",
                                     "the only filter is Task?owner=Organization/<agency id>"));
    }
  }
  if (client.role == "agency") {
    if (filtered_owner && *filtered_owner != client.organization) {
      return std::unexpected(Problem::forbidden(
          "an agency subscribes to its own referrals only (Task?owner=Organization/" +
          client.organization + ")"));
    }
    row.agency_id = client.organization;
  } else if (client.role == "dev") {
    if (!filtered_owner) {
      return std::unexpected(
          required("Subscription.criteria.extension",
                   "the development client names the agency: backport-filter-criteria "
                   "Task?owner=Organization/<agency id>"));
    }
    row.agency_id = *filtered_owner;
  } else {
    return std::unexpected(
        Problem::forbidden("Subscriptions are for agencies: a clinic follows its referrals by "
                           "reading their Tasks"));
  }

  const auto* channel = member(doc, "channel");
  if (channel == nullptr || !channel->IsObject())
    return std::unexpected(required("Subscription.channel", "channel is required"));
  if (string_member(*channel, "type") != "rest-hook") {
    return std::unexpected(Problem::unprocessable(IssueType::kNotSupported,
                                                  "Subscription.channel.type",
                                                  "the only channel offered is rest-hook"));
  }
  const auto endpoint = string_member(*channel, "endpoint");
  if (!endpoint || endpoint->empty()) {
    return std::unexpected(
        required("Subscription.channel.endpoint", "a rest-hook needs its endpoint URL"));
  }
  auto url = net::HttpUrl::parse(*endpoint, "Subscription.channel.endpoint");
  if (!url) return std::unexpected(invalid("Subscription.channel.endpoint", url.error().message));
  // Notifications carry PHI (full-resource) and are signed, not encrypted: over TLS only,
  // whatever the host, outside dev mode.
  if (!url->https && !rules.dev_mode) {
    return std::unexpected(invalid("Subscription.channel.endpoint",
                                   "the endpoint must be https (plain http only in dev mode)"));
  }
  row.endpoint = *endpoint;

  const auto payload = string_member(*channel, "payload").value_or("application/fhir+json");
  if (payload != "application/fhir+json" && payload != "application/json") {
    return std::unexpected(Problem::unprocessable(IssueType::kNotSupported,
                                                  "Subscription.channel.payload",
                                                  "notifications are application/fhir+json"));
  }
  row.content = "id-only";
  if (const auto* c = extension(member(*channel, "_payload"), kPayloadContentUrl)) {
    const auto v = string_member(*c, "valueCode").value_or("");
    if (v != "id-only" && v != "full-resource") {
      return std::unexpected(Problem::unprocessable(IssueType::kCodeInvalid,
                                                    "Subscription.channel.payload.extension",
                                                    "payload content is id-only or full-resource"));
    }
    row.content = v;
  }
  if (const auto* h = extension(channel, kHeartbeatPeriodUrl)) {
    const auto* v = member(*h, "valueUnsignedInt");
    if (v == nullptr || !v->IsInt64() || v->GetInt64() < 0 ||
        v->GetInt64() > kMaxHeartbeatSeconds) {
      return std::unexpected(invalid("Subscription.channel.extension",
                                     "backport-heartbeat-period is a number of seconds from 0 to "
                                     "86400"));
    }
    row.heartbeat_seconds = v->GetInt64();
  }
  if (const auto* s = extension(channel, kSigningSecretUrl)) {
    row.secret = string_member(*s, "valueString").value_or("");
    if (row.secret.size() < 16 || row.secret.size() > 256) {
      return std::unexpected(invalid("Subscription.channel.extension",
                                     "the signing secret must be 16 to 256 characters"));
    }
  }
  row.end = string_member(doc, "end").value_or("");
  if (!row.end.empty() && !instant_ms(row.end)) {
    return std::unexpected(invalid("Subscription.end",
                                   "end is an instant with a time zone, e.g. "
                                   "2026-12-31T23:59:59Z"));
  }
  row.reason = string_member(doc, "reason")
                   .value_or("Referrals of " + row.agency_id + " and their status changes");
  return row;
}

std::string subscription_json(const pipeline::SubscriptionRow& row, std::string_view base,
                              bool with_secret) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto str = [&w](std::string_view v) {
    w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  };
  auto ext = [&](std::string_view url, const char* type, auto write_value) {
    w.StartObject();
    w.Key("url");
    str(url);
    w.Key(type);
    write_value();
    w.EndObject();
  };
  w.StartObject();
  w.Key("resourceType");
  w.String("Subscription");
  w.Key("id");
  str(row.id);
  w.Key("meta");
  w.StartObject();
  w.Key("versionId");
  str(std::to_string(row.version));
  if (!row.last_updated.empty()) {
    w.Key("lastUpdated");
    str(row.last_updated);
  }
  w.Key("profile");
  w.StartArray();
  str(std::string(kBackport) + "/StructureDefinition/backport-subscription");
  w.EndArray();
  w.EndObject();
  w.Key("status");
  str(row.status);
  if (!row.end.empty()) {
    w.Key("end");
    str(row.end);
  }
  w.Key("reason");
  str(row.reason);
  w.Key("criteria");
  str(topic_url(base));
  w.Key("_criteria");
  w.StartObject();
  w.Key("extension");
  w.StartArray();
  ext(kFilterCriteriaUrl, "valueString", [&] { str("Task?owner=Organization/" + row.agency_id); });
  w.EndArray();
  w.EndObject();
  if (!row.error.empty()) {
    w.Key("error");
    str(row.error);
  }
  w.Key("channel");
  w.StartObject();
  if (row.heartbeat_seconds > 0 || with_secret) {
    w.Key("extension");
    w.StartArray();
    if (row.heartbeat_seconds > 0)
      ext(kHeartbeatPeriodUrl, "valueUnsignedInt", [&] { w.Int64(row.heartbeat_seconds); });
    if (with_secret) ext(kSigningSecretUrl, "valueString", [&] { str(row.secret); });
    w.EndArray();
  }
  w.Key("type");
  w.String("rest-hook");
  w.Key("endpoint");
  str(row.endpoint);
  w.Key("payload");
  w.String("application/fhir+json");
  w.Key("_payload");
  w.StartObject();
  w.Key("extension");
  w.StartArray();
  ext(kPayloadContentUrl, "valueCode", [&] { str(row.content); });
  w.EndArray();
  w.EndObject();
  w.EndObject();  // channel
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

}  // namespace sdoh::fhir
