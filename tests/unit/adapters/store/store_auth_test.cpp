// The store's part of SMART Backend Services (pipeline/auth_port.hpp).
#include "tests/unit/adapters/store/store_fixture.hpp"

namespace sdoh::store {
namespace {

using store_test_support::StoreTest;

class StoreAuthTest : public StoreTest {};
SDOH_STORE_TEST_ON_EVERY_ENGINE(StoreAuthTest);

TEST_P(StoreAuthTest, AnAssertionJtiIsAcceptedOncePerClientUntilItExpires) {
  auto opened = open_store(cfg_, nullptr, clock());
  ASSERT_TRUE(opened);
  auto& store = **opened;
  const auto expires = now_ms_.load() + 300'000;
  EXPECT_EQ(store.record_assertion("ehr", "j1", expires), true);
  EXPECT_EQ(store.record_assertion("ehr", "j1", expires), false);  // a replay
  EXPECT_EQ(store.record_assertion("other-client", "j1", expires), true);
  advance(std::chrono::milliseconds(300'001));
  // Expired: the assertion's own exp refuses it now; the row may be used again.
  EXPECT_EQ(store.record_assertion("ehr", "j1", now_ms_.load() + 300'000), true);
}

TEST_P(StoreAuthTest, ExpiredAssertionsArePruned) {
  auto opened = open_store(cfg_, nullptr, clock());
  ASSERT_TRUE(opened);
  auto& store = **opened;
  ASSERT_TRUE(store.record_assertion("ehr", "j1", now_ms_.load() + 1'000));
  ASSERT_TRUE(store.record_assertion("ehr", "j2", now_ms_.load() + 600'000));
  advance(std::chrono::milliseconds(2'000));
  auto pruned = store.prune_now();
  ASSERT_TRUE(pruned);
  EXPECT_EQ(*pruned, 1);
  EXPECT_EQ(store.record_assertion("ehr", "j2", now_ms_.load() + 600'000), false);
}

TEST_P(StoreAuthTest, TheFirstSigningKeyStoredIsEveryonesKey) {
  {
    auto opened = open_store(cfg_, nullptr, clock());
    ASSERT_TRUE(opened);
    auto first = (*opened)->signing_key({"kid-a", "ES256", "PEM A"});
    ASSERT_TRUE(first);
    EXPECT_EQ(first->kid, "kid-a");
    auto second = (*opened)->signing_key({"kid-b", "ES256", "PEM B"});
    ASSERT_TRUE(second);
    EXPECT_EQ(second->kid, "kid-a");
    EXPECT_EQ(second->private_pem, "PEM A");
  }
  auto reopened = open_store(cfg_, nullptr, clock());
  ASSERT_TRUE(reopened);
  auto after = (*reopened)->signing_key({"kid-c", "ES256", "PEM C"});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->kid, "kid-a");
}

}  // namespace
}  // namespace sdoh::store
