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

void MllpFramer::feed(std::string_view bytes) {
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
  if (in_frame_ || scan_ != buffer_.size()) return;  // a frame, or bytes before one, are waiting
  buffer_.clear();
  scan_ = 0;
  if (buffer_.capacity() > keep_bytes) std::string().swap(buffer_);
}

MllpFramer::Event MllpFramer::next(std::string& frame) {
  for (;;) {
    if (!in_frame_) {
      const char* base = buffer_.data() + scan_;
      const auto available = buffer_.size() - scan_;
      const void* vt = std::memchr(base, kStartBlock, available);
      if (vt == nullptr) {
        discarded_ += available;
        scan_ = buffer_.size();
        return Event::kNone;
      }
      const auto skipped = static_cast<std::size_t>(static_cast<const char*>(vt) - base);
      discarded_ += skipped;
      scan_ += skipped + 1;
      // A doubled start block (<VT><VT>) is tolerated.
      while (scan_ < buffer_.size() && buffer_[scan_] == kStartBlock) {
        ++scan_;
        ++deviations_;
      }
      in_frame_ = true;
      frame_start_ = scan_;
      searched_ = 0;
    }
    const auto content = buffer_.size() - frame_start_;
    const char* from = buffer_.data() + frame_start_ + searched_;
    const void* fs = std::memchr(from, kEndBlock, content - searched_);
    if (fs == nullptr) {
      searched_ = content;
      if (content > max_frame_bytes_) return Event::kTooLarge;
      return Event::kNone;
    }
    const auto end = static_cast<std::size_t>(static_cast<const char*>(fs) - buffer_.data());
    if (end + 1 >= buffer_.size()) {
      // FS is the last byte so far: wait for the CR (or whatever follows) before deciding.
      searched_ = end - frame_start_;
      if (end - frame_start_ > max_frame_bytes_) return Event::kTooLarge;
      return Event::kNone;
    }
    if (end - frame_start_ > max_frame_bytes_) return Event::kTooLarge;
    frame.assign(buffer_.data() + frame_start_, end - frame_start_);
    if (buffer_[end + 1] == kCarriageReturn) {
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
