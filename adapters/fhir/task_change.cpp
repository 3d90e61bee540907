#include "adapters/fhir/task_change.hpp"

#include "adapters/fhir/consent.hpp"
#include "adapters/fhir/ingest.hpp"
#include "adapters/fhir/resources.hpp"
#include "gateway/mapping/lifecycle.hpp"
#include "gateway/mapping/referral.hpp"
#include "gateway/referral/task_document.hpp"

namespace sdoh::fhir {

referral::Party party_of(const Client& client, const pipeline::ReferralState& referral,
                         mapping::ReferralStatus to) {
  if (client.role == "clinic") return {mapping::Actor::kClinic, client.organization};
  if (client.role == "gateway") return {mapping::Actor::kGateway, client.organization};
  if (client.role == "dev") {
    if (to == mapping::ReferralStatus::kCancelled)
      return {mapping::Actor::kClinic, client.organization};
    return {mapping::Actor::kAgency, referral.agency_id};
  }
  return {mapping::Actor::kAgency, client.organization};
}

Problem problem_of(const referral::Refusal& refusal) {
  const char* where =
      refusal.field == mapping::LifecycleField::kStatus ? "Task.status" : "Task.businessStatus";
  switch (refusal.kind) {
    case referral::Refusal::Kind::kConflict:
      return Problem{FhirErrc::kConflict,
                     {Issue::error(IssueType::kConflict, where, refusal.message)}};
    case referral::Refusal::Kind::kBusinessRule:
      return Problem::unprocessable(IssueType::kBusinessRule, where, refusal.message);
    case referral::Refusal::Kind::kForbidden:
      return Problem::forbidden(refusal.message);
    case referral::Refusal::Kind::kTaskUnreadable:
      break;
  }
  return Problem{FhirErrc::kInternal,
                 {Issue::error(IssueType::kException, "Task", refusal.message)}};
}

FhirResult<TaskChangeResult> prepare_task_change(TaskChange change,
                                                 const referral::Service& service) {
  const auto& row = *change.current;
  auto update = read_task_update(row.id, row.json, change.updated_json);
  if (!update) return std::unexpected(std::move(update.error()));

  TaskChangeResult out;
  out.version = row.version + 1;
  auto& commit = out.commit;
  commit.inbound = std::move(change.inbound);
  commit.inbound.answer_code = "200";
  if (change.referral) {
    auto current = referral::Referral::from(*change.referral);
    if (!current) {
      return std::unexpected(Problem{FhirErrc::kInternal,
                                     {Issue::error(IssueType::kException, "Task",
                                                   "the referral's stored state is not "
                                                   "readable")}});
    }
    referral::Move move;
    move.by = party_of(change.client, *change.referral, update->status);
    move.status = update->status;
    move.business_status = update->business_status;
    move.reason = update->reason;
    move.task_json = update->json;
    auto decided = service.transition(*current, &row, move, change.received_at);
    if (!decided) return std::unexpected(problem_of(decided.error()));
    out.transition = !decided->unchanged;
    out.stored_json = decided->task->json;
    update->business_status = decided->after.business_status;
    service.add_to(commit, *decided, change.received_at);
  } else {
    if (update->status != update->previous && !change.client.agency() && !change.client.clinic())
      return std::unexpected(Problem::forbidden("this client may not update Tasks"));
    // Who may see it as its sender stays the clinic that sent it.
    auto w =
        referral::task_version(row.id, update->json, out.version, change.received_at, row.source);
    out.stored_json = w.json;
    commit.resources.push_back(std::move(w));
  }
  commit.inbound.answer = out.stored_json;
  out.update = std::move(*update);
  return out;
}

}  // namespace sdoh::fhir
