// Schedule, data order, collation and metrics of the trainer, against hand-worked values.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "treg/error.h"
#include "treg/train_parts.h"

using namespace treg;

// transformers: warmup = ceil(ratio · total); /usr/bin/python3: math.ceil(100 * 0.07) == 8 (0.07·100 is
// 7.000000000000001 in binary), math.ceil(100 * 0.03) == 3, math.ceil(25 * 0.1) == 3,
// math.ceil(10 * 0.1) == 1.
TEST(Schedule, WarmupStepsAsHf) {
  EXPECT_EQ(warmup_steps(0.1, 10), 1);
  EXPECT_EQ(warmup_steps(0.1, 25), 3);
  EXPECT_EQ(warmup_steps(0.03, 100), 3);
  EXPECT_EQ(warmup_steps(0.07, 100), 8);
  EXPECT_EQ(warmup_steps(0.0, 100), 0);
}

// HF's warmup_steps: a step count >= 1 wins over warmup_ratio (transformers 4); a fraction < 1 is
// ceil(fraction · total) (transformers 5: math.ceil(100 * 0.07) == 8); 0 falls back to the ratio.
TEST(Schedule, WarmupStepsKeyOverridesRatio) {
  EXPECT_EQ(resolved_warmup_steps(10, 0.5, 100), 10);
  EXPECT_EQ(resolved_warmup_steps(1, 0.5, 100), 1);
  EXPECT_EQ(resolved_warmup_steps(0.07, 0.5, 100), 8);
  EXPECT_EQ(resolved_warmup_steps(0, 0.1, 25), 3);
  EXPECT_EQ(resolved_warmup_steps(0, 0.0, 25), 0);
}

// total n = 10, warmup w = 2 (hand-worked):
//   every warmup schedule: step 0 -> 0, step 1 -> 1/2
//   cosine step 2 -> 1; step 6 -> 0.5·(1 + cos(π·4/8)) = 0.5; step 4 -> 0.5·(1 + cos(π/4)) = 0.853553...;
//          step 10 -> 0
//   linear step 2 -> 8/8 = 1; step 6 -> 4/8 = 0.5; step 9 -> 1/8
//   constant_with_warmup: step 1 -> 0.5, step 2.. -> 1;  constant: 1 everywhere
TEST(Schedule, MultipliersHandWorked) {
  for (const char* s : {"cosine", "linear", "constant_with_warmup"}) {
    EXPECT_DOUBLE_EQ(lr_multiplier(s, 0, 2, 10), 0.0) << s;
    EXPECT_DOUBLE_EQ(lr_multiplier(s, 1, 2, 10), 0.5) << s;
    EXPECT_DOUBLE_EQ(lr_multiplier(s, 2, 2, 10), 1.0) << s;
  }
  EXPECT_NEAR(lr_multiplier("cosine", 6, 2, 10), 0.5, 1e-15);
  EXPECT_NEAR(lr_multiplier("cosine", 4, 2, 10), 0.5 * (1 + std::sqrt(0.5)), 1e-15);
  EXPECT_NEAR(lr_multiplier("cosine", 10, 2, 10), 0.0, 1e-15);
  EXPECT_DOUBLE_EQ(lr_multiplier("linear", 6, 2, 10), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier("linear", 9, 2, 10), 0.125);
  EXPECT_DOUBLE_EQ(lr_multiplier("constant_with_warmup", 9, 2, 10), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier("constant", 0, 2, 10), 1.0);
  EXPECT_THROW(lr_multiplier("cosine_with_restarts", 3, 2, 10), Error);
}

TEST(DataOrder, SeededPermutationPerEpoch) {
  auto a = epoch_order(50, 42, 0), b = epoch_order(50, 42, 0), c = epoch_order(50, 42, 1),
       d = epoch_order(50, 43, 0);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  std::set<int64_t> s(a.begin(), a.end());
  EXPECT_EQ(s.size(), 50u);
  EXPECT_EQ(*s.begin(), 0);
  EXPECT_EQ(*s.rbegin(), 49);
}

