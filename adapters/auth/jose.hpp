#pragma once
// A small JOSE layer over OpenSSL 3's EVP: what SMART Backend Services need and nothing more.
//   - base64url (RFC 4648 5, unpadded, strict);
//   - JWKs (RFC 7517) of RSA (>= 2048 bits) and EC P-256 / P-384 public keys;
//   - compact JWS (RFC 7515) verification with RS256/384/512 and ES256/384 (RFC 7518 3.3, 3.4);
//   - ES256 signing, for the gateway's own access tokens;
//   - JWT claims (RFC 7519) as values.
// The algorithm a signature is checked with is one the caller allows AND one the key's own type
// (and curve, and "alg" member if it has one) fits: the header's "alg" alone never picks it, so
// "none", HMAC (HS256 keyed with a public key) and RSA/EC confusion are refused by construction.
// Pure and thread-safe: keys are immutable once built.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/result.hpp"

typedef struct evp_pkey_st EVP_PKEY;

namespace sdoh::auth {

std::string base64url_encode(std::string_view bytes);
/// Strict: the URL-safe alphabet only, no padding, no white space, no impossible lengths.
std::optional<std::string> base64url_decode(std::string_view text);

enum class Alg { kRS256, kRS384, kRS512, kES256, kES384 };
/// "RS384" → kRS384; nothing for "none", "HS256" or anything else this layer does not verify.
std::optional<Alg> alg_from_name(std::string_view name);
std::string_view alg_name(Alg alg);

/// A public key from a JWK.
class Jwk {
 public:
  /// From one JWK object's JSON text. Refused: kty other than RSA or EC, an RSA modulus under
  /// 2048 bits, a curve other than P-256/P-384, a point not on its curve, private members (d):
  /// a client's JWKS publishes public keys only.
  static Result<Jwk> from_json(std::string_view json);
  const std::string& kid() const { return kid_; }
  const std::string& kty() const { return kty_; }
  /// Whether this key may verify `alg`: RSA keys the RS algorithms, a P-256 key ES256, a P-384
  /// key ES384; and, when the JWK names an alg (or a use other than "sig"), only that.
  bool fits(Alg alg) const;
  EVP_PKEY* key() const { return key_.get(); }

 private:
  std::shared_ptr<EVP_PKEY> key_;
  std::string kid_, kty_, crv_, alg_, use_;
};

/// A JWKS document ({"keys": [...]}): its usable keys, and in `skipped` why others were left out
/// (an unsupported kty, say). Refused when it is not a JWKS at all.
struct Jwks {
  std::vector<Jwk> keys;
  std::vector<std::string> skipped;
};
Result<Jwks> parse_jwks(std::string_view json);

/// A compact JWS split and decoded, not yet verified.
struct Jws {
  std::string header_json;
  std::string payload_json;
  std::string alg;  ///< the header's alg, as written
  std::string kid;  ///< empty when the header has none
  std::string typ;
  std::string signing_input;  ///< "<header>.<payload>" as received
  std::string signature;      ///< decoded bytes
};
/// Splits and decodes a compact JWS (three base64url parts; at most 16 KiB). The header must be
/// a JSON object with a string alg and no "crit" (no extension this layer understands).
Result<Jws> parse_compact(std::string_view token);

/// Verifies `jws` with `key`: its alg must be in `allowed` and fit the key. Errors say which rule
/// failed (kInvalid).
Result<void> verify(const Jws& jws, const Jwk& key, std::span<const Alg> allowed);

/// JWT claims (RFC 7519 4.1) the gateway reads; times in seconds since the epoch.
struct Claims {
  std::string iss, sub, jti, scope, client_id;
  std::vector<std::string> aud;  ///< a string aud is a list of one
  std::optional<std::int64_t> exp, nbf, iat;
};
/// Refused when the payload is not a JSON object or a registered claim has the wrong type.
Result<Claims> parse_claims(std::string_view payload_json);

/// The gateway's own signing key: EC P-256, ES256. Its kid is its RFC 7638 thumbprint.
class SigningKey {
 public:
  static Result<SigningKey> generate();
  static Result<SigningKey> from_pem(std::string_view private_pem);
  std::string private_pem() const;  ///< PKCS#8
  const std::string& kid() const { return kid_; }
  std::string_view alg() const { return "ES256"; }
  /// {"kty":"EC","crv":"P-256","x":…,"y":…,"kid":…,"alg":"ES256","use":"sig"}
  const std::string& public_jwk_json() const { return public_jwk_; }
  /// A compact JWS of `payload_json` with header {"alg":"ES256","typ":typ,"kid":kid}.
  Result<std::string> sign(std::string_view payload_json, std::string_view typ) const;

 private:
  Result<void> describe();
  std::shared_ptr<EVP_PKEY> key_;
  std::string kid_, public_jwk_;
};

}  // namespace sdoh::auth
