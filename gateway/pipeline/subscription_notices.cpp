#include "gateway/pipeline/subscription_notices.hpp"

namespace sdoh::pipeline {

std::vector<SubscriptionNotice> subscription_notices(
    const CommitRequest& request, const std::vector<mapping::StatusEvent>& changes) {
  std::vector<SubscriptionNotice> out;
  for (const auto& [event_id, t] : changes) {
    if (t.agency_id.empty()) continue;  // held for no route: nobody owns it yet
    SubscriptionNotice n;
    n.agency_id = t.agency_id;
    n.referral_id = t.referral_id;
    n.sequence = t.sequence;
    n.status = std::string(mapping::to_string(t.status));
    // The referral's Task is the Task with its id; the request's last version of it.
    for (const auto& w : request.resources) {
      if (w.type == "Task" && w.id == t.referral_id) n.task_json = w.json;
    }
    out.push_back(std::move(n));
  }
  return out;
}

void SubscriptionNotices::preparing(CommitRequest& request,
                                    const std::vector<mapping::StatusEvent>& changes) {
  for (auto& n : subscription_notices(request, changes))
    request.notices.push_back(std::move(n));
}

void SubscriptionNotices::committed(const CommitOutcome& outcome,
                                    const std::vector<mapping::StatusEvent>& changes, bool) {
  if (outcome.status != CommitStatus::kCommitted) return;
  for (const auto& c : changes) {
    if (!c.transition.agency_id.empty()) {
      wake_sender_();
      return;
    }
  }
}

}  // namespace sdoh::pipeline
