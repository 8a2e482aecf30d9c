#include "treg/runtime.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cstdlib>
#include <thread>

namespace treg {

int configured_threads() {
  for (const char* var : {"TREG_NUM_THREADS", "OMP_NUM_THREADS"}) {
    if (const char* v = std::getenv(var)) {
      int n = std::atoi(v);
      if (n > 0) return n;
    }
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

void init_runtime() {
  static bool done = false;
  if (done) return;
  done = true;
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  torch::set_num_threads(configured_threads());
}

}  // namespace treg
