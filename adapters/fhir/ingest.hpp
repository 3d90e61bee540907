#pragma once
// FHIR ingest without I/O: one POSTed resource or transaction/batch Bundle in, everything the
// HTTP layer needs out — the answer (status, Location, the stored resource or the
// *-response Bundle, an OperationOutcome with the warnings), the resources to keep for later
// reads and references, and the CommitRequest (inbound record, outbox events, dead letter) to
// commit through pipeline::CommitPort before answering (DESIGN.md, delivery promise).
//
// Mapping goes through the shared engines: QuestionnaireResponse and screening Observations
// (single, or grouping with hasMember) → mapping::NormalizedScreening → ScreeningMapper →
// org.sdoh.screening.v1; ServiceRequest + SDOHCC referral Task (+ Patient, + Consent) →
// mapping::NormalizedReferral → ReferralMapper → org.sdoh.referral.v1 and the first
// org.sdoh.referral.status.v1 (requested); Patient → pseudonym and equity fields of the
// screenings that reference it; Consent → the consent value that gates contact details.
//
// Rules:
//   - A transaction is all or nothing: one failing entry rejects the Bundle (the entry's
//     problem, its expression rooted at Bundle.entry[i]). A batch answers per entry; the
//     entries that succeed are committed.
//   - Valid FHIR that cannot be mapped (no answers, no agency, an unknown instrument's codes)
//     is accepted and stored with a warning issue, never silently dropped.
//   - Ids are assigned by the gateway: the time received, then a hash of the sender, the
//     request's dedupe key and the entry's place (Ingestor::new_id), so new ids sort last. A
//     resend inside the dedupe window gets the stored answer and its ids; a replay keeps the ids
//     its first answer named (IngestRequest::earlier_answer). Event ids are the hash alone, so a
//     resend yields the same events. A referral's Task id is its referralId (DESIGN.md).
//   - Diagnostics never carry PHI or field values.
#include <expected>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "adapters/fhir/error.hpp"
#include "adapters/fhir/outcome.hpp"
#include "adapters/fhir/resources.hpp"
#include "gateway/config/config.hpp"
#include "gateway/events/event.hpp"
#include "gateway/mapping/engine.hpp"
#include "gateway/mapping/referral.hpp"
#include "gateway/mapping/routing.hpp"
#include "gateway/pipeline/commit_port.hpp"
#include "gateway/referral/service.hpp"

