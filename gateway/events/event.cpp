#include "gateway/events/event.hpp"

#include <charconv>
#include <chrono>
#include <ctime>

#include "gateway/core/json_text.hpp"
#include "gateway/identity/pseudonym.hpp"

namespace sdoh::events {

std::string_view type_name(EventType type) {
  switch (type) {
    case EventType::kScreening:
      return "org.sdoh.screening.v1";
    case EventType::kReferral:
      return "org.sdoh.referral.v1";
    case EventType::kReferralStatus:
      return "org.sdoh.referral.status.v1";
    case EventType::kDeadLetter:
      return "org.sdoh.deadletter.v1";
    case EventType::kAuditAnchor:
      return "org.sdoh.audit.anchor.v1";
  }
  return "unknown";
}

std::string_view data_schema(EventType type) {
  switch (type) {
    case EventType::kScreening:
      return "urn:sdoh:schema:screening:v1";
    case EventType::kReferral:
      return "urn:sdoh:schema:referral:v1";
    case EventType::kReferralStatus:
      return "urn:sdoh:schema:referral-status:v1";
    case EventType::kDeadLetter:
      return "urn:sdoh:schema:deadletter:v1";
    case EventType::kAuditAnchor:
      return "urn:sdoh:schema:audit-anchor:v1";
  }
  return "unknown";
}

std::string Event::envelope() const {
  std::string out;
  out.reserve(data.size() + 512);
  out += R"({"specversion":"1.0","id":)";
  append_json_string(out, id);
  out += R"(,"source":)";
  append_json_string(out, source);
  out += R"(,"type":)";
  append_json_string(out, type_name(type));
  out += R"(,"subject":)";
  append_json_string(out, subject);
  out += R"(,"time":)";
  append_json_string(out, time);
  out += R"(,"datacontenttype":"application/json","dataschema":)";
  append_json_string(out, data_schema(type));
  out += R"(,"data":)";
  out += data;
  out += '}';
  return out;
}

bool is_traceparent(std::string_view v) {
  // W3C Trace Context, level 1, 3.2: version "-" trace-id "-" parent-id "-" trace-flags.
  if (v.size() != 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  auto hex = [](std::string_view part) {
    return part.find_first_not_of("0123456789abcdef") == std::string_view::npos;
  };
  auto zero = [](std::string_view part) {
    return part.find_first_not_of('0') == std::string_view::npos;
  };
  const auto version = v.substr(0, 2), trace = v.substr(3, 32), parent = v.substr(36, 16),
             flags = v.substr(53, 2);
  return hex(version) && version != "ff" && hex(trace) && !zero(trace) && hex(parent) &&
         !zero(parent) && hex(flags);
}

std::string with_traceparent(std::string envelope, std::string_view traceparent) {
  if (!is_traceparent(traceparent)) return envelope;
  // The attributes are written before data, whose key is the first `,"data":` of the text.
  const auto at = envelope.find(R"(,"data":)");
  if (at == std::string::npos) return envelope;
  std::string attribute = R"(,"traceparent":)";
  append_json_string(attribute, traceparent);
  envelope.insert(at, attribute);
  return envelope;
}

std::string event_id(std::string_view source_identity, int position) {
  std::string input(source_identity);
  input += '#';
  input += std::to_string(position);
  return identity::sha256_hex(input).substr(0, 32);
}

std::optional<std::int64_t> ms_from_rfc3339(std::string_view t) {
  auto num = [&t](std::size_t pos, std::size_t len) -> std::optional<int> {
    int out = 0;
    if (pos + len > t.size()) return std::nullopt;
    auto [p, ec] = std::from_chars(t.data() + pos, t.data() + pos + len, out);
    if (ec != std::errc() || p != t.data() + pos + len) return std::nullopt;
    return out;
  };
  const auto y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2),
             sec = num(17, 2);
  if (!y || !mo || !d || !h || !mi || !sec || t[4] != '-' || t[7] != '-' ||
      (t[10] != 'T' && t[10] != 't') || t[13] != ':' || t[16] != ':' || *h > 23 || *mi > 59 ||
      *sec > 60)
    return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year{*y}, std::chrono::month(*mo),
                                         std::chrono::day(*d)};
  if (!date.ok()) return std::nullopt;
  std::size_t pos = 19;
  std::int64_t ms = 0;
  if (pos < t.size() && t[pos] == '.') {
    int digits = 0;
    for (++pos; pos < t.size() && t[pos] >= '0' && t[pos] <= '9'; ++pos, ++digits)
      if (digits < 3) ms = ms * 10 + (t[pos] - '0');
    if (digits == 0) return std::nullopt;
    for (; digits < 3; ++digits)
      ms *= 10;
  }
  std::int64_t offset_minutes = 0;
  if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) {
    ++pos;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    const auto oh = num(pos + 1, 2), om = num(pos + 4, 2);
    if (!oh || !om || pos + 3 >= t.size() || t[pos + 3] != ':') return std::nullopt;
    offset_minutes = (*oh * 60 + *om) * (t[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;  // a zone is required
  }
  if (pos != t.size()) return std::nullopt;
  const auto days = std::chrono::sys_days(date).time_since_epoch().count();
  return ((static_cast<std::int64_t>(days) * 86400 + *h * 3600 + *mi * 60 + *sec) -
          offset_minutes * 60) *
             1000 +
         ms;
}

std::string event_source(std::string_view gateway_id) {
  return "urn:sdoh-gateway:" + std::string(gateway_id);
}

std::string rfc3339_from_ms(std::int64_t unix_ms) {
  const auto secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(unix_ms % 1000));
  return buf;
}

std::string now_rfc3339() {
  return rfc3339_from_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count());
}

}  // namespace sdoh::events
