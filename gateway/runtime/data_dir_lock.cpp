#include "gateway/runtime/data_dir_lock.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <unistd.h>

namespace sdoh::runtime {

Result<DataDirLock> DataDirLock::acquire(const std::filesystem::path& data_dir) {
  const auto file = data_dir / "gateway.lock";
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return fail(
        Error::config("data_dir", "cannot open " + file.string() + ": " + std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder(32, '\0');
    const auto n = ::pread(fd, holder.data(), holder.size(), 0);
    holder.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0'))
      holder.pop_back();
    ::close(fd);
    if (err != EWOULDBLOCK) {
      return fail(
          Error::config("data_dir", "cannot lock " + file.string() + ": " + std::strerror(err)));
    }
    return fail(Error::config(
        "data_dir", "data_dir " + data_dir.string() + " is in use by another sdoh-gateway" +
                        (holder.empty() ? std::string() : " (pid " + holder + ")") +
                        "; one process per data directory (give each gateway its own data_dir, "
                        "or share a PostgreSQL store.url)"));
  }
  // Ours now: record who holds it, for the next one that is refused.
  const auto pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock holds all the same; only the refusal message of another process loses the PID.
  }
  return DataDirLock(fd);
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace sdoh::runtime
