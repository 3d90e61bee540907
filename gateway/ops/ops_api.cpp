#include "gateway/ops/ops_api.hpp"

#include <cmath>
#include <memory>

#include "gateway/core/json_text.hpp"
#include "gateway/events/event.hpp"

namespace sdoh::ops {

namespace asio = boost::asio;

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

// Seconds since `ms` (null when nothing is waiting).
std::string age_seconds(std::int64_t ms) {
  if (ms == 0) return "null";
  return number(static_cast<double>(std::max<std::int64_t>(0, now_ms() - ms)) / 1000.0);
}

std::string instant(std::int64_t ms) {
  return json_string(events::rfc3339_from_ms(ms));
}

http::Response from_store_error(const Error& e) {
  const auto status = dead_letter_status(e);
  auto r = problem(status,
                   status == 404   ? "not found"
                   : status == 409 ? "conflict"
                   : status == 422 ? "not replayed"
                   : status == 503 ? "unavailable"
                                   : "internal error",
                   e.message);
  if (status == 503) r.headers.push_back({"Retry-After", "5"});
  return r;
}

http::Response answer(const Result<std::string>& body) {
  if (!body) return from_store_error(body.error());
  return http::Response::json(200, *body);
}

std::string health_json(const OpsApiSources& s) {
  const auto report = s.health->readiness();
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - s.started)
          .count();
  std::string body = "{\"status\":";
  body += report.ready ? "\"ready\"" : (report.draining ? "\"draining\"" : "\"not-ready\"");
  body += ",\"ready\":";
  body += report.ready ? "true" : "false";
  body += ",\"checks\":[";
  bool first = true;
  for (const auto& [name, state] : report.checks) {
    body += first ? "" : ",";
    first = false;
    body += "{\"name\":" + json_string(name) + ",\"ok\":" + (state.ok ? "true" : "false") +
            ",\"detail\":" + json_string(state.detail) + "}";
  }
  body += "],\"version\":" + json_string(s.build.version) +
          ",\"uptimeSeconds\":" + std::to_string(uptime) + ",\"mode\":" + json_string(s.mode) +
          ",\"now\":" + instant(now_ms()) + "}";
  return body;
}

std::string throughput_json(const Throughput& throughput) {
  std::string body = "{\"minutes\":[";
  bool first_minute = true;
  for (const auto& m : throughput.last_hour()) {
    body += first_minute ? "" : ",";
    first_minute = false;
    body += "{\"minute\":" + instant(m.minute_ms) + ",\"bySender\":[";
    bool first_sender = true;
    for (const auto& s : m.by_sender) {
      body += first_sender ? "" : ",";
      first_sender = false;
      body += "{\"sender\":" + json_string(s.sender) + ",\"protocol\":" + json_string(s.protocol) +
              ",\"codes\":{";
      bool first_code = true;
      for (const auto& [code, n] : s.codes) {
        body += first_code ? "" : ",";
        first_code = false;
        body += json_string(code) + ":" + std::to_string(n);
      }
      body += "}}";
    }
    body += "]}";
  }
  return body + "]}";
}

Result<std::string> deliveries_json(const OpsApiSources& s) {
  const auto stats = s.outbox->stats();
  const auto lag = s.delivery_lag->last_hour();
  auto outbound = s.reads->outbound_summary();
  if (!outbound) return fail(outbound.error());
  const auto kafka = s.kafka ? s.kafka() : KafkaState{};
  std::string body =
      "{\"outbox\":{\"backlog\":" + std::to_string(stats.undelivered) +
      ",\"backlogBytes\":" + std::to_string(stats.undelivered_bytes) +
      ",\"oldestUndeliveredAgeSeconds\":" + age_seconds(stats.oldest_undelivered_ms) +
      ",\"deliveredLastHour\":" + std::to_string(lag.delivered) +
      ",\"lagSeconds\":{\"p50\":" + (lag.delivered == 0 ? "null" : number(lag.p50_seconds)) +
      ",\"p99\":" + (lag.delivered == 0 ? "null" : number(lag.p99_seconds)) + "}}";
  body += ",\"kafka\":{\"connected\":" + std::string(kafka.connected ? "true" : "false") +
          ",\"brokers\":" + json_string(kafka.brokers) +
          ",\"embedded\":" + (kafka.embedded ? "true" : "false") + ",\"lastError\":" +
          (kafka.last_error.empty() ? std::string("null") : json_string(kafka.last_error)) + "}";
  body += ",\"outbound\":{\"waiting\":" + std::to_string(outbound->waiting) +
          ",\"retrying\":" + std::to_string(outbound->retrying) +
          ",\"oldestWaitingAgeSeconds\":" + age_seconds(outbound->oldest_waiting_ms) +
          ",\"givenUp\":" + std::to_string(outbound->given_up) + "}";
  body +=
      ",\"deadLetters\":{\"waiting\":" + std::to_string(s.dead_letters->dead_letters_waiting()) +
      "}}";
  return body;
}

constexpr int kHeldLimit = 500;

