// libFuzzer target: arbitrary bytes as an HTTP/1.1 request through Beast's request parser with
// the server's limits (header, body, Transfer-Encoding/Content-Length framing, byte budget), into
// the Router and the FHIR API (/fhir routes: create, transaction and batch Bundles, PUT and JSON
// Patch of a stored Task, reads and searches), ingest, validation and mapping, and every JSON parse
// on the way. None may crash, hang or read out of bounds (run under ASan + UBSan); every answer
// must be a well-formed HTTP status, and every error body an OperationOutcome that parses as JSON.
//   tools/fuzz http [seconds]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <rapidjson/document.h>

#include "adapters/fhir/api.hpp"
#include "adapters/http/request_framing.hpp"
#include "gateway/core/json_parse.hpp"
#include "gateway/http/message.hpp"
#include "gateway/identity/pseudonym.hpp"
#include "gateway/mapping/engine.hpp"
#include "gateway/mapping/routing.hpp"
#include "gateway/mapping/tables.hpp"
#include "gateway/metrics/registry.hpp"

namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using namespace sdoh;

constexpr std::size_t kMaxHeaderBytes = 16 * 1024;  // the server's defaults (config.hpp)
constexpr std::size_t kMaxBodyBytes = 256 * 1024;   // smaller than the default: fuzz speed

// A stored Task for PUT, PATCH, reads and history; commits are accepted and forgotten, so every
// input meets the same state.
class FuzzStore final : public pipeline::CommitPort, public pipeline::ResourceReader {
 public:
  asio::awaitable<Result<pipeline::CommitOutcome>> commit(pipeline::CommitRequest r) override {
    pipeline::CommitOutcome out;
    out.answer_code = r.inbound.answer_code;
    out.answer = r.inbound.answer;
    co_return out;
  }
  Result<std::optional<pipeline::ResourceRow>> read_resource(std::string_view type,
                                                             std::string_view id,
                                                             std::int64_t version) const override {
    if (type != "Task" || id != "t1" || version > 1) return std::optional<pipeline::ResourceRow>{};
    return std::optional(task_);
  }
  Result<std::optional<std::string>> find_resource_id(std::string_view, std::string_view,
                                                      std::string_view) const override {
    return std::optional<std::string>{};
  }
  Result<pipeline::ResourcePage> search_resources(const pipeline::ResourceQuery&) const override {
    pipeline::ResourcePage page;
    page.rows.push_back(task_);
    page.total = 1;
    return page;
  }
  Result<std::vector<pipeline::ResourceRow>> resource_history(std::string_view type,
                                                              std::string_view id) const override {
    if (type != "Task" || id != "t1") return std::vector<pipeline::ResourceRow>{};
    return std::vector<pipeline::ResourceRow>{task_};
  }

 private:
  pipeline::ResourceRow task_{
      "Task",
      "t1",
      1,
      "2026-11-20T10:00:00Z",
      R"({"resourceType":"Task","id":"t1","meta":{"versionId":"1","lastUpdated":"2026-11-20T10:00:00Z"},)"
      R"("status":"requested","intent":"order","focus":{"reference":"ServiceRequest/sr1"},)"
      R"("for":{"reference":"Patient/p1"},"authoredOn":"2026-11-20T10:00:00Z",)"
      R"("requester":{"reference":"Organization/peds_clinic_a"},)"
      R"("owner":{"reference":"Organization/wic-east"}})",
      "dev"};
};

struct World {
  metrics::Registry registry;
  std::unique_ptr<mapping::ScreeningMapper> mapper;
  FuzzStore store;
  std::unique_ptr<fhir::Api> api;
  http::Router router;

  World() {
    const std::filesystem::path schemas = SDOH_SCHEMAS_DIR;
    auto loaded = mapping::MappingTables::load(schemas / "mappings");
    auto zips = mapping::load_zip_policy(schemas / "privacy" / "restricted-zip3.json");
    if (!loaded || !zips) std::abort();
    mapper = std::make_unique<mapping::ScreeningMapper>(
        *loaded, identity::Pseudonymizer(std::string(48, 'k')), *zips, registry);
    fhir::ApiOptions options;
    options.max_body_bytes = kMaxBodyBytes;
    options.find_referral = [](const std::string& id) -> std::optional<pipeline::ReferralState> {
      if (id != "t1") return std::nullopt;
      pipeline::ReferralState s;
      s.referral_id = "t1";
      s.agency_id = "wic-east";
      s.category = "food-insecurity";
      s.status = "requested";
      return s;
    };
    api = std::make_unique<fhir::Api>(*mapper, store, store, options, registry);
    api->add_routes(router);
  }
};

[[noreturn]] void broken(const http::Response& r, std::string_view why) {
  std::fprintf(stderr, "broken answer (%.*s): status %u, body: %s\n", static_cast<int>(why.size()),
               why.data(), r.status, r.body.c_str());
  std::abort();
}

void check_answer(const http::Response& r) {
  if (r.status < 100 || r.status > 599) broken(r, "status");
  if (r.status >= 400 && !r.body.empty()) {
    rapidjson::Document doc;
    auto parsed = json::parse(doc, r.body);
    if (!parsed) broken(r, parsed.error().message);
    if (!doc.IsObject() || !doc.HasMember("resourceType")) broken(r, "not a resource");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static World world;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // Every JSON rule applies to the raw bytes as a body too.
  {
    rapidjson::Document doc;
    (void)json::parse(doc, input);
  }

  // As the server reads: the header first, its framing checked before any body byte, then the
  // body within the per-request byte budget.
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(kMaxHeaderBytes));
  parser.body_limit(kMaxBodyBytes);
  boost::system::error_code ec;
  std::size_t used = 0;
  bool framing_checked = false;
  const auto budget = http::request_byte_budget(kMaxHeaderBytes, kMaxBodyBytes);
  while (used < input.size() && !parser.is_done()) {
    const auto n = parser.put(asio::buffer(input.data() + used, input.size() - used), ec);
    if (ec == bhttp::error::need_more) break;
    if (ec) return 0;  // the server answers 400/413/431 and closes
    used += n;
    if (used > budget) return 0;  // 413
    if (parser.is_header_done() && !framing_checked) {
      framing_checked = true;
      const auto& h = parser.get();
      std::vector<std::string_view> codings;
      for (auto [it, end] = h.equal_range(bhttp::field::transfer_encoding); it != end; ++it)
        codings.push_back(it->value());
      const bool has_length = h.find(bhttp::field::content_length) != h.end();
      if (!http::check_request_framing(codings, has_length, h.version())) return 0;  // 400/501
    }
    if (n == 0) break;
  }
  if (!parser.is_done()) {
    parser.put_eof(ec);
    if (ec || !parser.is_done()) return 0;
  }
  auto wire = parser.release();
  http::Request request;
  request.method = std::string(wire.method_string());
  request.target = std::string(wire.target());
  const auto q = request.target.find('?');
  request.path = request.target.substr(0, q);
  if (q != std::string::npos) request.query = request.target.substr(q + 1);
  for (const auto& f : wire)
    request.headers.push_back({std::string(f.name_string()), std::string(f.value())});
  request.body = std::move(wire.body());
  request.peer = "127.0.0.1:1";

  auto match = world.router.match(request.method, request.path);
  if (match.status != 0 || match.handler == nullptr) return 0;
  request.params = std::move(match.params);
  asio::io_context io;
  auto done = asio::co_spawn(io, (*match.handler)(request), asio::use_future);
  io.run();
  check_answer(done.get());
  return 0;
}
