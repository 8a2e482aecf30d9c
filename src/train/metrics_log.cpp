// One JSON object per logging or eval event (metrics.jsonl), HF log_history style.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "treg/error.h"
#include "treg/trainer.h"

namespace treg {

std::string log_event_json(const LogEvent& e) {
  nlohmann::ordered_json j;
  j["step"] = e.step;
  for (const auto& [k, v] : e.values) {
    if (std::isfinite(v))
      j[k] = v;
    else
      j[k] = std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  }
  return j.dump();
}

void append_metrics_line(const std::string& path, const std::string& line) {
  // A cut line is harmless: a resumed run rewrites metrics.jsonl from the checkpoint's history.
  const std::string hint =
      "free disk space, then resume with resume_from_checkpoint=auto: the checkpoints written "
      "so far are intact";
  auto failed = [&](const char* what, int e) {
    fail(path, std::string(what) + ": " + std::strerror(e), hint);
  };
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) failed("cannot open for appending", errno);
  const std::string text = line + "\n";
  size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = n < 0 ? errno : EIO;
      ::close(fd);
      failed("write failed", e);
    }
    off += static_cast<size_t>(n);
  }
  // Some file systems (NFS, ext4 with delayed allocation) report a full disk only at write-back.
  if (::fdatasync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    // Pipes, /dev/null and friends cannot sync; there is nothing to lose there.
    if (e != EINVAL && e != EROFS) failed("fdatasync failed", e);
  } else if (::close(fd) != 0) {
    failed("close failed", errno);
  }
}

}  // namespace treg
