#pragma once
// What takes part in every commit, whoever makes it (HL7, FHIR, an agency's Kafka update, the
// overdue check, an operator's replay): the HL7 clinics' RRI^I12 answers (adapters/hl7v2), the
// referral measures (runtime) and the relay's wake-up (adapters/kafka). ObservedCommitPort calls
// them in the order given, on the committing coroutine's executor.
#include <vector>

#include "gateway/mapping/referral.hpp"
#include "gateway/pipeline/commit_port.hpp"

namespace sdoh::pipeline {

class CommitObserver {
 public:
  virtual ~CommitObserver() = default;
  /// Before the commit: may add what must be written in the same transaction (an outbound
  /// message). `changes` are the request's status events, read once for every observer.
  virtual void preparing(CommitRequest& /*request*/,
                         const std::vector<mapping::StatusEvent>& /*changes*/) {}
  /// After the commit completed successfully (kCommitted, or kDuplicate for a resend, which
  /// wrote nothing). `outbound` tells whether the request queued outbound messages.
  virtual void committed(const CommitOutcome& /*outcome*/,
                         const std::vector<mapping::StatusEvent>& /*changes*/, bool /*outbound*/) {}
};

/// The org.sdoh.referral.status.v1 events of a request, each read back once.
std::vector<mapping::StatusEvent> status_events(const CommitRequest& request);

}  // namespace sdoh::pipeline
