#pragma once
#include <cstdint>
#include <string_view>

namespace sdoh::store {

/// SipHash-C-D (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012), fed in pieces.
/// The store's in-memory keys use SipHash-1-3 (as Rust's HashMap does) under a key drawn at
/// random per process: a sender who chooses control ids cannot make them share a hash.
template <int C, int D>
class SipHasher {
 public:
  SipHasher(std::uint64_t k0, std::uint64_t k1)
      : v0_(k0 ^ 0x736f6d6570736575ULL),
        v1_(k1 ^ 0x646f72616e646f6dULL),
        v2_(k0 ^ 0x6c7967656e657261ULL),
        v3_(k1 ^ 0x7465646279746573ULL) {}

  void update(std::string_view bytes) {
    for (const unsigned char c : bytes) {
      tail_ |= std::uint64_t{c} << (8 * (length_ % 8));
      if (++length_ % 8 == 0) {
        absorb(tail_);
        tail_ = 0;
      }
    }
  }
  /// A part of a composite key: its length first, so that ("ab", "c") and ("a", "bc") differ.
  void update_part(std::string_view part) {
    const auto n = static_cast<std::uint64_t>(part.size());
    char size[8];
    for (int i = 0; i < 8; ++i)
      size[i] = static_cast<char>(n >> (8 * i));
    update(std::string_view(size, 8));
    update(part);
  }
  std::uint64_t finish() {
    absorb(tail_ | (std::uint64_t{length_ & 0xff} << 56));
    v2_ ^= 0xff;
    for (int i = 0; i < D; ++i)
      round();
    return v0_ ^ v1_ ^ v2_ ^ v3_;
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }
  void round() {
    v0_ += v1_;
    v1_ = rotl(v1_, 13);
    v1_ ^= v0_;
    v0_ = rotl(v0_, 32);
    v2_ += v3_;
    v3_ = rotl(v3_, 16);
    v3_ ^= v2_;
    v0_ += v3_;
    v3_ = rotl(v3_, 21);
    v3_ ^= v0_;
    v2_ += v1_;
    v1_ = rotl(v1_, 17);
    v1_ ^= v2_;
    v2_ = rotl(v2_, 32);
  }
  void absorb(std::uint64_t m) {
    v3_ ^= m;
    for (int i = 0; i < C; ++i)
      round();
    v0_ ^= m;
  }
  std::uint64_t v0_, v1_, v2_, v3_;
  std::uint64_t tail_ = 0;
  std::uint64_t length_ = 0;
};

}  // namespace sdoh::store
