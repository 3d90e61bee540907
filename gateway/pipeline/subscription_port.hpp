#pragma once
// Agencies' FHIR Subscriptions (R4, Subscriptions R5 Backport IG) and the notifications queued
// for them. Notifications are queued by the store in the same transaction as the referral
// change that causes them (CommitRequest::notices), one per Subscription of the owning agency,
// and are delivered in that order per Subscription (so per referral) until the endpoint takes
// them. Implemented by the SQLite store (adapters/store); every call blocks on the store: call
// from the store executor or a thread of its own, never an I/O thread.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gateway/core/result.hpp"

namespace sdoh::pipeline {

/// Subscription.status (R4): requested until its handshake succeeds, active, error after too
/// many failed deliveries (its notifications are kept), off when the agency turns it off.
struct SubscriptionRow {
  std::string id;
  std::string agency_id;  ///< the agency that owns it: only its referrals are notified
  std::string client_id;  ///< the FHIR client that created it
  std::string status = "requested";
  std::string endpoint;                 ///< rest-hook URL
  std::string content = "id-only";      ///< id-only | full-resource
  std::string secret;                   ///< HMAC-SHA256 key of the signature header
  std::int64_t heartbeat_seconds = 0;   ///< backport-heartbeat-period; 0: none
  std::string end;                      ///< Subscription.end (RFC 3339), may be empty
  std::string reason;                   ///< Subscription.reason
  std::string error;                    ///< why it is in error (no PHI)
  std::int64_t events_since_start = 0;  ///< notifications queued so far (numbered 1, 2, …)
  std::int64_t version = 1;             ///< meta.versionId
  std::string last_updated;             ///< RFC 3339
  // Delivery state (the sender's).
  int failures = 0;                   ///< failed attempts in a row
  std::int64_t first_failure_ms = 0;  ///< when the current run of failures began; 0: none
  std::int64_t next_attempt_ms = 0;   ///< not before
  std::int64_t last_sent_ms = 0;      ///< the last delivery the endpoint took (heartbeats)
};

/// One queued notification of a referral change.
struct NotificationRow {
  std::int64_t seq = 0;  ///< queue order
  std::string subscription_id;
  std::int64_t event_number = 0;  ///< eventsSinceSubscriptionStart of this event
  std::string referral_id;
  int sequence = 0;  ///< the referral's status sequence
  std::string status;
  std::string task_json;   ///< may be empty (read the current Task)
  std::string created_at;  ///< RFC 3339: when the change was committed
};

/// What the sender learned from one attempt at a Subscription's endpoint.
struct DeliveryRecord {
  std::string subscription_id;
  /// The notifications the endpoint took (removed from the queue); empty for a handshake or
  /// heartbeat, or a failure.
  std::vector<std::int64_t> delivered;
  std::string status;  ///< the Subscription's status from now on
  std::string error;   ///< Subscription.error text (no PHI); empty: clear it
  int failures = 0;
  std::int64_t first_failure_ms = 0;
  std::int64_t next_attempt_ms = 0;
  std::int64_t last_sent_ms = 0;
  /// Only while the stored Subscription is still at this version (the agency may have changed
  /// or deleted it meanwhile: then nothing is recorded).
  std::int64_t version = 0;
};

class SubscriptionStore {
 public:
  virtual ~SubscriptionStore() = default;
  /// Creates it (version 1) or replaces it (the caller sets version = stored + 1); fails with
  /// kConflict when `expected_version` is not the stored version (0: must not exist).
  virtual Result<void> put_subscription(const SubscriptionRow& row,
                                        std::int64_t expected_version) = 0;
  virtual Result<std::optional<SubscriptionRow>> subscription(const std::string& id) const = 0;
  /// An agency's Subscriptions (all when `agency_id` is empty), by id.
  virtual Result<std::vector<SubscriptionRow>> subscriptions(
      const std::string& agency_id) const = 0;
  /// Removes it and its queued notifications. False when it did not exist.
  virtual Result<bool> delete_subscription(const std::string& id) = 0;
  /// Its first `limit` queued notifications, in order.
  virtual Result<std::vector<NotificationRow>> queued_notifications(const std::string& id,
                                                                    int limit) const = 0;
  /// How many notifications wait, over every Subscription (a gauge).
  virtual Result<std::int64_t> queued_notification_count() const = 0;
  /// Records an attempt (see DeliveryRecord). Blocks until committed.
  virtual Result<void> record_delivery(const DeliveryRecord& record) = 0;
};

}  // namespace sdoh::pipeline
