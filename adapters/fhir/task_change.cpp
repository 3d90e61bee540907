#include "adapters/fhir/task_change.hpp"

#include "adapters/fhir/consent.hpp"
#include "adapters/fhir/ingest.hpp"
#include "adapters/fhir/resources.hpp"
#include "gateway/core/json_parse.hpp"
#include "gateway/events/event.hpp"
#include "gateway/mapping/lifecycle.hpp"
#include "gateway/mapping/referral.hpp"
#include "gateway/referral/task_document.hpp"

namespace sdoh::fhir {

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
      update->json = referral::with_business_status(update->json, update->business_status);
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
    update->json = referral::with_business_status(update->json, update->business_status);

  TaskChangeResult out;
  out.version = row.version + 1;
  // Who may see it as its sender stays the clinic that sent it.
  auto w =
      referral::task_version(row.id, update->json, out.version, change.received_at, row.source);
  out.stored_json = w.json;
  out.transition = transition;
  auto& commit = out.commit;
  commit.inbound = std::move(change.inbound);
  commit.inbound.answer_code = "200";
  commit.inbound.answer = out.stored_json;
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
