#pragma once
// Prometheus metrics (text exposition format 0.0.4). Each component owns its counters, gauges
// and histograms in a stats struct built from the Registry at start-up; the hot path only
// touches atomics. Label values must never carry PHI: use route patterns, senders, codes.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sdoh::metrics {

class Counter {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double n = 1) { add(n); }
  void dec(double n = 1) { add(-n); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  void add(double n) {
    double cur = value_.load(std::memory_order_relaxed);
    while (!value_.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed)) {
    }
  }
  std::atomic<double> value_{0};
};

/// Fixed buckets chosen at creation. observe() is lock-free.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  const std::vector<double>& bounds() const { return bounds_; }
  /// Cumulative count of observations <= bounds()[i]; i == bounds().size() is +Inf.
  std::uint64_t cumulative(std::size_t i) const;
  /// Estimated quantile (0..1) from the buckets, as Prometheus' histogram_quantile does.
  double quantile(double q) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // one per bound, plus +Inf
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

/// Latency buckets in seconds from 50 µs to 10 s.
std::vector<double> latency_buckets();

/// A metric name with a fixed set of label names; children are created on first use and
/// live as long as the registry. Cache the returned reference on hot paths.
template <class M>
class Family {
 public:
  Family(std::vector<std::string> label_names, std::function<std::unique_ptr<M>()> make)
      : label_names_(std::move(label_names)), make_(std::move(make)) {}

  M& with(const std::vector<std::string>& label_values) {
    std::lock_guard lock(mutex_);
    auto& slot = children_[label_values];
    if (!slot) slot = make_();
    return *slot;
  }
  M& with() { return with({}); }

  template <class Fn>
  void for_each(Fn&& fn) const {
    std::lock_guard lock(mutex_);
    for (const auto& [labels, child] : children_)
      fn(labels, *child);
  }
  const std::vector<std::string>& label_names() const { return label_names_; }

  /// A new child, not in the family (to build a set for replace()).
  std::unique_ptr<M> make() const { return make_(); }
  /// Replaces every child at once, for series computed from stored state where a series that
  /// no longer applies must go: a render sees the old set or the new one, never a mix. The old
  /// children are destroyed: never replace a family whose children someone keeps references to.
  void replace(std::map<std::vector<std::string>, std::unique_ptr<M>> children) {
    std::lock_guard lock(mutex_);
    children_.swap(children);
  }

 private:
  std::vector<std::string> label_names_;
  std::function<std::unique_ptr<M>()> make_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_;
};

/// Owns every metric of the process and renders them for GET /metrics. Thread-safe.
class Registry {
 public:
  Family<Counter>& counter(const std::string& name, const std::string& help,
                           std::vector<std::string> labels = {});
  Family<Gauge>& gauge(const std::string& name, const std::string& help,
                       std::vector<std::string> labels = {});
  Family<Histogram>& histogram(const std::string& name, const std::string& help,
                               std::vector<std::string> labels = {},
                               std::vector<double> bounds = latency_buckets());
  /// A gauge computed when scraped (uptime, backlog read from the store's cached state).
  void gauge_callback(const std::string& name, const std::string& help, std::function<double()> fn);

  /// Prometheus text format 0.0.4, metrics in registration order.
  std::string render() const;

 private:
  struct Entry {
    std::string name, help, type;
    std::unique_ptr<Family<Counter>> counters;
    std::unique_ptr<Family<Gauge>> gauges;
    std::unique_ptr<Family<Histogram>> histograms;
    std::function<double()> callback;
  };
  Entry& add(const std::string& name, const std::string& help, const char* type);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Entry>> entries_;
};

}  // namespace sdoh::metrics
