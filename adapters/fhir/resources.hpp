#pragma once
// The FHIR R4 resources this gateway accepts, read and validated for what the mapping relies on,
// per the Gravity SDOH Clinical Care IG (SDOHCC) profiles: QuestionnaireResponse, Observation
// (SDOHCC-ObservationScreeningResponse, single or grouping with hasMember), Patient (US Core:
// race/ethnicity extensions, communication, address), ServiceRequest (SDOHCC-ServiceRequest),
// Task (SDOHCC-TaskForReferralManagement) and Consent (SDOHCC-Consent).
//
// Validation policy:
//   - a break of the base specification (required element, JSON type, primitive format, a code
//     outside a required value set) is an error: 400;
//   - a deviation from an SDOHCC/US Core profile that the mapping does not need (a missing
//     `sdoh` category, Consent.organization, ...) is a warning: the resource is accepted;
//   - what only keeps a resource from being mapped is a warning in ingest (adapters/fhir/ingest),
//     never a silent drop.
// The structs hold what the gateway uses, not whole resources; the JSON as received is kept by
// the caller. Pure: no I/O.
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "adapters/fhir/error.hpp"
#include "adapters/fhir/outcome.hpp"
#include "gateway/mapping/referral.hpp"
#include "gateway/mapping/screening.hpp"

namespace sdoh::fhir {

inline constexpr std::string_view kSdohccCategorySystem =
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes";
inline constexpr std::string_view kObservationCategorySystem =
    "http://terminology.hl7.org/CodeSystem/observation-category";
inline constexpr std::string_view kUsCoreCategorySystem =
    "http://hl7.org/fhir/us/core/CodeSystem/us-core-category";
inline constexpr std::string_view kLoincSystem = "http://loinc.org";
inline constexpr std::string_view kTaskCodeSystem = "http://hl7.org/fhir/CodeSystem/task-code";
inline constexpr std::string_view kUsCoreRace =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race";
inline constexpr std::string_view kUsCoreEthnicity =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity";

using mapping::Coding;

struct Identifier {
  std::string system;
  std::string value;
  bool empty() const { return value.empty(); }
};

struct Reference {
  std::string reference;  ///< "Patient/p1", "urn:uuid:...", absolute URL; may be empty
  Identifier identifier;  ///< a logical reference
  std::string display;
  std::string expression;  ///< where it was read, for issues about it
  bool empty() const { return reference.empty() && identifier.empty(); }
  /// "Patient" and "p1" for a relative literal reference "Patient/p1[/_history/n]"; empty
  /// strings otherwise.
  std::pair<std::string, std::string> type_and_id() const;
};

struct Patient {
  std::string id;
  std::vector<Identifier> identifiers;
  Identifier record_number;  ///< the identifier typed MR (v2-0203), else the first with a value
  std::string birth_date;
  std::vector<Coding> race;        ///< US Core race: ombCategory and detailed
  std::vector<Coding> ethnicity;   ///< US Core ethnicity: ombCategory and detailed
  std::optional<Coding> language;  ///< communication with preferred = true, else the first
  std::string postal_code;         ///< home address, else the first
  Reference managing_organization;
  mapping::ContactDetails contact;  ///< only ever written with active consent
};

struct QuestionnaireAnswerItem {
  std::string link_id;
  std::string expression;      ///< "QuestionnaireResponse.item[1].item[0]"
  std::optional<Coding> code;  ///< item.code? R4 QR items have none; a LOINC linkId gives one
  std::vector<mapping::AnswerValue> answers;
};

struct QuestionnaireResponse {
  std::string id;
  Identifier identifier;
  std::string questionnaire;
  std::string status;  ///< in-progress | completed | amended | entered-in-error | stopped
  Reference subject;
  std::string authored;
  Reference author;
  /// Question items, nested groups flattened: answered ones, and ones with no answer and no
  /// items of their own (asked, not answered; or a display item, which the mapping engine tells
  /// apart by its code). Group items are not in the list.
  std::vector<QuestionnaireAnswerItem> items;
};

struct Observation {
  std::string id;
  std::vector<Identifier> identifiers;
  std::string status;  ///< base R4 ObservationStatus
  std::vector<Coding> categories;
  std::vector<Coding> code;  ///< every coding of Observation.code
  std::string code_text;
  Reference subject;
  std::string effective;  ///< effectiveDateTime or effectivePeriod.start
  std::optional<mapping::AnswerValue> value;
  std::string value_expression;  ///< "Observation.valueCodeableConcept"
  std::vector<Reference> has_member;
  std::vector<Reference> derived_from;
  std::vector<Reference> performer;
  bool data_absent = false;  ///< dataAbsentReason given instead of a value

  /// The LOINC coding of `code`, else the first.
  std::optional<Coding> question() const;
  std::string category_code(std::string_view system) const;
};

struct ServiceRequest {
  std::string id;
  std::vector<Identifier> identifiers;
  std::string
      status;  ///< draft | active | on-hold | revoked | completed | entered-in-error | unknown
  std::string intent;
  std::vector<Coding> categories;
  std::optional<Coding> code;
  Reference subject;
  std::string authored_on;
  Reference requester;
  std::vector<Reference> performer;
  std::string priority;  ///< routine | urgent | asap | stat; empty when absent
  std::vector<Reference> supporting_info;
  std::vector<Reference> reason_reference;
  std::string note;  ///< the notes' text joined; only ever written with active consent
};

struct Task {
  std::string id;
  std::vector<Identifier> identifiers;
  std::string status;  ///< base R4 TaskStatus
  std::string intent;
  std::optional<Coding> code;
  Reference focus;
  Reference for_;
  std::string authored_on;
  std::string last_modified;
  Reference requester;
  Reference owner;
  std::string priority;
  std::string business_status;  ///< a lowercase hyphenated token from businessStatus, or empty
  std::string status_reason;    ///< statusReason.text (or a coding's display/code)
};

struct Consent {
  std::string id;
  std::vector<Identifier> identifiers;
  std::string status;  ///< draft | proposed | active | rejected | inactive | entered-in-error
  std::vector<Coding> scope;
  std::vector<Coding> categories;
  Reference patient;
  std::string date_time;
  Reference organization;
  std::string provision_type;  ///< permit | deny; empty when no provision
  std::string provision_start, provision_end;
  std::vector<Reference> provision_actors;
  std::vector<Coding> provision_actions;
};

using Resource =
    std::variant<Patient, QuestionnaireResponse, Observation, ServiceRequest, Task, Consent>;

struct ParsedResource {
  std::string type;  ///< resourceType
  Resource resource;
  std::vector<Issue> warnings;  ///< profile deviations; never errors
};

/// The resource types parse_resource() reads.
bool supported_resource_type(std::string_view type);

/// Reads and validates one resource from JSON text. Errors name the element by FHIRPath with
/// the resource type as root ("Observation.code"). Fails with 400 for what breaks the base
/// specification, 422 (not-supported) for a resource type this gateway does not accept.
FhirResult<ParsedResource> parse_resource(std::string_view json);

/// FHIR primitive formats (R4 datatypes.html), for the other readers of this adapter.
bool valid_id(std::string_view s);
bool valid_date_time(std::string_view s);  ///< also a date, a year-month or a year
bool valid_date(std::string_view s);
/// A full date (YYYY-MM-DD) or date-time with offset: what the events' schemas accept.
bool full_date_or_date_time(std::string_view s);

}  // namespace sdoh::fhir
