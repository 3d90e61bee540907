// adapters/fhir/resources.cpp: reading and validating the SDOHCC resources.
#include "adapters/fhir/resources.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "adapters/fhir/consent.hpp"
#include "tests/unit/support/shipped.hpp"

namespace sdoh::fhir {
namespace {

std::string sample(const std::string& name) {
  return test::shared_sample("fhir", name);
}

bool has_issue(const std::vector<Issue>& issues, std::string_view expression,
               IssueSeverity severity) {
  for (const auto& i : issues) {
    if (i.expression == expression && i.severity == severity) return true;
  }
  return false;
}

TEST(ParseResource, HungerVitalSignQuestionnaireResponse) {
  auto r = parse_resource(sample("questionnaireresponse-hunger-vital-sign.json"));
  ASSERT_TRUE(r) << r.error().operation_outcome();
  ASSERT_EQ(r->type, "QuestionnaireResponse");
  const auto& q = std::get<QuestionnaireResponse>(r->resource);
  EXPECT_EQ(q.status, "completed");
  EXPECT_EQ(q.identifier.value, "QR-A-0001");
  EXPECT_EQ(q.subject.reference, "Patient/pat-sofia");
  ASSERT_EQ(q.items.size(), 3u);
  EXPECT_EQ(q.items[0].link_id, "/88122-7");
  ASSERT_TRUE(q.items[0].code);  // a LOINC linkId names its question
  EXPECT_EQ(q.items[0].code->system, "http://loinc.org");
  EXPECT_EQ(q.items[0].code->code, "88122-7");
  ASSERT_EQ(q.items[1].answers.size(), 1u);
  EXPECT_EQ(q.items[1].answers[0].coding->code, "LA6729-3");
  EXPECT_EQ(q.items[2].expression, "QuestionnaireResponse.item[2]");
}

TEST(ParseResource, ScreeningResponseObservation) {
  auto r = parse_resource(sample("observation-screening-response-food.json"));
  ASSERT_TRUE(r) << r.error().operation_outcome();
  const auto& o = std::get<Observation>(r->resource);
  EXPECT_EQ(o.status, "final");
  EXPECT_EQ(o.question()->code, "88122-7");
  EXPECT_EQ(o.category_code(kSdohccCategorySystem), "food-insecurity");
  ASSERT_TRUE(o.value && o.value->coding);
  EXPECT_EQ(o.value->coding->code, "LA28397-0");
  EXPECT_EQ(o.value_expression, "Observation.valueCodeableConcept");
  EXPECT_EQ(o.effective, "2026-11-20T10:00:00-05:00");
  // The sample has no us-core-category sdoh: a profile deviation, accepted with a warning.
  EXPECT_TRUE(has_issue(r->warnings, "Observation.category", IssueSeverity::kWarning));
}

TEST(ParseResource, ObservationWithoutCodeIs400NamingObservationCode) {
  auto r = parse_resource(sample("observation-bad-missing-code.json"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().http_status(), 400);
  EXPECT_EQ(r.error().first_error().code, IssueType::kRequired);
  EXPECT_EQ(r.error().first_error().expression, "Observation.code");
}

TEST(ParseResource, NotJsonIs400Structure) {
  auto r = parse_resource("<Observation xmlns=\"http://hl7.org/fhir\"/>");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().http_status(), 400);
  EXPECT_EQ(r.error().first_error().code, IssueType::kStructure);
}

TEST(ParseResource, UnsupportedTypeIs422NotSupported) {
  auto r = parse_resource(R"({"resourceType":"Encounter","status":"finished"})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().http_status(), 422);
  EXPECT_EQ(r.error().first_error().code, IssueType::kNotSupported);
}

TEST(ParseResource, StatusOutsideItsValueSetIsCodeInvalidWithoutEchoingTheValue) {
  auto r = parse_resource(R"({"resourceType":"Task","status":"Sofia-Garcia","intent":"order"})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().http_status(), 400);
  EXPECT_EQ(r.error().first_error().code, IssueType::kCodeInvalid);
  EXPECT_EQ(r.error().first_error().expression, "Task.status");
  EXPECT_EQ(r.error().operation_outcome().find("Sofia"), std::string::npos);
}

TEST(ParseResource, WrongJsonTypeIsStructure) {
  auto r = parse_resource(
      R"({"resourceType":"QuestionnaireResponse","status":"completed","item":{"linkId":"1"}})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().first_error().code, IssueType::kStructure);
  EXPECT_EQ(r.error().first_error().expression, "QuestionnaireResponse.item");
}

TEST(ParseResource, NestedItemsAreFlattenedWithTheirPath) {
  auto r = parse_resource(R"({"resourceType":"QuestionnaireResponse","status":"completed",
    "item":[{"linkId":"grp","item":[{"linkId":"/88122-7","answer":[{"valueCoding":
    {"system":"http://loinc.org","code":"LA28397-0"}}]}]}]})");
  ASSERT_TRUE(r) << r.error().operation_outcome();
  const auto& q = std::get<QuestionnaireResponse>(r->resource);
  ASSERT_EQ(q.items.size(), 1u);
  EXPECT_EQ(q.items[0].expression, "QuestionnaireResponse.item[0].item[0]");
}

TEST(ParseResource, ItemWithoutLinkIdIsRequired) {
  auto r = parse_resource(R"({"resourceType":"QuestionnaireResponse","status":"completed",
    "item":[{"answer":[{"valueBoolean":true}]}]})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().first_error().expression, "QuestionnaireResponse.item[0].linkId");
}

TEST(ParseResource, BadAnswerValueNamesTheAnswer) {
  auto r = parse_resource(R"({"resourceType":"QuestionnaireResponse","status":"completed",
    "item":[{"linkId":"a"},{"linkId":"b"},{"linkId":"c","answer":[{"valueCoding":"LA28397-0"}]}]})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().first_error().expression,
            "QuestionnaireResponse.item[2].answer[0].valueCoding");
}

