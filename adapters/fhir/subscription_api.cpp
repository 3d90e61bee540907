#include "adapters/fhir/subscription_api.hpp"

#include <charconv>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "adapters/fhir/access.hpp"
#include "adapters/fhir/response.hpp"
#include "adapters/fhir/subscription_notification.hpp"
#include "adapters/fhir/subscription_resource.hpp"
#include "gateway/events/event.hpp"
#include "gateway/log/log.hpp"
#include "gateway/metrics/registry.hpp"

namespace sdoh::fhir {

namespace asio = boost::asio;
using http::Request;
using http::Response;

namespace {

Problem store_problem(const Error& e) {
  if (e.kind == ErrorKind::kConflict) return Problem::conflict(e.message);
  Problem p{FhirErrc::kUnavailable,
            {Issue::error(IssueType::kTransient, "",
                          "the gateway cannot store the Subscription now; retry later")}};
  return p;
}

std::string etag(std::int64_t version) {
  return "W/\"" + std::to_string(version) + "\"";
}

// W/"3" or "3" → 3; 0 when unreadable.
std::int64_t etag_version(std::string_view v) {
  if (v.starts_with("W/")) v.remove_prefix(2);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  std::int64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  return ec == std::errc() && p == v.data() + v.size() ? n : 0;
}

}  // namespace

struct SubscriptionApi::Impl {
  pipeline::SubscriptionStore& store;
  SubscriptionApiOptions options;
  metrics::Family<metrics::Counter>& interactions;

  Response count(Response r, std::string_view interaction) {
    interactions.with({std::string(interaction), "Subscription", std::to_string(r.status)}).inc();
    return r;
  }

  // The client's own Subscription `id`, or the answer to give instead (404 for another's).
  std::expected<pipeline::SubscriptionRow, Problem> own(const Client& client,
                                                        const std::string& id) const {
    auto row = store.subscription(id);
    if (!row) return std::unexpected(store_problem(row.error()));
    if (!*row || (client.role != "dev" && (*row)->agency_id != client.organization)) {
      return std::unexpected(Problem::not_found("Subscription/" + id + " is not known here"));
    }
    return std::move(**row);
  }

  Response resource(unsigned status, const pipeline::SubscriptionRow& row, const std::string& base,
                    bool with_secret) const {
    auto r = fhir_response(status, subscription_json(row, base, with_secret));
    r.headers.push_back({"ETag", etag(row.version)});
    if (status == 201) {
      r.headers.push_back({"Location", base + "/Subscription/" + row.id + "/_history/" +
                                           std::to_string(row.version)});
    }
    return r;
  }

  asio::awaitable<Response> create(Request& req) {
    auto client = options.authenticate(req);
    if (!client) co_return count(problem_response(client.error()), "create");
    if (auto p = scope_refusal(*client, identity::Interaction::kCreate, "Subscription"))
      co_return count(problem_response(*p), "create");
    const auto base = options.base_url(req);
    auto row = read_subscription(req.body, *client, {base, options.dev_mode});
    if (!row) co_return count(problem_response(row.error()), "create");
    const bool generated = row->secret.empty();
    if (generated) row->secret = new_secret();
    row->id = new_secret().substr(0, 24);
    row->version = 1;
    row->last_updated = events::now_rfc3339();
    if (auto put = store.put_subscription(*row, 0); !put)
      co_return count(problem_response(store_problem(put.error())), "create");
    log::info("fhir.subscription_created",
              {{"subscription", row->id}, {"agency", row->agency_id}, {"content", row->content}});
    if (options.wake_sender) options.wake_sender();
    co_return count(resource(201, *row, base, generated), "create");
  }

  asio::awaitable<Response> read(Request& req) {
    auto client = options.authenticate(req);
    if (!client) co_return count(problem_response(client.error()), "read");
    if (auto p = scope_refusal(*client, identity::Interaction::kRead, "Subscription"))
      co_return count(problem_response(*p), "read");
    auto row = own(*client, req.params["id"]);
    if (!row) co_return count(problem_response(row.error()), "read");
    co_return count(resource(200, *row, options.base_url(req), false), "read");
  }

