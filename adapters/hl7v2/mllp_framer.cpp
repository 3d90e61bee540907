#include "adapters/hl7v2/mllp_framer.hpp"

#include <cstring>

namespace sdoh::hl7v2 {

std::vector<std::string_view> split_answers(std::string_view answers) {
  std::vector<std::string_view> out;
  if (answers.empty()) return out;
  if (!answers.starts_with("MSH") || answers.size() < 4) {
    out.push_back(answers);
    return out;
  }
  const std::string next = std::string("\rMSH") + answers[3];
  std::size_t start = 0;
  for (;;) {
    const auto at = answers.find(next, start);
    if (at == std::string_view::npos) {
      out.push_back(answers.substr(start));
      return out;
    }
    out.push_back(answers.substr(start, at + 1 - start));
    start = at + 1;
  }
}

std::string mllp_frame(std::string_view message) {
  std::string out;
  out.reserve(message.size() + 3);
  out += kStartBlock;
  out.append(message);
  out += kEndBlock;
  out += kCarriageReturn;
  return out;
}

void MllpFramer::own_remainder() {
  if (!borrowing_) return;
  buffer_.assign(borrowed_.substr(scan_));
  if (in_frame_) frame_start_ -= scan_;
  scan_ = 0;
  borrowed_ = {};
  borrowing_ = false;
}

void MllpFramer::feed_borrowed(std::string_view bytes) {
  if (bytes.empty()) return;
  if (borrowing_ || in_frame_ || scan_ != buffer_.size()) {
    feed(bytes);  // bytes of an earlier read are still waiting: these go after them
    return;
  }
  buffer_.clear();
  scan_ = 0;
  borrowed_ = bytes;
  borrowing_ = true;
}

void MllpFramer::feed(std::string_view bytes) {
  own_remainder();
  // Compact consumed input before growing, so a long-lived connection's buffer stays small.
  if (scan_ > 0 && (scan_ == buffer_.size() || scan_ > 64 * 1024)) {
    buffer_.erase(0, scan_);
    if (in_frame_) {
      frame_start_ -= scan_;
    }
    scan_ = 0;
  }
  buffer_.append(bytes);
}

void MllpFramer::release_if_idle(std::size_t keep_bytes) {
  // A frame, or bytes before one, are waiting (or the caller's bytes are not framed yet).
  if (borrowing_ || in_frame_ || scan_ != buffer_.size()) return;
  buffer_.clear();
  scan_ = 0;
  if (buffer_.capacity() > keep_bytes) std::string().swap(buffer_);
}

MllpFramer::Event MllpFramer::next(std::string& frame) {
  const std::string_view data = input();
  // Before answering "no frame": the caller may reuse its bytes once told so.
  const auto wait = [this](Event e) {
    own_remainder();
    return e;
  };
  for (;;) {
    if (!in_frame_) {
      const char* base = data.data() + scan_;
      const auto available = data.size() - scan_;
      const void* vt = std::memchr(base, kStartBlock, available);
      if (vt == nullptr) {
        discarded_ += available;
        scan_ = data.size();
        return wait(Event::kNone);
      }
      const auto skipped = static_cast<std::size_t>(static_cast<const char*>(vt) - base);
      discarded_ += skipped;
      scan_ += skipped + 1;
      // A doubled start block (<VT><VT>) is tolerated.
      while (scan_ < data.size() && data[scan_] == kStartBlock) {
        ++scan_;
        ++deviations_;
      }
      in_frame_ = true;
      frame_start_ = scan_;
      searched_ = 0;
    } else if (searched_ == 0) {
      // The same doubled start block split across two reads: the second <VT> arrives as the
      // first byte of the frame (no HL7 message starts with one).
      while (frame_start_ < data.size() && data[frame_start_] == kStartBlock) {
        ++frame_start_;
        ++deviations_;
      }
    }
    const auto content = data.size() - frame_start_;
    const char* from = data.data() + frame_start_ + searched_;
    const void* fs = std::memchr(from, kEndBlock, content - searched_);
    if (fs == nullptr) {
      searched_ = content;
      if (content > max_frame_bytes_) return wait(Event::kTooLarge);
      return wait(Event::kNone);
    }
    const auto end = static_cast<std::size_t>(static_cast<const char*>(fs) - data.data());
    if (end + 1 >= data.size()) {
      // FS is the last byte so far: wait for the CR (or whatever follows) before deciding.
      searched_ = end - frame_start_;
      if (end - frame_start_ > max_frame_bytes_) return wait(Event::kTooLarge);
      return wait(Event::kNone);
    }
    if (end - frame_start_ > max_frame_bytes_) return wait(Event::kTooLarge);
    frame.assign(data.data() + frame_start_, end - frame_start_);
    if (data[end + 1] == kCarriageReturn) {
      scan_ = end + 2;
    } else {
      ++deviations_;  // FS without CR: accept the frame, keep the next byte
      scan_ = end + 1;
    }
    in_frame_ = false;
    // A doubled end block (<FS><CR><FS><CR>) arrives as stray bytes and is discarded next time.
    return Event::kFrame;
  }
}

}  // namespace sdoh::hl7v2
