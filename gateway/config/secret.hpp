#pragma once
// A secret (TLS key password, Kafka SASL password, pseudonym key) is never written in the
// YAML itself: the config names where to read it, an environment variable or a file, so that
// automated deploys can inject it (Kubernetes secrets, systemd credentials).
#include <string>

#include "gateway/core/result.hpp"

namespace sdoh::config {

struct SecretRef {
  enum class Source { kNone, kEnv, kFile };
  Source source = Source::kNone;
  std::string name{};  ///< variable name or file path; never the secret itself

  // Not an aggregate: GCC 12 at -O3 misreads a value-initialised aggregate holding one as
  // "maybe uninitialized" (config::StoreConfig{} in tests).
  SecretRef() noexcept {}
  SecretRef(Source s, std::string n) : source(s), name(std::move(n)) {}

  bool configured() const { return source != Source::kNone; }
  /// "env:NAME" or "file:PATH" — what logs and errors may show.
  std::string describe() const;
  /// Reads the secret. A file's trailing newline is dropped. Errors name the variable or file,
  /// never the value.
  Result<std::string> resolve() const;
};

}  // namespace sdoh::config
