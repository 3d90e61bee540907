// adapters/fhir/ingest.cpp: the shared FHIR samples through validation, the shared mapping
// engines and the commit request, with every event checked against schemas/events.
#include "adapters/fhir/ingest.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/events/event.hpp"
#include "gateway/events/schema_catalog.hpp"
#include "gateway/mapping/engine.hpp"
#include "tests/unit/support/shipped.hpp"

namespace sdoh::fhir {
namespace {

namespace fs = std::filesystem;
using test::kSchemas;
constexpr const char* kReceived = "2026-11-20T15:30:00.000Z";

std::string sample(const std::string& name) {
  return test::shared_sample("fhir", name);
}

rapidjson::Document parse(const std::string& json) {
  return test::parse_json(json);
}

// Resources received before, keyed "Type/id".
class MapDirectory final : public ResourceDirectory {
 public:
  std::map<std::string, std::string> resources;
  std::map<std::string, std::string> identifiers;  // "Type|system|value" → id

  std::optional<std::string> read(std::string_view type, std::string_view id) const override {
    auto it = resources.find(std::string(type) + "/" + std::string(id));
    if (it == resources.end()) return std::nullopt;
    return it->second;
  }
  std::optional<std::string> find_by_identifier(std::string_view type, std::string_view system,
                                                std::string_view value) const override {
    auto it =
        identifiers.find(std::string(type) + "|" + std::string(system) + "|" + std::string(value));
    if (it == identifiers.end()) return std::nullopt;
    return it->second;
  }
  // Answers every search with `found`, and keeps what was asked.
  std::vector<std::string> search(
      std::string_view type,
      const std::vector<std::pair<std::string, std::string>>& params) const override {
    searched.emplace_back(std::string(type), params);
    return found;
  }
  std::vector<std::string> found;
  mutable std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>>
      searched;
};

class FhirIngestTest : public ::testing::Test {
 protected:
  FhirIngestTest() {
    mapper_ = test::shipped_mapper(registry_);
    catalog_ = test::shipped_catalog();
    ctx_.mapper = mapper_.get();
    ctx_.sender = "clinic-a";
    ctx_.facility = {"urn:oid:2.16.840.1.113883.3.9999", "PEDS_CLINIC_A", "Peds Clinic A"};
    ctx_.directory = &directory_;
  }

  std::expected<FhirIngest, FhirRejection> post(const std::string& body, std::string_view type,
                                                std::string_view if_none_exist = "") {
    return ingest({body, type, if_none_exist, kReceived, {}}, ctx_);
  }

  // Every event valid against its schema; returns the events' data by type.
  std::multimap<std::string, std::string> checked(const std::vector<pipeline::OutboxEvent>& evs) {
    std::multimap<std::string, std::string> out;
    for (const auto& e : evs) {
      auto valid = catalog_->validate_event(e.value);
      EXPECT_TRUE(valid) << (valid ? "" : valid.error().message) << "\n" << e.value;
      out.emplace(e.type, e.value);
    }
    return out;
  }

  static std::string data_field(const std::string& envelope, const char* pointer) {
    auto doc = parse(envelope);
    const auto* v = rapidjson::Pointer(pointer).Get(doc);
    if (v == nullptr) return "<absent>";
    if (v->IsNull()) return "<null>";
    if (v->IsString()) return v->GetString();
    if (v->IsBool()) return v->GetBool() ? "true" : "false";
    return "<other>";
  }

  metrics::Registry registry_;
  std::unique_ptr<mapping::ScreeningMapper> mapper_;
  std::unique_ptr<events::SchemaCatalog> catalog_;
  MapDirectory directory_;
  IngestContext ctx_;
};

// questionnaireresponse-hunger-vital-sign.json: 201; screening event food-insecurity positive.
TEST_F(FhirIngestTest, HungerVitalSignQuestionnaireResponseIsOneScreeningEvent) {
  auto r = post(sample("questionnaireresponse-hunger-vital-sign.json"), "QuestionnaireResponse");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  EXPECT_EQ(r->http_status, 201);
  auto events = checked(r->commit.events);
  ASSERT_EQ(events.count("org.sdoh.screening.v1"), 1u);
  const auto& e = events.find("org.sdoh.screening.v1")->second;
  EXPECT_EQ(data_field(e, "/data/instrument/id"), "hunger-vital-sign");
  EXPECT_EQ(data_field(e, "/data/domains/0/category"), "food-insecurity");
  EXPECT_EQ(data_field(e, "/data/domains/0/status"), "positive");
  EXPECT_EQ(data_field(e, "/data/source/protocol"), "fhir");
  EXPECT_EQ(data_field(e, "/data/source/messageId"), "QR-A-0001");
  EXPECT_EQ(data_field(e, "/data/performed"), "2026-11-20T10:00:00-05:00");
  EXPECT_EQ(data_field(e, "/data/facility/id"), "PEDS_CLINIC_A");
  EXPECT_EQ(r->commit.events.size(), 1u);
  EXPECT_FALSE(r->commit.dead_letter);
}

TEST_F(FhirIngestTest, CreatedResourceHasGatewayIdMetaAndLocation) {
  auto r = post(sample("questionnaireresponse-hunger-vital-sign.json"), "QuestionnaireResponse");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->resources.size(), 1u);
  const auto& s = r->resources.front();
  EXPECT_EQ(s.type, "QuestionnaireResponse");
  EXPECT_EQ(s.id.size(), 32u);
  EXPECT_EQ(r->location, "QuestionnaireResponse/" + s.id + "/_history/1");
  auto doc = parse(r->body);
  EXPECT_EQ(std::string(doc["id"].GetString()), s.id);
  EXPECT_STREQ(doc["meta"]["versionId"].GetString(), "1");
  EXPECT_STREQ(doc["meta"]["lastUpdated"].GetString(), kReceived);
  EXPECT_EQ(r->commit.inbound.protocol, "fhir");
  EXPECT_EQ(r->commit.inbound.answer_code, "201");
  EXPECT_EQ(r->commit.inbound.message_type, "QuestionnaireResponse");
}

// The sample's subject is Patient/pat-sofia, which this gateway never received.
TEST_F(FhirIngestTest, UnknownPatientIsLinkedByReferenceWithAWarning) {
  auto r = post(sample("questionnaireresponse-hunger-vital-sign.json"), "QuestionnaireResponse");
  ASSERT_TRUE(r);
  bool warned = false;
  for (const auto& i : r->issues) {
    warned = warned || (i.severity == IssueSeverity::kWarning &&
                        i.expression == "QuestionnaireResponse.subject.reference");
  }
  EXPECT_TRUE(warned) << r->outcome();
}

TEST_F(FhirIngestTest, UnknownPatientRefusedWhenThePolicySaysSo) {
  ctx_.unknown_patient = UnknownPatientPolicy::kReject;
  auto r = post(sample("questionnaireresponse-hunger-vital-sign.json"), "QuestionnaireResponse");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().problem.http_status(), 422);
  EXPECT_EQ(r.error().problem.first_error().code, IssueType::kNotFound);
  EXPECT_EQ(r.error().problem.first_error().expression, "QuestionnaireResponse.subject.reference");
}

TEST_F(FhirIngestTest, KnownPatientGivesTheMrnPseudonymAndEquityFields) {
  auto bundle = parse(sample("bundle-transaction-screening-consent-referral.json"));
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  bundle["entry"][0]["resource"].Accept(w);
  directory_.resources["Patient/pat-sofia"] = buf.GetString();
  auto r = post(sample("questionnaireresponse-hunger-vital-sign.json"), "QuestionnaireResponse");
  ASSERT_TRUE(r);
  const auto& e = r->commit.events.front().value;
  EXPECT_EQ(data_field(e, "/data/patient/pseudonym"),
            mapper_->pseudonymizer().pseudonym("urn:oid:2.16.840.1.113883.3.9999.100", "MRN12345"));
  EXPECT_EQ(data_field(e, "/data/patient/ageBand"), "0-11m");
  EXPECT_EQ(data_field(e, "/data/equity/zip3"), "277");
  EXPECT_EQ(data_field(e, "/data/equity/language/code"), "es");
  EXPECT_EQ(data_field(e, "/data/equity/race/0/code"), "2106-3");
  EXPECT_EQ(data_field(e, "/data/equity/ethnicity/0/code"), "2135-2");
  EXPECT_EQ(e.find("Garcia"), std::string::npos);
  EXPECT_EQ(e.find("MRN12345"), std::string::npos);
  EXPECT_EQ(e.find("27701"), std::string::npos);
}

