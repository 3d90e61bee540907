// audit-verify: recomputes the audit trail's hash chain in a gateway's store (read-only, safe
// while the gateway runs), reports the first edited or missing record and checks the head against
// the newest anchor. tools/audit is its front end (it fetches anchors from Kafka).
//   build/audit-verify (--config FILE | --db PATH) [--anchors FILE] [--gateway ID]
//   build/audit-verify --config FILE --kafka-info   prints {"brokers","topic","data_dir"} as JSON
// Exit status: 0 the chain verifies, 1 it does not, 2 usage or the store cannot be read.
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>

#include "adapters/store/sql_store.hpp"
#include "gateway/audit/chain.hpp"
#include "gateway/config/config.hpp"
#include "gateway/core/json_text.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Verify the gateway's hash-chained audit trail"};
  std::string config_file, db, anchors_file, gateway, password;
  bool kafka_info = false;
  auto* config_opt = app.add_option("--config", config_file, "the gateway's config (its store)")
                         ->check(CLI::ExistingFile);
  app.add_option(
         "--db", db,
         "the store: its SQLite file, or a postgresql:// URL (password in SDOH_DB_PASSWORD)")
      ->excludes(config_opt);
  app.add_option("--anchors", anchors_file,
                 "anchors, one JSON object per line (CloudEvents from sdoh.audit-anchors.v1)");
  app.add_option("--gateway", gateway, "check only this gateway's anchors (default: the config's)");
  app.add_flag("--kafka-info", kafka_info, "print the config's brokers, anchor topic and data_dir")
      ->needs(config_opt);
  CLI11_PARSE(app, argc, argv);

  if (!config_file.empty()) {
    auto cfg = sdoh::config::load_config(config_file);
    if (!cfg) {
      std::cerr << cfg.error().to_string() << "\n";
      return 2;
    }
    if (kafka_info) {
      std::cout << "{\"brokers\":" << sdoh::json_string(cfg->kafka.brokers)
                << ",\"topic\":" << sdoh::json_string(cfg->kafka.topics.audit_anchors)
                << ",\"data_dir\":" << sdoh::json_string(cfg->data_dir.string()) << "}\n";
      return 0;
    }
    db = cfg->store.url.empty() ? cfg->store_path().string() : cfg->store.url;
    if (!cfg->store.url.empty() && cfg->store.password.configured()) {
      auto resolved = cfg->store.password.resolve();
      if (!resolved) {
        std::cerr << "audit-verify: " << resolved.error().message << "\n";
        return 2;
      }
      password = std::move(*resolved);
    }
    if (gateway.empty()) gateway = cfg->gateway_id;
  }
  if (db.empty()) {
    std::cerr << "audit-verify: give --config FILE or --db PATH\n";
    return 2;
  }
  std::vector<sdoh::audit::Anchor> anchors;
  if (!anchors_file.empty()) {
    std::ifstream in(anchors_file, std::ios::binary);
    if (!in) {
      std::cerr << "audit-verify: cannot read " << anchors_file << "\n";
      return 2;
    }
    std::stringstream text;
    text << in.rdbuf();
    auto parsed = sdoh::audit::parse_anchors(text.str());
    if (!parsed) {
      std::cerr << "audit-verify: " << anchors_file << ": " << parsed.error().message << "\n";
      return 2;
    }
    anchors = std::move(*parsed);
  }
  // A PostgreSQL store (store.url, or --db postgresql://...; password from store.password or
  // SDOH_DB_PASSWORD) or a SQLite file.
  if (password.empty()) {
    if (const char* env = std::getenv("SDOH_DB_PASSWORD")) password = env;
  }
  auto report =
      db.starts_with("postgres")
          ? sdoh::store::verify_postgres_audit_chain(db, password, std::move(anchors), gateway)
          : sdoh::store::verify_audit_chain(db, std::move(anchors), gateway);
  if (!report) {
    std::cerr << "audit-verify: " << report.error().message << "\n";
    return 2;
  }
  std::cout << "audit trail " << db << ": " << report->records << " record(s)";
  if (report->records > 0)
    std::cout << ", " << report->first_sequence << " to " << report->head_sequence;
  std::cout << "\nhead: " << report->head_sequence << " " << report->head_hash << "\n";
  if (!report->anchor_note.empty()) std::cout << report->anchor_note << "\n";
  if (!report->ok) {
    std::cout << "FAILED: " << report->problem << "\n";
    return 1;
  }
  std::cout << "OK: the chain verifies\n";
  return 0;
}
