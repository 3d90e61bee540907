#pragma once
// How the FHIR API answers: a FHIR JSON body with its media type, and a Problem as its
// OperationOutcome with the HTTP status and the headers that go with it (Retry-After for 503,
// WWW-Authenticate for 401). One place for every FHIR route (resources, Task updates,
// Subscriptions).
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "adapters/fhir/error.hpp"
#include "gateway/http/message.hpp"

namespace sdoh::fhir {

inline constexpr std::string_view kFhirJson = "application/fhir+json; charset=utf-8";

/// `body` with `status`, as application/fhir+json (plain application/json when the client
/// asked for it with _format=json or Accept: application/json).
http::Response fhir_response(unsigned status, std::string body, bool plain_json = false);

/// The Problem's OperationOutcome with its HTTP status.
http::Response problem_response(const Problem& p, bool plain_json = false);

/// A searchset Bundle up to its first entry: its total and the links of the page at `offset`
/// (`count` per page): self, and next and previous when there are such pages. `link(offset)` is
/// a page's URL. The caller appends the entries, comma-separated, then "]}".
std::string searchset_head(std::int64_t total, int offset, int count,
                           const std::function<std::string(int offset)>& link);

}  // namespace sdoh::fhir
