#include "adapters/fhir/ingest.hpp"

#include "adapters/fhir/ingestor.hpp"

namespace sdoh::fhir {
namespace ingest_detail {

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

// A new resource's id: 32 lowercase hex digits, the first 12 its creation time (the request's
// received_at, Unix ms) and the other 20 from the hash of the request's identity and the entry's
// place in it. New ids sort after older ones, so a create adds to the last page of every index
// keyed by id (resources, their history and identifiers, the audit trail's entities) instead of
// dirtying a random page of each. A resend inside the dedupe window gets the original answer and
// ids from the store. Two kinds keep the hash alone, the same at every time:
//   - a ServiceRequest with no identifier: the referral it opens may be numbered by its id, and
//     a later run of the same request must find that referral again;
//   - a request with no received_at (never from the API).
std::string Ingestor::new_id(const Entry& e) const {
  auto id =
      events::event_id("fhir-resource|" + ctx_.sender + "|" + key_, e.index < 0 ? 0 : e.index);
  if (const auto* sr = std::get_if<ServiceRequest>(&e.parsed->resource);
      sr != nullptr && !has_own_number(*sr))
    return id;
  const auto ms = events::ms_from_rfc3339(request_.received_at);
  if (!ms || *ms < 0 || *ms >= (std::int64_t{1} << 48)) return id;
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 12; ++i)
    id[static_cast<std::size_t>(i)] = kHex[(*ms >> (44 - 4 * i)) & 0xf];
  return id;
}

void Ingestor::assign_ids() {
  const auto earlier = ids_in_answer(request_.earlier_answer);
  for (auto& e : entries_) {
    if (!e.parsed) continue;
    const auto kept = earlier.find(e.index);
    e.id = kept != earlier.end() && kept->second.first == e.type() && valid_id(kept->second.second)
               ? kept->second.second
               : new_id(e);
    // A ServiceRequest numbered by its id, sent again after the dedupe window, finds itself (and
    // its referral) instead of failing as "already exists".
    if (const auto* sr = std::get_if<ServiceRequest>(&e.parsed->resource);
        sr != nullptr && !has_own_number(*sr) && ctx_.directory != nullptr &&
        ctx_.directory->read(e.type(), e.id))
      e.existing_id = e.id;
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
                                      "no question items: stored, no screening event"));
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
      // A final member with no value was asked and not answered: the engine records it.
      s.items.push_back(item_of(std::get<Observation>(res->resource)));
    }
  } else if (o.value || !o.question().value_or(mapping::Coding{}).code.empty()) {
    s.items.push_back(item_of(o));  // with no value: asked, not answered (when final)
  }
  // Members with no value that are not final (still in progress, withdrawn) say nothing.
  std::erase_if(s.items, [](const auto& i) { return i.answers.empty() && !i.unanswered(); });
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
    // and replayed once a route exists, which releases the referral to its agency. One held
    // uncategorised likewise (stage map), once a local code table translates its need.
    auto held =
        reject(Problem{FhirErrc::kUnprocessable, {held_.front().issue}}, held_.front().stage);
    out.commit.dead_letter = std::move(held.commit.dead_letter);
    for (auto& ev : held.commit.events)
      out.commit.events.push_back(std::move(ev));
  }
  return out;
}

}  // namespace ingest_detail

std::map<int, std::pair<std::string, std::string>> ids_in_answer(std::string_view answer_text) {
  std::map<int, std::pair<std::string, std::string>> out;
  if (answer_text.empty()) return out;
  rapidjson::Document answer;
  if (!sdoh::json::parse(answer, answer_text) || !answer.IsObject()) return out;
  const auto* type = detail::Reader::get(answer, "resourceType");
  if (type == nullptr || !type->IsString()) return out;
  if (detail::view(*type) != "Bundle") {
    if (const auto* id = detail::Reader::get(answer, "id"); id != nullptr && id->IsString())
      out[-1] = {std::string(detail::view(*type)), std::string(detail::view(*id))};
    return out;
  }
  // A transaction- or batch-response: entry i answers request entry i, its location
  // "Type/id/_history/n" (none for a refused entry).
  const auto* entries = detail::Reader::get(answer, "entry");
  if (entries == nullptr || !entries->IsArray()) return out;
  for (rapidjson::SizeType i = 0; i < entries->Size(); ++i) {
    const auto& entry = (*entries)[i];
    const auto* response = entry.IsObject() ? detail::Reader::get(entry, "response") : nullptr;
    if (response == nullptr || !response->IsObject()) continue;
    // Only what it created: a match (200) is found again by its identifier or referral.
    const auto* status = detail::Reader::get(*response, "status");
    const auto* location = detail::Reader::get(*response, "location");
    if (status == nullptr || !status->IsString() || !detail::view(*status).starts_with("201") ||
        location == nullptr || !location->IsString())
      continue;
    const auto text = detail::view(*location);
    const auto slash = text.find('/');
    if (slash == std::string_view::npos) continue;
    const auto rest = text.substr(slash + 1);
    out[static_cast<int>(i)] = {std::string(text.substr(0, slash)),
                                std::string(rest.substr(0, rest.find('/')))};
  }
  return out;
}

using namespace ingest_detail;

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
