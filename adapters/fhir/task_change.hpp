#pragma once
// One change of a referral Task, whoever makes it (an agency's PUT/PATCH, an agency's update on
// Kafka, the clinic's cancel): the new Task version, the lifecycle check, the
// org.sdoh.referral.status.v1 event and the referral's new state, as one CommitRequest.
// Pure: the caller reads the current Task and referral, and commits.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "adapters/fhir/error.hpp"
#include "adapters/fhir/resources.hpp"
#include "adapters/fhir/task_update.hpp"
#include "gateway/config/config.hpp"
#include "gateway/identity/scopes.hpp"
#include "gateway/pipeline/commit_port.hpp"
#include "gateway/pipeline/resource_port.hpp"
#include "gateway/referral/service.hpp"

namespace sdoh::fhir {

/// Who is calling: a configured client (or the development client).
struct Client {
  std::string id;            ///< dedupe scope and `sender` of what it posts
  std::string role;          ///< clinic | agency | dev (both)
  std::string organization;  ///< clinic: facility id; agency: the agency id Task.owner names
  std::string name;
  /// What an access token grants (SMART system scopes); none: a static credential (a dev token,
  /// a client certificate), which the role alone bounds.
  std::optional<identity::Scopes> scopes;
  bool clinic() const { return role == "clinic" || role == "dev"; }
  bool agency() const { return role == "agency" || role == "dev"; }
};

/// Who the client is in the referral's lifecycle when it moves it to `to`: a clinic, an agency
/// (the development client speaks for the referral's agency, or for the clinic when it
/// cancels), or the gateway.
referral::Party party_of(const Client& client, const pipeline::ReferralState& referral,
                         mapping::ReferralStatus to);

/// The FHIR answer to a refusal of the referral service: 409 conflict (the current state does not
/// allow it), 422 business-rule (not this client's to make), 403 (another agency's referral),
/// 500 (the stored Task cannot be edited); the expression names Task.status or
/// Task.businessStatus.
Problem problem_of(const referral::Refusal& refusal);

struct TaskChange {
  const pipeline::ResourceRow* current = nullptr;  ///< the stored Task (required)
  std::string updated_json;  ///< the Task as the change makes it (before meta is set)
  Client client;
  std::optional<pipeline::ReferralState> referral;  ///< none: a Task that is not a referral
  std::string received_at;                          ///< RFC 3339
  pipeline::InboundRecord inbound;  ///< protocol, sender, dedupe key, type, payload; the answer is
                                    ///< filled in (200 and the stored Task)
};

struct TaskChangeResult {
  pipeline::CommitRequest commit;
  std::string stored_json;  ///< the new version, meta set
  std::int64_t version = 0;
  TaskUpdate update;
  bool transition = false;  ///< a status event is in the commit
};

/// The commit of a change, or the Problem that refuses it (the caller dead-letters it). A
/// referral's Task moves as the referral service decides (gateway/referral/service); a Task that
/// is not a referral gets its next version.
FhirResult<TaskChangeResult> prepare_task_change(TaskChange change,
                                                 const referral::Service& service);

}  // namespace sdoh::fhir
