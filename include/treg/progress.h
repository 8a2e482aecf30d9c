// A progress bar on stderr: done/total, items/s, tokens/s and ETA. Redraws in place on a terminal;
// elsewhere (logs, CI) prints one line every `log_every_s` seconds.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace treg {

class ProgressBar {
 public:
  // `start` items are already done (e.g. resumed) and do not count towards the rates.
  ProgressBar(std::string label, int64_t total, int64_t start = 0, std::string unit = "pairs",
              bool enabled = true, double log_every_s = 10.0);
  ~ProgressBar();
  // `items` more done, covering `tokens` tokens.
  void advance(int64_t items, int64_t tokens = 0);
  // Draws the final state and ends the line.
  void finish();
  double elapsed_s() const;
  double items_per_s() const;
  double tokens_per_s() const;
  // The line as drawn (for tests and logs).
  std::string line() const;

 private:
  void draw(bool force);
  std::string label_, unit_;
  int64_t total_, start_, done_, tokens_ = 0;
  bool enabled_, tty_, finished_ = false;
  double log_every_s_;
  std::chrono::steady_clock::time_point t0_, last_draw_;
};

// "1:02:03" / "02:03".
std::string format_duration(double seconds);

}  // namespace treg
