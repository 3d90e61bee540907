#pragma once
// The audit records of every commit, whoever makes it (FHIR, HL7, an agency's Kafka update, the
// overdue check, an operator's replay), decided in one place: it takes part in the one commit path
// (ObservedCommitPort) and adds to the request, so that the records are written in the same
// transaction as what they record:
//   - each resource created or updated, and each referral state the request writes (C/U, agent:
//     the request's actor);
//   - each referral event that carries the family's contact details, queued for an agency's topic:
//     the disclosure of PHI to that agency, recorded when it is committed for delivery.
#include "gateway/pipeline/commit_observer.hpp"

namespace sdoh::pipeline {

class AuditObserver final : public CommitObserver {
 public:
  void preparing(CommitRequest& request, const std::vector<mapping::StatusEvent>& changes) override;
};

/// The audit records of `request` (what AuditObserver adds), for tests.
std::vector<audit::AuditRecord> audit_records_of(const CommitRequest& request);

}  // namespace sdoh::pipeline
