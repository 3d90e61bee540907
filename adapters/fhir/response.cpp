#include "adapters/fhir/response.hpp"

#include <algorithm>

#include "gateway/core/json_text.hpp"

namespace sdoh::fhir {

http::Response fhir_response(unsigned status, std::string body, bool plain_json) {
  http::Response r;
  r.status = status;
  r.content_type = plain_json ? "application/json; charset=utf-8" : std::string(kFhirJson);
  r.body = std::move(body);
  return r;
}

http::Response problem_response(const Problem& p, bool plain_json) {
  auto r = fhir_response(static_cast<unsigned>(p.http_status()), p.operation_outcome(), plain_json);
  if (p.code == FhirErrc::kUnavailable) r.headers.push_back({"Retry-After", "5"});
  if (p.code == FhirErrc::kTooManyRequests)
    r.headers.push_back({"Retry-After", std::to_string(p.retry_after_seconds)});
  if (p.code == FhirErrc::kUnauthorized)
    r.headers.push_back({"WWW-Authenticate", "Bearer realm=\"sdoh-gateway\""});
  return r;
}

std::string searchset_head(std::int64_t total, int offset, int count,
                           const std::function<std::string(int offset)>& link) {
  std::string out =
      "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":" + std::to_string(total) +
      ",\"link\":[{\"relation\":\"self\",\"url\":";
  append_json_string(out, link(offset));
  out += "}";
  if (count > 0 && offset + count < total) {
    out += ",{\"relation\":\"next\",\"url\":";
    append_json_string(out, link(offset + count));
    out += "}";
  }
  if (offset > 0) {
    out += ",{\"relation\":\"previous\",\"url\":";
    append_json_string(out, link(std::max(0, offset - std::max(count, 1))));
    out += "}";
  }
  return out + "],\"entry\":[";
}

}  // namespace sdoh::fhir
