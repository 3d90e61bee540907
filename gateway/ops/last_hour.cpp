#include "gateway/ops/last_hour.hpp"

#include <algorithm>
#include <cmath>

namespace sdoh::ops {
namespace {

std::int64_t minute_of(WallClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::minutes>(t.time_since_epoch()).count();
}

constexpr double kGrowth = 1.25;
constexpr char kSeparator = '\x1f';

std::size_t bucket_of(double ms) {
  if (ms <= 1) return 0;
  const auto k = static_cast<std::size_t>(std::ceil(std::log(ms) / std::log(kGrowth)));
  return std::min<std::size_t>(k, 95);
}

double bucket_upper_seconds(std::size_t k) {
  return std::pow(kGrowth, static_cast<double>(k)) / 1000.0;
}

}  // namespace

void Throughput::record(std::string_view protocol, std::string_view sender, std::string_view code,
                        WallClock::time_point at) {
  const auto minute = minute_of(at);
  // Called for every answer on the I/O threads: the key is built in a buffer of the thread's
  // own, and a sender and code already seen this minute cost no allocation.
  thread_local std::string key;
  key.assign(protocol);
  key += kSeparator;
  key += sender;
  std::lock_guard lock(mutex_);
  auto& slot = slots_[static_cast<std::size_t>(minute) % kMinutes];
  if (slot.minute != minute) {
    slot.minute = minute;
    slot.counts.clear();
  }
  auto it = slot.counts.find(key);
  if (it == slot.counts.end()) {
    if (slot.counts.size() >= kMaxSenders) {
      key.assign(protocol);
      key += kSeparator;
      key += "(other)";
    }
    it = slot.counts.try_emplace(key).first;
  }
  auto c = it->second.find(code);
  if (c == it->second.end()) c = it->second.emplace(std::string(code), 0).first;
  ++c->second;
}

std::vector<Throughput::Minute> Throughput::last_hour(WallClock::time_point now) const {
  const auto last = minute_of(now);
  std::vector<Minute> out;
  out.reserve(kMinutes);
  std::lock_guard lock(mutex_);
  for (auto m = last - static_cast<std::int64_t>(kMinutes) + 1; m <= last; ++m) {
    Minute minute;
    minute.minute_ms = m * 60'000;
    const auto& slot = slots_[static_cast<std::size_t>(m) % kMinutes];
    if (slot.minute == m) {
      for (const auto& [key, codes] : slot.counts) {
        const auto at = key.find(kSeparator);
        minute.by_sender.push_back(
            {key.substr(0, at), key.substr(at + 1), {codes.begin(), codes.end()}});
      }
    }
    out.push_back(std::move(minute));
  }
  return out;
}

void DeliveryLag::record(std::chrono::milliseconds lag, WallClock::time_point at) {
  const auto minute = minute_of(at);
  const auto bucket = bucket_of(static_cast<double>(std::max<std::int64_t>(0, lag.count())));
  std::lock_guard lock(mutex_);
  auto& slot = slots_[static_cast<std::size_t>(minute) % kMinutes];
  if (slot.minute != minute) {
    slot.minute = minute;
    slot.counts.fill(0);
  }
  ++slot.counts[bucket];
}

DeliveryLag::Summary DeliveryLag::last_hour(WallClock::time_point now) const {
  const auto last = minute_of(now);
  std::array<std::int64_t, kBuckets> total{};
  {
    std::lock_guard lock(mutex_);
    for (const auto& slot : slots_) {
      if (slot.minute < 0 || slot.minute > last ||
          slot.minute <= last - static_cast<std::int64_t>(kMinutes))
        continue;
      for (std::size_t k = 0; k < kBuckets; ++k)
        total[k] += slot.counts[k];
    }
  }
  Summary s;
  for (auto n : total)
    s.delivered += n;
  if (s.delivered == 0) return s;
  auto percentile = [&](double q) {
    // The bucket holding the ceil(q × n)-th smallest lag; its upper bound.
    const auto rank = static_cast<std::int64_t>(std::ceil(q * static_cast<double>(s.delivered)));
    std::int64_t seen = 0;
    for (std::size_t k = 0; k < kBuckets; ++k) {
      seen += total[k];
      if (seen >= rank) return bucket_upper_seconds(k);
    }
    return bucket_upper_seconds(kBuckets - 1);
  };
  s.p50_seconds = percentile(0.5);
  s.p99_seconds = percentile(0.99);
  return s;
}

}  // namespace sdoh::ops
