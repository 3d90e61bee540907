#include "gateway/pipeline/observed_commit_port.hpp"

namespace sdoh::pipeline {

std::vector<mapping::StatusEvent> status_events(const CommitRequest& request) {
  std::vector<mapping::StatusEvent> out;
  for (const auto& e : request.events) {
    if (e.type != "org.sdoh.referral.status.v1") continue;
    if (auto t = mapping::read_referral_status(e.value)) out.push_back({e.event_id, std::move(*t)});
  }
  return out;
}

boost::asio::awaitable<Result<CommitOutcome>> ObservedCommitPort::commit(CommitRequest request) {
  const auto changes = status_events(request);
  for (auto* o : observers_)
    o->preparing(request, changes);
  const bool outbound = !request.outbound.empty();
  auto outcome = co_await inner_.commit(std::move(request));
  if (outcome) {
    for (auto* o : observers_)
      o->committed(*outcome, changes, outbound);
  }
  co_return outcome;
}

}  // namespace sdoh::pipeline
