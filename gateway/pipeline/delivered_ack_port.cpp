#include "gateway/pipeline/delivered_ack_port.hpp"

namespace sdoh::pipeline {

bool positive_answer(std::string_view code) {
  return code == "AA" || code == "CA" || (!code.empty() && code[0] == '2');
}

boost::asio::awaitable<Result<CommitOutcome>> DeliveredAckPort::commit(CommitRequest request) {
  auto outcome = co_await inner_.commit(std::move(request));
  // A negative answer (a refusal kept as a dead letter) owes the sender no wait.
  if (!outcome || !positive_answer(outcome->answer_code)) co_return outcome;
  auto delivered = co_await tracker_.await_delivered(outcome->undelivered, timeout_);
  if (!delivered) co_return fail(delivered.error());
  co_return outcome;
}

}  // namespace sdoh::pipeline
