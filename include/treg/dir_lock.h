// One treg process at a time per output_dir: two runs writing checkpoints, metrics or reward dumps
// into one directory leave a hybrid of both that neither run would have produced.
#pragma once
#include <string>

namespace treg {

// An exclusive flock(2) on <dir>/.treg.lock (the directory is created if missing), held for the
// object's lifetime; the kernel drops it when the process exits, however it exits, so a killed run
// never leaves the directory locked. Taking it does not wait: when another process holds it, the
// constructor fails at once naming that process's pid and command line (which the holder writes
// into the lock file).
class DirLock {
 public:
  explicit DirLock(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  static constexpr const char* kFileName = ".treg.lock";

 private:
  int fd_ = -1;
};

}  // namespace treg
