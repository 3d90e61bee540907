#pragma once
// HL7 v2 acknowledgments (HL7 v2.5.1 2.9 and 2.15.8 MSA, 2.15.5 ERR). One function turns an
// Error into an ACK with an ERR segment, so every refusal names where and why.
#include <array>
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

// Acknowledgment modes (HL7 v2.5 chapter 2, original and enhanced acknowledgment; MSH-15/MSH-16
// take HL7 table 0155 values AL always, NE never, ER on error only, SU on success only; MSA-1
// codes are HL7 table 0008):
//
// - Original mode (MSH-15 and MSH-16 both empty): one ACK per message, AA/AE/AR with ERR.
// - Enhanced mode (either valued): up to two messages, in this order, on the same connection:
//     1. the accept ACK, when MSH-15 asks (empty MSH-15 counts as AL): CA when the message was
//        committed to safe storage, CR when MSH-9, MSH-11 or MSH-12 was not acceptable (table
//        0008; a dead letter is kept), CE when nothing could be stored (resend later).
//     2. the application ACK, as a separate message, when MSH-16 asks (empty or unknown values
//        count as NE, so a sender that did not ask never gets an unexpected second answer):
//        only after a CA, because only a committed message is processed. MSA-1 is what original
//        mode would have answered: AA once the events are committed, AE/AR with ERR when the
//        content was refused (the message is kept as a dead letter, so the accept level was
//        still CA). MSH-9 ACK^<trigger>^ACK, its own MSH-10, MSA-2 the original MSH-10.
//        MSH-15 and MSH-16 are NE: the gateway keeps no state for it (a sender that missed it
//        resends the original and gets the stored answers again), and an acknowledgment is
//        never acknowledged in turn (that would loop).
//   One exception keeps a refusal from going unheard: when no accept ACK is sent for a
//   CR/CE (MSH-15 NE or SU) but MSH-16 asks for errors (AL or ER), the application ACK reports
//   it instead (AR for CR, AE for CE, with the same ERR).
// - Senders may acknowledge our application ACK (an incoming ACK message): the pipeline
//   consumes it without an answer, events or a dead letter.

/// Original mode unless the message asks for enhanced mode (MSH-15 or MSH-16 valued).
bool enhanced_mode(const Message& m);

/// Whether an accept ACK is due in enhanced mode for this outcome (MSH-15: AL always, NE
/// never, ER only on error, SU only on success; empty or an unknown value = AL).
bool accept_ack_requested(const Message& m, bool success);

/// Whether MSH-16 asks for an application acknowledgment for this outcome (AL always, ER only
/// on error, SU only on success; NE, empty or an unknown value never).
bool application_ack_requested(const Message& m, bool success);

/// How far a message got: decides the enhanced-mode accept code.
enum class Acceptance {
  kCommitted,       ///< stored, with its events or as a dead letter (refused content): CA
  kCommitRejected,  ///< MSH-9, MSH-11 or MSH-12 not acceptable; kept as a dead letter: CR
  kNotCommitted,    ///< nothing stored (store failure, a referral busy): CE, resend later
};

/// The answers one message gets, decided from MSH-15/MSH-16 alone (pure; see the top of the
/// file for the rules).
struct AckPlan {
  std::optional<AckCode> accept;       ///< enhanced mode: the accept ACK's MSA-1, when due
  std::optional<AckCode> application;  ///< the application ACK's MSA-1 (original mode: the ACK)
  /// What the answer amounts to, for metrics and the store's answer_code: original mode the
  /// ACK's code; enhanced mode CA/CR/CE, except AE/AR for committed but refused content.
  AckCode summary = AckCode::kAA;
};

/// `code` is the original-mode outcome: AA, or AE/AR for a refusal.
AckPlan plan_acks(const Message& m, AckCode code, Acceptance acceptance);

struct AckOptions {
  std::string control_id;                       ///< the ACK's own MSH-10
  std::string timestamp;                        ///< MSH-7, "YYYYMMDDHHMMSS+ZZZZ"
  std::string sending_application = "SDOH_GW";  ///< used when the message named no receiver
  /// MSH-15 and MSH-16 of the ACK itself; empty: not valued.
  std::string accept_ack_type;
  std::string application_ack_type;
};

