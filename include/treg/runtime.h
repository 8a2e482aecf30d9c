// Process-wide set-up: thread count, logging format, device/dtype parsing.
#pragma once
#include <string>

namespace c10 { enum class ScalarType : int8_t; }

namespace treg {

// LibTorch defaults to half the cores; treg uses all of them unless TREG_NUM_THREADS (or
// OMP_NUM_THREADS) says otherwise.
void init_runtime();
int configured_threads();

}  // namespace treg
