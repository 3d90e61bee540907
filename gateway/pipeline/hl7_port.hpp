#pragma once
// The port between the MLLP listener (adapters/hl7v2) and whatever answers HL7 v2 messages.
// The listener only moves bytes: it hands each framed message to an Hl7Handler and writes
// back the answer, in the order the messages arrived on the connection.
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

namespace sdoh::pipeline {

/// Who sent a message, as far as the transport knows.
struct Peer {
  std::string address;      ///< "10.1.2.3:51234"
  std::string tls_subject;  ///< client certificate subject under mTLS, else empty
};

class Hl7Handler {
 public:
  virtual ~Hl7Handler() = default;
  /// Answers one message (the bytes between MLLP's start and end blocks) with the bytes of
  /// its answer, unframed. The answer may hold several messages (an enhanced-mode accept ACK and
  /// application ACK), each framed on its own by the listener, or none (an incoming ACK, or
  /// MSH-15/16 asking for none). It may take as long as a durable commit.
  virtual boost::asio::awaitable<std::string> handle(std::string message, const Peer& peer) = 0;
};

}  // namespace sdoh::pipeline
