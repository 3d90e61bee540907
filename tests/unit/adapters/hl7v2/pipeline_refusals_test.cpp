// Every AE/AR (and CR) the HL7 pipeline can answer, one message per refusal path: MSA-1, the
// HL7 table 0357 code in ERR-3, ERR-2 exactly, and that the segment ERR-2 names is one the sender
// sent (that occurrence exists, and the field is one the segment defines). A refusal that is
// kept also has a dead letter with the same code and location.
//
// The refusal paths, read from adapters/hl7v2/pipeline.cpp, oru.cpp, referral.cpp and message.cpp:
//   not parseable (message.cpp)   no MSH first; MSH-1/MSH-2 unusable; MSH-9 or MSH-10 empty; a
//                                 malformed segment id; a second MSH
//   header (ack.cpp check_header) MSH-11 outside table 0103; MSH-12 unsupported or empty
//   character set (pipeline.cpp)  MSH-18 unsupported; declared UTF-8 with other bytes
//   message type (pipeline.cpp)   unknown type; a known type with another trigger event
//   ORU^R01 (oru.cpp, engine)     no PID; PID-3 empty; OBX before OBR; OBX-3 empty; OBX-5 not of
//                                 its value type; no OBR; an OBR without OBX
//   REF^I12 (referral.cpp,        no RF1; RF1-1 not P; RF1-2 not in table 0280; RF1-6 empty; no
//     mapping/referral.cpp)       PID; two needs. (A need that nothing tells — OBR-4 a panel
//                                 with negative answers, or only local RF1 codes no table
//                                 translates — is no refusal: it is held uncategorised, AA.)
//   RRI^I12                       no RF1; RF1-1 empty or unknown; no key to the referral; an
//                                 unknown referral (by RF1-6, or MSA-2 alone); a status change
//                                 the lifecycle does not allow; a sender that is no agency
//                                 (parties); PRD-7 naming another agency than the connection
//   REF^I13 / REF^I14             an unknown referral; cancelling or modifying a final referral;
//                                 re-routing one an agency has received
//   store                         the commit fails (207, nothing kept); a referral busy with other
//                                 messages (206, not recorded); the store cannot be read (207,
//                                 same answer as the commit failure; the recording store cannot
//                                 fail a read, so it has no row here)
#include <map>

#include "adapters/hl7v2/ack.hpp"
#include "adapters/hl7v2/pipeline.hpp"
#include "gateway/identity/parties.hpp"
#include "tests/unit/adapters/hl7v2/pipeline_fixture.hpp"