// 10 pairs, steps of 2 × 2 = 4 pairs: 2 steps per epoch (2 pairs skipped per epoch), 1.5 epochs -> 3
// steps. Micro-batch × accumulation and one big batch take the same pairs at every step.
TEST(DataOrder, PlanStepsAndEquivalentBatches) {
  auto p = make_data_plan(10, 2, 2, 1.5, -1, 3);
  EXPECT_EQ(p.steps_per_epoch, 2);
  EXPECT_EQ(p.total_steps, 3);
  auto big = make_data_plan(10, 4, 1, 1.5, -1, 3);
  for (int64_t step = 0; step < 3; ++step) {
    auto m0 = p.micro_batch_pairs(step, 0), m1 = p.micro_batch_pairs(step, 1);
    m0.insert(m0.end(), m1.begin(), m1.end());
    EXPECT_EQ(m0, big.micro_batch_pairs(step, 0)) << step;
  }
  std::set<int64_t> epoch0;
  for (int64_t s = 0; s < 2; ++s)
    for (int64_t m = 0; m < 2; ++m)
      for (auto i : p.micro_batch_pairs(s, m)) epoch0.insert(i);
  EXPECT_EQ(epoch0.size(), 8u);
  EXPECT_EQ(make_data_plan(10, 2, 2, 1.0, 7, 3).total_steps, 7);
  try {
    make_data_plan(3, 2, 2, 1.0, -1, 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gradient_accumulation_steps"), std::string::npos);
  }
}

// Pair 0: prompt (5, 6), chosen (7, 8, 9), rejected (10). Pair 1: prompt (11, 12, 13), chosen (14),
// rejected (15, 16).
std::vector<PairRecord> two_pairs() {
  PairRecord a, b;
  a.prompt_ids = {5, 6};
  a.chosen.ids = {7, 8, 9};
  a.chosen.ref_logps = {-1, -2, -3};
  a.chosen.rewards = {0.1f, 0.2f, 0.3f};
  a.rejected.ids = {10};
  a.rejected.ref_logps = {-4};
  a.rejected.rewards = {-0.4f};
  b.prompt_ids = {11, 12, 13};
  b.chosen.ids = {14};
  b.chosen.ref_logps = {-5};
  b.chosen.rewards = {0.5f};
  b.rejected.ids = {15, 16};
  b.rejected.ref_logps = {-6, -7};
  b.rejected.rewards = {-0.1f, -0.2f};
  return {a, b};
}

// The token at each response token's predicting column, in [2B, L] order: the token before it in its
// own sequence (x's last token for t = 0), whatever the layout.
std::vector<int64_t> predictors(const PairBatch& batch) {
  auto from = batch.response_from.masked_select(batch.response_mask.to(torch::kBool));
  auto flat = batch.ids.reshape({-1});
  std::vector<int64_t> out;
  for (int64_t i = 0; i < from.numel(); ++i) out.push_back(flat[from[i].item<int64_t>()].item<int64_t>());
  return out;
}

// Padded: T = max(2+3, 2+1, 3+1, 3+2) = 5, L = 3; response token t of a row with prompt length P is
// predicted by column P + t - 1.
TEST(Collate, PaddedLayoutAndAlignment) {
  auto pairs = two_pairs();
  PairBatch batch = collate_pairs(pairs, "test");
  ASSERT_EQ(batch.ids.sizes(), (std::vector<int64_t>{4, 5}));
  EXPECT_TRUE(torch::equal(batch.ids, torch::tensor({5, 6, 7, 8, 9, 11, 12, 13, 14, 0, 5, 6, 10, 0, 0, 11, 12, 13, 15, 16},
                                                    torch::kInt64).view({4, 5})));
  EXPECT_EQ(batch.mask.sum().item<int64_t>(), 5 + 4 + 3 + 5);
  EXPECT_EQ(batch.num_tokens, 17);
  EXPECT_EQ(batch.forward_tokens, 17);
  EXPECT_FALSE(batch.segments.defined());
  EXPECT_TRUE(torch::equal(batch.response_from,
                           torch::tensor({1, 2, 3, 7, 0, 0, 11, 0, 0, 17, 18, 0}, torch::kInt64).view({4, 3})));
  EXPECT_TRUE(torch::equal(batch.response_ids,
                           torch::tensor({7, 8, 9, 14, 0, 0, 10, 0, 0, 15, 16, 0}, torch::kInt64).view({4, 3})));
  EXPECT_EQ(predictors(batch), (std::vector<int64_t>{6, 7, 8, 13, 6, 13, 15}));
  // Fake outputs whose value is the response id: gather_responses splits them by side.
  ResponseOutputs out;
  out.logps = batch.response_ids.to(torch::kFloat32) * batch.response_mask;
  ResponseTokens c, r;
  gather_responses(batch, out, c, r);
  EXPECT_TRUE(torch::equal(c.logps, torch::tensor({7.f, 8.f, 9.f, 14.f, 0.f, 0.f}).view({2, 3})));
  EXPECT_TRUE(torch::equal(r.logps, torch::tensor({10.f, 0.f, 0.f, 15.f, 16.f, 0.f}).view({2, 3})));
  EXPECT_TRUE(torch::equal(r.ref_logps, torch::tensor({-4.f, 0.f, 0.f, -6.f, -7.f, 0.f}).view({2, 3})));
  EXPECT_TRUE(torch::equal(c.mask, torch::tensor({1.f, 1.f, 1.f, 1.f, 0.f, 0.f}).view({2, 3})));
  PairRecord empty = pairs[0];
  empty.prompt_ids.clear();
  EXPECT_THROW(collate_pairs({empty}, "test"), Error);
}

// Prefix-shared: each pair is [x | y_w | y_l] with segments 1, 2, 3, and 2, 3 continuing 1; both
// pairs have 6 tokens, so rows are 6 long and each pair fills one. Same predicted tokens as padded.
TEST(Collate, PrefixSharedLayoutAndAlignment) {
  auto pairs = two_pairs();
  PairBatch batch = collate_pairs(pairs, "test", PairLayout::kPrefixShared);
  ASSERT_EQ(batch.ids.sizes(), (std::vector<int64_t>{2, 6}));
  // Longest first (stable): pair 0 and pair 1 are both 6 tokens, so pair 0 takes row 0.
  EXPECT_TRUE(torch::equal(batch.ids, torch::tensor({5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
                                                    torch::kInt64).view({2, 6})));
  EXPECT_TRUE(torch::equal(batch.segments, torch::tensor({1, 1, 2, 2, 2, 3, 1, 1, 1, 2, 3, 3},
                                                         torch::kInt64).view({2, 6})));
  EXPECT_TRUE(torch::equal(batch.parents, torch::tensor({0, 0, 1, 1, 0, 0, 1, 1}, torch::kInt64).view({2, 4})));
  EXPECT_EQ(batch.num_tokens, 17);
  EXPECT_EQ(batch.forward_tokens, 12);
  // The rejected side's first token is predicted by x's last column, not by the chosen's last one.
  EXPECT_TRUE(torch::equal(batch.response_from,
                           torch::tensor({1, 2, 3, 8, 0, 0, 1, 0, 0, 8, 10, 0}, torch::kInt64).view({4, 3})));
  EXPECT_EQ(predictors(batch), (std::vector<int64_t>{6, 7, 8, 13, 6, 13, 15}));
  // packed_predictor_columns says the same from segments and parents alone.
  torch::Tensor cols = packed_predictor_columns(batch.segments, batch.parents);
  EXPECT_TRUE(torch::equal(cols, torch::tensor({-1, 0, 1, 2, 3, 1, -1, 0, 1, 2, 2, 4}, torch::kInt64).view({2, 6})));

  // Five pairs of 1 + 1 + 1 tokens and one of 6: rows of 6 hold two small pairs each.
  std::vector<PairRecord> many = {pairs[1]};
  for (int i = 0; i < 5; ++i) {
    PairRecord p;
    p.prompt_ids = {20 + i};
    p.chosen.ids = {30 + i};
    p.chosen.ref_logps = {-1};
    p.chosen.rewards = {0.1f};
    p.rejected.ids = {40 + i};
    p.rejected.ref_logps = {-2};
    p.rejected.rewards = {-0.1f};
    many.push_back(p);
  }
  PairBatch packed = collate_pairs(many, "test", PairLayout::kPrefixShared);
  ASSERT_EQ(packed.ids.sizes(), (std::vector<int64_t>{4, 6}));
  EXPECT_TRUE(torch::equal(packed.ids[1], torch::tensor({20, 30, 40, 21, 31, 41}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(packed.segments[1], torch::tensor({1, 2, 3, 4, 5, 6}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(packed.parents[1], torch::tensor({0, 0, 1, 1, 0, 4, 4}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(packed.segments[3], torch::tensor({1, 2, 3, 0, 0, 0}, torch::kInt64)));
  EXPECT_EQ(packed.forward_tokens, 6 + 5 * 3);
  EXPECT_EQ(predictors(packed), (std::vector<int64_t>{13, 20, 21, 22, 23, 24, 13, 15, 20, 21, 22, 23, 24}));
}

TEST(Metrics, MeansOverPairs) {
  LossOutput o;
  o.losses = torch::tensor({1.0, 3.0});
  o.chosen_rewards = torch::tensor({0.5, -0.1});
  o.rejected_rewards = torch::tensor({0.2, 0.3});
  o.chosen_logps = o.rejected_logps = o.pref_losses = o.reg_losses = o.sft_losses = torch::zeros({2});
  o.treg_weights = o.policy_weights = torch::ones({2});
  MetricAccumulator acc;
  acc.add_pairs(o);
  auto m = acc.means();
  EXPECT_DOUBLE_EQ(m["loss"], 2.0);
  EXPECT_DOUBLE_EQ(m["rewards/accuracies"], 0.5);
  EXPECT_NEAR(m["rewards/margins"], (0.3 - 0.4) / 2, 1e-7);  // fp32 inputs
  EXPECT_EQ(m.count("logits/chosen"), 0u);  // only when logit statistics were added
}

// TRL logs the mean over micro-batches of each micro-batch's mean over its tokens × vocabulary:
// micro-batch 1 has 5 (token, vocab) entries summing to 10 (mean 2), micro-batch 2 one entry of 3
// (mean 3): logits/chosen = (2 + 3) / 2 = 2.5, not the pooled 13 / 6.
TEST(Metrics, LogitsAreMeansOfMicroBatchMeans) {
  LossOutput o;
  o.losses = o.chosen_rewards = o.rejected_rewards = o.chosen_logps = o.rejected_logps =
      o.pref_losses = o.reg_losses = o.sft_losses = o.treg_weights = o.policy_weights =
          torch::zeros({1});
  MetricAccumulator acc;
  acc.add_pairs(o);
  auto f64 = [](double v) { return torch::scalar_tensor(v, torch::kFloat64); };
  acc.add_logits(
      {/*chosen_sum=*/f64(10), /*rejected_sum=*/f64(-4), /*chosen_count=*/5, /*rejected_count=*/4});
  acc.add_pairs(o);
  acc.add_logits({f64(3), f64(0), 1, 2});
  auto m = acc.means();
  EXPECT_DOUBLE_EQ(m["logits/chosen"], 2.5);
  EXPECT_DOUBLE_EQ(m["logits/rejected"], -0.5);
}
