#include "adapters/fhir/task_change.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "adapters/fhir/consent.hpp"
#include "adapters/fhir/ingest.hpp"
#include "adapters/fhir/resources.hpp"
#include "gateway/core/json_parse.hpp"
#include "gateway/events/event.hpp"
#include "gateway/mapping/lifecycle.hpp"
#include "gateway/mapping/referral.hpp"

namespace sdoh::fhir {

namespace {

using Json = rapidjson::Value;

std::string write(const rapidjson::Document& doc) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  doc.Accept(w);
  return {buf.GetString(), buf.GetSize()};
}

void set_text(rapidjson::Document& doc, const char* name, std::string_view text) {
  auto& alloc = doc.GetAllocator();
  doc.RemoveMember(name);
  if (text.empty()) return;
  Json codeable(rapidjson::kObjectType);
  codeable.AddMember(
      "text", Json(text.data(), static_cast<rapidjson::SizeType>(text.size()), alloc), alloc);
  doc.AddMember(Json(name, alloc), codeable, alloc);
}

// Task.businessStatus as the gateway keeps it: the code of the lifecycle's vocabulary in its
// system with its display (text: as the sender wrote it, else the display); none: removed.
void set_business_status(rapidjson::Document& doc, std::string_view code) {
  const auto* entry = mapping::find_business_status(code);
  if (entry == nullptr) return set_text(doc, "businessStatus", code);
  auto& alloc = doc.GetAllocator();
  std::string text(entry->display);
  if (auto it = doc.FindMember("businessStatus");
      it != doc.MemberEnd() && it->value.IsObject() && it->value.HasMember("text") &&
      it->value["text"].IsString() && it->value["text"].GetStringLength() > 0) {
    text = it->value["text"].GetString();
  }
  doc.RemoveMember("businessStatus");
  auto str = [&alloc](std::string_view v) {
    return Json(v.data(), static_cast<rapidjson::SizeType>(v.size()), alloc);
  };
  Json coding(rapidjson::kObjectType);
  coding.AddMember("system", str(mapping::kBusinessStatusSystem), alloc);
  coding.AddMember("code", str(entry->code), alloc);
  coding.AddMember("display", str(entry->display), alloc);
  Json codings(rapidjson::kArrayType);
  codings.PushBack(coding, alloc);
  Json codeable(rapidjson::kObjectType);
  codeable.AddMember("coding", codings, alloc);
  codeable.AddMember("text", str(text), alloc);
  doc.AddMember("businessStatus", codeable, alloc);
}

}  // namespace

// (task_change.hpp)
std::string with_business_status(std::string_view json, std::string_view code) {
  rapidjson::Document doc;
  if (!sdoh::json::parse(doc, json) || !doc.IsObject()) return std::string(json);
  set_business_status(doc, code);
  return write(doc);
}

// (task_change.hpp)
std::vector<std::pair<std::string, std::string>> task_search_params(const Task& t) {
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("status", t.status);
  if (auto [type, id] = t.focus.type_and_id(); !id.empty())
    out.emplace_back("focus", type + "/" + id);
  if (auto owner = agency_id_of(t.owner); !owner.empty()) out.emplace_back("owner", owner);
  if (auto [type, id] = t.for_.type_and_id(); type == "Patient")
    out.emplace_back("patient", "Patient/" + id);
  if (auto [type, id] = t.requester.type_and_id(); !id.empty())
    out.emplace_back("requester", type + "/" + id);
  for (const auto& i : t.identifiers) {
    if (!i.value.empty()) out.emplace_back("identifier", i.system + "|" + i.value);
  }
  if (!t.business_status.empty()) out.emplace_back("business-status", t.business_status);
  return out;
}