TEST(ParseResource, DateTimeWithoutOffsetIsRefused) {
  auto r = parse_resource(R"({"resourceType":"QuestionnaireResponse","status":"completed",
    "authored":"2026-11-20T10:00:00"})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().first_error().code, IssueType::kValue);
  EXPECT_EQ(r.error().first_error().expression, "QuestionnaireResponse.authored");
}

TEST(ParseResource, ServiceRequestNeedsSubject) {
  auto r =
      parse_resource(R"({"resourceType":"ServiceRequest","status":"active","intent":"order"})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().first_error().expression, "ServiceRequest.subject");
}

TEST(ParseResource, TaskBusinessStatusTextBecomesAToken) {
  auto r = parse_resource(R"({"resourceType":"Task","status":"accepted","intent":"order",
    "code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},
    "businessStatus":{"text":"Family contacted"}})");
  ASSERT_TRUE(r) << r.error().operation_outcome();
  EXPECT_EQ(std::get<Task>(r->resource).business_status, "family-contacted");
  // Profile: focus, for, requester and authoredOn are 1..1 — warnings, not errors.
  EXPECT_TRUE(has_issue(r->warnings, "Task.focus", IssueSeverity::kWarning));
}

TEST(ParseResource, RejectedTaskWithoutReasonIsWarned) {
  auto r = parse_resource(R"({"resourceType":"Task","status":"rejected","intent":"order"})");
  ASSERT_TRUE(r);
  EXPECT_TRUE(has_issue(r->warnings, "Task.statusReason.text", IssueSeverity::kWarning));
}

