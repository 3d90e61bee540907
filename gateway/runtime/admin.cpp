#include "gateway/runtime/admin.hpp"

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
  const auto status = ops::dead_letter_status(e);
  const char* code = status == 404   ? "not-found"
                     : status == 409 ? "conflict"
                     : status == 422 ? "not-replayed"
                     : status == 503 ? "unavailable"
                                     : "internal";
  auto r = http::Response::error(status, code, e.message);
  if (status == 503) r.headers.push_back({"Retry-After", "5"});
  return r;
}

http::Response answer(const Result<std::string>& body) {
  if (!body) return from_error(body.error());
  return http::Response::json(200, *body);
}

}  // namespace

asio::awaitable<Result<void>> record_certificate_reload(pipeline::AuditTrail& trail,
                                                        std::string listener, bool ok,
                                                        std::string detail) {
  std::vector<audit::AuditRecord> records;
  records.push_back(ops::admin_action(audit::AuditKind::kCertificateReload, "",
                                      "listener/" + listener, ok, detail));
  co_return co_await trail.record(std::move(records));
}

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
        if (auto l = req.query_value("limit")) limit = std::atoi(l->c_str());
        const bool all = req.query_value("all").value_or("") == "true";
        co_return answer(ops::dead_letters_json(store, limit, all));
      });
  add("GET", "/admin/dead-letters/{id}",
      [&store, &admin, audit](http::Request& req) -> asio::awaitable<http::Response> {
        if (!admin.allows(req)) co_return unauthorized();
        const bool payload = req.query_value("payload").value_or("") == "true";
        co_return answer(
            co_await ops::dead_letter_json(store, req.params["id"], payload, req.peer, audit));
      });
  add("POST", "/admin/dead-letters/{id}/replay",
      [&store, &admin, audit,
       replay_message](http::Request& req) -> asio::awaitable<http::Response> {
        if (!admin.allows(req)) co_return unauthorized();
        co_return answer(co_await ops::replay_dead_letter(store, replay_message, req.params["id"],
                                                          req.peer, audit));
      });
}

}  // namespace sdoh::runtime
