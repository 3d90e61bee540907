#pragma once
// One process per data directory. Two gateways on one data_dir would each run a relay over the
// same outbox and each group-commit to the same SQLite file: duplicate publishes at best. The
// lock is an exclusive flock(2) on <data_dir>/gateway.lock, held for the life of the process
// (the kernel releases it when the process ends, even on kill -9), and the file names the
// holder's PID so that the refusal can say who has it.
#include <filesystem>

#include "gateway/core/result.hpp"

namespace sdoh::runtime {

class DataDirLock {
 public:
  /// Takes the lock without waiting. Fails (kConfig on key data_dir) naming the PID that holds
  /// it, or why the lock file cannot be opened.
  static Result<DataDirLock> acquire(const std::filesystem::path& data_dir);

  DataDirLock(DataDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  DataDirLock& operator=(DataDirLock&&) = delete;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock();

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace sdoh::runtime
