#include "gateway/metrics/registry.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace sdoh::metrics {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {
  std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::observe(double v) {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  buckets_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  double cur = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

std::uint64_t Histogram::cumulative(std::size_t i) const {
  std::uint64_t total = 0;
  for (std::size_t k = 0; k <= i && k <= bounds_.size(); ++k) {
    total += buckets_[k].load(std::memory_order_relaxed);
  }
  return total;
}

double Histogram::quantile(double q) const {
  const auto total = cumulative(bounds_.size());
  if (total == 0) return 0;
  const double rank = q * static_cast<double>(total);
  double lower = 0;
  std::uint64_t below = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    const auto in_bucket = buckets_[i].load(std::memory_order_relaxed);
    if (static_cast<double>(below + in_bucket) >= rank && in_bucket > 0) {
      const double frac = (rank - static_cast<double>(below)) / static_cast<double>(in_bucket);
      return lower + (bounds_[i] - lower) * frac;
    }
    below += in_bucket;
    lower = bounds_[i];
  }
  return bounds_.empty() ? 0 : bounds_.back();
}

std::vector<double> latency_buckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

namespace {

void append_label_value(std::string& out, const std::string& v) {
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void append_labels(std::string& out, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, const char* extra_name = nullptr,
                   const std::string& extra_value = {}) {
  if (names.empty() && extra_name == nullptr) return;
  out += '{';
  bool first = true;
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    append_label_value(out, values[i]);
    out += '"';
  }
  if (extra_name != nullptr) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    append_label_value(out, extra_value);
    out += '"';
  }
  out += '}';
}

std::string format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  return ec == std::errc() ? std::string(buf, end) : std::string("NaN");
}

}  // namespace

Registry::Entry& Registry::add(const std::string& name, const std::string& help, const char* type) {
  std::lock_guard lock(mutex_);
  for (const auto& e : entries_) {
    // Registering a name twice is a programming error caught by the first test that runs it.
    if (e->name == name) throw std::logic_error("metric registered twice: " + name);
  }
  auto e = std::make_unique<Entry>();
  e->name = name;
  e->help = help;
  e->type = type;
  entries_.push_back(std::move(e));
  return *entries_.back();
}

Family<Counter>& Registry::counter(const std::string& name, const std::string& help,
                                   std::vector<std::string> labels) {
  auto& e = add(name, help, "counter");
  e.counters = std::make_unique<Family<Counter>>(std::move(labels),
                                                 [] { return std::make_unique<Counter>(); });
  return *e.counters;
}

Family<Gauge>& Registry::gauge(const std::string& name, const std::string& help,
                               std::vector<std::string> labels) {
  auto& e = add(name, help, "gauge");
  e.gauges =
      std::make_unique<Family<Gauge>>(std::move(labels), [] { return std::make_unique<Gauge>(); });
  return *e.gauges;
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help,
                                       std::vector<std::string> labels,
                                       std::vector<double> bounds) {
  auto& e = add(name, help, "histogram");
  e.histograms = std::make_unique<Family<Histogram>>(
      std::move(labels), [bounds] { return std::make_unique<Histogram>(bounds); });
  return *e.histograms;
}

void Registry::gauge_callback(const std::string& name, const std::string& help,
                              std::function<double()> fn) {
  add(name, help, "gauge").callback = std::move(fn);
}

std::string Registry::render() const {
  std::string out;
  out.reserve(8192);
  std::lock_guard lock(mutex_);
  for (const auto& e : entries_) {
    out += "# HELP " + e->name + " " + e->help + "\n";
    out += "# TYPE " + e->name + " " + e->type + "\n";
    if (e->callback) {
      out += e->name + " " + format_number(e->callback()) + "\n";
    } else if (e->counters) {
      e->counters->for_each([&](const auto& labels, const Counter& c) {
        out += e->name;
        append_labels(out, e->counters->label_names(), labels);
        out += " " + std::to_string(c.value()) + "\n";
      });
    } else if (e->gauges) {
      e->gauges->for_each([&](const auto& labels, const Gauge& g) {
        out += e->name;
        append_labels(out, e->gauges->label_names(), labels);
        out += " " + format_number(g.value()) + "\n";
      });
    } else if (e->histograms) {
      const auto& names = e->histograms->label_names();
      e->histograms->for_each([&](const auto& labels, const Histogram& h) {
        for (std::size_t i = 0; i <= h.bounds().size(); ++i) {
          out += e->name + "_bucket";
          append_labels(out, names, labels, "le",
                        i < h.bounds().size() ? format_number(h.bounds()[i]) : "+Inf");
          out += " " + std::to_string(h.cumulative(i)) + "\n";
        }
        out += e->name + "_sum";
        append_labels(out, names, labels);
        out += " " + format_number(h.sum()) + "\n";
        out += e->name + "_count";
        append_labels(out, names, labels);
        out += " " + std::to_string(h.count()) + "\n";
      });
    }
  }
  return out;
}

}  // namespace sdoh::metrics
