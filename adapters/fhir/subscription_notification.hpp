#pragma once
// What a FHIR Subscription's rest-hook endpoint receives (Subscriptions R5 Backport IG, R4): a
// `subscription-notification` Bundle of type history whose first entry is the
// SubscriptionStatus Parameters (backport-subscription-status-r4), then, for an
// event-notification, the referral Tasks (full-resource) — and how each delivery is signed and
// retried. Pure: no I/O (the sender is subscription_delivery.hpp).
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/pipeline/subscription_port.hpp"

namespace sdoh::fhir {

inline constexpr std::string_view kBackport = "http://hl7.org/fhir/uv/subscriptions-backport";
inline constexpr std::string_view kPayloadContentUrl =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
inline constexpr std::string_view kHeartbeatPeriodUrl =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period";
inline constexpr std::string_view kFilterCriteriaUrl =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria";
/// The topic every agency subscribes to: its referrals and their status changes.
inline constexpr std::string_view kTopicId = "agency-referrals";
/// The headers of a signed delivery.
inline constexpr std::string_view kSignatureHeader = "X-Sdoh-Signature";
inline constexpr std::string_view kTimestampHeader = "X-Sdoh-Timestamp";

/// The topic's canonical URL at this gateway: <base>/SubscriptionTopic/agency-referrals.
std::string topic_url(std::string_view base);

enum class NotificationType { kHandshake, kHeartbeat, kEventNotification };
std::string_view to_string(NotificationType t);

struct NotificationContent {
  NotificationType type = NotificationType::kEventNotification;
  std::string base;                               ///< the FHIR base URL (absolute)
  pipeline::SubscriptionRow subscription;         ///< its status as the Bundle reports it
  std::vector<pipeline::NotificationRow> events;  ///< event-notification only, in order
  /// full-resource: what else the agency may read about these events (the ServiceRequest each
  /// Task is for), as (type/id, JSON), after the Tasks.
  std::vector<std::pair<std::string, std::string>> included;
  std::string timestamp;  ///< RFC 3339, Bundle.timestamp
  std::string bundle_id;
};

/// The notification Bundle (JSON). id-only: each event's focus is a reference to its Task;
/// full-resource: the Task also follows as an entry (a NotificationRow without a Task is sent
/// as id-only), then the `included` resources.
std::string notification_bundle(const NotificationContent& c);

/// HMAC-SHA256 over "<timestamp>.<body>" with the Subscription's secret, as lower-case hex: the
/// X-Sdoh-Signature header is "sha256=<hex>", X-Sdoh-Timestamp the Unix seconds.
std::string signature(std::string_view secret, std::string_view timestamp, std::string_view body);

/// A new random secret (32 bytes, hex) for a Subscription that brought none.
std::string new_secret();

/// Retries: exponential backoff per Subscription; after `max_attempts` failures in a row, or
/// failures for longer than `give_up_after`, the Subscription goes to `error` (its queue kept).
struct RetryPolicy {
  std::chrono::milliseconds initial{1'000};
  std::chrono::milliseconds max{300'000};
  int max_attempts = 10;
  std::chrono::milliseconds give_up_after{std::chrono::hours(24)};
};

struct FailureVerdict {
  bool give_up = false;  ///< the Subscription goes to error
  int failures = 0;      ///< failures in a row, this one included
  std::int64_t first_failure_ms = 0;
  std::int64_t next_attempt_ms = 0;  ///< when to try again (not given up)
};

/// After a failed attempt at `now_ms` by a Subscription with `failures` failures in a row since
/// `first_failure_ms` (0: none). `unit` is a random draw in [0, 1) for jitter (a quarter).
FailureVerdict after_failure(const RetryPolicy& policy, int failures, std::int64_t first_failure_ms,
                             std::int64_t now_ms, double unit);

}  // namespace sdoh::fhir
