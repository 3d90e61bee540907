#pragma once
// The data of an org.sdoh.deadletter.v1 event: what was rejected, why, where and from whom,
// with no PHI beyond the message id. The rejected bytes stay in the store for replay.
#include <optional>
#include <string>

#include "gateway/core/result.hpp"

namespace sdoh::events {

struct DeadLetter {
  std::string dead_letter_id;  ///< 32 hex, deterministic from the source message
  std::string received_at;     ///< RFC 3339
  std::string protocol;        ///< hl7v2 | fhir | kafka
  std::string sender;
  std::optional<std::string> message_id;
  std::optional<std::string> message_type;
  std::string stage;  ///< framing | parse | validate | map | route | lifecycle | publish
  std::string code;   ///< HL7 table 0357 code or a FHIR issue code
  std::string text;   ///< never PHI
  Location where;
  bool replayable = true;
};

/// The event's data object as JSON text.
std::string dead_letter_data(const DeadLetter& d);

}  // namespace sdoh::events
