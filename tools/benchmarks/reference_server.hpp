#pragma once
// What tools/bench's reference servers (mllp-echo, http-fixed) share: the gateway's own runtime
// shape (Asio coroutines, one io_context, --threads threads), a listener on a free port printed
// as "listening <port>", and one coroutine per accepted connection (`serve`), until killed.
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sdoh::bench {

using ServeConnection = boost::asio::awaitable<void> (*)(boost::asio::ip::tcp::socket);

inline boost::asio::awaitable<void> accept_each(boost::asio::ip::tcp::acceptor& acceptor,
                                                ServeConnection serve) {
  for (;;) {
    auto [ec, socket] =
        co_await acceptor.async_accept(boost::asio::as_tuple(boost::asio::use_awaitable));
    if (ec) continue;
    socket.set_option(boost::asio::ip::tcp::no_delay(true));
    boost::asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), boost::asio::detached);
  }
}

inline int run_reference_server(int argc, char** argv, const char* description,
                                ServeConnection serve) {
  CLI::App app{description};
  int threads = 2;
  std::string host = "127.0.0.1";
  app.add_option("--threads", threads, "I/O threads (as the gateway's runtime.io_threads)");
  app.add_option("--host", host, "address to listen on (port: any free one)");
  CLI11_PARSE(app, argc, argv);

  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor acceptor(ioc, {boost::asio::ip::make_address(host), 0});
  std::printf("listening %u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
  std::fflush(stdout);
  boost::asio::co_spawn(ioc, accept_each(acceptor, serve), boost::asio::detached);
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i)
    pool.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : pool)
    t.join();
  return 0;
}

}  // namespace sdoh::bench