TEST_F(FhirIngestTest, ResendYieldsTheSameKeyAndEvents) {
  const auto body = sample("questionnaireresponse-hunger-vital-sign.json");
  auto a = post(body, "QuestionnaireResponse");
  auto b = ingest({body, "QuestionnaireResponse", "", "2026-11-21T09:00:00.000Z", {}}, ctx_);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->commit.inbound.dedupe_key, b->commit.inbound.dedupe_key);
  EXPECT_EQ(a->commit.inbound.dedupe_key,
            "QuestionnaireResponse|identifier|urn:oid:2.16.840.1.113883.3.9999.1|QR-A-0001");
  EXPECT_EQ(a->commit.events.front().event_id, b->commit.events.front().event_id);
  // The resource's id leads with the time received: the store's dedupe gives a resend inside
  // the window the original answer and id (test_fhir's resend), not this one.
  EXPECT_NE(a->resources.front().id, b->resources.front().id);
  EXPECT_EQ(a->resources.front().id.substr(12), b->resources.front().id.substr(12));
}

// A created resource's id: 12 hex digits of the Unix ms it was received (2026-11-20T15:30:00Z is
// 1795188600000, 0x01a1f9942cc0), then 20 of the request's identity hash; ids sort by creation.
TEST_F(FhirIngestTest, NewIdsLeadWithTheTimeReceivedSoTheySortByCreation) {
  const auto bundle = sample("bundle-transaction-screening-consent-referral.json");
  auto a = post(bundle, "");
  auto b = ingest({bundle, "", "", "2026-11-20T15:30:00.001Z", {}}, ctx_);
  ASSERT_TRUE(a && b);
  ASSERT_GE(a->resources.size(), 2u);
  // A referral's Task is the exception: its id is the referral's id (referralId in events).
  std::set<std::string> ids;
  for (const auto& r : a->resources) {
    if (!r.created || r.type == "Task") continue;
    EXPECT_THAT(r.id, ::testing::MatchesRegex("^01a1f9942cc0[0-9a-f]{20}$")) << r.type;
    ids.insert(r.id);
  }
  EXPECT_EQ(ids.size(), 4u);  // Patient, QR, Consent, ServiceRequest: distinct in one millisecond
  for (const auto& r : b->resources) {
    if (!r.created || r.type == "Task") continue;
    EXPECT_TRUE(r.id.starts_with("01a1f9942cc1")) << r.id;
  }
  EXPECT_LT(a->resources.front().id, b->resources.front().id);
  // References between the entries name the ids given.
  const auto& stored = a->resources;
  const auto qr = std::find_if(stored.begin(), stored.end(),
                               [](const auto& r) { return r.type == "QuestionnaireResponse"; });
  const auto patient =
      std::find_if(stored.begin(), stored.end(), [](const auto& r) { return r.type == "Patient"; });
  ASSERT_TRUE(qr != stored.end() && patient != stored.end());
  EXPECT_NE(qr->json.find("\"Patient/" + patient->id + "\""), std::string::npos) << qr->json;
}

// Without a time received (never from the API), the id is the identity hash alone.
TEST_F(FhirIngestTest, WithoutATimeReceivedTheIdIsTheHashAlone) {
  const auto body = sample("questionnaireresponse-hunger-vital-sign.json");
  auto a = ingest({body, "QuestionnaireResponse", "", "", {}}, ctx_);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->resources.front().id,
            events::event_id("fhir-resource|clinic-a|" + a->commit.inbound.dedupe_key, 0));
}

// observation-screening-response-food.json: 201; screening event with that item.
TEST_F(FhirIngestTest, SingleScreeningObservationIsOneScreeningEvent) {
  auto r = post(sample("observation-screening-response-food.json"), "Observation");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  EXPECT_EQ(r->http_status, 201);
  auto events = checked(r->commit.events);
  ASSERT_EQ(events.count("org.sdoh.screening.v1"), 1u);
  const auto& e = events.find("org.sdoh.screening.v1")->second;
  EXPECT_EQ(data_field(e, "/data/domains/0/category"), "food-insecurity");
  EXPECT_EQ(data_field(e, "/data/domains/0/status"), "positive");
  EXPECT_EQ(data_field(e, "/data/domains/0/items/0/code"), "88122-7");
  EXPECT_EQ(data_field(e, "/data/source/resourceType"), "Observation");
  EXPECT_EQ(data_field(e, "/data/source/messageId"), "obs-hvs-88122-7-sofia");
}

// observation-bad-missing-code.json: 400 OperationOutcome with expression Observation.code.
TEST_F(FhirIngestTest, ObservationWithoutCodeIsRejectedAndDeadLettered) {
  auto r = post(sample("observation-bad-missing-code.json"), "Observation");
  ASSERT_FALSE(r);
  const auto& rej = r.error();
  EXPECT_EQ(rej.problem.http_status(), 400);
  auto oo = parse(rej.problem.operation_outcome());
  EXPECT_STREQ(oo["issue"][0]["severity"].GetString(), "error");
  EXPECT_STREQ(oo["issue"][0]["code"].GetString(), "required");
  EXPECT_STREQ(oo["issue"][0]["expression"][0].GetString(), "Observation.code");
  ASSERT_TRUE(rej.commit.dead_letter);
  EXPECT_EQ(rej.commit.dead_letter->stage, "validate");
  EXPECT_EQ(rej.commit.dead_letter->error_code, "required");
  EXPECT_EQ(rej.commit.dead_letter->location, "Observation.code");
  EXPECT_EQ(rej.commit.inbound.answer_code, "400");
  EXPECT_EQ(rej.commit.inbound.answer, rej.problem.operation_outcome());
  auto events = checked(rej.commit.events);
  ASSERT_EQ(events.count("org.sdoh.deadletter.v1"), 1u);
  EXPECT_EQ(data_field(events.begin()->second, "/data/location/expression"), "Observation.code");
}

TEST_F(FhirIngestTest, XmlBodyIsRejectedAsStructure) {
  auto r = post("<QuestionnaireResponse/>", "QuestionnaireResponse");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().problem.http_status(), 400);
  EXPECT_EQ(r.error().commit.dead_letter->stage, "parse");
  checked(r.error().commit.events);
}

TEST_F(FhirIngestTest, BodyTypeMustMatchTheUrl) {
  auto r = post(sample("observation-screening-response-food.json"), "QuestionnaireResponse");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().problem.http_status(), 400);
  EXPECT_EQ(r.error().problem.first_error().expression, "resourceType");
}

TEST_F(FhirIngestTest, ValidButUnmappableObservationIsAcceptedWithAWarning) {
  auto r = post(R"({"resourceType":"Observation","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"88122-7"}]},
    "effectiveDateTime":"2026-11-20","valueCodeableConcept":{"coding":[{"system":"http://loinc.org",
    "code":"LA28397-0"}]}})",
                "Observation");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  EXPECT_EQ(r->http_status, 201);
  EXPECT_TRUE(r->commit.events.empty());
  bool warned = false;
  for (const auto& i : r->issues)
    warned = warned || (i.severity == IssueSeverity::kWarning && i.code == IssueType::kProcessing &&
                        i.expression == "Observation.subject");
  EXPECT_TRUE(warned) << r->outcome();
  EXPECT_EQ(r->resources.size(), 1u);  // stored, not dropped
}