namespace sdoh::hl7v2 {
namespace {

using namespace pipeline_test_support;

// The fields each segment defines in HL7 v2.5.1 (MSH as of v2.8.2, the newest version read).
const std::map<std::string, int, std::less<>> kDefinedFields{{"MSH", 25}, {"MSA", 6},  {"RF1", 11},
                                                             {"PRD", 9},  {"PID", 39}, {"OBR", 50},
                                                             {"OBX", 25}, {"CON", 25}, {"NK1", 39}};

std::string hvs() {
  return sample("oru-r01-hunger-vital-sign-negative.hl7");
}
std::string ref() {
  return replace(sample("ref-i12-home-visiting.hl7"), "|AL|AL", "||");  // original mode
}
std::string rri() {
  return sample("rri-i12-accepted.hl7");
}
std::string ref_as(const std::string& type, const std::string& control_id) {
  return replace(replace(ref(), "REF^I12^REF_I12", type), "|A1000003|", "|" + control_id + "|");
}
std::string rri_with_status(const std::string& status, const std::string& control_id) {
  return replace(replace(rri(), "A^Accepted^HL70283", status), "|EHV-55|", "|" + control_id + "|");
}

enum class Setup {
  kNone,
  kParties,       ///< parties configured (dev mode): agency ehv-durham sends as AGENCY^EHV-DURHAM
  kStoreFails,    ///< every commit fails
  kReferralBusy,  ///< every referral commit loses the optimistic lock
};

struct RefusalCase {
  const char* name;
  std::vector<std::string> (*before)();  ///< sent first, each must be accepted
  std::string (*message)();
  const char* msa;   ///< MSA-1 of the first answer
  const char* code;  ///< ERR-3.1
  const char* err2;  ///< ERR-2 as sent
  Setup setup = Setup::kNone;
};

std::vector<std::string> nothing() {
  return {};
}
std::vector<std::string> a_referral() {
  return {ref()};
}

const RefusalCase kCases[] = {
    // --- not parseable: AR, MSA-2 empty ---
    {"NotHl7", nothing, [] { return sample("bad-not-hl7.hl7"); }, "AR", "100", "MSH^1"},
    {"Msh2Unusable", nothing, [] { return replace(hvs(), "MSH|^~\\&|", "MSH|^^\\&|"); }, "AR",
     "102", "MSH^1^2"},
    {"Msh9Empty", nothing, [] { return replace(hvs(), "|ORU^R01^ORU_R01|", "||"); }, "AR", "101",
     "MSH^1^9"},
    {"Msh10Empty", nothing, [] { return replace(hvs(), "|B2000017|", "||"); }, "AR", "101",
     "MSH^1^10"},
    {"MalformedSegmentId", nothing, [] { return replace(hvs(), "\rOBR|", "\rOB|"); }, "AR", "100",
     "OB^1"},
    {"SecondMsh", nothing, [] { return hvs() + "MSH|^~\\&|EHR|PEDS_CLINIC_B\r"; }, "AR", "100",
     "MSH^2"},
    // --- header: AR ---
    {"ProcessingIdOutsideTable0103", nothing, [] { return replace(hvs(), "|P|2.5.1", "|X|2.5.1"); },
     "AR", "202", "MSH^1^11^1^1"},
    {"UnsupportedVersion", nothing, [] { return replace(hvs(), "|P|2.5.1", "|P|9.9"); }, "AR",
     "203", "MSH^1^12^1^1"},
    {"VersionTooOld", nothing, [] { return replace(hvs(), "|P|2.5.1", "|P|2.2"); }, "AR", "203",
     "MSH^1^12^1^1"},
    {"EmptyVersion", nothing, [] { return replace(hvs(), "|P|2.5.1", "|P|"); }, "AR", "101",
     "MSH^1^12"},
    {"EnhancedModeUnsupportedVersionIsCr", nothing,
     [] { return replace(sample("ref-i12-home-visiting.hl7"), "|P|2.5.1|", "|P|9.9|"); }, "CR",
     "203", "MSH^1^12^1^1"},
    {"UnsupportedCharacterSet", nothing,
     [] { return replace(hvs(), "|P|2.5.1", "|P|2.5.1||||||UNICODE UTF-16"); }, "AR", "103",
     "MSH^1^18"},
    {"DeclaredUtf8WithOtherBytes", nothing,
     [] {
       return replace(replace(hvs(), "|P|2.5.1", "|P|2.5.1||||||UNICODE UTF-8"), "Nguyen",
                      "Ngu\xE9n");
     },
     "AE", "102", "PID^1^5^1^1"},
    {"UnsupportedMessageType", nothing,
     [] { return replace(hvs(), "ORU^R01^ORU_R01", "ADT^A01^ADT_A01"); }, "AR", "200", "MSH^1^9"},
    {"UnsupportedTriggerEvent", nothing,
     [] { return replace(hvs(), "ORU^R01^ORU_R01", "ORU^R30^ORU_R30"); }, "AR", "201",
     "MSH^1^9^1^2"},
    // --- ORU^R01 content: AE ---
    {"OruWithoutPid", nothing, [] { return without(hvs(), "PID"); }, "AE", "100", "MSH^1"},
    {"OruPid3Empty", nothing, [] { return replace(hvs(), "44120^^^PEDS_B^MR", ""); }, "AE", "101",
     "PID^1^3"},
    {"OruObxBeforeObr", nothing, [] { return without(hvs(), "OBR"); }, "AE", "100", "OBX^1"},
    {"OruObx3Empty", nothing, [] { return sample("bad-missing-obx-code.hl7"); }, "AE", "101",
     "OBX^1^3"},
    {"OruObx5NotOfItsValueType", nothing,
     [] { return replace(hvs(), "|CWE|88122-7", "|NM|88122-7"); }, "AE", "102", "OBX^1^5"},
    {"OruWithoutObr", nothing, [] { return without(without(hvs(), "OBX"), "OBR"); }, "AE", "100",
     "PID^1"},
    {"OruObrWithoutObx", nothing, [] { return without(hvs(), "OBX"); }, "AE", "100", "OBR^1"},
    // --- REF^I12: AE ---
    {"RefWithoutRf1", nothing, [] { return without(ref(), "RF1"); }, "AE", "100", "MSH^1"},
    {"RefRf1StatusNotPending", nothing,
     [] { return replace(ref(), "P^Pending^HL70283", "A^Accepted^HL70283"); }, "AE", "103",
     "RF1^1^1^1^1"},
    {"RefPriorityOutsideTable0280", nothing,
     [] { return replace(ref(), "R^Routine^HL70280", "Z^Someday^LOCAL"); }, "AE", "103",
     "RF1^1^2^1^1"},
    {"RefRf16Empty", nothing, [] { return replace(ref(), "REF-2026-0001^PEDS_A", ""); }, "AE",
     "101", "RF1^1^6"},
    {"RefWithoutPid", nothing, [] { return without(ref(), "PID"); }, "AE", "100", "MSH^1"},
    {"RefWithTwoNeeds", nothing,
     [] { return ref() + "OBR|2|ORD125||housing-instability^Housing instability^SDOHCC\r"; }, "AE",
     "103", "OBR^1^4"},
    // --- RRI^I12: AE, AR for who the sender is ---
    {"RriWithoutRf1", a_referral, [] { return without(rri(), "RF1"); }, "AE", "100", "MSH^1"},
    {"RriRf11Empty", a_referral, [] { return rri_with_status("", "EHV-55"); }, "AE", "101",
     "RF1^1^1"},
    {"RriRf11Unknown", a_referral, [] { return rri_with_status("Q^Queued^LOCAL", "EHV-55"); }, "AE",
     "103", "RF1^1^1^1^1"},
    {"RriNamesNoReferral", a_referral,
     [] {
       return replace(replace(rri(), "REF-2026-0001^PEDS_A", ""), "MSA|AA|A1000003", "MSA|AA|");
     },
     "AE", "101", "RF1^1^6"},
    {"RriForAnUnknownReferral", nothing, rri, "AE", "204", "RF1^1^6"},
    {"RriForAnUnknownReferralByMsa2Alone", nothing,
     [] { return replace(rri(), "REF-2026-0001^PEDS_A", ""); }, "AE", "204", "MSA^1^2"},
    {"RriStatusTheLifecycleDoesNotAllow",
     [] {
       return std::vector<std::string>{ref(), rri(), rri_with_status("completed", "EHV-56")};
     },
     [] { return rri_with_status("in-progress", "EHV-57"); }, "AE", "103", "RF1^1^1^1^1"},
    {"RriFromASenderNoAgencyHas", a_referral,
     [] { return replace(rri(), "|AGENCY|EHV-DURHAM|", "|AGENCY|NOBODY|"); }, "AR", "103",
     "MSH^1^4", Setup::kParties},
    {"RriNamingAnotherAgencyThanItsConnection", a_referral,
     [] { return replace(rri(), "EHV-DURHAM^AGENCY^NC", "WIC-DURHAM^AGENCY^NC"); }, "AR", "103",
     "PRD^1^7", Setup::kParties},
    // --- REF^I13 / REF^I14: AE ---
    {"RefI14ForAnUnknownReferral", nothing, [] { return ref_as("REF^I14^REF_I12", "C14"); }, "AE",
     "204", "RF1^1^6"},
    {"RefI14OfAFinalReferral",
     [] {
       return std::vector<std::string>{ref(), rri(), rri_with_status("completed", "EHV-56")};
     },
     [] { return ref_as("REF^I14^REF_I12", "C14"); }, "AE", "103", "RF1^1^1^1^1"},
    {"RefI13OfAFinalReferral",
     [] {
       return std::vector<std::string>{ref(), ref_as("REF^I14^REF_I12", "C14")};
     },
     [] { return ref_as("REF^I13^REF_I12", "C13"); }, "AE", "103", "RF1^1^1^1^1"},
    {"RefI13ReRoutingAReferralAnAgencyReceived",
     [] {
       return std::vector<std::string>{ref(), rri_with_status("P^Pending^HL70283", "EHV-56")};
     },
     [] {
       return replace(ref_as("REF^I13^REF_I12", "C13"), "EHV-DURHAM^AGENCY^NC",
                      "WIC-DURHAM^AGENCY^NC");
     },
     "AE", "103", "PRD^1^7"},
    // --- the store: AE, not kept ---
    {"CommitFails", nothing, hvs, "AE", "207", "MSH^1", Setup::kStoreFails},
    {"ReferralBusyWithOtherMessages", a_referral, rri, "AE", "206", "MSH^1", Setup::kReferralBusy},
};

class Hl7Refusal : public Hl7PipelineTest, public ::testing::WithParamInterface<RefusalCase> {
 protected:
  // As configure(), with the agency ehv-durham known by its MLLP sender (dev mode).
  void configure_parties() {
    config::PartyConfig agency;
    agency.id = "ehv-durham";
    agency.mllp_senders = {"AGENCY^EHV-DURHAM"};
    parties_ = std::make_unique<identity::Parties>(std::vector{agency}, true);
    pipeline_.reset();
    pipeline_registry_ = std::make_unique<metrics::Registry>();
    Hl7PipelineOptions options;
    options.referrals = &store_;
    options.resources = &store_;
    options.parties = parties_.get();
    pipeline_ = std::make_unique<Hl7Pipeline>(*mapper_, store_, options, *pipeline_registry_);
  }

