#pragma once
// The FHIR Subscription routes under /fhir (R4, Subscriptions R5 Backport IG): an agency creates,
// reads, searches, updates and deletes its own rest-hook Subscriptions to the topic of its
// referrals and their status changes (subscription_resource.hpp). Another agency's Subscription
// is answered 404, as if it did not exist.
//
//   POST   /fhir/Subscription        201, status requested: the sender's handshake makes it
//                                    active (or error); a generated signing secret is in this
//                                    answer only
//   GET    /fhir/Subscription/{id}   its status, error and settings (never the secret)
//   GET    /fhir/Subscription        searchset of the client's Subscriptions
//   PUT    /fhir/Subscription/{id}   new settings; status requested again re-activates an error
//                                    or off Subscription (handshake, then its kept queue, in order)
//   DELETE /fhir/Subscription/{id}   removes it and the notifications it has not received
#include <expected>
#include <functional>
#include <memory>
#include <string>

#include "adapters/fhir/error.hpp"
#include "adapters/fhir/task_change.hpp"
#include "gateway/http/message.hpp"
#include "gateway/pipeline/store_executor.hpp"
#include "gateway/pipeline/subscription_port.hpp"

namespace sdoh::metrics {
class Registry;
}

namespace sdoh::fhir {

struct SubscriptionApiOptions {
  /// Who the request is from (the FHIR API's clients, Api::authenticate).
  std::function<std::expected<Client, Problem>(const http::Request&)> authenticate;
  /// The absolute FHIR base URL for the request (Api::base_url).
  std::function<std::string(const http::Request&)> base_url;
  bool dev_mode = false;
  /// Where the interactions run (their store calls block). Null: the caller's executor (tests).
  pipeline::StoreExecutor* store_executor = nullptr;
  /// Wakes the sender (a new or re-activated Subscription wants its handshake).
  std::function<void()> wake_sender;
};

class SubscriptionApi {
 public:
  /// `store` must outlive the SubscriptionApi.
  SubscriptionApi(pipeline::SubscriptionStore& store, SubscriptionApiOptions options,
                  metrics::Registry& registry);
  ~SubscriptionApi();
  SubscriptionApi(const SubscriptionApi&) = delete;
  SubscriptionApi& operator=(const SubscriptionApi&) = delete;

  void add_routes(http::Router& router);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdoh::fhir