TEST_F(FhirIngestTest, UnknownInstrumentIsPublishedAsUnmappedWithAWarning) {
  auto r = post(R"({"resourceType":"Observation","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"99999-9"}]},
    "subject":{"identifier":{"system":"urn:mrn","value":"M1"}},"performer":[{"reference":"Practitioner/p"}],
    "effectiveDateTime":"2026-11-20","valueBoolean":true})",
                "Observation");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  auto events = checked(r->commit.events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(data_field(events.begin()->second, "/data/instrument/id"), "unknown");
  EXPECT_EQ(data_field(events.begin()->second, "/data/unmapped/0/code"), "99999-9");
  bool warned = false;
  for (const auto& i : r->issues)
    warned = warned || i.code == IssueType::kProcessing;
  EXPECT_TRUE(warned);
}

TEST_F(FhirIngestTest, GroupingObservationMapsItsMembersAsOneScreening) {
  auto r = post(R"({"resourceType":"Bundle","type":"batch","entry":[
    {"fullUrl":"urn:uuid:11111111-1111-4111-8111-111111111111","request":{"method":"POST","url":"Observation"},
     "resource":{"resourceType":"Observation","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"88121-9"}]},
      "subject":{"identifier":{"system":"urn:mrn","value":"M1"}},"effectiveDateTime":"2026-11-20",
      "hasMember":[{"reference":"urn:uuid:22222222-2222-4222-8222-222222222222"},
                   {"reference":"urn:uuid:33333333-3333-4333-8333-333333333333"}]}},
    {"fullUrl":"urn:uuid:22222222-2222-4222-8222-222222222222","request":{"method":"POST","url":"Observation"},
     "resource":{"resourceType":"Observation","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"88122-7"}]},
      "subject":{"identifier":{"system":"urn:mrn","value":"M1"}},"effectiveDateTime":"2026-11-20",
      "valueCodeableConcept":{"coding":[{"system":"http://loinc.org","code":"LA28398-8"}]}}},
    {"fullUrl":"urn:uuid:33333333-3333-4333-8333-333333333333","request":{"method":"POST","url":"Observation"},
     "resource":{"resourceType":"Observation","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"88123-5"}]},
      "subject":{"identifier":{"system":"urn:mrn","value":"M1"}},"effectiveDateTime":"2026-11-20",
      "valueCodeableConcept":{"coding":[{"system":"http://loinc.org","code":"LA28398-8"}]}}}]})",
                "");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  auto events = checked(r->commit.events);
  ASSERT_EQ(events.count("org.sdoh.screening.v1"), 1u);  // the members are not published twice
  const auto& e = events.find("org.sdoh.screening.v1")->second;
  EXPECT_EQ(data_field(e, "/data/instrument/id"), "hunger-vital-sign");
  EXPECT_EQ(data_field(e, "/data/domains/0/status"), "negative");
  EXPECT_EQ(data_field(e, "/data/domains/0/items/1/code"), "88123-5");
}

// A question item with no answer was asked and not answered; a group and a display item were not.
TEST_F(FhirIngestTest, QuestionnaireResponseQuestionWithoutAnswerIsUnanswered) {
  auto r = post(R"({"resourceType":"QuestionnaireResponse","status":"completed",
    "questionnaire":"http://hl7.org/fhir/us/sdoh-clinicalcare/Questionnaire/SDOHCC-QuestionnaireHungerVitalSign",
    "subject":{"identifier":{"system":"urn:mrn","value":"M1"}},"authored":"2026-11-20T10:00:00Z",
    "item":[{"linkId":"intro","text":"About food"},
      {"linkId":"/88122-7","text":"Worried food would run out",
       "answer":[{"valueCoding":{"system":"http://loinc.org","code":"LA28397-0"}}]},
      {"linkId":"/88123-5","text":"Food did not last"},
      {"linkId":"group-1","item":[{"linkId":"/88124-3","text":"Food insecurity risk"}]}]})",
                "QuestionnaireResponse");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  auto events = checked(r->commit.events);
  ASSERT_EQ(events.count("org.sdoh.screening.v1"), 1u);
  auto doc = parse(events.find("org.sdoh.screening.v1")->second);
  const auto& unanswered = doc["data"]["unanswered"];
  ASSERT_EQ(unanswered.Size(), 2u);
  EXPECT_STREQ(unanswered[0]["code"].GetString(), "88123-5");
  EXPECT_STREQ(unanswered[0]["linkId"].GetString(), "/88123-5");
  EXPECT_STREQ(unanswered[0]["category"].GetString(), "food-insecurity");
  EXPECT_STREQ(unanswered[1]["code"].GetString(), "88124-3");
  EXPECT_EQ(data_field(events.find("org.sdoh.screening.v1")->second, "/data/domains/0/status"),
            "positive");
  EXPECT_EQ(doc["data"]["domains"][0]["items"].Size(), 1u);
}

TEST_F(FhirIngestTest, InProgressQuestionnaireResponseHasNoUnansweredItems) {
  auto r = post(R"({"resourceType":"QuestionnaireResponse","status":"in-progress",
    "questionnaire":"http://hl7.org/fhir/us/sdoh-clinicalcare/Questionnaire/SDOHCC-QuestionnaireHungerVitalSign",
    "subject":{"identifier":{"system":"urn:mrn","value":"M1"}},"authored":"2026-11-20T10:00:00Z",
    "item":[{"linkId":"/88122-7","answer":[{"valueCoding":{"system":"http://loinc.org","code":"LA28398-8"}}]},
      {"linkId":"/88123-5"}]})",
                "QuestionnaireResponse");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  auto events = checked(r->commit.events);
  ASSERT_EQ(events.count("org.sdoh.screening.v1"), 1u);
  auto doc = parse(events.find("org.sdoh.screening.v1")->second);
  EXPECT_EQ(doc["data"]["unanswered"].Size(), 0u) << "still being filled in";
}

TEST_F(FhirIngestTest, FinalMemberObservationWithoutValueIsUnanswered) {
  auto r = post(R"({"resourceType":"Bundle","type":"batch","entry":[
    {"fullUrl":"urn:uuid:11111111-1111-4111-8111-111111111111","request":{"method":"POST","url":"Observation"},
     "resource":{"resourceType":"Observation","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"88121-9"}]},
      "subject":{"identifier":{"system":"urn:mrn","value":"M1"}},"effectiveDateTime":"2026-11-20",
      "hasMember":[{"reference":"urn:uuid:22222222-2222-4222-8222-222222222222"},
                   {"reference":"urn:uuid:33333333-3333-4333-8333-333333333333"}]}},
    {"fullUrl":"urn:uuid:22222222-2222-4222-8222-222222222222","request":{"method":"POST","url":"Observation"},
     "resource":{"resourceType":"Observation","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"88122-7"}]},
      "subject":{"identifier":{"system":"urn:mrn","value":"M1"}},"effectiveDateTime":"2026-11-20",
      "valueCodeableConcept":{"coding":[{"system":"http://loinc.org","code":"LA28398-8"}]}}},
    {"fullUrl":"urn:uuid:33333333-3333-4333-8333-333333333333","request":{"method":"POST","url":"Observation"},
     "resource":{"resourceType":"Observation","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"88123-5"}]},
      "subject":{"identifier":{"system":"urn:mrn","value":"M1"}},"effectiveDateTime":"2026-11-20",
      "dataAbsentReason":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/data-absent-reason","code":"asked-unknown"}]}}}]})",
                "");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  auto events = checked(r->commit.events);
  ASSERT_EQ(events.count("org.sdoh.screening.v1"), 1u);
  const auto& e = events.find("org.sdoh.screening.v1")->second;
  EXPECT_EQ(data_field(e, "/data/unanswered/0/code"), "88123-5");
  EXPECT_EQ(data_field(e, "/data/domains/0/status"), "negative");
}

TEST_F(FhirIngestTest, FinalObservationWithoutValueIsAScreeningWithOneUnansweredQuestion) {
  auto r = post(R"({"resourceType":"Observation","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"88122-7"}]},
    "subject":{"identifier":{"system":"urn:mrn","value":"M1"}},"performer":[{"reference":"Practitioner/p"}],
    "effectiveDateTime":"2026-11-20",
    "dataAbsentReason":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/data-absent-reason","code":"asked-unknown"}]}})",
                "Observation");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  auto events = checked(r->commit.events);
  ASSERT_EQ(events.count("org.sdoh.screening.v1"), 1u);
  const auto& e = events.find("org.sdoh.screening.v1")->second;
  EXPECT_EQ(data_field(e, "/data/unanswered/0/code"), "88122-7");
  EXPECT_EQ(data_field(e, "/data/unanswered/0/category"), "food-insecurity");
  EXPECT_EQ(data_field(e, "/data/domains/0/status"), "<absent>");
}

