#pragma once
// The last hour, minute by minute, in memory: what senders were answered (Throughput) and how
// long committed events took to reach Kafka (DeliveryLag), for /ops/api and the dashboard.
//
// Why memory and not the store: the answers are counted where they are decided (the HL7
// pipeline, the FHIR API), including those never stored — a resend answered from the store,
// an overload refusal (503, ERR 207), a referral locked by another message (ERR 206), a 401 —
// and a page load reads no table (the inbound table has no index by time, and reading an hour
// of it at thousands of messages a second would cost more than the hour's answers). Lost on
// restart: it is a view of the last hour, not a record (the store and /metrics keep those).
//
// Threads: record() from any thread (I/O threads, the relay's); a mutex guards the minutes.
// Memory is bounded: 60 minutes × at most kMaxSenders senders × their codes.
#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sdoh::ops {

using WallClock = std::chrono::system_clock;

class Throughput {
 public:
  static constexpr std::size_t kMinutes = 60;
  /// Senders kept per minute; further ones are counted as sender "(other)".
  static constexpr std::size_t kMaxSenders = 200;

  /// One answer: `protocol` "hl7v2" | "fhir", `sender` (MSH-3^MSH-4, the FHIR client id), `code`
  /// the ACK code (AA, AE, AR, CA, CE, CR) or the HTTP status ("201").
  void record(std::string_view protocol, std::string_view sender, std::string_view code,
              WallClock::time_point at = WallClock::now());

  struct SenderCodes {
    std::string protocol;
    std::string sender;
    std::map<std::string, std::int64_t> codes;
  };
  struct Minute {
    std::int64_t minute_ms = 0;  ///< the minute's start, unix ms
    std::vector<SenderCodes> by_sender;
  };
  /// The 60 minutes ending with the one `now` is in, oldest first (empty minutes included).
  std::vector<Minute> last_hour(WallClock::time_point now = WallClock::now()) const;

 private:
  struct Slot {
    std::int64_t minute = -1;  ///< minutes since the epoch; -1: unused
    /// By "protocol\x1fsender", then by code; looked up without allocating once both are known.
    std::map<std::string, std::map<std::string, std::int64_t, std::less<>>, std::less<>> counts;
  };
  mutable std::mutex mutex_;
  std::array<Slot, kMinutes> slots_;
};

class DeliveryLag {
 public:
  static constexpr std::size_t kMinutes = 60;

  /// One event Kafka acknowledged `lag` after its commit.
  void record(std::chrono::milliseconds lag, WallClock::time_point at = WallClock::now());

  struct Summary {
    std::int64_t delivered = 0;
    double p50_seconds = 0;  ///< 0 when nothing was delivered
    double p99_seconds = 0;
  };
  /// Events delivered in the last hour, and their lag's percentiles (to within one bucket:
  /// buckets grow by 25 %).
  Summary last_hour(WallClock::time_point now = WallClock::now()) const;

 private:
  static constexpr std::size_t kBuckets = 96;  ///< 1 ms × 1.25^k: up to ~2 days
  struct Slot {
    std::int64_t minute = -1;
    std::array<std::int64_t, kBuckets> counts{};
  };
  mutable std::mutex mutex_;
  std::array<Slot, kMinutes> slots_;
};

}  // namespace sdoh::ops