Result<std::string> held_json(const pipeline::OpsReads& reads, const std::string& reason) {
  auto rows = reads.held_referrals(reason, kHeldLimit + 1);
  if (!rows) return fail(rows.error());
  const bool truncated = rows->size() > static_cast<std::size_t>(kHeldLimit);
  if (truncated) rows->pop_back();
  std::string body = "{\"reason\":" + (reason.empty() ? std::string("null") : json_string(reason)) +
                     ",\"referrals\":[";
  for (std::size_t i = 0; i < rows->size(); ++i) {
    const auto& h = (*rows)[i];
    body += (i ? "," : "") + std::string("{\"referralId\":") + json_string(h.referral_id) +
            ",\"category\":" + json_string(h.category) + ",\"reason\":" + json_string(h.reason) +
            ",\"sender\":" + json_string(h.sender) + ",\"agency\":" +
            (h.agency_id.empty() ? std::string("null") : json_string(h.agency_id)) +
            ",\"since\":" + instant(h.since_ms) + "}";
  }
  body += "],\"truncated\":" + std::string(truncated ? "true" : "false") + "}";
  return body;
}

}  // namespace

void add_ops_api_routes(http::Router& router, OpsApiSources sources) {
  auto s = std::make_shared<const OpsApiSources>(std::move(sources));
  const OpsAccess& access = *s->access;
  // Store reads go to the store threads; the gate is checked before the hop.
  auto on_store = [s](http::Handler h) {
    return s->store_threads != nullptr ? s->store_threads->wrap(std::move(h)) : h;
  };
  auto path = [](std::string_view rest) { return "/ops/api/v1" + std::string(rest); };
  // What the server answers itself under /ops/api (404, 405, 413, ...) is a problem too.
  router.set_error_body("/ops/api",
                        [](unsigned status, std::string_view code, std::string_view message) {
                          return problem(status, code, message);
                        });

  // Who the caller is, so that the page knows whether to ask for a token and whether to offer
  // replays. Not gated: it says only which role the caller's own token has.
  router.add("GET", path("/access"), [s](http::Request& req) -> asio::awaitable<http::Response> {
    const auto role = s->access->role_of(req);
    co_return http::Response::json(
        200, "{\"role\":" + json_string(to_string(role)) +
                 ",\"open\":" + (s->access->open() ? "true" : "false") +
                 ",\"tokensConfigured\":" + (s->access->configured() ? "true" : "false") + "}");
  });

  router.add("GET", path("/health"),
             access.guard(OpsRole::kOps, [s](http::Request&) -> asio::awaitable<http::Response> {
               co_return http::Response::json(200, health_json(*s));
             }));

  router.add("GET", path("/throughput"),
             access.guard(OpsRole::kOps, [s](http::Request&) -> asio::awaitable<http::Response> {
               co_return http::Response::json(200, throughput_json(*s->throughput));
             }));

  router.add(
      "GET", path("/deliveries"),
      access.guard(OpsRole::kOps, on_store([s](http::Request&) -> asio::awaitable<http::Response> {
                     co_return answer(deliveries_json(*s));
                   })));

  router.add("GET", path("/held"),
             access.guard(OpsRole::kOps,
                          on_store([s](http::Request& req) -> asio::awaitable<http::Response> {
                            const auto reason = req.query_value("reason").value_or("");
                            if (!reason.empty() && reason != "no-route" &&
                                reason != "awaiting-consent" && reason != "uncategorised") {
                              co_return problem(400, "bad reason",
                                                "reason is one of no-route, awaiting-consent, "
                                                "uncategorised (or left out: all)");
                            }
                            co_return answer(held_json(*s->reads, reason));
                          })));

  router.add("GET", path("/dead-letters"),
             access.guard(OpsRole::kOps,
                          on_store([s](http::Request& req) -> asio::awaitable<http::Response> {
                            int limit = 50;
                            if (auto l = req.query_value("limit")) limit = std::atoi(l->c_str());
                            const bool all = req.query_value("all").value_or("") == "true";
                            co_return answer(dead_letters_json(*s->dead_letters, limit, all));
                          })));

  // The payload may hold PHI: admin only; the metadata is an ops read.
  router.add("GET", path("/dead-letters/{id}"),
             [s, show = on_store([s](http::Request& req) -> asio::awaitable<http::Response> {
                   const bool payload = req.query_value("payload").value_or("") == "true";
                   co_return answer(co_await dead_letter_json(*s->dead_letters, req.params["id"],
                                                              payload, req.peer, s->audit));
                 })](http::Request& req) -> asio::awaitable<http::Response> {
               const bool payload = req.query_value("payload").value_or("") == "true";
               if (auto refused = s->access->refuse(req, payload ? OpsRole::kAdmin : OpsRole::kOps))
                 co_return std::move(*refused);
               co_return co_await show(req);
             });

  router.add(
      "POST", path("/dead-letters/{id}/replay"),
      access.guard(
          OpsRole::kAdmin, on_store([s](http::Request& req) -> asio::awaitable<http::Response> {
            co_return answer(co_await replay_dead_letter(*s->dead_letters, s->replay_message,
                                                         req.params["id"], req.peer, s->audit));
          })));
}

}  // namespace sdoh::ops
