#include "adapters/fhir/subscription_delivery.hpp"

#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <rapidjson/document.h>

#include "adapters/fhir/subscription_resource.hpp"
#include "adapters/net/http_client.hpp"
#include "adapters/net/tls.hpp"
#include "gateway/core/json_parse.hpp"
#include "gateway/core/thread_name.hpp"
#include "gateway/events/event.hpp"
#include "gateway/log/log.hpp"
#include "gateway/metrics/registry.hpp"

namespace sdoh::fhir {

namespace asio = boost::asio;

namespace {

constexpr int kBatch = 50;  // notifications read per pass and Subscription

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct SubscriptionSender::Impl {
  pipeline::SubscriptionStore& store;
  const pipeline::ResourceReader& resources;
  DeliveryOptions options;
  std::thread thread;
  std::mutex mutex;
  std::condition_variable cv;
  bool stopping = false;  // guarded by mutex
  bool woken = false;     // guarded by mutex
  metrics::Family<metrics::Counter>& deliveries;
  metrics::Family<metrics::Counter>& errors;
  metrics::Family<metrics::Gauge>& queued;
  metrics::Family<metrics::Gauge>& by_status;
  // Belong to `thread`: its io_context runs only while one POST is under way.
  asio::io_context ioc;
  std::shared_ptr<asio::ssl::context> tls;
  std::mt19937_64 rng{std::random_device{}()};

  Impl(pipeline::SubscriptionStore& s, const pipeline::ResourceReader& r, DeliveryOptions o,
       metrics::Registry& registry)
      : store(s),
        resources(r),
        options(std::move(o)),
        deliveries(registry.counter(
            "sdoh_fhir_subscription_deliveries_total",
            "FHIR Subscription rest-hook POSTs by notification type and outcome (delivered, "
            "failed).",
            {"type", "outcome"})),
        errors(registry.counter("sdoh_fhir_subscription_errors_total",
                                "FHIR Subscriptions that went to status error (failed handshake, "
                                "or too many failed deliveries).",
                                {})),
        queued(registry.gauge("sdoh_fhir_subscription_queued_notifications",
                              "Notifications waiting for their Subscription's endpoint.", {})),
        by_status(registry.gauge("sdoh_fhir_subscriptions", "FHIR Subscriptions by status.",
                                 {"status"})) {}

  bool should_stop() {
    std::lock_guard lock(mutex);
    return stopping;
  }

  // One signed POST of `body` to the Subscription's endpoint: nullopt when it took it (2xx),
  // else why not (our words and the status code; never the endpoint's body).
  std::optional<std::string> post(const pipeline::SubscriptionRow& sub, const std::string& body) {
    auto url = net::HttpUrl::parse(sub.endpoint, "endpoint");
    if (!url) return url.error().message;
    if (url->https && !tls) {
      net::ClientTlsOptions o;
      o.ca_file = options.ca_file;
      auto made = net::make_client_tls_context(o, "fhir.subscriptions");
      if (!made) return made.error().message;
      tls = *made;
    }
    const auto timestamp = std::to_string(wall_ms() / 1000);
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Content-Type", "application/fhir+json; charset=utf-8"},
        {std::string(kTimestampHeader), timestamp},
        {std::string(kSignatureHeader), "sha256=" + signature(sub.secret, timestamp, body)},
    };
    std::optional<net::HttpPostResult> out;
    asio::co_spawn(ioc,
                   net::http_post(ioc.get_executor(), *url, std::move(headers), body,
                                  options.timeout, url->https ? tls : nullptr),
                   [&out](std::exception_ptr e, net::HttpPostResult r) {
                     if (e) {
                       r = net::HttpPostResult{};
                       r.error = "the POST failed unexpectedly";
                     }
                     out = std::move(r);
                   });
    ioc.restart();
    ioc.run();  // until the POST is done: it has a deadline
    if (!out) return "the POST did not complete";
    if (out->status && *out->status >= 200 && *out->status < 300) return std::nullopt;
    if (out->status) return "the endpoint answered HTTP " + std::to_string(*out->status);
    return out->error;
  }

