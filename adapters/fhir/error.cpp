#include "adapters/fhir/error.hpp"

namespace sdoh::fhir {
namespace {

class FhirCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sdoh.fhir"; }
  std::string message(int value) const override {
    switch (static_cast<FhirErrc>(value)) {
      case FhirErrc::kBadRequest:
        return "the request is not a valid FHIR R4 resource";
      case FhirErrc::kNotFound:
        return "the resource does not exist";
      case FhirErrc::kConflict:
        return "the request conflicts with the resource's current state";
      case FhirErrc::kPreconditionFailed:
        return "If-Match does not name the current version";
      case FhirErrc::kPayloadTooLarge:
        return "the request body is larger than the limit";
      case FhirErrc::kUnsupportedMediaType:
        return "the body is not application/fhir+json";
      case FhirErrc::kUnprocessable:
        return "the resource is valid FHIR but a profile or business rule refuses it";
      case FhirErrc::kInternal:
        return "the gateway failed unexpectedly";
      case FhirErrc::kUnavailable:
        return "the gateway cannot store the request now; retry later";
      case FhirErrc::kUnauthorized:
        return "the client is not authenticated";
      case FhirErrc::kForbidden:
        return "the client may not do this";
      case FhirErrc::kTooManyRequests:
        return "over the client's rate limit";
      case FhirErrc::kNotAcceptable:
        return "only JSON answers are available";
      case FhirErrc::kMethodNotAllowed:
        return "the endpoint does not take this method";
    }
    return "unknown FHIR error";
  }
};

}  // namespace

const std::error_category& fhir_category() {
  static const FhirCategory category;
  return category;
}

std::error_code make_error_code(FhirErrc e) {
  return {static_cast<int>(e), fhir_category()};
}

int http_status(FhirErrc e) {
  switch (e) {
    case FhirErrc::kBadRequest:
      return 400;
    case FhirErrc::kNotFound:
      return 404;
    case FhirErrc::kConflict:
      return 409;
    case FhirErrc::kPreconditionFailed:
      return 412;
    case FhirErrc::kPayloadTooLarge:
      return 413;
    case FhirErrc::kUnsupportedMediaType:
      return 415;
    case FhirErrc::kUnprocessable:
      return 422;
    case FhirErrc::kInternal:
      return 500;
    case FhirErrc::kUnavailable:
      return 503;
    case FhirErrc::kUnauthorized:
      return 401;
    case FhirErrc::kForbidden:
      return 403;
    case FhirErrc::kTooManyRequests:
      return 429;
    case FhirErrc::kNotAcceptable:
      return 406;
    case FhirErrc::kMethodNotAllowed:
      return 405;
  }
  return 500;
}

const Issue& Problem::first_error() const {
  for (const auto& i : issues) {
    if (i.is_error()) return i;
  }
  static const Issue none = Issue::error(IssueType::kException, "", "no error issue recorded");
  return issues.empty() ? none : issues.front();
}

Problem Problem::bad_request(IssueType type, std::string expression, std::string diagnostics) {
  return {FhirErrc::kBadRequest,
          {Issue::error(type, std::move(expression), std::move(diagnostics))}};
}

Problem Problem::unprocessable(IssueType type, std::string expression, std::string diagnostics) {
  return {FhirErrc::kUnprocessable,
          {Issue::error(type, std::move(expression), std::move(diagnostics))}};
}

Problem Problem::not_found(std::string diagnostics) {
  return {FhirErrc::kNotFound, {Issue::error(IssueType::kNotFound, "", std::move(diagnostics))}};
}

Problem Problem::conflict(std::string diagnostics) {
  return {FhirErrc::kConflict, {Issue::error(IssueType::kConflict, "", std::move(diagnostics))}};
}

Problem Problem::precondition_failed(std::string diagnostics) {
  return {FhirErrc::kPreconditionFailed,
          {Issue::error(IssueType::kConflict, "", std::move(diagnostics))}};
}

Problem Problem::payload_too_large(std::size_t limit_bytes) {
  return {FhirErrc::kPayloadTooLarge,
          {Issue::error(IssueType::kTooLong, "",
                        "the request body is larger than " + std::to_string(limit_bytes) +
                            " bytes; send smaller Bundles")}};
}

Problem Problem::unsupported_media_type(std::string diagnostics) {
  return {FhirErrc::kUnsupportedMediaType,
          {Issue::error(IssueType::kNotSupported, "", std::move(diagnostics))}};
}

Problem Problem::unauthorized(std::string diagnostics) {
  return {FhirErrc::kUnauthorized, {Issue::error(IssueType::kLogin, "", std::move(diagnostics))}};
}

Problem Problem::forbidden(std::string diagnostics) {
  return {FhirErrc::kForbidden, {Issue::error(IssueType::kForbidden, "", std::move(diagnostics))}};
}

Problem Problem::too_many_requests(int retry_after_seconds) {
  Problem p{FhirErrc::kTooManyRequests,
            {Issue::error(IssueType::kThrottled, "",
                          "over this client's rate limit (rate_limits): retry after " +
                              std::to_string(retry_after_seconds) + " s")}};
  p.retry_after_seconds = retry_after_seconds;
  return p;
}

FhirErrc classify(const std::vector<Issue>& issues) {
  bool any_error = false;
  for (const auto& i : issues) {
    if (!i.is_error()) continue;
    any_error = true;
    switch (i.code) {
      case IssueType::kStructure:
      case IssueType::kRequired:
      case IssueType::kValue:
      case IssueType::kCodeInvalid:
      case IssueType::kInvalid:
        return FhirErrc::kBadRequest;
      default:
        break;
    }
  }
  return any_error ? FhirErrc::kUnprocessable : FhirErrc::kBadRequest;
}

Problem problem_from(const Error& error) {
  auto issue = [&error](IssueType type) {
    return Issue::error(type, error.where.expression, error.message);
  };
  switch (error.kind) {
    case ErrorKind::kInvalid:
      return {FhirErrc::kBadRequest, {issue(IssueType::kInvalid)}};
    case ErrorKind::kUnsupported:
      return {FhirErrc::kUnprocessable, {issue(IssueType::kNotSupported)}};
    case ErrorKind::kNotFound:
      return {FhirErrc::kNotFound, {issue(IssueType::kNotFound)}};
    case ErrorKind::kConflict:
      return {FhirErrc::kConflict, {issue(IssueType::kConflict)}};
    case ErrorKind::kUnavailable:
      return {FhirErrc::kUnavailable, {issue(IssueType::kTransient)}};
    case ErrorKind::kConfig:
    case ErrorKind::kInternal:
      return {FhirErrc::kInternal, {issue(IssueType::kException)}};
  }
  return {FhirErrc::kInternal, {issue(IssueType::kException)}};
}

}  // namespace sdoh::fhir
