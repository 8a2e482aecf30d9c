// The end-of-run report: curves from the log history and the objective's own views (for preference
// training, the token rewards β·log π_θ/π_ref of a few eval pairs under the trained policy).
#include <spdlog/spdlog.h>

#include "treg/io.h"
#include "treg/trainer.h"

namespace treg {

void Trainer::write_report() {
  std::vector<TokenRewardView> views;
  {
    torch::NoGradGuard no_grad;
    policy_->eval();
    views = objective_->report_views(policy_);
    policy_->train();
  }
  const std::string path = path_join(config_.output_dir, "report.html");
  write_file_atomic(path, render_report("treg: " + config_.output_dir, history_,
                                        objective_->curves(), views));
  spdlog::info("wrote {}", path);
}

}  // namespace treg
