#pragma once
// Internal to adapters/fhir (includes RapidJSON; not for other components): reading FHIR JSON
// elements with their FHIRPath, reporting type and format problems as issues.
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "adapters/fhir/resources.hpp"

namespace sdoh::fhir::detail {

using Json = rapidjson::Value;

std::string_view view(const Json& v);

class Reader {
 public:
  explicit Reader(std::vector<Issue>& issues) : issues_(issues) {}

  void error(IssueType type, std::string path, std::string diagnostics) {
    issues_.push_back(Issue::error(type, std::move(path), std::move(diagnostics)));
  }
  void warning(IssueType type, std::string path, std::string diagnostics) {
    issues_.push_back(Issue::warning(type, std::move(path), std::move(diagnostics)));
  }

  /// The member, or nullptr when absent (JSON null counts as absent).
  static const Json* get(const Json& obj, const char* name);

  /// A string primitive; "" when absent. Reports a wrong JSON type; `required` reports absence.
  std::string str(const Json& obj, const char* name, const std::string& path,
                  bool required = false);
  /// A code from a required value set: reports a value outside `allowed` (code-invalid).
  std::string code(const Json& obj, const char* name, const std::string& path,
                   std::initializer_list<std::string_view> allowed, bool required = false);
  std::string date_time(const Json& obj, const char* name, const std::string& path,
                        bool required = false);
  std::string date(const Json& obj, const char* name, const std::string& path);
  std::string id(const Json& obj, const std::string& path);

  /// An array element (0..*): nullptr when absent; reports a non-array.
  const Json* array(const Json& obj, const char* name, const std::string& path,
                    bool required = false);
  /// An object element (0..1): nullptr when absent; reports a non-object.
  const Json* object(const Json& obj, const char* name, const std::string& path,
                     bool required = false);

  Coding coding(const Json& v, const std::string& path);
  /// The codings of a CodeableConcept; `text` receives CodeableConcept.text.
  std::vector<Coding> codeable(const Json& v, const std::string& path, std::string* text = nullptr);
  /// Every coding of a 0..* CodeableConcept element.
  std::vector<Coding> codeables(const Json& obj, const char* name, const std::string& path);
  Reference reference(const Json& v, const std::string& path);
  Reference reference_member(const Json& obj, const char* name, const std::string& path,
                             bool required = false);
  std::vector<Reference> references(const Json& obj, const char* name, const std::string& path);
  Identifier identifier(const Json& v, const std::string& path);
  std::vector<Identifier> identifiers(const Json& obj, const std::string& path);

 private:
  std::vector<Issue>& issues_;
};

/// Reads one resource object; `root` is its FHIRPath ("Observation", or
/// "Bundle.entry[2].resource" inside a Bundle). Errors and warnings go to `issues`; the result
/// is meaningful only when no error was added.
std::optional<ParsedResource> read_resource(const Json& v, const std::string& root,
                                            std::vector<Issue>& issues);

}  // namespace sdoh::fhir::detail