class TransactionSample : public FhirIngestTest {
 protected:
  std::expected<FhirIngest, FhirRejection> post_sample() {
    return post(sample("bundle-transaction-screening-consent-referral.json"), "");
  }
};

// bundle-transaction-screening-consent-referral.json: transaction-response; screening event;
// referral event for ehv-durham with consent.
TEST_F(TransactionSample, AnswersWithATransactionResponse) {
  auto r = post_sample();
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  EXPECT_EQ(r->http_status, 200);
  auto b = parse(r->body);
  EXPECT_STREQ(b["type"].GetString(), "transaction-response");
  ASSERT_EQ(b["entry"].Size(), 5u);
  for (rapidjson::SizeType i = 0; i < 5; ++i) {
    EXPECT_STREQ(b["entry"][i]["response"]["status"].GetString(), "201 Created") << i;
  }
  EXPECT_EQ(std::string(b["entry"][4]["response"]["location"].GetString()),
            "Task/" + r->referrals.at(0).referral_id + "/_history/1");
  EXPECT_EQ(r->commit.inbound.dedupe_key,
            "Bundle|identifier|urn:oid:2.16.840.1.113883.3.9999.2|BUNDLE-A-0002");
}

TEST_F(TransactionSample, PublishesTheScreeningTheReferralAndItsFirstStatus) {
  auto r = post_sample();
  ASSERT_TRUE(r);
  auto events = checked(r->commit.events);
  EXPECT_EQ(events.count("org.sdoh.screening.v1"), 1u);
  EXPECT_EQ(events.count("org.sdoh.referral.v1"), 1u);
  EXPECT_EQ(events.count("org.sdoh.referral.status.v1"), 1u);
  EXPECT_EQ(r->commit.events.size(), 3u);
  const auto& s = events.find("org.sdoh.screening.v1")->second;
  EXPECT_EQ(data_field(s, "/data/instrument/id"), "ahc-hrsn");
  EXPECT_EQ(data_field(s, "/data/patient/pseudonym"),
            mapper_->pseudonymizer().pseudonym("urn:oid:2.16.840.1.113883.3.9999.100", "MRN12345"));
  const auto& st = events.find("org.sdoh.referral.status.v1")->second;
  EXPECT_EQ(data_field(st, "/data/status"), "requested");
  EXPECT_EQ(data_field(st, "/data/previousStatus"), "<null>");
}

TEST_F(TransactionSample, ReferralCarriesConsentedContactDetails) {
  auto r = post_sample();
  ASSERT_TRUE(r);
  auto events = checked(r->commit.events);
  const auto& e = events.find("org.sdoh.referral.v1")->second;
  ASSERT_EQ(r->referrals.size(), 1u);
  const auto& ref = r->referrals.front();
  EXPECT_EQ(ref.referral_id,
            mapper_->referral_id("urn:oid:2.16.840.1.113883.3.9999.3", "REF-2026-0002"));
  EXPECT_EQ(data_field(e, "/data/referralId"), ref.referral_id);
  // The measures' groups: the family's 3-digit ZIP area (the sample's ZIP is 27701), race.
  EXPECT_EQ(ref.zip3, "277");
  EXPECT_EQ(ref.race, "2106-3");
  EXPECT_EQ(data_field(e, "/data/agency/id"), "ehv-durham");
  EXPECT_EQ(data_field(e, "/data/agency/name"), "Early Start Home Visiting");
  EXPECT_EQ(data_field(e, "/data/category"), "food-insecurity");
  EXPECT_EQ(data_field(e, "/data/service/code"), "467771000124109");
  EXPECT_EQ(data_field(e, "/data/requester/id"), "Practitioner/pr-rivera");
  EXPECT_EQ(data_field(e, "/data/consent/status"), "active");
  EXPECT_EQ(data_field(e, "/data/consent/source"), "fhir-consent");
  EXPECT_EQ(data_field(e, "/data/contact/phone"), "+19195551234");
  EXPECT_EQ(data_field(e, "/data/contact/preferredLanguage/code"), "es");
  EXPECT_EQ(data_field(e, "/data/patient/zip3"), "277");
  EXPECT_EQ(e.find("MRN12345"), std::string::npos);
  EXPECT_TRUE(ref.contact_included);
}

TEST_F(TransactionSample, UrnUuidReferencesAreRewrittenToAssignedIds) {
  auto r = post_sample();
  ASSERT_TRUE(r);
  std::map<std::string, const StoredResource*> by_type;
  for (const auto& s : r->resources)
    by_type[s.type] = &s;
  ASSERT_EQ(by_type.size(), 5u);
  auto task = parse(by_type["Task"]->json);
  EXPECT_EQ(std::string(task["id"].GetString()), r->referrals.front().referral_id);
  EXPECT_EQ(std::string(task["focus"]["reference"].GetString()),
            "ServiceRequest/" + by_type["ServiceRequest"]->id);
  EXPECT_EQ(std::string(task["for"]["reference"].GetString()), "Patient/" + by_type["Patient"]->id);
  EXPECT_EQ(by_type["Task"]->json.find("urn:uuid:"), std::string::npos);
  EXPECT_EQ(r->consents.size(), 1u);
  EXPECT_EQ(r->consents.front().consent.status, mapping::ConsentStatus::kActive);
  EXPECT_EQ(r->consents.front().recipients, std::vector<std::string>{"ehv-durham"});
  EXPECT_EQ(r->consents.front().patient_pseudonym, r->patient_pseudonyms.at(0));
}

// An operator's replay: the ids the request's first answer named are kept (what it stored then
// is found again, not created once more under ids of the replay's time), references between the
// entries follow them, and an entry the answer names no location for gets a new id.
TEST_F(TransactionSample, AReplayKeepsTheIdsItsEarlierAnswerNamed) {
  const auto bundle = sample("bundle-transaction-screening-consent-referral.json");
  const std::string qr_id = "0123456789abcdef0123456789abcdef";
  const std::string earlier =
      R"({"resourceType":"Bundle","type":"transaction-response","entry":[)"
      R"({"response":{"status":"400 Bad Request"}},)"
      R"({"response":{"status":"201 Created","location":"QuestionnaireResponse/)" +
      qr_id + R"(/_history/1"}}]})";
  auto r = ingest({bundle, "", "", "2026-11-21T09:00:00.000Z", earlier}, ctx_);
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  const StoredResource* qr = nullptr;
  const StoredResource* patient = nullptr;
  for (const auto& s : r->resources) {
    if (s.type == "QuestionnaireResponse") qr = &s;
    if (s.type == "Patient") patient = &s;
  }
  ASSERT_TRUE(qr != nullptr && patient != nullptr);
  EXPECT_EQ(qr->id, qr_id);
  // No location for entry 0: a new id, of the replay's time (2026-11-21T09:00:00Z).
  EXPECT_TRUE(patient->id.starts_with("01a1fd557a80")) << patient->id;
  EXPECT_NE(qr->json.find("\"Patient/" + patient->id + "\""), std::string::npos);
}

