// What the audit observer records of a commit: the resources it creates and updates, the referral
// states it changes, and each referral event that discloses a family's contact details.
#include "gateway/pipeline/audit_observer.hpp"

#include <gtest/gtest.h>

namespace sdoh::pipeline {
namespace {

OutboxEvent referral_event(std::string id, bool with_contact) {
  std::string data = R"({"referralId":"r1","agency":{"id":"ehv-durham","name":"Early Start"})";
  if (with_contact) data += R"(,"contact":{"phone":"+19195551234"})";
  data += "}";
  return {std::move(id), "org.sdoh.referral.v1", "sdoh.referral.v1", "r1",
          R"({"specversion":"1.0","type":"org.sdoh.referral.v1","data":)" + data + "}"};
}

CommitRequest fhir_bundle() {
  CommitRequest r;
  r.inbound = {"fhir", "clinic-a", "b1", "Bundle", "200", "", ""};
  r.actor = {"clinic-a", "clinic", "10.0.0.7:5100"};
  r.resources.resize(2);
  r.resources[0].type = "Task";
  r.resources[0].id = "r1";
  r.resources[1].type = "Patient";
  r.resources[1].id = "p1";
  r.resources[1].version = 2;
  r.resources[1].expected_version = 1;
  return r;
}

TEST(AuditObserver, ACreateAndAnUpdateAreOneRecordEachWithTheActor) {
  const auto records = audit_records_of(fhir_bundle());
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].kind, audit::AuditKind::kCreate);
  ASSERT_EQ(records[0].entities.size(), 1u);
  EXPECT_EQ(records[0].entities[0].reference, "Task/r1");
  EXPECT_EQ(records[0].agent.address, "10.0.0.7:5100");
  EXPECT_EQ(records[1].kind, audit::AuditKind::kUpdate);
  EXPECT_EQ(records[1].entities[0].reference, "Patient/p1");
}

TEST(AuditObserver, AReferralEventWithContactDetailsIsADisclosureToItsAgency) {
  auto request = fhir_bundle();
  request.events.push_back(referral_event("e1", true));
  request.events.push_back(referral_event("e2", false));  // no consent: nothing disclosed
  const auto records = audit_records_of(request);
  ASSERT_EQ(records.size(), 3u);
  const auto& d = records[2];
  EXPECT_EQ(d.kind, audit::AuditKind::kDisclosure);
  EXPECT_EQ(d.recipient, "ehv-durham");
  ASSERT_EQ(d.entities.size(), 2u);
  EXPECT_EQ(d.entities[0].reference, "Task/r1");
  EXPECT_EQ(d.entities[1].event_id, "e1");
  EXPECT_EQ(d.entities[1].topic, "sdoh.referral.v1");
}

TEST(AuditObserver, AnAgencysKafkaUpdateIsAChangeOfItsReferral) {
  CommitRequest r;
  r.inbound = {
      "kafka", "urn:sdoh-agency:ehv-durham", "u1", "org.sdoh.referral.update.v1", "200", "", ""};
  ReferralState state;
  state.referral_id = "r1";
  state.expected_sequence = 3;
  r.referrals.push_back(state);
  const auto records = audit_records_of(r);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].kind, audit::AuditKind::kImport);
  EXPECT_FALSE(records[0].creates);
  EXPECT_EQ(records[0].agent.who, "urn:sdoh-agency:ehv-durham");
  EXPECT_EQ(records[0].agent.role, "agency");
  EXPECT_EQ(records[0].entities[0].reference, "Task/r1");
}

TEST(AuditObserver, ARejectedMessageChangesNothingAndIsNotRecorded) {
  CommitRequest r;
  r.inbound = {"hl7v2", "EHR^A", "m1", "ORU^R01", "AE", "", ""};
  r.dead_letter = DeadLetterRecord{"dl1", "validate", "101", "OBX-3 is required", "OBX^1^3"};
  EXPECT_TRUE(audit_records_of(r).empty());
}

}  // namespace
}  // namespace sdoh::pipeline
