#pragma once
// FHIR ingest's internals (adapters/fhir/ingest.hpp is the interface): the Ingestor that reads,
// validates and maps one request, shared by ingest.cpp (bundles, resolution, screenings, the
// run) and ingest_referrals.cpp (referrals: opened, held, routed, released by consent, through
// the referral service). Not for use outside adapters/fhir.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "adapters/fhir/consent.hpp"
#include "adapters/fhir/ingest.hpp"
#include "adapters/fhir/json_reader.hpp"
#include "adapters/fhir/task_change.hpp"
#include "gateway/core/json_parse.hpp"
#include "gateway/events/dead_letter.hpp"
#include "gateway/events/event.hpp"
#include "gateway/identity/pseudonym.hpp"
#include "gateway/mapping/lifecycle.hpp"
#include "gateway/referral/task_document.hpp"

namespace sdoh::fhir::ingest_detail {

using detail::Json;
using detail::Reader;

std::string limit_key(std::string type, std::string key);
Identifier first_identifier(const Json& v);
std::optional<Identifier> identifier_query(std::string_view q);
std::string status_line(int status);
mapping::ResultStatus observation_status(std::string_view s);
bool has_error(const std::vector<Issue>& issues);
/// meta.versionId of a stored resource's JSON (0 when it has none).
std::int64_t stored_version(const std::string& json);
/// Who the clinic is in a referral's status events: its facility as an id, else "unknown".
std::string clinic_of(const mapping::NormalizedReferral& r);

/// Whether a ServiceRequest carries a number of its own (a first identifier with a value). A
/// referral opened from one without is numbered by the gateway's id of it (referral_of), so that
/// id must not depend on when the request came (Ingestor::new_id).
inline bool has_own_number(const ServiceRequest& sr) {
  return !sr.identifiers.empty() && !sr.identifiers.front().empty();
}

struct Entry {
  int index = -1;    // Bundle.entry index; -1 for a single resource
  std::string root;  // FHIRPath root of the resource
  std::string full_url;
  Json* json = nullptr;  // the resource in the document
  std::optional<ParsedResource> parsed;
  std::vector<Issue> issues;
  std::string if_none_exist;
  std::string id;           // assigned by the gateway
  std::string existing_id;  // a conditional create (or a known referral) found it
  std::vector<pipeline::OutboxEvent> events;
  std::vector<CreatedReferral> referrals;
  std::vector<ConsentValue> consents;
  std::string patient_pseudonym;
  std::string routed_owner, routed_owner_name;  // routing chose the Task's owner
  std::string business_status;                  // set by the gateway (no-route)

  bool failed() const { return has_error(issues); }
  const std::string& type() const { return parsed->type; }
  const std::string& final_id() const { return existing_id.empty() ? id : existing_id; }
};

// A reference's target: an entry of this request, or a resource received before.
struct Target {
  Entry* entry = nullptr;
  std::optional<ParsedResource> stored;
  std::string type;
  std::string id;
  const ParsedResource* resource() const {
    return entry != nullptr ? &*entry->parsed : stored ? &*stored : nullptr;
  }
};

struct PatientInfo {
  enum class State { kResolved, kNotMappable, kError } state = State::kNotMappable;
  std::string authority;
  std::string identifier;
  std::optional<Patient> patient;
  std::string key() const { return authority + "|" + identifier; }
};

class Ingestor {
 public:
  Ingestor(const IngestRequest& request, const IngestContext& context)
      : request_(request),
        ctx_(context),
        service_({context.gateway_id, context.topics.referral_status}) {}

  std::expected<FhirIngest, FhirRejection> run();

 private:
  FhirRejection reject(Problem problem, const std::string& stage);
  pipeline::OutboxEvent event(events::EventType type, const std::string& identity, int position,
                              std::string subject, std::string topic, std::string key,
                              std::string data) const;

