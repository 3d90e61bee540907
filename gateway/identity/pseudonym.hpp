#pragma once
// Patient pseudonyms: HMAC-SHA256 over the identifier's assigning authority and value with a
// secret key, so that agencies can link a family's events without ever seeing an MRN, and
// nobody without the key can reverse or recompute it. The key comes from an environment
// variable or a file (pseudonym.key) and is never logged.
#include <map>
#include <string>
#include <string_view>

namespace sdoh::identity {

class Pseudonymizer {
 public:
  /// `authority_aliases` maps an assigning authority (e.g. HL7 "PEDS_A") to the identifier
  /// system used for the same register elsewhere, which is what gets hashed.
  explicit Pseudonymizer(std::string key, std::map<std::string, std::string> authority_aliases = {})
      : key_(std::move(key)), aliases_(std::move(authority_aliases)) {}

  /// 64 lowercase hex characters: HMAC-SHA256(key, authority + "|" + identifier), after trimming
  /// surrounding spaces and replacing an aliased authority. The same patient gets the same
  /// pseudonym from HL7 and FHIR when both name the same register.
  std::string pseudonym(std::string_view authority, std::string_view identifier) const;

  /// A referral's id (Task.id, referralId): 32 lowercase hex of HMAC-SHA256(key, "referral|" +
  /// system + "|" + value) for the clinic's referral number in its namespace. The gateway derives
  /// it again from the number; without the key nobody can, so ids cannot be guessed from clinic
  /// numbers.
  std::string referral_id(std::string_view system, std::string_view value) const;

  /// A key for development only; the gateway logs that it is in use.
  static constexpr std::string_view kDevelopmentKey = "sdoh-gateway-development-key-not-secret";

 private:
  std::string mac_hex(std::string_view message) const;
  std::string key_;
  std::map<std::string, std::string> aliases_;
};

/// Lowercase hex of SHA-256(text).
std::string sha256_hex(std::string_view text);

}  // namespace sdoh::identity
