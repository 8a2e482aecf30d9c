// Deterministic data order: one seeded permutation per epoch, and the pairs of every micro-batch of
// every optimizer step as a pure function of (seed, step), so resuming needs only the step count.
#include <cmath>
#include <random>

#include "treg/error.h"
#include "treg/train_parts.h"

namespace treg {

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(epoch), 0x7265u /* "tr" */};
  std::mt19937_64 gen(seq);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  // Fisher-Yates; j uniform in [0, i] by rejection (no modulo bias, no std distribution).
  for (int64_t i = n - 1; i > 0; --i) {
    const uint64_t range = static_cast<uint64_t>(i) + 1;
    const uint64_t limit = UINT64_MAX - UINT64_MAX % range;
    uint64_t r;
    do r = gen();
    while (r >= limit);
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(r % range)]);
  }
  return order;
}

DataPlan make_data_plan(int64_t num_pairs, int64_t micro_batch, int64_t accumulation,
                        double num_train_epochs, int64_t max_steps, uint64_t seed) {
  DataPlan p;
  p.num_pairs = num_pairs;
  p.micro_batch = micro_batch;
  p.accumulation = accumulation;
  p.seed = seed;
  p.steps_per_epoch = num_pairs / (micro_batch * accumulation);
  if (p.steps_per_epoch == 0)
    fail("training data", std::to_string(num_pairs) + " pairs cannot fill one optimizer step of " +
                              "per_device_train_batch_size × gradient_accumulation_steps = " +
                              std::to_string(micro_batch) + " × " + std::to_string(accumulation) +
                              " pairs",
         "lower per_device_train_batch_size or gradient_accumulation_steps, or add pairs");
  p.total_steps = max_steps > 0
                      ? max_steps
                      : static_cast<int64_t>(std::ceil(num_train_epochs * static_cast<double>(p.steps_per_epoch)));
  if (p.total_steps < 1) p.total_steps = 1;
  return p;
}

std::vector<int64_t> DataPlan::micro_batch_pairs(int64_t step, int64_t micro) const {
  const int64_t epoch = step / steps_per_epoch;
  const int64_t first = ((step % steps_per_epoch) * accumulation + micro) * micro_batch;
  // One permutation per epoch; cache the last one (steps walk epochs in order).
  thread_local int64_t cached_epoch = -1, cached_n = -1;
  thread_local uint64_t cached_seed = 0;
  thread_local std::vector<int64_t> order;
  if (cached_epoch != epoch || cached_n != num_pairs || cached_seed != seed) {
    order = epoch_order(num_pairs, seed, epoch);
    cached_epoch = epoch, cached_n = num_pairs, cached_seed = seed;
  }
  return std::vector<int64_t>(order.begin() + first, order.begin() + first + micro_batch);
}

}  // namespace treg
