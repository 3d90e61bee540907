#include "adapters/hl7v2/ack.hpp"

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

void append_err(std::string& out, const AckError& e, const Delimiters& d) {
  const char f = d.field, c = d.component;
  out += "ERR";
  out += f;  // ERR-1 (v2.3 error code and location), not used from v2.5
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
  out += '\r';
  // MSA-2 echoes MSH-10 exactly as sent (escapes included), so the sender can match it.
  out += "MSA";
  out += f;
  out += to_string(code);
  out += f;
  out += msh.raw(10);
  out += '\r';
  if (error) append_err(out, *error, d);
  return out;
}

bool application_ack_requested(const Message& m, bool success) {
  const auto mode = m.msh().raw(16);
  if (mode == "AL") return true;
  if (mode == "ER") return !success;
  if (mode == "SU") return success;
  return false;
}

std::string build_answers(const Message& m, AckCode code, const std::optional<AckError>& error,
                          const AckOptions& options, bool accepted) {
  if (!enhanced_mode(m)) return build_ack(m, code, error, options);
  // The application-level outcome, whichever kind of code the caller named.
  AckCode app = code;
  if (code == AckCode::kCA) app = AckCode::kAA;
  if (code == AckCode::kCE || code == AckCode::kCR) {
    // Refused for good (a type, version or code this gateway does not take): AR; else AE.
    const auto c = error ? error->condition : ErrorCondition::kApplicationInternalError;
    const bool unsupported = c == ErrorCondition::kUnsupportedMessageType ||
                             c == ErrorCondition::kUnsupportedVersionId ||
                             c == ErrorCondition::kUnsupportedProcessingId;
    app = unsupported ? AckCode::kAR : AckCode::kAE;
  }
  const bool success = app == AckCode::kAA;
  std::string out;
  if (accepted) {
    if (accept_ack_requested(m, true)) out += build_ack(m, AckCode::kCA, std::nullopt, options);
    if (application_ack_requested(m, success)) {
      AckOptions app_options = options;
      app_options.control_id =
          "APP" + options.control_id.substr(std::min<std::size_t>(3, options.control_id.size()));
      auto ack = build_ack(m, app, error, app_options);
      // MSH-15/16 NE: no acknowledgment of this acknowledgment is wanted.
      const auto msh_end = ack.find('\r');
      const char f = m.delimiters().field;
      ack.insert(msh_end, std::string(2, f) + f + "NE" + f + "NE");
      out += ack;
    }
    return out;
  }
  AckCode accept = code;
  if (code == AckCode::kAA || code == AckCode::kCA) accept = AckCode::kCA;
  if (code == AckCode::kAE) accept = AckCode::kCE;
  if (code == AckCode::kAR) accept = AckCode::kCR;
  if (accept_ack_requested(m, false)) out += build_ack(m, accept, error, options);
  return out;
}

std::string build_unparseable_ack(const Error& error, const AckOptions& options) {
  const Delimiters d;
  std::string out = "MSH|^~\\&|" + options.sending_application + "||||" + options.timestamp +
                    "||ACK|" + options.control_id + "|P|2.5.1\rMSA|AR|\r";
  AckError e{ErrorCondition::kSegmentSequenceError, error.where, error.message};
  if (e.where.segment.empty()) e.where.segment = "MSH";
  append_err(out, e, d);
  return out;
}

std::pair<AckCode, AckError> negative_ack_for(const Message& m, const Error& error) {
  const bool enhanced = enhanced_mode(m);
  AckError e;
  e.where = error.where;
  e.text = error.message;
  switch (error.kind) {
    case ErrorKind::kUnsupported:
      e.condition = error.where.field == 9    ? ErrorCondition::kUnsupportedMessageType
                    : error.where.field == 12 ? ErrorCondition::kUnsupportedVersionId
                    : error.where.field == 11 ? ErrorCondition::kUnsupportedProcessingId
                                              : ErrorCondition::kTableValueNotFound;
      return {enhanced ? AckCode::kCR : AckCode::kAR, e};
    case ErrorKind::kInvalid:
      e.condition = error.where.field > 0 ? ErrorCondition::kRequiredFieldMissing
                                          : ErrorCondition::kSegmentSequenceError;
      return {enhanced ? AckCode::kCR : AckCode::kAE, e};
    case ErrorKind::kConflict:
      e.condition = ErrorCondition::kDuplicateKeyIdentifier;
      return {enhanced ? AckCode::kCR : AckCode::kAE, e};
    case ErrorKind::kUnavailable:
      e.condition = ErrorCondition::kApplicationRecordLocked;
      return {enhanced ? AckCode::kCE : AckCode::kAE, e};
    default:
      e.condition = ErrorCondition::kApplicationInternalError;
      return {enhanced ? AckCode::kCE : AckCode::kAE, e};
  }
}

}  // namespace sdoh::hl7v2
