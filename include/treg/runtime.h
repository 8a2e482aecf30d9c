// Process-wide set-up: thread count, logging format, device/dtype parsing.
#pragma once
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
void tune_allocator();
int configured_threads();

// `--device auto|cpu|cuda|cuda:N` (auto: cuda when a GPU is there, else cpu); an unknown name, or
// cuda without a GPU, is a treg::Error naming `flag`.
c10::Device parse_device(const std::string& name, const std::string& flag = "--device");
// `--dtype float32|bfloat16|float16` (also fp32/bf16/fp16, and HF's "float32"/"bfloat16" torch_dtype).
c10::ScalarType parse_dtype(const std::string& name, const std::string& flag = "--dtype");
// The HF `torch_dtype` spelling: "float32", "bfloat16", "float16".
std::string dtype_name(c10::ScalarType type);

}  // namespace treg
