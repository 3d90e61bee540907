#include "gateway/runtime/admin.hpp"

#include "gateway/core/json_text.hpp"
#include "gateway/events/event.hpp"
#include "gateway/log/log.hpp"

namespace sdoh::runtime {

namespace asio = boost::asio;

namespace {

http::Response unauthorized() {
  auto r = http::Response::error(401, "unauthorized",
                                 "the admin routes need Authorization: Bearer <admin.token>");
  r.headers.push_back({"WWW-Authenticate", "Bearer realm=\"sdoh-gateway admin\""});
  return r;
}

http::Response from_error(const Error& e) {
  switch (e.kind) {
    case ErrorKind::kNotFound:
      return http::Response::error(404, "not-found", e.message);
    case ErrorKind::kConflict:
      return http::Response::error(409, "conflict", e.message);
    case ErrorKind::kInvalid:
    case ErrorKind::kUnsupported:
      return http::Response::error(422, "not-replayed", e.message);
    case ErrorKind::kUnavailable: {
      auto r = http::Response::error(503, "unavailable", e.message);
      r.headers.push_back({"Retry-After", "5"});
      return r;
    }
    default:
      return http::Response::error(500, "internal", e.message);
  }
}

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

asio::awaitable<Result<void>> record_certificate_reload(pipeline::AuditTrail& trail,
                                                        std::string listener, bool ok,
                                                        std::string detail) {
  std::vector<audit::AuditRecord> records;
  records.push_back(
      admin_action(audit::AuditKind::kCertificateReload, "", "listener/" + listener, ok, detail));
  co_return co_await trail.record(std::move(records));
}

namespace {

// Records an admin action before its answer goes out; a failed record fails the answer (503).
asio::awaitable<std::optional<http::Response>> record_admin(pipeline::AuditTrail* audit,
                                                            audit::AuditRecord record) {
  if (audit == nullptr) co_return std::nullopt;
  std::vector<audit::AuditRecord> records;
  records.push_back(std::move(record));
  auto* trail = audit;
  auto done = co_await trail->record(std::move(records));
  if (done) co_return std::nullopt;
  co_return from_error(Error::unavailable("the audit trail cannot record this action now (" +
                                          done.error().message + ")"));
}

}  // namespace

void add_admin_routes(http::Router& router, pipeline::DeadLetters& store,
                      const identity::AdminAccess& admin, MessageReplayer replay_message,
                      pipeline::AuditTrail* audit, pipeline::StoreExecutor* store_threads) {
  // Its reads and replays block on the store: answered on the store threads.
  auto add = [&router, store_threads](std::string method, std::string pattern,
                                      http::Handler handler) {
    if (store_threads != nullptr) handler = store_threads->wrap(std::move(handler));
    router.add(std::move(method), std::move(pattern), std::move(handler));
  };
  add("GET", "/admin/dead-letters",
      [&store, &admin](http::Request& req) -> asio::awaitable<http::Response> {
        if (!admin.allows(req)) co_return unauthorized();
        int limit = 100;
        if (auto l = req.query_value("limit")) limit = std::clamp(std::atoi(l->c_str()), 1, 10'000);
        const bool all = req.query_value("all").value_or("") == "true";
        auto list = store.dead_letters(limit, all);
        if (!list) co_return from_error(list.error());
        std::string body = "{\"deadLetters\":[";
        for (std::size_t i = 0; i < list->size(); ++i)
          body += (i ? "," : "") + to_json((*list)[i], false);
        body += "],\"waiting\":" + std::to_string(store.dead_letters_waiting()) + "}";
        co_return http::Response::json(200, std::move(body));
      });
  add("GET", "/admin/dead-letters/{id}",
      [&store, &admin, audit](http::Request& req) -> asio::awaitable<http::Response> {
        if (!admin.allows(req)) co_return unauthorized();
        const bool payload = req.query_value("payload").value_or("") == "true";
        auto d = store.dead_letter(req.params["id"], payload);
        if (!d) co_return from_error(d.error());
        if (payload) {
          log::info("admin.payload_read",
                    {{"dead_letter_id", d->dead_letter_id}, {"peer", req.peer}});
          // Named locals: GCC 12 mishandles temporaries inside co_await expressions.
          auto record = admin_action(audit::AuditKind::kPayloadView, req.peer,
                                     "dead-letter/" + d->dead_letter_id, true);
          auto refused = co_await record_admin(audit, std::move(record));
          if (refused) co_return std::move(*refused);
        }
        co_return http::Response::json(200, to_json(*d, payload));
      });
  add("POST", "/admin/dead-letters/{id}/replay",
      [&store, &admin, audit,
       replay_message](http::Request& req) -> asio::awaitable<http::Response> {
        if (!admin.allows(req)) co_return unauthorized();
        auto d = store.dead_letter(req.params["id"], true);
        if (!d) co_return from_error(d.error());
        if (d->replayed_at_ms != 0) {
          co_return from_error(
              Error::conflict("dead letter " + d->dead_letter_id + " was already replayed"));
        }
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
                                   {"ok", result.has_value()},
                                   {"detail", result ? result->outcome : result.error().message}});
        auto record =
            admin_action(audit::AuditKind::kReplay, req.peer, "dead-letter/" + d->dead_letter_id,
                         result.has_value(), result ? "" : result.error().message);
        auto refused = co_await record_admin(audit, std::move(record));
        if (refused) co_return std::move(*refused);
        if (!result) co_return from_error(result.error());
        co_return http::Response::json(200,
                                       "{\"deadLetterId\":" + json_string(result->dead_letter_id) +
                                           ",\"outcome\":" + json_string(result->outcome) +
                                           ",\"events\":" + std::to_string(result->events) + "}");
      });
}

}  // namespace sdoh::runtime