// A ServiceRequest with no identifier numbers its referral by its id: that id is the hash alone,
// so the same request at another time (a replay, a resend after the dedupe window) opens the
// same referral, not a second one for the agency.
TEST_F(TransactionSample, AServiceRequestWithoutIdentifierKeepsOneIdAtEveryTime) {
  auto sr_id = [](const FhirIngest& r) {
    for (const auto& s : r.resources)
      if (s.type == "ServiceRequest") return s.id;
    return std::string();
  };
  // No identifier, and an identifier with no value: both number the referral by the id.
  for (const char* identifier : {"", R"([{"system":"urn:oid:2.16.840.1.113883.3.9999.3"}])"}) {
    auto doc = parse(sample("bundle-transaction-screening-consent-referral.json"));
    auto& sr = doc["entry"][3]["resource"];
    sr.RemoveMember("identifier");
    if (*identifier != '\0') {
      rapidjson::Document value(&doc.GetAllocator());
      value.Parse(identifier);
      sr.AddMember("identifier", rapidjson::Value(value, doc.GetAllocator()), doc.GetAllocator());
    }
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    doc.Accept(w);
    auto a = ingest({buf.GetString(), "", "", "2026-11-20T15:30:00.000Z", {}}, ctx_);
    auto b = ingest({buf.GetString(), "", "", "2026-12-25T08:00:00.000Z", {}}, ctx_);
    ASSERT_TRUE(a && b) << identifier;
    EXPECT_FALSE(sr_id(*a).empty()) << identifier;
    EXPECT_EQ(sr_id(*a), sr_id(*b)) << identifier;
    ASSERT_EQ(a->referrals.size(), 1u) << identifier;
    ASSERT_EQ(b->referrals.size(), 1u) << identifier;
    EXPECT_EQ(a->referrals[0].referral_id, b->referrals[0].referral_id) << identifier;
  }
}

TEST_F(TransactionSample, WithoutConsentTheReferralHasNoContactAndAwaitsConsent) {
  auto doc = parse(sample("bundle-transaction-screening-consent-referral.json"));
  doc["entry"][2]["resource"]["provision"]["type"].SetString("deny");
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  doc.Accept(w);
  auto r = post(buf.GetString(), "");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  auto events = checked(r->commit.events);
  const auto& e = events.find("org.sdoh.referral.v1")->second;
  EXPECT_EQ(data_field(e, "/data/consent/status"), "none");
  EXPECT_EQ(data_field(e, "/data/contact"), "<absent>");
  EXPECT_EQ(data_field(e, "/data/businessStatus"), "awaiting-consent");
  EXPECT_EQ(e.find("Garcia"), std::string::npos);
  EXPECT_EQ(e.find("Elm St"), std::string::npos);
}

TEST_F(TransactionSample, OneBadEntryRejectsTheWholeTransaction) {
  auto doc = parse(sample("bundle-transaction-screening-consent-referral.json"));
  doc["entry"][1]["resource"]["item"][2]["answer"][0]["valueCoding"].SetString("LA33-6");
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  doc.Accept(w);
  auto r = post(buf.GetString(), "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().problem.http_status(), 400);
  EXPECT_EQ(r.error().problem.first_error().expression,
            "Bundle.entry[1].resource.item[2].answer[0].valueCoding");
  auto events = checked(r.error().commit.events);
  EXPECT_EQ(events.size(), 1u);  // only the dead letter: nothing else is committed
  EXPECT_EQ(events.count("org.sdoh.deadletter.v1"), 1u);
}

TEST_F(TransactionSample, UnresolvedUrnUuidIsRefused) {
  auto doc = parse(sample("bundle-transaction-screening-consent-referral.json"));
  doc["entry"][4]["resource"]["focus"]["reference"].SetString(
      "urn:uuid:00000000-0000-4000-8000-000000000000");
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  doc.Accept(w);
  auto r = post(buf.GetString(), "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().problem.http_status(), 422);
  EXPECT_EQ(r.error().problem.first_error().expression, "Bundle.entry[4].resource.focus.reference");
}

TEST_F(TransactionSample, AsBatchAGoodEntryIsKeptBesideABadOne) {
  auto doc = parse(sample("bundle-transaction-screening-consent-referral.json"));
  doc["type"].SetString("batch");
  doc["entry"][3]["resource"].RemoveMember("subject");  // ServiceRequest.subject is 1..1
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  doc.Accept(w);
  auto r = post(buf.GetString(), "");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  auto b = parse(r->body);
  EXPECT_STREQ(b["type"].GetString(), "batch-response");
  EXPECT_STREQ(b["entry"][1]["response"]["status"].GetString(), "201 Created");
  EXPECT_STREQ(b["entry"][3]["response"]["status"].GetString(), "400 Bad Request");
  EXPECT_STREQ(b["entry"][3]["response"]["outcome"]["issue"][0]["expression"][0].GetString(),
               "Bundle.entry[3].resource.subject");
  // The Task's focus is the refused ServiceRequest: refused too, with its own reason.
  EXPECT_STREQ(b["entry"][4]["response"]["status"].GetString(), "422 Unprocessable Entity");
  auto events = checked(r->commit.events);
  EXPECT_EQ(events.count("org.sdoh.screening.v1"), 1u);
  EXPECT_EQ(events.count("org.sdoh.referral.v1"), 0u);
  EXPECT_EQ(events.count("org.sdoh.deadletter.v1"), 1u);
  ASSERT_TRUE(r->commit.dead_letter);
}

TEST_F(TransactionSample, IfNoneExistMatchReusesThePatient) {
  directory_.identifiers["Patient|urn:oid:2.16.840.1.113883.3.9999.100|MRN12345"] = "pat-sofia";
  auto r = post_sample();
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  auto b = parse(r->body);
  EXPECT_STREQ(b["entry"][0]["response"]["status"].GetString(), "200 OK");
  EXPECT_STREQ(b["entry"][0]["response"]["location"].GetString(), "Patient/pat-sofia/_history/1");
  for (const auto& s : r->resources) {
    if (s.type == "Patient") {
      EXPECT_FALSE(s.created);
    }
    if (s.type == "Task") {
      EXPECT_NE(s.json.find("\"Patient/pat-sofia\""), std::string::npos) << s.json;
    }
  }
}

TEST_F(TransactionSample, AReferralSentAgainPublishesNothingNew) {
  directory_.resources["Task/" + mapper_->referral_id("urn:oid:2.16.840.1.113883.3.9999.3",
                                                      "REF-2026-0002")] = "{}";
  auto r = post_sample();
  ASSERT_TRUE(r);
  auto events = checked(r->commit.events);
  EXPECT_EQ(events.count("org.sdoh.referral.v1"), 0u);
  EXPECT_EQ(events.count("org.sdoh.screening.v1"), 1u);
  EXPECT_TRUE(r->referrals.empty());
}

TEST_F(FhirIngestTest, OnlyTransactionAndBatchBundles) {
  auto r = post(R"({"resourceType":"Bundle","type":"collection","entry":[]})", "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().problem.http_status(), 422);
  EXPECT_EQ(r.error().problem.first_error().expression, "Bundle.type");
}

TEST_F(FhirIngestTest, BundleEntriesOnlyCreate) {
  auto r = post(R"({"resourceType":"Bundle","type":"transaction","entry":[
    {"request":{"method":"DELETE","url":"Task/x"}}]})",
                "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().problem.first_error().expression, "Bundle.entry[0].request.method");
}

TEST_F(FhirIngestTest, ANewReferralTaskMustBeRequested) {
  directory_.resources["ServiceRequest/sr1"] = R"({"resourceType":"ServiceRequest",
    "status":"active","intent":"order","subject":{"reference":"Patient/p1"}})";
  auto r = post(R"({"resourceType":"Task","status":"accepted","intent":"order",
    "code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},
    "focus":{"reference":"ServiceRequest/sr1"}})",
                "Task");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().problem.http_status(), 422);
  EXPECT_EQ(r.error().problem.first_error().code, IssueType::kBusinessRule);
  EXPECT_EQ(r.error().problem.first_error().expression, "Task.status");
}

