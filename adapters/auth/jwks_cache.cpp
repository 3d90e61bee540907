#include "adapters/auth/jwks_cache.hpp"

#include <fstream>
#include <sstream>

namespace sdoh::auth {

JwksCache::JwksCache(JwksFetch fetch, std::chrono::milliseconds refetch_interval,
                     std::chrono::milliseconds max_age, Clock clock)
    : fetch_(std::move(fetch)),
      refetch_interval_(refetch_interval),
      max_age_(max_age),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })) {}

Result<void> JwksCache::add(const std::string& id, const KeySource& source) {
  auto e = std::make_unique<Entry>();
  e->source = source;
  std::string text = source.inline_json;
  if (!source.file.empty()) {
    std::ifstream in(source.file, std::ios::binary);
    if (!in)
      return fail(Error::config(source.config_key + ".jwks_file", "cannot read " + source.file));
    std::ostringstream buf;
    buf << in.rdbuf();
    text = buf.str();
  }
  if (source.url.empty()) {
    auto keys = parse_jwks(text);
    if (!keys) return fail(Error::config(source.config_key, keys.error().message));
    if (keys->keys.empty()) {
      return fail(Error::config(
          source.config_key,
          "the JWKS has no usable key" +
              (keys->skipped.empty() ? std::string() : ": " + keys->skipped.front())));
    }
    e->keys = std::move(*keys);
    e->loaded = true;
  }
  std::lock_guard lock(map_lock_);
  entries_[id] = std::move(e);
  return {};
}

JwksCache::Entry* JwksCache::entry(const std::string& id) const {
  std::lock_guard lock(map_lock_);
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : it->second.get();
}

std::uint64_t JwksCache::fetches() const {
  return fetches_.load();
}

Result<void> JwksCache::fetch(Entry& e, std::chrono::steady_clock::time_point now) {
  e.tried_at = now;
  ++fetches_;
  auto body = fetch_ ? fetch_(e.source.url) : fail(Error::unavailable("no JWKS fetcher"));
  if (!body) {
    return fail(Error::unavailable("the JWKS at " + e.source.url +
                                   " cannot be fetched: " + body.error().message));
  }
  auto keys = parse_jwks(*body);
  if (!keys) {
    return fail(Error::unavailable("the document at " + e.source.url +
                                   " is not a JWKS: " + keys.error().message));
  }
  e.keys = std::move(*keys);
  e.loaded = true;
  e.fetched_at = now;
  return {};
}

Result<Jwk> JwksCache::find(const std::string& id, std::string_view kid, Alg alg) {
  Entry* e = entry(id);
  if (e == nullptr) return fail(Error::invalid("no keys are registered for " + id));
  std::lock_guard lock(e->lock);
  const auto now = clock_();
  const bool url = !e->source.url.empty();
  auto lookup = [&]() -> std::optional<Result<Jwk>> {
    const Jwk* only = nullptr;
    int fitting = 0;
    for (const auto& k : e->keys.keys) {
      if (!kid.empty()) {
        if (k.kid() != kid) continue;
        if (!k.fits(alg)) {
          return Result<Jwk>(
              fail(Error::invalid("the key " + std::string(kid) + " does not sign with " +
                                  std::string(alg_name(alg)))));
        }
        return Result<Jwk>(k);
      }
      if (k.fits(alg)) only = &k, ++fitting;
    }
    if (kid.empty() && fitting == 1) return Result<Jwk>(*only);
    return std::nullopt;
  };
  if (url) {
    const bool stale = !e->loaded || now - e->fetched_at >= max_age_;
    if (stale && (!e->loaded || now - e->tried_at >= refetch_interval_)) {
      if (auto r = fetch(*e, now); !r && !e->loaded) return fail(r.error());
    }
  }
  if (auto found = lookup()) return std::move(*found);
  // An unknown kid: the owner may have rotated its keys. Fetch again, rate-limited.
  if (url && now - e->tried_at >= refetch_interval_) {
    if (auto r = fetch(*e, now); !r) return fail(r.error());
    if (auto found = lookup()) return std::move(*found);
    return fail(Error::invalid("no key " +
                               (kid.empty() ? std::string("fits ") + std::string(alg_name(alg))
                                            : "\"" + std::string(kid) + "\"") +
                               " in the JWKS at " + e->source.url + " (fetched again just now)"));
  }
  if (url) {
    return fail(Error::invalid("no key \"" + std::string(kid) + "\" in the JWKS at " +
                               e->source.url +
                               " (not fetched again: the last fetch is too recent)"));
  }
  return fail(Error::invalid(kid.empty() ? "no single key fits " + std::string(alg_name(alg)) +
                                               ": the JWT needs a kid"
                                         : "no key \"" + std::string(kid) + "\" is registered"));
}

}  // namespace sdoh::auth
