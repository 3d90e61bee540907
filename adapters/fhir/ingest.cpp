#include "adapters/fhir/ingest.hpp"

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
#include "adapters/fhir/json_reader.hpp"
#include "adapters/fhir/task_change.hpp"
#include "gateway/core/json_parse.hpp"
#include "gateway/events/dead_letter.hpp"
#include "gateway/events/event.hpp"
#include "gateway/identity/pseudonym.hpp"
#include "gateway/mapping/lifecycle.hpp"
#include "gateway/referral/task_document.hpp"

namespace sdoh::fhir {

using detail::Json;
using detail::Reader;

namespace {

constexpr std::size_t kMaxDedupeKey = 200;

std::string limit_key(std::string type, std::string key) {
  if (type.size() + 1 + key.size() <= kMaxDedupeKey) return type + "|" + key;
  return type + "|sha256|" + identity::sha256_hex(key);
}

// The identifier of a resource or Bundle: "identifier" is an object (Bundle,
// QuestionnaireResponse) or an array (the others).
Identifier first_identifier(const Json& v) {
  const auto* id = Reader::get(v, "identifier");
  if (id != nullptr && id->IsArray() && !id->Empty()) id = &(*id)[0];
  if (id == nullptr || !id->IsObject()) return {};
  Identifier out;
  if (const auto* s = Reader::get(*id, "system"); s != nullptr && s->IsString())
    out.system = detail::view(*s);
  if (const auto* val = Reader::get(*id, "value"); val != nullptr && val->IsString())
    out.value = detail::view(*val);
  return out;
}

std::string key_for(const Json* doc, std::string_view type, std::string_view body,
                    std::string_view if_none_exist) {
  const std::string t(type.empty() ? "unknown" : type);
  // The key travels in dead-letter events (source.messageId and the Kafka key): a Patient's
  // identifier (an MRN) and any If-None-Exist query are hashed, never sent as they are.
  if (!if_none_exist.empty())
    return t + "|if-none-exist-sha256|" + identity::sha256_hex(if_none_exist);
  if (doc != nullptr && doc->IsObject()) {
    if (auto id = first_identifier(*doc); !id.empty() && t == "Patient")
      return t + "|identifier-sha256|" + identity::sha256_hex(id.system + "|" + id.value);
    if (auto id = first_identifier(*doc); !id.empty())
      return limit_key(t, "identifier|" + id.system + "|" + id.value);
    if (const auto* id = Reader::get(*doc, "id");
        id != nullptr && id->IsString() && valid_id(detail::view(*id)))
      return limit_key(t, "id|" + std::string(detail::view(*id)));
  }
  return t + "|sha256|" + identity::sha256_hex(body);
}

// "identifier=system|value" or "identifier=value" (FHIR search token syntax), else nullopt.
std::optional<Identifier> identifier_query(std::string_view q) {
  constexpr std::string_view prefix = "identifier=";
  if (!q.starts_with(prefix) || q.find('&') != std::string_view::npos) return std::nullopt;
  q.remove_prefix(prefix.size());
  Identifier id;
  if (auto bar = q.find('|'); bar != std::string_view::npos) {
    id.system = q.substr(0, bar);
    id.value = q.substr(bar + 1);
  } else {
    id.value = q;
  }
  if (id.value.empty()) return std::nullopt;
  return id;
}

std::string status_line(int status) {
  switch (status) {
    case 200:
      return "200 OK";
    case 201:
      return "201 Created";
    case 400:
      return "400 Bad Request";
    case 404:
      return "404 Not Found";
    case 409:
      return "409 Conflict";
    case 412:
      return "412 Precondition Failed";
    case 422:
      return "422 Unprocessable Entity";
    default:
      return std::to_string(status);
  }
}

mapping::ResultStatus observation_status(std::string_view s) {
  if (s == "corrected" || s == "amended") return mapping::ResultStatus::kCorrected;
  if (s == "cancelled" || s == "entered-in-error") return mapping::ResultStatus::kCancelled;
  if (s == "registered" || s == "preliminary") return mapping::ResultStatus::kPreliminary;
  return mapping::ResultStatus::kFinal;
}

bool has_error(const std::vector<Issue>& issues) {
  return std::any_of(issues.begin(), issues.end(), [](const Issue& i) { return i.is_error(); });
}

// The version a stored resource's JSON carries (meta.versionId); 0 when it has none.
std::int64_t stored_version(const std::string& json) {
  rapidjson::Document doc;
  if (!sdoh::json::parse(doc, json) || !doc.IsObject()) return 0;
  const auto* v = rapidjson::Pointer("/meta/versionId").Get(doc);
  return v != nullptr && v->IsString() ? std::atoll(v->GetString()) : 0;
}

// Who the clinic is in a referral's status events: its facility as an id, else "unknown".
std::string clinic_of(const mapping::NormalizedReferral& r) {
  auto clinic = agency_id_of(Reference{"", {"", r.facility.code}, "", ""});
  return clinic.empty() ? std::string("unknown") : clinic;
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
  std::vector<Issue> held_;  // referrals held for no route (an error each, for the dead letter) //
                             // resources the gateway made (screening referrals)
  int screening_position_ = 0;
};

pipeline::OutboxEvent Ingestor::event(events::EventType type, const std::string& identity,
                                      int position, std::string subject, std::string topic,
                                      std::string key, std::string data) const {
  return outbox_event(type, events::event_id(identity, position), ctx_.gateway_id,
                      request_.received_at, std::move(subject), std::move(topic), std::move(key),
                      std::move(data));
}

FhirRejection Ingestor::reject(Problem problem, const std::string& stage) {
  return rejection(std::move(problem), stage, ctx_, key_, type_.empty() ? "unknown" : type_,
                   request_.body, request_.received_at);
}

bool Ingestor::read_bundle(Json& bundle, std::vector<Issue>& issues) {
  Reader r(issues);
  const auto type = r.code(bundle, "type", "Bundle.type",
                           {"document", "message", "transaction", "transaction-response", "batch",
                            "batch-response", "history", "searchset", "collection"},
                           true);
  if (has_error(issues)) return false;
  if (type != "transaction" && type != "batch") {
    r.error(IssueType::kNotSupported, "Bundle.type",
            "this gateway processes transaction and batch Bundles only");
    return false;
  }
  Json* list = nullptr;
  if (auto it = bundle.FindMember("entry"); it != bundle.MemberEnd() && !it->value.IsNull())
    list = &it->value;
  if (list == nullptr) {
    r.warning(IssueType::kInformational, "Bundle.entry", "the Bundle has no entries");
    return true;
  }
  if (!list->IsArray()) {
    r.error(IssueType::kStructure, "Bundle.entry", "entry repeats: it must be a JSON array");
    return false;
  }
  std::set<std::string> full_urls;
  for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
    auto& item = (*list)[i];
    Entry e;
    e.index = static_cast<int>(i);
    const auto path = "Bundle.entry[" + std::to_string(i) + "]";
    e.root = path + ".resource";
    Reader er(e.issues);
    if (!item.IsObject()) {
      er.error(IssueType::kStructure, path, "an entry must be a JSON object");
      entries_.push_back(std::move(e));
      continue;
    }
    e.full_url = er.str(item, "fullUrl", path + ".fullUrl");
    if (!e.full_url.empty() && !full_urls.insert(e.full_url).second) {
      er.error(IssueType::kInvariant, path + ".fullUrl",
               "bdl-7: fullUrl must be unique within a Bundle");
    }
    if (e.full_url.starts_with("urn:uuid:") && e.full_url.size() != 45) {
      er.error(IssueType::kValue, path + ".fullUrl",
               "a urn:uuid fullUrl holds a 36-character UUID");
    }
    // bdl-3: entry.request is mandatory for batch and transaction.
    const auto* req = er.object(item, "request", path + ".request", true);
    std::string method, url;
    if (req != nullptr) {
      method = er.code(*req, "method", path + ".request.method",
                       {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"}, true);
      url = er.str(*req, "url", path + ".request.url", true);
      e.if_none_exist = er.str(*req, "ifNoneExist", path + ".request.ifNoneExist");
    }
    Json* resource = nullptr;
    if (auto it = item.FindMember("resource"); it != item.MemberEnd() && !it->value.IsNull())
      resource = &it->value;
    if (!method.empty() && method != "POST") {
      er.error(IssueType::kNotSupported, path + ".request.method",
               "Bundle entries may only create resources (POST); read with GET /fhir/..., "
               "update a Task with PUT or PATCH /fhir/Task/{id}");
    } else if (resource == nullptr) {
      er.error(IssueType::kRequired, e.root, "a POST entry needs a resource");
    } else {
      e.json = resource;
      e.parsed = detail::read_resource(*resource, e.root, e.issues);
      if (e.parsed && !url.empty() && url != e.parsed->type) {
        er.error(IssueType::kValue, path + ".request.url",
                 "request.url of a POST entry is the resource's type");
      }
    }
    entries_.push_back(std::move(e));
  }
  return true;
}

void Ingestor::assign_ids() {
  for (auto& e : entries_) {
    if (!e.parsed) continue;
    e.id = events::event_id("fhir-resource|" + ctx_.sender + "|" + key_, e.index < 0 ? 0 : e.index);
    const auto query = !e.if_none_exist.empty() ? e.if_none_exist : std::string();
    if (query.empty()) continue;
    auto id = identifier_query(query);
    const auto where = e.index < 0
                           ? std::string()
                           : "Bundle.entry[" + std::to_string(e.index) + "].request.ifNoneExist";
    if (!id) {
      e.issues.push_back(Issue::error(IssueType::kNotSupported, where,
                                      "If-None-Exist supports identifier=system|value only"));
      continue;
    }
    if (ctx_.directory == nullptr) continue;
    if (auto found = ctx_.directory->find_by_identifier(e.type(), id->system, id->value))
      e.existing_id = *found;
  }
}

Target Ingestor::resolve(const Reference& ref) {
  Target t;
  if (ref.reference.empty()) return t;
  for (auto& e : entries_) {
    if (!e.parsed || e.failed()) continue;  // a refused batch entry is not there to refer to
    const bool by_url = !e.full_url.empty() && e.full_url == ref.reference;
    const auto relative = e.type() + "/" + e.final_id();
    // A relative reference to an entry whose fullUrl is an absolute URL ending in Type/id.
    const bool by_suffix = !e.full_url.empty() && ref.reference.find(':') == std::string::npos &&
                           e.full_url.ends_with("/" + ref.reference);
    if (by_url || by_suffix || ref.reference == relative) {
      t.entry = &e;
      t.type = e.type();
      t.id = e.final_id();
      return t;
    }
  }
  auto [type, id] = ref.type_and_id();
  if (type.empty() || ctx_.directory == nullptr) {
    t.type = type;
    t.id = id;
    return t;
  }
  t.type = type;
  t.id = id;
  if (auto json = ctx_.directory->read(type, id)) {
    if (auto parsed = parse_resource(*json)) t.stored = std::move(*parsed);
  }
  return t;
}

PatientInfo Ingestor::resolve_patient(const Reference& ref, Entry& e, bool strict) {
  PatientInfo p;
  const auto& where = ref.expression;
  auto target = resolve(ref);
  if (const auto* res = target.resource()) {
    if (res->type != "Patient") {
      e.issues.push_back(Issue::warning(
          IssueType::kProcessing, where,
          "the subject is not a Patient: the resource is stored, but no event names a patient"));
      return p;
    }
    p.patient = std::get<Patient>(res->resource);
    if (!p.patient->record_number.empty()) {
      p.authority = p.patient->record_number.system;
      p.identifier = p.patient->record_number.value;
    } else {
      // A Patient with no identifier: linked through the id the gateway gave it.
      p.authority = "urn:sdoh-gateway:fhir:" + ctx_.sender + ":Patient";
      p.identifier = target.id;
      e.issues.push_back(Issue::warning(IssueType::kProcessing, where,
                                        "the Patient has no identifier: its events link only "
                                        "through this gateway's Patient id"));
    }
    p.state = PatientInfo::State::kResolved;
    return p;
  }
  if (!ref.identifier.empty()) {
    p.authority = ref.identifier.system;
    p.identifier = ref.identifier.value;
    p.state = PatientInfo::State::kResolved;
    return p;
  }
  if (ref.reference.empty()) return p;
  if (ref.reference.starts_with("urn:")) {
    e.issues.push_back(Issue::error(IssueType::kNotFound, where + ".reference",
                                    "the reference names no entry of this Bundle (fullUrl)"));
    p.state = PatientInfo::State::kError;
    return p;
  }
  if (!target.type.empty() && target.type != "Patient") {
    e.issues.push_back(Issue::warning(
        IssueType::kProcessing, where,
        "the subject is not a Patient: the resource is stored, but no event names a patient"));
    return p;
  }
  if (strict && ctx_.unknown_patient == UnknownPatientPolicy::kReject) {
    e.issues.push_back(Issue::error(
        IssueType::kNotFound, where + ".reference",
        "the Patient is not known to this gateway: post it first, in the same Bundle, or "
        "reference it by identifier"));
    p.state = PatientInfo::State::kError;
    return p;
  }
  p.authority = "urn:sdoh-gateway:fhir-reference:" + ctx_.sender;
  p.identifier = ref.reference;
  p.state = PatientInfo::State::kResolved;
  e.issues.push_back(Issue::warning(
      IssueType::kNotFound, where + ".reference",
      "the Patient is not known to this gateway: the pseudonym is derived from the reference, "
      "so these events do not link with other sources about the same patient; post the Patient "
      "first or reference it by identifier"));
  return p;
}

std::string Ingestor::performed(const std::string& time, const std::string& expression,
                                Entry& e) const {
  if (full_date_or_date_time(time)) return time;
  e.issues.push_back(Issue::warning(
      IssueType::kValue, expression,
      time.empty() ? "no time given: the screening is dated when the gateway received it"
                   : "a partial date: the screening is dated when the gateway received it"));
  return request_.received_at;
}

mapping::NormalizedScreening Ingestor::screening_base(const PatientInfo& p, Entry& e,
                                                      const std::string& message_id) const {
  mapping::NormalizedScreening s;
  s.protocol = "fhir";
  s.sender = ctx_.sender;
  s.message_id = message_id;
  s.resource_type = e.type();
  s.facility = facility();
  s.patient_authority = p.authority;
  s.patient_identifier = p.identifier;
  if (p.patient) {
    s.birth_date = p.patient->birth_date.size() == 10 ? p.patient->birth_date : std::string();
    s.race = p.patient->race;
    s.ethnicity = p.patient->ethnicity;
    s.language = p.patient->language;
    s.postal_code = p.patient->postal_code;
  }
  return s;
}

void Ingestor::emit_screening(Entry& e, const mapping::NormalizedScreening& s,
                              const Reference& subject, const PatientInfo& patient) {
  auto mapped = ctx_.mapper->map(s);
  if (!mapped) {
    e.issues.push_back(
        Issue::warning(IssueType::kProcessing, e.root,
                       "not mappable to a screening event: " + mapped.error().message));
    return;
  }
  if (mapped->instrument_id == "unknown") {
    e.issues.push_back(Issue::warning(
        IssueType::kProcessing, e.root,
        "no mapping table knows this instrument or its questions: the answers are published as "
        "unmapped, with no domain results"));
  } else if (mapped->unmapped_items > 0) {
    e.issues.push_back(Issue::information(
        e.root, std::to_string(mapped->unmapped_items) +
                    " answered item(s) are not in the mapping table: published as unmapped"));
  }
  e.events.push_back(event(events::EventType::kScreening, "fhir|" + ctx_.sender + "|" + key_,
                           screening_position_++, mapped->screening_id, ctx_.topics.screening,
                           mapped->patient_pseudonym, std::move(mapped->data)));
  // Help the family asked for opens a referral; not from answers still in progress.
  const bool settled = std::any_of(s.items.begin(), s.items.end(), [](const auto& i) {
    return i.status == mapping::ResultStatus::kFinal ||
           i.status == mapping::ResultStatus::kCorrected;
  });
  if (ctx_.refer_from_screening && settled) refer_from_screening(e, subject, patient, *mapped);
}

// The screening's message id: the resource's business identifier, else the id the client gave
// it, else its place in this request.
std::string message_id_of(const Identifier& identifier, const std::string& client_id,
                          const std::string& key, int index) {
  if (!identifier.empty()) return identifier.value.substr(0, 256);
  if (!client_id.empty()) return client_id;
  return index < 0 ? key : key + "#entry" + std::to_string(index);
}

void Ingestor::map_questionnaire_response(Entry& e) {
  const auto& q = std::get<QuestionnaireResponse>(e.parsed->resource);
  if (q.status == "entered-in-error") {
    e.issues.push_back(
        Issue::information(e.root + ".status", "entered in error: stored, nothing published"));
    return;
  }
  if (q.subject.empty()) {
    e.issues.push_back(Issue::warning(IssueType::kProcessing, e.root + ".subject",
                                      "no subject: stored, but no screening event is published"));
    return;
  }
  auto patient = resolve_patient(q.subject, e, true);
  if (patient.state != PatientInfo::State::kResolved) return;
  if (q.items.empty()) {
    e.issues.push_back(Issue::warning(IssueType::kProcessing, e.root + ".item",
                                      "no answered items: stored, no screening event"));
    return;
  }
  auto s = screening_base(patient, e, message_id_of(q.identifier, q.id, key_, e.index));
  s.questionnaire = q.questionnaire;
  s.performed = performed(q.authored, e.root + ".authored", e);
  const auto status = q.status == "amended" ? mapping::ResultStatus::kCorrected
                      : q.status == "in-progress" || q.status == "stopped"
                          ? mapping::ResultStatus::kPreliminary
                          : mapping::ResultStatus::kFinal;
  for (const auto& item : q.items) {
    mapping::ItemResponse r;
    if (item.code) r.question = *item.code;
    r.link_id = item.link_id;
    r.answers = item.answers;
    r.status = status;
    s.items.push_back(std::move(r));
  }
  emit_screening(e, s, q.subject, patient);
}

void Ingestor::map_observation(Entry& e) {
  const auto& o = std::get<Observation>(e.parsed->resource);
  if (grouped_members_.contains(&e)) {
    e.issues.push_back(Issue::information(
        e.root, "published as an item of its grouping Observation in this Bundle"));
    return;
  }
  if (derived_from_qr_.contains(&e)) {
    e.issues.push_back(Issue::information(
        e.root, "derived from a QuestionnaireResponse in this Bundle, which is published"));
    return;
  }
  if (o.status == "entered-in-error") {
    e.issues.push_back(
        Issue::information(e.root + ".status", "entered in error: stored, nothing published"));
    return;
  }
  if (o.subject.empty()) {
    e.issues.push_back(Issue::warning(IssueType::kProcessing, e.root + ".subject",
                                      "no subject: stored, but no screening event is published"));
    return;
  }
  auto patient = resolve_patient(o.subject, e, true);
  if (patient.state != PatientInfo::State::kResolved) return;
  auto s =
      screening_base(patient, e,
                     message_id_of(o.identifiers.empty() ? Identifier{} : o.identifiers.front(),
                                   o.id, key_, e.index));
  s.performed = performed(o.effective, e.root + ".effective[x]", e);

  auto item_of = [](const Observation& member) {
    mapping::ItemResponse r;
    if (auto q = member.question()) r.question = *q;
    if (member.value) r.answers.push_back(*member.value);
    r.status = observation_status(member.status);
    return r;
  };
  if (!o.has_member.empty()) {
    // A grouping Observation: the panel is its code; each member is one question and answer.
    s.panel = o.question();
    for (const auto& ref : o.has_member) {
      auto target = resolve(ref);
      const auto* res = target.resource();
      if (res == nullptr || res->type != "Observation") {
        e.issues.push_back(Issue::warning(
            IssueType::kNotFound, ref.expression,
            "the member is not an Observation of this Bundle or one received before: its answer "
            "is not in the screening event"));
        continue;
      }
      auto item = item_of(std::get<Observation>(res->resource));
      if (!item.answers.empty()) s.items.push_back(std::move(item));
    }
  } else if (o.value) {
    s.items.push_back(item_of(o));
  }
  if (s.items.empty()) {
    e.issues.push_back(Issue::warning(IssueType::kProcessing, e.root,
                                      "no answer (value[x] or answered members): stored, no "
                                      "screening event"));
    return;
  }
  emit_screening(e, s, o.subject, patient);
}

void Ingestor::map_consent(Entry& e) {
  const auto& c = std::get<Consent>(e.parsed->resource);
  ConsentValue v;
  v.consent_id = e.final_id();
  v.consent = consent_decision(c, "", request_.received_at);
  v.recipients = consent_recipients(c);
  if (!c.patient.empty()) {
    auto p = resolve_patient(c.patient, e, false);
    if (p.state == PatientInfo::State::kResolved) v.patient_pseudonym = pseudonym(p);
  }
  e.consents.push_back(std::move(v));
}

void Ingestor::map_patient(Entry& e) {
  const auto& p = std::get<Patient>(e.parsed->resource);
  PatientInfo info;
  if (!p.record_number.empty()) {
    info.authority = p.record_number.system;
    info.identifier = p.record_number.value;
  } else {
    info.authority = "urn:sdoh-gateway:fhir:" + ctx_.sender + ":Patient";
    info.identifier = e.final_id();
  }
  e.patient_pseudonym = pseudonym(info);
}

// A referral no agency can take (none named, no route): kept as a Task (requested, businessStatus
// no-route), announced by its first status event (agency null), counted and listed for ops.
std::optional<Ingestor::Opened> Ingestor::hold_unrouted(Entry& e,
                                                        const mapping::NormalizedReferral& r,
                                                        const std::string& sr_id,
                                                        const std::string& where) {
  if (r.category.empty() || r.clinic_number_value.empty()) {
    e.issues.push_back(Issue::warning(
        IssueType::kProcessing, where,
        "no agency (Task.owner or ServiceRequest.performer naming an Organization) and no SDOH "
        "category to route by: stored, no referral published"));
    return std::nullopt;
  }
  const auto rid = ctx_.mapper->referral_id(r.clinic_number_system, r.clinic_number_value);
  auto held = Issue::error(IssueType::kProcessing, where,
                           "no route for the need " + r.category +
                               " in the family's area and age band: the referral is held");
  if (ctx_.directory != nullptr && ctx_.directory->read("Task", rid)) {
    auto state = ctx_.find_referral ? ctx_.find_referral(rid) : std::nullopt;
    if (state && state->status == "requested" && state->business_status == mapping::kNoRoute)
      held_.push_back(std::move(held));  // still without a route
    return Opened{rid, true, "", false};
  }
  held_.push_back(std::move(held));
  referral::Referral unrouted;
  unrouted.id = rid;
  unrouted.category = r.category;
  unrouted.stored.clinic_number_system = r.clinic_number_system;
  unrouted.stored.clinic_number_value = r.clinic_number_value;
  unrouted.stored.race = r.race;
  unrouted.stored.ethnicity = r.ethnicity;
  unrouted.stored.language = r.language;
  unrouted.stored.patient =
      ctx_.mapper->pseudonymizer().pseudonym(r.patient_authority, r.patient_identifier);
  const auto opened =
      service_.open(std::move(unrouted), r.consent.status == mapping::ConsentStatus::kActive,
                    {mapping::Actor::kClinic, clinic_of(r)}, request_.received_at);
  add_change(e, opened, sr_id, r.consent.status, false);
  e.issues.push_back(Issue::warning(
      IssueType::kProcessing, where,
      "no agency named and no route for the need " + r.category +
          " and this area: the referral is held (businessStatus no-route) until ops route it; "
          "the clinic sees it on the Task"));
  return Opened{rid, false, std::string(mapping::kNoRoute), false};
}

// The patient's part of a referral: identity (hashed), age, area, contact details (sent only with
// consent) and equity fields.
void Ingestor::fill_patient(mapping::NormalizedReferral& r, const PatientInfo& patient) const {
  r.patient_authority = patient.authority;
  r.patient_identifier = patient.identifier;
  if (!patient.patient) return;
  const auto& p = *patient.patient;
  r.birth_date = p.birth_date.size() == 10 ? p.birth_date : "";
  r.postal_code = p.postal_code;
  r.contact = p.contact;
  if (!p.race.empty()) r.race = p.race.front().code;
  if (!p.ethnicity.empty()) r.ethnicity = p.ethnicity.front().code;
  if (p.language) r.language = p.language->code;
}

// Routing by need, area and the child's age, for a referral that names no agency: false when no
// route is found.
bool Ingestor::route_referral(mapping::NormalizedReferral& r) const {
  if (!ctx_.route || r.category.empty()) return false;
  const auto keys = mapping::routing_keys(r, request_.received_at);
  auto found = ctx_.route(r.category, keys.zip3, keys.county_fips, keys.age_months);
  if (!found) return false;
  r.agency_id = found->first;
  r.agency_name = found->second;
  return true;
}

// The consent for a referral: `consents` (those the ServiceRequest cites) and the Consents in
// this request for the same patient; the latest by dateTime decides.
void Ingestor::decide_consent(mapping::NormalizedReferral& r, const PatientInfo& patient,
                              std::vector<Consent> consents) {
  for (auto& other : entries_) {
    if (!other.parsed || other.failed() || other.type() != "Consent") continue;
    const auto& c = std::get<Consent>(other.parsed->resource);
    Entry scratch;  // issues about the Consent's own patient belong to the Consent entry
    auto p = resolve_patient(c.patient, scratch, false);
    if (p.state == PatientInfo::State::kResolved && p.key() == patient.key()) consents.push_back(c);
  }
  std::stable_sort(consents.begin(), consents.end(),
                   [](const Consent& a, const Consent& b) { return a.date_time < b.date_time; });
  if (!consents.empty()) r.consent = consent_decision(consents.back(), r.agency_id, r.authored_on);
}

// A referral to its agency: the org.sdoh.referral.v1 event on the agency's topic and its first
// status event (requested). nullopt when it cannot be mapped (an error on the entry when
// `required`, else a warning).
std::optional<Ingestor::Opened> Ingestor::open_referral(Entry& e, mapping::NormalizedReferral& r,
                                                        const std::string& sr_id,
                                                        const std::string& category_where,
                                                        bool required) {
  if (ctx_.agency_topic) r.agency_topic = ctx_.agency_topic(r.agency_id);
  if (r.agency_topic.empty()) r.agency_topic = ctx_.topics.referral;
  mapping::ReferralMapper mapper(*ctx_.mapper);
  auto mapped = mapper.map(r);
  if (!mapped) {
    const auto& x = mapped.error().where.expression;
    const auto where = x == "category" || x == "evidence" ? category_where : e.root;
    if (required) {
      e.issues.push_back(Issue::error(IssueType::kBusinessRule, where, mapped.error().message));
    } else {
      e.issues.push_back(
          Issue::warning(IssueType::kProcessing, where, "no referral: " + mapped.error().message));
    }
    return std::nullopt;
  }
  const auto rid = mapped->referral_id;
  if (auto task = ctx_.directory != nullptr ? ctx_.directory->read("Task", rid) : std::nullopt) {
    auto state = ctx_.find_referral ? ctx_.find_referral(rid) : std::nullopt;
    if (!state || state->status != "requested" || state->business_status != mapping::kNoRoute)
      return Opened{rid, true, "", false};
    // A referral held for no route that a route now finds an agency for (the clinic sent it
    // again, or an operator replayed it after adding the route): released to that agency.
    auto current = referral::Referral::from(*state);
    if (!current) return Opened{rid, true, "", false};
    const pipeline::ResourceRow row{"Task", rid, stored_version(*task), "", *task, ctx_.sender};
    auto routed =
        service_.route(*current, &row, r.agency_id, r.agency_name,
                       r.consent.status == mapping::ConsentStatus::kActive, request_.received_at);
    if (!routed) return Opened{rid, true, "", false};
    e.events.push_back(service_.referral_event(rid, routed->after.sequence, r.agency_topic,
                                               std::move(mapped->data), request_.received_at));
    add_change(e, *routed, sr_id, r.consent.status, mapped->contact_included);
    e.issues.push_back(Issue::information(
        e.root, "referral Task/" + rid + " was held for no route: now routed to " + r.agency_id));
    return Opened{rid, true, routed->after.business_status, true};
  }

  referral::Referral made;
  made.id = rid;
  made.agency_id = r.agency_id;
  made.category = mapped->category;
  made.stored.clinic_number_system = r.clinic_number_system;
  made.stored.clinic_number_value = r.clinic_number_value;
  made.stored.race = r.race;
  made.stored.ethnicity = r.ethnicity;
  made.stored.language = r.language;
  made.stored.patient = mapped->patient_pseudonym;
  const auto opened =
      service_.open(std::move(made), r.consent.status == mapping::ConsentStatus::kActive,
                    {mapping::Actor::kClinic, clinic_of(r)}, request_.received_at);
  e.events.push_back(service_.referral_event(rid, 1, r.agency_topic, std::move(mapped->data),
                                             request_.received_at));
  add_change(e, opened, sr_id, r.consent.status, mapped->contact_included);
  return Opened{rid, false, opened.after.business_status, false};
}

// The referral a Task and its ServiceRequest describe: number, need, service, agency (empty:
// to be routed), requester, time. The patient, routing and consent are the caller's. false:
// refused, with an error on `e`.
bool Ingestor::referral_of(const Task& t, const ServiceRequest& sr, const std::string& sr_id,
                           const std::string& sr_root, Entry& e, mapping::NormalizedReferral& r) {
  r.protocol = "fhir";
  r.sender = ctx_.sender;
  r.message_id = key_;
  if (!sr.identifiers.empty() && !sr.identifiers.front().empty()) {
    r.clinic_number_system = sr.identifiers.front().system;
    r.clinic_number_value = sr.identifiers.front().value;
  } else if (!t.identifiers.empty() && !t.identifiers.front().empty()) {
    r.clinic_number_system = t.identifiers.front().system;
    r.clinic_number_value = t.identifiers.front().value;
  } else {
    r.clinic_number_system = "urn:sdoh-gateway:fhir:" + ctx_.sender + ":ServiceRequest";
    r.clinic_number_value = sr_id;
    e.issues.push_back(Issue::warning(
        IssueType::kRequired, sr_root + ".identifier",
        "the ServiceRequest has no identifier: the referral is numbered by this gateway's "
        "ServiceRequest id"));
  }
  // The need: the SDOHCC category of the ServiceRequest.
  std::vector<std::string> needs;
  for (const auto& c : sr.categories) {
    if (c.system == kSdohccCategorySystem &&
        std::find(needs.begin(), needs.end(), c.code) == needs.end())
      needs.push_back(c.code);
  }
  if (needs.size() > 1) {
    e.issues.push_back(Issue::error(IssueType::kBusinessRule, sr_root + ".category",
                                    "the ServiceRequest names more than one SDOH category; send "
                                    "one referral per need"));
    return false;
  }
  if (!needs.empty()) r.category = needs.front();
  // Answers the ServiceRequest cites as its reason, when it names no category.
  for (const auto& ref : sr.reason_reference) {
    auto target = resolve(ref);
    const auto* res = target.resource();
    if (res == nullptr || res->type != "QuestionnaireResponse") continue;
    const auto& q = std::get<QuestionnaireResponse>(res->resource);
    mapping::NormalizedScreening s;
    s.protocol = "fhir";
    s.sender = ctx_.sender;
    s.message_id = key_;
    s.questionnaire = q.questionnaire;
    for (const auto& item : q.items) {
      mapping::ItemResponse ir;
      if (item.code) ir.question = *item.code;
      ir.link_id = item.link_id;
      ir.answers = item.answers;
      s.items.push_back(std::move(ir));
    }
    r.evidence.push_back(std::move(s));
  }
  if (sr.code) r.service = sr.code;
  r.priority = !t.priority.empty() ? t.priority : !sr.priority.empty() ? sr.priority : "routine";

  Reference agency = t.owner;
  if (agency.empty() && !sr.performer.empty()) agency = sr.performer.front();
  r.agency_id = agency_id_of(agency);
  r.agency_name = agency.display;
  const auto& requester = !t.requester.empty() ? t.requester : sr.requester;
  if (!requester.identifier.empty()) {
    r.requester_id = requester.identifier.value;
    r.requester_system = requester.identifier.system;
  } else {
    r.requester_id = requester.reference;
  }
  r.requester_display = requester.display;
  r.facility = facility();
  if (r.requester_id.empty()) r.requester_id = r.facility.code;
  const auto& authored = !t.authored_on.empty() ? t.authored_on : sr.authored_on;
  r.authored_on = performed(authored, e.root + ".authoredOn", e);

  return true;
}

void Ingestor::map_task(Entry& e) {
  const auto& t = std::get<Task>(e.parsed->resource);
  const bool fulfill = t.code && t.code->code == "fulfill";
  if (!fulfill || t.focus.empty()) {
    e.issues.push_back(Issue::warning(
        IssueType::kProcessing, e.root,
        "not an SDOHCC referral Task (code fulfill with a focus ServiceRequest): stored, no "
        "referral published"));
    return;
  }
  if (t.status == "draft") {
    e.issues.push_back(Issue::information(
        e.root + ".status", "a draft referral: stored; published once the Task is requested"));
    return;
  }
  if (t.status != "requested") {
    e.issues.push_back(Issue::error(
        IssueType::kBusinessRule, e.root + ".status",
        "a new referral Task starts as requested; the agency changes its status with PUT or "
        "PATCH /fhir/Task/{id}"));
    return;
  }
  auto focus = resolve(t.focus);
  const auto* sr_res = focus.resource();
  if (sr_res == nullptr || sr_res->type != "ServiceRequest") {
    e.issues.push_back(Issue::error(
        IssueType::kNotFound, t.focus.expression + ".reference",
        "Task.focus must resolve to a ServiceRequest in this Bundle or one received before"));
    return;
  }
  if (focus.entry != nullptr) focus_of_task_.insert(focus.entry);
  const auto& sr = std::get<ServiceRequest>(sr_res->resource);
  const auto sr_root = focus.entry != nullptr ? focus.entry->root : std::string("ServiceRequest");
  const auto sr_id = focus.entry != nullptr ? focus.entry->final_id() : focus.id;

  mapping::NormalizedReferral r;
  if (!referral_of(t, sr, sr_id, sr_root, e, r)) return;
  const bool routed = r.agency_id.empty();  // routing chooses the agency (below)

  const Reference& subject = !t.for_.empty() ? t.for_ : sr.subject;
  auto patient = resolve_patient(subject, e, true);
  if (patient.state == PatientInfo::State::kError) return;
  if (patient.state != PatientInfo::State::kResolved) {
    e.issues.push_back(Issue::warning(IssueType::kProcessing, e.root + ".for",
                                      "no patient: stored, no referral published"));
    return;
  }
  fill_patient(r, patient);
  if (routed) {
    // No agency named: routing by need, area and the child's age; none found: held.
    if (!route_referral(r)) {
      if (auto held = hold_unrouted(e, r, sr_id, e.root + ".owner")) {
        (held->existing ? e.existing_id : e.id) = held->referral_id;
        e.business_status = held->business_status;
      }
      return;
    }
    e.routed_owner = r.agency_id;
    e.routed_owner_name = r.agency_name;
    e.issues.push_back(Issue::information(
        e.root + ".owner", "no agency named: routed to " + r.agency_id + " by need and area"));
  }

  std::vector<Consent> cited;
  for (const auto& ref : sr.supporting_info) {
    auto target = resolve(ref);
    if (const auto* res = target.resource(); res != nullptr && res->type == "Consent")
      cited.push_back(std::get<Consent>(res->resource));
  }
  decide_consent(r, patient, std::move(cited));
  r.note = sr.note;
  r.business_status =
      mapping::initial_state(true, r.consent.status == mapping::ConsentStatus::kActive)
          .business_status;

  auto opened = open_referral(e, r, sr_id, sr_root + ".category", true);
  if (!opened) return;
  if (opened->existing) {
    // The clinic sent this referral before (another request): nothing new is published, unless
    // it was held for no route and a route now finds its agency.
    e.existing_id = opened->referral_id;
    if (!opened->released) {
      e.issues.push_back(Issue::information(
          e.root,
          "this referral exists already: status changes go through PUT or PATCH /fhir/Task/{id}"));
    }
    return;
  }
  e.id = opened->referral_id;  // the Task's id is the referralId (DESIGN.md)
  if (opened->business_status == mapping::kAwaitingConsent) {
    e.business_status = opened->business_status;
    e.issues.push_back(Issue::information(
        e.root + ".businessStatus",
        "no active consent to share the family's contact details with the agency: the referral "
        "is sent without them and waits (businessStatus awaiting-consent) until a Consent "
        "arrives"));
  }
}

// A change the referral service decided, added to `e`: its status event, the referral's next
// state (locked to the sequence it was decided from) and the Task's next version, if any.
void Ingestor::add_change(Entry& e, const referral::Change& change, const std::string& sr_id,
                          mapping::ConsentStatus consent, bool contact_included) {
  if (change.unchanged) return;
  e.events.push_back(service_.status_event(change.transition, request_.received_at));
  const auto& after = change.after;
  const auto& st = after.stored;
  e.referrals.push_back({after.id, st.clinic_number_system, st.clinic_number_value, sr_id,
                         after.agency_id, after.category, after.business_status, consent,
                         contact_included, st.race, st.ethnicity, st.language, after.sequence,
                         st.patient, change.before.sequence});
  if (!change.task) return;
  StoredResource next;
  next.type = "Task";
  next.id = change.task->id;
  next.version_id = std::to_string(change.task->version);
  next.last_updated = change.task->last_updated;
  next.json = change.task->json;
  for (const auto& [system, value] : change.task->identifiers)
    next.identifiers.push_back({system, value});
  made_.push_back(std::move(next));
}

// What a Consent changes for the patient's referrals from this sender that no agency has
// answered yet (requested): a Consent that lets a waiting referral's agency (awaiting-consent)
// have the family's contact details releases it — the referral event again, now with consent and
// contact details, and the gateway's status event (awaiting-consent → none), from which the
// agency's SLA runs; a revoked Consent (inactive) puts a referral waiting for its agency back on
// hold (none → awaiting-consent; the SLA stops). Either way the Task gets its next version.
void Ingestor::apply_consent(Entry& e) {
  if (ctx_.directory == nullptr || !ctx_.find_referral) return;
  const auto& c = std::get<Consent>(e.parsed->resource);
  const auto target = resolve(c.patient);
  if (target.type != "Patient" || target.id.empty()) return;
  Entry scratch;  // the Consent's own patient problems were reported by map_consent
  const auto patient = resolve_patient(c.patient, scratch, false);
  if (patient.state != PatientInfo::State::kResolved) return;
  const bool revoked =
      consent_decision(c, "", request_.received_at).status == mapping::ConsentStatus::kRevoked;
  std::vector<std::pair<std::string, std::string>> query{{"patient", "Patient/" + target.id},
                                                         {"_sender", ctx_.sender}};
  if (revoked) {
    query.emplace_back("status", "requested");
  } else {
    query.emplace_back("business-status", std::string(mapping::kAwaitingConsent));
  }
  for (const auto& task_id : ctx_.directory->search("Task", query)) {
    const auto state = ctx_.find_referral(task_id);
    if (!state) continue;
    const auto current = referral::Referral::from(*state);
    const auto task_json = ctx_.directory->read("Task", task_id);
    if (!current || !task_json) continue;
    auto parsed = parse_resource(*task_json);
    if (!parsed || parsed->type != "Task") continue;
    const auto& t = std::get<Task>(parsed->resource);
    const pipeline::ResourceRow row{"Task", task_id,    stored_version(*task_json),
                                    "",     *task_json, ctx_.sender};
    // The referral service decides: release (awaiting-consent → none) or hold (none →
    // awaiting-consent), by the gateway; anything else is left as it is.
    auto change = service_.consent(*current, &row, !revoked, request_.received_at);
    if (!change) continue;
    auto consent = revoked ? mapping::ConsentStatus::kRevoked : mapping::ConsentStatus::kActive;
    std::string service_request_id;
    bool contact_included = false;
    if (!revoked) {
      // The referral as it was sent, now with the consent and the family's contact details.
      const auto focus = resolve(t.focus);
      const auto* sr_res = focus.resource();
      if (sr_res == nullptr || sr_res->type != "ServiceRequest") continue;
      const auto& sr = std::get<ServiceRequest>(sr_res->resource);
      Entry quiet;  // the referral's own warnings were given when it came
      quiet.root = "Task";
      mapping::NormalizedReferral r;
      if (!referral_of(t, sr, focus.id, "ServiceRequest", quiet, r)) continue;
      r.agency_id = state->agency_id;
      fill_patient(r, patient);
      r.consent = consent_decision(c, r.agency_id, request_.received_at);
      if (r.consent.status != mapping::ConsentStatus::kActive) continue;
      r.note = sr.note;
      if (ctx_.agency_topic) r.agency_topic = ctx_.agency_topic(r.agency_id);
      if (r.agency_topic.empty()) r.agency_topic = ctx_.topics.referral;
      mapping::ReferralMapper mapper(*ctx_.mapper);
      auto mapped = mapper.map(r);
      if (!mapped || mapped->referral_id != task_id) continue;
      service_request_id = focus.id;
      contact_included = mapped->contact_included;
      e.events.push_back(service_.referral_event(task_id, change->after.sequence, r.agency_topic,
                                                 std::move(mapped->data), request_.received_at));
    }
    add_change(e, *change, service_request_id, consent, contact_included);
    e.issues.push_back(Issue::information(
        e.root, revoked ? "the consent is revoked: referral Task/" + task_id +
                              " waits for consent again (its agency should no longer use the "
                              "family's contact details)"
                        : "the consent releases referral Task/" + task_id + " to " +
                              state->agency_id + ": sent again with the family's contact details"));
  }
}

// Whether this request has the clinic's own ServiceRequest for `category` and this patient.
bool Ingestor::clinic_refers(const PatientInfo& patient, std::string_view category) {
  for (auto& other : entries_) {
    if (!other.parsed || other.failed() || other.type() != "ServiceRequest") continue;
    const auto& sr = std::get<ServiceRequest>(other.parsed->resource);
    const bool same_need = std::any_of(sr.categories.begin(), sr.categories.end(), [&](auto& c) {
      return c.system == kSdohccCategorySystem && c.code == category;
    });
    if (!same_need) continue;
    Entry scratch;
    auto p = resolve_patient(sr.subject, scratch, false);
    if (p.state == PatientInfo::State::kResolved && p.key() == patient.key()) return true;
  }
  return false;
}

// Referrals the family asked for in this screening: one per need with assistanceRequested true,
// routed (or held), with this request's consent; the gateway makes their ServiceRequest and Task.
void Ingestor::refer_from_screening(Entry& e, const Reference& subject, const PatientInfo& patient,
                                    const mapping::MappedScreening& m) {
  for (const auto& d : m.domains) {
    if (d.assistance_requested != true) continue;
    if (clinic_refers(patient, d.category)) {
      e.issues.push_back(Issue::information(
          e.root, "the family asked for help with " + d.category +
                      ": the clinic's ServiceRequest in this request is its referral"));
      continue;
    }
    if (ctx_.open_referral_for) {
      // One open referral per child and need: a later screening asking again adds none.
      if (auto open = ctx_.open_referral_for(m.patient_pseudonym, d.category);
          open && *open != ctx_.mapper->referral_id(kScreeningReferralSystem,
                                                    m.screening_id + ":" + d.category)) {
        e.issues.push_back(Issue::information(e.root, "the family asked for help with " +
                                                          d.category + ": referral Task/" + *open +
                                                          " for it is still open"));
        continue;
      }
    }
    mapping::NormalizedReferral r;
    r.protocol = "fhir";
    r.sender = ctx_.sender;
    r.message_id = key_;
    r.clinic_number_system = std::string(kScreeningReferralSystem);
    r.clinic_number_value = m.screening_id + ":" + d.category;
    r.category = d.category;
    r.facility = facility();
    r.requester_id = r.facility.code;
    r.requester_display = r.facility.display;
    r.authored_on = request_.received_at;
    fill_patient(r, patient);
    const auto rid = ctx_.mapper->referral_id(r.clinic_number_system, r.clinic_number_value);
    std::optional<Opened> opened;
    if (route_referral(r)) {
      decide_consent(r, patient, {});
      if (r.consent.status != mapping::ConsentStatus::kActive)
        r.business_status = std::string(mapping::kAwaitingConsent);
      opened = open_referral(e, r, rid, e.root, false);
    } else {
      opened = hold_unrouted(e, r, rid, e.root);
    }
    if (!opened || opened->existing) continue;
    make_referral_resources(e, subject, r, *opened);
    e.issues.push_back(Issue::information(
        e.root,
        "the family asked for help with " + d.category + ": referral Task/" + rid +
            (r.agency_id.empty() ? std::string(" is held (no-route)") : " sent to " + r.agency_id) +
            (opened->business_status == mapping::kAwaitingConsent
                 ? ", without contact details until the family's consent arrives"
                 : "")));
  }
}

// The ServiceRequest and Task (SDOHCC TaskForReferralManagement) of a referral the gateway
// opened from a screening: ids the referralId, the screening as the reason, the agency as owner.
void Ingestor::make_referral_resources(const Entry& screening, const Reference& subject,
                                       const mapping::NormalizedReferral& r, const Opened& opened) {
  const auto target = resolve(subject);
  const auto patient_ref =
      target.type == "Patient" && !target.id.empty() ? "Patient/" + target.id : std::string();
  const auto reason = screening.type() + "/" + screening.final_id();
  auto write = [&](const std::string& type) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    auto str = [&w](std::string_view v) {
      w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    };
    auto reference = [&](const char* key, std::string_view ref, std::string_view display) {
      w.Key(key);
      w.StartObject();
      w.Key("reference");
      str(ref);
      if (!display.empty()) {
        w.Key("display");
        str(display);
      }
      w.EndObject();
    };
    w.StartObject();
    w.Key("resourceType");
    str(type);
    w.Key("id");
    str(opened.referral_id);
    w.Key("meta");
    w.StartObject();
    w.Key("versionId");
    w.String("1");
    w.Key("lastUpdated");
    str(request_.received_at);
    w.Key("profile");
    w.StartArray();
    str(type == "Task" ? "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
                         "SDOHCC-TaskForReferralManagement"
                       : "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
                         "SDOHCC-ServiceRequest");
    w.EndArray();
    w.EndObject();
    w.Key("identifier");
    w.StartArray();
    w.StartObject();
    w.Key("system");
    str(r.clinic_number_system);
    w.Key("value");
    str(r.clinic_number_value);
    w.EndObject();
    w.EndArray();
    w.Key("status");
    str(type == "Task" ? "requested" : "active");
    w.Key("intent");
    w.String("order");
    w.Key("priority");
    w.String("routine");
    if (type == "Task") {
      w.Key("code");
      w.StartObject();
      w.Key("coding");
      w.StartArray();
      w.StartObject();
      w.Key("system");
      w.String("http://hl7.org/fhir/CodeSystem/task-code");
      w.Key("code");
      w.String("fulfill");
      w.EndObject();
      w.EndArray();
      w.EndObject();
      reference("focus", "ServiceRequest/" + opened.referral_id, "");
    } else {
      w.Key("category");
      w.StartArray();
      w.StartObject();
      w.Key("coding");
      w.StartArray();
      w.StartObject();
      w.Key("system");
      str(kSdohccCategorySystem);
      w.Key("code");
      str(r.category);
      w.EndObject();
      w.EndArray();
      w.EndObject();
      w.EndArray();
    }
    if (!patient_ref.empty()) {
      reference(type == "Task" ? "for" : "subject", patient_ref, "");
    }
    w.Key("authoredOn");
    str(r.authored_on);
    w.Key("requester");
    w.StartObject();
    w.Key("identifier");
    w.StartObject();
    w.Key("value");
    str(r.requester_id.empty() ? ctx_.sender : r.requester_id);
    w.EndObject();
    if (!r.requester_display.empty()) {
      w.Key("display");
      str(r.requester_display);
    }
    w.EndObject();
    if (!r.agency_id.empty()) {
      if (type == "Task") {
        reference("owner", "Organization/" + r.agency_id, r.agency_name);
      } else {
        w.Key("performer");
        w.StartArray();
        w.StartObject();
        w.Key("reference");
        str("Organization/" + r.agency_id);
        w.EndObject();
        w.EndArray();
      }
    }
    if (type == "ServiceRequest") {
      w.Key("reasonReference");
      w.StartArray();
      w.StartObject();
      w.Key("reference");
      str(reason);
      w.EndObject();
      w.EndArray();
    }
    w.EndObject();
    std::string json(buf.GetString(), buf.GetSize());
    if (type == "Task" && !opened.business_status.empty())
      json = referral::with_business_status(json, opened.business_status);
    StoredResource out;
    out.type = type;
    out.id = opened.referral_id;
    out.last_updated = request_.received_at;
    out.json = std::move(json);
    out.identifiers.push_back({r.clinic_number_system, r.clinic_number_value});
    made_.push_back(std::move(out));
  };
  write("ServiceRequest");
  write("Task");
}

void Ingestor::map_entry(Entry& e) {
  if (!e.parsed || e.failed()) return;
  if (!e.existing_id.empty()) {
    e.issues.push_back(
        Issue::information(e.root,
                           "a resource with this identifier exists already (conditional create): "
                           "nothing new is stored or published"));
    return;
  }
  const auto& type = e.type();
  if (type == "QuestionnaireResponse") {
    map_questionnaire_response(e);
  } else if (type == "Observation") {
    map_observation(e);
  } else if (type == "Task") {
    map_task(e);
  } else if (type == "Consent") {
    map_consent(e);
  } else if (type == "Patient") {
    map_patient(e);
  }
}

// Sets id and meta, and rewrites every Reference.reference that names an entry by its fullUrl
// (FHIR R4 transaction processing: urn:uuid references become Type/id).
void Ingestor::rewrite(Entry& e, const std::map<std::string, std::string>& refs) {
  auto& alloc = doc_.GetAllocator();
  auto walk = [&](auto& self, Json& v) -> void {
    if (v.IsObject()) {
      for (auto& m : v.GetObject()) {
        if (m.value.IsString() && std::string_view(m.name.GetString()) == "reference") {
          if (auto it = refs.find(std::string(detail::view(m.value))); it != refs.end())
            m.value.SetString(it->second.c_str(),
                              static_cast<rapidjson::SizeType>(it->second.size()), alloc);
        } else {
          self(self, m.value);
        }
      }
    } else if (v.IsArray()) {
      for (auto& x : v.GetArray())
        self(self, x);
    }
  };
  walk(walk, *e.json);
  auto& obj = *e.json;
  if (!e.routed_owner.empty()) {
    obj.RemoveMember("owner");
    Json owner(rapidjson::kObjectType);
    const auto ref = "Organization/" + e.routed_owner;
    owner.AddMember("reference", Json(ref.c_str(), alloc), alloc);
    if (!e.routed_owner_name.empty())
      owner.AddMember("display", Json(e.routed_owner_name.c_str(), alloc), alloc);
    obj.AddMember("owner", owner, alloc);
  }
  Json id;
  id.SetString(e.id.c_str(), static_cast<rapidjson::SizeType>(e.id.size()), alloc);
  if (obj.HasMember("id")) {
    obj["id"] = id;
  } else {
    obj.AddMember("id", id, alloc);
  }
  if (!obj.HasMember("meta") || !obj["meta"].IsObject()) {
    obj.RemoveMember("meta");
    obj.AddMember("meta", Json(rapidjson::kObjectType), alloc);
  }
  auto& meta = obj["meta"];
  meta.RemoveMember("versionId");
  meta.RemoveMember("lastUpdated");
  meta.AddMember("versionId", "1", alloc);
  Json updated;
  updated.SetString(request_.received_at.c_str(),
                    static_cast<rapidjson::SizeType>(request_.received_at.size()), alloc);
  meta.AddMember("lastUpdated", updated, alloc);
}

std::string Ingestor::response_bundle(const std::string& type) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto str = [&w](const char* k, std::string_view v) {
    w.Key(k);
    w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  };
  w.StartObject();
  str("resourceType", "Bundle");
  str("id", events::event_id("fhir-response|" + ctx_.sender + "|" + key_, 0));
  str("type", type == "transaction" ? "transaction-response" : "batch-response");
  w.Key("entry");
  w.StartArray();
  for (const auto& e : entries_) {
    w.StartObject();
    w.Key("response");
    w.StartObject();
    if (e.failed()) {
      str("status", status_line(http_status(classify(e.issues))));
    } else {
      str("status", status_line(e.existing_id.empty() ? 201 : 200));
      if (e.parsed) {
        const auto location = e.type() + "/" + e.final_id() + "/_history/1";
        str("location", location);
        str("etag", "W/\"1\"");
        if (e.existing_id.empty()) str("lastModified", request_.received_at);
      }
    }
    if (!e.issues.empty()) {
      w.Key("outcome");
      const auto outcome = operation_outcome_json(e.issues);
      w.RawValue(outcome.data(), outcome.size(), rapidjson::kObjectType);
    }
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

std::expected<FhirIngest, FhirRejection> Ingestor::run() {
  type_ = std::string(request_.resource_type);
  auto parsed = sdoh::json::parse(doc_, request_.body);
  if (!parsed || !doc_.IsObject()) {
    key_ = key_for(nullptr, type_, request_.body, request_.if_none_exist);
    return std::unexpected(reject(
        Problem::bad_request(IssueType::kStructure, "",
                             !parsed ? "the body is not valid JSON: " + parsed.error().message
                                     : std::string("the body is not a JSON object")),
        "parse"));
  }
  const auto* rt = Reader::get(doc_, "resourceType");
  const std::string body_type =
      rt != nullptr && rt->IsString() ? std::string(detail::view(*rt)) : "";
  if (type_.empty()) type_ = body_type.empty() ? "unknown" : body_type;
  key_ = key_for(&doc_, type_, request_.body, request_.if_none_exist);
  if (body_type.empty()) {
    return std::unexpected(reject(
        Problem::bad_request(IssueType::kRequired, "resourceType", "resourceType is required"),
        "parse"));
  }
  if (!request_.resource_type.empty() && body_type != request_.resource_type) {
    return std::unexpected(
        reject(Problem::bad_request(IssueType::kInvalid, "resourceType",
                                    "the body's resourceType is not the type in the URL"),
               "validate"));
  }
  if (request_.resource_type.empty() && body_type != "Bundle") {
    return std::unexpected(
        reject(Problem::bad_request(IssueType::kInvalid, "resourceType",
                                    "POST to the FHIR base takes a transaction or batch Bundle"),
               "validate"));
  }

  std::string bundle_type;
  if (body_type == "Bundle") {
    std::vector<Issue> issues;
    if (!read_bundle(doc_, issues) || has_error(issues))
      return std::unexpected(reject(Problem{classify(issues), std::move(issues)}, "validate"));
    bundle_type = std::string(detail::view(doc_["type"]));
  } else {
    Entry e;
    e.root = body_type;
    e.json = &doc_;
    e.if_none_exist = std::string(request_.if_none_exist);
    e.parsed = detail::read_resource(doc_, "", e.issues);
    entries_.push_back(std::move(e));
  }
  const bool transaction = bundle_type == "transaction";
  auto first_failure = [this]() -> Entry* {
    for (auto& e : entries_) {
      if (e.failed()) return &e;
    }
    return nullptr;
  };
  if (auto* failed = first_failure(); failed != nullptr && (transaction || bundle_type.empty()))
    return std::unexpected(reject(Problem{classify(failed->issues), failed->issues}, "validate"));

  assign_ids();
  // Which Observations others here already cover.
  for (auto& e : entries_) {
    if (!e.parsed || e.failed() || e.type() != "Observation") continue;
    const auto& o = std::get<Observation>(e.parsed->resource);
    for (const auto& ref : o.has_member) {
      if (auto t = resolve(ref); t.entry != nullptr) grouped_members_.insert(t.entry);
    }
    for (const auto& ref : o.derived_from) {
      auto t = resolve(ref);
      if (t.entry != nullptr && t.entry->type() == "QuestionnaireResponse")
        derived_from_qr_.insert(&e);
    }
  }
  // Patients and Consents first, so Tasks see them; then screenings; then referrals.
  for (const char* type :
       {"Patient", "Consent", "QuestionnaireResponse", "Observation", "ServiceRequest", "Task"}) {
    for (auto& e : entries_) {
      if (e.parsed && e.type() == type) map_entry(e);
    }
  }
  // Consents release the referrals that waited for them, or hold them again when revoked (after
  // this request's own referrals, which decide their consent themselves).
  for (auto& e : entries_) {
    if (e.parsed && !e.failed() && e.type() == "Consent" && e.existing_id.empty()) apply_consent(e);
  }
  for (auto& e : entries_) {
    if (e.parsed && !e.failed() && e.type() == "ServiceRequest" && !focus_of_task_.contains(&e) &&
        e.existing_id.empty()) {
      e.issues.push_back(Issue::information(
          e.root,
          "stored; its referral is published when a Task (code fulfill) with this "
          "ServiceRequest as focus arrives"));
    }
  }
  if (auto* failed = first_failure(); failed != nullptr && (transaction || bundle_type.empty()))
    return std::unexpected(reject(Problem{classify(failed->issues), failed->issues}, "map"));

  // fullUrl → Type/id, for rewriting references.
  std::map<std::string, std::string> refs;
  for (const auto& e : entries_) {
    if (e.parsed && !e.full_url.empty() && !e.failed())
      refs[e.full_url] = e.type() + "/" + e.final_id();
  }
  FhirIngest out;
  for (auto& e : entries_) {
    if (!e.parsed || e.failed()) continue;
    StoredResource s;
    s.type = e.type();
    s.id = e.final_id();
    s.last_updated = request_.received_at;
    s.created = e.existing_id.empty();
    std::visit(
        [&s](const auto& r) {
          using T = std::decay_t<decltype(r)>;
          if constexpr (std::is_same_v<T, QuestionnaireResponse>) {
            if (!r.identifier.empty()) s.identifiers.push_back(r.identifier);
          } else {
            s.identifiers = r.identifiers;
          }
        },
        e.parsed->resource);
    if (s.created) {
      rewrite(e, refs);
      rapidjson::StringBuffer buf;
      rapidjson::Writer<rapidjson::StringBuffer> w(buf);
      e.json->Accept(w);
      s.json.assign(buf.GetString(), buf.GetSize());
      if (!e.business_status.empty())
        s.json = referral::with_business_status(s.json, e.business_status);
    }
    for (auto& ev : e.events)
      out.commit.events.push_back(std::move(ev));
    for (auto& r : e.referrals)
      out.referrals.push_back(std::move(r));
    for (auto& c : e.consents)
      out.consents.push_back(std::move(c));
    if (!e.patient_pseudonym.empty()) out.patient_pseudonyms.push_back(e.patient_pseudonym);
    out.resources.push_back(std::move(s));
  }
  for (auto& made : made_)
    out.resources.push_back(std::move(made));

  if (bundle_type.empty()) {
    auto& e = entries_.front();
    const auto& s = out.resources.front();
    out.http_status = s.created ? 201 : 200;
    out.location = s.location();
    out.version_id = s.version_id;
    out.last_modified = request_.received_at;
    out.issues = e.issues;
    out.body = s.created ? s.json : std::string();
  } else {
    out.http_status = 200;
    out.body = response_bundle(bundle_type);
    for (const auto& e : entries_) {
      for (const auto& i : e.issues) {
        if (!i.is_error()) out.issues.push_back(i);
      }
    }
  }
  out.commit.inbound = {"fhir",
                        ctx_.sender,
                        key_,
                        type_,
                        std::to_string(out.http_status),
                        out.body.empty() ? out.outcome() : out.body,
                        std::string(request_.body)};
  // A batch with refused entries: the first refusal is dead-lettered beside the accepted ones.
  if (auto* failed = first_failure(); failed != nullptr) {
    auto rejection = reject(Problem{classify(failed->issues), failed->issues}, "validate");
    out.commit.dead_letter = std::move(rejection.commit.dead_letter);
    for (auto& ev : rejection.commit.events)
      out.commit.events.push_back(std::move(ev));
  } else if (!held_.empty()) {
    // A referral held for no route is also a dead letter (stage route): listed for operations,
    // and replayed once a route exists, which releases the referral to its agency.
    auto held = reject(Problem{FhirErrc::kUnprocessable, {held_.front()}}, "route");
    out.commit.dead_letter = std::move(held.commit.dead_letter);
    for (auto& ev : held.commit.events)
      out.commit.events.push_back(std::move(ev));
  }
  return out;
}

}  // namespace

pipeline::OutboxEvent outbox_event(events::EventType type, std::string event_id,
                                   std::string_view gateway_id, std::string time,
                                   std::string subject, std::string topic, std::string key,
                                   std::string data) {
  events::Event e;
  e.type = type;
  e.id = std::move(event_id);
  e.source = events::event_source(gateway_id);
  e.subject = std::move(subject);
  e.time = std::move(time);
  e.topic = std::move(topic);
  e.key = std::move(key);
  e.data = std::move(data);
  return {e.id, std::string(events::type_name(e.type)), e.topic, e.key, e.envelope()};
}

FhirRejection rejection(Problem problem, std::string_view stage, const IngestContext& context,
                        std::string_view key, std::string_view message_type, std::string_view body,
                        std::string_view received_at, std::string_view protocol) {
  // The errors first: clients and people read the first issue.
  std::stable_partition(problem.issues.begin(), problem.issues.end(),
                        [](const Issue& i) { return i.is_error(); });
  const auto& first = problem.first_error();
  const std::string k(key);
  events::DeadLetter dl;
  const std::string proto(protocol);
  dl.dead_letter_id = events::event_id("deadletter|" + proto + "|" + context.sender + "|" + k, 0);
  dl.received_at = std::string(received_at);
  dl.protocol = proto;
  dl.sender = context.sender;
  dl.message_id = k;
  dl.message_type = std::string(message_type);
  dl.stage = std::string(stage);
  dl.code = std::string(to_string(first.code));
  dl.text = first.diagnostics;
  dl.where.expression = first.expression;
  FhirRejection out;
  out.commit.events.push_back(
      outbox_event(events::EventType::kDeadLetter,
                   events::event_id(proto + "|" + context.sender + "|" + k + "|deadletter", 0),
                   context.gateway_id, std::string(received_at), dl.dead_letter_id,
                   context.topics.deadletter, k, events::dead_letter_data(dl)));
  out.commit.dead_letter = pipeline::DeadLetterRecord{dl.dead_letter_id, std::string(stage),
                                                      dl.code, dl.text, first.expression};
  out.commit.inbound = {proto,
                        context.sender,
                        k,
                        std::string(message_type),
                        std::to_string(problem.http_status()),
                        problem.operation_outcome(),
                        std::string(body)};
  out.problem = std::move(problem);
  return out;
}

std::string dedupe_key(std::string_view resource_type, std::string_view body,
                       std::string_view if_none_exist) {
  rapidjson::Document doc;
  const bool parsed = sdoh::json::parse(doc, body).has_value();
  return key_for(parsed ? &doc : nullptr, resource_type, body, if_none_exist);
}

std::expected<FhirIngest, FhirRejection> ingest(const IngestRequest& request,
                                                const IngestContext& context) {
  if (context.mapper == nullptr) {
    FhirRejection r;
    r.problem = problem_from(Error::internal("the FHIR ingest has no mapping engine"));
    return std::unexpected(std::move(r));
  }
  Ingestor ingestor(request, context);
  return ingestor.run();
}

}  // namespace sdoh::fhir
