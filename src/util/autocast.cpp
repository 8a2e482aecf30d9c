#include "treg/autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace treg {
namespace {

// LibTorch 2.4 made autocast per device type and deprecated the CUDA-only and CPU-only calls.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool enabled(at::DeviceType d) { return at::autocast::is_autocast_enabled(d); }
void set(at::DeviceType d, bool on) {
  at::autocast::set_autocast_dtype(d, at::kBFloat16);
  at::autocast::set_autocast_enabled(d, on);
}
#else
bool enabled(at::DeviceType d) {
  return d == at::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
}
void set(at::DeviceType d, bool on) {
  if (d == at::kCUDA) {
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(on);
  }
}
#endif

void apply(const AutocastState& s) {
  set(at::kCUDA, s.cuda);
  set(at::kCPU, s.cpu);
}

}  // namespace

AutocastState current_autocast() { return {enabled(at::kCUDA), enabled(at::kCPU)}; }

AutocastGuard::AutocastGuard(const torch::Device& device, bool on) : prev_(current_autocast()) {
  if (!on) return;
  AutocastState s = prev_;
  (device.is_cuda() ? s.cuda : s.cpu) = true;
  apply(s);
  active_ = true;
}

AutocastGuard::AutocastGuard(const AutocastState& state) : prev_(current_autocast()) {
  apply(state);
  active_ = true;
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  apply(prev_);
  // Autocast keeps a bf16 copy of every weight it cast while on; free them once it is off.
  if (!prev_.cuda && !prev_.cpu) at::autocast::clear_cache();
}

}  // namespace treg
