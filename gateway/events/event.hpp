#pragma once
// An event the gateway publishes: a CloudEvents 1.0 JSON object in structured mode (the whole
// envelope is the Kafka message value, with content-type application/cloudevents+json).
// The schemas in schemas/events/ are the contract; tests validate every event against them.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sdoh::events {

enum class EventType { kScreening, kReferral, kReferralStatus, kDeadLetter, kAuditAnchor };

/// "org.sdoh.screening.v1", ...
std::string_view type_name(EventType type);
/// The $id of the type's data schema, used as CloudEvents `dataschema`.
std::string_view data_schema(EventType type);

inline constexpr std::string_view kContentType = "application/cloudevents+json";

struct Event {
  EventType type = EventType::kScreening;
  std::string id;       ///< deterministic: a resend of the same source message yields the same id
  std::string source;   ///< "urn:sdoh-gateway:<gateway_id>"
  std::string subject;  ///< screeningId / referralId / deadLetterId
  std::string time;     ///< RFC 3339, UTC
  std::string topic;
  std::string key;   ///< Kafka message key: patient pseudonym or referral id
  std::string data;  ///< the data object as JSON text

  /// The CloudEvents envelope as JSON text, `data` embedded as is.
  std::string envelope() const;
};

/// A deterministic event id: the first 128 bits of SHA-256 over the source message's identity
/// (protocol, sender, message id) and the event's position among the events derived from it,
/// as 32 lowercase hex characters.
std::string event_id(std::string_view source_identity, int position);

/// Whether `value` is a W3C Trace Context traceparent: "00-<32 hex trace id>-<16 hex parent
/// id>-<2 hex flags>", lower case, ids not all zero, version not ff.
bool is_traceparent(std::string_view value);

/// An event's envelope (as Event::envelope() writes it) with the CloudEvents Distributed Tracing
/// extension attribute traceparent, so that one trace spans the request that caused the event
/// and its consumers; unchanged when `traceparent` is not one (is_traceparent).
std::string with_traceparent(std::string envelope, std::string_view traceparent);

/// "urn:sdoh-gateway:<gateway_id>".
std::string event_source(std::string_view gateway_id);

/// Now, as RFC 3339 UTC with milliseconds: "2026-11-25T10:00:00.123Z".
std::string now_rfc3339();
/// A Unix time in milliseconds, as RFC 3339 UTC with milliseconds.
std::string rfc3339_from_ms(std::int64_t unix_ms);
/// An RFC 3339 instant with its zone, YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm), as a Unix time in
/// milliseconds (digits past the third of the fraction are ignored); nullopt if it is not one.
std::optional<std::int64_t> ms_from_rfc3339(std::string_view text);

}  // namespace sdoh::events
