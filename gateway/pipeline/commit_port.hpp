#pragma once
// The port through which ingest commits: one inbound message, the events derived from it and,
// for rejected input, its dead letter, in one durable transaction. Implemented by the SQLite
// store's group committer (adapters/store); a vector in unit tests.
//
// Delivery promise (DESIGN.md): a positive answer goes to the sender only after commit()
// completed with kCommitted. A resend (same protocol, sender and dedupe key) completes with
// kDuplicate and the originally stored answer, and adds no events.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "gateway/audit/audit_record.hpp"
#include "gateway/core/result.hpp"

namespace sdoh::pipeline {

/// The inbound message and the answer it gets.
struct InboundRecord {
  std::string protocol;      ///< "hl7v2" | "fhir" | "kafka"
  std::string sender;        ///< dedupe scope: HL7 MSH-3^MSH-4, FHIR client, agency
  std::string dedupe_key;    ///< MSH-10; FHIR identifier / Bundle id / If-None-Exist
  std::string message_type;  ///< "ORU^R01", "QuestionnaireResponse", ...
  std::string answer_code;   ///< "AA", "CA", "AE", "201", ... what the sender was told
  std::string answer;        ///< the answer's bytes, returned as is to a resend
  std::string payload;       ///< the message as received; kept per store.payload_retention
};

/// One event for the outbox. `value` is the CloudEvent envelope.
struct OutboxEvent {
  std::string event_id;
  std::string type;
  std::string topic;
  std::string key;
  std::string value;
};

/// A rejected input: kept with its original bytes so an operator can replay it.
struct DeadLetterRecord {
  std::string dead_letter_id;
  std::string stage;       ///< framing | parse | validate | map | route | lifecycle | publish
  std::string error_code;  ///< HL7 table 0357 code, FHIR issue code, ...
  std::string error_text;  ///< never PHI
  std::string location;    ///< "OBX^1^3", "Observation.code", ...
};

/// A FHIR resource version written with the message it came in (FHIR API): it becomes the
/// current version and joins the resource's history.
struct ResourceWrite {
  std::string type;
  std::string id;
  std::int64_t version = 1;
  /// The version this one replaces: 0 for a create (the commit fails with kConflict when the
  /// resource exists), else the commit fails with kConflict unless it is the stored current
  /// version (If-Match, concurrent updates). Nothing of the commit is written then.
  std::int64_t expected_version = 0;
  std::string last_updated;  ///< RFC 3339 (meta.lastUpdated)
  std::string json;
  /// The client that sent the resource (FHIR client id, HL7 sender): who may read it as its
  /// sender. Kept by every version.
  std::string source;
  std::vector<std::pair<std::string, std::string>> identifiers;  ///< (system, value)
  /// Search parameters of this version (name, value), e.g. Task "focus" →
  /// "ServiceRequest/abc", "owner" → "Organization/wic-east", "status" → "accepted",
  /// "patient" → "Patient/p1". Replaced as a whole by each version.
  std::vector<std::pair<std::string, std::string>> search;
};

/// A referral's closed-loop state (status as its lifecycle name, e.g. "accepted").
struct ReferralState {
  std::string referral_id;
  std::string clinic_number_system;
  std::string clinic_number_value;
  std::string source_control_id;
  std::string agency_id;
  std::string category;
  std::string status;
  std::string business_status;
  int sequence = 1;  ///< of the last status event; a lower one never replaces a higher one
  /// Optimistic locking (the referral service): the sequence the stored state must still have
  /// for this write, 0 when the referral must not exist yet; otherwise the commit fails with
  /// kConflict and writes nothing. None: no check.
  std::optional<int> expected_sequence;
  /// Set by the gateway's overdue check: the referral has had its one overdue event.
  bool overdue = false;
  std::int64_t created_at_ms = 0;  ///< when the referral was made (filled by reads)
  /// An HL7 clinic's referral: its sender ("MSH-3^MSH-4") and the patient identifier as it sent
  /// it (PID-3), for the RRI^I12 answers it gets back. Kept from the first state on.
  std::string return_to;
  std::string return_pid;
  /// Equity fields (codes; empty: unknown) for completion measures by group. Kept from the
  /// first state on.
  std::string race;
  std::string ethnicity;
  std::string language;
  /// The family's 3-digit ZIP area (HIPAA Safe Harbor: mapping::ZipPolicy::zip3, "000" for a
  /// restricted area; never the full ZIP), and the clinic that made the referral (its facility
  /// id): for the measures' timeline (measures/timeline.hpp), which keeps them from the first
  /// state on. Not kept in the referral's own state: a state read back has them empty.
  std::string zip3;
  std::string clinic;
  /// The patient's pseudonym (as in events; never an MRN), so that a screening does not open a
  /// second referral for a need the child already has an open one for. Kept from the first
  /// state on; empty when unknown.
  std::string patient;
};

/// A message to send out (an RRI^I12 to a clinic), queued in the same transaction as what
/// caused it and sent until the destination acknowledges it.
struct OutboundMessage {
  std::string destination;  ///< "host:port"
  std::string message;      ///< ER7 text, one message
  std::string referral_id;
};

/// A referral change an agency's FHIR Subscriptions are told about (adapters/fhir, rest-hook):
/// the store queues one notification per Subscription of `agency_id` in the same transaction,
/// numbered per Subscription (eventsSinceSubscriptionStart), delivered in that order.
struct SubscriptionNotice {
  std::string agency_id;    ///< who owns the referral (Task.owner): only its Subscriptions
  std::string referral_id;  ///< the Task's id
  int sequence = 0;         ///< the status event's sequence
  std::string status;       ///< the new status, e.g. accepted
  std::string task_json;    ///< the Task as of this change (full-resource); empty: read it then
};

struct CommitRequest {
  InboundRecord inbound;
  std::vector<OutboxEvent> events;  ///< includes the dead-letter event, if any
  std::optional<DeadLetterRecord> dead_letter;
  /// An operator's replay of this dead letter: the stored inbound record gets the new answer
  /// and the events, the dead letter is marked replayed — once. A replay that is rejected again
  /// commits nothing (kInvalid with the new reason) and the dead letter stays.
  std::string replay_of;
  /// FHIR resources to write in the same transaction (none for a duplicate).
  std::vector<ResourceWrite> resources;
  /// Referral states to record in the same transaction (none for a duplicate).
  std::vector<ReferralState> referrals;
  /// Messages to send once committed (none for a duplicate).
  std::vector<OutboundMessage> outbound;
  /// Referral changes for agencies' FHIR Subscriptions (none for a duplicate).
  std::vector<SubscriptionNotice> notices;
  /// Who makes this change (the authenticated client or party, its kind, its address): the
  /// agent of the audit records of the commit. Empty `who`: the inbound record's sender.
  audit::AuditAgent actor;
  /// Audit records written in the same transaction and appended to the audit chain (none for a
  /// duplicate, which changes nothing). The audit observer (pipeline/audit_observer.hpp) adds
  /// one per change and per disclosure of the request.
  std::vector<audit::AuditRecord> audit;
};

enum class CommitStatus { kCommitted, kDuplicate };

struct CommitOutcome {
  CommitStatus status = CommitStatus::kCommitted;
  std::string answer_code;  ///< for kDuplicate: the original answer's code
  std::string answer;       ///< for kDuplicate: the original answer's bytes
  std::int64_t inbound_id = 0;
  /// Outbox sequence numbers of the message's events Kafka has not acknowledged yet (for
  /// kDuplicate: those of the original commit). delivery.ack=delivered waits for them.
  std::vector<std::int64_t> undelivered;
};

class CommitPort {
 public:
  virtual ~CommitPort() = default;
  /// Completes once the transaction is durable (fsync'd) or has failed. Fails with
  /// kUnavailable when the store cannot write (disk full, I/O error, read-only): the caller
  /// must then answer negatively (HL7 AE/CE, HTTP 503 with Retry-After).
  virtual boost::asio::awaitable<Result<CommitOutcome>> commit(CommitRequest request) = 0;
};

}  // namespace sdoh::pipeline
