#pragma once
// The audit trail's hash chain: each record carries the SHA-256 of the previous record's hash and
// its own canonical content (the AuditEvent JSON as stored), and records are numbered 1, 2, 3, …
// with no gap. Editing a record breaks its hash; deleting one leaves a gap or breaks the next
// record's link. Deleting the tail leaves a shorter chain that is still consistent, so the head
// (sequence + hash) is anchored outside the store: published on Kafka (sdoh.audit-anchors.v1)
// and written to the log, periodically and at each retention prune. A prune removes the oldest
// records and keeps the hash of the last one removed, so the chain stays verifiable from the
// first record kept; the prune anchor records that hash too.
//
// Pure: the store appends (adapters/store) and tools/audit verifies with these functions.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/result.hpp"

namespace sdoh::audit {

/// The previous hash of record 1: 64 zeros.
inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// Lowercase hex SHA-256 of `previous_hash` (hex text) followed by `canonical`.
std::string chain_hash(std::string_view previous_hash, std::string_view canonical);

/// One stored record as the chain sees it.
struct ChainRecord {
  std::int64_t sequence = 0;
  std::string previous_hash;  ///< as stored
  std::string hash;           ///< as stored
  std::string json;           ///< the canonical content
};

/// Where the stored chain begins: record 1 after the genesis hash, or, after a prune, the record
/// after the last one pruned and that record's hash.
struct ChainStart {
  std::int64_t pruned_through = 0;
  std::string pruned_through_hash = std::string(kGenesisHash);
};

/// A published head of the chain.
struct Anchor {
  std::string gateway;
  std::int64_t sequence = 0;        ///< the head's sequence (0: empty chain)
  std::string hash;                 ///< the head's hash
  std::string reason;               ///< periodic | prune
  std::int64_t pruned_through = 0;  ///< prune: the last record removed (0: none)
  std::string pruned_through_hash;  ///< prune: its hash, the first kept record's predecessor
  std::string time;                 ///< RFC 3339
};

/// The org.sdoh.audit.anchor.v1 data object of `anchor`.
std::string anchor_data_json(const Anchor& anchor);
/// Anchors from text holding one JSON object per line: CloudEvents (as consumed from Kafka, e.g.
/// with kcat) or their data objects. Blank lines are skipped; a line that is not an anchor is an
/// error naming its line number.
Result<std::vector<Anchor>> parse_anchors(std::string_view text);

/// The outcome of a verification: the first problem found, if any.
struct ChainReport {
  bool ok = true;
  std::int64_t records = 0;         ///< records checked
  std::int64_t first_sequence = 0;  ///< the first stored record (0: none)
  std::int64_t head_sequence = 0;   ///< the last stored record (or the prune point)
  std::string head_hash;
  std::int64_t bad_sequence = 0;  ///< the first record edited or missing (0: none, or the tail)
  std::string problem;            ///< what is wrong, naming sequences (never content)
  std::string anchor_note;        ///< what the anchors said, when they were checked
};

/// Verifies records handed in sequence order, then the head against anchors. Streams: holds
/// no record after add().
class ChainVerifier {
 public:
  /// `anchors` may be empty (the head is then not checked); those of another gateway are
  /// ignored when `gateway` is not empty.
  ChainVerifier(ChainStart start, std::vector<Anchor> anchors, std::string gateway = "");
  /// Checks one record; after the first problem the rest are counted, not checked.
  void add(const ChainRecord& record);
  /// The report, with the head checked against the newest anchor and the prune point against
  /// the prune anchors.
  ChainReport finish();

 private:
  void problem(std::int64_t sequence, std::string text);
  ChainStart start_;
  std::vector<Anchor> anchors_;
  ChainReport report_;
  std::int64_t expected_ = 1;
  std::string previous_;
};

}  // namespace sdoh::audit
