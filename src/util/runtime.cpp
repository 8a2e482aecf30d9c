#include "treg/runtime.h"

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cctype>
#include <cstdlib>
#include <thread>
#include <utility>

#include "treg/error.h"

#ifdef TREG_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

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

void tune_allocator() {
#if defined(__GLIBC__)
  // A CPU forward allocates and frees tensors of a few MB to a few hundred MB every layer. glibc
  // serves those with fresh mmap()s (or trims them off the heap top) and the kernel zero-fills
  // every page again on first touch: score-tokens on the tiny model spent half its time in page
  // faults and ran 5x slower. Keep freed memory up to 1 GiB for reuse; larger blocks are still
  // mmap()ed and returned. An explicit MALLOC_*_ environment setting wins.
  for (const char* var : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"})
    if (std::getenv(var)) return;
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
#endif
}

std::string blas_core_name() {
  using CoreName = char* (*)();
  auto f = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* name = f ? f() : nullptr;
  return name ? name : "";
}

void select_blas_kernels(char** argv) {
#if defined(__x86_64__)
  if (std::getenv("OPENBLAS_CORETYPE") || !argv || !argv[0]) return;
  std::string core = blas_core_name();
  for (char& ch : core) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  // OpenBLAS's x86-64 cores without AVX: what it falls back to for a CPU it does not know.
  static const char* const kPreAvx[] = {"prescott", "core2",   "penryn",   "dunnington",
                                        "nehalem",  "atom",    "opteron",  "barcelona",
                                        "bobcat",   "katmai",  "coppermine", "northwood",
                                        "banias",   "unknown"};
  bool weak = false;
  for (const char* c : kPreAvx) weak = weak || core == c;
  if (!weak) return;
  __builtin_cpu_init();
  const char* target = __builtin_cpu_supports("avx512f")  ? "SkylakeX"
                       : __builtin_cpu_supports("avx2") ? "Haswell"
                                                        : nullptr;
  if (!target) return;
  setenv("OPENBLAS_CORETYPE", target, 1);
  execv("/proc/self/exe", argv);
  unsetenv("OPENBLAS_CORETYPE");  // exec failed: carry on with the slow kernels
#else
  (void)argv;
#endif
}

int64_t cuda_peak_allocated_bytes(const c10::Device& device) {
#ifdef TREG_WITH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
    return stats.allocated_bytes[0].peak;  // [0]: the aggregate over the small and large pools
  }
#endif
  (void)device;
  return -1;
}

void reset_cuda_peak(const c10::Device& device) {
#ifdef TREG_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
#endif
  (void)device;
}

void release_cuda_cache() {
#ifdef TREG_WITH_CUDA
  if (torch::cuda::is_available()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

void apply_tf32(bool on, const c10::Device& device) {
  if (!on) return;
  at::globalContext().setAllowTF32CuBLAS(true);
  at::globalContext().setAllowTF32CuDNN(true);
  static bool said = false;  // train scores first: one line per process
  if (std::exchange(said, true)) return;
  if (device.is_cuda())
    spdlog::info("tf32: fp32 matmuls run in TF32 on {}", device.str());
  else
    spdlog::info("tf32: true has no effect on the CPU (it applies to CUDA matmuls)");
}

void init_runtime() {
  static bool done = false;
  if (done) return;
  done = true;
  tune_allocator();
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  torch::set_num_threads(configured_threads());
}

c10::Device parse_device(const std::string& name, const std::string& flag) {
  if (name == "auto") return torch::cuda::is_available() ? torch::kCUDA : torch::kCPU;
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      fail(flag, "'" + name + "' requested but no CUDA device is available",
           "use --device cpu, or a LibTorch build with CUDA on a GPU machine");
    int index = 0;
    if (name.size() > 5) {
      try {
        index = std::stoi(name.substr(5));
      } catch (const std::exception&) {
        fail(flag, "bad device '" + name + "'", "expected cpu, cuda or cuda:N");
      }
    }
    if (index < 0 || index >= static_cast<int>(torch::cuda::device_count()))
      fail(flag, "'" + name + "': there are " + std::to_string(torch::cuda::device_count()) +
                     " CUDA devices");
    return c10::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  fail(flag, "unknown device '" + name + "'", "expected cpu, cuda or cuda:N");
}

c10::ScalarType parse_dtype(const std::string& name, const std::string& flag) {
  if (name == "float32" || name == "fp32" || name == "float") return torch::kFloat32;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "half") return torch::kFloat16;
  fail(flag, "unknown dtype '" + name + "'", "expected float32, bfloat16 or float16");
}

std::string dtype_name(c10::ScalarType type) {
  switch (type) {
    case torch::kFloat32:
      return "float32";
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kFloat16:
      return "float16";
    case torch::kFloat64:
      return "float64";
    default:
      return std::string(c10::toString(type));
  }
}

}  // namespace treg
