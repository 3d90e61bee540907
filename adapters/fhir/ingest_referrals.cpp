// FHIR ingest's referrals: a Task (with its ServiceRequest) or a screening's request for help
// opens one; routing finds its agency or it is held; a Consent releases or holds it again. The
// referral service (gateway/referral/service) decides each; this file reads FHIR into its calls
// and its Changes back into events, Task versions and states.
#include "adapters/fhir/ingestor.hpp"

namespace sdoh::fhir::ingest_detail {

namespace {

// A new referral as the referral service opens it: its id, need, agency (none: held) and what
// the store keeps of `r` beside them.
referral::Referral new_referral(const mapping::NormalizedReferral& r, std::string id,
                                std::string category, std::string pseudonym, std::string zip3) {
  referral::Referral made;
  made.id = std::move(id);
  made.agency_id = r.agency_id;
  made.category = std::move(category);
  made.stored.clinic_number_system = r.clinic_number_system;
  made.stored.clinic_number_value = r.clinic_number_value;
  made.stored.race = r.race;
  made.stored.ethnicity = r.ethnicity;
  made.stored.language = r.language;
  made.stored.patient = std::move(pseudonym);
  made.stored.zip3 = std::move(zip3);
  return made;
}

}  // namespace

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
  if (auto task = ctx_.directory != nullptr ? ctx_.directory->read("Task", rid) : std::nullopt) {
    auto state = ctx_.find_referral ? ctx_.find_referral(rid) : std::nullopt;
    if (state && state->status == "requested" && state->business_status == mapping::kNoRoute)
      held_.push_back({std::move(held), "route"});  // still without a route
    if (state && state->status == "requested" &&
        state->business_status == mapping::kUncategorised) {
      // Held uncategorised, and a local code table now translates its need: no route for it
      // either, so held for no route now.
      auto current = referral::Referral::from(*state);
      const pipeline::ResourceRow row{"Task", rid, stored_version(*task), "", *task, ctx_.sender};
      auto moved = current
                       ? service_.categorise(*current, &row, r.category, "", "",
                                             r.consent.status == mapping::ConsentStatus::kActive,
                                             request_.received_at)
                       : std::nullopt;
      if (moved) {
        add_change(e, *moved, sr_id, r.consent.status, false);
        held_.push_back({std::move(held), "route"});
        return Opened{rid, true, std::string(mapping::kNoRoute), true};
      }
    }
    return Opened{rid, true, "", false};
  }
  held_.push_back({std::move(held), "route"});
  auto unrouted = new_referral(
      r, rid, r.category,
      ctx_.mapper->pseudonymizer().pseudonym(r.patient_authority, r.patient_identifier),
      ctx_.mapper->zip_policy().zip3(r.postal_code));
  return open_held(e, r, std::move(unrouted), sr_id, where,
                   "no agency named and no route for the need " + r.category +
                       " and this area: the referral is held (businessStatus no-route) until ops "
                       "route it; the clinic sees it on the Task");
}

// A referral whose need no code or answer tells (the clinic's local codes, which no table in
// schemas/mappings/local/ translates): kept as a Task (requested, businessStatus uncategorised),
// announced by its first status event (agency null), and a dead letter (stage map) that
// names the codes to translate. Replayed once they are, it is categorised and routed.
std::optional<Ingestor::Opened> Ingestor::hold_uncategorised(
    Entry& e, const mapping::NormalizedReferral& r, const mapping::MappedReferral& identified,
    const std::string& sr_id, const std::string& where) {
  const auto& rid = identified.referral_id;
  auto held = Issue::error(
      IssueType::kCodeInvalid, where,
      "the referral's need cannot be told from " + identified.untranslated + " (client " +
          ctx_.sender +
          "): the referral is held (uncategorised); add the codes to a local code table in "
          "schemas/mappings/local/ and replay this request");
  if (ctx_.directory != nullptr && ctx_.directory->read("Task", rid)) {
    auto state = ctx_.find_referral ? ctx_.find_referral(rid) : std::nullopt;
    if (state && state->status == "requested" && state->business_status == mapping::kUncategorised)
      held_.push_back({std::move(held), "map"});  // still untranslated
    return Opened{rid, true, "", false};
  }
  held_.push_back({std::move(held), "map"});
  auto unknown =
      new_referral(r, rid, identified.category, identified.patient_pseudonym, identified.zip3);
  unknown.agency_id.clear();  // held before routing, whatever agency the Task names
  unknown.business_status = std::string(mapping::kUncategorised);
  return open_held(e, r, std::move(unknown), sr_id, where,
                   "the referral's need is not known: it is held (businessStatus uncategorised) "
                   "until its codes are translated; the clinic sees it on the Task");
}

