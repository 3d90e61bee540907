#include "adapters/hl7v2/ack.hpp"

#include <algorithm>

namespace sdoh::hl7v2 {

std::string_view to_string(AckCode code) {
  switch (code) {
    case AckCode::kAA:
      return "AA";
    case AckCode::kAE:
      return "AE";
    case AckCode::kAR:
      return "AR";
    case AckCode::kCA:
      return "CA";
    case AckCode::kCE:
      return "CE";
    case AckCode::kCR:
      return "CR";
  }
  return "AE";
}

std::string_view description(ErrorCondition c) {
  switch (c) {
    case ErrorCondition::kAccepted:
      return "Message accepted";
    case ErrorCondition::kSegmentSequenceError:
      return "Segment sequence error";
    case ErrorCondition::kRequiredFieldMissing:
      return "Required field missing";
    case ErrorCondition::kDataTypeError:
      return "Data type error";
    case ErrorCondition::kTableValueNotFound:
      return "Table value not found";
    case ErrorCondition::kUnsupportedMessageType:
      return "Unsupported message type";
    case ErrorCondition::kUnsupportedEventCode:
      return "Unsupported event code";
    case ErrorCondition::kUnsupportedProcessingId:
      return "Unsupported processing id";
    case ErrorCondition::kUnsupportedVersionId:
      return "Unsupported version id";
    case ErrorCondition::kUnknownKeyIdentifier:
      return "Unknown key identifier";
    case ErrorCondition::kDuplicateKeyIdentifier:
      return "Duplicate key identifier";
    case ErrorCondition::kApplicationRecordLocked:
      return "Application record locked";
    case ErrorCondition::kApplicationInternalError:
      return "Application internal error";
  }
  return "Application internal error";
}

bool enhanced_mode(const Message& m) {
  return !m.msh().raw(15).empty() || !m.msh().raw(16).empty();
}

bool accept_ack_requested(const Message& m, bool success) {
  const auto mode = m.msh().raw(15);
  if (mode.empty() || mode == "AL") return true;
  if (mode == "NE") return false;
  if (mode == "ER") return !success;
  if (mode == "SU") return success;
  return true;
}

namespace {

// `legacy`: the message is v2.3 or v2.4, whose ERR has only ERR-1 (ELD); it is valued as well,
// as v2.5 allows for backward compatibility, so that such a sender reads where and why too.
void append_err(std::string& out, const AckError& e, const Delimiters& d, bool legacy = false) {
  const char f = d.field, c = d.component;
  out += "ERR";
  out += f;
  if (legacy && !e.where.segment.empty()) {
    // ERR-1 (ELD): segment ^ sequence ^ field position ^ code (CE, as subcomponents).
    out += e.where.segment;
    out += c;
    out += std::to_string(e.where.sequence > 0 ? e.where.sequence : 1);
    out += c;
    if (e.where.field > 0) out += std::to_string(e.where.field);
    out += c;
    out += std::to_string(static_cast<int>(e.condition));
    out += d.subcomponent;
    out += escape(description(e.condition), d);
    out += d.subcomponent;
    out += "HL70357";
  }
  out += f;
  // ERR-2 error location: segment ^ sequence ^ field position ^ field repetition ^ component
  if (!e.where.segment.empty()) {
    out += e.where.segment;
    out += c;
    out += std::to_string(e.where.sequence > 0 ? e.where.sequence : 1);
    if (e.where.field > 0) {
      out += c;
      out += std::to_string(e.where.field);
      if (e.where.component > 0) {
        out += c;
        out += '1';
        out += c;
        out += std::to_string(e.where.component);
      }
    }
  }
  out += f;
  // ERR-3 HL7 error code (CWE, table 0357)
  out += std::to_string(static_cast<int>(e.condition));
  out += c;
  out += escape(description(e.condition), d);
  out += c;
  out += "HL70357";
  out += f;
  out += 'E';  // ERR-4 severity (table 0516): error
  out += f;    // ERR-5 application error code
  out += f;    // ERR-6 application error parameter
  out += f;    // ERR-7 diagnostic information
  out += f;
  out += escape(e.text, d);  // ERR-8 user message
  out += '\r';
}

}  // namespace

std::string build_ack(const Message& m, AckCode code, const std::optional<AckError>& error,
                      const AckOptions& options) {
  const auto& d = m.delimiters();
  const auto& msh = m.msh();
  const char f = d.field;
  std::string out;
  out.reserve(256);
  out += "MSH";
  out += f;
  out += msh.raw(2);
  out += f;
  // HL7 v2.5.1 2.9.2: the response's sender is the original receiver and vice versa.
  const auto receiving_app = msh.raw(5);
  out += receiving_app.empty() ? std::string_view(options.sending_application) : receiving_app;
  out += f;
  out += msh.raw(6);
  out += f;
  out += msh.raw(3);
  out += f;
  out += msh.raw(4);
  out += f;
  out += options.timestamp;
  out += f;
  out += f;
  out += "ACK";
  if (const auto trigger = msh.raw(9, 1, 2); !trigger.empty()) {
    out += d.component;
    out += trigger;
    out += d.component;
    out += "ACK";
  }
  out += f;
  out += options.control_id;
  out += f;
  out += msh.raw(11).empty() ? std::string_view("P") : msh.raw(11);
  out += f;
  out += msh.raw(12).empty() ? std::string_view("2.5.1") : msh.raw(12);
  if (!options.accept_ack_type.empty() || !options.application_ack_type.empty()) {
    out += f;  // MSH-13 sequence number
    out += f;  // MSH-14 continuation pointer
    out += f;
    out += options.accept_ack_type;
    out += f;
    out += options.application_ack_type;
  }
  out += '\r';
  // MSA-2 echoes MSH-10 exactly as sent (escapes included), so the sender can match it.
  out += "MSA";
  out += f;
  out += to_string(code);
  out += f;
  out += msh.raw(10);
  out += '\r';
  if (error) {
    AckError located = *error;
    located.where = locate_in(m, std::move(located.where));
    const auto version = m.get("MSH-12.1");
    append_err(out, located, d, version.starts_with("2.3") || version.starts_with("2.4"));
  }
  return out;
}

bool application_ack_requested(const Message& m, bool success) {
  const auto mode = m.msh().raw(16);
  if (mode == "AL") return true;
  if (mode == "ER") return !success;
  if (mode == "SU") return success;
  return false;
}

AckPlan plan_acks(const Message& m, AckCode code, Acceptance acceptance) {
  AckPlan plan;
  if (!enhanced_mode(m)) {
    plan.application = code;
    plan.summary = code;
    return plan;
  }
  const bool success = code == AckCode::kAA;
  switch (acceptance) {
    case Acceptance::kCommitted:
      // HL7 table 0008: CA is "committed to safe storage", whatever processing then found.
      if (accept_ack_requested(m, true)) plan.accept = AckCode::kCA;
      if (application_ack_requested(m, success)) plan.application = code;
      plan.summary = success ? AckCode::kCA : code;
      return plan;
    case Acceptance::kCommitRejected:
    case Acceptance::kNotCommitted: {
      const auto accept = acceptance == Acceptance::kCommitRejected ? AckCode::kCR : AckCode::kCE;
      if (accept_ack_requested(m, false)) {
        plan.accept = accept;
      } else if (application_ack_requested(m, false)) {
        // The sender wants no accept ACK for this but asked to hear of errors: never leave a
        // refusal unheard.
        plan.application = code;
      }
      plan.summary = accept;
      return plan;
    }
  }
  return plan;
}

std::string application_control_id(const std::string& accept_control_id) {
  return "APP" + accept_control_id.substr(std::min<std::size_t>(3, accept_control_id.size()));
}

std::string build_answers(const Message& m, const AckPlan& plan,
                          const std::optional<AckError>& error, const AckOptions& options) {
  std::string out;
  if (plan.accept) {
    const bool positive = *plan.accept == AckCode::kCA;
    out += build_ack(m, *plan.accept, positive ? std::nullopt : error, options);
  }
  if (plan.application) {
    const bool positive = *plan.application == AckCode::kAA;
    if (!enhanced_mode(m)) {
      out += build_ack(m, *plan.application, positive ? std::nullopt : error, options);
    } else {
      AckOptions app = options;
      app.control_id = application_control_id(options.control_id);
      app.accept_ack_type = "NE";
      app.application_ack_type = "NE";
      out += build_ack(m, *plan.application, positive ? std::nullopt : error, app);
    }
  }
  return out;
}

ErrorCondition unparseable_condition(const Error& error) {
  // Unusable delimiters in MSH-1/MSH-2 are a data type error in those fields; an empty MSH-9 or
  // MSH-10 (both required) is a required field missing; anything else that keeps a message from
  // being read is a segment sequence error (no usable MSH first, a malformed segment id).
  const bool msh = error.where.segment == "MSH" && error.where.sequence <= 1;
  if (msh && (error.where.field == 1 || error.where.field == 2))
    return ErrorCondition::kDataTypeError;
  if (msh && (error.where.field == 9 || error.where.field == 10))
    return ErrorCondition::kRequiredFieldMissing;
  return ErrorCondition::kSegmentSequenceError;
}

std::string build_unparseable_ack(const Error& error, const AckOptions& options) {
  const Delimiters d;
  std::string out = "MSH|^~\\&|" + options.sending_application + "||||" + options.timestamp +
                    "||ACK|" + options.control_id + "|P|2.5.1\rMSA|AR|\r";
  AckError e{unparseable_condition(error), error.where, error.message};
  if (e.where.segment.empty()) e.where.segment = "MSH";
  append_err(out, e, d);
  return out;
}

Refusal refusal_for(const Error& error) {
  Refusal r;
  r.error.where = error.where;
  r.error.text = error.message;
  switch (error.kind) {
    case ErrorKind::kUnsupported: {
      const auto field =
          error.where.segment == "MSH" || error.where.segment.empty() ? error.where.field : 0;
      r.code = AckCode::kAR;
      r.error.condition = field == 9    ? ErrorCondition::kUnsupportedMessageType
                          : field == 12 ? ErrorCondition::kUnsupportedVersionId
                          : field == 11 ? ErrorCondition::kUnsupportedProcessingId
                                        : ErrorCondition::kTableValueNotFound;
      // HL7 table 0008: CR is for exactly these three header fields.
      if (field == 9 || field == 11 || field == 12) r.acceptance = Acceptance::kCommitRejected;
      return r;
    }
    case ErrorKind::kInvalid:
      r.error.condition = error.where.field > 0 ? ErrorCondition::kRequiredFieldMissing
                                                : ErrorCondition::kSegmentSequenceError;
      return r;
    case ErrorKind::kConflict:
      r.error.condition = ErrorCondition::kDuplicateKeyIdentifier;
      return r;
    case ErrorKind::kUnavailable:
      r.error.condition = ErrorCondition::kApplicationRecordLocked;
      r.acceptance = Acceptance::kNotCommitted;
      return r;
    default:
      r.error.condition = ErrorCondition::kApplicationInternalError;
      return r;
  }
}

std::optional<HeaderRefusal> check_header(const Message& m) {
  // MSH-11.1, HL7 table 0103: D(ebugging), P(roduction), T(raining); empty is tolerated.
  const auto processing_id = m.get("MSH-11.1");
  if (!processing_id.empty() && processing_id != "P" && processing_id != "T" &&
      processing_id != "D") {
    return HeaderRefusal{
        Error::unsupported("MSH-11 processing id is not one of HL7 table 0103: P (production), T "
                           "(training) or D (debugging)",
                           Location{"MSH", 1, 11, 1, ""}),
        ErrorCondition::kUnsupportedProcessingId};
  }
  // HL7 v2.5.1 2.15.9.12: MSH-12 (VID) is required; its first component is the version.
  const auto version = m.get("MSH-12.1");
  if (version.empty()) {
    return HeaderRefusal{
        Error::unsupported("MSH-12 version id is empty: it is required (send 2.3 to 2.8.2)",
                           Location{"MSH", 1, 12, 0, ""}),
        ErrorCondition::kRequiredFieldMissing};
  }
  if (std::find(kSupportedVersions.begin(), kSupportedVersions.end(), version) ==
      kSupportedVersions.end()) {
    return HeaderRefusal{
        Error::unsupported("MSH-12 version id \"" + version.substr(0, 16) +
                               "\" is not supported: send one of 2.3, 2.3.1, 2.4, 2.5, 2.5.1, "
                               "2.6, 2.7, 2.7.1, 2.8, 2.8.1, 2.8.2",
                           Location{"MSH", 1, 12, 1, ""}),
        ErrorCondition::kUnsupportedVersionId};
  }
  return std::nullopt;
}

bool location_exists(const Message& m, const Location& where) {
  return !where.segment.empty() &&
         m.segment(where.segment, where.sequence > 0 ? where.sequence : 1) != nullptr;
}

Location locate_in(const Message& m, Location where) {
  if (location_exists(m, where)) return where;
  return Location{"MSH", 1, 0, 0, ""};
}

ErrorCondition invalid_condition(const Message& m, const Location& where) {
  if (where.field <= 0 || !location_exists(m, where)) return ErrorCondition::kSegmentSequenceError;
  const auto& segment = *m.segment(where.segment, where.sequence > 0 ? where.sequence : 1);
  if (segment.raw(where.field).empty()) return ErrorCondition::kRequiredFieldMissing;
  if (where.component == 1) return ErrorCondition::kTableValueNotFound;
  return ErrorCondition::kDataTypeError;
}

}  // namespace sdoh::hl7v2
