#pragma once
// A fair share of a listener's connections for each peer, so that one sender (or one attacker)
// holding idle connections cannot lock every other sender out: without it, 256 idle MLLP or
// 1,024 idle HTTP connections from one address filled the global cap and /healthz with it.
//
// A peer is a key: the client's IP address (never its port; "10.1.2.3", "2001:db8::1"), or
// "cert:<subject>" once a connection has shown a verified TLS client certificate, so clinics
// behind one NAT address with certificates of their own do not share a slot pool.
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <boost/asio/ip/address.hpp>

namespace sdoh::net {

class PeerLimits {
 public:
  /// At most `per_peer` open connections per key (at least 1).
  explicit PeerLimits(std::size_t per_peer);
  PeerLimits(const PeerLimits&) = delete;
  PeerLimits& operator=(const PeerLimits&) = delete;

  /// One connection's place in its peer's share; gives it back when destroyed. Must not outlive
  /// the PeerLimits that issued it (the listeners' state owns both).
  class Slot {
   public:
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot();
    const std::string& key() const { return key_; }

   private:
    friend class PeerLimits;
    Slot(PeerLimits* owner, std::string key) : owner_(owner), key_(std::move(key)) {}
    void release();
    PeerLimits* owner_ = nullptr;  // null once moved from
    std::string key_;
  };

  /// A slot for `key`, or nothing when `key` already holds per_peer() slots.
  std::optional<Slot> try_acquire(std::string key);
  /// Moves `slot` to `key` (an mTLS client's certificate after the handshake). False, and the
  /// slot stays where it was, when `key` is full; moving to its own key always succeeds.
  bool move(Slot& slot, std::string key);

  std::size_t per_peer() const { return per_peer_; }
  /// Open slots of `key`.
  std::size_t count(std::string_view key) const;
  /// Keys holding at least one slot: keys are forgotten when their last slot goes, so the
  /// table stays as small as the set of connected peers.
  std::size_t peers() const;

 private:
  void release(const std::string& key);

  const std::size_t per_peer_;
  // Connections live on strands of their own, so the table is shared between threads: every
  // access holds mutex_.
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::size_t> open_;
};

/// The key of a peer's IP address: an IPv4 client seen through an IPv6 listener
/// (::ffff:10.1.2.3) is the same peer as 10.1.2.3.
std::string peer_key(const boost::asio::ip::address& address);

/// The key of a client identified by its verified TLS certificate's subject.
std::string certificate_peer_key(std::string_view subject);

}  // namespace sdoh::net
