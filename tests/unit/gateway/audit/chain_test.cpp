// The audit chain's pure parts: the hash, the verifier over records handed in order, anchors read
// from text, and the AuditEvent each record becomes.
#include "gateway/audit/chain.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gateway/audit/audit_event.hpp"

namespace sdoh::audit {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ChainHash, IsTheSha256OfThePreviousHashFollowedByTheContent) {
  // FIPS 180-2 appendix B.1: SHA-256("abc").
  EXPECT_EQ(chain_hash("", "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(chain_hash("ab", "c"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

std::vector<ChainRecord> chain_of(int n) {
  std::vector<ChainRecord> out;
  std::string previous(kGenesisHash);
  for (int i = 1; i <= n; ++i) {
    ChainRecord r{i, previous, "", "{\"id\":\"" + std::to_string(i) + "\"}"};
    r.hash = chain_hash(previous, r.json);
    previous = r.hash;
    out.push_back(r);
  }
  return out;
}

ChainReport verify(const std::vector<ChainRecord>& records, std::vector<Anchor> anchors = {},
                   ChainStart start = {}) {
  ChainVerifier v(std::move(start), std::move(anchors));
  for (const auto& r : records)
    v.add(r);
  return v.finish();
}

TEST(ChainVerifier, AWholeChainVerifies) {
  const auto report = verify(chain_of(3));
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.records, 3);
  EXPECT_EQ(report.head_sequence, 3);
  EXPECT_THAT(report.anchor_note, HasSubstr("no anchor given"));
}

TEST(ChainVerifier, TheFirstEditedRecordIsNamed) {
  auto records = chain_of(4);
  records[1].json = "{\"id\":\"2\",\"x\":1}";
  const auto report = verify(records);
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.bad_sequence, 2);
}

TEST(ChainVerifier, AGapNamesTheMissingRecords) {
  auto records = chain_of(5);
  records.erase(records.begin() + 1, records.begin() + 3);
  const auto report = verify(records);
  EXPECT_EQ(report.problem, "records 2 to 3 are missing");
}

TEST(ChainVerifier, AnAnchorPastTheHeadIsADeletedTail) {
  const auto records = chain_of(5);
  Anchor a{"gw", 5, records[4].hash, "periodic", 0, "", "2026-12-07T10:00:00Z"};
  const std::vector<ChainRecord> truncated(records.begin(), records.begin() + 3);
  const auto report = verify(truncated, {a});
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.problem,
            "the chain ends at record 3 but an anchor of 2026-12-07T10:00:00Z names record 5: "
            "records 4 to 5 were deleted");
  EXPECT_TRUE(verify(records, {a}).ok);
}

TEST(ChainVerifier, ARewrittenChainDiffersFromItsAnchor) {
  const auto records = chain_of(3);
  Anchor a{"gw", 2, std::string(64, 'a'), "periodic", 0, "", "t"};
  const auto report = verify(records, {a});
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.bad_sequence, 2);
  EXPECT_THAT(report.problem, HasSubstr("differs from its anchor"));
}

TEST(ChainVerifier, APrunedChainVerifiesFromItsPrunePoint) {
  const auto records = chain_of(5);
  const ChainStart start{2, records[1].hash};
  const std::vector<ChainRecord> kept(records.begin() + 2, records.end());
  Anchor prune{"gw", 5, records[4].hash, "prune", 2, records[1].hash, "t"};
  EXPECT_TRUE(verify(kept, {prune}, start).ok);
  EXPECT_TRUE(verify(kept, {}, start).ok) << "without anchors the prune is not questioned";
  Anchor periodic{"gw", 5, records[4].hash, "periodic", 0, "", "t"};
  const auto unanchored = verify(kept, {periodic}, start);
  EXPECT_FALSE(unanchored.ok);
  EXPECT_THAT(unanchored.problem, HasSubstr("no anchor records that prune"));
}

TEST(Anchors, AreReadFromCloudEventsOrTheirData) {
  Anchor a{"gw", 7, std::string(64, 'b'), "prune", 3, std::string(64, 'c'), "2026-12-07T10:00:00Z"};
  const auto data = anchor_data_json(a);
  const auto text = "{\"specversion\":\"1.0\",\"data\":" + data + "}\n\n" + data + "\n";
  auto parsed = parse_anchors(text);
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->size(), 2u);
  for (const auto& p : *parsed) {
    EXPECT_EQ(p.gateway, "gw");
    EXPECT_EQ(p.sequence, 7);
    EXPECT_EQ(p.reason, "prune");
    EXPECT_EQ(p.pruned_through, 3);
    EXPECT_EQ(p.pruned_through_hash, std::string(64, 'c'));
  }
}

TEST(Anchors, ALineThatIsNotOneIsNamed) {
  auto parsed = parse_anchors("{\"headSequence\":1,\"headHash\":\"x\"}\n{\"other\":true}\n");
  ASSERT_FALSE(parsed);
  EXPECT_THAT(parsed.error().message, HasSubstr("line 2"));
}

TEST(AuditEventJson, IsABasicAuditLogPatternsReadWithoutContent) {
  AuditRecord r(AuditKind::kRead, {"ehv-durham", "agency", "10.0.0.5:4431"},
                {AuditEntity::resource("Task/t1")});
  r.recorded_ms = 1'796'000'000'000;
  EXPECT_EQ(
      audit_event_json(r, 12, "gw"),
      R"({"resourceType":"AuditEvent","id":"12","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"Restful Operation"},)"
      R"("subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"read","display":"read"}],"action":"R","recorded":"2026-11-30T00:53:20.000Z","outcome":"0",)"
      R"("agent":[{"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110153","display":"Source Role ID"}]},"role":[{"coding":[{"system":"urn:sdoh:party-kind","code":"agency"}]}],)"
      R"("who":{"identifier":{"system":"urn:sdoh:party","value":"ehv-durham"}},"requestor":true,"network":{"address":"10.0.0.5:4431","type":"2"}},)"
      R"({"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110152","display":"Destination Role ID"}]},"who":{"identifier":{"system":"urn:sdoh:party","value":"gw"}},"requestor":false}],)"
      R"("source":{"observer":{"display":"gw"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4","display":"Application Server"}]},)"
      R"("entity":[{"what":{"reference":"Task/t1"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2","display":"System Object"}}]})");
}

TEST(AuditEventJson, ADisclosureNamesTheEventItsTopicAndTheRecipient) {
  AuditRecord r(AuditKind::kDisclosure, {"clinic-a", "clinic", ""},
                {AuditEntity::resource("Task/t1"), AuditEntity::event("e1", "sdoh.referral.v1")});
  r.recipient = "ehv-durham";
  r.recorded_ms = 1;
  const auto json = audit_event_json(r, 1, "gw");
  EXPECT_THAT(json, HasSubstr(R"("code":"110106","display":"Export")"));
  EXPECT_THAT(json, HasSubstr(R"("value":"ehv-durham"}},"requestor":false)"));
  EXPECT_THAT(json,
              HasSubstr(R"({"what":{"identifier":{"system":"urn:sdoh:event-id","value":"e1"}})"));
  EXPECT_THAT(json, HasSubstr(R"("detail":[{"type":"topic","valueString":"sdoh.referral.v1"}])"));
  EXPECT_THAT(json, Not(HasSubstr("network")));
}

}  // namespace
}  // namespace sdoh::audit
