#include "gateway/pipeline/audit_observer.hpp"

#include <algorithm>

#include <rapidjson/document.h>

namespace sdoh::pipeline {

namespace {

// Who acts when the adapter did not say: the inbound record's sender, of the kind its protocol
// implies.
audit::AuditAgent agent_of(const CommitRequest& request) {
  if (!request.actor.who.empty()) return request.actor;
  const auto& p = request.inbound.protocol;
  std::string role = p == "kafka"     ? "agency"
                     : p == "gateway" ? "gateway"
                     : p == "fhir"    ? "client"
                                      : "sender";
  return {request.inbound.sender, std::move(role), ""};
}

struct Disclosure {
  std::string referral_id;
  std::string agency;
};

// A referral event carrying contact details (data.contact): what it discloses and to whom.
std::optional<Disclosure> disclosure_of(const OutboxEvent& e) {
  if (e.type != "org.sdoh.referral.v1") return std::nullopt;
  rapidjson::Document doc;
  doc.Parse(e.value.data(), e.value.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("data") || !doc["data"].IsObject())
    return std::nullopt;
  const auto& data = doc["data"];
  if (!data.HasMember("contact")) return std::nullopt;
  auto text = [&](const char* name) {
    return data.HasMember(name) && data[name].IsString() ? std::string(data[name].GetString())
                                                         : std::string();
  };
  std::string agency;
  if (data.HasMember("agency") && data["agency"].IsObject() && data["agency"].HasMember("id") &&
      data["agency"]["id"].IsString()) {
    agency = data["agency"]["id"].GetString();
  }
  return Disclosure{text("referralId"), std::move(agency)};
}

}  // namespace

std::vector<audit::AuditRecord> audit_records_of(const CommitRequest& request) {
  std::vector<audit::AuditRecord> out;
  const auto agent = agent_of(request);
  const bool fhir = request.inbound.protocol == "fhir";
  audit::AuditRecord created(fhir ? audit::AuditKind::kCreate : audit::AuditKind::kImport, agent);
  created.creates = true;
  audit::AuditRecord updated(fhir ? audit::AuditKind::kUpdate : audit::AuditKind::kImport, agent);
  auto add = [](audit::AuditRecord& r, std::string reference) {
    const bool known =
        std::any_of(r.entities.begin(), r.entities.end(),
                    [&](const audit::AuditEntity& e) { return e.reference == reference; });
    if (!known) r.entities.push_back(audit::AuditEntity::resource(std::move(reference)));
  };
  for (const auto& w : request.resources)
    add(w.expected_version == 0 ? created : updated, w.type + "/" + w.id);
  // A referral's state without its Task in the request (an HL7 or Kafka change) is a change of
  // the referral all the same.
  for (const auto& r : request.referrals) {
    const auto ref = "Task/" + r.referral_id;
    auto in = [&](const audit::AuditRecord& a) {
      return std::any_of(a.entities.begin(), a.entities.end(),
                         [&](const audit::AuditEntity& e) { return e.reference == ref; });
    };
    if (in(created) || in(updated)) continue;
    add(r.expected_sequence && *r.expected_sequence == 0 ? created : updated, ref);
  }
  if (!created.entities.empty()) out.push_back(std::move(created));
  if (!updated.entities.empty()) out.push_back(std::move(updated));
  for (const auto& e : request.events) {
    auto d = disclosure_of(e);
    if (!d) continue;
    audit::AuditRecord r(audit::AuditKind::kDisclosure, agent);
    r.recipient = d->agency;
    if (!d->referral_id.empty())
      r.entities.push_back(audit::AuditEntity::resource("Task/" + d->referral_id));
    r.entities.push_back(audit::AuditEntity::event(e.event_id, e.topic));
    out.push_back(std::move(r));
  }
  return out;
}

void AuditObserver::preparing(CommitRequest& request, const std::vector<mapping::StatusEvent>&) {
  auto records = audit_records_of(request);
  request.audit.insert(request.audit.end(), std::make_move_iterator(records.begin()),
                       std::make_move_iterator(records.end()));
}

}  // namespace sdoh::pipeline
