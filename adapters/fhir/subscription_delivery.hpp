#pragma once
// Delivers agencies' FHIR Subscription notifications over rest-hook (HTTP POST of the
// notification Bundle, subscription_notification.hpp), from the store's queue, on a thread of
// its own:
//   - requested: a handshake; a 2xx makes it active, anything else error (with the reason);
//   - active: its queued notifications, one Bundle each, strictly in queue order (so in order
//     per referral); one is removed only once the endpoint answered 2xx. A failure stops the
//     Subscription's queue and retries it with exponential backoff (RetryPolicy); after
//     max_attempts failures in a row or give_up_after, it goes to error, its queue kept
//     (logged without PHI, counted) until the agency sets it requested again;
//   - a heartbeat when nothing was sent for backport-heartbeat-period seconds;
//   - error and off: nothing is sent; notifications still queue.
// Every POST carries X-Sdoh-Timestamp and X-Sdoh-Signature (HMAC-SHA256 with the
// Subscription's secret). Survives restarts: the queue and each Subscription's state are in the
// store; a notification the endpoint took but whose removal did not reach the store is sent
// again (at-least-once: receivers dedupe by Subscription and event-number).
#include <chrono>
#include <memory>
#include <string>

#include "adapters/fhir/subscription_notification.hpp"
#include "gateway/pipeline/resource_port.hpp"
#include "gateway/pipeline/subscription_port.hpp"

namespace sdoh::metrics {
class Registry;
}

namespace sdoh::fhir {

struct DeliveryOptions {
  /// The absolute FHIR base URL notifications name (fhir.base_url, else the HTTP listener's).
  std::string base;
  RetryPolicy retry;
  std::chrono::milliseconds timeout{10'000};  ///< per POST: connect, TLS, send, answer
  std::chrono::milliseconds interval{500};    ///< how often due work is looked for (and on wake)
  /// PEM CAs for https endpoints; empty: the system's trust store.
  std::string ca_file;
};

class SubscriptionSender {
 public:
  /// `store` and `resources` must outlive the sender.
  SubscriptionSender(pipeline::SubscriptionStore& store, const pipeline::ResourceReader& resources,
                     DeliveryOptions options, metrics::Registry& registry);
  ~SubscriptionSender();
  SubscriptionSender(const SubscriptionSender&) = delete;
  SubscriptionSender& operator=(const SubscriptionSender&) = delete;
  /// Starts the thread; `base` replaces DeliveryOptions::base when not empty (the listener's
  /// address is known only once it is bound).
  void start(std::string base = {});
  /// Looks for due work now (a commit queued notifications, a Subscription was created).
  void wake();
  /// Finishes the POST under way (bounded by `timeout`) and joins the thread.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdoh::fhir
