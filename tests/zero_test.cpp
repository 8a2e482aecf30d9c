// ZeRO's pieces in one process (zero.h): the buckets, and ZeRO-2's reduces during the backward seen
// through a stand-in for the other rank (which adds zeros). The multi-process equalities with a
// plain run are in distributed_test.cpp.
#include <gtest/gtest.h>

#include "treg/autocast.h"
#include "treg/zero.h"

namespace treg {
namespace {

std::vector<torch::Tensor> of_sizes(const std::vector<int64_t>& sizes) {
  std::vector<torch::Tensor> out;
  for (int64_t n : sizes) out.push_back(torch::zeros({n}));
  return out;
}

std::vector<std::vector<size_t>> tensors_of(const std::vector<ZeroBucket>& buckets) {
  std::vector<std::vector<size_t>> out;
  for (const auto& b : buckets) out.push_back(b.tensors);
  return out;
}

TEST(Zero, BucketsHoldWholeTensorsLastToFirstAndBalanceTheRanks) {
  const auto params = of_sizes({10, 300, 20, 20, 500, 40, 40, 70});  // 1000 elements
  // Cap 100: a bucket closes before it would pass 100; a larger tensor is a bucket alone.
  auto b = deal_buckets(params, 2, 100);
  using V = std::vector<std::vector<size_t>>;
  EXPECT_EQ(tensors_of(b), (V{{7}, {6, 5}, {4}, {3, 2}, {1}, {0}}));
  // A large cap falls to a quarter of the elements (two buckets per rank of 2): 250.
  b = deal_buckets(params, 2, 1 << 20);
  ASSERT_EQ(tensors_of(b), (V{{7, 6, 5}, {4}, {3, 2}, {1}, {0}}));
  // Dealt in order, each to the rank with fewer elements so far: 150 -> 0, 500 -> 1, 40 -> 0,
  // 300 -> 0, 10 -> 0; both ranks end with 500.
  std::vector<int64_t> owners, load(2, 0);
  for (const auto& k : b) owners.push_back(k.owner), load[static_cast<size_t>(k.owner)] += k.numel;
  EXPECT_EQ(owners, (std::vector<int64_t>{0, 1, 0, 0, 0}));
  EXPECT_EQ(load, (std::vector<int64_t>{500, 500}));
  // One rank owns everything in one bucket per cap.
  for (const auto& k : deal_buckets(params, 1, 1 << 20)) EXPECT_EQ(k.owner, 0);
}

// Rank `rank` of 2; the other rank's contributions are zeros, so a reduce leaves the local sum.
class RecordingRanks final : public Ranks {
 public:
  RecordingRanks(int64_t rank, int64_t world) {
    rank_ = rank;
    world_size_ = world;
  }
  std::vector<std::pair<int64_t, int64_t>> reduces;  // (elements, root), in start order
  int64_t waited = 0;
  bool grouped() const override { return true; }
  void all_reduce_sum(std::vector<torch::Tensor>&) override {}
  void broadcast_tensor(torch::Tensor&, int64_t) override {}
  std::function<void()> start_reduce(torch::Tensor& t, int64_t root) override {
    EXPECT_TRUE(t.is_contiguous());
    reduces.emplace_back(t.numel(), root);
    return [this] { ++waited; };
  }
  void barrier(const std::string&) override {}
  std::string broadcast(const std::string&, const std::string& v) override { return v; }
};

TEST(Zero, StageTwoReducesEachBucketToItsOwnerDuringTheBackwardInBucketOrder) {
  torch::manual_seed(3);
  torch::nn::Linear l0(4, 8), l1(8, 8), l2(8, 3);
  std::vector<torch::Tensor> params;  // w0 32, b0 8, w1 64, b1 8, w2 24, b2 3
  for (auto* l : {&l0, &l1, &l2})
    for (auto& p : (*l)->parameters()) params.push_back(p);
  const std::vector<torch::Tensor> xs = {torch::randn({5, 4}), torch::randn({3, 4}), torch::randn({2, 4})};
  // The third micro-batch stops its backward after the first layer: w0 and b0 get nothing.
  auto loss = [&](size_t i) {
    torch::Tensor h = torch::tanh(l0(xs[i]));
    if (i == 2) h = h.detach();
    return l2(torch::tanh(l1(h))).pow(2).sum();
  };
  std::vector<torch::Tensor> want;
  for (size_t i = 0; i < xs.size(); ++i) loss(i).backward();
  for (auto& p : params) want.push_back(p.grad().clone()), p.mutable_grad() = torch::Tensor();

  auto ranks = std::make_shared<RecordingRanks>(1, 2);
  {
    // 139 elements: cap 34; buckets [b2 w2] 27 -> rank 0, [b1] 8 -> 1, [w1] 64 -> 1, [b0] 8 -> 0,
    // [w0] 32 -> 0. Rank 1 owns w1 and b1.
    ZeroShards zero(2, params, ranks, 1 << 20);
    EXPECT_NE(zero.describe().find("rank 1 holds the AdamW state and gradients of 2 of 6 tensors"),
              std::string::npos)
        << zero.describe();
    const std::vector<std::pair<int64_t, int64_t>> per_backward = {{27, 0}, {8, 1}, {64, 1}, {8, 0}, {32, 0}};
    for (size_t i = 0; i < xs.size(); ++i) {
      zero.begin_backward();
      loss(i).backward();
      // All five started while the backward ran, except when it did not reach w0 and b0.
      EXPECT_EQ(ranks->reduces.size(), 5 * i + (i == 2 ? 3 : 5)) << "micro-batch " << i;
      zero.end_backward();
    }
    std::vector<std::pair<int64_t, int64_t>> all;
    for (int k = 0; k < 3; ++k) all.insert(all.end(), per_backward.begin(), per_backward.end());
    EXPECT_EQ(ranks->reduces, all);
    EXPECT_EQ(ranks->waited, 15);
    for (size_t t = 0; t < params.size(); ++t) {
      SCOPED_TRACE(t);
      if (t == 2 || t == 3) {
        ASSERT_TRUE(params[t].grad().defined());
        EXPECT_TRUE(torch::allclose(params[t].grad(), want[t], 1e-6, 1e-6));
      } else {
        EXPECT_FALSE(params[t].grad().defined());  // another rank's: dropped
      }
    }
    // The norm of this rank's share (the other adds zeros), clipped as clip_grad_norm_ would.
    const double norm = std::sqrt(want[2].pow(2).sum().item<double>() + want[3].pow(2).sum().item<double>());
    EXPECT_NEAR(zero.clip_grad_norm(norm / 4), norm, 1e-5 * norm);
    EXPECT_TRUE(torch::allclose(params[2].grad(), want[2] * (norm / 4) / (norm + 1e-6), 1e-6, 1e-6));
  }
  // The hooks left with ZeroShards: a plain backward fills every gradient again.
  for (auto& p : params) p.mutable_grad() = torch::Tensor();
  loss(0).backward();
  for (auto& p : params) EXPECT_TRUE(p.grad().defined());
  EXPECT_EQ(ranks->reduces.size(), 15u);
}

// Stage 2 with bf16 replicas (the weights) and fp32 masters, against fp32 weights, both under CPU
// bf16 autocast, one rank: 3 steps of 2 micro-batches with a clip that acts. Autocast reads only
// the bf16 rounding of a weight and hands back its bf16 gradient, so every loss, every master and
// every replica is bitwise what the fp32 run has.
TEST(Zero, Bf16ReplicasWithFp32MastersComputeBitwiseWhatFp32WeightsDo) {
  torch::manual_seed(5);
  torch::nn::Linear a0(8, 16), a1(16, 4);
  torch::nn::Linear b0(8, 16), b1(16, 4);
  std::vector<torch::Tensor> pa, pb;
  std::vector<bool> replicas;
  {
    torch::NoGradGuard no_grad;
    for (auto [x, y] : {std::pair{&a0, &b0}, std::pair{&a1, &b1}}) {
      (*y)->weight.copy_((*x)->weight);
      (*y)->bias.copy_((*x)->bias);
      pa.insert(pa.end(), {(*x)->weight, (*x)->bias});
      pb.insert(pb.end(), {(*y)->weight, (*y)->bias});
      replicas.insert(replicas.end(), {true, false});  // the weights; the biases stay fp32
    }
  }
  const torch::Tensor start = pa[0].detach().clone();
  const std::vector<torch::Tensor> xs = {torch::randn({6, 8}), torch::randn({3, 8}), torch::randn({5, 8})};
  auto loss = [&](torch::nn::Linear& l0, torch::nn::Linear& l1, int64_t i) {
    AutocastGuard autocast(torch::Device(torch::kCPU), true);
    return l1(torch::tanh(l0(xs[static_cast<size_t>(i % 3)]))).to(torch::kFloat32).pow(2).mean();
  };
  auto ranks_a = std::make_shared<RecordingRanks>(0, 1), ranks_b = std::make_shared<RecordingRanks>(0, 1);
  ZeroShards za(2, pa, ranks_a, 1 << 20), zb(2, pb, ranks_b, 1 << 20, replicas);
  EXPECT_FALSE(za.has_bf16_replicas());
  ASSERT_TRUE(zb.has_bf16_replicas());
  EXPECT_EQ(b0->weight.scalar_type(), torch::kBFloat16);  // the module's own tensor, now bf16
  EXPECT_EQ(b0->bias.scalar_type(), torch::kFloat32);
  EXPECT_NE(zb.describe().find("192 elements in bf16 replicas, their fp32 masters with their owners"), std::string::npos)
      << zb.describe();
  torch::optim::AdamW oa(za.optimizer_tensors(), torch::optim::AdamWOptions(0.05).weight_decay(0.1));
  torch::optim::AdamW ob(zb.optimizer_tensors(), torch::optim::AdamWOptions(0.05).weight_decay(0.1));
  double clipped = 0;
  for (int64_t step = 0; step < 3; ++step) {
    oa.zero_grad();
    ob.zero_grad();
    for (int64_t micro = 0; micro < 2; ++micro) {
      const torch::Tensor la = loss(a0, a1, 2 * step + micro), lb = loss(b0, b1, 2 * step + micro);
      EXPECT_EQ(la.item<float>(), lb.item<float>()) << "step " << step << " micro " << micro;
      za.begin_backward();
      la.backward();
      za.end_backward();
      zb.begin_backward();
      lb.backward();
      zb.end_backward();
    }
    const double na = za.clip_grad_norm(0.5), nb = zb.clip_grad_norm(0.5);
    EXPECT_EQ(na, nb);
    clipped += na > 0.5;
    za.step(oa);
    zb.step(ob);
    for (size_t t = 0; t < pa.size(); ++t) {
      SCOPED_TRACE("step " + std::to_string(step) + " tensor " + std::to_string(t));
      const torch::Tensor& master = zb.optimizer_tensors()[t];
      EXPECT_EQ(master.scalar_type(), torch::kFloat32);
      EXPECT_TRUE(torch::equal(master, pa[t]));
      EXPECT_TRUE(torch::equal(pb[t], pa[t].to(pb[t].scalar_type())));
    }
  }
  EXPECT_GT(clipped, 0);  // the clip acted
  EXPECT_GT((pa[0] - start).abs().max().item<double>(), 1e-3);  // and the weights moved

  // Rank 1 of 2 keeps the masters of what it owns alone; every rank holds every replica.
  torch::nn::Linear c0(8, 16), c1(16, 4);
  std::vector<torch::Tensor> pc = {c0->weight, c0->bias, c1->weight, c1->bias};
  ZeroShards zc(2, pc, std::make_shared<RecordingRanks>(1, 2), 1 << 20, replicas);
  int64_t owned = 0, empty = 0;
  for (size_t t : {size_t{0}, size_t{2}}) {
    EXPECT_EQ(pc[t].scalar_type(), torch::kBFloat16);
    const torch::Tensor& master = zc.optimizer_tensors()[t];
    EXPECT_EQ(master.scalar_type(), torch::kFloat32);
    if (master.numel() == 0) ++empty;
    if (master.sizes() == pc[t].sizes()) ++owned;
  }
  EXPECT_EQ(owned, 1);
  EXPECT_EQ(empty, 1);
}

}  // namespace
}  // namespace treg
