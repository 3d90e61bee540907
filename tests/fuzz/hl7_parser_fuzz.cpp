// libFuzzer target: arbitrary bytes through the MLLP framer (whole, and in reads lent to it as
// the listener lends them, which must find the same frames), the batch splitter, the ER7 parser,
// the MSH-18 character-set reading, path access, the ACK builder and the ORU mapping (with a
// sender time zone). None may crash, hang or read out of bounds
// (run under ASan + UBSan), and a parsed message must serialise back to the same bytes.
//   tools/fuzz hl7 [seconds]
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "adapters/hl7v2/ack.hpp"
#include "adapters/hl7v2/message.hpp"
#include "adapters/hl7v2/mllp_framer.hpp"
#include "adapters/hl7v2/oru.hpp"
#include "adapters/hl7v2/timezone.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sdoh::hl7v2;
  const std::string input(reinterpret_cast<const char*>(data), size);

  MllpFramer framer(64 * 1024);
  framer.feed(input);
  std::string frame;
  std::vector<std::string> frames;
  auto event = MllpFramer::Event::kNone;
  while ((event = framer.next(frame)) == MllpFramer::Event::kFrame)
    frames.push_back(frame);
  const bool whole_too_large = event == MllpFramer::Event::kTooLarge;

  // The same bytes as the MLLP listener reads them: in chunks of varying size into one reused
  // buffer, lent to the framer (feed_borrowed), a full chunk followed by what else was waiting
  // (feed), the buffer scribbled over once the framer answered kNone and released when idle.
  // A borrowed byte read after that is a use-after-free (ASan) or a different frame (abort).
  {
    MllpFramer borrowed(64 * 1024);
    std::string chunk;
    std::vector<std::string> found;
    bool too_large = false;
    std::size_t at = 0;
    std::size_t step = 1 + (size > 0 ? data[0] % 97 : 0);
    while (at < input.size() && !too_large) {
      const auto n = std::min(step, input.size() - at);
      chunk.assign(input, at, n);
      borrowed.feed_borrowed(chunk);
      at += n;
      if (n == step && step % 3 == 0 && at < input.size()) {
        const auto more = std::min<std::size_t>(step * 2, input.size() - at);
        borrowed.feed(std::string_view(input).substr(at, more));
        at += more;
      }
      for (;;) {
        const auto e = borrowed.next(frame);
        if (e == MllpFramer::Event::kFrame) {
          found.push_back(frame);
          continue;
        }
        too_large = e == MllpFramer::Event::kTooLarge;
        break;
      }
      chunk.assign(chunk.size(), '\xAA');
      borrowed.release_if_idle(4096);
      step = 1 + (step * 31 + 7) % 4096;
    }
    // The size limit may trip at another point when the bytes come in pieces; otherwise the
    // frames are the same.
    if (!too_large && !whole_too_large && found != frames) std::abort();
  }

  // Loaded once: a zone file is trusted start-up input, not fuzzed.
  static const auto zone = TimeZone::load("America/New_York");
  const TimeZone* sender_zone = zone ? &*zone : nullptr;

  auto messages = split_batch(input);
  if (!messages) return 0;
  const AckOptions options{"ACK1", "20260101000000+0000", "SDOH_GW", "", ""};
  for (auto text : *messages) {
    auto m = Message::parse(std::string(text));
    if (!m) {
      (void)build_unparseable_ack(m.error(), options);
      continue;
    }
    if (m->serialize() != text) std::abort();  // round trip byte for byte
    for (const char* path :
         {"MSH-9.1", "MSH-10", "PID-3(2).4.1", "OBX[2]-5(3).2", "PID-3.4.2", "ZZZ-1", "OBR-4"}) {
      (void)m->get(path);
    }
    for (const auto& seg : m->segments()) {
      for (int f = 0; f <= seg.field_count() + 1; ++f)
        (void)seg.value(f, 2, 2, 2);
    }
    (void)build_ack(*m, AckCode::kAA, std::nullopt, options);
    const auto refusal = refusal_for(sdoh::Error::invalid({"OBX", 1, 3, 0, ""}, "fuzz"));
    // Our ACKs always parse, each of them when enhanced mode asks for two.
    if (!Message::parse(build_ack(*m, refusal.code, refusal.error, options))) std::abort();
    const auto plan = plan_acks(*m, refusal.code, refusal.acceptance);
    const auto answers = build_answers(*m, plan, refusal.error, options);  // outlives the views
    for (auto one : split_answers(answers)) {
      if (!Message::parse(std::string(one))) std::abort();
    }
    if (const auto& cs = m->charset(); cs.invalid_utf8_at) {
      if (*cs.invalid_utf8_at >= text.size()) std::abort();
      if (m->location_of(*cs.invalid_utf8_at).segment.empty()) std::abort();  // always somewhere
    }
    (void)screenings_from_oru(*m);
    (void)screenings_from_oru(*m, sender_zone);
    (void)dtm_to_rfc3339(m->get("MSH-7"), sender_zone);
  }
  return 0;
}