/// The ACK for `m`: MSH swaps sender and receiver and keeps version and processing id,
/// MSA-2 echoes MSH-10 as sent, ERR is added when `error` is given: ERR-2 as locate_in() gives
/// it, ERR-3 the code, ERR-8 the text, and for a v2.3/v2.4 message ERR-1 (ELD) as well.
std::string build_ack(const Message& m, AckCode code, const std::optional<AckError>& error,
                      const AckOptions& options);

/// The application ACK's own control id, derived from the accept ACK's (`options.control_id`):
/// stable for a resend, different from it.
std::string application_control_id(const std::string& accept_control_id);

/// Everything `plan` says, in order, concatenated (each message ends with CR; the MLLP listener
/// frames each on its own, see split_answers). The accept ACK uses `options.control_id`, the
/// application ACK application_control_id() of it and MSH-15/16 NE (enhanced mode). ERR goes
/// with every negative code. Empty when nothing is due.
std::string build_answers(const Message& m, const AckPlan& plan,
                          const std::optional<AckError>& error, const AckOptions& options);

/// The ERR-3 code for a message that could not be read: 102 (data type error) for unusable
/// delimiters in MSH-1/MSH-2, else 100 (segment sequence error: no usable MSH first).
ErrorCondition unparseable_condition(const Error& error);

/// An answer for bytes that are not an HL7 message at all (no usable MSH): AR with ERR,
/// MSA-2 empty because there is no control id to echo. Written with the standard delimiters
/// whatever the input used.
std::string build_unparseable_ack(const Error& error, const AckOptions& options);

/// A refusal in HL7 terms: the original-mode code, the ERR and how far the message got.
struct Refusal {
  AckCode code = AckCode::kAE;
  AckError error;
  Acceptance acceptance = Acceptance::kCommitted;
};

/// Maps a gateway Error of a message that is kept as a dead letter: kUnsupported → AR (CR when
/// it names MSH-9, MSH-11 or MSH-12), kInvalid and kConflict → AE, kUnavailable → AE and not
/// committed (resend later), others → AE.
Refusal refusal_for(const Error& error);

/// The HL7 v2 versions (MSH-12.1, VID) the gateway reads: 2.3 through 2.8.2. Older versions lack
/// the segments and fields it reads (ERR-2, CWE, OBX-11 as used here); later ones are not tested.
inline constexpr std::array<std::string_view, 11> kSupportedVersions{
    "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"};

/// A header field that decides acceptance before any content is read.
struct HeaderRefusal {
  Error error;               ///< kUnsupported, located at the MSH field (AR, CR in enhanced mode)
  ErrorCondition condition;  ///< ERR-3
};

/// Checks MSH-11 (processing id, HL7 table 0103: P, T or D; empty is tolerated) and MSH-12
/// (version id, required: one of kSupportedVersions). A processing id outside the table is 202,
/// an unsupported version 203, an empty MSH-12 101 (required field missing); all name the field.
std::optional<HeaderRefusal> check_header(const Message& m);

/// Whether `where` names a segment occurrence present in `m` (segment id and sequence; a field
/// number is not checked against the segment's definition).
bool location_exists(const Message& m, const Location& where);

/// `where` when it names a segment occurrence of `m`, else MSH^1 (the message as a whole): an
/// ERR-2 never points the sender at a segment it did not send.
Location locate_in(const Message& m, Location where);

/// ERR-3 for an invalid-input Error (ErrorKind::kInvalid) at `where`, from what the message holds
/// there: no field named, or a segment that is not in the message: 100 (segment sequence error:
/// a required segment missing or out of order); the field empty: 101 (required field missing);
/// a value whose first component is the problem (a code): 103 (table value not found); any other
/// value that is there but unusable: 102 (data type error).
ErrorCondition invalid_condition(const Message& m, const Location& where);

}  // namespace sdoh::hl7v2
