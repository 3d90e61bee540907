// The bare MLLP transport, as a reference for tools/bench mllp: an Asio server on the same
// runtime as the gateway (coroutines, one io_context, two threads) that reads each frame, finds
// MSH-10 and answers "MSA|AA|<MSH-10>" at once. No parsing beyond that, no storage, no Kafka:
// what the machine and the transport allow, to compare the gateway with.
//   build/bench/mllp-echo [--threads 2]      prints "listening <port>" and serves until killed
#include <string>
#include <string_view>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "reference_server.hpp"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

/// MSH-10 of the message between <SB> and <EB>: the separator at offset 3 opens MSH-2, the
/// ninth separator (counting that one) opens MSH-10.
std::string_view control_id(std::string_view message) {
  if (message.size() < 4) return {};
  const char sep = message[3];
  std::size_t at = 3;
  for (int field = 3; field <= 10; ++field) {
    at = message.find(sep, at + 1);
    if (at == std::string_view::npos) return {};
  }
  const auto end = message.find_first_of(std::string{sep, '\r'}, at + 1);
  return message.substr(at + 1, end == std::string_view::npos ? end : end - at - 1);
}

asio::awaitable<void> serve(tcp::socket socket) {
  std::string buffer;
  std::string answer;
  for (;;) {
    auto [ec, n] = co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer),
                                                   std::string_view("\x1C\x0D"), kUseTuple);
    if (ec) co_return;
    const std::string_view frame(buffer.data(), n);
    const auto start = frame.find('\x0B');
    const auto message = frame.substr(start == std::string_view::npos ? 0 : start + 1);
    const auto id = control_id(message);
    answer.assign("\x0BMSH|^~\\&|ECHO|ECHO|||20261207000000||ACK|");
    answer.append(id);
    answer.append("|P|2.5.1\rMSA|AA|");
    answer.append(id);
    answer.append("\r\x1C\x0D");
    buffer.erase(0, n);
    auto [wec, written] = co_await asio::async_write(socket, asio::buffer(answer), kUseTuple);
    (void)written;
    if (wec) co_return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  return sdoh::bench::run_reference_server(
      argc, argv, "Bare MLLP echo server: answers AA with MSA-2 = MSH-10, stores nothing", serve);
}