namespace sdoh::fhir {

/// Resources the gateway received before, for references that point outside the request and
/// for conditional create. Implemented over the store by the HTTP layer; a map in unit tests.
/// Called on the ingest caller's thread; must not block on I/O for long (reads only).
class ResourceDirectory {
 public:
  virtual ~ResourceDirectory() = default;
  /// The stored JSON of `type`/`id`, or nullopt.
  virtual std::optional<std::string> read(std::string_view type, std::string_view id) const = 0;
  /// The id of the `type` resource with this identifier, or nullopt (If-None-Exist,
  /// Bundle.entry.request.ifNoneExist).
  virtual std::optional<std::string> find_by_identifier(std::string_view type,
                                                        std::string_view system,
                                                        std::string_view value) const = 0;
  /// The ids of the `type` resources whose search parameters include every (name, value) of
  /// `params` (e.g. Task "patient" → "Patient/p1", "business-status" → "awaiting-consent",
  /// "_sender" → the client). None when the directory cannot search.
  virtual std::vector<std::string> search(
      std::string_view type, const std::vector<std::pair<std::string, std::string>>& params) const {
    (void)type;
    (void)params;
    return {};
  }
};

/// What to do with a screening whose subject is a Patient the gateway does not know (neither
/// in the request nor in the directory) and that names no identifier.
enum class UnknownPatientPolicy {
  /// Pseudonymise the reference within the sender ("urn:sdoh-gateway:fhir-reference:<sender>"
  /// as the authority) and warn: the screening is kept, but links only with the sender's other
  /// resources that use the same reference, not with HL7 messages about the same child.
  kLinkByReference,
  /// Refuse with 422 not-found naming the subject.
  kReject,
};

using mapping::kScreeningReferralSystem;

struct IngestContext {
  const mapping::ScreeningMapper* mapper = nullptr;  ///< required; must outlive the call
  std::string sender;  ///< the authenticated client or organization: dedupe scope and source
  std::string gateway_id = "sdoh-gateway";
  config::KafkaTopics topics;
  mapping::Coding facility;  ///< the sending clinic {system, code: id, name}; empty: the sender
  const ResourceDirectory* directory = nullptr;  ///< null: nothing known beyond the request
  /// The topic for an agency's referrals (routing); empty function or result: topics.referral.
  std::function<std::string(std::string_view agency_id)> agency_topic;
  UnknownPatientPolicy unknown_patient = UnknownPatientPolicy::kLinkByReference;
  /// Routing (schemas/routing) for a referral that names no agency: the agency for this need and
  /// the Patient's ZIP (its county from the ZIP-to-county crosswalk) and age; nullopt: no route
  /// (the referral is held with businessStatus no-route). Empty function: no routing.
  mapping::RouteLookup route;
  /// A screening whose family asked for help with a need (assistanceRequested true) opens a
  /// referral for that need: a ServiceRequest and Task made by the gateway (ids the referralId,
  /// the clinic number "urn:sdoh-gateway:screening" | "{screeningId}:{category}"), routed, with
  /// the consent of this request. Not when the request has the clinic's own ServiceRequest for
  /// that need and patient.
  bool refer_from_screening = false;
  /// A referral's closed-loop state, so that a Consent can release the sender's referrals that
  /// wait for it (businessStatus awaiting-consent). Empty function: none are released.
  std::function<std::optional<pipeline::ReferralState>(const std::string& referral_id)>
      find_referral;
  /// The open (not final) referral of this patient (pseudonym) for this need, if any: a
  /// screening does not open a second one. Empty function: none is looked for.
  std::function<std::optional<std::string>(std::string_view patient, std::string_view category)>
      open_referral_for;
};

struct IngestRequest {
  std::string_view body;
  /// The type in the URL (POST /fhir/Observation → "Observation"); empty for POST /fhir, which
  /// takes a Bundle.
  std::string_view resource_type;
  std::string_view if_none_exist;  ///< the If-None-Exist header ("identifier=system|value")
  std::string received_at;         ///< RFC 3339, the caller's clock (ingest reads none)
  /// An operator's replay of a dead letter: the answer the request got the first time. The
  /// resources it names (a held referral's, a batch's accepted entries) keep their ids, so that
  /// the replay finds them stored instead of creating them again under ids of the replay's time.
  std::string_view earlier_answer;
};

/// The resources an answer the gateway gave says it created: by request entry (the index in a
/// transaction- or batch-response, whose 201 entries name them; -1 for a single create's answer,
/// the resource itself), their type and id. Empty for anything else (an OperationOutcome).
std::map<int, std::pair<std::string, std::string>> ids_in_answer(std::string_view answer);

/// A resource as the gateway keeps it: ids assigned, urn:uuid references rewritten,
/// meta.versionId and meta.lastUpdated set.
struct StoredResource {
  std::string type;
  std::string id;
  std::string version_id = "1";
  std::string last_updated;
  std::string json;  ///< empty when `created` is false
  std::vector<Identifier> identifiers;
  bool created = true;  ///< false: a conditional create found it already there (200, not 201)
  /// A new version of a stored resource (a Task a Consent released) replaces version_id - 1.
  /// "Task/{id}/_history/1", relative to the FHIR base.
  std::string location() const { return type + "/" + id + "/_history/" + version_id; }
};

/// A referral this request opened, routed or released: its next state as the referral service
/// decided it (written with the commit, locked to the sequence it was decided from), and what
/// the answer says about it.
struct CreatedReferral : pipeline::ReferralState {
  std::string service_request_id;
  mapping::ConsentStatus consent = mapping::ConsentStatus::kNone;
  bool contact_included = false;
};

/// What a Consent in the request says, keyed by the patient's pseudonym (never an MRN).
struct ConsentValue {
  std::string consent_id;
  std::string patient_pseudonym;        ///< empty when the Consent names no patient it can resolve
  mapping::ReferralConsent consent;     ///< for any agency the provision names (see recipients)
  std::vector<std::string> recipients;  ///< agency ids; empty: the provision names none
};

struct FhirIngest {
  int http_status = 201;      ///< 201 created; 200 for a Bundle or a conditional-create match
  std::string location;       ///< single resource: StoredResource::location()
  std::string version_id;     ///< single resource: for ETag W/"1"
  std::string last_modified;  ///< RFC 3339 (the HTTP layer formats Last-Modified)
  std::string body;           ///< the stored resource, or the transaction/batch-response Bundle
  std::vector<Issue> issues;  ///< warnings and information; no errors
  std::vector<StoredResource> resources;
  std::vector<CreatedReferral> referrals;
  std::vector<ConsentValue> consents;
  std::vector<std::string> patient_pseudonyms;  ///< of the Patients in the request, in order
  pipeline::CommitRequest commit;  ///< inbound record (answer = body), events, no dead letter

  /// The OperationOutcome for Prefer: return=OperationOutcome (and the 201's warnings).
  std::string outcome() const { return operation_outcome_json(issues); }
};

struct FhirRejection {
  Problem problem;                 ///< status class and issues (at least one error)
  pipeline::CommitRequest commit;  ///< inbound record (answer = OperationOutcome), dead letter
                                   ///< and its org.sdoh.deadletter.v1 event
};

/// Validates, maps and prepares the commit for one request. Never throws on bad input.
std::expected<FhirIngest, FhirRejection> ingest(const IngestRequest& request,
                                                const IngestContext& context);

/// The commit for a refused request: the inbound record answering with `problem`'s
/// OperationOutcome, the dead letter and its org.sdoh.deadletter.v1 event. What ingest returns
/// on a refusal, and what the other interactions (Task updates) commit for theirs.
FhirRejection rejection(Problem problem, std::string_view stage, const IngestContext& context,
                        std::string_view key, std::string_view message_type, std::string_view body,
                        std::string_view received_at, std::string_view protocol = "fhir");

/// One outbox event: the CloudEvent envelope of `data` from this gateway.
pipeline::OutboxEvent outbox_event(events::EventType type, std::string event_id,
                                   std::string_view gateway_id, std::string time,
                                   std::string subject, std::string topic, std::string key,
                                   std::string data);

/// The dedupe key of a request (resends share it): the If-None-Exist value, else the Bundle's
/// or resource's identifier, else its id, else a SHA-256 of the body; prefixed by the type.
std::string dedupe_key(std::string_view resource_type, std::string_view body,
                       std::string_view if_none_exist);

}  // namespace sdoh::fhir
