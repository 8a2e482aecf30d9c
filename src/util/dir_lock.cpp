#include "treg/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "treg/error.h"
#include "treg/io.h"

namespace treg {
namespace {

// This process's command line, arguments joined by spaces (/proc/self/cmdline is NUL-separated).
std::string own_command_line() {
  std::string s;
  try {
    s = read_file("/proc/self/cmdline");
  } catch (const Error&) {
    return "?";
  }
  while (!s.empty() && s.back() == '\0') s.pop_back();
  for (char& c : s)
    if (c == '\0') c = ' ';
  return s;
}

}  // namespace

DirLock::DirLock(const std::string& dir) {
  make_dirs(dir);
  const std::string path = path_join(dir, kFileName);
  // O_CLOEXEC: a child process (a shell a test or script starts) must not inherit the lock.
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path, std::string("cannot open the lock file: ") + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    if (e != EWOULDBLOCK) fail(path, std::string("cannot lock: ") + std::strerror(e));
    // The holder may not have written its line yet: then the pid is unknown, the refusal stands.
    std::string holder;
    try {
      holder = read_file(path);
    } catch (const Error&) {
    }
    while (!holder.empty() && holder.back() == '\n') holder.pop_back();
    fail(dir,
         "another treg process (" + (holder.empty() ? std::string("pid unknown") : holder) +
             ") is using this output_dir",
         "wait for it to finish, or give this run another output_dir");
  }
  // The lock is held: nobody else writes the file now.
  const std::string who =
      "pid " + std::to_string(::getpid()) + ", command " + own_command_line() + "\n";
  const bool written = ::ftruncate(fd_, 0) == 0 &&
                       ::pwrite(fd_, who.data(), who.size(), 0) == static_cast<ssize_t>(who.size());
  (void)written;  // a failed write costs a later refusal only its pid and command; the lock holds
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace treg
