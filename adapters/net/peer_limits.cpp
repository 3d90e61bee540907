#include "adapters/net/peer_limits.hpp"

#include <algorithm>

namespace sdoh::net {

PeerLimits::PeerLimits(std::size_t per_peer) : per_peer_(std::max<std::size_t>(per_peer, 1)) {}

PeerLimits::Slot::Slot(Slot&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), key_(std::move(other.key_)) {}

PeerLimits::Slot& PeerLimits::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::exchange(other.owner_, nullptr);
    key_ = std::move(other.key_);
  }
  return *this;
}

PeerLimits::Slot::~Slot() {
  release();
}

void PeerLimits::Slot::release() {
  if (owner_ != nullptr) std::exchange(owner_, nullptr)->release(key_);
}

std::optional<PeerLimits::Slot> PeerLimits::try_acquire(std::string key) {
  std::lock_guard lock(mutex_);
  auto& open = open_[key];
  if (open >= per_peer_) return std::nullopt;  // open > 0 here, so the entry was not new
  ++open;
  return Slot(this, std::move(key));
}

bool PeerLimits::move(Slot& slot, std::string key) {
  if (slot.owner_ != this || key == slot.key_) return slot.owner_ == this;
  std::lock_guard lock(mutex_);
  auto& open = open_[key];
  if (open >= per_peer_) return false;
  ++open;
  auto from = open_.find(slot.key_);
  if (from != open_.end() && --from->second == 0) open_.erase(from);
  slot.key_ = std::move(key);
  return true;
}

std::size_t PeerLimits::count(std::string_view key) const {
  std::lock_guard lock(mutex_);
  const auto it = open_.find(std::string(key));
  return it == open_.end() ? 0 : it->second;
}

std::size_t PeerLimits::peers() const {
  std::lock_guard lock(mutex_);
  return open_.size();
}

void PeerLimits::release(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto it = open_.find(key);
  if (it != open_.end() && --it->second == 0) open_.erase(it);
}

std::string peer_key(const boost::asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6())
        .to_string();
  }
  return address.to_string();
}

std::string certificate_peer_key(std::string_view subject) {
  return "cert:" + std::string(subject);
}

}  // namespace sdoh::net
