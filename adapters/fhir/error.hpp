#pragma once
// The FHIR adapter's error policy: one enum whose values are the HTTP answers a FHIR client can
// get for a request that is refused (400/404/409/412/413/415/422, and 500/503 for the gateway's
// own trouble), a std::error_category for it, and Problem, the typed error value the resource
// layer returns and the HTTP layer turns into a status code and an OperationOutcome.
//
// Which status (FHIR R4 RESTful API, http.html "Create", "Update", "Transaction"):
//   400 the body is not JSON, not a resource, or breaks a rule of the base specification
//       (a required element missing, a value of the wrong type, a code outside a required
//       value set) — "failed basic FHIR validation rules";
//   404 a resource the request names (read/update target) does not exist;
//   409 a version conflict, or a change the resource's current state does not allow;
//   412 If-Match names a version that is not the current one;
//   413 the body is larger than the configured limit;
//   415 the body is not application/fhir+json (or application/json), e.g. XML;
//   422 valid FHIR that a profile or a business rule of the referral workflow refuses;
//   401/403 no or unknown credentials / a role that does not allow the interaction;
//   405/406 a method the endpoint does not take / a response format other than JSON.
#include <expected>
#include <string>
#include <system_error>
#include <vector>

#include "adapters/fhir/outcome.hpp"
#include "gateway/core/result.hpp"

namespace sdoh::fhir {

enum class FhirErrc {
  kBadRequest = 1,        ///< 400
  kNotFound,              ///< 404
  kConflict,              ///< 409
  kPreconditionFailed,    ///< 412
  kPayloadTooLarge,       ///< 413
  kUnsupportedMediaType,  ///< 415
  kUnprocessable,         ///< 422
  kInternal,              ///< 500
  kUnavailable,           ///< 503 (with Retry-After)
  kUnauthorized,          ///< 401: no or unknown credentials
  kForbidden,             ///< 403: the client's role does not allow the interaction
  kNotAcceptable,         ///< 406: the client asks for a format other than JSON
  kMethodNotAllowed,      ///< 405
  kTooManyRequests,       ///< 429: over the client's rate limit (with Retry-After)
};

const std::error_category& fhir_category();
std::error_code make_error_code(FhirErrc e);

/// The HTTP status code for an error, as the FHIR RESTful API specifies it (written out).
int http_status(FhirErrc e);

/// A refused request: the status class and the issues, at least one of them an error.
struct Problem {
  FhirErrc code = FhirErrc::kBadRequest;
  std::vector<Issue> issues;
  int retry_after_seconds = 0;  ///< 429: when the client may try again

  int http_status() const { return fhir::http_status(code); }
  std::string operation_outcome() const { return operation_outcome_json(issues); }
  /// The first error issue (what a log line or a dead letter names).
  const Issue& first_error() const;

  static Problem bad_request(IssueType type, std::string expression, std::string diagnostics);
  static Problem unprocessable(IssueType type, std::string expression, std::string diagnostics);
  static Problem not_found(std::string diagnostics);
  static Problem conflict(std::string diagnostics);
  static Problem precondition_failed(std::string diagnostics);
  static Problem payload_too_large(std::size_t limit_bytes);
  static Problem unsupported_media_type(std::string diagnostics);
  static Problem unauthorized(std::string diagnostics);
  static Problem forbidden(std::string diagnostics);
  static Problem too_many_requests(int retry_after_seconds);
};

/// The status class for a set of issues: 400 when any error breaks the base specification
/// (structure, required, value, code-invalid, invalid), else 422 for the other errors.
FhirErrc classify(const std::vector<Issue>& issues);

/// The FHIR side of the shared Error value (STYLE.md: one function per protocol):
/// kInvalid → 400 invalid, kUnsupported → 422 not-supported, kNotFound → 404, kConflict → 409,
/// kUnavailable → 503 transient, kConfig/kInternal → 500 exception; `where.expression` becomes
/// the issue's expression.
Problem problem_from(const Error& error);

template <class T>
using FhirResult = std::expected<T, Problem>;

}  // namespace sdoh::fhir

template <>
struct std::is_error_code_enum<sdoh::fhir::FhirErrc> : std::true_type {};