  // full-resource: the ServiceRequest the Task is for (Task.focus), which its agency may read
  // too (GET /fhir/ServiceRequest/{id}); nothing when the Task names none or it is gone.
  std::vector<std::pair<std::string, std::string>> included(const std::string& task_json) {
    rapidjson::Document task;
    if (!json::parse(task, task_json) || !task.IsObject()) return {};
    auto focus = task.FindMember("focus");
    if (focus == task.MemberEnd() || !focus->value.IsObject()) return {};
    auto ref = focus->value.FindMember("reference");
    if (ref == focus->value.MemberEnd() || !ref->value.IsString()) return {};
    std::string_view r(ref->value.GetString(), ref->value.GetStringLength());
    constexpr std::string_view kPrefix = "ServiceRequest/";
    if (!r.starts_with(kPrefix)) return {};
    const std::string id(r.substr(kPrefix.size()));
    auto row = resources.read_resource("ServiceRequest", id);
    if (!row || !*row) return {};
    return {{"ServiceRequest/" + id, (*row)->json}};
  }

  std::string bundle(NotificationType type, const pipeline::SubscriptionRow& sub,
                     std::vector<pipeline::NotificationRow> events) {
    NotificationContent c;
    if (sub.content == "full-resource") {
      for (const auto& e : events) {
        if (!e.task_json.empty()) {
          for (auto& inc : included(e.task_json))
            c.included.push_back(std::move(inc));
        }
      }
    }
    c.type = type;
    c.base = options.base;
    c.subscription = sub;
    c.events = std::move(events);
    c.timestamp = events::now_rfc3339();
    c.bundle_id = new_secret().substr(0, 32);
    return notification_bundle(c);
  }

  // A failed attempt: backoff, or error past the threshold (`handshake`: error at once).
  void failed(const pipeline::SubscriptionRow& sub, NotificationType type, const std::string& why,
              std::int64_t now) {
    deliveries.with({std::string(to_string(type)), "failed"}).inc();
    std::uniform_real_distribution<double> draw(0.0, 1.0);
    auto v = after_failure(options.retry, sub.failures, sub.first_failure_ms, now, draw(rng));
    pipeline::DeliveryRecord rec;
    rec.subscription_id = sub.id;
    rec.version = sub.version;
    rec.failures = v.failures;
    rec.first_failure_ms = v.first_failure_ms;
    rec.next_attempt_ms = v.next_attempt_ms;
    rec.last_sent_ms = sub.last_sent_ms;
    const bool handshake = type == NotificationType::kHandshake;
    if (handshake || v.give_up) {
      rec.status = "error";
      rec.error = handshake ? "the handshake failed: " + why
                            : std::to_string(v.failures) + " deliveries failed in a row: " + why;
      errors.with().inc();
      // Ops see which Subscription of which agency, and why; never a referral or its content.
      log::warn("fhir.subscription_error", {{"subscription", sub.id},
                                            {"agency", sub.agency_id},
                                            {"failures", v.failures},
                                            {"reason", rec.error}});
    } else {
      rec.status = sub.status;
      rec.error = sub.error;
      log::info("fhir.subscription_retry", {{"subscription", sub.id},
                                            {"agency", sub.agency_id},
                                            {"attempt", v.failures},
                                            {"retry_in_ms", v.next_attempt_ms - now},
                                            {"reason", why}});
    }
    if (auto r = store.record_delivery(rec); !r) {
      log::warn("fhir.subscription_not_recorded",
                {{"subscription", sub.id}, {"reason", r.error().message}});
    }
  }

  void succeeded(const pipeline::SubscriptionRow& sub, NotificationType type,
                 std::vector<std::int64_t> delivered, std::int64_t now) {
    deliveries.with({std::string(to_string(type)), "delivered"}).inc();
    pipeline::DeliveryRecord rec;
    rec.subscription_id = sub.id;
    rec.version = sub.version;
    rec.delivered = std::move(delivered);
    rec.status = "active";
    rec.last_sent_ms = now;
    if (auto r = store.record_delivery(rec); !r) {
      log::warn("fhir.subscription_not_recorded",
                {{"subscription", sub.id}, {"reason", r.error().message}});
    }
    if (type == NotificationType::kHandshake)
      log::info("fhir.subscription_active", {{"subscription", sub.id}, {"agency", sub.agency_id}});
  }

