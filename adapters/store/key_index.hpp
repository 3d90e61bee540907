#pragma once
// The SQLite store's unique keys in memory: the inbound dedupe keys (protocol, sender, key) and
// the outbox event ids, each as a 64-bit hash pointing at the row that holds it (inbound id,
// outbox seq). A B-tree index keyed by such a key takes a random leaf page per insert, written
// twice (WAL, checkpoint): about half the pages a message cost. The store answers "seen before?"
// here instead, and confirms each hash match against the row (two keys may share a hash).
//
// Owned by the writer thread (filled before it starts). Changes made inside a group transaction
// are journaled, so a rolled-back savepoint or group takes them back with its rows.
#include <cstdint>
#include <string_view>
#include <vector>

namespace sdoh::store {

/// A multimap from 64-bit hashes to row ids (ids > 0), open addressing with linear probing.
class KeyTable {
 public:
  void insert(std::uint64_t hash, std::int64_t id);
  /// Removes one entry (hash, id); false when there is none.
  bool erase(std::uint64_t hash, std::int64_t id);
  /// The ids stored under `hash` (usually none or one).
  template <class F>
  void for_each(std::uint64_t hash, F&& fn) const {
    if (slots_.empty()) return;
    for (std::size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const auto& s = slots_[i];
      if (s.id == 0) return;
      if (s.hash == hash) fn(s.id);
    }
  }
  std::size_t size() const { return size_; }
  std::size_t memory_bytes() const { return slots_.capacity() * sizeof(Slot); }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::int64_t id = 0;  // 0: empty
  };
  void grow();
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

/// Both key tables, with the journal of what the current transaction changed.
class UniqueKeys {
 public:
  // Keyed hashes (SipHash-1-3, a random key per process): no sender can choose keys that share
  // a hash. Not stable across processes; never stored.
  static std::uint64_t inbound_hash(std::string_view protocol, std::string_view sender,
                                    std::string_view dedupe_key);
  static std::uint64_t event_hash(std::string_view event_id);

  KeyTable inbound;  ///< inbound_hash -> inbound.id (rows with a dedupe key)
  KeyTable events;   ///< event_hash -> outbox.seq

  void add(KeyTable& table, std::uint64_t hash, std::int64_t id);
  void remove(KeyTable& table, std::uint64_t hash, std::int64_t id);

  /// Where the journal stands: undo_to(mark()) takes back whatever was changed after it.
  /// With `keep_added`, only the removals come back: for a transaction whose COMMIT failed, whose
  /// rows may or may not be there. A key whose row is missing is harmless (every match is
  /// checked against its row); a row whose key is missing would let a resend in.
  std::size_t mark() const { return journal_.size(); }
  void undo_to(std::size_t mark, bool keep_added = false);
  /// The transaction committed: its changes stay.
  void keep() { journal_.clear(); }

 private:
  struct Change {
    KeyTable* table;
    std::uint64_t hash;
    std::int64_t id;
    bool added;
  };
  std::vector<Change> journal_;
};

}  // namespace sdoh::store
