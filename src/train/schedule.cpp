// Learning-rate schedules with linear warmup, as transformers' get_*_schedule_with_warmup.
#include <algorithm>
#include <cmath>

#include "treg/error.h"
#include "treg/train_parts.h"

namespace treg {

int64_t warmup_steps(double warmup_ratio, int64_t total_steps) {
  return static_cast<int64_t>(std::ceil(warmup_ratio * static_cast<double>(total_steps)));
}

int64_t resolved_warmup_steps(double steps, double warmup_ratio, int64_t total_steps) {
  if (steps >= 1) return static_cast<int64_t>(steps);
  return warmup_steps(steps > 0 ? steps : warmup_ratio, total_steps);
}

double lr_multiplier(const std::string& scheduler, int64_t step, int64_t warmup, int64_t total) {
  if (scheduler == "constant") return 1.0;
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  if (scheduler == "constant_with_warmup") return 1.0;
  const double span = static_cast<double>(std::max<int64_t>(1, total - warmup));
  if (scheduler == "linear") return std::max(0.0, static_cast<double>(total - step) / span);
  if (scheduler == "cosine") {
    const double progress = static_cast<double>(step - warmup) / span;
    return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  }
  fail("config key 'lr_scheduler_type'",
       "'" + scheduler + "' is not one of: cosine, linear, constant, constant_with_warmup");
}

}  // namespace treg
