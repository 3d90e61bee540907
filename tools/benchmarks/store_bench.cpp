// Group commit throughput and latency: N concurrent senders each commit one message (an HL7
// ORU of ~1.5 KB, its ACK and one ~2 KB screening event) and wait until it is durable
// (WAL + synchronous=FULL) before sending the next, as an MLLP sender in original mode does.
//   tools/bench store      SQLite (BM_GroupCommit)
//   tools/bench store-pg   the same on PostgreSQL (BM_GroupCommitPostgres: SDOH_BENCH_PG_URL,
//                          a throwaway local cluster; /durable: synchronous_commit on, /no_sync:
//                          off, what waiting for the WAL flush costs)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "adapters/store/sql_store.hpp"

namespace {

namespace asio = boost::asio;
using sdoh::pipeline::CommitRequest;

const std::string kPayload = [] {
  std::string p =
      "MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|STATE_EC|20261120103000-0500||ORU^R01^ORU_R01|A1000001|"
      "P|2.5.1|||AL|NE\r"
      "PID|1||MRN12345^^^PEDS_A^MR||Garcia^Sofia^^^^^L||20260501|F\r";
  while (p.size() < 1500)
    p += "OBX|1|CWE|88122-7^Food worry^LN||LA28397-0^Often true^LN||||||F\r";
  return p;
}();
const std::string kEvent(2000, 'e');

using StorePtr = std::unique_ptr<sdoh::store::SqlStore>;

void run_senders(benchmark::State& state, StorePtr store);

void BM_GroupCommit(benchmark::State& state) {
  const int senders = static_cast<int>(state.range(0));
  const auto dir =
      std::filesystem::temp_directory_path() / ("sdoh_store_bench_" + std::to_string(senders));
  std::filesystem::remove_all(dir);
  sdoh::config::StoreConfig cfg;
  sdoh::metrics::Registry registry;
  run_senders(state, *sdoh::store::SqlStore::open(dir / "gateway.db", cfg, &registry));
  std::filesystem::remove_all(dir);
}

void BM_GroupCommitPostgres(benchmark::State& state) {
  const char* url = std::getenv("SDOH_BENCH_PG_URL");
  if (url == nullptr) {
    state.SkipWithError("SDOH_BENCH_PG_URL is not set: run it with tools/bench store-pg");
    return;
  }
  std::string target = url;
  if (state.range(1) == 0) target += "?options=-c%20synchronous_commit%3Doff";
  sdoh::config::StoreConfig cfg;
  sdoh::metrics::Registry registry;
  auto store = sdoh::store::SqlStore::open_postgres(target, "", cfg, &registry);
  if (!store) {
    state.SkipWithError(store.error().message.c_str());
    return;
  }
  run_senders(state, std::move(*store));
}

void run_senders(benchmark::State& state, StorePtr store) {
  const int senders = static_cast<int>(state.range(0));
  std::atomic<std::uint64_t> next{0};
  // Unique per run: a PostgreSQL database outlives one benchmark case.
  const auto run_id = std::chrono::steady_clock::now().time_since_epoch().count();
  std::vector<double> latencies;
  std::uint64_t total = 0;

  for (auto _ : state) {
    constexpr int kPerSender = 2000;
    const int per_sender = std::max(kPerSender / std::max(senders / 8, 1), 200);
    asio::io_context ioc;
    std::vector<std::vector<double>> lat(static_cast<std::size_t>(senders));
    for (int s = 0; s < senders; ++s) {
      asio::co_spawn(
          ioc,
          [&, s]() -> asio::awaitable<void> {
            for (int i = 0; i < per_sender; ++i) {
              CommitRequest r;
              const auto id = std::to_string(run_id) + "-" + std::to_string(next.fetch_add(1));
              r.inbound = {"hl7v2",   "EHR^PEDS_A", id,
                           "ORU^R01", "AA",         "MSH|...|ACK\rMSA|AA|" + id + "\r",
                           kPayload};
              r.events.push_back(
                  {"ev-" + id, "org.sdoh.screening.v1", "sdoh.screening.v1", "key", kEvent});
              const auto t0 = std::chrono::steady_clock::now();
              auto outcome = co_await store->commit(std::move(r));
              if (!outcome) std::abort();
              lat[static_cast<std::size_t>(s)].push_back(
                  std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                      .count());
            }
          },
          asio::detached);
    }
    std::thread helper([&ioc] { ioc.run(); });  // two I/O threads, as the gateway runs by default
    ioc.run();
    helper.join();
    for (auto& l : lat)
      latencies.insert(latencies.end(), l.begin(), l.end());
    total += static_cast<std::uint64_t>(senders) * static_cast<std::uint64_t>(per_sender);
  }
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double q) {
    return latencies[static_cast<std::size_t>(q * static_cast<double>(latencies.size() - 1))];
  };
  state.SetItemsProcessed(static_cast<int64_t>(total));
  state.counters["p50_us"] = pct(0.50);
  state.counters["p99_us"] = pct(0.99);
  state.counters["max_us"] = latencies.back();
}

BENCHMARK(BM_GroupCommit)
    ->Arg(1)
    ->Arg(8)
    ->Arg(64)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

BENCHMARK(BM_GroupCommitPostgres)
    ->ArgNames({"senders", "durable"})
    ->Args({1, 1})
    ->Args({8, 1})
    ->Args({64, 1})
    ->Args({8, 0})
    ->Args({64, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
