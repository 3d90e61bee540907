#include "gateway/ops/dead_letters.hpp"

#include <algorithm>

#include "gateway/core/json_text.hpp"
#include "gateway/events/event.hpp"
#include "gateway/log/log.hpp"

namespace sdoh::ops {
namespace {

std::string rfc3339_ms(std::int64_t ms) {
  return ms == 0 ? "null" : "\"" + events::rfc3339_from_ms(ms) + "\"";
}

std::string to_json(const pipeline::DeadLetterInfo& d, bool with_payload) {
  std::string out =
      "{\"deadLetterId\":" + json_string(d.dead_letter_id) +
      ",\"createdAt\":" + rfc3339_ms(d.created_at_ms) + ",\"stage\":" + json_string(d.stage) +
      ",\"error\":{\"code\":" + json_string(d.error_code) +
      ",\"text\":" + json_string(d.error_text) + "}" + ",\"location\":" + json_string(d.location) +
      ",\"source\":{\"protocol\":" + json_string(d.protocol) +
      ",\"sender\":" + json_string(d.sender) + ",\"messageId\":" + json_string(d.message_id) +
      ",\"messageType\":" + json_string(d.message_type) + "}" +
      ",\"kind\":" + json_string(d.outbox_seq != 0 ? "refused-event" : "rejected-message") +
      ",\"replayedAt\":" + rfc3339_ms(d.replayed_at_ms) + ",\"replayOutcome\":" +
      (d.replay_outcome.empty() ? std::string("null") : json_string(d.replay_outcome)) +
      ",\"payloadKept\":" + (d.payload_kept ? "true" : "false");
  if (with_payload) out += ",\"payload\":" + (d.payload_kept ? json_string(d.payload) : "null");
  return out + "}";
}

}  // namespace

Result<std::string> dead_letters_json(const pipeline::DeadLetters& store, int limit,
                                      bool include_replayed) {
  auto list = store.dead_letters(std::clamp(limit, 1, 10'000), include_replayed);
  if (!list) return fail(list.error());
  std::string body = "{\"deadLetters\":[";
  for (std::size_t i = 0; i < list->size(); ++i)
    body += (i ? "," : "") + to_json((*list)[i], false);
  body += "],\"waiting\":" + std::to_string(store.dead_letters_waiting()) + "}";
  return body;
}

Result<std::string> dead_letter_json(const pipeline::DeadLetters& store, const std::string& id,
                                     bool with_payload, const std::string& peer) {
  auto d = store.dead_letter(id, with_payload);
  if (!d) return fail(d.error());
  if (with_payload)
    log::info("admin.payload_read", {{"dead_letter_id", d->dead_letter_id}, {"peer", peer}});
  return to_json(*d, with_payload);
}

boost::asio::awaitable<Result<std::string>> replay_dead_letter(
    pipeline::DeadLetters& store, const MessageReplayer& replay_message, const std::string& id,
    const std::string& peer) {
  auto d = store.dead_letter(id, true);
  if (!d) co_return fail(d.error());
  if (d->replayed_at_ms != 0)
    co_return fail(Error::conflict("dead letter " + d->dead_letter_id + " was already replayed"));
  Result<pipeline::ReplayResult> result = fail(Error::internal("not replayed"));
  if (d->outbox_seq != 0) {
    result = store.replay_event(d->dead_letter_id);
  } else if (!d->payload_kept) {
    result = fail(Error::invalid("the message's bytes were not kept (not replayable)"));
  } else {
    result = co_await replay_message(*d);
  }
  log::info("admin.replay", {{"dead_letter_id", d->dead_letter_id},
                             {"stage", d->stage},
                             {"peer", peer},
                             {"ok", result.has_value()},
                             {"detail", result ? result->outcome : result.error().message}});
  if (!result) co_return fail(result.error());
  co_return "{\"deadLetterId\":" + json_string(result->dead_letter_id) +
      ",\"outcome\":" + json_string(result->outcome) +
      ",\"events\":" + std::to_string(result->events) + "}";
}

unsigned dead_letter_status(const Error& e) {
  switch (e.kind) {
    case ErrorKind::kNotFound:
      return 404;
    case ErrorKind::kConflict:
      return 409;
    case ErrorKind::kInvalid:
    case ErrorKind::kUnsupported:
      return 422;
    case ErrorKind::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

}  // namespace sdoh::ops
