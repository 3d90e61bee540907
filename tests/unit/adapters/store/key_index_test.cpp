// The SQLite store's in-memory unique keys: a multimap of hashes to row ids that stays correct
// through collisions, deletions in the middle of a probe run and growth, and a journal that takes
// back a rolled-back transaction's changes.
#include "adapters/store/key_index.hpp"

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "adapters/store/siphash.hpp"

namespace sdoh::store {
namespace {

std::vector<std::int64_t> ids_of(const KeyTable& t, std::uint64_t hash) {
  std::vector<std::int64_t> ids;
  t.for_each(hash, [&](std::int64_t id) { ids.push_back(id); });
  std::sort(ids.begin(), ids.end());
  return ids;
}

TEST(KeyTable, FindsEveryIdStoredUnderAHash) {
  KeyTable t;
  EXPECT_TRUE(ids_of(t, 42).empty());
  t.insert(42, 7);
  t.insert(42, 9);  // another key with the same hash
  t.insert(43, 8);
  EXPECT_EQ(ids_of(t, 42), (std::vector<std::int64_t>{7, 9}));
  EXPECT_EQ(ids_of(t, 43), (std::vector<std::int64_t>{8}));
  EXPECT_TRUE(ids_of(t, 44).empty());
  EXPECT_EQ(t.size(), 3u);
}

TEST(KeyTable, EraseInTheMiddleOfARunKeepsTheLaterEntriesFindable) {
  KeyTable t;
  // Hashes 1024 apart share a home slot in the first 1,024 slots; the run wraps past the end.
  const std::uint64_t home = 1022;
  for (std::int64_t i = 0; i < 6; ++i)
    t.insert(home + 1024 * static_cast<std::uint64_t>(i), i + 1);
  t.insert(1023, 100);  // homed inside the run
  t.insert(0, 200);     // homed in the slot the run wraps into
  EXPECT_TRUE(t.erase(home + 1024, 2));
  EXPECT_FALSE(t.erase(home + 1024, 2));
  EXPECT_FALSE(t.erase(home, 99));
  for (std::int64_t i = 0; i < 6; ++i) {
    const auto ids = ids_of(t, home + 1024 * static_cast<std::uint64_t>(i));
    EXPECT_EQ(ids, i == 1 ? std::vector<std::int64_t>{} : std::vector<std::int64_t>{i + 1}) << i;
  }
  EXPECT_EQ(ids_of(t, 1023), (std::vector<std::int64_t>{100}));
  EXPECT_EQ(ids_of(t, 0), (std::vector<std::int64_t>{200}));
}

TEST(KeyTable, MatchesAReferenceMultimapThroughGrowthAndDeletes) {
  KeyTable t;
  std::multimap<std::uint64_t, std::int64_t> reference;
  std::mt19937_64 random(7);
  std::int64_t next_id = 1;
  for (int round = 0; round < 60000; ++round) {
    // Few distinct hashes in a small range: long runs and many collisions.
    const std::uint64_t hash = random() % 5000;
    if (random() % 3 != 0 || reference.empty()) {
      t.insert(hash, next_id);
      reference.emplace(hash, next_id++);
    } else {
      auto it = reference.lower_bound(hash);
      if (it == reference.end()) it = reference.begin();
      EXPECT_TRUE(t.erase(it->first, it->second));
      reference.erase(it);
    }
  }
  EXPECT_EQ(t.size(), reference.size());
  for (std::uint64_t hash = 0; hash < 5000; ++hash) {
    std::vector<std::int64_t> expected;
    for (auto [it, end] = reference.equal_range(hash); it != end; ++it)
      expected.push_back(it->second);
    std::sort(expected.begin(), expected.end());
    ASSERT_EQ(ids_of(t, hash), expected) << hash;
  }
}

TEST(UniqueKeys, UndoTakesBackAddsAndRemovesAfterTheMark) {
  UniqueKeys keys;
  keys.add(keys.inbound, 1, 10);
  keys.add(keys.events, 2, 20);
  keys.keep();  // committed
  const auto mark = keys.mark();
  keys.add(keys.inbound, 3, 30);
  keys.remove(keys.events, 2, 20);
  keys.remove(keys.events, 2, 99);  // not there: nothing to undo
  keys.undo_to(mark);
  EXPECT_EQ(ids_of(keys.inbound, 1), (std::vector<std::int64_t>{10}));
  EXPECT_TRUE(ids_of(keys.inbound, 3).empty());
  EXPECT_EQ(ids_of(keys.events, 2), (std::vector<std::int64_t>{20}));
  // Kept changes are not undone by a later rollback.
  keys.remove(keys.inbound, 1, 10);
  keys.keep();
  keys.undo_to(0);
  EXPECT_TRUE(ids_of(keys.inbound, 1).empty());
}

// The reference vector of the SipHash paper (appendix A): SipHash-2-4, key 00..0f, message
// 00..0e; fed in uneven pieces.
TEST(SipHasher, MatchesThePapersTestVector) {
  char message[15];
  for (int i = 0; i < 15; ++i)
    message[i] = static_cast<char>(i);
  SipHasher<2, 4> h(0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL);
  h.update(std::string_view(message, 3));
  h.update(std::string_view(message + 3, 9));
  h.update(std::string_view(message + 12, 3));
  EXPECT_EQ(h.finish(), 0xa129ca6149be45e5ULL);
}

TEST(UniqueKeys, AFailedCommitKeepsItsAdditionsAndGetsBackItsRemovals) {
  UniqueKeys keys;
  keys.add(keys.inbound, 1, 10);
  keys.keep();
  const auto mark = keys.mark();
  keys.add(keys.inbound, 2, 20);
  keys.remove(keys.inbound, 1, 10);
  keys.undo_to(mark, /*keep_added=*/true);
  EXPECT_EQ(ids_of(keys.inbound, 1), (std::vector<std::int64_t>{10}));
  EXPECT_EQ(ids_of(keys.inbound, 2), (std::vector<std::int64_t>{20}));
  keys.undo_to(mark);  // the journal is spent: nothing more comes back or goes
  EXPECT_EQ(keys.inbound.size(), 2u);
}

TEST(UniqueKeys, HashesTellTheKeysPartsApart) {
  std::set<std::uint64_t> hashes{
      UniqueKeys::inbound_hash("hl7v2", "EHR^A", "MSG1"),
      UniqueKeys::inbound_hash("hl7v2", "EHR^A", "MSG2"),
      UniqueKeys::inbound_hash("hl7v2", "EHR^AMSG1", ""),
      UniqueKeys::inbound_hash("hl7v2", "", "EHR^AMSG1"),
      UniqueKeys::inbound_hash("fhir", "EHR^A", "MSG1"),
  };
  EXPECT_EQ(hashes.size(), 5u);
  EXPECT_EQ(UniqueKeys::event_hash("a1"), UniqueKeys::event_hash("a1"));
  EXPECT_NE(UniqueKeys::event_hash("a1"), UniqueKeys::event_hash("a2"));
}

}  // namespace
}  // namespace sdoh::store
