// Per-rank AdamW state files (optimizer_shards.h): what two ranks write, one optimizer reads back by
// name, whatever the layout; a missing or mis-shaped shard is an error naming the file.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/optimizer_shards.h"
#include "treg/safetensors.h"

namespace treg {
namespace {

struct Stepped {
  std::vector<torch::Tensor> tensors;
  std::unique_ptr<torch::optim::AdamW> adamw;
};

// Three tensors; AdamW has stepped the first two (twice) and not the third (no gradient yet).
Stepped stepped(uint64_t seed) {
  torch::manual_seed(seed);
  Stepped s;
  for (auto shape : {std::vector<int64_t>{4, 3}, std::vector<int64_t>{5}, std::vector<int64_t>{2, 2}})
    s.tensors.push_back(torch::randn(shape).requires_grad_());
  s.adamw = std::make_unique<torch::optim::AdamW>(s.tensors, torch::optim::AdamWOptions(0.1));
  for (int i = 0; i < 2; ++i) {
    for (size_t t = 0; t < 2; ++t) s.tensors[t].mutable_grad() = torch::randn_like(s.tensors[t]);
    s.adamw->step();
  }
  return s;
}

torch::optim::AdamWParamState* state_of(torch::optim::AdamW& o, const torch::Tensor& t) {
  auto& st = o.state();
  auto it = st.find(optimizer_state_key(st, t));
  return it == st.end() ? nullptr : static_cast<torch::optim::AdamWParamState*>(it->second.get());
}

TEST(OptimizerShards, TwoRanksWriteTheirSharesAndOneOptimizerReadsThemByName) {
  const std::string dir = test::fresh_dir("optimizer_shards");
  const std::vector<std::string> names = {"a.weight", "b.bias", "c.weight"};
  Stepped run = stepped(1);
  // Rank 0 owns a and c, rank 1 owns b.
  save_optimizer_shard(dir, 0, 2, *run.adamw, names, run.tensors, {true, false, true});
  save_optimizer_shard(dir, 1, 2, *run.adamw, names, run.tensors, {false, true, false});
  EXPECT_EQ(optimizer_shard_count(dir), 2);
  EXPECT_TRUE(SafetensorsFile(dir + "/optimizer_shard-0-of-2.safetensors").contains("a.weight.exp_avg_sq"));
  EXPECT_FALSE(SafetensorsFile(dir + "/optimizer_shard-0-of-2.safetensors").contains("b.bias.exp_avg"));

  // A fresh optimizer of other tensors with the same shapes (another process), all of them its own.
  Stepped fresh = stepped(2);
  fresh.adamw->state().clear();
  load_optimizer_shards(dir, *fresh.adamw, names, fresh.tensors, {true, true, true});
  for (size_t t = 0; t < 2; ++t) {
    SCOPED_TRACE(names[t]);
    auto* want = state_of(*run.adamw, run.tensors[t]);
    auto* got = state_of(*fresh.adamw, fresh.tensors[t]);
    ASSERT_TRUE(want && got);
    EXPECT_EQ(got->step(), 2);
    EXPECT_TRUE(torch::equal(got->exp_avg(), want->exp_avg()));
    EXPECT_TRUE(torch::equal(got->exp_avg_sq(), want->exp_avg_sq()));
  }
  EXPECT_EQ(state_of(*fresh.adamw, fresh.tensors[2]), nullptr);  // never stepped: no state

  // A rank of another layout reads only what it owns.
  Stepped part = stepped(3);
  part.adamw->state().clear();
  load_optimizer_shards(dir, *part.adamw, names, part.tensors, {false, true, false});
  EXPECT_EQ(part.adamw->state().size(), 1u);
  EXPECT_NE(state_of(*part.adamw, part.tensors[1]), nullptr);

  // Another model's tensor of the same name: the shard and the name are in the error.
  std::vector<torch::Tensor> other = {torch::zeros({3, 4}), part.tensors[1], part.tensors[2]};
  torch::optim::AdamW wrong(other, torch::optim::AdamWOptions(0.1));
  try {
    load_optimizer_shards(dir, wrong, names, other, {true, true, true});
    ADD_FAILURE() << "a mis-shaped state loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer_shard-0-of-2.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("a.weight.exp_avg"), std::string::npos) << e.what();
  }
  // A missing rank's file.
  std::filesystem::remove(dir + "/optimizer_shard-1-of-2.safetensors");
  try {
    load_optimizer_shards(dir, *part.adamw, names, part.tensors, {true, true, true});
    ADD_FAILURE() << "loaded without rank 1's shard";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing optimizer_shard-1-of-2.safetensors"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace treg
