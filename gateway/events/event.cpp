#include "gateway/events/event.hpp"

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

std::string event_id(std::string_view source_identity, int position) {
  std::string input(source_identity);
  input += '#';
  input += std::to_string(position);
  return identity::sha256_hex(input).substr(0, 32);
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
