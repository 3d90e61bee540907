// validate-events: checks CloudEvents read one per line on stdin (as `kcat -C -f '%s\n'` prints
// them) against the JSON Schemas in schemas/events/. Prints one line per invalid event and a
// summary; exits 0 when every event is valid, 1 otherwise, 2 on usage errors.
//   kcat -b BOOTSTRAP -C -t sdoh.screening.v1 -e -q -f '%s\n' | build/validate-events --schemas
//   schemas/events
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "gateway/events/schema_catalog.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "Validate CloudEvents (one JSON object per line on stdin) against the event schemas"};
  std::string schemas = "schemas/events";
  app.add_option("--schemas", schemas, "directory of *.schema.json")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto catalog = sdoh::events::SchemaCatalog::load(schemas);
  if (!catalog) {
    std::cerr << catalog.error().message << "\n";
    return 2;
  }
  std::size_t total = 0, invalid = 0;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++total;
    if (auto r = (*catalog)->validate_event(line); !r) {
      ++invalid;
      std::cout << "event " << total << ": " << r.error().message << "\n";
    }
  }
  std::cout << total - invalid << " valid, " << invalid << " invalid\n";
  return invalid == 0 ? 0 : 1;
}