  asio::awaitable<Response> search(Request& req) {
    auto client = options.authenticate(req);
    if (!client) co_return count(problem_response(client.error()), "search-type");
    if (auto p = scope_refusal(*client, identity::Interaction::kSearchType, "Subscription"))
      co_return count(problem_response(*p), "search-type");
    if (client->role != "agency" && client->role != "dev") {
      co_return count(problem_response(Problem::forbidden("Subscriptions are for agencies")),
                      "search-type");
    }
    auto rows = store.subscriptions(client->role == "dev" ? "" : client->organization);
    if (!rows) co_return count(problem_response(store_problem(rows.error())), "search-type");
    const auto base = options.base_url(req);
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("resourceType");
    w.String("Bundle");
    w.Key("type");
    w.String("searchset");
    w.Key("total");
    w.Uint64(rows->size());
    w.Key("link");
    w.StartArray();
    w.StartObject();
    w.Key("relation");
    w.String("self");
    w.Key("url");
    const auto self = base + "/Subscription";
    w.String(self.data(), static_cast<rapidjson::SizeType>(self.size()));
    w.EndObject();
    w.EndArray();
    w.Key("entry");
    w.StartArray();
    for (const auto& row : *rows) {
      w.StartObject();
      w.Key("fullUrl");
      const auto url = base + "/Subscription/" + row.id;
      w.String(url.data(), static_cast<rapidjson::SizeType>(url.size()));
      w.Key("resource");
      const auto json = subscription_json(row, base, false);
      w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
      w.Key("search");
      w.StartObject();
      w.Key("mode");
      w.String("match");
      w.EndObject();
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    co_return count(fhir_response(200, std::string(buf.GetString(), buf.GetSize())), "search-type");
  }

  asio::awaitable<Response> update(Request& req) {
    auto client = options.authenticate(req);
    if (!client) co_return count(problem_response(client.error()), "update");
    if (auto p = scope_refusal(*client, identity::Interaction::kUpdate, "Subscription"))
      co_return count(problem_response(*p), "update");
    const auto& id = req.params["id"];
    auto current = own(*client, id);
    if (!current) co_return count(problem_response(current.error()), "update");
    if (auto im = req.header("If-Match"); im && etag_version(*im) != current->version) {
      co_return count(problem_response(Problem::precondition_failed(
                          "Subscription/" + id + " is at version " +
                          std::to_string(current->version) + ", not " + std::string(*im))),
                      "update");
    }
    const auto base = options.base_url(req);
    auto row = read_subscription(req.body, *client, {base, options.dev_mode});
    if (!row) co_return count(problem_response(row.error()), "update");
    if (row->agency_id != current->agency_id) {
      co_return count(problem_response(Problem::unprocessable(
                          IssueType::kBusinessRule, "Subscription.criteria",
                          "a Subscription stays with its agency: create another one")),
                      "update");
    }
    row->id = id;
    row->client_id = current->client_id;
    if (row->secret.empty()) row->secret = current->secret;  // kept unless a new one is given
    // Unchanged delivery settings keep an active Subscription active; anything else, and every
    // re-activation from error or off, starts with a handshake.
    if (row->status == "requested" && current->status == "active" &&
        row->endpoint == current->endpoint && row->content == current->content &&
        row->secret == current->secret) {
      row->status = "active";
    }
    row->error.clear();
    row->version = current->version + 1;
    row->last_updated = events::now_rfc3339();
    if (auto put = store.put_subscription(*row, current->version); !put)
      co_return count(problem_response(store_problem(put.error())), "update");
    log::info("fhir.subscription_updated",
              {{"subscription", id}, {"agency", row->agency_id}, {"status", row->status}});
    if (options.wake_sender) options.wake_sender();
    co_return count(resource(200, *row, base, false), "update");
  }

  asio::awaitable<Response> remove(Request& req) {
    auto client = options.authenticate(req);
    if (!client) co_return count(problem_response(client.error()), "delete");
    if (auto p = scope_refusal(*client, identity::Interaction::kDelete, "Subscription"))
      co_return count(problem_response(*p), "delete");
    const auto& id = req.params["id"];
    auto current = own(*client, id);
    if (!current) co_return count(problem_response(current.error()), "delete");
    auto gone = store.delete_subscription(id);
    if (!gone) co_return count(problem_response(store_problem(gone.error())), "delete");
    log::info("fhir.subscription_deleted", {{"subscription", id}, {"agency", current->agency_id}});
    Response r;
    r.status = 204;
    r.content_type.clear();
    co_return count(std::move(r), "delete");
  }
};

SubscriptionApi::SubscriptionApi(pipeline::SubscriptionStore& store, SubscriptionApiOptions options,
                                 metrics::Registry& registry)
    : impl_(std::make_unique<Impl>(
          Impl{store, std::move(options),
               registry.counter("sdoh_fhir_subscription_interactions_total",
                                "FHIR Subscription interactions by interaction, type and status.",
                                {"interaction", "type", "status"})})) {}

SubscriptionApi::~SubscriptionApi() = default;

void SubscriptionApi::add_routes(http::Router& router) {
  Impl* s = impl_.get();
  auto add = [s, &router](std::string method, std::string pattern, http::Handler handler) {
    if (auto* store_threads = s->options.store_executor)
      handler = store_threads->wrap(std::move(handler));
    router.add(std::move(method), std::move(pattern), std::move(handler));
  };
  add("POST", "/fhir/Subscription",
      [s](Request& req) -> asio::awaitable<Response> { co_return co_await s->create(req); });
  add("GET", "/fhir/Subscription",
      [s](Request& req) -> asio::awaitable<Response> { co_return co_await s->search(req); });
  add("GET", "/fhir/Subscription/{id}",
      [s](Request& req) -> asio::awaitable<Response> { co_return co_await s->read(req); });
  add("PUT", "/fhir/Subscription/{id}",
      [s](Request& req) -> asio::awaitable<Response> { co_return co_await s->update(req); });
  add("DELETE", "/fhir/Subscription/{id}",
      [s](Request& req) -> asio::awaitable<Response> { co_return co_await s->remove(req); });
}

}  // namespace sdoh::fhir
