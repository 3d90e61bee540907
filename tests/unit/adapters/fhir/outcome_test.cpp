// adapters/fhir/outcome.cpp and error.cpp: the OperationOutcome and the error policy.
#include "adapters/fhir/outcome.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "adapters/fhir/error.hpp"
#include "gateway/core/json_parse.hpp"

namespace sdoh::fhir {
namespace {

TEST(OperationOutcome, IssueCarriesSeverityCodeDiagnosticsAndExpression) {
  const auto json = operation_outcome_json({Issue::error(
      IssueType::kRequired, "QuestionnaireResponse.item[2].answer[0].valueCoding", "missing")});
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  ASSERT_FALSE(doc.HasParseError()) << json;
  EXPECT_STREQ(doc["resourceType"].GetString(), "OperationOutcome");
  ASSERT_EQ(doc["issue"].Size(), 1u);
  const auto& issue = doc["issue"][0];
  EXPECT_STREQ(issue["severity"].GetString(), "error");
  EXPECT_STREQ(issue["code"].GetString(), "required");
  EXPECT_STREQ(issue["diagnostics"].GetString(), "missing");
  EXPECT_STREQ(issue["expression"][0].GetString(),
               "QuestionnaireResponse.item[2].answer[0].valueCoding");
}

TEST(OperationOutcome, QuotedClientBytesThatAreNotUtf8AreReplacedSoTheJsonStaysValid) {
  // Found by tools/fuzz http: a Content-Type with a stray byte was echoed into the 415's
  // diagnostics, and the OperationOutcome was not valid JSON.
  const auto json =
      operation_outcome_json({Issue::error(IssueType::kNotSupported, "Bundle.entry[\xff]",
                                           "the media type a\xbcpplication is not supported")});
  rapidjson::Document doc;
  ASSERT_TRUE(json::parse(doc, json)) << json;
  EXPECT_STREQ(doc["issue"][0]["diagnostics"].GetString(),
               "the media type a\xef\xbf\xbdpplication is not supported");
  EXPECT_STREQ(doc["issue"][0]["expression"][0].GetString(), "Bundle.entry[\xef\xbf\xbd]");
}

TEST(OperationOutcome, NoIssuesIsOneInformationIssue) {
  rapidjson::Document doc;
  doc.Parse(operation_outcome_json({}).c_str());
  ASSERT_EQ(doc["issue"].Size(), 1u);  // OperationOutcome.issue is 1..*
  EXPECT_STREQ(doc["issue"][0]["severity"].GetString(), "information");
  EXPECT_FALSE(doc["issue"][0].HasMember("expression"));
}

TEST(OperationOutcome, IssueTypeCodesAreTheFhirValueSet) {
  EXPECT_EQ(to_string(IssueType::kCodeInvalid), "code-invalid");
  EXPECT_EQ(to_string(IssueType::kBusinessRule), "business-rule");
  EXPECT_EQ(to_string(IssueType::kNotFound), "not-found");
  EXPECT_EQ(to_string(IssueType::kNotSupported), "not-supported");
  EXPECT_EQ(to_string(IssueType::kTooLong), "too-long");
  EXPECT_EQ(to_string(IssueSeverity::kWarning), "warning");
}

TEST(FhirErrc, EveryValueHasAMessageAndItsHttpStatus) {
  const std::pair<FhirErrc, int> expected[] = {
      {FhirErrc::kBadRequest, 400},      {FhirErrc::kNotFound, 404},
      {FhirErrc::kConflict, 409},        {FhirErrc::kPreconditionFailed, 412},
      {FhirErrc::kPayloadTooLarge, 413}, {FhirErrc::kUnsupportedMediaType, 415},
      {FhirErrc::kUnprocessable, 422},   {FhirErrc::kInternal, 500},
      {FhirErrc::kUnavailable, 503},
  };
  for (const auto& [code, status] : expected) {
    const std::error_code ec = code;
    EXPECT_EQ(ec.category().name(), std::string("sdoh.fhir"));
    EXPECT_NE(ec.message(), "unknown FHIR error") << status;
    EXPECT_EQ(http_status(code), status);
  }
}

TEST(Problem, BaseSpecificationErrorsAre400AndBusinessRulesAre422) {
  EXPECT_EQ(classify({Issue::error(IssueType::kRequired, "Observation.code", "x")}),
            FhirErrc::kBadRequest);
  EXPECT_EQ(classify({Issue::warning(IssueType::kRequired, "a", "x"),
                      Issue::error(IssueType::kBusinessRule, "Task.status", "x")}),
            FhirErrc::kUnprocessable);
  EXPECT_EQ(classify({Issue::error(IssueType::kBusinessRule, "Task.status", "x"),
                      Issue::error(IssueType::kCodeInvalid, "Task.intent", "x")}),
            FhirErrc::kBadRequest);
}

TEST(Problem, FromSharedErrorKeepsTheExpression) {
  Location where;
  where.expression = "patient.identifier";
  const auto p = problem_from(Error::invalid(where, "no patient"));
  EXPECT_EQ(p.http_status(), 400);
  EXPECT_EQ(p.first_error().expression, "patient.identifier");
  EXPECT_EQ(problem_from(Error::not_found("gone")).http_status(), 404);
  EXPECT_EQ(problem_from(Error::conflict("stale")).http_status(), 409);
  EXPECT_EQ(problem_from(Error::unavailable("disk")).http_status(), 503);
  EXPECT_EQ(problem_from(Error::unsupported("xml")).http_status(), 422);
}

TEST(Problem, HelpersForTheHttpLayer) {
  EXPECT_EQ(Problem::payload_too_large(1048576).http_status(), 413);
  EXPECT_NE(Problem::payload_too_large(1048576).first_error().diagnostics.find("1048576"),
            std::string::npos);
  EXPECT_EQ(Problem::unsupported_media_type("XML is not supported").http_status(), 415);
  EXPECT_EQ(Problem::precondition_failed("stale version").http_status(), 412);
  EXPECT_EQ(Problem::not_found("Task/x").http_status(), 404);
  EXPECT_EQ(Problem::conflict("x").http_status(), 409);
}

}  // namespace
}  // namespace sdoh::fhir
