#pragma once
// Errors are values inside the gateway (see STYLE.md "Errors are values inside, exceptions
// only at the edge"). Parsing, validation and mapping return Result<T>; an Error says where
// and why in terms the sender understands, so one function per protocol can turn it into an
// HL7 ACK with ERR or a FHIR OperationOutcome.
#include <expected>
#include <string>
#include <utility>

namespace sdoh {

/// What kind of failure an Error is. Protocol adapters map these to their own codes
/// (HL7 table 0357, HTTP status, FHIR issue type).
enum class ErrorKind {
  kInvalid,      ///< the input is malformed or breaks a rule (HL7 AE, HTTP 400/422)
  kUnsupported,  ///< well-formed but not something this gateway handles (HL7 AR, HTTP 415/422)
  kNotFound,     ///< a referenced thing does not exist (HTTP 404)
  kConflict,     ///< the request conflicts with current state (HTTP 409/412)
  kUnavailable,  ///< a dependency is down or full; retry later (HL7 AE/CE, HTTP 503)
  kConfig,       ///< the operator's configuration is wrong
  kInternal,     ///< a bug or an unexpected third-party failure
};

/// Where in the input an error was found. HL7 fields use segment/sequence/field/component
/// (ERR-2); FHIR uses a FHIRPath expression; config uses a key path in `expression`.
struct Location {
  std::string segment;     ///< HL7 segment id, e.g. "OBX"
  int sequence = 0;        ///< 1-based occurrence of the segment in the message (0 = unknown)
  int field = 0;           ///< 1-based field number (0 = whole segment)
  int component = 0;       ///< 1-based component (0 = whole field)
  std::string expression;  ///< FHIRPath or config key path

  bool empty() const { return segment.empty() && expression.empty(); }
};

struct Error {
  ErrorKind kind = ErrorKind::kInternal;
  std::string message;  ///< human-readable, safe to log: never contains PHI
  Location where;

  static Error invalid(Location where, std::string message) {
    return {ErrorKind::kInvalid, std::move(message), std::move(where)};
  }
  static Error invalid(std::string message) {
    return {ErrorKind::kInvalid, std::move(message), {}};
  }
  static Error unsupported(std::string message, Location where = {}) {
    return {ErrorKind::kUnsupported, std::move(message), std::move(where)};
  }
  static Error not_found(std::string message) {
    return {ErrorKind::kNotFound, std::move(message), {}};
  }
  static Error conflict(std::string message) {
    return {ErrorKind::kConflict, std::move(message), {}};
  }
  static Error unavailable(std::string message) {
    return {ErrorKind::kUnavailable, std::move(message), {}};
  }
  static Error config(std::string key_path, std::string message) {
    Location where;
    where.expression = std::move(key_path);
    return {ErrorKind::kConfig, std::move(message), std::move(where)};
  }
  static Error internal(std::string message) {
    return {ErrorKind::kInternal, std::move(message), {}};
  }
};

template <class T>
using Result = std::expected<T, Error>;

/// Shorthand for returning an error from a function that returns Result<T>.
inline std::unexpected<Error> fail(Error e) {
  return std::unexpected<Error>(std::move(e));
}

const char* to_string(ErrorKind kind);

}  // namespace sdoh
