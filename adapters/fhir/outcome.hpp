#pragma once
// FHIR R4 OperationOutcome: the answer to every FHIR error and the carrier of warnings on a
// success. An Issue says how bad (severity), what kind (a code from the FHIR issue-type value
// set, http://hl7.org/fhir/issue-type), why (diagnostics: never PHI, never a field's value) and
// where (a FHIRPath `expression` such as QuestionnaireResponse.item[2].answer[0].valueCoding).
#include <string>
#include <string_view>
#include <vector>

namespace sdoh::fhir {

/// http://hl7.org/fhir/issue-severity
enum class IssueSeverity { kFatal, kError, kWarning, kInformation };
std::string_view to_string(IssueSeverity s);

/// The codes of http://hl7.org/fhir/issue-type (FHIR R4) this gateway emits.
enum class IssueType {
  kInvalid,        ///< "invalid": content invalid against the specification or a profile
  kStructure,      ///< "structure": not well-formed JSON / not a resource
  kRequired,       ///< "required": a required element is missing
  kValue,          ///< "value": an element's value is not valid for its type
  kInvariant,      ///< "invariant": a content rule (profile invariant) failed
  kCodeInvalid,    ///< "code-invalid": a code is not in the required value set
  kNotSupported,   ///< "not-supported": valid, but not something this gateway handles
  kDuplicate,      ///< "duplicate": a resource that already exists
  kNotFound,       ///< "not-found": a reference or resource that does not exist
  kTooLong,        ///< "too-long": the request is too large
  kBusinessRule,   ///< "business-rule": refused by a rule of the referral workflow
  kConflict,       ///< "conflict": edit version conflict
  kProcessing,     ///< "processing": valid, but could not be processed (e.g. not mappable)
  kInformational,  ///< "informational": a note on what was done
  kTransient,      ///< "transient": try again later
  kException,      ///< "exception": an unexpected internal failure
  kLogin,          ///< "login": the client is not authenticated
  kForbidden,      ///< "forbidden": the client may not do this
  kThrottled,      ///< "throttled": over the client's rate limit
};
std::string_view to_string(IssueType t);

struct Issue {
  IssueSeverity severity = IssueSeverity::kError;
  IssueType code = IssueType::kInvalid;
  std::string diagnostics;  ///< safe to log and to send back: no PHI, no field values
  std::string expression;   ///< FHIRPath; empty when the issue concerns the whole request

  static Issue error(IssueType code, std::string expression, std::string diagnostics) {
    return {IssueSeverity::kError, code, std::move(diagnostics), std::move(expression)};
  }
  static Issue warning(IssueType code, std::string expression, std::string diagnostics) {
    return {IssueSeverity::kWarning, code, std::move(diagnostics), std::move(expression)};
  }
  static Issue information(std::string expression, std::string diagnostics) {
    return {IssueSeverity::kInformation, IssueType::kInformational, std::move(diagnostics),
            std::move(expression)};
  }
  bool is_error() const {
    return severity == IssueSeverity::kError || severity == IssueSeverity::kFatal;
  }
};

/// The OperationOutcome resource as JSON text. With no issues it holds one `information` issue
/// ("All OK"), because FHIR R4 requires at least one issue (OperationOutcome.issue 1..*).
std::string operation_outcome_json(const std::vector<Issue>& issues);

}  // namespace sdoh::fhir
