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
#include "gateway/pipeline/commit_port.hpp"
#include "gateway/pipeline/resource_port.hpp"

namespace sdoh::fhir {

/// Who is calling: a configured client (or the development client).
struct Client {
  std::string id;            ///< dedupe scope and `sender` of what it posts
  std::string role;          ///< clinic | agency | dev (both)
  std::string organization;  ///< clinic: facility id; agency: the agency id Task.owner names
  std::string name;
  bool clinic() const { return role == "clinic" || role == "dev"; }
  bool agency() const { return role == "agency" || role == "dev"; }
};

/// Whether `client` may move the referral from update.previous to update.status (and change its
/// businessStatus). The lifecycle's rule; refusals are Problems (409 not allowed from the
/// current state, 403/422 not this client's to make).
using TransitionCheck = std::function<std::optional<Problem>(
    const Client& client, const pipeline::ReferralState& referral, const TaskUpdate& update)>;

/// The lifecycle's transition table (gateway/mapping/lifecycle) with the client as the actor:
/// 409 when the current status does not allow the change, 422 when it is not this client's to
/// make (a clinic accepting, an agency cancelling), 403 for an agency that does not own it.
std::optional<Problem> default_transition_check(const Client& client,
                                                const pipeline::ReferralState& referral,
                                                const TaskUpdate& update);

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

/// The commit of a change, or the Problem that refuses it (the caller dead-letters it).
FhirResult<TaskChangeResult> prepare_task_change(TaskChange change, const TransitionCheck& check,
                                                 std::string_view gateway_id,
                                                 const config::KafkaTopics& topics);

}  // namespace sdoh::fhir
