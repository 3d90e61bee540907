#include "adapters/fhir/response.hpp"

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

}  // namespace sdoh::fhir
