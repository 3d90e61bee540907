#include "gateway/runtime/runtime.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <unistd.h>

#include <csignal>
#include <ctime>
#include <thread>
#include <vector>

#include "adapters/hl7v2/mllp_server.hpp"
#include "adapters/http/server.hpp"
#include "adapters/kafka/embedded_broker.hpp"
#include "adapters/kafka/producer.hpp"
#include "adapters/net/tls.hpp"
#include "adapters/store/sqlite_store.hpp"
#include "gateway/http/message.hpp"
#include "gateway/log/log.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/ops/health.hpp"
#include "gateway/pipeline/hl7_port.hpp"
#include "gateway/runtime/runtime_file.hpp"
#include "gateway/runtime/version.hpp"

namespace sdoh::runtime {

namespace asio = boost::asio;

namespace {

std::string utc_now_rfc3339() {
  const auto now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Until the HL7 v2 pipeline is wired in, every message is refused (AR) with a reason, so a
// sender never mistakes silence for acceptance and keeps the message for a resend.
class RefusingHl7Handler final : public pipeline::Hl7Handler {
 public:
  asio::awaitable<std::string> handle(std::string message, const pipeline::Peer&) override {
    std::vector<std::string_view> msh;
    if (message.size() >= 8 && message.compare(0, 3, "MSH") == 0) {
      const char sep = message[3];
      std::string_view seg(message);
      seg = seg.substr(0, seg.find_first_of("\r\n"));
      for (std::size_t start = 0;;) {
        const auto end = seg.find(sep, start);
        msh.push_back(seg.substr(start, end - start));
        if (end == std::string_view::npos) break;
        start = end + 1;
      }
    }
    auto field = [&msh](std::size_t n) {  // MSH-n; MSH-1 is the separator itself
      return n >= 2 && n - 1 < msh.size() ? std::string(msh[n - 1]) : std::string();
    };
    const std::string enc = msh.size() > 1 ? std::string(msh[1]) : "^~\\&";
    std::string ack = "MSH|" + enc + "|" + field(5) + "|" + field(6) + "|" + field(3) + "|" +
                      field(4) + "|||ACK|" + "NAK-" + field(10) + "|" +
                      (field(11).empty() ? "P" : field(11)) + "|" +
                      (field(12).empty() ? "2.5.1" : field(12)) + "\r";
    ack += "MSA|AR|" + field(10) + "\r";
    ack += "ERR||MSH^1^9|200^Unsupported message type^HL70357|E||||HL7 v2 processing is not "
           "enabled on this gateway\r";
    co_return ack;
  }
};

}  // namespace

ops::BuildInfo build_info() { return {kVersion, kCommit}; }

Result<void> check_config(const config::GatewayConfig& cfg) {
  if (auto r = kafka::Producer::validate(cfg.kafka); !r) return r;
  for (const auto& [tls, key] : {std::pair{&cfg.http.tls, "http.tls"}, {&cfg.mllp.tls, "mllp.tls"}}) {
    if (!tls->enabled()) continue;
    if (auto ctx = net::make_server_tls_context(*tls, key); !ctx) return fail(ctx.error());
  }
  return {};
}

int run(const config::GatewayConfig& cfg) {
  log::init(log::parse_level(cfg.log.level));
  const auto build = build_info();
  const auto started_wall = std::chrono::system_clock::now();
  const auto started = std::chrono::steady_clock::now();
  log::info("gateway.starting", {{"version", build.version},
                                 {"commit", build.commit},
                                 {"mode", cfg.mode},
                                 {"gateway_id", cfg.gateway_id},
                                 {"data_dir", cfg.data_dir.string()}});
  std::signal(SIGPIPE, SIG_IGN);  // a peer that hangs up is an error code, not a crash

  auto startup_failed = [](std::string_view component, const Error& e) {
    log::error("gateway.startup_failed",
               {{"component", component},
                {"key", e.where.expression},
                {"reason", e.message}});
    log::flush();
    return 1;
  };

  if (auto r = check_config(cfg); !r) return startup_failed("config", r.error());
  std::error_code fs_ec;
  std::filesystem::create_directories(cfg.data_dir, fs_ec);
  if (fs_ec) {
    return startup_failed("data_dir", Error::config("data_dir", "cannot create " +
                                                                    cfg.data_dir.string() + ": " +
                                                                    fs_ec.message()));
  }
  const auto runtime_file = cfg.data_dir / "runtime.json";
  std::filesystem::remove(runtime_file, fs_ec);

  metrics::Registry registry;
  ops::Health health;
  http::Router router;
  ops::register_process_metrics(registry, build, started_wall);

  auto store = store::SqliteStore::open(cfg.store_path(), cfg.store);
  if (!store) return startup_failed("store", store.error());
  health.add_check("store", [s = store->get()] { return s->health(); });

  std::unique_ptr<kafka::EmbeddedBroker> broker;
  std::string bootstrap = cfg.kafka.brokers;
  if (cfg.embedded_kafka()) {
    auto started_broker = kafka::EmbeddedBroker::start(cfg.kafka.embedded_brokers,
                                                       cfg.kafka.topics.all(), cfg.kafka.partitions);
    if (!started_broker) return startup_failed("kafka", started_broker.error());
    broker = std::move(*started_broker);
    bootstrap = broker->bootstrap_servers();
    log::warn("kafka.embedded_broker",
              {{"bootstrap_servers", bootstrap},
               {"detail",
                "no kafka.brokers configured: using the in-memory development broker; every "
                "message is lost when the gateway stops. Set kafka.brokers for a real cluster."}});
  }
  auto producer = kafka::Producer::create(cfg.kafka, bootstrap, registry);
  if (!producer) return startup_failed("kafka", producer.error());
  health.add_check("kafka", [p = producer->get()] { return p->health(); });

  ops::add_ops_routes(router, health, registry, build, started);

  asio::io_context ioc(cfg.runtime.io_threads);
  RefusingHl7Handler hl7_handler;
  http::Server http_server(ioc, cfg.http, router, registry);
  hl7v2::MllpServer mllp_server(ioc, cfg.mllp, hl7_handler, registry);
  auto http_address = http_server.bind();
  if (!http_address) return startup_failed("http", http_address.error());
  auto mllp_address = mllp_server.bind();
  if (!mllp_address) return startup_failed("mllp", mllp_address.error());
  health.add_check("http", [a = *http_address] { return ops::CheckState{true, "listening on " + a}; });
  health.add_check("mllp", [a = *mllp_address] { return ops::CheckState{true, "listening on " + a}; });
  http_server.start();
  mllp_server.start();

  // SIGTERM/SIGINT: stop accepting, let in-flight messages finish (bounded), then stop.
  // A second signal stops at once.
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  bool forced = false;
  auto drain = [&](int signo) -> asio::awaitable<void> {
    health.set_draining();
    log::info("gateway.draining", {{"signal", signo},
                                   {"timeout_ms", static_cast<std::int64_t>(cfg.runtime.drain_timeout.count())}});
    http_server.stop();
    mllp_server.stop();
    const auto deadline = std::chrono::steady_clock::now() + cfg.runtime.drain_timeout;
    asio::steady_timer timer(ioc);
    while ((http_server.open_connections() > 0 || mllp_server.open_connections() > 0) &&
           std::chrono::steady_clock::now() < deadline) {
      timer.expires_after(std::chrono::milliseconds(20));
      co_await timer.async_wait(asio::use_awaitable);
    }
    if (http_server.open_connections() > 0 || mllp_server.open_connections() > 0) {
      forced = true;
      log::warn("gateway.drain_timeout", {{"http_open", http_server.open_connections()},
                                          {"mllp_open", mllp_server.open_connections()}});
    }
    ioc.stop();
  };
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    asio::co_spawn(ioc, drain(signo), asio::detached);
    signals.async_wait([&](const boost::system::error_code& ec2, int) {
      if (ec2) return;
      log::warn("gateway.forced_stop", {});
      forced = true;
      ioc.stop();
    });
  });

