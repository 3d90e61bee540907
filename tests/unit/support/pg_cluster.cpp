// The tests' throwaway PostgreSQL cluster (see pg_cluster.hpp).
#include "tests/unit/support/pg_cluster.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "adapters/store/sql_pg.hpp"

namespace sdoh::test {
namespace {

namespace fs = std::filesystem;

/// The newest /usr/lib/postgresql/<version>/bin with initdb, else the directory of an initdb on
/// PATH (Debian puts only the client tools on PATH).
std::string find_bindir() {
  std::string best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const auto version = std::atoi(entry.path().filename().c_str());
    if (version > best_version && fs::exists(entry.path() / "bin" / "initdb")) {
      best_version = version;
      best = (entry.path() / "bin").string();
    }
  }
  if (!best.empty()) return best;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const auto initdb = fs::path(dir) / "initdb";
    if (fs::exists(initdb) && fs::exists(fs::path(dir) / "pg_ctl"))
      return fs::canonical(initdb, ec).parent_path().string();
  }
  return {};
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

std::string tail(const std::string& path, std::size_t bytes = 2000) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

/// Runs `args` (args[0] a path) in `cwd` with output appended to `log`; as `nobody` when we are
/// root. Returns its exit status (-1 if it could not run).
int run_tool(const std::vector<std::string>& args, const std::string& cwd, const std::string& log) {
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const bool root = ::geteuid() == 0;
  const passwd* nobody = root ? ::getpwnam("nobody") : nullptr;
  if (root && nobody == nullptr) return -1;
  const uid_t uid = root ? nobody->pw_uid : 0;
  const gid_t gid = root ? nobody->pw_gid : 0;
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) return -1;
  if (root && ::fchown(out, uid, gid) != 0) {
    ::close(out);
    return -1;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec.
    if (root && (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0))
      ::_exit(126);
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out);
  if (pid < 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string database_name(std::string_view name) {
  std::string out;
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    out += std::isalnum(u) != 0 ? static_cast<char>(std::tolower(u)) : '_';
  }
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0])) != 0) out = "t_" + out;
  return out.substr(0, 63);
}

}  // namespace

Result<PgCluster*> PgCluster::shared() {
  // Started once per binary; the destructor of this static stops and removes it at exit.
  static std::unique_ptr<PgCluster> cluster;
  static Result<void> started = [] {
    cluster.reset(new PgCluster());
    return cluster->start();
  }();
  if (!started) return fail(started.error());
  return cluster.get();
}

Result<void> PgCluster::start() {
  bindir_ = find_bindir();
  if (bindir_.empty()) {
    return fail(Error::unavailable(
        "the PostgreSQL server binaries (initdb, pg_ctl) are not installed: run tools/setup "
        "(Debian package postgresql)"));
  }
  std::string templ = (fs::temp_directory_path() / "sdoh-pg-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr)
    return fail(Error::unavailable("cannot create a temporary directory for PostgreSQL"));
  dir_ = templ;
  if (::geteuid() == 0) {
    const passwd* nobody = ::getpwnam("nobody");
    if (nobody == nullptr || ::chown(dir_.c_str(), nobody->pw_uid, nobody->pw_gid) != 0)
      return fail(Error::unavailable("cannot give " + dir_ + " to the user nobody"));
  }
  const std::string data = dir_ + "/data";
  const std::string log = dir_ + "/tools.log";
  // --no-sync: initdb's own files only; the server runs with fsync on.
  if (run_tool({bindir_ + "/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                "--locale=C", "--no-sync"},
               dir_, log) != 0) {
    return fail(Error::unavailable("initdb failed: " + tail(log)));
  }
  // The port is picked free, then taken by the server: another process may take it meanwhile,
  // so a failed start is tried again on another port.
  for (int attempt = 0; attempt < 3 && !running_; ++attempt) {
    port_ = free_port();
    std::ofstream conf(data + "/postgresql.auto.conf", std::ios::trunc);
    conf << "listen_addresses = '127.0.0.1'\n"
         << "port = " << port_ << "\n"
         << "unix_socket_directories = '" << dir_ << "'\n"
         << "max_connections = 200\n"
         << "fsync = on\n"
         << "synchronous_commit = on\n";
    conf.close();
    if (auto r = pg_ctl({"-l", dir_ + "/server.log", "-t", "60", "start"}); r) running_ = true;
  }
  if (!running_)
    return fail(Error::unavailable("PostgreSQL did not start: " + tail(dir_ + "/server.log")));
  return {};
}

Result<void> PgCluster::pg_ctl(std::initializer_list<std::string> args) {
  std::vector<std::string> argv = {bindir_ + "/pg_ctl", "-D", dir_ + "/data", "-w"};
  argv.insert(argv.end(), args.begin(), args.end());
  if (run_tool(argv, dir_, dir_ + "/tools.log") != 0)
    return fail(Error::unavailable("pg_ctl failed: " + tail(dir_ + "/tools.log")));
  return {};
}

Result<void> PgCluster::restart() {
  return pg_ctl({"-l", dir_ + "/server.log", "-m", "fast", "-t", "60", "restart"});
}

std::string PgCluster::url(std::string_view database) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + std::string(database);
}

Result<std::string> PgCluster::create_database(std::string_view name) {
  const auto db = database_name(name);
  auto admin = store::sql::pg_connect(url(), "");
  if (!admin) return fail(admin.error());
  if (auto r = (*admin)->exec("DROP DATABASE IF EXISTS \"" + db + "\" WITH (FORCE)"); !r)
    return fail(r.error());
  if (auto r = (*admin)->exec("CREATE DATABASE \"" + db + "\""); !r) return fail(r.error());
  return url(db);
}

PgCluster::~PgCluster() {
  if (running_) (void)pg_ctl({"-m", "immediate", "stop"});
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

}  // namespace sdoh::test
