#include "gateway/ops/dead_letters.hpp"

#include <algorithm>

#include "gateway/core/json_text.hpp"
#include "gateway/events/event.hpp"
#include "gateway/identity/admin_access.hpp"
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

// Records an admin action before its answer goes out; one that cannot be recorded is refused.
boost::asio::awaitable<Result<void>> record_admin(pipeline::AuditTrail* audit,
                                                  audit::AuditRecord record) {
  if (audit == nullptr) co_return Result<void>{};
  std::vector<audit::AuditRecord> records;
  records.push_back(std::move(record));
  auto done = co_await audit->record(std::move(records));
  if (done) co_return Result<void>{};
  co_return fail(Error::unavailable("the audit trail cannot record this action now (" +
                                    done.error().message + ")"));
}

}  // namespace

audit::AuditRecord admin_action(audit::AuditKind kind, const std::string& address,
                                const std::string& what, bool ok, const std::string& detail) {
  audit::AuditRecord r(kind, {identity::AdminAccess::kAgent, "admin", address});
  // A dead letter is named by its id (never its content); a listener by its name.
  r.entities.push_back(audit::AuditEntity::resource(what));
  if (!ok) {
    r.outcome = audit::AuditOutcome::kMinorFailure;
    r.outcome_text = detail;
  }
  return r;
}

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

boost::asio::awaitable<Result<std::string>> dead_letter_json(const pipeline::DeadLetters& store,
                                                             std::string id, bool with_payload,
                                                             std::string peer,
                                                             pipeline::AuditTrail* audit) {
  auto d = store.dead_letter(id, with_payload);
  if (!d) co_return fail(d.error());
  if (with_payload) {
    log::info("admin.payload_read", {{"dead_letter_id", d->dead_letter_id}, {"peer", peer}});
    // Named locals: GCC 12 mishandles temporaries inside co_await expressions.
    auto record = admin_action(audit::AuditKind::kPayloadView, peer,
                               "dead-letter/" + d->dead_letter_id, true);
    auto recorded = co_await record_admin(audit, std::move(record));
    if (!recorded) co_return fail(recorded.error());
  }
  co_return to_json(*d, with_payload);
}

boost::asio::awaitable<Result<std::string>> replay_dead_letter(
    pipeline::DeadLetters& store, const MessageReplayer& replay_message, std::string id,
    std::string peer, pipeline::AuditTrail* audit) {
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
  // A refused replay is recorded too, with its reason.
  auto record = admin_action(audit::AuditKind::kReplay, peer, "dead-letter/" + d->dead_letter_id,
                             result.has_value(), result ? "" : result.error().message);
  auto recorded = co_await record_admin(audit, std::move(record));
  if (!recorded) co_return fail(recorded.error());
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
