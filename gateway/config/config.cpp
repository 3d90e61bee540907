#include "gateway/config/config.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <date/tz.h>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <yaml-cpp/yaml.h>

#include "gateway/core/json_text.hpp"

namespace sdoh::config {

std::string ListenAddress::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::vector<std::string> KafkaTopics::all() const {
  return {screening, referral, referral_status, deadletter, referral_updates, audit_anchors};
}

std::filesystem::path GatewayConfig::store_path() const {
  std::filesystem::path p(store.path);
  return p.is_absolute() ? p : data_dir / p;
}

const PartyConfig* GatewayConfig::party(std::string_view id) const {
  for (const auto& p : parties) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

std::filesystem::path GatewayConfig::zip_county_file() const {
  return referrals.zip_county_file.empty() ? schemas_dir / "geo" / "zcta-county.csv"
                                           : referrals.zip_county_file;
}

std::filesystem::path GatewayConfig::routing_file() const {
  return referrals.routing_file.empty() ? schemas_dir / "routing" / "routing.json"
                                        : referrals.routing_file;
}

std::string ConfigErrors::to_string() const {
  std::string out;
  for (const auto& issue : issues) {
    if (!out.empty()) out.push_back('\n');
    out.append(file);
    if (issue.line > 0) out.append(":").append(std::to_string(issue.line));
    out.append(": ");
    if (!issue.path.empty()) out.append(issue.path).append(": ");
    out.append(issue.message);
  }
  return out;
}

namespace {

// A loopback address, or the name that means one.
bool is_loopback_host(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  return !ec && address.is_loopback();
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      cur[j] =
          std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string join_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string node_kind(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return "\"" + n.Scalar() + "\"";
    default:
      return "an undefined value";
  }
}

std::optional<long long> parse_integer(std::string_view text) {
  long long value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

// Splits "10s" into 10 and "s".
std::optional<std::pair<long long, std::string>> number_with_unit(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9')
    ++i;
  if (i == 0) return std::nullopt;
  auto number = parse_integer(text.substr(0, i));
  if (!number) return std::nullopt;
  return std::make_pair(*number, std::string(text.substr(i)));
}

/// Reads one YAML mapping: every accessor records its key as known, and finish() reports
/// the keys nobody asked for (typos) with a suggestion.
class MapReader {
 public:
  MapReader(ConfigErrors& errors, YAML::Node node, std::string path)
      : errors_(errors), node_(std::move(node)), path_(std::move(path)) {
    if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap()) {
      issue(node_, path_, "expected a mapping of keys, got " + node_kind(node_));
      node_ = YAML::Node();
    }
  }

  MapReader child(std::string_view key) {
    return MapReader(errors_, get(key), join_path(path_, key));
  }

  void string(std::string_view key, std::string& out, bool required_nonempty = false) {
    auto n = scalar(key);
    if (!n) return;
    if (required_nonempty && n->Scalar().empty()) {
      issue(*n, join_path(path_, key), "must not be empty");
      return;
    }
    out = n->Scalar();
  }

  void choice(std::string_view key, std::string& out,
              std::initializer_list<std::string_view> options) {
    auto n = scalar(key);
    if (!n) return;
    const auto& v = n->Scalar();
    if (std::find(options.begin(), options.end(), v) == options.end()) {
      std::string list;
      for (auto o : options)
        list += (list.empty() ? "" : ", ") + std::string(o);
      issue(*n, join_path(path_, key), "\"" + v + "\" is not one of: " + list);
      return;
    }
    out = v;
  }

  void boolean(std::string_view key, bool& out) {
    auto n = scalar(key);
    if (!n) return;
    const auto& v = n->Scalar();
    if (v == "true") {
      out = true;
    } else if (v == "false") {
      out = false;
    } else {
      issue(*n, join_path(path_, key), "expected true or false, got " + node_kind(*n));
    }
  }

  template <class Int>
  void integer(std::string_view key, Int& out, long long min, long long max) {
    auto n = scalar(key);
    if (!n) return;
    auto v = parse_integer(n->Scalar());
    if (!v) {
      issue(*n, join_path(path_, key), "expected a whole number, got " + node_kind(*n));
    } else if (*v < min || *v > max) {
      issue(*n, join_path(path_, key),
            std::to_string(*v) + " is out of range " + std::to_string(min) + ".." +
                std::to_string(max));
    } else {
      out = static_cast<Int>(*v);
    }
  }

  /// A byte size: 1048576, "64KiB", "4MiB", "1GiB".
  void size(std::string_view key, std::size_t& out, std::size_t min, std::size_t max) {
    auto n = scalar(key);
    if (!n) return;
    auto parts = number_with_unit(n->Scalar());
    std::optional<unsigned long long> bytes;
    if (parts) {
      const auto& [num, unit] = *parts;
      if (unit.empty() || unit == "B") bytes = num;
      if (unit == "KiB") bytes = static_cast<unsigned long long>(num) << 10;
      if (unit == "MiB") bytes = static_cast<unsigned long long>(num) << 20;
      if (unit == "GiB") bytes = static_cast<unsigned long long>(num) << 30;
    }
    const auto path = join_path(path_, key);
    if (!bytes) {
      issue(*n, path, "expected a size such as 65536, \"64KiB\" or \"4MiB\", got " + node_kind(*n));
    } else if (*bytes < min || *bytes > max) {
      issue(*n, path,
            n->Scalar() + " is out of range " + std::to_string(min) + ".." + std::to_string(max) +
                " bytes");
    } else {
      out = static_cast<std::size_t>(*bytes);
    }
  }

  /// A duration with a unit: "500ms", "10s", "5m", "1h".
  void duration(std::string_view key, milliseconds& out, milliseconds min, milliseconds max) {
    auto n = scalar(key);
    if (!n) return;
    auto parts = number_with_unit(n->Scalar());
    std::optional<milliseconds> d;
    if (parts) {
      const auto& [num, unit] = *parts;
      if (unit == "ms") d = milliseconds(num);
      if (unit == "s") d = std::chrono::seconds(num);
      if (unit == "m") d = std::chrono::minutes(num);
      if (unit == "h") d = std::chrono::hours(num);
      if (unit == "d") d = std::chrono::hours(24 * num);
    }
    const auto path = join_path(path_, key);
    if (!d) {
      issue(*n, path,
            "expected a duration with a unit such as \"500ms\", \"10s\", \"5m\" or \"7d\", got " +
                node_kind(*n));
    } else if (*d < min || *d > max) {
      issue(*n, path,
            n->Scalar() + " is out of range " + std::to_string(min.count()) + "ms.." +
                std::to_string(max.count()) + "ms");
    } else {
      out = *d;
    }
  }

  void listen(std::string_view key, ListenAddress& out) {
    auto n = scalar(key);
    if (!n) return;
    const auto& text = n->Scalar();
    const auto path = join_path(path_, key);
    const auto colon = text.rfind(':');
    std::string host = colon == std::string::npos ? "" : text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    auto port = colon == std::string::npos
                    ? std::nullopt
                    : parse_integer(std::string_view(text).substr(colon + 1));
    if (host.empty() || !port) {
      issue(*n, path,
            "expected host:port such as \"127.0.0.1:8080\" (port 0 = any free port), got " +
                node_kind(*n));
    } else if (*port < 0 || *port > 65535) {
      issue(*n, path, "port " + std::to_string(*port) + " is out of range 0..65535");
    } else {
      out.host = host;
      out.port = static_cast<std::uint16_t>(*port);
    }
  }

  /// A list of strings; a single string is a list of one.
  void strings(std::string_view key, std::vector<std::string>& out) {
    auto n = get(key);
    if (!n.IsDefined() || n.IsNull()) return;
    const auto path = join_path(path_, key);
    if (n.IsScalar()) {
      out = {n.Scalar()};
      return;
    }
    if (!n.IsSequence()) {
      issue(n, path, "expected a list, got " + node_kind(n));
      return;
    }
    std::vector<std::string> values;
    for (std::size_t i = 0; i < n.size(); ++i) {
      if (!n[i].IsScalar()) {
        issue(n[i], path + "[" + std::to_string(i) + "]",
              "expected a single value, got " + node_kind(n[i]));
        return;
      }
      values.push_back(n[i].Scalar());
    }
    out = std::move(values);
  }

  /// A secret: { env: NAME } or { file: PATH }. Literal values are refused on purpose.
  void secret(std::string_view key, SecretRef& out) {
    auto n = get(key);
    if (!n.IsDefined() || n.IsNull()) return;
    read_secret(n, join_path(path_, key), out);
  }

  void read_secret(const YAML::Node& n, const std::string& path, SecretRef& out) {
    if (n.IsScalar()) {
      issue(n, path,
            "secrets are not written in the config file: use { env: VARIABLE } or { file: /path }");
      return;
    }
    MapReader m(errors_, n, path);
    std::string env, file;
    m.string("env", env, true);
    m.string("file", file, true);
    m.finish();
    if (env.empty() == file.empty()) {
      issue(n, path, "give exactly one of env or file");
      return;
    }
    out.source = env.empty() ? SecretRef::Source::kFile : SecretRef::Source::kEnv;
    out.name = env.empty() ? file : env;
  }

  /// Every key of this mapping, for free-form maps (kafka.properties).
  std::vector<std::pair<std::string, YAML::Node>> entries() {
    std::vector<std::pair<std::string, YAML::Node>> out;
    if (!node_.IsMap()) return out;
    for (const auto& kv : node_) {
      auto key = kv.first.Scalar();
      known_.insert(key);
      out.emplace_back(key, kv.second);
    }
    return out;
  }

  const std::string& path() const { return path_; }
  const YAML::Node& node() const { return node_; }
  /// The node at `key` as it is (any type), recorded as known.
  YAML::Node raw(std::string_view key) { return get(key); }

  void issue(const YAML::Node& at, std::string path, std::string message) {
    int line = 0;
    if (at.IsDefined()) line = at.Mark().line + 1;
    errors_.issues.push_back({std::move(path), std::move(message), line});
  }

  /// Reports keys that no accessor asked for.
  void finish() {
    if (!node_.IsMap()) return;
    for (const auto& kv : node_) {
      const auto key = kv.first.Scalar();
      if (known_.count(key) != 0) continue;
      std::string message = "unknown key";
      std::string best;
      std::size_t best_distance = 3;
      for (const auto& k : known_) {
        const auto d = edit_distance(key, k);
        if (d < best_distance) best_distance = d, best = k;
      }
      if (!best.empty()) message += " (did you mean \"" + best + "\"?)";
      issue(kv.first, join_path(path_, key), message);
    }
  }

 private:
  YAML::Node get(std::string_view key) {
    known_.insert(std::string(key));
    if (!node_.IsMap()) return YAML::Node();
    return node_[std::string(key)];
  }

  // The scalar at `key`, or nullopt when absent/null (keep the default) or not a scalar.
  std::optional<YAML::Node> scalar(std::string_view key) {
    auto n = get(key);
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    if (!n.IsScalar()) {
      issue(n, join_path(path_, key), "expected a single value, got " + node_kind(n));
      return std::nullopt;
    }
    return n;
  }

  ConfigErrors& errors_;
  YAML::Node node_;
  std::string path_;
  std::set<std::string> known_;
};

constexpr auto kMaxSize = std::size_t{1} << 30;

// An IANA zone name the system's tzdata has, as date/tz (the library the HL7 adapter converts
// times with) finds it: one answer to "is this a zone" for the check and for the conversions.
void read_timezone(MapReader& m, std::string_view key, std::string& out) {
  std::string name;
  m.string(key, name);
  if (name.empty()) return;
  bool known = false;
  try {
    known = date::locate_zone(name) != nullptr;
  } catch (const std::exception&) {
    known = false;  // date/tz throws for a name its database does not have
  }
  if (!known) {
    m.issue(m.node()[std::string(key)], join_path(m.path(), key),
            "\"" + name +
                "\" is not an IANA time zone known to this system's tzdata (such as "
                "America/New_York)");
    return;
  }
  out = name;
}

void read_hl7(MapReader m, Hl7Config& out) {
  read_timezone(m, "default_timezone", out.default_timezone);
  auto senders = m.child("senders");
  for (const auto& entry : senders.entries()) {
    const auto& name = entry.first;
    auto s = senders.child(name);
    Hl7SenderConfig sender;
    read_timezone(s, "timezone", sender.timezone);
    s.choice("contact_consent", sender.contact_consent, {"con-segment", "clinic-policy"});
    s.string("return_address", sender.return_address);
    s.string("return_ca_file", sender.return_ca_file);
    if (!sender.return_address.empty() && sender.return_address.rfind(':') == std::string::npos) {
      s.issue(s.node()["return_address"], s.path() + ".return_address", "expected host:port");
    }
    s.finish();
    out.senders[name] = sender;
  }
  m.finish();
}

void read_fhir(MapReader m, FhirConfig& out) {
  m.string("base_url", out.base_url);
  if (!out.base_url.empty()) {
    while (out.base_url.ends_with('/'))
      out.base_url.pop_back();
    if (!out.base_url.starts_with("http://") && !out.base_url.starts_with("https://")) {
      m.issue(m.node()["base_url"], m.path() + ".base_url",
              "expected an absolute http:// or https:// URL");
    }
  }
  m.choice("unknown_patient", out.unknown_patient, {"link-by-reference", "reject"});
  {
    auto s = m.child("subscriptions");
    auto& sub = out.subscriptions;
    s.duration("initial_backoff", sub.initial_backoff, milliseconds(10), std::chrono::hours(1));
    s.duration("max_backoff", sub.max_backoff, milliseconds(10), std::chrono::hours(24));
    s.integer("max_attempts", sub.max_attempts, 1, 1'000'000);
    s.duration("give_up_after", sub.give_up_after, std::chrono::seconds(1),
               std::chrono::hours(24 * 90));
    s.duration("timeout", sub.timeout, milliseconds(100), std::chrono::minutes(5));
    s.string("ca_file", sub.ca_file);
    if (sub.max_backoff < sub.initial_backoff) {
      s.issue(s.node()["max_backoff"], s.path() + ".max_backoff",
              "must not be shorter than initial_backoff");
    }
    s.finish();
  }
  auto clients = m.child("clients");
  std::set<std::string> cns;
  for (const auto& entry : clients.entries()) {
    const auto& name = entry.first;
    auto c = clients.child(name);
    FhirClientConfig client;
    client.id = name;
    c.secret("token", client.token);
    c.string("certificate_cn", client.certificate_cn);
    c.string("party", client.party, true);
    for (const char* moved : {"role", "organization", "name"}) {
      if (auto n = c.raw(moved); n.IsDefined()) {
        c.issue(n, c.path() + "." + moved,
                std::string("moved to the party: name it with party: <id> and set kind (clinic or "
                            "agency), organization and name under parties.<id>"));
      }
    }
    if (client.party.empty()) {
      c.issue(c.node(), c.path() + ".party", "needs party: the parties.<id> this client is");
    }
    if (!client.token.configured() && client.certificate_cn.empty()) {
      c.issue(c.node(), c.path(), "needs a token or a certificate_cn to identify the client");
    }
    if (!client.certificate_cn.empty() && !cns.insert(client.certificate_cn).second) {
      c.issue(c.node()["certificate_cn"], c.path() + ".certificate_cn",
              "another client has the same certificate_cn");
    }
    c.finish();
    out.clients.push_back(std::move(client));
  }
  m.finish();
}

// YAML (a JWKS written inline) as JSON text: mappings, lists and scalars as strings, which is
// all a JWK holds.
void append_json(std::string& out, const YAML::Node& n) {
  if (n.IsMap()) {
    out += '{';
    bool first = true;
    for (const auto& kv : n) {
      if (!first) out += ',';
      first = false;
      append_json_string(out, kv.first.Scalar());
      out += ':';
      append_json(out, kv.second);
    }
    out += '}';
  } else if (n.IsSequence()) {
    out += '[';
    for (std::size_t i = 0; i < n.size(); ++i) {
      if (i > 0) out += ',';
      append_json(out, n[i]);
    }
    out += ']';
  } else if (n.IsScalar()) {
    append_json_string(out, n.Scalar());
  } else {
    out += "null";
  }
}

// Scopes as a list, or one space-separated string (as OAuth writes them).
void read_scopes(MapReader& m, std::vector<std::string>& out) {
  std::vector<std::string> items;
  m.strings("scopes", items);
  std::vector<std::string> scopes;
  for (const auto& item : items) {
    std::size_t at = 0;
    while (at < item.size()) {
      const auto end = item.find(' ', at);
      auto one = item.substr(at, end == std::string::npos ? std::string::npos : end - at);
      if (!one.empty()) scopes.push_back(std::move(one));
      if (end == std::string::npos) break;
      at = end + 1;
    }
  }
  for (const auto& s : scopes) {
    // SMART system scopes only: a backend service acts for no user or patient.
    if (!s.starts_with("system/") || s.find('.') == std::string::npos) {
      m.issue(m.node()["scopes"], m.path() + ".scopes",
              "\"" + s + "\" is not a SMART system scope such as system/Task.rus or system/*.read");
    }
  }
  out = std::move(scopes);
}

void read_https_url(MapReader& m, std::string_view key, std::string& out) {
  m.string(key, out);
  if (!out.empty() && !out.starts_with("https://") && !out.starts_with("http://")) {
    m.issue(m.node()[std::string(key)], join_path(m.path(), key),
            "expected an absolute https:// URL");
  }
}

void read_smart_clients(MapReader m, std::vector<SmartClientConfig>& out,
                        std::set<std::string>& client_ids) {
  for (const auto& entry : m.entries()) {
    const auto& id = entry.first;
    auto c = m.child(id);
    SmartClientConfig client;
    client.client_id = id;
    if (!client_ids.insert(id).second) {
      c.issue(c.node(), c.path(), "another party has a SMART client with this client_id");
    }
    if (auto inline_jwks = c.raw("jwks"); inline_jwks.IsDefined() && !inline_jwks.IsNull()) {
      if (inline_jwks.IsScalar()) {
        client.jwks_json = inline_jwks.Scalar();
      } else {
        append_json(client.jwks_json, inline_jwks);
      }
    }
    c.string("jwks_file", client.jwks_file);
    read_https_url(c, "jwks_url", client.jwks_url);
    read_scopes(c, client.scopes);
    const int sources = int(!client.jwks_json.empty()) + int(!client.jwks_file.empty()) +
                        int(!client.jwks_url.empty());
    if (sources != 1) {
      c.issue(c.node(), c.path(),
              "give exactly one of jwks (inline), jwks_file or jwks_url: the client's public keys");
    }
    if (!client.jwks_file.empty() && !std::ifstream(client.jwks_file).good()) {
      c.issue(c.node()["jwks_file"], c.path() + ".jwks_file", "cannot read " + client.jwks_file);
    }
    if (client.scopes.empty()) {
      c.issue(c.node(), c.path() + ".scopes",
              "needs the scopes it may be granted, such as system/Task.rus");
    }
    c.finish();
    out.push_back(std::move(client));
  }
}

void read_external_issuer(MapReader m, ExternalIssuerConfig& out) {
  if (!m.node().IsDefined() || m.node().IsNull()) return;
  read_https_url(m, "issuer", out.issuer);
  read_https_url(m, "jwks_url", out.jwks_url);
  m.string("audience", out.audience);
  read_scopes(m, out.scopes);
  if (out.issuer.empty() || out.jwks_url.empty() || out.audience.empty()) {
    m.issue(m.node(), m.path(), "needs issuer, jwks_url and audience");
  }
  m.finish();
}

void read_networks(MapReader& m, const char* key, std::vector<IpNetwork>& out);

// A token bucket's keys, over `out`'s values as defaults.
void read_rate_limit(MapReader& m, RateLimit& out) {
  auto per_second = static_cast<long long>(out.per_second);
  auto burst = static_cast<long long>(out.burst);
  m.integer("per_second", per_second, 0, 1'000'000);
  m.integer("burst", burst, 1, 10'000'000);
  out = {static_cast<double>(per_second), static_cast<double>(burst)};
}

void read_rate_limits(MapReader m, RateLimitsConfig& out) {
  read_rate_limit(m, out.default_limit);
  auto parties = m.child("parties");
  for (const auto& entry : parties.entries()) {
    auto p = parties.child(entry.first);
    auto limit = out.default_limit;
    read_rate_limit(p, limit);
    p.finish();
    out.parties[entry.first] = limit;
  }
  parties.finish();
  m.finish();
}

void read_parties(MapReader m, std::vector<PartyConfig>& out) {
  std::set<std::string> senders;
  std::set<std::string> client_ids;
  for (const auto& entry : m.entries()) {
    const auto& name = entry.first;
    auto p = m.child(name);
    PartyConfig party;
    party.id = name;
    p.choice("kind", party.kind, {"clinic", "agency", "ops", "admin"});
    p.string("organization", party.organization);
    p.string("name", party.name);
    if (party.organization.empty()) party.organization = name;
    if (party.name.empty()) party.name = name;
    read_smart_clients(p.child("smart_clients"), party.smart_clients, client_ids);
    read_external_issuer(p.child("external_issuer"), party.external_issuer);
    p.strings("mllp_senders", party.mllp_senders);
    p.string("certificate_subject", party.certificate_subject);
    read_networks(p, "source_addresses", party.source_addresses);
    p.string("kafka_principal", party.kafka_principal);
    if (!party.kafka_principal.empty() && party.kafka_principal.find(':') == std::string::npos) {
      p.issue(p.node()["kafka_principal"], p.path() + ".kafka_principal",
              "expected TYPE:NAME such as \"User:" + name + "\"");
    }
    for (const auto& s : party.mllp_senders) {
      if (!senders.insert(s).second) {
        p.issue(p.node()["mllp_senders"], p.path() + ".mllp_senders",
                "\"" + s + "\" names another party too: one sender, one party");
      }
    }
    p.finish();
    out.push_back(std::move(party));
  }
}

void read_tls(MapReader m, TlsConfig& tls, bool check_files) {
  m.string("cert_file", tls.cert_file);
  m.string("key_file", tls.key_file);
  m.secret("key_password", tls.key_password);
  m.string("client_ca_file", tls.client_ca_file);
  m.boolean("require_client_cert", tls.require_client_cert);
  m.choice("min_version", tls.min_version, {"1.2", "1.3"});
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    m.issue(m.node(), m.path(), "cert_file and key_file go together: set both or neither");
  }
  if (tls.require_client_cert && tls.client_ca_file.empty()) {
    m.issue(m.node(), m.path() + ".client_ca_file",
            "require_client_cert needs client_ca_file, the CAs client certificates must chain to");
  }
  if (!tls.enabled() && (!tls.client_ca_file.empty() || tls.require_client_cert)) {
    m.issue(m.node(), m.path(), "client certificate settings need cert_file and key_file");
  }
  for (const auto& [key, file] : {std::pair{"cert_file", tls.cert_file},
                                  {"key_file", tls.key_file},
                                  {"client_ca_file", tls.client_ca_file}}) {
    if (check_files && !file.empty() && !std::ifstream(file).good()) {
      m.issue(m.node(), m.path() + "." + key, "cannot read " + file);
    }
  }
  m.finish();
}

// Load balancers allowed to name the client with a PROXY v2 header: IP addresses or networks,
// IPv4 or IPv6.
void read_networks(MapReader& m, const char* key, std::vector<IpNetwork>& out) {
  std::vector<std::string> entries;
  m.strings(key, entries);
  std::vector<IpNetwork> networks;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& entry = entries[i];
    IpNetwork network;
    network.text = entry;
    network.v6 = entry.find(':') != std::string::npos;
    const auto text =
        entry.find('/') != std::string::npos ? entry : entry + (network.v6 ? "/128" : "/32");
    boost::system::error_code ec;
    if (network.v6) {
      const auto parsed = boost::asio::ip::make_network_v6(text, ec);
      if (!ec) {
        network.bytes = parsed.address().to_bytes();
        network.prefix = parsed.prefix_length();
      }
    } else {
      const auto parsed = boost::asio::ip::make_network_v4(text, ec);
      if (!ec) {
        const auto bytes = parsed.address().to_bytes();
        std::copy(bytes.begin(), bytes.end(), network.bytes.begin());
        network.prefix = parsed.prefix_length();
      }
    }
    if (ec) {
      m.issue(m.node()[key], m.path() + "." + key + "[" + std::to_string(i) + "]",
              "\"" + entry +
                  "\" is not an IP address or network such as 10.0.0.5, 10.0.0.0/8 or "
                  "2001:db8::/32");
      continue;
    }
    networks.push_back(std::move(network));
  }
  if (!entries.empty()) out = std::move(networks);
}

// Properties that would weaken the delivery promise or bypass kafka.brokers.
constexpr std::string_view kReservedKafkaProperties[] = {
    "bootstrap.servers",     "metadata.broker.list", "enable.idempotence", "acks",
    "request.required.acks",
};

void read_kafka(MapReader m, KafkaConfig& k) {
  m.string("brokers", k.brokers);
  m.string("client_id", k.client_id, true);
  m.string("consumer_group", k.consumer_group, true);
  m.string("principal", k.principal, true);
  if (!k.principal.empty() && k.principal.find(':') == std::string::npos) {
    m.issue(m.node()["principal"], m.path() + ".principal",
            "expected TYPE:NAME such as \"User:sdoh-gateway\"");
  }
  m.boolean("provision_topics", k.provision_topics);
  {
    auto d = m.child("topic_defaults");
    d.integer("partitions", k.topic_defaults.partitions, 1, 10'000);
    d.integer("replication_factor", k.topic_defaults.replication_factor, 1, 32);
    d.integer("min_insync_replicas", k.topic_defaults.min_insync_replicas, 1, 32);
    d.duration("retention", k.topic_defaults.retention, milliseconds(0),
               std::chrono::hours(24 * 366 * 100));
    if (k.topic_defaults.min_insync_replicas > k.topic_defaults.replication_factor) {
      d.issue(d.node()["min_insync_replicas"], d.path() + ".min_insync_replicas",
              std::to_string(k.topic_defaults.min_insync_replicas) +
                  " is above replication_factor " +
                  std::to_string(k.topic_defaults.replication_factor) +
                  ": no write with acks=all could ever succeed");
    }
    d.finish();
  }
  m.integer("partitions", k.partitions, 1, 1024);
  m.integer("embedded_brokers", k.embedded_brokers, 1, 9);
  m.duration("metadata_interval", k.metadata_interval, milliseconds(100), std::chrono::minutes(10));
  m.duration("metadata_timeout", k.metadata_timeout, milliseconds(100), std::chrono::minutes(1));
  m.duration("flush_timeout", k.flush_timeout, milliseconds(0), std::chrono::minutes(10));
  {
    auto t = m.child("topics");
    t.string("screening", k.topics.screening, true);
    t.string("referral", k.topics.referral, true);
    t.string("referral_status", k.topics.referral_status, true);
    t.string("deadletter", k.topics.deadletter, true);
    t.string("referral_updates", k.topics.referral_updates, true);
    t.string("audit_anchors", k.topics.audit_anchors, true);
    t.finish();
  }
  auto props = m.child("properties");
  for (auto& [name, node] : props.entries()) {
    const auto path = props.path() + "." + name;
    if (std::find(std::begin(kReservedKafkaProperties), std::end(kReservedKafkaProperties), name) !=
        std::end(kReservedKafkaProperties)) {
      props.issue(node, path,
                  "is set by the gateway (kafka.brokers; idempotent producer with acks=all) and "
                  "cannot be overridden");
      continue;
    }
    KafkaProperty prop;
    const bool secret_like = name.find("password") != std::string::npos ||
                             name.find("secret") != std::string::npos || name == "ssl.key.pem";
    if (node.IsScalar() && secret_like) {
      props.issue(
          node, path,
          "is a secret: use { env: VARIABLE } or { file: /path } instead of a literal value");
      continue;
    }
    if (node.IsScalar()) {
      prop.value = node.Scalar();
    } else if (node.IsMap()) {
      props.read_secret(node, path, prop.secret);
    } else {
      props.issue(node, path, "expected a value or { env: VARIABLE } / { file: /path }");
      continue;
    }
    k.properties[name] = std::move(prop);
  }
  m.finish();
}

void read_smart(MapReader m, SmartConfig& out) {
  read_https_url(m, "token_endpoint", out.token_endpoint);
  auto seconds = [&m](std::string_view key, std::chrono::seconds& value, milliseconds min,
                      milliseconds max) {
    milliseconds ms = value;
    m.duration(key, ms, min, max);
    value = std::chrono::duration_cast<std::chrono::seconds>(ms);
  };
  seconds("access_token_lifetime", out.access_token_lifetime, std::chrono::seconds(30),
          std::chrono::hours(1));
  seconds("clock_skew", out.clock_skew, milliseconds(0), std::chrono::minutes(5));
  seconds("max_assertion_lifetime", out.max_assertion_lifetime, std::chrono::seconds(10),
          std::chrono::minutes(5));
  m.duration("jwks_refetch_interval", out.jwks_refetch_interval, milliseconds(0),
             std::chrono::hours(24));
  m.duration("jwks_max_age", out.jwks_max_age, std::chrono::seconds(1), std::chrono::hours(24 * 7));
  m.duration("jwks_timeout", out.jwks_timeout, milliseconds(100), std::chrono::minutes(1));
  m.string("jwks_ca_file", out.jwks_ca_file);
  m.finish();
}

// Static bearer tokens in production. The one decision on them: a static secret cannot prove
// who holds it the way a private_key_jwt assertion does, so production takes none for the FHIR
// API (SMART Backend Services instead). The one exception the security model makes is the ops
// party's Prometheus scrape token (a scraper cannot do private_key_jwt): it is configured as
// ops.token by the ops endpoints, outside fhir.clients, and is not refused here.
void check_production_static_bearers(const GatewayConfig& cfg, MapReader& top,
                                     const YAML::Node& root) {
  if (cfg.dev_mode()) return;
  for (const auto& c : cfg.fhir.clients) {
    if (!c.token.configured()) continue;
    top.issue(root["fhir"]["clients"][c.id]["token"], "fhir.clients." + c.id + ".token",
              "static bearer tokens are for mode: dev; in production a client authenticates "
              "with SMART Backend Services (parties.<id>.smart_clients) or a client certificate "
              "(certificate_cn)");
  }
  // The one static bearer production keeps is ops.token, for a Prometheus scraper.
  if (cfg.admin.token.configured()) {
    top.issue(root["admin"]["token"], "admin.token",
              "a static admin token is for mode: dev; in production an admin is a party of kind "
              "admin with certificate_subject, proven by its TLS client certificate "
              "(http.tls.client_ca_file)");
  }
}

// fhir.clients name their party; SMART clients and external issuers are the FHIR API's, so
// their parties are clinics or agencies; production pins the token endpoint's URL.
void check_fhir_identities(const GatewayConfig& cfg, MapReader& top, const YAML::Node& root) {
  for (const auto& c : cfg.fhir.clients) {
    if (c.party.empty()) continue;
    const auto* party = cfg.party(c.party);
    if (party == nullptr) {
      top.issue(root["fhir"]["clients"][c.id]["party"], "fhir.clients." + c.id + ".party",
                "\"" + c.party + "\" is not a party (parties.<id>)");
    } else if (party->kind != "clinic" && party->kind != "agency") {
      top.issue(
          root["fhir"]["clients"][c.id]["party"], "fhir.clients." + c.id + ".party",
          "party " + c.party + " is " + party->kind + ": FHIR API clients are clinics or agencies");
    }
  }
  bool smart = false;
  std::set<std::string> issuers;
  for (const auto& p : cfg.parties) {
    const bool has_credentials = !p.smart_clients.empty() || p.external_issuer.configured();
    smart = smart || has_credentials;
    if (has_credentials && p.kind != "clinic" && p.kind != "agency") {
      top.issue(root["parties"][p.id], "parties." + p.id,
                "SMART clients and external issuers are the FHIR API's: kind clinic or agency");
    }
    if (p.external_issuer.configured() && !issuers.insert(p.external_issuer.issuer).second) {
      top.issue(root["parties"][p.id]["external_issuer"], "parties." + p.id + ".external_issuer",
                "another party has the same issuer: one issuer, one party");
    }
    if (!cfg.dev_mode()) {
      for (const auto& c : p.smart_clients) {
        if (!c.jwks_url.empty() && !c.jwks_url.starts_with("https://")) {
          top.issue(root["parties"][p.id]["smart_clients"][c.client_id]["jwks_url"],
                    "parties." + p.id + ".smart_clients." + c.client_id + ".jwks_url",
                    "production fetches keys over https only");
        }
      }
      if (p.external_issuer.configured() && !p.external_issuer.jwks_url.starts_with("https://")) {
        top.issue(root["parties"][p.id]["external_issuer"]["jwks_url"],
                  "parties." + p.id + ".external_issuer.jwks_url",
                  "production fetches keys over https only");
      }
    }
  }
  if (!cfg.dev_mode() && smart && cfg.smart.token_endpoint.empty() && cfg.fhir.base_url.empty()) {
    top.issue(root["smart"], "smart.token_endpoint",
              "production needs the token endpoint's URL (smart.token_endpoint, or fhir.base_url "
              "it is derived from): client assertions' aud must name it, not a Host header");
  }
  if (!cfg.dev_mode() && !smart &&
      std::none_of(cfg.fhir.clients.begin(), cfg.fhir.clients.end(),
                   [](const FhirClientConfig& c) { return !c.certificate_cn.empty(); })) {
    top.issue(root["parties"], "parties",
              "production mode needs the FHIR API's clients: SMART Backend Services clients "
              "(parties.<id>.smart_clients), an external issuer (parties.<id>.external_issuer) "
              "or client certificates (fhir.clients.<id>.certificate_cn); without them every "
              "request would be accepted anonymously");
  }
}

}  // namespace

std::expected<GatewayConfig, ConfigErrors> parse_config(const std::string& yaml_text,
                                                        const std::string& file,
                                                        const ParseOptions& options) {
  ConfigErrors errors{file, {}};
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    errors.issues.push_back({"", "not valid YAML: " + e.msg, e.mark.line + 1});
    return std::unexpected(std::move(errors));
  }

