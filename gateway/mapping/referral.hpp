#pragma once
// Referrals and their lifecycle transitions → the data of org.sdoh.referral.v1 and
// org.sdoh.referral.status.v1 events. One copy of the rules both adapters need: the referralId,
// the consent rule (contact details and free text only with active consent), minimum
// necessary (pseudonym, age band, 3-digit ZIP; never an MRN or birth date), and the need a
// referral is for, found by the screening engine when the source names it only by answers.
// The HL7 adapter fills NormalizedReferral from REF^I12 (RF1, PRD, PID, NK1, CON, OBR/OBX).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/result.hpp"
#include "gateway/mapping/engine.hpp"
#include "gateway/mapping/routing.hpp"
#include "gateway/mapping/screening.hpp"

namespace sdoh::mapping {

/// FHIR R4 Task status, as the Gravity SDOH referral workflow uses it (DESIGN.md lifecycle).
enum class ReferralStatus {
  kRequested,
  kReceived,
  kAccepted,
  kRejected,
  kInProgress,
  kOnHold,
  kCompleted,
  kFailed,
  kCancelled,
};
std::string_view to_string(ReferralStatus s);
/// "in-progress" → kInProgress; nullopt for anything else.
std::optional<ReferralStatus> referral_status_from(std::string_view token);
/// rejected, completed, failed and cancelled end a referral.
bool is_final(ReferralStatus s);

enum class ConsentStatus { kActive, kNone, kRevoked, kUnknown };
std::string_view to_string(ConsentStatus s);

struct ReferralConsent {
  ConsentStatus status = ConsentStatus::kNone;
  std::string source = "none";  ///< fhir-consent | hl7-con | clinic-policy | none
  std::string date;             ///< RFC 3339 date or date-time; empty when unknown
};

struct HumanName {
  std::string family;
  std::vector<std::string> given;
  bool empty() const { return family.empty() && given.empty(); }
};

struct PostalAddress {
  std::vector<std::string> lines;
  std::string city;
  std::string state;
  std::string postal_code;
};

struct Guardian {
  HumanName name;
  Coding relationship;
  std::string phone;
};

/// What an agency needs to reach the family. Written into an event only with active consent.
struct ContactDetails {
  HumanName name;
  std::string phone;  ///< E.164 where the adapter could normalise it, else as sent
  std::optional<PostalAddress> address;
  std::optional<Coding> preferred_language;
  std::optional<Guardian> guardian;
};

struct NormalizedReferral {
  // Where it came from (ids of the source message; not part of the referral's identity).
  std::string protocol;  ///< "hl7v2" | "fhir"
  std::string sender;
  std::string message_id;

  /// The clinic's own referral number (HL7 RF1-6, ServiceRequest.identifier): with its
  /// namespace it is the referral's identity, from which referral_id() derives the referralId.
  std::string clinic_number_system;
  std::string clinic_number_value;

  /// The need as the source names it (a Gravity category code); may be empty when only the
  /// answers in `evidence` (HL7 OBR/OBX) say what the need is.
  std::string category;
  std::vector<NormalizedScreening> evidence;
  /// The other codes the source gives for the need, where it gives them ("RF1-5", "OBX-3",
  /// "ServiceRequest.code"): HL7 RF1-3, RF1-5, OBR-4, OBX-3 (of an answer that is not "no"), FHIR
  /// ServiceRequest.category and code. A Gravity category among them names the need; otherwise
  /// the sender's local code tables (local_codes.hpp) translate them.
  struct NeedCode {
    Coding coding;
    std::string where;
  };
  std::vector<NeedCode> need_codes;

  std::optional<Coding> service;     ///< RF1-5 / ServiceRequest.code
  std::string priority = "routine";  ///< routine | urgent | asap | stat
  std::string agency_id;
  std::string agency_name;
  std::string agency_topic;
  std::string requester_id;
  std::string requester_system;
  std::string requester_display;
  Coding facility;          ///< the referring clinic {system, code: id, display: name}
  std::string authored_on;  ///< RFC 3339 date or date-time

  std::string patient_authority;   ///< only ever hashed
  std::string patient_identifier;  ///< only ever hashed
  std::string birth_date;          ///< only for the age band (and routing's age)
  std::string postal_code;         ///< only for the 3-digit ZIP (the contact keeps the full one)
  std::string county_fips;         ///< 5-digit county FIPS code, only for routing; empty: unknown
  /// How routing chose the agency (the event's `routing`); none: the sender named the agency.
  std::optional<RoutingBasis> routed;

