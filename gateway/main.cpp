// sdoh-gateway: social-needs screening gateway between pediatric clinics and community agencies.
//   sdoh-gateway --config FILE          run
//   sdoh-gateway --check-config FILE    validate a config and exit (0 valid, 2 invalid)
//   sdoh-gateway --kafka-provision FILE [--topics-only] [--schemas-dir DIR] [--routing FILE]
//                                       print the Kafka topic and ACL commands (a sh script)
//   sdoh-gateway --version | --help
#include <iostream>

#include <CLI/CLI.hpp>

#include "gateway/config/config.hpp"
#include "gateway/log/log.hpp"
#include "gateway/runtime/runtime.hpp"

namespace {

constexpr int kExitConfigInvalid = 2;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "sdoh-gateway: takes social-needs screenings from clinics (FHIR R4 over HTTPS, HL7 v2 over "
      "MLLP), publishes screening, referral and referral-status events on Kafka, and tracks every "
      "referral to its end.",
      "sdoh-gateway"};
  std::string config_file;
  std::string check_file;
  std::string provision_file;
  bool topics_only = false;
  std::string schemas_override;
  std::string routing_override;
  bool version = false;
  app.add_option("-c,--config", config_file,
                 "YAML config file; without it the gateway runs on its built-in defaults")
      ->check(CLI::ExistingFile);
  app.add_option(
      "--check-config", check_file,
      "Validate FILE (keys, types, ranges, secrets, TLS files, Kafka properties) and exit");
  auto* provision = app.add_option(
      "--kafka-provision", provision_file,
      "Print, as a sh script, the kafka-topics.sh commands for every topic FILE's gateway needs "
      "(its routing's agencies included) and the kafka-acls.sh commands for every principal");
  app.add_flag("--topics-only", topics_only, "With --kafka-provision: the topics, no ACLs")
      ->needs(provision);
  app.add_option("--schemas-dir", schemas_override,
                 "With --kafka-provision: read the schemas from DIR instead of schemas_dir")
      ->needs(provision);
  app.add_option("--routing", routing_override,
                 "With --kafka-provision: read the routing from FILE instead of "
                 "referrals.routing_file")
      ->needs(provision);
  app.add_flag("-V,--version", version, "Print the version and exit");
  app.footer(
      "Exit codes: 0 ok, 1 start-up or runtime failure, 2 invalid configuration.\n"
      "Docs: README.md, deploy/config/reference.yaml\n");
  CLI11_PARSE(app, argc, argv);

  const auto build = sdoh::runtime::build_info();
  if (version) {
    std::cout << "sdoh-gateway " << build.version << " (" << build.commit << ")\n";
    return 0;
  }

  if (!provision_file.empty()) {
    // The config is usually meant for another machine: its TLS files need not be here.
    auto cfg = sdoh::config::load_config(provision_file, {.check_tls_files = false});
    if (!cfg) {
      std::cerr << cfg.error().to_string() << "\n";
      return kExitConfigInvalid;
    }
    if (!schemas_override.empty()) cfg->schemas_dir = schemas_override;
    if (!routing_override.empty()) cfg->referrals.routing_file = routing_override;
    auto script = sdoh::runtime::kafka_provision(*cfg, provision_file, topics_only);
    if (!script) {
      std::cerr << provision_file << ": ";
      if (!script.error().where.expression.empty())
        std::cerr << script.error().where.expression << ": ";
      std::cerr << script.error().message << "\n";
      return kExitConfigInvalid;
    }
    std::cout << *script;
    return 0;
  }

  if (!check_file.empty()) {
    auto cfg = sdoh::config::load_config(check_file);
    if (!cfg) {
      std::cerr << cfg.error().to_string() << "\n";
      return kExitConfigInvalid;
    }
    if (auto r = sdoh::runtime::check_config(*cfg); !r) {
      std::cerr << check_file << ": ";
      if (!r.error().where.expression.empty()) std::cerr << r.error().where.expression << ": ";
      std::cerr << r.error().message << "\n";
      return kExitConfigInvalid;
    }
    std::cout << check_file << ": configuration is valid\n";
    return 0;
  }

  sdoh::config::GatewayConfig cfg;
  if (!config_file.empty()) {
    auto loaded = sdoh::config::load_config(config_file);
    if (!loaded) {
      std::cerr << loaded.error().to_string() << "\n";
      return kExitConfigInvalid;
    }
    cfg = std::move(*loaded);
  }
  try {
    return sdoh::runtime::run(cfg);
  } catch (const std::exception& e) {
    sdoh::log::error("gateway.fatal", {{"reason", e.what()}});
    sdoh::log::flush();
    return 1;
  }
}