  std::unique_ptr<identity::Parties> parties_;
};

// ERR-2 "SEG^n[^field[^rep^component]]" names segment occurrence n of `sent` and a field that
// segment defines (or that was sent).
void expect_location_was_sent(const std::string& sent, const std::string& err2) {
  std::vector<std::string> parts;
  for (std::size_t at = 0;;) {
    const auto next = err2.find('^', at);
    parts.push_back(err2.substr(at, next == std::string::npos ? std::string::npos : next - at));
    if (next == std::string::npos) break;
    at = next + 1;
  }
  ASSERT_GE(parts.size(), 2u) << err2;
  const auto& id = parts[0];
  const int sequence = std::stoi(parts[1]);
  const int field = parts.size() > 2 ? std::stoi(parts[2]) : 0;
  auto m = Message::parse(sent);
  if (!m) {
    // Not parseable: the occurrence must still be a line of what was sent.
    int seen = 0;
    for (std::size_t at = 0; at < sent.size();) {
      if (sent.compare(at, id.size() + 1, id + "|") == 0) ++seen;
      const auto end = sent.find_first_of("\r\n", at);
      at = end == std::string::npos ? sent.size() : end + 1;
    }
    EXPECT_GE(seen, sequence) << err2 << " names a segment that was not sent";
    return;
  }
  const auto* segment = m->segment(id, sequence);
  ASSERT_NE(segment, nullptr) << err2 << " names a segment that was not sent";
  const auto defined = kDefinedFields.find(id);
  const int limit =
      std::max(segment->field_count(), defined == kDefinedFields.end() ? 0 : defined->second);
  EXPECT_LE(field, limit) << err2 << ": " << id << " has no field " << field;
}

TEST_P(Hl7Refusal, AnswersWithTheCodeAndALocationThatWasSent) {
  const auto& c = GetParam();
  if (c.setup == Setup::kParties) configure_parties();
  for (const auto& earlier : c.before()) {
    const auto answer = send(earlier);
    const auto code = field(answer, "MSA-1");
    ASSERT_TRUE(code == "AA" || code == "CA") << c.name << ": " << answer;
  }
  if (c.setup == Setup::kStoreFails) store_.fail = Error::unavailable("the disk is full");
  if (c.setup == Setup::kReferralBusy) store_.lose_races = 100;
  const auto dead_letters = store_.dead_letters.size();
  const auto sent = c.message();
  const auto answer = send(sent);

  EXPECT_EQ(field(answer, "MSA-1"), c.msa) << answer;
  EXPECT_EQ(field(answer, "ERR-3.1"), c.code) << answer;
  EXPECT_EQ(field(answer, "ERR-3.3"), "HL70357");
  EXPECT_EQ(field(answer, "ERR-2"), c.err2) << answer;
  EXPECT_FALSE(field(answer, "ERR-8").empty()) << "ERR-8 says why";
  if (std::string_view(c.name) != "NotHl7") {
    // The one exception: bytes with no MSH at all have no segment to name but the MSH missing.
    expect_location_was_sent(sent, field(answer, "ERR-2"));
  }
  if (c.setup == Setup::kStoreFails || c.setup == Setup::kReferralBusy) {
    EXPECT_EQ(store_.dead_letters.size(), dead_letters) << "nothing is kept: resend later";
    return;
  }
  // A kept refusal's dead letter says the same.
  ASSERT_EQ(store_.dead_letters.size(), dead_letters + 1);
  const auto& dead = store_.dead_letters.back();
  EXPECT_EQ(dead.error_code, c.code);
  EXPECT_EQ(std::string(c.err2).rfind(dead.location, 0), 0u)
      << "the dead letter's " << dead.location << " is where ERR-2 points";
}

INSTANTIATE_TEST_SUITE_P(EveryPath, Hl7Refusal, ::testing::ValuesIn(kCases),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

// The example: an ORU^R01 with MSH-12 9.9 was answered AA.
TEST_F(Hl7PipelineTest, AnOruWithVersion99IsRefusedAndMakesNoScreeningEvent) {
  const auto ack = send(replace(hvs(), "|P|2.5.1", "|P|9.9"));
  EXPECT_EQ(field(ack, "MSA-1"), "AR");
  EXPECT_EQ(field(ack, "ERR-3.1"), "203");
  EXPECT_TRUE(events_of(kScreening).empty());
  EXPECT_EQ(events_of(kDeadLetter).size(), 1u);
}

// Every version the gateway reads is accepted, the shared samples' 2.3 among them.
TEST_F(Hl7PipelineTest, EverySupportedVersionIsAccepted) {
  int n = 0;
  for (const auto version : kSupportedVersions) {
    const auto ack = send(replace(replace(hvs(), "|P|2.5.1", "|P|" + std::string(version)),
                                  "|B2000017|", "|V" + std::to_string(++n) + "|"));
    EXPECT_EQ(field(ack, "MSA-1"), "AA") << version << ": " << ack;
    EXPECT_EQ(field(ack, "MSH-12"), version);
  }
  EXPECT_EQ(events_of(kScreening).size(), kSupportedVersions.size());
}

// An OBX the family left unanswered (OBX-11 F, OBX-5 empty) is accepted: the screening event is
// committed, with the answered item, and the unanswered one goes to the mapping engine.
TEST_F(Hl7PipelineTest, AnUnansweredObxIsAcceptedNotRefused) {
  const auto ack =
      send(replace(hvs(), "|LA28398-8^Never true^LN||||||F\rOBX|2", "|||||||F\rOBX|2"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA") << ack;
  EXPECT_EQ(field(ack, "ERR-1"), "");
  EXPECT_EQ(events_of(kScreening).size(), 1u);
  EXPECT_TRUE(events_of(kDeadLetter).empty());
}

}  // namespace
}  // namespace sdoh::hl7v2