// A stored resource's JSON with meta.versionId and meta.lastUpdated set.
std::string with_meta(std::string_view json, std::int64_t version, std::string_view updated) {
  rapidjson::Document doc;
  if (!sdoh::json::parse(doc, json) || !doc.IsObject()) return std::string(json);
  auto& alloc = doc.GetAllocator();
  if (!doc.HasMember("meta") || !doc["meta"].IsObject()) {
    doc.RemoveMember("meta");
    doc.AddMember("meta", rapidjson::Value(rapidjson::kObjectType), alloc);
  }
  auto& meta = doc["meta"];
  meta.RemoveMember("versionId");
  meta.RemoveMember("lastUpdated");
  const auto v = std::to_string(version);
  meta.AddMember("versionId", rapidjson::Value(v.c_str(), alloc), alloc);
  meta.AddMember(
      "lastUpdated",
      rapidjson::Value(updated.data(), static_cast<rapidjson::SizeType>(updated.size()), alloc),
      alloc);
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  doc.Accept(w);
  return {buf.GetString(), buf.GetSize()};
}

namespace {

mapping::Actor actor_of(const Client& client, mapping::ReferralStatus to) {
  if (client.role == "clinic") return mapping::Actor::kClinic;
  if (client.role == "gateway") return mapping::Actor::kGateway;
  if (client.role == "dev" && to == mapping::ReferralStatus::kCancelled)
    return mapping::Actor::kClinic;
  return mapping::Actor::kAgency;
}

mapping::LifecycleState state_of(const pipeline::ReferralState& referral) {
  return {
      mapping::referral_status_from(referral.status).value_or(mapping::ReferralStatus::kRequested),
      referral.business_status};
}

}  // namespace

// The lifecycle (gateway/mapping/lifecycle) with the client as the actor: status and
// businessStatus together.
std::optional<Problem> default_transition_check(const Client& client,
                                                const pipeline::ReferralState& referral,
                                                const TaskUpdate& u) {
  const auto actor = actor_of(client, u.status);
  if (client.role == "agency" && client.organization != referral.agency_id)
    return Problem::forbidden("the referral is owned by another agency");
  auto from = state_of(referral);
  from.status = u.previous;  // the stored Task's status, which the update replaces
  const auto verdict = mapping::check_change(from, {u.status, u.business_status}, actor);
  if (verdict.allowed()) return std::nullopt;
  const char* where =
      verdict.field == mapping::LifecycleField::kStatus ? "Task.status" : "Task.businessStatus";
  if (verdict.verdict == mapping::Verdict::kConflict)
    return Problem{FhirErrc::kConflict,
                   {Issue::error(IssueType::kConflict, where, verdict.message)}};
  return Problem::unprocessable(IssueType::kBusinessRule, where, verdict.message);
}

FhirResult<std::string> task_with_status(std::string_view current, std::string_view status,
                                         std::string_view business_status, std::string_view reason,
                                         std::string_view note, std::string_view note_time) {
  rapidjson::Document doc;
  if (!sdoh::json::parse(doc, current) || !doc.IsObject()) {
    return std::unexpected(
        Problem{FhirErrc::kInternal,
                {Issue::error(IssueType::kException, "Task", "the stored Task is not readable")}});
  }
  auto& alloc = doc.GetAllocator();
  doc.RemoveMember("status");
  doc.AddMember("status",
                Json(status.data(), static_cast<rapidjson::SizeType>(status.size()), alloc), alloc);
  doc.RemoveMember("businessStatus");  // replaced whole: the sender's text was for the old code
  set_business_status(doc, business_status);
  set_text(doc, "statusReason", reason);
  if (!note.empty()) {
    if (!doc.HasMember("note") || !doc["note"].IsArray()) {
      doc.RemoveMember("note");
      doc.AddMember("note", Json(rapidjson::kArrayType), alloc);
    }
    Json annotation(rapidjson::kObjectType);
    if (!note_time.empty()) {
      annotation.AddMember(
          "time", Json(note_time.data(), static_cast<rapidjson::SizeType>(note_time.size()), alloc),
          alloc);
    }
    annotation.AddMember(
        "text", Json(note.data(), static_cast<rapidjson::SizeType>(note.size()), alloc), alloc);
    doc["note"].PushBack(annotation, alloc);
  }
  return write(doc);
}

