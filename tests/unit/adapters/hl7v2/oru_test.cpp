// adapters/hl7v2/oru.cpp: what an ORU^R01 hands the mapping engine. An OBX the family left
// unanswered (a final result with no value in OBX-5) is an item with no answers, never dropped,
// and a missing PID or OBR is named at a segment the sender did send.
#include "adapters/hl7v2/oru.hpp"

#include <gtest/gtest.h>

namespace sdoh::hl7v2 {
namespace {

constexpr const char* kHeader =
    "MSH|^~\\&|EHR|PEDS_CLINIC_B|SDOH_GW|STATE_EC|20261121091500-0500||ORU^R01^ORU_R01|B1|P|2.5.1\r"
    "PID|1||44120^^^PEDS_B^MR||Nguyen^Bao||20250912|M\r"
    "OBR|1||HVS-77|88121-9^Hunger Vital Sign [HVS]^LN|||20261121090000-0500\r"
    "OBX|1|CWE|88122-7^Food worry^LN||LA28398-8^Never true^LN||||||F\r";

Result<std::vector<mapping::NormalizedScreening>> read(const std::string& text) {
  auto m = Message::parse(text);
  EXPECT_TRUE(m) << text;
  if (!m) return fail(m.error());
  return screenings_from_oru(*m);
}

// The one screening of kHeader followed by `obx`, which must be readable.
mapping::NormalizedScreening screening_with(const std::string& obx) {
  auto s = read(std::string(kHeader) + obx);
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  if (!s || s->size() != 1) return {};
  return std::move(s->front());
}

struct UnansweredCase {
  const char* name;
  const char* obx;
  mapping::ResultStatus status;
};

class UnansweredObx : public ::testing::TestWithParam<UnansweredCase> {};

// Every way of sending no value is the same item: the question, its status, no answers.
TEST_P(UnansweredObx, IsAnItemWithNoAnswersForTheMappingEngine) {
  const auto& c = GetParam();
  const auto s = screening_with(c.obx);
  ASSERT_EQ(s.items.size(), 2u) << "the unanswered OBX must not be dropped";
  const auto& item = s.items[1];
  EXPECT_EQ(item.question.system, "http://loinc.org");
  EXPECT_EQ(item.question.code, "88123-5");
  EXPECT_EQ(item.status, c.status);
  EXPECT_TRUE(item.answers.empty());
  // The answered item before it is untouched.
  ASSERT_EQ(s.items[0].answers.size(), 1u);
  ASSERT_TRUE(s.items[0].answers[0].coding);
  EXPECT_EQ(s.items[0].answers[0].coding->code, "LA28398-8");
}

INSTANTIATE_TEST_SUITE_P(
    Obx5, UnansweredObx,
    ::testing::Values(
        UnansweredCase{"Empty", "OBX|2|CWE|88123-5^Food did not last^LN||||||||F\r",
                       mapping::ResultStatus::kFinal},
        UnansweredCase{"HL7Null", "OBX|2|CWE|88123-5^Food did not last^LN||\"\"||||||F\r",
                       mapping::ResultStatus::kFinal},
        UnansweredCase{"OnlySeparators", "OBX|2|CWE|88123-5^Food did not last^LN||^^||||||F\r",
                       mapping::ResultStatus::kFinal},
        UnansweredCase{"EmptyRepetitions", "OBX|2|CWE|88123-5^Food did not last^LN||~||||||F\r",
                       mapping::ResultStatus::kFinal},
        UnansweredCase{"Corrected", "OBX|2|CWE|88123-5^Food did not last^LN||||||||C\r",
                       mapping::ResultStatus::kCorrected},
        // A numeric item with no value is unanswered too, not a data type error.
        UnansweredCase{"EmptyNumber", "OBX|2|NM|88123-5^Food did not last^LN||||||||F\r",
                       mapping::ResultStatus::kFinal}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(OruObservations, AnEmptyRepetitionBesideAnAnswerKeepsOnlyTheAnswer) {
  const auto s =
      screening_with("OBX|2|CWE|88123-5^Food did not last^LN||~LA28397-0^Often true^LN||||||F\r");
  ASSERT_EQ(s.items.size(), 2u);
  ASSERT_EQ(s.items[1].answers.size(), 1u);
  ASSERT_TRUE(s.items[1].answers[0].coding);
  EXPECT_EQ(s.items[1].answers[0].coding->code, "LA28397-0");
}

TEST(OruObservations, ANumberThatIsNotOneNamesObx5) {
  auto s = read(std::string(kHeader) + "OBX|2|NM|88123-5^Food did not last^LN||many||||||F\r");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().where.segment, "OBX");
  EXPECT_EQ(s.error().where.sequence, 2);
  EXPECT_EQ(s.error().where.field, 5);
}

TEST(OruObservations, WithoutPidTheErrorNamesMshWhichWasSent) {
  auto s = read(
      "MSH|^~\\&|EHR|PEDS_CLINIC_B|SDOH_GW|STATE_EC|20261121091500||ORU^R01|B1|P|2.5.1\r"
      "OBR|1||HVS-77|88121-9^Hunger Vital Sign [HVS]^LN\r");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().where.segment, "MSH");
  EXPECT_EQ(s.error().where.field, 0);
  EXPECT_EQ(s.error().message, "ORU^R01 needs a PID segment");
}

TEST(OruObservations, WithoutObrTheErrorNamesPidWhereTheOrderBelongs) {
  auto s = read(
      "MSH|^~\\&|EHR|PEDS_CLINIC_B|SDOH_GW|STATE_EC|20261121091500||ORU^R01|B1|P|2.5.1\r"
      "PID|1||44120^^^PEDS_B^MR\r");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().where.segment, "PID");
  EXPECT_EQ(s.error().where.sequence, 1);
  EXPECT_EQ(s.error().where.field, 0);
  EXPECT_EQ(s.error().message, "ORU^R01 needs an OBR segment");
}

}  // namespace
}  // namespace sdoh::hl7v2