  ReferralConsent consent;
  std::optional<ContactDetails> contact;  ///< dropped unless consent is active
  std::string note;                       ///< dropped unless consent is active
  std::string business_status;            ///< empty: null
  /// Equity fields for the closed-loop measures (codes: race and ethnicity OMB category,
  /// preferred language); never in the referral event beyond what its schema allows.
  std::string race;
  std::string ethnicity;
  std::string language;
};

struct MappedReferral {
  std::string referral_id;
  std::string category;
  std::string patient_pseudonym;
  /// The family's 3-digit ZIP area as events carry it (ZipPolicy::zip3), for the measures.
  std::string zip3;
  ReferralStatus status = ReferralStatus::kRequested;
  std::string business_status;  ///< empty: null
  bool contact_included = false;
  std::string data;  ///< the event's data object as JSON text
  /// No code or answer tells the need: category is sdoh-category-unspecified, businessStatus
  /// uncategorised, and `untranslated` lists the codes received ("RF1-5 LOCAL|EI, RF1-3
  /// LOCAL|SDOH"; codes only, never text) for the dead letter that asks for a translation.
  bool uncategorised = false;
  std::string untranslated;
};

/// The category of a referral whose need is not known (SDOHCC "SDOH Category Unspecified").
inline constexpr std::string_view kUnspecifiedCategory = "sdoh-category-unspecified";

/// The numbering of referrals the gateway opens from a screening in which the family asked for
/// help (assistanceRequested true): value "{screeningId}:{category}".
inline constexpr std::string_view kScreeningReferralSystem = "urn:sdoh-gateway:screening-referral";

/// The referralId the gateway gave a clinic's referral number before ids were keyed (an unkeyed
/// hash of the number). Referrals made then keep it: ScreeningMapper::referral_id() returns it
/// for them, and the keyed id for every other.
std::string legacy_referral_id(std::string_view system, std::string_view value);

class ReferralMapper {
 public:
  /// Uses the screening engine's tables, pseudonym key and ZIP policy. `screenings` must
  /// outlive the mapper.
  explicit ReferralMapper(const ScreeningMapper& screenings) : screenings_(screenings) {}

  /// Fails (kInvalid) when the referral cannot be an event, `where.expression` naming what is
  /// missing: "patient.identifier", "clinicReferralNumber", "agency.id", "category"
  /// (more than one need, or one that is uncategorised: see identify()), or "evidence"
  /// (answers that cannot be mapped).
  Result<MappedReferral> map(const NormalizedReferral& referral) const;

  /// The referral without its event: referralId, need, pseudonym and businessStatus, `data`
  /// empty. For a referral that names no agency, before routing picks one (the need decides the
  /// route) or holds it (no-route: a Task and a status event, no referral event). Fails as map()
  /// does, except that no agency is needed. The need is, in this order: a Gravity category the
  /// source names (RF1, OBR-4, ServiceRequest.category); the sender's local codes translated;
  /// the one positive domain of the answers. When none tells it the referral is `uncategorised`
  /// (not an error: it is held until a local code table translates its codes).
  Result<MappedReferral> identify(const NormalizedReferral& referral) const;

 private:
  struct Need {
    std::string category;
    std::string untranslated;  ///< empty unless uncategorised
  };
  Result<Need> need(const NormalizedReferral& r) const;
  const ScreeningMapper& screenings_;
};

/// The routing keys (routing.hpp) of `r` (postal code, county, birth date), the age on `on_date`
/// (the referral date; a YYYY-MM-DD prefix).
RoutingKeys routing_keys(const NormalizedReferral& r, std::string_view on_date);

/// One lifecycle transition of a referral.
struct ReferralTransition {
  std::string referral_id;
  ReferralStatus status = ReferralStatus::kRequested;
  std::optional<ReferralStatus> previous;
  std::string business_status;  ///< empty: null
  std::string reason;           ///< empty: null; never names or contact details
  std::string updated_by_role;  ///< agency | clinic | gateway
  std::string updated_by_id;
  std::string time;  ///< RFC 3339 date-time with offset
  int sequence = 1;
  std::string agency_id;  ///< empty: null (no agency)
  std::string category;
};

/// The org.sdoh.referral.status.v1 data object as JSON text.
std::string referral_status_data(const ReferralTransition& t);

/// The transition an org.sdoh.referral.status.v1 event (its CloudEvent envelope) carries, read
/// back once for what follows a commit (answers to HL7 clinics, measures); nullopt when it is not
/// such an event.
std::optional<ReferralTransition> read_referral_status(std::string_view envelope);

/// A status event of a commit, read back: its event id and the transition it carries.
struct StatusEvent {
  std::string event_id;
  ReferralTransition transition;
};

/// `text` cut to at most `max_chars` Unicode characters (UTF-8 aware).
std::string clip_text(std::string_view text, std::size_t max_chars);

}  // namespace sdoh::mapping