  bool read_bundle(Json& bundle, std::vector<Issue>& issues);
  void read_entry(Entry& e);
  void assign_ids();
  std::string new_id(const Entry& e) const;  ///< a created resource's id (see assign_ids)
  Target resolve(const Reference& ref);
  PatientInfo resolve_patient(const Reference& ref, Entry& e, bool strict);
  std::string pseudonym(const PatientInfo& p) const {
    return ctx_.mapper->pseudonymizer().pseudonym(p.authority, p.identifier);
  }
  mapping::Coding facility() const {
    if (!ctx_.facility.code.empty()) return ctx_.facility;
    return {"", ctx_.sender, ""};
  }
  std::string performed(const std::string& time, const std::string& expression, Entry& e) const;
  mapping::NormalizedScreening screening_base(const PatientInfo& p, Entry& e,
                                              const std::string& message_id) const;
  void emit_screening(Entry& e, const mapping::NormalizedScreening& s, const Reference& subject,
                      const PatientInfo& patient);

  void map_entry(Entry& e);
  void map_questionnaire_response(Entry& e);
  void map_observation(Entry& e);
  void map_task(Entry& e);
  // Referrals: what map_task and refer_from_screening share.
  struct Opened {
    std::string referral_id;
    bool existing = false;        // the referral's Task exists already: no new referral
    std::string business_status;  // of its first state (or of its release)
    bool released = false;        // existing, held for no route, and now routed
  };
  void fill_patient(mapping::NormalizedReferral& r, const PatientInfo& patient) const;
  bool route_referral(mapping::NormalizedReferral& r) const;
  void decide_consent(mapping::NormalizedReferral& r, const PatientInfo& patient,
                      std::vector<Consent> consents);
  std::optional<Opened> hold_unrouted(Entry& e, const mapping::NormalizedReferral& r,
                                      const std::string& sr_id, const std::string& where);
  Opened open_held(Entry& e, const mapping::NormalizedReferral& r, referral::Referral held,
                   const std::string& sr_id, const std::string& where, std::string why);
  std::optional<Opened> hold_uncategorised(Entry& e, const mapping::NormalizedReferral& r,
                                           const mapping::MappedReferral& identified,
                                           const std::string& sr_id, const std::string& where);
  std::optional<Opened> open_referral(Entry& e, mapping::NormalizedReferral& r,
                                      const std::string& sr_id, const std::string& category_where,
                                      bool required);
  bool referral_of(const Task& t, const ServiceRequest& sr, const std::string& sr_id,
                   const std::string& sr_root, Entry& e, mapping::NormalizedReferral& r);
  bool clinic_refers(const PatientInfo& patient, std::string_view category);
  void apply_consent(Entry& e);
  void add_change(Entry& e, const referral::Change& change, const std::string& sr_id,
                  mapping::ConsentStatus consent, bool contact_included);
  void refer_from_screening(Entry& e, const Reference& subject, const PatientInfo& patient,
                            const mapping::MappedScreening& m);
  void make_referral_resources(const Entry& screening, const Reference& subject,
                               const mapping::NormalizedReferral& r, const Opened& opened);
  void map_consent(Entry& e);
  void map_patient(Entry& e);

  void rewrite(Entry& e, const std::map<std::string, std::string>& refs);
  std::string response_bundle(const std::string& type);

  const IngestRequest& request_;
  const IngestContext& ctx_;
  referral::Service service_;  // decides every referral this request opens, routes or releases
  rapidjson::Document doc_;
  std::string type_;  // of the request body
  std::string key_;   // dedupe key
  std::vector<Entry> entries_;
  std::set<const Entry*> grouped_members_;  // Observations a grouping Observation here covers
  std::set<const Entry*> derived_from_qr_;  // Observations derived from a QR here
  std::set<const Entry*> focus_of_task_;    // ServiceRequests a Task here refers to
  std::vector<StoredResource> made_;
  // Referrals held (an error each, and the dead letter's stage: route for no route, categorise
  // for a need no local code table translates: map), for the dead letter.
  struct Hold {
    Issue issue;
    std::string stage;
  };
  std::vector<Hold> held_;
  int screening_position_ = 0;
};

}  // namespace sdoh::fhir::ingest_detail