TEST_F(FhirIngestTest, TaskForAServiceRequestReceivedBefore) {
  directory_.resources["ServiceRequest/sr1"] = R"({"resourceType":"ServiceRequest",
    "identifier":[{"system":"urn:refs","value":"R-9"}],"status":"active","intent":"order",
    "category":[{"coding":[{"system":"http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes",
    "code":"housing-instability"}]}],"subject":{"identifier":{"system":"urn:mrn","value":"M7"}},
    "note":[{"text":"call after 5pm"}]})";
  auto r = post(R"({"resourceType":"Task","status":"requested","intent":"order",
    "code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},
    "focus":{"reference":"ServiceRequest/sr1"},"for":{"identifier":{"system":"urn:mrn","value":"M7"}},
    "authoredOn":"2026-11-21","requester":{"reference":"PractitionerRole/r1"},
    "owner":{"reference":"Organization/legal-aid-nc"},"priority":"urgent"})",
                "Task");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  auto events = checked(r->commit.events);
  const auto& e = events.find("org.sdoh.referral.v1")->second;
  EXPECT_EQ(data_field(e, "/data/referralId"), mapper_->referral_id("urn:refs", "R-9"));
  EXPECT_EQ(data_field(e, "/data/priority"), "urgent");
  EXPECT_EQ(data_field(e, "/data/category"), "housing-instability");
  EXPECT_EQ(data_field(e, "/data/consent/status"), "none");
  EXPECT_EQ(data_field(e, "/data/note"), "<null>");  // free text only with consent
  EXPECT_EQ(r->location, "Task/" + mapper_->referral_id("urn:refs", "R-9") + "/_history/1");
}

TEST_F(FhirIngestTest, TaskWhoseFocusIsUnknownIsRefused) {
  auto r = post(R"({"resourceType":"Task","status":"requested","intent":"order",
    "code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]},
    "focus":{"reference":"ServiceRequest/nope"}})",
                "Task");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().problem.first_error().code, IssueType::kNotFound);
  EXPECT_EQ(r.error().problem.first_error().expression, "Task.focus.reference");
}

TEST_F(FhirIngestTest, ConditionalCreateOfAKnownPatientIs200WithoutNewResource) {
  directory_.identifiers["Patient|urn:mrn|M1"] = "p-known";
  auto r = post(R"({"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"M1"}]})",
                "Patient", "identifier=urn:mrn|M1");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  EXPECT_EQ(r->http_status, 200);
  EXPECT_EQ(r->location, "Patient/p-known/_history/1");
  EXPECT_TRUE(r->commit.events.empty());
  // The key can reach a dead-letter event: the identifier in it is hashed.
  EXPECT_TRUE(r->commit.inbound.dedupe_key.starts_with("Patient|if-none-exist-sha256|"));
  EXPECT_EQ(r->commit.inbound.dedupe_key.find("M1"), std::string::npos);
}

TEST_F(FhirIngestTest, RejectedPatientDeadLetterCarriesNoMrn) {
  auto r = post(R"({"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"MRN777"}],
    "birthDate":"not-a-date"})",
                "Patient");
  ASSERT_FALSE(r);
  auto events = checked(r.error().commit.events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events.begin()->second.find("MRN777"), std::string::npos);
  EXPECT_EQ(r.error().commit.inbound.dedupe_key.find("MRN777"), std::string::npos);
  EXPECT_EQ(r.error().commit.events.front().key.find("MRN777"), std::string::npos);
}

TEST_F(FhirIngestTest, PatientGivesItsPseudonym) {
  auto r = post(R"({"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"M1"}]})",
                "Patient");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->patient_pseudonyms.size(), 1u);
  EXPECT_EQ(r->patient_pseudonyms.front(), mapper_->pseudonymizer().pseudonym("urn:mrn", "M1"));
  EXPECT_TRUE(r->commit.events.empty());  // a Patient alone publishes nothing
}

TEST_F(FhirIngestTest, StandaloneConsentGivesItsValue) {
  auto doc = parse(sample("bundle-transaction-screening-consent-referral.json"));
  auto& consent = doc["entry"][2]["resource"];
  consent["patient"]["reference"].SetString("Patient/pat-sofia");
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  consent.Accept(w);
  auto r = post(buf.GetString(), "Consent");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  ASSERT_EQ(r->consents.size(), 1u);
  EXPECT_EQ(r->consents.front().consent.status, mapping::ConsentStatus::kActive);
  EXPECT_EQ(r->consents.front().consent.date, "2026-11-20T10:10:00-05:00");
  EXPECT_EQ(r->consents.front().patient_pseudonym.size(), 64u);
}

TEST_F(FhirIngestTest, DiagnosticsNeverEchoPatientData) {
  auto r = post(R"({"resourceType":"Patient","birthDate":"Sofia Garcia 2026"})", "Patient");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().problem.first_error().expression, "Patient.birthDate");
  EXPECT_EQ(r.error().problem.operation_outcome().find("Sofia"), std::string::npos);
  for (const auto& e : r.error().commit.events)
    EXPECT_EQ(e.value.find("Sofia"), std::string::npos);
}

// The shared transaction as a screening only (Patient, QuestionnaireResponse, Consent) in which the
// family asks for help finding work (AHC HRSN 96780-2): the gateway opens the referral itself.
class ScreeningReferral : public FhirIngestTest {
 protected:
  ScreeningReferral() {
    ctx_.refer_from_screening = true;
    ctx_.route = [this](std::string_view category,
                        const mapping::RoutingKeys& keys) -> std::optional<mapping::RouteChoice> {
      routed_.push_back(std::string(category) + "|" + keys.zip3 + "|" + keys.zip + "|" +
                        keys.county_fips + "|" +
                        (keys.age_months ? std::to_string(*keys.age_months) : "?"));
      if (!route_found_) return std::nullopt;
      // As routing finds it for ZIP 27701, which lies in Durham County alone.
      return mapping::RouteChoice{"ccrr-durham",
                                  "Durham Child Care R&R",
                                  {mapping::AreaLevel::kCounty, mapping::CountyBasis::kZipSole}};
    };
  }

  // `consent_for_any`: the Consent names no recipient (any agency); else only ehv-durham.
  std::string bundle(bool consent_for_any, const char* extra_category = nullptr) {
    auto doc = parse(sample("bundle-transaction-screening-consent-referral.json"));
    auto& alloc = doc.GetAllocator();
    auto& entries = doc["entry"];
    if (extra_category == nullptr) {
      entries.Erase(entries.Begin() + 4);  // Task
      entries.Erase(entries.Begin() + 3);  // ServiceRequest
    } else {
      auto& sr = entries[3]["resource"];
      sr["category"][0]["coding"][0]["code"].SetString(extra_category, alloc);
    }
    auto& items = entries[1]["resource"]["item"];
    rapidjson::Document item;
    item.Parse(R"({"linkId":"/96780-2","answer":[{"valueCoding":{"system":"http://loinc.org",)"
               R"("code":"LA31981-6","display":"Yes, help finding work"}}]})");
    items.PushBack(rapidjson::Value(item, alloc), alloc);
    if (consent_for_any) entries[2]["resource"]["provision"].RemoveMember("actor");
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    doc.Accept(w);
    return buf.GetString();
  }

  static const StoredResource* made(const FhirIngest& r, const std::string& type) {
    for (const auto& s : r.resources) {
      if (s.type == type && s.id == r.referrals.at(0).referral_id) return &s;
    }
    return nullptr;
  }

  std::vector<std::string> routed_;
  bool route_found_ = true;
};

