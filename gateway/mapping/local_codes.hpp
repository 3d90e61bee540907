#pragma once
// Clinics' local codes for the need a referral is for, translated to the common categories.
// Real EHRs send their own codes in RF1-3 (referral type), RF1-5 (referral category), OBR-4,
// OBX-3 and in FHIR ServiceRequest.category/code (`EI^Early intervention^LOCAL`). One file per
// clinic (or network) in schemas/mappings/local/ says, for the senders it names, which local code
// means which Gravity SDOH category, or that a code names no need at all (a generic "social
// needs" referral type). A referral whose need no code or answer tells is not refused: it is held
// uncategorised (mapping::kUncategorised) until a table translates it and the message is
// replayed. See schemas/mappings/README.md ("Local codes").
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "gateway/core/result.hpp"

namespace sdoh::mapping {

class MappingTables;

/// What a table says of one local code.
struct LocalCode {
  std::string table;     ///< the id of the table that says it
  std::string category;  ///< the Gravity category; empty: the code names no need
};

class LocalCodes {
 public:
  /// Loads `dir`/local/*.json (none: no translations), each checked against
  /// `dir`/local-codes.schema.json and its categories against `tables`; duplicate codes for one
  /// sender are refused. Errors name the file, the JSON path and the reason.
  static Result<LocalCodes> load(const std::filesystem::path& dir, const MappingTables& tables);

  /// What the tables for `sender` (HL7 "MSH-3^MSH-4", a FHIR client's id) say of the code
  /// `system`|`code` (system as received: an HL7 coding system name such as LOCAL or 99ZZZ, or a
  /// FHIR system URI); a table for "*" applies to every sender. nullopt: no table knows it.
  std::optional<LocalCode> find(std::string_view sender, std::string_view system,
                                std::string_view code) const;

  std::size_t size() const { return codes_.size(); }

 private:
  // (sender or "*", system, code) → what it means.
  std::map<std::tuple<std::string, std::string, std::string>, LocalCode, std::less<>> codes_;
};

}  // namespace sdoh::mapping
