#include "adapters/store/key_index.hpp"

#include <random>

#include "adapters/store/siphash.hpp"

namespace sdoh::store {

namespace {

struct SipKey {
  std::uint64_t k0, k1;
};
const SipKey& process_key() {
  static const SipKey key = [] {
    std::random_device random;
    auto word = [&] { return (std::uint64_t{random()} << 32) ^ random(); };
    return SipKey{word(), word()};
  }();
  return key;
}

}  // namespace

void KeyTable::insert(std::uint64_t hash, std::int64_t id) {
  // At most 70% full, so that probes stay short.
  if ((size_ + 1) * 10 > slots_.size() * 7) grow();
  std::size_t i = hash & mask_;
  while (slots_[i].id != 0)
    i = (i + 1) & mask_;
  slots_[i] = {hash, id};
  ++size_;
}

bool KeyTable::erase(std::uint64_t hash, std::int64_t id) {
  if (slots_.empty()) return false;
  std::size_t i = hash & mask_;
  for (;; i = (i + 1) & mask_) {
    if (slots_[i].id == 0) return false;
    if (slots_[i].hash == hash && slots_[i].id == id) break;
  }
  // Backward-shift deletion: move up every later entry of the run whose home slot is not
  // between the hole and it, so that no probe stops early at the hole.
  std::size_t hole = i;
  for (std::size_t j = (hole + 1) & mask_; slots_[j].id != 0; j = (j + 1) & mask_) {
    const std::size_t home = slots_[j].hash & mask_;
    const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    slots_[hole] = slots_[j];
    hole = j;
  }
  slots_[hole] = {};
  --size_;
  return true;
}

void KeyTable::grow() {
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
  mask_ = slots_.size() - 1;
  size_ = 0;
  for (const auto& s : old) {
    if (s.id != 0) insert(s.hash, s.id);
  }
}

std::uint64_t UniqueKeys::inbound_hash(std::string_view protocol, std::string_view sender,
                                       std::string_view dedupe_key) {
  const auto& key = process_key();
  SipHasher<1, 3> h(key.k0, key.k1);
  h.update_part(protocol);
  h.update_part(sender);
  h.update_part(dedupe_key);
  return h.finish();
}

std::uint64_t UniqueKeys::event_hash(std::string_view event_id) {
  const auto& key = process_key();
  SipHasher<1, 3> h(key.k0 ^ 1, key.k1);  // another key than the inbound keys'
  h.update(event_id);
  return h.finish();
}

void UniqueKeys::add(KeyTable& table, std::uint64_t hash, std::int64_t id) {
  table.insert(hash, id);
  journal_.push_back({&table, hash, id, true});
}

void UniqueKeys::remove(KeyTable& table, std::uint64_t hash, std::int64_t id) {
  if (table.erase(hash, id)) journal_.push_back({&table, hash, id, false});
}

void UniqueKeys::undo_to(std::size_t mark, bool keep_added) {
  while (journal_.size() > mark) {
    const auto c = journal_.back();
    journal_.pop_back();
    if (!c.added) {
      c.table->insert(c.hash, c.id);
    } else if (!keep_added) {
      c.table->erase(c.hash, c.id);
    }
  }
}

}  // namespace sdoh::store