FhirResult<TaskChangeResult> prepare_task_change(TaskChange change, const TransitionCheck& check,
                                                 std::string_view gateway_id,
                                                 const config::KafkaTopics& topics) {
  const auto& row = *change.current;
  auto update = read_task_update(row.id, row.json, change.updated_json);
  if (!update) return std::unexpected(std::move(update.error()));

  const auto& referral = change.referral;
  if (referral) {
    // A code that does not go with the new status does not follow the referral into it.
    auto from = state_of(*referral);
    from.status = update->previous;
    const auto kept = mapping::carry_over(from, {update->status, update->business_status});
    if (kept.business_status != update->business_status) {
      update->business_status = std::string(kept.business_status);
      update->json = with_business_status(update->json, update->business_status);
    }
  }
  const bool status_changed = update->status != update->previous;
  const bool business_changed = referral && update->business_status != referral->business_status;
  const bool transition = referral && (status_changed || business_changed);
  if (transition) {
    const auto& rule = check ? check : TransitionCheck(default_transition_check);
    if (auto refused = rule(change.client, *referral, *update)) return std::unexpected(*refused);
  } else if (!referral && status_changed && !change.client.agency() && !change.client.clinic()) {
    return std::unexpected(Problem::forbidden("this client may not update Tasks"));
  }

  if (transition && business_changed)
    update->json = with_business_status(update->json, update->business_status);

  TaskChangeResult out;
  out.version = row.version + 1;
  out.stored_json = with_meta(update->json, out.version, change.received_at);
  out.transition = transition;
  auto& commit = out.commit;
  commit.inbound = std::move(change.inbound);
  commit.inbound.answer_code = "200";
  commit.inbound.answer = out.stored_json;

  pipeline::ResourceWrite w;
  w.type = "Task";
  w.id = row.id;
  w.version = out.version;
  w.expected_version = row.version;
  w.last_updated = change.received_at;
  w.json = out.stored_json;
  w.source = row.source;  // who may see it as its sender stays the clinic that sent it
  if (auto parsed = parse_resource(out.stored_json)) {
    if (const auto* t = std::get_if<Task>(&parsed->resource)) {
      for (const auto& i : t->identifiers) {
        if (!i.value.empty()) w.identifiers.emplace_back(i.system, i.value);
      }
      w.search = task_search_params(*t);
    }
  }
  w.search.emplace_back("_id", row.id);
  w.search.emplace_back("_sender", row.source);
  commit.resources.push_back(std::move(w));

  if (transition) {
    mapping::ReferralTransition t;
    t.referral_id = row.id;
    t.status = update->status;
    t.previous = update->previous;
    t.business_status = update->business_status;
    t.reason = update->reason;
    t.updated_by_role =
        change.client.role == "dev"
            ? (update->status == mapping::ReferralStatus::kCancelled ? "clinic" : "agency")
            : change.client.role;
    t.updated_by_id = change.client.organization;
    t.time = change.received_at;
    t.sequence = referral->sequence + 1;
    t.agency_id = referral->agency_id;
    t.category = referral->category;
    commit.events.push_back(outbox_event(
        events::EventType::kReferralStatus,
        events::event_id("referral-status|" + row.id, t.sequence), gateway_id, change.received_at,
        row.id, topics.referral_status, row.id, mapping::referral_status_data(t)));
    auto next = *referral;
    next.status = std::string(mapping::to_string(update->status));
    next.business_status = update->business_status;
    next.sequence = t.sequence;
    commit.referrals.push_back(std::move(next));
  }
  out.update = std::move(*update);
  return out;
}

}  // namespace sdoh::fhir
