#include "adapters/fhir/task_update.hpp"

#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "adapters/fhir/resources.hpp"
#include "gateway/core/json_parse.hpp"

namespace sdoh::fhir {
namespace {

using Json = rapidjson::Value;

// RFC 6901: "~1" is '/', "~0" is '~'.
std::string unescape(std::string_view token) {
  std::string out;
  for (std::size_t i = 0; i < token.size(); ++i) {
    if (token[i] == '~' && i + 1 < token.size()) {
      out += token[i + 1] == '1' ? '/' : '~';
      ++i;
    } else {
      out += token[i];
    }
  }
  return out;
}

struct Located {
  Json* parent = nullptr;
  std::string token;
};

// The parent of a JSON Pointer's target and the last token.
std::optional<Located> locate(rapidjson::Document& doc, std::string_view path) {
  if (path.empty() || path.front() != '/') return std::nullopt;
  const auto slash = path.rfind('/');
  Json* parent = &doc;
  if (slash > 0) {
    rapidjson::Pointer p(path.data(), slash);
    if (!p.IsValid()) return std::nullopt;
    parent = p.Get(doc);
    if (parent == nullptr) return std::nullopt;
  }
  return Located{parent, unescape(path.substr(slash + 1))};
}

std::optional<rapidjson::SizeType> array_index(const Json& array, const std::string& token,
                                               bool for_insert) {
  if (token == "-" && for_insert) return array.Size();
  if (token.empty() || token.size() > 9) return std::nullopt;
  for (char c : token) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  if (token.size() > 1 && token[0] == '0') return std::nullopt;
  const auto i = static_cast<rapidjson::SizeType>(std::stoul(token));
  if (i > array.Size() || (!for_insert && i == array.Size())) return std::nullopt;
  return i;
}

Problem patch_error(FhirErrc code, std::size_t op, const char* member, std::string why) {
  return {
      code,
      {Issue::error(code == FhirErrc::kBadRequest ? IssueType::kInvalid : IssueType::kBusinessRule,
                    "Patch[" + std::to_string(op) + "]." + member, std::move(why))}};
}

// Removes the target and returns it; nullopt when it does not exist.
std::optional<Json> take(rapidjson::Document& doc, std::string_view path) {
  auto at = locate(doc, path);
  if (!at) return std::nullopt;
  if (at->parent->IsObject()) {
    auto it = at->parent->FindMember(at->token.c_str());
    if (it == at->parent->MemberEnd()) return std::nullopt;
    Json out(std::move(it->value));
    at->parent->EraseMember(it);
    return out;
  }
  if (at->parent->IsArray()) {
    auto i = array_index(*at->parent, at->token, false);
    if (!i) return std::nullopt;
    Json out(std::move((*at->parent)[*i]));
    at->parent->Erase(at->parent->Begin() + *i);
    return out;
  }
  return std::nullopt;
}

bool put(rapidjson::Document& doc, std::string_view path, Json value, bool replace) {
  auto& alloc = doc.GetAllocator();
  auto at = locate(doc, path);
  if (!at) return false;
  if (at->parent->IsObject()) {
    auto it = at->parent->FindMember(at->token.c_str());
    if (it != at->parent->MemberEnd()) {
      it->value = std::move(value);
      return true;
    }
    if (replace) return false;
    Json name(at->token.c_str(), static_cast<rapidjson::SizeType>(at->token.size()), alloc);
    at->parent->AddMember(name, value, alloc);
    return true;
  }
  if (at->parent->IsArray()) {
    auto i = array_index(*at->parent, at->token, !replace);
    if (!i) return false;
    if (replace) {
      (*at->parent)[*i] = std::move(value);
      return true;
    }
    at->parent->PushBack(Json(), alloc);
    for (auto k = at->parent->Size() - 1; k > *i; --k)
      (*at->parent)[k] = std::move((*at->parent)[k - 1]);
    (*at->parent)[*i] = std::move(value);
    return true;
  }
  return false;
}

std::string write(const Json& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return {buf.GetString(), buf.GetSize()};
}

std::string member_json(const rapidjson::Document& doc, const char* name) {
  if (!doc.IsObject()) return {};
  auto it = doc.FindMember(name);
  return it == doc.MemberEnd() ? std::string() : write(it->value);
}

}  // namespace

FhirResult<std::string> apply_json_patch(std::string_view resource, std::string_view patch) {
  rapidjson::Document doc;
  if (!sdoh::json::parse(doc, resource) || !doc.IsObject())
    return std::unexpected(
        Problem::bad_request(IssueType::kStructure, "", "the resource is not JSON"));
  rapidjson::Document ops;
  if (!sdoh::json::parse(ops, patch) || !ops.IsArray()) {
    return std::unexpected(Problem::bad_request(
        IssueType::kStructure, "Patch", "a JSON Patch (RFC 6902) is a JSON array of operations"));
  }
  const auto type_before = member_json(doc, "resourceType");
  const auto id_before = member_json(doc, "id");
  for (rapidjson::SizeType n = 0; n < ops.Size(); ++n) {
    const auto& op = ops[n];
    auto text = [&op](const char* name) -> std::string {
      auto it = op.IsObject() ? op.FindMember(name) : op.MemberEnd();
      if (!op.IsObject() || it == op.MemberEnd() || !it->value.IsString()) return {};
      return {it->value.GetString(), it->value.GetStringLength()};
    };
    const auto kind = text("op");
    const auto path = text("path");
    if (path.empty() || path.front() != '/') {
      return std::unexpected(
          patch_error(FhirErrc::kBadRequest, n, "path", "path must be a JSON Pointer"));
    }
    const Json* value = nullptr;
    if (op.HasMember("value")) value = &op["value"];
    auto copy_of = [&doc](const Json& v) { return Json(v, doc.GetAllocator()); };
    bool ok = false;
    if (kind == "add" || kind == "replace") {
      if (value == nullptr) {
        return std::unexpected(
            patch_error(FhirErrc::kBadRequest, n, "value", kind + " needs a value"));
      }
      ok = put(doc, path, copy_of(*value), kind == "replace");
    } else if (kind == "remove") {
      ok = take(doc, path).has_value();
    } else if (kind == "move" || kind == "copy") {
      const auto from = text("from");
      rapidjson::Pointer p(from.c_str());
      const Json* source = p.IsValid() ? p.Get(doc) : nullptr;
      if (source != nullptr) {
        Json v;
        if (kind == "copy") {
          v = copy_of(*source);
        } else {
          v = std::move(*take(doc, from));
        }
        ok = put(doc, path, std::move(v), false);
      }
    } else if (kind == "test") {
      rapidjson::Pointer p(path.c_str());
      const Json* target = p.IsValid() ? p.Get(doc) : nullptr;
      if (value == nullptr || target == nullptr || *target != *value) {
        return std::unexpected(
            patch_error(FhirErrc::kUnprocessable, n, "value", "the test operation failed"));
      }
      ok = true;
    } else {
      return std::unexpected(patch_error(FhirErrc::kBadRequest, n, "op",
                                         "op is add, remove, replace, move, copy or test"));
    }
    if (!ok) {
      return std::unexpected(
          patch_error(FhirErrc::kBadRequest, n, "path", "the path does not exist in the resource"));
    }
  }
  if (member_json(doc, "resourceType") != type_before || member_json(doc, "id") != id_before) {
    return std::unexpected(Problem::unprocessable(IssueType::kBusinessRule, "Patch",
                                                  "a patch may not change resourceType or id"));
  }
  return write(doc);
}

FhirResult<TaskUpdate> read_task_update(std::string_view task_id, std::string_view current,
                                        std::string_view updated) {
  auto now = parse_resource(updated);
  if (!now) return std::unexpected(std::move(now.error()));
  if (now->type != "Task") {
    return std::unexpected(
        Problem::bad_request(IssueType::kInvalid, "resourceType", "the body must be a Task"));
  }
  auto before = parse_resource(current);
  if (!before || before->type != "Task") {
    return std::unexpected(problem_from(Error::internal("the stored Task cannot be read")));
  }
  const auto& t = std::get<Task>(now->resource);
  const auto& old = std::get<Task>(before->resource);
  if (t.id != task_id) {
    return std::unexpected(Problem::bad_request(IssueType::kInvalid, "Task.id",
                                                "Task.id must be the id in the URL (FHIR update)"));
  }
  // What the referral is does not change; only its progress does.
  auto same = [](const Reference& a, const Reference& b) {
    return a.reference == b.reference && a.identifier.system == b.identifier.system &&
           a.identifier.value == b.identifier.value;
  };
  const char* changed = nullptr;
  if (!same(t.focus, old.focus)) changed = "focus";
  if (!same(t.for_, old.for_)) changed = "for";
  if (!same(t.owner, old.owner)) changed = "owner";
  if (t.intent != old.intent) changed = "intent";
  if ((t.code ? t.code->code : "") != (old.code ? old.code->code : "")) changed = "code";
  if (changed != nullptr) {
    return std::unexpected(Problem::unprocessable(
        IssueType::kBusinessRule, std::string("Task.") + changed,
        std::string("Task.") + changed +
            " cannot change on a referral; cancel it and make a new referral instead"));
  }
  auto status = mapping::referral_status_from(t.status);
  auto previous = mapping::referral_status_from(old.status);
  if (!status) {
    return std::unexpected(Problem::unprocessable(
        IssueType::kBusinessRule, "Task.status",
        "a referral's status is requested, received, accepted, rejected, in-progress, on-hold, "
        "completed, failed or cancelled"));
  }
  TaskUpdate u;
  u.referral_id = t.id;
  u.previous = previous.value_or(mapping::ReferralStatus::kRequested);
  u.status = *status;
  u.business_status = t.business_status;
  u.reason = t.status_reason;
  u.last_modified = full_date_or_date_time(t.last_modified) ? t.last_modified : std::string();
  u.json = std::string(updated);
  u.warnings = std::move(now->warnings);
  return u;
}

}  // namespace sdoh::fhir
