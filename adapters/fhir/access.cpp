#include "adapters/fhir/access.hpp"

#include <rapidjson/document.h>

#include "gateway/core/json_parse.hpp"

namespace sdoh::fhir {

std::optional<Problem> scope_refusal(const Client& client, identity::Interaction interaction,
                                     std::string_view type) {
  if (!client.scopes) return std::nullopt;
  auto missing = identity::missing_scope(*client.scopes, interaction, type);
  if (!missing) return std::nullopt;
  const auto granted = client.scopes->to_string();
  return Problem::forbidden(
      "the access token does not grant " + *missing + ", which " +
      std::string(identity::interaction_name(interaction)) + " of " + std::string(type) +
      " needs (it grants: " + (granted.empty() ? std::string("nothing here") : granted) + ")");
}

std::optional<Problem> bundle_scope_refusal(const Client& client, std::string_view bundle_json) {
  if (!client.scopes) return std::nullopt;
  rapidjson::Document doc;
  if (!json::parse(doc, bundle_json) || !doc.IsObject()) return std::nullopt;
  auto entries = doc.FindMember("entry");
  if (entries == doc.MemberEnd() || !entries->value.IsArray()) return std::nullopt;
  for (const auto& e : entries->value.GetArray()) {
    if (!e.IsObject()) continue;
    auto resource = e.FindMember("resource");
    std::string type;
    if (resource != e.MemberEnd() && resource->value.IsObject()) {
      auto rt = resource->value.FindMember("resourceType");
      if (rt != resource->value.MemberEnd() && rt->value.IsString()) type = rt->value.GetString();
    }
    auto interaction = identity::Interaction::kCreate;
    auto request = e.FindMember("request");
    if (request != e.MemberEnd() && request->value.IsObject()) {
      auto method = request->value.FindMember("method");
      auto url = request->value.FindMember("url");
      const std::string m = method != request->value.MemberEnd() && method->value.IsString()
                                ? method->value.GetString()
                                : "";
      if (m == "PUT") interaction = identity::Interaction::kUpdate;
      if (m == "PATCH") interaction = identity::Interaction::kPatch;
      if (m == "DELETE") interaction = identity::Interaction::kDelete;
      if (m == "GET") interaction = identity::Interaction::kRead;
      if (type.empty() && url != request->value.MemberEnd() && url->value.IsString()) {
        const std::string u = url->value.GetString();
        type = u.substr(0, u.find_first_of("/?"));
        if (m == "GET" && u.find('/') == std::string::npos)
          interaction = identity::Interaction::kSearchType;
      }
    }
    if (type.empty()) continue;  // ingest refuses an entry without a resource type
    if (auto p = scope_refusal(client, interaction, type)) return p;
  }
  return std::nullopt;
}

}  // namespace sdoh::fhir
