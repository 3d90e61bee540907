#pragma once
// ORU^R01 screening results → the mapping engine's NormalizedScreening, one per OBR group.
// PID gives the patient identity (hashed later) and the optional equity fields; OBR-4 the
// panel; OBX-3 the question, OBX-5 the answer(s), OBX-11 the result status.
#include <vector>

#include "adapters/hl7v2/message.hpp"
#include "adapters/hl7v2/timezone.hpp"
#include "gateway/core/result.hpp"
#include "gateway/mapping/screening.hpp"

namespace sdoh::hl7v2 {

/// "MSH-3^MSH-4", the sender as the dedupe scope and in events.
std::string sender_of(const Message& m);

/// HL7 DTM "YYYYMMDD[HHMM[SS[.S]]][+/-ZZZZ]" → RFC 3339. The sender's offset is kept as sent.
/// A time without an offset is local time at the sender (HL7 v2.5.1 2.A.22): with `zone` (the
/// sender's configured time zone) it gets that zone's offset at that moment; without one it
/// becomes a date only, because its instant is unknown. Empty when malformed.
std::string dtm_to_rfc3339(std::string_view dtm, const TimeZone* zone = nullptr);

/// The patient identifier PID-3 names: the MR repetition when typed, else the first.
/// Returns the repetition number (1-based).
int patient_identifier_repetition(const Segment& pid);

/// HL7 v2 coding system names → FHIR system URIs where known (LN → http://loinc.org).
std::string fhir_system(std::string_view hl7_system);

/// A CE/CWE field (code^text^coding system) as a Coding, the system as a FHIR URI where known.
mapping::Coding coding_of(const Segment& s, int field, int repetition = 1);

/// PID's patient identity and equity fields, for screenings and referral evidence.
/// Fails naming PID-3 when it is empty, MSH when there is no PID.
Result<mapping::NormalizedScreening> patient_from_pid(const Message& m, const char* message_type);

/// The OBR/OBX groups of `m` as screenings, one per OBR, on top of `base` (patient, source).
/// `zone` reads OBR-7 / OBX-14 without an offset. Fails naming OBX-3 or OBX-5, or the OBX that
/// comes before any OBR; an empty result when the message has no OBR. An OBX whose OBX-5 holds no
/// value (empty, "" or only separators) is an item with no answers, whatever its OBX-11: the
/// mapping engine records it as unanswered.
Result<std::vector<mapping::NormalizedScreening>> observation_groups(
    const Message& m, const mapping::NormalizedScreening& base, const TimeZone* zone);

/// Fails with a Location (segment, sequence, field) that is in the message: PID-3 when empty,
/// OBX-3 when empty; MSH for a missing PID, PID for a missing OBR (where each belongs).
Result<std::vector<mapping::NormalizedScreening>> screenings_from_oru(
    const Message& m, const TimeZone* zone = nullptr);

}  // namespace sdoh::hl7v2