  RuntimeInfo info;
  info.pid = static_cast<long>(getpid());
  info.version = build.version;
  info.gateway_id = cfg.gateway_id;
  info.mode = cfg.mode;
  info.started_at = utc_now_rfc3339();
  info.http_address = *http_address;
  info.http_tls = cfg.http.tls.enabled();
  info.mllp_address = *mllp_address;
  info.mllp_tls = cfg.mllp.tls.enabled();
  info.kafka_bootstrap = bootstrap;
  info.kafka_embedded = cfg.embedded_kafka();
  if (auto r = write_runtime_file(runtime_file, info); !r) return startup_failed("data_dir", r.error());
  log::info("gateway.ready", {{"http", *http_address},
                              {"mllp", *mllp_address},
                              {"kafka", bootstrap},
                              {"runtime_file", runtime_file.string()}});

  std::vector<std::thread> threads;
  for (int i = 1; i < cfg.runtime.io_threads; ++i) threads.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : threads) t.join();

  const auto remaining = (*producer)->flush(cfg.kafka.flush_timeout);
  if (remaining > 0) log::warn("kafka.unflushed_at_exit", {{"messages", remaining}});
  std::filesystem::remove(runtime_file, fs_ec);
  log::info("gateway.stopped", {{"forced", forced}});
  log::flush();
  return 0;
}

}  // namespace sdoh::runtime
