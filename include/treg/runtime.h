// Process-wide set-up: thread count, logging format, device/dtype parsing.
#pragma once
#include <cstdint>
#include <string>

namespace c10 {
enum class ScalarType : int8_t;
struct Device;
}  // namespace c10

namespace treg {

// LibTorch defaults to half the cores; treg uses all of them unless TREG_NUM_THREADS (or
// OMP_NUM_THREADS) says otherwise. Also keeps glibc from returning freed tensor memory to the kernel
// after every op (tune_allocator).
void init_runtime();
// Debian 12's OpenBLAS (0.3.21, what LibTorch 1.13 calls for every CPU matmul) does not recognise
// some current CPUs and falls back to its Prescott (SSE3) kernels: on a 2-core Xeon with AVX-512
// (2026-11-29) a training step of a 9M-parameter Llama took 2.6x as long. OpenBLAS reads
// OPENBLAS_CORETYPE only when it loads, so when the loaded OpenBLAS reports a pre-AVX core on a CPU
// with AVX2 / AVX-512, this restarts the program (execv of /proc/self/exe, same argv) with
// OPENBLAS_CORETYPE=Haswell / SkylakeX. Call it first in main(); it returns when nothing needs doing
// (another BLAS, a recognised core, OPENBLAS_CORETYPE already set, or the restart failed).
void select_blas_kernels(char** argv);
// The core OpenBLAS uses ("Prescott", "SkylakeX", ...), or "" when the BLAS is not OpenBLAS.
std::string blas_core_name();
void tune_allocator();
int configured_threads();

// `--device auto|cpu|cuda|cuda:N` (auto: cuda when a GPU is there, else cpu); an unknown name, or
// cuda without a GPU, is a treg::Error naming `flag`.
c10::Device parse_device(const std::string& name, const std::string& flag = "--device");
// The most memory tensors took on the CUDA device `device` since the last reset (the caching
// allocator's peak, as torch.cuda.max_memory_allocated), or -1 for a CPU device or a build on a
// LibTorch without CUDA. The reset starts a new window (e.g. after loading, for the steps).
int64_t cuda_peak_allocated_bytes(const c10::Device& device);
void reset_cuda_peak(const c10::Device& device);
// Hands the CUDA caching allocator's free blocks back to the driver (torch.cuda.empty_cache), e.g.
// before another process needs the GPU's memory; a no-op without CUDA.
void release_cuda_cache();
// The config's `tf32` (HF's tf32=True): when `on`, cuBLAS and cuDNN may run fp32 matmuls in TF32
// (Ampere and later; ~8x the fp32 rate, 10-bit mantissa inputs), and the run says so once; off
// leaves LibTorch's default (full fp32). The flags are process-wide and have no effect on the CPU,
// which the log line says when `device` is one.
void apply_tf32(bool on, const c10::Device& device);

// `--dtype float32|bfloat16|float16` (also fp32/bf16/fp16, and HF's "float32"/"bfloat16" torch_dtype).
c10::ScalarType parse_dtype(const std::string& name, const std::string& flag = "--dtype");
// The HF `torch_dtype` spelling: "float32", "bfloat16", "float16".
std::string dtype_name(c10::ScalarType type);

}  // namespace treg
