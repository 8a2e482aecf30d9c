// The test binary's main: the BLAS kernels are chosen as treg's own main chooses them
// (select_blas_kernels), so results computed in this process and in the `treg` subprocesses the
// tests start come from the same kernels and can be compared byte for byte.
#include <gtest/gtest.h>

#include "treg/runtime.h"

int main(int argc, char** argv) {
  treg::select_blas_kernels(argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
