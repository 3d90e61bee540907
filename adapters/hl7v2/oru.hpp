#pragma once
// ORU^R01 screening results → the mapping engine's NormalizedScreening, one per OBR group.
// PID gives the patient identity (hashed later) and the optional equity fields; OBR-4 the
// panel; OBX-3 the question, OBX-5 the answer(s), OBX-11 the result status.
#include <vector>

#include "adapters/hl7v2/message.hpp"
#include "gateway/core/result.hpp"
#include "gateway/mapping/screening.hpp"

namespace sdoh::hl7v2 {

/// "MSH-3^MSH-4", the sender as the dedupe scope and in events.
std::string sender_of(const Message& m);

/// HL7 DTM "YYYYMMDD[HHMM[SS[.S]]][+/-ZZZZ]" → RFC 3339; a time without an offset becomes a
/// date only (its zone is unknown). Empty when malformed.
std::string dtm_to_rfc3339(std::string_view dtm);

/// HL7 v2 coding system names → FHIR system URIs where known (LN → http://loinc.org).
std::string fhir_system(std::string_view hl7_system);

/// Fails with a Location (segment, sequence, field) for a missing PID-3, OBR or OBX-3.
Result<std::vector<mapping::NormalizedScreening>> screenings_from_oru(const Message& m);

}  // namespace sdoh::hl7v2
