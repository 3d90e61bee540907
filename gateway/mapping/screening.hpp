#pragma once
// A screening as both protocol adapters hand it to the mapping engine: what was asked and
// answered, when, where and for whom, independent of HL7 v2 or FHIR. The HL7 adapter fills it
// from PID/OBR/OBX, the FHIR adapter from Patient/QuestionnaireResponse/Observation.
#include <optional>
#include <string>
#include <vector>

#include "gateway/mapping/tables.hpp"

namespace sdoh::mapping {

enum class ResultStatus {
  kFinal,      ///< HL7 OBX-11 F; FHIR final/completed
  kCorrected,  ///< HL7 OBX-11 C; FHIR amended/corrected
  kCancelled,  ///< HL7 OBX-11 X/D; FHIR cancelled/entered-in-error: no domain result
  kPreliminary,
};
std::string_view to_string(ResultStatus s);

struct AnswerValue {
  std::optional<Coding> coding;  ///< CWE / valueCoding
  std::optional<double> number;  ///< NM / valueInteger / valueDecimal / valueQuantity
  std::optional<bool> boolean;   ///< valueBoolean
  std::string text;              ///< ST / valueString
};

/// One question of the screening. `answers` empty with status final or corrected means "asked,
/// not answered" (HL7 OBX-11 F/C with an empty OBX-5; a FHIR QuestionnaireResponse question item
/// with no answer; a final Observation with no value[x]): the engine records it in the event's
/// `unanswered` list and counts it toward no domain. Empty answers with another status are
/// ignored (a preliminary item is still being filled in; a cancelled one was withdrawn).
struct ItemResponse {
  Coding question;      ///< usually LOINC; display as the sender wrote it
  std::string link_id;  ///< FHIR QuestionnaireResponse linkId, when there is one
  std::vector<AnswerValue> answers;
  ResultStatus status = ResultStatus::kFinal;

  bool unanswered() const {
    return answers.empty() &&
           (status == ResultStatus::kFinal || status == ResultStatus::kCorrected);
  }
};

struct NormalizedScreening {
  // Where it came from. Together they identify the source message for deterministic ids.
  std::string protocol;       ///< "hl7v2" | "fhir"
  std::string sender;         ///< HL7 MSH-3^MSH-4; FHIR client or organization
  std::string message_id;     ///< MSH-10; FHIR resource id, identifier or Bundle id
  std::string resource_type;  ///< FHIR resource type; empty for HL7
  int position = 0;           ///< index of this screening within its message (batches, bundles)

  std::optional<Coding> panel;  ///< OBR-4 / grouping Observation code
  std::string questionnaire;    ///< QuestionnaireResponse.questionnaire
  std::string performed;        ///< RFC 3339 date-time or YYYY-MM-DD
  Coding facility;              ///< {system, code: id, display: name}

  std::string patient_authority;   ///< PID-3.4 / Identifier.system
  std::string patient_identifier;  ///< PID-3.1 / Identifier.value — only ever hashed
  std::string birth_date;          ///< YYYY-MM-DD, used only for the age band

  std::vector<Coding> race;
  std::vector<Coding> ethnicity;
  std::optional<Coding> language;
  std::string postal_code;  ///< reduced to a 3-digit ZIP (HIPAA Safe Harbor) in the event

  std::vector<ItemResponse> items;
  std::string supersedes;  ///< screeningId this one corrects, when the adapter knows it
};

}  // namespace sdoh::mapping