// A referral the gateway holds (no agency yet), opened: its first status event, its state and its
// Task version on `e`, and a warning there saying why it waits.
Ingestor::Opened Ingestor::open_held(Entry& e, const mapping::NormalizedReferral& r,
                                     referral::Referral held, const std::string& sr_id,
                                     const std::string& where, std::string why) {
  const auto opened =
      service_.open(std::move(held), r.consent.status == mapping::ConsentStatus::kActive,
                    {mapping::Actor::kClinic, clinic_of(r)}, request_.received_at);
  add_change(e, opened, sr_id, r.consent.status, false);
  e.issues.push_back(Issue::warning(IssueType::kProcessing, where, std::move(why)));
  return Opened{opened.after.id, false, opened.after.business_status, false};
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
  auto found = ctx_.route(r.category, keys);
  if (!found) return false;
  r.agency_id = std::move(found->agency_id);
  r.agency_name = std::move(found->agency_name);
  r.routed = found->basis;
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
    const bool categorising = state && state->business_status == mapping::kUncategorised;
    if (!state || state->status != "requested" ||
        (state->business_status != mapping::kNoRoute && !categorising))
      return Opened{rid, true, "", false};
    // A referral held for no route that a route now finds an agency for, or held uncategorised
    // whose need a local code table now translates (the clinic sent it again, or an operator
    // replayed it after adding the route or the code): released to that agency.
    auto current = referral::Referral::from(*state);
    if (!current) return Opened{rid, true, "", false};
    const pipeline::ResourceRow row{"Task", rid, stored_version(*task), "", *task, ctx_.sender};
    const bool consent = r.consent.status == mapping::ConsentStatus::kActive;
    auto routed = categorising ? service_.categorise(*current, &row, mapped->category, r.agency_id,
                                                     r.agency_name, consent, request_.received_at)
                               : service_.route(*current, &row, r.agency_id, r.agency_name, consent,
                                                request_.received_at);
    if (!routed) return Opened{rid, true, "", false};
    e.events.push_back(service_.referral_event(rid, routed->after.sequence, r.agency_topic,
                                               std::move(mapped->data), request_.received_at));
    add_change(e, *routed, sr_id, r.consent.status, mapped->contact_included);
    e.issues.push_back(Issue::information(e.root, "referral Task/" + rid + " was held (" +
                                                      state->business_status + "): now routed to " +
                                                      r.agency_id));
    return Opened{rid, true, routed->after.business_status, true};
  }

  auto made = new_referral(r, rid, mapped->category, mapped->patient_pseudonym, mapped->zip3);
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
  if (has_own_number(sr)) {
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
  // The clinic's other codes for the need, for its local code tables.
  for (const auto& c : sr.categories) {
    if (c.system != kSdohccCategorySystem) r.need_codes.push_back({c, sr_root + ".category"});
  }
  if (sr.code) r.need_codes.push_back({*sr.code, sr_root + ".code"});
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
  {
    // The need: named, translated from the clinic's local codes, or told by the answers cited;
    // none of these: held uncategorised, whatever agency the Task names.
    auto need = mapping::ReferralMapper(*ctx_.mapper).identify(r);
    if (!need) {
      const auto& x = need.error().where.expression;
      e.issues.push_back(
          Issue::error(IssueType::kBusinessRule,
                       x == "category" || x == "evidence" ? sr_root + ".category" : e.root,
                       need.error().message));
      return;
    }
    if (need->uncategorised) {
      if (auto held = hold_uncategorised(e, r, *need, sr_id, sr_root + ".code")) {
        (held->existing ? e.existing_id : e.id) = held->referral_id;
        e.business_status = held->business_status;
      }
      return;
    }
    r.category = need->category;
  }
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
  CreatedReferral made;
  static_cast<pipeline::ReferralState&>(made) = change.after.state();
  made.expected_sequence = change.before.sequence;
  made.service_request_id = sr_id;
  made.consent = consent;
  made.contact_included = contact_included;
  e.referrals.push_back(std::move(made));
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

}  // namespace sdoh::fhir::ingest_detail