TEST_F(ScreeningReferral, AssistanceRequestedOpensARoutedReferralWithItsTask) {
  auto r = post(bundle(true), "");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  auto events = checked(r->commit.events);
  ASSERT_EQ(events.count("org.sdoh.referral.v1"), 1u);
  EXPECT_EQ(events.count("org.sdoh.referral.status.v1"), 1u);
  ASSERT_EQ(routed_.size(), 1u);
  // The Patient's whole ZIP and no county (a FHIR Address has none); born 2026-05-01,
  // screened 2026-11-20.
  EXPECT_EQ(routed_[0], "employment-status|277|27701||6");
  const auto& e = events.find("org.sdoh.referral.v1")->second;
  ASSERT_EQ(r->referrals.size(), 1u);
  const auto& ref = r->referrals[0];
  EXPECT_EQ(data_field(e, "/data/category"), "employment-status");
  EXPECT_EQ(data_field(e, "/data/agency/id"), "ccrr-durham");
  EXPECT_EQ(data_field(e, "/data/routing/area"), "county");
  EXPECT_EQ(data_field(e, "/data/routing/countyBasis"), "zip-sole");
  EXPECT_EQ(data_field(e, "/data/consent/status"), "active");
  EXPECT_EQ(data_field(e, "/data/contact/phone"), "+19195551234");
  EXPECT_EQ(data_field(e, "/data/businessStatus"), "<null>");
  EXPECT_EQ(ref.clinic_number_system, kScreeningReferralSystem);
  EXPECT_TRUE(ref.clinic_number_value.ends_with(":employment-status"));
  EXPECT_EQ(ref.agency_id, "ccrr-durham");
  EXPECT_TRUE(ref.contact_included);
  EXPECT_EQ(ref.patient, data_field(e, "/data/patient/pseudonym"));
  // The gateway's ServiceRequest and Task for it, beside the posted resources.
  const auto* task = made(*r, "Task");
  const auto* sr = made(*r, "ServiceRequest");
  ASSERT_NE(task, nullptr);
  ASSERT_NE(sr, nullptr);
  auto t = parse(task->json);
  EXPECT_STREQ(t["status"].GetString(), "requested");
  EXPECT_EQ(std::string(t["focus"]["reference"].GetString()), "ServiceRequest/" + ref.referral_id);
  EXPECT_STREQ(t["owner"]["reference"].GetString(), "Organization/ccrr-durham");
  std::string patient_id, qr_id;
  for (const auto& s : r->resources) {
    if (s.type == "Patient") patient_id = s.id;
    if (s.type == "QuestionnaireResponse") qr_id = s.id;
  }
  EXPECT_EQ(std::string(t["for"]["reference"].GetString()), "Patient/" + patient_id);
  auto q = parse(sr->json);
  EXPECT_EQ(std::string(q["reasonReference"][0]["reference"].GetString()),
            "QuestionnaireResponse/" + qr_id);
  EXPECT_STREQ(q["category"][0]["coding"][0]["code"].GetString(), "employment-status");
  EXPECT_EQ(task->json.find("Garcia"), std::string::npos);  // no names on the gateway's Task
}

TEST_F(ScreeningReferral, WithoutConsentForThatAgencyItAwaitsConsent) {
  auto r = post(bundle(false), "");  // the Consent names ehv-durham only
  ASSERT_TRUE(r);
  auto events = checked(r->commit.events);
  const auto& e = events.find("org.sdoh.referral.v1")->second;
  EXPECT_EQ(data_field(e, "/data/businessStatus"), "awaiting-consent");
  EXPECT_EQ(data_field(e, "/data/contact"), "<absent>");
  EXPECT_EQ(r->referrals.at(0).business_status, "awaiting-consent");
  auto t = parse(made(*r, "Task")->json);
  EXPECT_STREQ(t["businessStatus"]["coding"][0]["code"].GetString(), "awaiting-consent");
}

TEST_F(ScreeningReferral, NoRouteHoldsTheReferral) {
  route_found_ = false;
  auto r = post(bundle(true), "");
  ASSERT_TRUE(r);
  auto events = checked(r->commit.events);
  EXPECT_EQ(events.count("org.sdoh.referral.v1"), 0u);
  ASSERT_EQ(events.count("org.sdoh.referral.status.v1"), 1u);
  EXPECT_EQ(data_field(events.find("org.sdoh.referral.status.v1")->second, "/data/businessStatus"),
            "no-route");
  ASSERT_EQ(r->referrals.size(), 1u);
  EXPECT_EQ(r->referrals[0].agency_id, "");
  auto t = parse(made(*r, "Task")->json);
  EXPECT_FALSE(t.HasMember("owner"));
  EXPECT_STREQ(t["businessStatus"]["coding"][0]["code"].GetString(), "no-route");
  // Listed for operations as a dead letter (stage route), to replay once a route exists.
  ASSERT_TRUE(r->commit.dead_letter);
  EXPECT_EQ(r->commit.dead_letter->stage, "route");
  EXPECT_EQ(r->commit.inbound.answer_code, "200");
  EXPECT_EQ(events.count("org.sdoh.deadletter.v1"), 1u);
}

TEST_F(ScreeningReferral, AHeldReferralIsReleasedWhenARouteFindsItsAgency) {
  route_found_ = false;
  auto first = post(bundle(true), "");
  ASSERT_TRUE(first);
  const auto rid = first->referrals.at(0).referral_id;
  for (const auto& res : first->resources)
    directory_.resources[res.type + "/" + res.id] = res.json;
  pipeline::ReferralState held;
  held.referral_id = rid;
  held.category = "employment-status";
  held.status = "requested";
  held.business_status = "no-route";
  held.language = "es";
  ctx_.find_referral = [&](const std::string& id) -> std::optional<pipeline::ReferralState> {
    if (id != rid) return std::nullopt;
    return held;
  };
  auto still = post(bundle(true), "");  // sent again, still no route: still held, no new events
  ASSERT_TRUE(still);
  EXPECT_TRUE(still->referrals.empty());
  ASSERT_TRUE(still->commit.dead_letter);
  EXPECT_EQ(still->commit.dead_letter->stage, "route");

  route_found_ = true;  // an operator added the route
  auto released = post(bundle(true), "");
  ASSERT_TRUE(released) << released.error().problem.operation_outcome();
  EXPECT_FALSE(released->commit.dead_letter);
  auto events = checked(released->commit.events);
  ASSERT_EQ(events.count("org.sdoh.referral.v1"), 1u);
  const auto& e = events.find("org.sdoh.referral.v1")->second;
  EXPECT_EQ(data_field(e, "/data/referralId"), rid);
  EXPECT_EQ(data_field(e, "/data/agency/id"), "ccrr-durham");
  EXPECT_EQ(data_field(e, "/data/consent/status"), "active");
  const auto& st = events.find("org.sdoh.referral.status.v1")->second;
  EXPECT_EQ(data_field(st, "/data/updatedBy/id"), "routing");
  EXPECT_EQ(data_field(st, "/data/businessStatus"), "<null>");
  EXPECT_EQ(data_field(st, "/data/agency/id"), "ccrr-durham");
  ASSERT_EQ(released->referrals.size(), 1u);
  EXPECT_EQ(released->referrals[0].agency_id, "ccrr-durham");
  EXPECT_EQ(released->referrals[0].sequence, 2);
  EXPECT_EQ(released->referrals[0].language, "es");
  const StoredResource* task = nullptr;
  for (const auto& res : released->resources) {
    if (res.type == "Task" && res.id == rid) task = &res;
  }
  ASSERT_NE(task, nullptr);
  EXPECT_EQ(task->version_id, "2");
  auto t = parse(task->json);
  EXPECT_STREQ(t["owner"]["reference"].GetString(), "Organization/ccrr-durham");
  EXPECT_FALSE(t.HasMember("businessStatus"));
}

TEST_F(ScreeningReferral, TheClinicsOwnServiceRequestForTheNeedIsTheOnlyReferral) {
  auto r = post(bundle(true, "employment-status"), "");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  auto events = checked(r->commit.events);
  EXPECT_EQ(events.count("org.sdoh.referral.v1"), 1u);
  ASSERT_EQ(r->referrals.size(), 1u);
  EXPECT_EQ(r->referrals[0].clinic_number_value, "REF-2026-0002");
  EXPECT_TRUE(routed_.empty());
}

TEST_F(ScreeningReferral, NoSecondReferralWhileOneForTheNeedIsOpen) {
  std::vector<std::string> asked;
  ctx_.open_referral_for = [&](std::string_view patient,
                               std::string_view category) -> std::optional<std::string> {
    asked.push_back(std::string(category));
    if (patient !=
        mapper_->pseudonymizer().pseudonym("urn:oid:2.16.840.1.113883.3.9999.100", "MRN12345"))
      return std::nullopt;
    return std::string("0123456789abcdef0123456789abcdef");
  };
  auto r = post(bundle(true), "");
  ASSERT_TRUE(r);
  EXPECT_EQ(asked, std::vector<std::string>{"employment-status"});
  EXPECT_TRUE(r->referrals.empty());
  EXPECT_EQ(checked(r->commit.events).count("org.sdoh.referral.v1"), 0u);
  bool told = false;
  for (const auto& i : r->issues)
    told |= i.diagnostics.find("Task/0123456789abcdef0123456789abcdef for it is still open") !=
            std::string::npos;
  EXPECT_TRUE(told);
}

