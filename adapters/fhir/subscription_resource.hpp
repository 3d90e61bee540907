#pragma once
// The R4 Subscription resource as the Subscriptions R5 Backport IG profiles it
// (backport-subscription), read from an agency's request and written from the stored row.
// Pure: no I/O.
//
//   criteria           <base>/SubscriptionTopic/agency-referrals (the one topic offered)
//   _criteria          backport-filter-criteria "Task?owner=Organization/<agency>" (optional for
//                      an agency: its own; required for the development client)
//   channel.type       rest-hook; channel.endpoint https (http only in dev mode or to loopback)
//   channel.payload    application/fhir+json, with backport-payload-content id-only |
//                      full-resource (default id-only)
//   channel            backport-heartbeat-period (seconds, optional), the signing secret
//                      (kSigningSecretUrl, optional: generated and returned once when absent)
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

#include "adapters/fhir/error.hpp"
#include "adapters/fhir/task_change.hpp"
#include "gateway/pipeline/subscription_port.hpp"

namespace sdoh::fhir {

/// The extension (on Subscription.channel) that carries the HMAC secret of the signature header.
inline constexpr std::string_view kSigningSecretUrl =
    "https://sdoh-gateway.org/fhir/StructureDefinition/subscription-signing-secret";

struct SubscriptionRules {
  std::string base;       ///< the FHIR base URL (the topic's canonical is built from it)
  bool dev_mode = false;  ///< plain http endpoints allowed anywhere
};

/// A Subscription from `client` as its request carries it: the agency it is for, endpoint,
/// payload content, heartbeat, secret (empty: none given), end and reason; status requested
/// (or off, when the request says off). Errors are 400/422/403 Problems naming the element.
std::expected<pipeline::SubscriptionRow, Problem> read_subscription(std::string_view json,
                                                                    const Client& client,
                                                                    const SubscriptionRules& rules);

/// An instant (FHIR instant, RFC 3339 with a zone: 2026-12-01T00:00:00Z, …T00:00:00.5-05:00) as
/// Unix milliseconds; nullopt when it is not one. Subscription.end is read with it.
std::optional<std::int64_t> instant_ms(std::string_view text);

/// The resource for a stored row. `with_secret`: the secret is shown (the answer to the create
/// that generated it, the only time it is).
std::string subscription_json(const pipeline::SubscriptionRow& row, std::string_view base,
                              bool with_secret);

}  // namespace sdoh::fhir
