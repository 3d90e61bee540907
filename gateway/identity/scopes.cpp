#include "gateway/identity/scopes.hpp"

#include <array>
#include <utility>

namespace sdoh::identity {

namespace {

constexpr std::string_view kLetters = "cruds";

// "rus" → kRead|kUpdate|kSearch; v1 "read"/"write"/"*" too. 0: not a permission string. v2
// letters must come in cruds order, each at most once (SMART 2.x, "Scopes for requesting
// clinical data").
std::uint8_t parse_permissions(std::string_view text) {
  if (text == "read") return kRead | kSearch;
  if (text == "write") return kCreate | kUpdate | kDelete;
  if (text == "*") return kAllPermissions;
  std::uint8_t bits = 0;
  std::size_t next = 0;
  for (char c : text) {
    const auto at = kLetters.find(c, next);
    if (at == std::string_view::npos) return 0;
    bits = static_cast<std::uint8_t>(bits | (1u << at));
    next = at + 1;
  }
  return bits;
}

bool valid_type(std::string_view type) {
  if (type == "*") return true;
  if (type.empty() || type.front() < 'A' || type.front() > 'Z') return false;
  for (char c : type) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

struct Rule {
  Interaction interaction;
  std::string_view name;
  Permission permission;
};

// What each FHIR interaction needs on its resource type (SMART 2.x scopes; FHIR R4 http.html).
// vread and history read what a read reads; patch changes what an update changes.
constexpr std::array<Rule, 8> kRules = {{
    {Interaction::kRead, "read", kRead},
    {Interaction::kVread, "vread", kRead},
    {Interaction::kHistoryInstance, "history-instance", kRead},
    {Interaction::kSearchType, "search-type", kSearch},
    {Interaction::kCreate, "create", kCreate},
    {Interaction::kUpdate, "update", kUpdate},
    {Interaction::kPatch, "patch", kUpdate},
    {Interaction::kDelete, "delete", kDelete},
}};

const Rule& rule(Interaction interaction) {
  for (const auto& r : kRules) {
    if (r.interaction == interaction) return r;
  }
  return kRules.front();  // every enumerator has a row (scopes_test checks it)
}

std::string letters(std::uint8_t bits) {
  std::string out;
  for (std::size_t i = 0; i < kLetters.size(); ++i) {
    if ((bits & (1u << i)) != 0) out.push_back(kLetters[i]);
  }
  return out;
}

}  // namespace

Scopes Scopes::parse(std::string_view text, std::vector<std::string>* ignored) {
  Scopes out;
  while (!text.empty()) {
    const auto space = text.find_first_of(" \t");
    const auto one = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    if (one.empty()) continue;
    bool ok = false;
    if (one.starts_with("system/") && one.find('?') == std::string_view::npos) {
      const auto rest = one.substr(7);
      const auto dot = rest.find('.');
      if (dot != std::string_view::npos) {
        const auto type = rest.substr(0, dot);
        const auto bits = parse_permissions(rest.substr(dot + 1));
        if (bits != 0 && valid_type(type)) {
          out.add(std::string(type), bits);
          ok = true;
        }
      }
    }
    if (!ok && ignored != nullptr) ignored->emplace_back(one);
  }
  return out;
}

void Scopes::add(const std::string& type, std::uint8_t permissions) {
  by_type_[type] = static_cast<std::uint8_t>(by_type_[type] | permissions);
}

std::uint8_t Scopes::permissions(std::string_view type) const {
  std::uint8_t bits = 0;
  if (auto it = by_type_.find("*"); it != by_type_.end()) bits = it->second;
  if (auto it = by_type_.find(std::string(type)); it != by_type_.end())
    bits = static_cast<std::uint8_t>(bits | it->second);
  return bits;
}

Scopes Scopes::intersect(const Scopes& other) const {
  Scopes out;
  std::uint8_t any = 0;
  if (auto a = by_type_.find("*"), b = other.by_type_.find("*");
      a != by_type_.end() && b != other.by_type_.end()) {
    any = static_cast<std::uint8_t>(a->second & b->second);
    if (any != 0) out.add("*", any);
  }
  for (const auto* side : {&by_type_, &other.by_type_}) {
    for (const auto& [type, bits] : *side) {
      (void)bits;
      if (type == "*") continue;
      // What both grant on this type, less what "*" already gives.
      const auto both = static_cast<std::uint8_t>(permissions(type) & other.permissions(type));
      const auto extra = static_cast<std::uint8_t>(both & ~any);
      if (extra != 0) out.by_type_[type] = extra;
    }
  }
  return out;
}

std::string Scopes::to_string() const {
  std::string out;
  for (const auto& [type, bits] : by_type_) {  // std::map: "*" sorts before letters
    if (!out.empty()) out.push_back(' ');
    out += "system/" + type + "." + letters(bits);
  }
  return out;
}

Permission required_permission(Interaction interaction) {
  return rule(interaction).permission;
}

std::string_view interaction_name(Interaction interaction) {
  return rule(interaction).name;
}

std::optional<std::string> missing_scope(const Scopes& granted, Interaction interaction,
                                         std::string_view type) {
  const auto needed = required_permission(interaction);
  if (granted.permits(type, needed)) return std::nullopt;
  return "system/" + std::string(type) + "." + letters(needed);
}

}  // namespace sdoh::identity