TEST(Primitives, DateTimeFormats) {
  EXPECT_TRUE(valid_date_time("2026"));
  EXPECT_TRUE(valid_date_time("2026-11"));
  EXPECT_TRUE(valid_date_time("2026-11-20"));
  EXPECT_TRUE(valid_date_time("2026-11-20T10:00:00-05:00"));
  EXPECT_TRUE(valid_date_time("2026-11-20T10:00:00.123Z"));
  EXPECT_FALSE(valid_date_time("2026-13-20"));
  EXPECT_FALSE(valid_date_time("2026-11-20T10:00Z"));
  EXPECT_FALSE(valid_date_time("20261120"));
  EXPECT_TRUE(full_date_or_date_time("2026-11-20"));
  EXPECT_FALSE(full_date_or_date_time("2026-11"));
  EXPECT_TRUE(valid_id("hvs-sofia-20261120"));
  EXPECT_FALSE(valid_id("has space"));
  EXPECT_FALSE(valid_id(std::string(65, 'a')));
}

TEST(Consent, ActivePermitToTheAgencyAllowsDisclosure) {
  Consent c;
  c.status = "active";
  c.date_time = "2026-11-20T10:10:00-05:00";
  c.provision_type = "permit";
  c.provision_actors.push_back({"Organization/EHV-Durham", {}, "", ""});
  c.provision_actions.push_back(
      {"http://terminology.hl7.org/CodeSystem/consentaction", "disclose", ""});
  auto d = consent_decision(c, "ehv-durham", "2026-11-20");
  EXPECT_EQ(d.status, mapping::ConsentStatus::kActive);
  EXPECT_EQ(d.source, "fhir-consent");
  EXPECT_EQ(d.date, "2026-11-20T10:10:00-05:00");
  EXPECT_EQ(consent_decision(c, "wic-durham", "2026-11-20").status, mapping::ConsentStatus::kNone);
}

TEST(Consent, InactiveIsRevokedAndDenyIsNone) {
  Consent c;
  c.status = "inactive";
  EXPECT_EQ(consent_decision(c, "a", "").status, mapping::ConsentStatus::kRevoked);
  c.status = "active";
  c.provision_type = "deny";
  EXPECT_EQ(consent_decision(c, "a", "").status, mapping::ConsentStatus::kNone);
  c.status = "proposed";
  c.provision_type = "permit";
  EXPECT_EQ(consent_decision(c, "a", "").status, mapping::ConsentStatus::kNone);
}

TEST(Consent, OutsideTheProvisionPeriodIsNone) {
  Consent c;
  c.status = "active";
  c.provision_type = "permit";
  c.provision_end = "2026-06-30";
  EXPECT_EQ(consent_decision(c, "a", "2026-11-20T10:00:00Z").status, mapping::ConsentStatus::kNone);
  EXPECT_EQ(consent_decision(c, "a", "2026-06-01").status, mapping::ConsentStatus::kActive);
}

TEST(Consent, ActionsWithoutDiscloseAreNone) {
  Consent c;
  c.status = "active";
  c.provision_type = "permit";
  c.provision_actions.push_back(
      {"http://terminology.hl7.org/CodeSystem/consentaction", "collect", ""});
  EXPECT_EQ(consent_decision(c, "a", "").status, mapping::ConsentStatus::kNone);
}

TEST(Consent, AgencyIdFromOrganizationReference) {
  EXPECT_EQ(agency_id_of({"Organization/EHV Durham", {}, "", ""}), "");  // not a valid id
  EXPECT_EQ(agency_id_of({"Organization/EHV-Durham", {}, "", ""}), "ehv-durham");
  EXPECT_EQ(agency_id_of({"", {"urn:agencies", "WIC_01"}, "", ""}), "wic_01");
  EXPECT_EQ(agency_id_of({"Practitioner/x", {}, "", ""}), "");
}

}  // namespace
}  // namespace sdoh::fhir

