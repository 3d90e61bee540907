#pragma once
// MLLP framing (HL7 v2.5.1 Appendix C, "Minimal Lower Layer Protocol"): <VT> message <FS><CR>,
// VT = 0x0B, FS = 0x1C, CR = 0x0D. Pure: bytes in, frames out; no sockets.
//
// Real senders deviate (FIELD-NOTES): bytes or NULs between frames, a doubled start block,
// a missing CR after FS. Those are tolerated and counted; a frame over the size limit is
// an error (the listener closes the connection).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sdoh::hl7v2 {

inline constexpr char kStartBlock = 0x0B;
inline constexpr char kEndBlock = 0x1C;
inline constexpr char kCarriageReturn = 0x0D;

/// Wraps a message in MLLP's start and end blocks.
std::string mllp_frame(std::string_view message);

/// The messages of an answer, each to be framed on its own: answers that start with MSH are
/// split before every further MSH segment; a batch (FHS/BHS) stays whole; empty: none.
std::vector<std::string_view> split_answers(std::string_view answers);

class MllpFramer {
 public:
  explicit MllpFramer(std::size_t max_frame_bytes) : max_frame_bytes_(max_frame_bytes) {}

  /// Adds received bytes (copied). Call next() until it returns nothing before feeding more.
  void feed(std::string_view bytes);
  /// Adds received bytes without copying them: they must stay valid and unchanged until next()
  /// returns kNone or kTooLarge, which copies what is left of them (a partial frame). So frames
  /// that arrive whole in one read are never buffered, and an idle framer holds no bytes.
  void feed_borrowed(std::string_view bytes);

  enum class Event { kNone, kFrame, kTooLarge };
  /// The next complete frame (moved into `frame`), kTooLarge once a frame passes the limit,
  /// or kNone when more bytes are needed.
  Event next(std::string& frame);

  /// Bytes seen outside any frame (before a start block), discarded.
  std::uint64_t discarded_bytes() const { return discarded_; }
  /// Tolerated deviations: doubled start blocks, FS without CR.
  std::uint64_t deviations() const { return deviations_; }
  /// Bytes buffered for an incomplete frame.
  std::size_t buffered() const { return input().size() - scan_; }
  /// Whether a start block has been seen and its frame is not complete yet.
  bool in_frame() const { return in_frame_; }

  /// Frees the buffer when it holds nothing and has grown past `keep_bytes`. Called before the
  /// connection waits for its next bytes: a frame of a megabyte, once received, must not stay
  /// allocated for the rest of the connection's life, while a buffer of a typical message's size
  /// is kept for the next one (no allocation per message).
  void release_if_idle(std::size_t keep_bytes);
  /// Bytes allocated for buffering (what an idle connection holds in its framer).
  std::size_t capacity() const { return buffer_.capacity(); }

 private:
  std::string_view input() const { return borrowing_ ? borrowed_ : std::string_view(buffer_); }
  /// Copies what is left of borrowed input into buffer_ (the caller's bytes are about to go).
  void own_remainder();

  std::size_t max_frame_bytes_;
  std::string buffer_;         // unconsumed input (when not borrowing)
  std::string_view borrowed_;  // the caller's bytes, until next() returns kNone
  bool borrowing_ = false;     // whether input() is borrowed_
  std::size_t scan_ = 0;       // start of unconsumed input in input()
  bool in_frame_ = false;
  std::size_t frame_start_ = 0;  // index of first content byte when in_frame_
  std::size_t searched_ = 0;     // content bytes already searched for FS
  std::uint64_t discarded_ = 0;
  std::uint64_t deviations_ = 0;
};

/// When the frame being received must be complete (mllp.frame_timeout), so that a sender that
/// trickles a frame a byte at a time cannot hold a connection forever: the idle timeout alone
/// restarts with every byte. The clock starts at the first byte received after the last complete
/// frame, whether a start block or stray bytes before one (trickled garbage is bounded too), and
/// stops when a frame completes with nothing after it. Pure: the caller passes the time.
class FrameDeadline {
 public:
  using Clock = std::chrono::steady_clock;
  explicit FrameDeadline(Clock::duration frame_timeout) : frame_timeout_(frame_timeout) {}

  /// Bytes were read at `now`.
  void bytes_received(Clock::time_point now) {
    last_read_ = now;
    if (!started_) started_ = now;
  }
  /// A frame completed. `more_buffered`: bytes of a next frame came with it; their clock runs
  /// from the read that brought them.
  void frame_completed(bool more_buffered) {
    started_ = more_buffered ? std::optional<Clock::time_point>(last_read_) : std::nullopt;
  }
  /// The deadline of the next read: `idle` from `now`, or the frame's deadline if earlier.
  Clock::time_point read_deadline(Clock::time_point now, Clock::duration idle) const {
    const auto idle_deadline = now + idle;
    if (!started_) return idle_deadline;
    return std::min(idle_deadline, *started_ + frame_timeout_);
  }
  /// Whether the frame's time is up at `now`.
  bool expired(Clock::time_point now) const {
    return started_ && now >= *started_ + frame_timeout_;
  }

 private:
  Clock::duration frame_timeout_;
  std::optional<Clock::time_point> started_;  // first byte after the last complete frame
  Clock::time_point last_read_{};
};

}  // namespace sdoh::hl7v2
