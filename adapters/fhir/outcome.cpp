#include "adapters/fhir/outcome.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/core/json_parse.hpp"
namespace sdoh::fhir {

std::string_view to_string(IssueSeverity s) {
  switch (s) {
    case IssueSeverity::kFatal:
      return "fatal";
    case IssueSeverity::kError:
      return "error";
    case IssueSeverity::kWarning:
      return "warning";
    case IssueSeverity::kInformation:
      return "information";
  }
  return "error";
}

std::string_view to_string(IssueType t) {
  switch (t) {
    case IssueType::kInvalid:
      return "invalid";
    case IssueType::kStructure:
      return "structure";
    case IssueType::kRequired:
      return "required";
    case IssueType::kValue:
      return "value";
    case IssueType::kInvariant:
      return "invariant";
    case IssueType::kCodeInvalid:
      return "code-invalid";
    case IssueType::kNotSupported:
      return "not-supported";
    case IssueType::kDuplicate:
      return "duplicate";
    case IssueType::kNotFound:
      return "not-found";
    case IssueType::kTooLong:
      return "too-long";
    case IssueType::kBusinessRule:
      return "business-rule";
    case IssueType::kConflict:
      return "conflict";
    case IssueType::kProcessing:
      return "processing";
    case IssueType::kInformational:
      return "informational";
    case IssueType::kTransient:
      return "transient";
    case IssueType::kException:
      return "exception";
    case IssueType::kLogin:
      return "login";
    case IssueType::kForbidden:
      return "forbidden";
    case IssueType::kThrottled:
      return "throttled";
  }
  return "exception";
}

std::string operation_outcome_json(const std::vector<Issue>& issues) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  // Diagnostics may quote what the client sent (a header, a path): never invalid UTF-8 out.
  auto text = [&w](std::string_view v) {
    if (json::valid_utf8(v)) {
      w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    } else {
      const auto clean = json::with_replacement_characters(v);
      w.String(clean.data(), static_cast<rapidjson::SizeType>(clean.size()));
    }
  };
  auto str = [&w, &text](const char* key, std::string_view v) {
    w.Key(key);
    text(v);
  };
  w.StartObject();
  str("resourceType", "OperationOutcome");
  w.Key("issue");
  w.StartArray();
  auto write = [&](const Issue& i) {
    w.StartObject();
    str("severity", to_string(i.severity));
    str("code", to_string(i.code));
    if (!i.diagnostics.empty()) str("diagnostics", i.diagnostics);
    if (!i.expression.empty()) {
      w.Key("expression");
      w.StartArray();
      text(i.expression);
      w.EndArray();
    }
    w.EndObject();
  };
  if (issues.empty()) write(Issue::information("", "All OK"));
  for (const auto& i : issues)
    write(i);
  w.EndArray();
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

}  // namespace sdoh::fhir
