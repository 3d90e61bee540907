#include "gateway/audit/audit_event.hpp"

#include "gateway/core/json_text.hpp"
#include "gateway/events/event.hpp"

namespace sdoh::audit {

namespace {

struct Coding {
  std::string_view system;
  std::string_view code;
  std::string_view display;
};

// FHIR R4 audit-event-type (rest) and DICOM DCM event ids, as BALP uses them.
constexpr std::string_view kAuditEventType =
    "http://terminology.hl7.org/CodeSystem/audit-event-type";
constexpr std::string_view kDicom = "http://dicom.nema.org/resources/ontology/DCM";
constexpr std::string_view kRestful = "http://hl7.org/fhir/restful-interaction";
constexpr std::string_view kSubtypes = "urn:sdoh:audit-subtype";

Coding type_of(AuditKind kind) {
  switch (kind) {
    case AuditKind::kRead:
    case AuditKind::kHistory:
    case AuditKind::kSearch:
    case AuditKind::kCreate:
    case AuditKind::kUpdate:
      return {kAuditEventType, "rest", "Restful Operation"};
    case AuditKind::kImport:
      return {kDicom, "110107", "Import"};
    case AuditKind::kDisclosure:
      return {kDicom, "110106", "Export"};
    case AuditKind::kReplay:
    case AuditKind::kPayloadView:
    case AuditKind::kCertificateReload:
      return {kDicom, "110100", "Application Activity"};
  }
  return {kDicom, "110100", "Application Activity"};
}

Coding subtype_of(AuditKind kind) {
  switch (kind) {
    case AuditKind::kRead:
      return {kRestful, "read", "read"};
    case AuditKind::kHistory:
      return {kRestful, "history-instance", "history-instance"};
    case AuditKind::kSearch:
      return {kRestful, "search-type", "search-type"};
    case AuditKind::kCreate:
      return {kRestful, "create", "create"};
    case AuditKind::kUpdate:
      return {kRestful, "update", "update"};
    case AuditKind::kImport:
      return {kSubtypes, "change", "Change from a message"};
    case AuditKind::kDisclosure:
      return {kSubtypes, "referral-disclosure",
              "Referral with contact details queued for an agency"};
    case AuditKind::kReplay:
      return {kSubtypes, "dead-letter-replay", "Dead letter replayed"};
    case AuditKind::kPayloadView:
      return {kSubtypes, "dead-letter-payload-view", "Dead letter payload viewed"};
    case AuditKind::kCertificateReload:
      return {kSubtypes, "certificate-reload", "TLS certificates reloaded"};
  }
  return {kSubtypes, "unknown", "unknown"};
}

void coding(std::string& out, const Coding& c) {
  out += "{\"system\":";
  append_json_string(out, c.system);
  out += ",\"code\":";
  append_json_string(out, c.code);
  out += ",\"display\":";
  append_json_string(out, c.display);
  out += '}';
}

void party(std::string& out, std::string_view who) {
  out += "{\"identifier\":{\"system\":";
  append_json_string(out, kPartySystem);
  out += ",\"value\":";
  append_json_string(out, who);
  out += "}}";
}

}  // namespace

AuditAction action_of(const AuditRecord& record) {
  switch (record.kind) {
    case AuditKind::kCreate:
      return AuditAction::kCreate;
    case AuditKind::kUpdate:
      return AuditAction::kUpdate;
    case AuditKind::kImport:
      return record.creates ? AuditAction::kCreate : AuditAction::kUpdate;
    case AuditKind::kSearch:
    case AuditKind::kReplay:
    case AuditKind::kCertificateReload:
      return AuditAction::kExecute;  // BALP: a query is E
    case AuditKind::kRead:
    case AuditKind::kHistory:
    case AuditKind::kDisclosure:
    case AuditKind::kPayloadView:
      return AuditAction::kRead;
  }
  return AuditAction::kExecute;
}

char action_code(AuditAction action) {
  switch (action) {
    case AuditAction::kCreate:
      return 'C';
    case AuditAction::kRead:
      return 'R';
    case AuditAction::kUpdate:
      return 'U';
    case AuditAction::kDelete:
      return 'D';
    case AuditAction::kExecute:
      return 'E';
  }
  return 'E';
}

std::string audit_event_json(const AuditRecord& r, std::int64_t sequence,
                             std::string_view gateway_id) {
  std::string out;
  out.reserve(1024);
  out += "{\"resourceType\":\"AuditEvent\",\"id\":\"";
  out += std::to_string(sequence);
  out += "\",\"type\":";
  coding(out, type_of(r.kind));
  out += ",\"subtype\":[";
  coding(out, subtype_of(r.kind));
  out += "],\"action\":\"";
  out += action_code(action_of(r));
  out += "\",\"recorded\":";
  append_json_string(out, events::rfc3339_from_ms(r.recorded_ms));
  out += ",\"outcome\":\"";
  out += std::to_string(static_cast<int>(r.outcome));
  out += '"';
  if (!r.outcome_text.empty()) {
    out += ",\"outcomeDesc\":";
    append_json_string(out, r.outcome_text);
  }
  // BALP: the requestor (DCM 110153 Source Role ID) with its network address (type 2: IP
  // address), then the server or, for a disclosure, the receiving agency (110152 Destination).
  out += ",\"agent\":[{\"type\":{\"coding\":[";
  coding(out, {kDicom, "110153", "Source Role ID"});
  out += "]},\"role\":[{\"coding\":[{\"system\":";
  append_json_string(out, kPartyKindSystem);
  out += ",\"code\":";
  append_json_string(out, r.agent.role.empty() ? std::string_view("unknown") : r.agent.role);
  out += "}]}],\"who\":";
  party(out, r.agent.who);
  out += ",\"requestor\":true";
  if (!r.agent.address.empty()) {
    out += ",\"network\":{\"address\":";
    append_json_string(out, r.agent.address);
    out += ",\"type\":\"2\"}";
  }
  out += "},{\"type\":{\"coding\":[";
  coding(out, {kDicom, "110152", "Destination Role ID"});
  out += "]},\"who\":";
  party(out, r.recipient.empty() ? gateway_id : std::string_view(r.recipient));
  out += ",\"requestor\":false}]";
  out += ",\"source\":{\"observer\":{\"display\":";
  append_json_string(out, gateway_id);
  out +=
      "},\"type\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/security-source-type\","
      "\"code\":\"4\",\"display\":\"Application Server\"}]}";
  if (!r.entities.empty()) {
    out += ",\"entity\":[";
    bool first = true;
    for (const auto& e : r.entities) {
      if (!first) out += ',';
      first = false;
      out += "{\"what\":";
      if (!e.reference.empty()) {
        out += "{\"reference\":";
        append_json_string(out, e.reference);
        out += '}';
      } else {
        out += "{\"identifier\":{\"system\":\"urn:sdoh:event-id\",\"value\":";
        append_json_string(out, e.event_id);
        out += "}}";
      }
      // audit-entity-type 1 Person (the Patient), 2 System Object (everything else).
      const bool patient = e.reference.starts_with("Patient/");
      out +=
          ",\"type\":{\"system\":\"http://terminology.hl7.org/CodeSystem/audit-entity-type\","
          "\"code\":";
      out += patient ? "\"1\",\"display\":\"Person\"}" : "\"2\",\"display\":\"System Object\"}";
      if (!e.topic.empty()) {
        out += ",\"detail\":[{\"type\":\"topic\",\"valueString\":";
        append_json_string(out, e.topic);
        out += "}]";
      }
      out += '}';
    }
    out += ']';
  }
  out += '}';
  return out;
}

}  // namespace sdoh::audit
