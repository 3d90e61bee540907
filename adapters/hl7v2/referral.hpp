#pragma once
// REF^I12 (patient referral) and RRI^I12 (the referred-to provider's response), HL7 v2.5.1
// chapter 11, read into the gateway's referral model. Pure: no I/O, no state.
//
// REF^I12 → mapping::NormalizedReferral:
//   RF1-1 status (P or empty: a new referral is "requested"), RF1-2 priority (table 0280),
//   RF1-5 referral category (the service), RF1-6 originating referral id (the clinic's number:
//   id^namespace), RF1-7 effective date (authoredOn), RF1-10 reason text (the note);
//   PRD with PRD-1 "RT" (referred-to agency: PRD-2 name, PRD-7 id; optional: without one, or
//   with PRD-7 empty, routing picks the agency) and "RP" (referring provider: PRD-2 name, PRD-7
//   id^type); PID (pseudonym, age band, ZIP; for routing also PID-7 birth date and the county,
//   PID-11.9 or PID-12) and PID/NK1 contact details; CON (CON-11 status, table 0498; CON-13
//   decision date) for consent; OBR/OBX the need.
// RRI^I12 → ReferralResponse: RF1-1 status (table 0283 A/R/P/E, or a Task status token), RF1-10
//   reason text, MSH-7 time, the responding agency (PRD RT PRD-7, else MSH-4), and the keys
//   that link it to the referral: RF1-11 external id (the gateway's referralId), RF1-6, MSA-2.
#include <optional>
#include <string>

#include "adapters/hl7v2/message.hpp"
#include "adapters/hl7v2/timezone.hpp"
#include "gateway/core/result.hpp"
#include "gateway/mapping/referral.hpp"

namespace sdoh::hl7v2 {

/// How a sender's REF messages without a CON segment are treated (config mllp.hl7.senders).
enum class ContactConsentPolicy {
  kConSegment,    ///< only a CON segment with status A (active) allows contact details
  kClinicPolicy,  ///< the clinic records consent before referring: active unless a CON says no
};

struct ReferralReadOptions {
  const TimeZone* zone = nullptr;  ///< the sender's zone for times without an offset
  ContactConsentPolicy consent_policy = ContactConsentPolicy::kConSegment;
};

/// An agency id from an HL7 identifier ("EHV-DURHAM" → "ehv-durham"): lower case, characters
/// outside [a-z0-9._-] replaced by '-', so that the same agency has one id in every message.
std::string agency_id_from(std::string_view hl7_id);

/// Fails with a Location (segment, sequence, field) that is in the message (MSH for a missing RF1
/// or PID) when RF1, RF1-6, PID or PID-3 is missing, or
/// RF1-1 / RF1-2 hold a value the tables do not have. A referral that names no agency (no PRD of
/// role RT, or its PRD-7 empty) has an empty agency_id and businessStatus no-route until routing
/// finds one; its county_fips is the 5-digit FIPS code of PID-11.9 (else PID-12), or empty.
Result<mapping::NormalizedReferral> referral_from_ref(const Message& m,
                                                      const ReferralReadOptions& options);

/// The referral an ORU's screening opens for a need the family asked help with
/// (assistanceRequested true): numbered kScreeningReferralSystem | "{screeningId}:{category}",
/// the patient, contact details, equity fields and consent (a CON segment or the sender's policy)
/// as a REF^I12 gives them; no agency (routing chooses). `s` is the screening read from `m`.
mapping::NormalizedReferral referral_from_screening(const Message& m,
                                                    const mapping::NormalizedScreening& s,
                                                    std::string_view screening_id,
                                                    std::string_view category,
                                                    const ReferralReadOptions& options);

struct ReferralResponse {
  mapping::ReferralStatus status = mapping::ReferralStatus::kReceived;
  std::string business_status;  ///< e.g. "expired" for RF1-1 E; empty: none
  std::string reason;           ///< RF1-10 text; empty: none
  std::string time;             ///< RFC 3339 date-time with offset from MSH-7; empty: unknown
  std::string agency_id;        ///< who responds, as the message says (PRD-7, else MSH-4)
  bool named_agency = false;    ///< a PRD of role RT names it (PRD-7), rather than MSH-4
  // Keys to the referral, most specific first.
  std::string external_id;           ///< RF1-11.1: the gateway's referralId, when the agency has it
  std::string clinic_number_system;  ///< RF1-6.2 (or .3)
  std::string clinic_number_value;   ///< RF1-6.1
  std::string original_control_id;   ///< MSA-2: MSH-10 of the REF answered
};

/// The occurrence (1-based) of the PRD segment whose PRD-1 is `role` (table 0286, e.g. "RT"),
/// 0 when there is none: for an ERR-2 that names that PRD.
int provider_occurrence(const Message& m, std::string_view role);

/// Fails with a Location when RF1 or RF1-1 is missing or RF1-1 is not a status it knows.
Result<ReferralResponse> response_from_rri(const Message& m, const TimeZone* zone);

}  // namespace sdoh::hl7v2
