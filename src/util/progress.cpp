#include "treg/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace treg {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  long t = std::lround(s);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%02ld:%02ld", t / 60, t % 60);
  return buf;
}

ProgressBar::ProgressBar(std::string label, int64_t total, int64_t start, std::string unit, bool enabled,
                         double log_every_s)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), start_(start), done_(start),
      enabled_(enabled), tty_(::isatty(STDERR_FILENO) == 1), log_every_s_(log_every_s),
      t0_(std::chrono::steady_clock::now()), last_draw_(t0_) {
  draw(true);
}

ProgressBar::~ProgressBar() {
  if (!finished_ && enabled_ && tty_) std::fputc('\n', stderr);
}

double ProgressBar::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}
double ProgressBar::items_per_s() const {
  double e = elapsed_s();
  return e > 0 ? static_cast<double>(done_ - start_) / e : 0.0;
}
double ProgressBar::tokens_per_s() const {
  double e = elapsed_s();
  return e > 0 ? static_cast<double>(tokens_) / e : 0.0;
}

std::string ProgressBar::line() const {
  const int width = 24;
  double frac = total_ > 0 ? std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_)) : 1.0;
  int fill = static_cast<int>(frac * width);
  std::string bar(static_cast<size_t>(fill), '#');
  bar.append(static_cast<size_t>(width - fill), '.');
  double rate = items_per_s();
  double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : NAN;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s [%s] %lld/%lld %s  %.2f %s/s  %.0f tok/s  elapsed %s  ETA %s", label_.c_str(),
                bar.c_str(), static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(), rate,
                unit_.c_str(), tokens_per_s(), format_duration(elapsed_s()).c_str(),
                done_ >= total_ ? "00:00" : format_duration(eta).c_str());
  return buf;
}

void ProgressBar::draw(bool force) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (!force && since < (tty_ ? 0.2 : log_every_s_)) return;
  last_draw_ = now;
  if (tty_) std::fprintf(stderr, "\r%s\x1b[K", line().c_str());
  else std::fprintf(stderr, "%s\n", line().c_str());
  std::fflush(stderr);
}

void ProgressBar::advance(int64_t items, int64_t tokens) {
  done_ += items;
  tokens_ += tokens;
  draw(false);
}

void ProgressBar::finish() {
  if (finished_) return;
  draw(true);
  if (enabled_ && tty_) std::fputc('\n', stderr);
  finished_ = true;
}

}  // namespace treg
