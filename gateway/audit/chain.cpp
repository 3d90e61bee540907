#include "gateway/audit/chain.hpp"

#include <algorithm>
#include <array>

#include <openssl/evp.h>
#include <rapidjson/document.h>

#include "gateway/core/json_text.hpp"

namespace sdoh::audit {

std::string chain_hash(std::string_view previous_hash, std::string_view canonical) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  // A failure here (out of memory) cannot be answered: "cannot happen" after start-up.
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx, previous_hash.data(), previous_hash.size()) != 1 ||
      EVP_DigestUpdate(ctx, canonical.data(), canonical.size()) != 1 ||
      EVP_DigestFinal_ex(ctx, digest.data(), &size) != 1) {
    EVP_MD_CTX_free(ctx);
    std::abort();
  }
  EVP_MD_CTX_free(ctx);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (unsigned int i = 0; i < size; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

std::string anchor_data_json(const Anchor& a) {
  std::string out = "{\"gateway\":" + json_string(a.gateway) +
                    ",\"headSequence\":" + std::to_string(a.sequence) +
                    ",\"headHash\":" + json_string(a.hash) + ",\"reason\":" + json_string(a.reason);
  if (a.pruned_through > 0) {
    out += ",\"prunedThroughSequence\":" + std::to_string(a.pruned_through) +
           ",\"prunedThroughHash\":" + json_string(a.pruned_through_hash);
  }
  out += ",\"anchoredAt\":" + json_string(a.time) + "}";
  return out;
}

Result<std::vector<Anchor>> parse_anchors(std::string_view text) {
  std::vector<Anchor> out;
  int line_number = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string line(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto bad = [&](const std::string& why) {
      return fail(Error::invalid("line " + std::to_string(line_number) + ": " + why));
    };
    rapidjson::Document doc;
    doc.Parse(line.data(), line.size());
    if (doc.HasParseError() || !doc.IsObject()) return bad("not a JSON object");
    const rapidjson::Value* data = &doc;
    if (doc.HasMember("data") && doc["data"].IsObject()) data = &doc["data"];
    auto text_of = [&](const char* name) -> std::optional<std::string> {
      if (!data->HasMember(name) || !(*data)[name].IsString()) return std::nullopt;
      return std::string((*data)[name].GetString(), (*data)[name].GetStringLength());
    };
    auto int_of = [&](const char* name) -> std::optional<std::int64_t> {
      if (!data->HasMember(name) || !(*data)[name].IsInt64()) return std::nullopt;
      return (*data)[name].GetInt64();
    };
    Anchor a;
    auto seq = int_of("headSequence");
    auto hash = text_of("headHash");
    if (!seq || !hash) return bad("not an audit anchor (headSequence and headHash required)");
    a.sequence = *seq;
    a.hash = *hash;
    a.gateway = text_of("gateway").value_or("");
    a.reason = text_of("reason").value_or("");
    a.time = text_of("anchoredAt").value_or("");
    a.pruned_through = int_of("prunedThroughSequence").value_or(0);
    a.pruned_through_hash = text_of("prunedThroughHash").value_or("");
    out.push_back(std::move(a));
  }
  return out;
}

ChainVerifier::ChainVerifier(ChainStart start, std::vector<Anchor> anchors, std::string gateway)
    : start_(std::move(start)), anchors_(std::move(anchors)) {
  if (!gateway.empty())
    std::erase_if(anchors_, [&](const Anchor& a) { return a.gateway != gateway; });
  expected_ = start_.pruned_through + 1;
  previous_ = start_.pruned_through_hash;
  report_.head_sequence = start_.pruned_through;
  report_.head_hash = start_.pruned_through_hash;
}

void ChainVerifier::problem(std::int64_t sequence, std::string text) {
  if (!report_.ok) return;
  report_.ok = false;
  report_.bad_sequence = sequence;
  report_.problem = std::move(text);
}

void ChainVerifier::add(const ChainRecord& r) {
  ++report_.records;
  if (report_.first_sequence == 0) report_.first_sequence = r.sequence;
  if (report_.ok) {
    if (r.sequence != expected_) {
      problem(expected_, r.sequence > expected_
                             ? (r.sequence - expected_ > 1
                                    ? "records " + std::to_string(expected_) + " to " +
                                          std::to_string(r.sequence - 1) + " are missing"
                                    : "record " + std::to_string(expected_) + " is missing")
                             : "record " + std::to_string(r.sequence) + " is out of order");
    } else if (r.previous_hash != previous_) {
      problem(r.sequence, "record " + std::to_string(r.sequence) +
                              " does not link to its predecessor (a record before it was edited, "
                              "replaced or removed)");
    } else if (chain_hash(previous_, r.json) != r.hash) {
      problem(r.sequence, "record " + std::to_string(r.sequence) +
                              " was edited: its content does not match its hash");
    }
  }
  // Anchors name the hash a record had when it was anchored.
  for (const auto& a : anchors_) {
    if (a.sequence == r.sequence && a.hash != r.hash) {
      problem(r.sequence, "record " + std::to_string(r.sequence) + " differs from its anchor of " +
                              a.time + " (the chain from there was rewritten)");
    }
  }
  expected_ = r.sequence + 1;
  previous_ = r.hash;
  report_.head_sequence = r.sequence;
  report_.head_hash = r.hash;
}

ChainReport ChainVerifier::finish() {
  if (anchors_.empty()) {
    report_.anchor_note =
        "no anchor given: the head was not checked (a deleted tail is not "
        "detectable without one)";
    return report_;
  }
  const auto newest =
      std::max_element(anchors_.begin(), anchors_.end(),
                       [](const Anchor& a, const Anchor& b) { return a.sequence < b.sequence; });
  report_.anchor_note = "newest anchor: record " + std::to_string(newest->sequence) + " (" +
                        newest->reason + ", " + newest->time + ")";
  if (newest->sequence > report_.head_sequence) {
    problem(report_.head_sequence + 1, "the chain ends at record " +
                                           std::to_string(report_.head_sequence) +
                                           " but an anchor of " + newest->time + " names record " +
                                           std::to_string(newest->sequence) + ": records " +
                                           std::to_string(report_.head_sequence + 1) + " to " +
                                           std::to_string(newest->sequence) + " were deleted");
  } else if (newest->sequence == start_.pruned_through && newest->sequence > 0 &&
             newest->hash != start_.pruned_through_hash) {
    problem(newest->sequence, "the prune point (record " + std::to_string(newest->sequence) +
                                  ") differs from its anchor");
  }
  if (start_.pruned_through > 0) {
    // A prune is legitimate only when an anchor recorded it, with the same hash.
    const bool anchored = std::any_of(anchors_.begin(), anchors_.end(), [&](const Anchor& a) {
      return a.pruned_through == start_.pruned_through &&
             a.pruned_through_hash == start_.pruned_through_hash;
    });
    if (!anchored) {
      problem(start_.pruned_through, "the store says records up to " +
                                         std::to_string(start_.pruned_through) +
                                         " were pruned, but no anchor records that prune");
    }
  }
  return report_;
}

}  // namespace sdoh::audit
