#pragma once
// The CloudEvents Kafka protocol binding (CloudEvents 1.0, "Kafka Protocol Binding"), binary
// content mode: the event's attributes travel as headers named ce_<attribute> (UTF-8 strings),
// the header content-type is its datacontenttype, and the message value is its data. Most
// CloudEvents SDKs send this mode by default. The gateway reads it by turning it into the same
// event in structured mode, so that one validation and one handler serve both.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/core/result.hpp"

namespace sdoh::events {

using KafkaHeaders = std::vector<std::pair<std::string, std::string>>;

/// Whether a record is in binary mode: it has a ce_specversion header.
bool is_binary_mode(const KafkaHeaders& headers);

/// The structured-mode event (one JSON object) of a binary-mode record: every ce_* header an
/// attribute (a repeated header: the last one), content-type the datacontenttype, the value
/// parsed as `data`. Fails (kInvalid, where.expression "data") when the value is not JSON, or
/// (expression the attribute) when a header is not valid UTF-8 or names no attribute.
Result<std::string> structured_from_binary(const KafkaHeaders& headers, std::string_view value);

}  // namespace sdoh::events