  GatewayConfig cfg;
  MapReader top(errors, root, "");
  top.choice("mode", cfg.mode, {"dev", "production"});
  top.string("gateway_id", cfg.gateway_id, true);
  {
    std::string data_dir = cfg.data_dir.string();
    top.string("data_dir", data_dir, true);
    cfg.data_dir = data_dir;
  }
  {
    std::string schemas_dir = cfg.schemas_dir.string();
    top.string("schemas_dir", schemas_dir, true);
    cfg.schemas_dir = schemas_dir;
  }
  {
    auto m = top.child("pseudonym");
    m.secret("key", cfg.pseudonym.key);
    auto aliases = m.child("authority_aliases");
    for (auto& [name, node] : aliases.entries()) {
      if (!node.IsScalar() || node.Scalar().empty()) {
        aliases.issue(node, aliases.path() + "." + name,
                      "expected the identifier system it stands for");
        continue;
      }
      cfg.pseudonym.authority_aliases[name] = node.Scalar();
    }
    m.finish();
  }
  {
    auto m = top.child("log");
    m.choice("level", cfg.log.level, {"trace", "debug", "info", "warn", "error"});
    m.finish();
  }
  {
    auto m = top.child("runtime");
    m.integer("io_threads", cfg.runtime.io_threads, 1, 64);
    m.integer("store_threads", cfg.runtime.store_threads, 1, 64);
    m.duration("drain_timeout", cfg.runtime.drain_timeout, milliseconds(0),
               std::chrono::minutes(10));
    m.finish();
  }
  {
    auto m = top.child("http");
    m.listen("listen", cfg.http.listen);
    read_tls(m.child("tls"), cfg.http.tls, options.check_tls_files);
    m.size("max_body_bytes", cfg.http.max_body_bytes, 1024, kMaxSize);
    m.size("max_header_bytes", cfg.http.max_header_bytes, 1024, 1024 * 1024);
    m.duration("idle_timeout", cfg.http.idle_timeout, milliseconds(100), std::chrono::hours(1));
    m.duration("write_timeout", cfg.http.write_timeout, milliseconds(100), std::chrono::hours(1));
    m.integer("max_connections", cfg.http.max_connections, 1, 100'000);
    m.integer("max_connections_per_peer", cfg.http.max_connections_per_peer, 1, 100'000);
    read_networks(m, "trusted_proxies", cfg.http.trusted_proxies);
    m.boolean("insecure_loopback_only", cfg.http.insecure_loopback_only);
    m.finish();
  }
  {
    auto m = top.child("mllp");
    m.listen("listen", cfg.mllp.listen);
    read_tls(m.child("tls"), cfg.mllp.tls, options.check_tls_files);
    m.size("max_frame_bytes", cfg.mllp.max_frame_bytes, 1024, kMaxSize);
    m.duration("idle_timeout", cfg.mllp.idle_timeout, milliseconds(100), std::chrono::hours(24));
    m.duration("frame_timeout", cfg.mllp.frame_timeout, milliseconds(100), std::chrono::hours(1));
    m.duration("write_timeout", cfg.mllp.write_timeout, milliseconds(100), std::chrono::hours(1));
    m.integer("max_connections", cfg.mllp.max_connections, 1, 100'000);
    m.integer("max_connections_per_peer", cfg.mllp.max_connections_per_peer, 1, 100'000);
    read_networks(m, "trusted_proxies", cfg.mllp.trusted_proxies);
    m.boolean("insecure_loopback_only", cfg.mllp.insecure_loopback_only);
    read_hl7(m.child("hl7"), cfg.mllp.hl7);
    m.finish();
  }
  read_kafka(top.child("kafka"), cfg.kafka);
  {
    auto m = top.child("store");
    m.string("path", cfg.store.path, true);
    m.string("url", cfg.store.url);
    if (!cfg.store.url.empty() && !cfg.store.url.starts_with("postgresql://") &&
        !cfg.store.url.starts_with("postgres://"))
      m.issue(m.node()["url"], "store.url", "must be a postgresql:// URI (empty: SQLite)");
    m.secret("password", cfg.store.password);
    m.duration("lease", cfg.store.lease, std::chrono::seconds(1), std::chrono::minutes(10));
    m.choice("synchronous", cfg.store.synchronous, {"full", "normal"});
    const auto ten_years = std::chrono::hours(24 * 366 * 10);
    m.duration("delivered_retention", cfg.store.delivered_retention, milliseconds(0), ten_years);
    m.duration("payload_retention", cfg.store.payload_retention, milliseconds(0), ten_years);
    m.duration("dedupe_window", cfg.store.dedupe_window, std::chrono::minutes(1), ten_years);
    m.duration("dead_letter_retention", cfg.store.dead_letter_retention, milliseconds(0),
               ten_years);
    m.duration("resource_retention", cfg.store.resource_retention, std::chrono::hours(1),
               ten_years);
    m.duration("prune_interval", cfg.store.prune_interval, milliseconds(100),
               std::chrono::hours(24));
    m.integer("max_backlog_events", cfg.store.max_backlog_events, 0, std::int64_t{1} << 40);
    std::size_t backlog_bytes = static_cast<std::size_t>(cfg.store.max_backlog_bytes);
    m.size("max_backlog_bytes", backlog_bytes, 0, std::size_t{1} << 50);
    cfg.store.max_backlog_bytes = static_cast<std::int64_t>(backlog_bytes);
    m.integer("max_queued_commits", cfg.store.max_queued_commits, 1, 1'000'000);
    m.finish();
  }
  {
    auto m = top.child("json");
    m.integer("max_depth", cfg.json.max_depth, 8, 10'000);
    m.finish();
  }
  {
    auto m = top.child("delivery");
    m.choice("ack", cfg.delivery.ack, {"committed", "delivered"});
    m.duration("delivered_timeout", cfg.delivery.delivered_timeout, milliseconds(100),
               std::chrono::minutes(10));
    m.finish();
  }
  {
    auto m = top.child("admin");
    m.secret("token", cfg.admin.token);
    m.finish();
  }
  {
    auto m = top.child("ops");
    m.secret("token", cfg.ops.token);
    m.finish();
  }
  {
    auto m = top.child("mapping");
    m.choice("assistance_policy", cfg.mapping.assistance_policy, {"none", "positive-domain"});
    auto senders = m.child("assistance_policy_by_sender");
    for (auto& [sender, node] : senders.entries()) {
      if (!node.IsScalar() || (node.Scalar() != "none" && node.Scalar() != "positive-domain")) {
        senders.issue(node, senders.path() + "." + sender,
                      "expected none or positive-domain, got " + node_kind(node));
        continue;
      }
      cfg.mapping.assistance_policy_by_sender[sender] = node.Scalar();
    }
    m.finish();
  }
  {
    auto m = top.child("audit");
    // At least a year: HIPAA asks for six; less would prune what an investigation needs.
    m.duration("retention", cfg.audit.retention, std::chrono::hours(24 * 365),
               std::chrono::hours(24 * 366 * 100));
    m.duration("anchor_interval", cfg.audit.anchor_interval, std::chrono::seconds(1),
               std::chrono::hours(24));
    m.finish();
  }
  read_fhir(top.child("fhir"), cfg.fhir);
  read_parties(top.child("parties"), cfg.parties);
  read_rate_limits(top.child("rate_limits"), cfg.rate_limits);
  read_smart(top.child("smart"), cfg.smart);
  {
    auto m = top.child("referrals");
    m.duration("default_sla", cfg.referrals.default_sla, std::chrono::seconds(1),
               std::chrono::hours(24 * 366));
    m.duration("overdue_check_interval", cfg.referrals.overdue_check_interval, milliseconds(100),
               std::chrono::hours(24));
    m.boolean("from_screening", cfg.referrals.from_screening);
    std::string zip_county_file = cfg.referrals.zip_county_file.string();
    m.string("zip_county_file", zip_county_file);
    cfg.referrals.zip_county_file = zip_county_file;
    std::string routing_file = cfg.referrals.routing_file.string();
    m.string("routing_file", routing_file);
    cfg.referrals.routing_file = routing_file;
    m.finish();
  }
  {
    auto m = top.child("measures");
    m.duration("window", cfg.measures.window, std::chrono::hours(24),
               std::chrono::hours(24 * 366 * 10));
    m.integer("min_cell", cfg.measures.min_cell, 1, 1'000);
    m.finish();
    // The timelines the measures read are kept for their window.
    cfg.store.timeline_retention = cfg.measures.window;
  }
  top.finish();

  // Rules that span keys.
  if (!cfg.gateway_id.empty() &&
      !std::all_of(cfg.gateway_id.begin(), cfg.gateway_id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
      })) {
    top.issue(root["gateway_id"], "gateway_id", "use only letters, digits, '-', '.' and '_'");
  }
  if (cfg.mode == "production" && cfg.kafka.brokers.empty()) {
    top.issue(root["kafka"], "kafka.brokers",
              "production mode needs a Kafka cluster; the embedded broker is in-memory and for "
              "development only (set mode: dev to use it)");
  }
  if (cfg.mode == "production" && !cfg.pseudonym.key.configured()) {
    top.issue(root["pseudonym"], "pseudonym.key",
              "production mode needs a pseudonym key: { env: VARIABLE } or { file: /path } holding "
              "at least 32 random bytes (e.g. openssl rand -base64 48)");
  }
  if (cfg.kafka.provision_topics && cfg.kafka.brokers.empty()) {
    top.issue(root["kafka"]["provision_topics"], "kafka.provision_topics",
              "creates topics on a real cluster (kafka.brokers); the embedded broker creates its "
              "own");
  }
  check_fhir_identities(cfg, top, root);
  check_production_static_bearers(cfg, top, root);
  if (cfg.mode == "production") {
    for (const auto& p : cfg.parties) {
      if (!p.mllp_senders.empty() && p.certificate_subject.empty() && p.source_addresses.empty()) {
        top.issue(
            root["parties"], "parties." + p.id,
            std::string(p.kind == "agency" ? "an agency that answers" : "a clinic that sends") +
                " over MLLP needs certificate_subject (mTLS) or source_addresses in "
                "production: its messages' MSH-3/MSH-4 prove nothing");
      }
    }
  }
  // Transmission security (HIPAA 164.312(e)): in production every listener is TLS, unless an
  // operator says it is plain on loopback behind a local TLS terminator.
  for (const auto& [name, listen, tls, insecure] :
       {std::tuple{"http", &cfg.http.listen, &cfg.http.tls, cfg.http.insecure_loopback_only},
        std::tuple{"mllp", &cfg.mllp.listen, &cfg.mllp.tls, cfg.mllp.insecure_loopback_only}}) {
    const std::string key(name);
    if (insecure && !is_loopback_host(listen->host)) {
      top.issue(root[key]["insecure_loopback_only"], key + ".insecure_loopback_only",
                "allows plain " + key + " only on a loopback address (127.0.0.1 or ::1), but " +
                    key + ".listen is " + listen->host);
    } else if (insecure && tls->enabled()) {
      top.issue(root[key]["insecure_loopback_only"], key + ".insecure_loopback_only",
                "the listener has TLS (" + key + ".tls.cert_file); remove one of the two");
    } else if (cfg.mode == "production" && !tls->enabled() && !insecure) {
      top.issue(root[key], key + ".tls.cert_file",
                "production mode needs TLS on every listener: set " + key +
                    ".tls.cert_file and key_file, or " + key +
                    ".insecure_loopback_only: true for a loopback listener behind a local "
                    "TLS-terminating proxy");
    }
  }
  if (cfg.http.listen.port != 0 && cfg.http.listen.port == cfg.mllp.listen.port &&
      cfg.http.listen.host == cfg.mllp.listen.host) {
    top.issue(root["mllp"], "mllp.listen", "uses the same address as http.listen");
  }

  if (!errors.issues.empty()) return std::unexpected(std::move(errors));
  return cfg;
}

std::expected<GatewayConfig, ConfigErrors> load_config(const std::filesystem::path& file,
                                                       const ParseOptions& options) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return std::unexpected(ConfigErrors{file.string(), {{"", "cannot read the file", 0}}});
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return parse_config(buf.str(), file.string(), options);
}

}  // namespace sdoh::config