namespace sdoh::fhir {
namespace {

// The Patient of bundle-transaction-screening-consent-referral.json, with a guardian added.
constexpr const char* kPatient = R"({"resourceType":"Patient",
  "identifier":[{"system":"urn:other","value":"X1"},
    {"system":"urn:oid:2.16.840.1.113883.3.9999.100","type":{"coding":[{"system":
    "http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"value":"MRN12345"}],
  "name":[{"family":"Garcia","given":["Sofia"]}],"birthDate":"2026-05-01",
  "address":[{"line":["12 Elm St"],"city":"Durham","state":"NC","postalCode":"27701"}],
  "telecom":[{"system":"phone","value":"919-555-1234","use":"home"}],
  "communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"en"}]}},
    {"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"es","display":"Spanish"}]},
     "preferred":true}],
  "contact":[{"relationship":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0131",
    "code":"N"}]}],"name":{"family":"Garcia","given":["Maria"]},
    "telecom":[{"system":"phone","value":"+1 919 555 1234"}]}],
  "extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
    "extension":[{"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.1.113883.6.238",
    "code":"2106-3","display":"White"}},{"url":"text","valueString":"White"}]},
    {"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
    "extension":[{"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.1.113883.6.238",
    "code":"2135-2"}}]}]})";

TEST(ParsePatient, RecordNumberIsTheMrIdentifier) {
  auto r = parse_resource(kPatient);
  ASSERT_TRUE(r) << r.error().operation_outcome();
  const auto& p = std::get<Patient>(r->resource);
  EXPECT_EQ(p.record_number.system, "urn:oid:2.16.840.1.113883.3.9999.100");
  EXPECT_EQ(p.record_number.value, "MRN12345");
}

TEST(ParsePatient, EquityFieldsFromUsCoreExtensionsCommunicationAndAddress) {
  auto r = parse_resource(kPatient);
  ASSERT_TRUE(r);
  const auto& p = std::get<Patient>(r->resource);
  ASSERT_EQ(p.race.size(), 1u);
  EXPECT_EQ(p.race[0].code, "2106-3");
  ASSERT_EQ(p.ethnicity.size(), 1u);
  EXPECT_EQ(p.ethnicity[0].code, "2135-2");
  ASSERT_TRUE(p.language);
  EXPECT_EQ(p.language->code, "es");  // the preferred one, not the first
  EXPECT_EQ(p.postal_code, "27701");
  EXPECT_EQ(p.birth_date, "2026-05-01");
}

TEST(ParsePatient, ContactDetailsForConsentedReferrals) {
  auto r = parse_resource(kPatient);
  ASSERT_TRUE(r);
  const auto& c = std::get<Patient>(r->resource).contact;
  EXPECT_EQ(c.name.family, "Garcia");
  EXPECT_EQ(c.phone, "+19195551234");  // E.164
  ASSERT_TRUE(c.address);
  EXPECT_EQ(c.address->city, "Durham");
  ASSERT_TRUE(c.guardian);
  EXPECT_EQ(c.guardian->name.given.front(), "Maria");
  EXPECT_EQ(c.guardian->relationship.code, "N");
  EXPECT_EQ(c.guardian->phone, "+19195551234");
}

TEST(ParsePatient, NoIdentifierIsAWarning) {
  auto r = parse_resource(R"({"resourceType":"Patient","birthDate":"2020-01-01"})");
  ASSERT_TRUE(r);
  EXPECT_TRUE(has_issue(r->warnings, "Patient.identifier", IssueSeverity::kWarning));
}

TEST(ParseResource, NestingPastTheDepthLimitIs400NotACrash) {
  auto r = parse_resource(std::string(150'000, '['));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().http_status(), 400);
  EXPECT_NE(r.error().first_error().diagnostics.find("nested deeper than 64 levels"),
            std::string::npos);
  auto dup =
      parse_resource(R"({"resourceType":"Observation","status":"final","status":"amended"})");
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().first_error().diagnostics.find("duplicate member name"), std::string::npos);
}

}  // namespace
}  // namespace sdoh::fhir
