#pragma once
// HL7 v2 acknowledgments (HL7 v2.5.1 2.9 and 2.15.8 MSA, 2.15.5 ERR). One function turns an
// Error into an ACK with an ERR segment, so every refusal names where and why.
#include <optional>
#include <string>
#include <string_view>

#include "adapters/hl7v2/message.hpp"
#include "gateway/core/result.hpp"

namespace sdoh::hl7v2 {

/// MSA-1 acknowledgment codes (HL7 table 0008).
enum class AckCode { kAA, kAE, kAR, kCA, kCE, kCR };
std::string_view to_string(AckCode code);

/// HL7 table 0357, message error condition codes (ERR-3), numbers as the standard gives them.
enum class ErrorCondition : int {
  kAccepted = 0,
  kSegmentSequenceError = 100,
  kRequiredFieldMissing = 101,
  kDataTypeError = 102,
  kTableValueNotFound = 103,
  kUnsupportedMessageType = 200,
  kUnsupportedEventCode = 201,
  kUnsupportedProcessingId = 202,
  kUnsupportedVersionId = 203,
  kUnknownKeyIdentifier = 204,
  kDuplicateKeyIdentifier = 205,
  kApplicationRecordLocked = 206,
  kApplicationInternalError = 207,
};
std::string_view description(ErrorCondition c);

/// What went wrong, for ERR. `where` uses segment/sequence/field/component (ERR-2).
struct AckError {
  ErrorCondition condition = ErrorCondition::kApplicationInternalError;
  Location where;
  std::string text;  ///< ERR-8 user message; never PHI
};

/// Original mode (AA/AE/AR) unless the message asks for enhanced mode (MSH-15 or MSH-16
/// valued), where the accept acknowledgment is CA/CE/CR.
bool enhanced_mode(const Message& m);

/// Whether an accept ACK is due in enhanced mode for this outcome (MSH-15: AL always, NE
/// never, ER only on error, SU only on success; empty = AL).
bool accept_ack_requested(const Message& m, bool success);

struct AckOptions {
  std::string control_id;                       ///< the ACK's own MSH-10
  std::string timestamp;                        ///< MSH-7, "YYYYMMDDHHMMSS+ZZZZ"
  std::string sending_application = "SDOH_GW";  ///< used when the message named no receiver
};

/// The ACK for `m`: MSH swaps sender and receiver and keeps version and processing id,
/// MSA-2 echoes MSH-10 as sent, ERR is added when `error` is given.
std::string build_ack(const Message& m, AckCode code, const std::optional<AckError>& error,
                      const AckOptions& options);

/// Whether MSH-16 asks for an application acknowledgment for this outcome (AL always, ER only
/// on error, SU only on success, NE or empty never).
bool application_ack_requested(const Message& m, bool success);

/// Everything a message is answered with, in order, concatenated (each message ends with CR):
///   - original mode (MSH-15 and MSH-16 empty): the ACK with `code` (AA/AE/AR);
///   - enhanced mode: the accept ACK when MSH-15 asks for it, then, when the message was
///     accepted (`accepted`: committed, events or dead letter) and MSH-16 asks for it, the
///     application ACK as a separate message: MSH-9 ACK^<trigger>^ACK, its own control id,
///     MSA-1 AA/AE/AR (from `code`), the same ERR, MSH-15/16 NE (no ACK of the ACK wanted).
///     The accept ACK is CA when accepted, else CE/CR (then no application ACK follows).
/// Empty when nothing is asked for (enhanced mode with NE).
std::string build_answers(const Message& m, AckCode code, const std::optional<AckError>& error,
                          const AckOptions& options, bool accepted);

/// An answer for bytes that are not an HL7 message at all (no usable MSH): AR with ERR,
/// MSA-2 empty because there is no control id to echo.
std::string build_unparseable_ack(const Error& error, const AckOptions& options);

/// Maps a gateway Error to the ACK code and ERR for this message: kInvalid → AE/CR,
/// kUnsupported → AR/CR, kUnavailable → AE/CE (retry later), others → AE/CE.
std::pair<AckCode, AckError> negative_ack_for(const Message& m, const Error& error);

}  // namespace sdoh::hl7v2
