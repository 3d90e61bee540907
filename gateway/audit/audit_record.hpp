#pragma once
// One auditable action, as the gateway records it: who did what to which resource or event, when,
// from where and with what outcome. The store turns each into a FHIR R4 AuditEvent (the IHE Basic
// Audit Log Patterns shape, audit_event.hpp) and appends it to the hash chain (chain.hpp).
//
// Never PHI: entities name resources by reference ("Task/abc") and events by id and topic; no
// name, MRN, address or phone number is ever copied into a record.
#include <cstdint>
#include <string>
#include <vector>

namespace sdoh::audit {

/// What happened, which decides the AuditEvent's type, subtype and action.
enum class AuditKind {
  kRead,              ///< FHIR read or vread                         (rest/read, R)
  kHistory,           ///< FHIR history of one resource               (rest/history-instance, R)
  kSearch,            ///< FHIR search                                (rest/search-type, E)
  kCreate,            ///< FHIR create or transaction entry           (rest/create, C)
  kUpdate,            ///< FHIR update or patch                       (rest/update, U)
  kImport,            ///< a change from HL7 v2, Kafka or the gateway  (DCM 110107 Import, C/U)
  kDisclosure,        ///< PHI committed for delivery to an agency     (DCM 110106 Export, R)
  kReplay,            ///< admin: a dead letter replayed               (DCM 110100, E)
  kPayloadView,       ///< admin: a dead letter's stored bytes read    (DCM 110100, R)
  kCertificateReload  ///< admin: TLS certificates and keys reloaded    (DCM 110100, E)
};

/// FHIR AuditEvent.action (R4 value set audit-event-action).
enum class AuditAction { kCreate, kRead, kUpdate, kDelete, kExecute };

/// FHIR AuditEvent.outcome: 0 success, 4 minor failure, 8 serious failure, 12 major failure.
enum class AuditOutcome { kSuccess = 0, kMinorFailure = 4, kSeriousFailure = 8 };

/// Who acted: the authenticated client or party, its kind and where it connected from.
struct AuditAgent {
  std::string who;      ///< party / client id, HL7 MSH-3^MSH-4, agency id, or the gateway's id
  std::string role;     ///< clinic | agency | admin | ops | dev | gateway
  std::string address;  ///< network address "ip:port"; empty when not known (Kafka, the gateway)
};

/// What was acted on: a resource reference, or an event by id with its topic.
struct AuditEntity {
  std::string reference;  ///< "Task/abc"; empty for an event
  std::string event_id;   ///< for a disclosure: the CloudEvent id
  std::string topic;      ///< for a disclosure: the Kafka topic it is queued for
  /// The key the trail is searched by: the reference, else the event id.
  const std::string& key() const { return reference.empty() ? event_id : reference; }

  static AuditEntity resource(std::string reference) {
    AuditEntity e;
    e.reference = std::move(reference);
    return e;
  }
  static AuditEntity event(std::string event_id, std::string topic) {
    AuditEntity e;
    e.event_id = std::move(event_id);
    e.topic = std::move(topic);
    return e;
  }
};

struct AuditRecord {
  AuditKind kind = AuditKind::kRead;
  AuditOutcome outcome = AuditOutcome::kSuccess;
  std::string outcome_text;  ///< for a failure: why, never PHI
  /// Set by the store when it appends the record (0: now).
  std::int64_t recorded_ms = 0;
  AuditAgent agent;
  /// For a disclosure: the agency the event goes to (a second agent, not the requestor).
  std::string recipient;
  /// For kImport: the change made something new (C), else it changed something (U).
  bool creates = false;
  std::vector<AuditEntity> entities;

  AuditRecord() = default;
  AuditRecord(AuditKind k, AuditAgent a, std::vector<AuditEntity> what = {})
      : kind(k), agent(std::move(a)), entities(std::move(what)) {}
};

/// The record's action (C/R/U/D/E) and its FHIR code letter.
AuditAction action_of(const AuditRecord& record);
char action_code(AuditAction action);

}  // namespace sdoh::audit