TEST_F(ScreeningReferral, OffOrSentAgainOpensNothing) {
  ctx_.refer_from_screening = false;
  auto off = post(bundle(true), "");
  ASSERT_TRUE(off);
  EXPECT_TRUE(off->referrals.empty());
  EXPECT_EQ(checked(off->commit.events).count("org.sdoh.referral.v1"), 0u);
  ctx_.refer_from_screening = true;
  auto first = post(bundle(true), "");
  ASSERT_TRUE(first);
  directory_.resources["Task/" + first->referrals.at(0).referral_id] = "{}";
  auto again = post(bundle(true), "");
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->referrals.empty());
  EXPECT_EQ(checked(again->commit.events).count("org.sdoh.referral.v1"), 0u);
}

TEST_F(ScreeningReferral, ALaterConsentReleasesTheReferralAndARevokedOneHoldsItAgain) {
  auto first = post(bundle(false), "");  // consent for ehv-durham only: awaiting-consent
  ASSERT_TRUE(first);
  const auto rid = first->referrals.at(0).referral_id;
  std::string patient_id;
  for (const auto& res : first->resources) {
    directory_.resources[res.type + "/" + res.id] = res.json;
    if (res.type == "Patient") patient_id = res.id;
  }
  directory_.found = {rid};
  pipeline::ReferralState waiting;
  waiting.referral_id = rid;
  waiting.agency_id = "ccrr-durham";
  waiting.category = "employment-status";
  waiting.status = "requested";
  waiting.business_status = "awaiting-consent";
  waiting.race = "2106-3";
  ctx_.find_referral = [&](const std::string& id) -> std::optional<pipeline::ReferralState> {
    if (id != rid) return std::nullopt;
    return waiting;
  };
  auto consent = parse(sample("bundle-transaction-screening-consent-referral.json"));
  auto& c = consent["entry"][2]["resource"];
  c["patient"]["reference"].SetString(("Patient/" + patient_id).c_str(), consent.GetAllocator());
  c["provision"]["actor"][0]["reference"]["reference"].SetString("Organization/ccrr-durham");
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  c.Accept(w);
  const std::string body = buf.GetString();

  auto r = post(body, "Consent");
  ASSERT_TRUE(r) << r.error().problem.operation_outcome();
  ASSERT_EQ(directory_.searched.size(), 1u);
  EXPECT_EQ(directory_.searched[0].second, (std::vector<std::pair<std::string, std::string>>{
                                               {"patient", "Patient/" + patient_id},
                                               {"_sender", "clinic-a"},
                                               {"business-status", "awaiting-consent"}}));
  auto events = checked(r->commit.events);
  ASSERT_EQ(events.count("org.sdoh.referral.v1"), 1u);
  const auto& e = events.find("org.sdoh.referral.v1")->second;
  EXPECT_EQ(data_field(e, "/data/referralId"), rid);
  EXPECT_EQ(data_field(e, "/data/consent/status"), "active");
  EXPECT_EQ(data_field(e, "/data/contact/phone"), "+19195551234");
  EXPECT_EQ(data_field(e, "/data/businessStatus"), "<null>");
  const auto& st = events.find("org.sdoh.referral.status.v1")->second;
  EXPECT_EQ(data_field(st, "/data/updatedBy/role"), "gateway");
  EXPECT_EQ(data_field(st, "/data/businessStatus"), "<null>");
  EXPECT_EQ(data_field(st, "/data/previousStatus"), "requested");
  ASSERT_EQ(r->referrals.size(), 1u);
  EXPECT_EQ(r->referrals[0].sequence, 2);
  EXPECT_EQ(r->referrals[0].business_status, "");
  EXPECT_EQ(r->referrals[0].race, "2106-3");  // the referral's equity fields are kept
  ASSERT_EQ(r->resources.size(), 2u);         // the Consent, and the Task's new version
  EXPECT_EQ(r->resources[1].type, "Task");
  EXPECT_EQ(r->resources[1].version_id, "2");
  auto task = parse(r->resources[1].json);
  EXPECT_FALSE(task.HasMember("businessStatus"));
  EXPECT_STREQ(task["meta"]["versionId"].GetString(), "2");

  // A Consent that does not let this agency have the contact details releases nothing.
  c["provision"]["actor"][0]["reference"]["reference"].SetString("Organization/ehv-durham");
  rapidjson::StringBuffer other;
  rapidjson::Writer<rapidjson::StringBuffer> ow(other);
  c.Accept(ow);
  auto none = post(other.GetString(), "Consent");
  ASSERT_TRUE(none) << none.error().problem.operation_outcome();
  EXPECT_TRUE(none->referrals.empty());
  EXPECT_EQ(checked(none->commit.events).count("org.sdoh.referral.v1"), 0u);

  // Revoked before the agency answered: the referral waits for consent again.
  waiting.business_status = "";
  waiting.sequence = 2;
  directory_.resources["Task/" + rid] = r->resources[1].json;
  c["status"].SetString("inactive");
  rapidjson::StringBuffer revoked_body;
  rapidjson::Writer<rapidjson::StringBuffer> rw(revoked_body);
  c.Accept(rw);
  directory_.searched.clear();
  auto revoked = post(revoked_body.GetString(), "Consent");
  ASSERT_TRUE(revoked) << revoked.error().problem.operation_outcome();
  ASSERT_EQ(directory_.searched.size(), 1u);
  EXPECT_EQ(directory_.searched[0].second.back(),
            (std::pair<std::string, std::string>{"status", "requested"}));
  auto held = checked(revoked->commit.events);
  EXPECT_EQ(held.count("org.sdoh.referral.v1"), 0u);
  ASSERT_EQ(held.count("org.sdoh.referral.status.v1"), 1u);
  const auto& hold = held.find("org.sdoh.referral.status.v1")->second;
  EXPECT_EQ(data_field(hold, "/data/businessStatus"), "awaiting-consent");
  EXPECT_EQ(data_field(hold, "/data/updatedBy/role"), "gateway");
  ASSERT_EQ(revoked->referrals.size(), 1u);
  EXPECT_EQ(revoked->referrals[0].sequence, 3);
  EXPECT_EQ(revoked->referrals[0].business_status, "awaiting-consent");
  auto again = parse(revoked->resources.at(1).json);
  EXPECT_STREQ(again["businessStatus"]["coding"][0]["code"].GetString(), "awaiting-consent");
  EXPECT_STREQ(again["meta"]["versionId"].GetString(), "3");
}

// Every FHIR body goes through the one guarded JSON parse (gateway/core/json_parse.hpp): a body
// nested past json.max_depth, with invalid UTF-8, bytes after the value or a duplicate member
// name is a 400 structure error and a dead letter (stage parse), never a crash.
TEST_F(FhirIngestTest, HostileBodiesAreRefusedAsStructureErrorsAndDeadLettered) {
  const std::string qr = sample("questionnaireresponse-hunger-vital-sign.json");
  const std::string open = qr.substr(0, qr.rfind('}'));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {std::string(150'000, '['), "nested deeper than 64 levels"},
      {open + ", \"x\": \"\xed\xa0\x80\"}", "invalid UTF-8 at byte offset"},
      {open + ", \"x\": \"\\udc00\"}", "not valid UTF-8"},
      {qr + std::string("\0garbage", 8), "unexpected bytes after the JSON value"},
      {open + ", \"status\": \"amended\"}", "duplicate member name \"status\""},
  };
  for (const auto& [body, says] : cases) {
    auto r = post(body, "QuestionnaireResponse");
    ASSERT_FALSE(r) << says;
    EXPECT_EQ(r.error().problem.http_status(), 400) << says;
    EXPECT_EQ(r.error().problem.first_error().code, IssueType::kStructure) << says;
    EXPECT_NE(r.error().problem.first_error().diagnostics.find(says), std::string::npos)
        << r.error().problem.first_error().diagnostics;
    ASSERT_TRUE(r.error().commit.dead_letter.has_value()) << says;
    EXPECT_EQ(r.error().commit.dead_letter->stage, "parse");
  }
}

}  // namespace
}  // namespace sdoh::fhir
