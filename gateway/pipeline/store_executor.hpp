#pragma once
// The store executor: a few threads of their own for work that blocks on the store — its reads
// (SQLite, a disk), and what decides from them: an HL7 referral's decision (an HL7 message is
// parsed, validated and mapped on its I/O thread, which hands over only what reads), a FHIR
// request, the overdue check, the referral measures. A listener's connection coroutine hands
// that work here with run() and resumes, on its own I/O thread, with the answer; the commit
// itself goes to the store's writer thread.
//
// Which thread owns what (see also README, "Threads"):
//   - I/O threads (runtime.io_threads, one io_context): accept, TLS, framing, reading and
//     writing sockets, timers, HL7 parsing and mapping, handing commits to the writer; never a
//     store read or an fsync.
//   - store executor threads (runtime.store_threads): the work above; they may block on a read.
//   - the store's writer, syncer and checkpoint threads: every write, in group transactions, its
//     fsync, and the WAL checkpoint (adapters/store).
//   - the Kafka relay, update consumer, clinic return sender and FHIR Subscription sender: one
//     thread each.
#include <cstddef>
#include <functional>
#include <type_traits>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

namespace sdoh::pipeline {

class StoreExecutor {
 public:
  /// `threads` at least 1.
  explicit StoreExecutor(std::size_t threads) : pool_(threads < 1 ? 1 : threads) {}
  /// Finishes the work already handed over, then joins the threads.
  ~StoreExecutor() { pool_.join(); }
  StoreExecutor(const StoreExecutor&) = delete;
  StoreExecutor& operator=(const StoreExecutor&) = delete;

  boost::asio::thread_pool::executor_type executor() { return pool_.get_executor(); }
  /// Waits until the work handed over so far is done (then the threads end). The runtime calls
  /// it after the I/O threads have stopped and before the io_context they resume on is gone.
  void join() { pool_.join(); }

  /// Runs `work` on the store threads; the awaiting coroutine resumes on its own executor with
  /// the result (an exception `work` throws is rethrown there).
  template <class T>
  boost::asio::awaitable<T> run(boost::asio::awaitable<T> work) {
    co_return co_await boost::asio::co_spawn(pool_, std::move(work), boost::asio::use_awaitable);
  }

  /// A coroutine handler (an HTTP route's, say) that runs `handler` on the store threads: its
  /// arguments are references the awaiting caller keeps alive until the answer comes back.
  template <class R, class... Args>
  std::function<boost::asio::awaitable<R>(Args...)> wrap(
      std::function<boost::asio::awaitable<R>(Args...)> handler) {
    return [this, handler = std::move(handler)](Args... args) -> boost::asio::awaitable<R> {
      co_return co_await run(handler(std::forward<Args>(args)...));
    };
  }

  /// Runs `work` (an awaitable) on the store threads and blocks the calling thread until it is
  /// done: for threads outside any io_context (the Kafka update consumer). Never from an I/O
  /// thread or a store thread.
  template <class T>
  T wait(boost::asio::awaitable<T> work) {
    return boost::asio::co_spawn(pool_, std::move(work), boost::asio::use_future).get();
  }

 private:
  boost::asio::thread_pool pool_;
};

}  // namespace sdoh::pipeline