  // Everything due for one Subscription, in order; stops at its first failure.
  void serve(pipeline::SubscriptionRow sub) {
    auto now = wall_ms();
    if (auto end = sub.end.empty() ? std::nullopt : instant_ms(sub.end); end && *end <= now) {
      // R4 Subscription.end: the server turns it off then (its notifications keep queueing).
      pipeline::DeliveryRecord rec;
      rec.subscription_id = sub.id;
      rec.version = sub.version;
      rec.status = "off";
      rec.last_sent_ms = sub.last_sent_ms;
      if (auto r = store.record_delivery(rec); r)
        log::info("fhir.subscription_ended", {{"subscription", sub.id}, {"agency", sub.agency_id}});
      return;
    }
    if (sub.next_attempt_ms > now) return;
    if (sub.status == "requested") {
      auto body = bundle(NotificationType::kHandshake, sub, {});
      if (auto why = post(sub, body)) return failed(sub, NotificationType::kHandshake, *why, now);
      succeeded(sub, NotificationType::kHandshake, {}, now);
      sub.status = "active";
      sub.last_sent_ms = now;
    }
    if (sub.status != "active") return;
    for (;;) {
      if (should_stop()) return;
      auto queue = store.queued_notifications(sub.id, kBatch);
      if (!queue || queue->empty()) break;
      for (auto& n : *queue) {
        if (should_stop()) return;
        if (sub.content == "full-resource" && n.task_json.empty()) {
          // Queued without the Task (the change wrote none): the Task as it is now.
          if (auto row = resources.read_resource("Task", n.referral_id); row && *row)
            n.task_json = (*row)->json;
        }
        const auto seq = n.seq;
        auto body = bundle(NotificationType::kEventNotification, sub, {std::move(n)});
        now = wall_ms();
        if (auto why = post(sub, body))
          return failed(sub, NotificationType::kEventNotification, *why, now);
        succeeded(sub, NotificationType::kEventNotification, {seq}, now);
        sub.last_sent_ms = now;
      }
    }
    now = wall_ms();
    if (sub.heartbeat_seconds > 0 && now - sub.last_sent_ms >= sub.heartbeat_seconds * 1000) {
      auto body = bundle(NotificationType::kHeartbeat, sub, {});
      if (auto why = post(sub, body)) return failed(sub, NotificationType::kHeartbeat, *why, now);
      succeeded(sub, NotificationType::kHeartbeat, {}, now);
    }
  }

  void run() {
    for (;;) {
      {
        std::unique_lock lock(mutex);
        cv.wait_for(lock, options.interval, [this] { return stopping || woken; });
        if (stopping) break;
        woken = false;
      }
      auto subs = store.subscriptions("");
      if (!subs) continue;
      std::map<std::string, double> counts{
          {"requested", 0}, {"active", 0}, {"error", 0}, {"off", 0}};
      for (const auto& s : *subs)
        counts[s.status] += 1;
      for (const auto& [status, n] : counts)
        by_status.with({status}).set(n);
      for (auto& s : *subs) {
        if (should_stop()) break;
        if (s.status == "requested" || s.status == "active") serve(std::move(s));
      }
      if (auto n = store.queued_notification_count()) queued.with().set(static_cast<double>(*n));
    }
  }
};

SubscriptionSender::SubscriptionSender(pipeline::SubscriptionStore& store,
                                       const pipeline::ResourceReader& resources,
                                       DeliveryOptions options, metrics::Registry& registry)
    : impl_(std::make_unique<Impl>(store, resources, std::move(options), registry)) {}

SubscriptionSender::~SubscriptionSender() {
  stop();
}

void SubscriptionSender::start(std::string base) {
  if (!base.empty()) impl_->options.base = std::move(base);
  impl_->thread = std::thread([impl = impl_.get()] {
    name_this_thread("subscriptions");
    impl->run();
  });
}

void SubscriptionSender::wake() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->woken = true;
  }
  impl_->cv.notify_one();
}

void SubscriptionSender::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->cv.notify_one();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace sdoh::fhir
