#pragma once
// What SMART Backend Services keep in the store, so that several gateways on one database
// agree: the client assertions already used (RFC 7523 3: a jti is used once) and the key the
// gateway signs its access tokens with. Implemented by the store; a map in unit tests.
#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/core/result.hpp"

namespace sdoh::pipeline {

/// A token-signing key: its JWK kid, its JWS alg and the private key (PEM, PKCS#8).
struct SigningKeyRow {
  std::string kid;
  std::string alg;
  std::string private_pem;
};

class AuthStore {
 public:
  virtual ~AuthStore() = default;
  /// Records that `client_id` used the assertion `jti`, which is valid until `expires_at_ms`
  /// (unix ms). False when the same client's same jti is recorded and not yet expired: a replay.
  /// Atomic across gateways on the database; durable before it returns (blocks on the writer).
  virtual Result<bool> record_assertion(std::string_view client_id, std::string_view jti,
                                        std::int64_t expires_at_ms) = 0;
  /// The current token-signing key; `candidate` becomes it when there is none yet (the first
  /// start). Every gateway on the database gets the same one. Blocks on the writer.
  virtual Result<SigningKeyRow> signing_key(const SigningKeyRow& candidate) = 0;
};

}  // namespace sdoh::pipeline
