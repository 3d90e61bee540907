#include "gateway/core/result.hpp"

namespace sdoh {

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalid:
      return "invalid";
    case ErrorKind::kUnsupported:
      return "unsupported";
    case ErrorKind::kNotFound:
      return "not-found";
    case ErrorKind::kConflict:
      return "conflict";
    case ErrorKind::kUnavailable:
      return "unavailable";
    case ErrorKind::kConfig:
      return "config";
    case ErrorKind::kInternal:
      return "internal";
  }
  return "unknown";
}

}  // namespace sdoh
