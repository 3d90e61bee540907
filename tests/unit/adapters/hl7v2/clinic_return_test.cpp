// adapters/hl7v2/clinic_return.cpp: the RRI^I12 a clinic gets for its referral's changes.
#include "adapters/hl7v2/clinic_return.hpp"

#include <gtest/gtest.h>

#include "adapters/hl7v2/message.hpp"
#include "gateway/pipeline/commit_observer.hpp"

namespace sdoh::hl7v2 {
namespace {

pipeline::ReferralState referral() {
  pipeline::ReferralState r;
  r.referral_id = "d6f9b8e1f26703acd5c0e7bbf1f3f27a";
  r.clinic_number_system = "PEDS_A";
  r.clinic_number_value = "REF-2026-0001";
  r.source_control_id = "A1000003";
  r.agency_id = "ehv-durham";
  r.return_to = "EHR^PEDS_CLINIC_A";
  r.return_pid = "MRN12345^^^PEDS_A^MR";
  return r;
}

TEST(ClinicReturn, RriCarriesTheReferralItsStatusAndThePatientAsSent) {
  RriContent c;
  c.gateway_id = "gw";
  c.clinic = "EHR^PEDS_CLINIC_A";
  c.control_id = "GW123";
  c.timestamp = "20261125101500+0000";
  c.ref_control_id = "A1000003";
  c.referral = referral();
  c.status = "rejected";
  c.reason = "no capacity | waitlist";
  auto m = Message::parse(build_rri_i12(c));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->get("MSH-9"), "RRI^I12^RRI_I12");
  EXPECT_EQ(m->get("MSH-5"), "EHR");
  EXPECT_EQ(m->get("MSH-6"), "PEDS_CLINIC_A");
  EXPECT_EQ(m->get("MSH-10"), "GW123");
  EXPECT_EQ(m->get("MSA-2"), "A1000003");
  EXPECT_EQ(m->get("RF1-1.1"), "R");
  EXPECT_EQ(m->get("RF1-1.2"), "rejected");
  EXPECT_EQ(m->get("RF1-6.1"), "REF-2026-0001");
  EXPECT_EQ(m->get("RF1-11.1"), "d6f9b8e1f26703acd5c0e7bbf1f3f27a");
  EXPECT_EQ(m->get("PID-3.1"), "MRN12345");
  EXPECT_EQ(m->get("NTE-3"), "no capacity | waitlist");  // escaped on the wire, read back
}

TEST(ClinicReturn, OnlyChangesOfReferralsWhoseClinicTakesAnswers) {
  config::Hl7Config hl7;
  hl7.senders["EHR^PEDS_CLINIC_A"].return_address = "127.0.0.1:6661";
  auto status_event = [](int sequence) {
    return pipeline::OutboxEvent{
        "ev" + std::to_string(sequence), "org.sdoh.referral.status.v1", "t", "k",
        R"({"data":{"referralId":"d6f9b8e1f26703acd5c0e7bbf1f3f27a","status":"accepted",)"
        R"("businessStatus":"family-contacted","reason":null,"sequence":)" +
            std::to_string(sequence) + "}}"};
  };
  auto lookup = [](const std::string&) { return std::optional(referral()); };
  pipeline::CommitRequest first;
  first.events.push_back(status_event(1));  // the referral's creation: nothing to answer
  add_clinic_returns(first, pipeline::status_events(first), hl7, "gw", lookup);
  EXPECT_TRUE(first.outbound.empty());
  pipeline::CommitRequest change;
  change.events.push_back(status_event(2));
  add_clinic_returns(change, pipeline::status_events(change), hl7, "gw", lookup);
  ASSERT_EQ(change.outbound.size(), 1u);
  EXPECT_EQ(change.outbound[0].destination, "127.0.0.1:6661");
  EXPECT_NE(change.outbound[0].message.find("RF1|A^accepted"), std::string::npos);
  auto other = referral();
  other.return_to = "EHR^ELSEWHERE";
  pipeline::CommitRequest unknown;
  unknown.events.push_back(status_event(3));
  add_clinic_returns(unknown, pipeline::status_events(unknown), hl7, "gw",
                     [&](const std::string&) { return std::optional(other); });
  EXPECT_TRUE(unknown.outbound.empty());
}

}  // namespace
}  // namespace sdoh::hl7v2
