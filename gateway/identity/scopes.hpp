#pragma once
// SMART system scopes (HL7 SMART App Launch 2.x, "Scopes for requesting clinical data") and the
// one table of what each FHIR interaction needs. A backend service's access token carries
// scopes such as "system/Task.rus" (v2: c create, r read, u update, d delete, s search) or
// "system/Patient.read" (v1: read = rs, write = cud, * = cruds); the FHIR API asks
// missing_scope() before each interaction and answers 403 naming the scope that was missing.
// Pure: no I/O.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sdoh::identity {

/// SMART v2 permissions as bits, in the order the scope string writes them ("cruds").
enum Permission : std::uint8_t {
  kCreate = 1,
  kRead = 2,
  kUpdate = 4,
  kDelete = 8,
  kSearch = 16,
  kAllPermissions = 31,
};

/// A set of system scopes: per resource type (or "*", every type) the permissions granted.
class Scopes {
 public:
  /// Parses a space-separated scope string. What is not a system scope this gateway understands
  /// (user/, patient/, launch, openid, v2 scopes with a ?query) grants nothing and is listed in
  /// `ignored` when given. Unknown permission letters make the scope ignored as a whole.
  static Scopes parse(std::string_view text, std::vector<std::string>* ignored = nullptr);

  /// The permissions on `type`: its own and those of "*".
  std::uint8_t permissions(std::string_view type) const;
  bool permits(std::string_view type, Permission p) const { return (permissions(type) & p) != 0; }
  bool empty() const { return by_type_.empty(); }

  /// What both grant (the scopes a client asked for and those it is allowed).
  Scopes intersect(const Scopes& other) const;
  /// v2 form, sorted by type, "*" first: "system/*.rs system/Task.rus".
  std::string to_string() const;

 private:
  void add(const std::string& type, std::uint8_t permissions);
  std::map<std::string, std::uint8_t> by_type_;
};

/// The FHIR interactions the gateway serves (FHIR R4 http.html), as the scope table names them.
enum class Interaction {
  kRead,
  kVread,
  kHistoryInstance,
  kSearchType,
  kCreate,
  kUpdate,
  kPatch,
  kDelete,
};

/// The permission `interaction` needs on its resource type: THE table (scopes.cpp), one row per
/// interaction. A transaction or batch needs the permission of each entry's own interaction.
Permission required_permission(Interaction interaction);
/// "read", "search-type", ... as FHIR names the interaction.
std::string_view interaction_name(Interaction interaction);

/// The v2 scope `interaction` on `type` needs, when `granted` lacks it ("system/Task.u"); none
/// when granted.
std::optional<std::string> missing_scope(const Scopes& granted, Interaction interaction,
                                         std::string_view type);

}  // namespace sdoh::identity
