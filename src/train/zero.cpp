// ZeRO-1/2: sharded AdamW state and gradients (include/treg/zero.h).
#include "treg/zero.h"

#include <fmt/format.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>

#include "treg/error.h"
#include "treg/optimizer_shards.h"

namespace treg {

namespace {

// `like`-shaped elements of `flat` from `offset`, as a plain tensor on the same storage (not an
// autograd view: LibTorch 1.13's zero_grad detaches gradients in place, which views refuse).
torch::Tensor alias(const torch::Tensor& flat, int64_t offset, const torch::Tensor& like) {
  torch::Tensor t = torch::empty({0}, flat.options());
  t.set_(flat.storage(), flat.storage_offset() + offset, like.sizes());
  return t;
}

// Before each backward: no gradient has arrived, every bucket waits for all its tensors.
void rearm(std::vector<bool>& arrived, std::vector<size_t>& waiting, const std::vector<ZeroBucket>& buckets) {
  arrived.assign(arrived.size(), false);
  waiting.resize(buckets.size());
  for (size_t b = 0; b < buckets.size(); ++b) waiting[b] = buckets[b].tensors.size();
}

}  // namespace

std::vector<ZeroBucket> deal_buckets(const std::vector<int64_t>& numels, const std::vector<int>& kinds,
                                     int64_t world, int64_t cap_elements) {
  TREG_CHECK(numels.size() == kinds.size(), "deal_buckets", "one kind per tensor");
  int64_t total = 0;
  for (int64_t n : numels) total += n;
  // At least two buckets per rank where the tensors allow: whole tensors balance better in smaller
  // pieces.
  const int64_t cap = std::max<int64_t>(1, std::min(cap_elements, total / (2 * world)));
  std::vector<ZeroBucket> buckets;
  for (size_t i = numels.size(); i-- > 0;) {
    const int64_t n = numels[i];
    if (buckets.empty() || (buckets.back().numel > 0 && buckets.back().numel + n > cap) ||
        kinds[buckets.back().tensors.back()] != kinds[i])
      buckets.emplace_back();
    buckets.back().tensors.push_back(i);
    buckets.back().numel += n;
  }
  std::vector<int64_t> load(static_cast<size_t>(world), 0);
  for (auto& b : buckets) {
    b.owner = std::min_element(load.begin(), load.end()) - load.begin();
    load[static_cast<size_t>(b.owner)] += b.numel;
  }
  return buckets;
}

std::vector<ZeroBucket> deal_buckets(const std::vector<torch::Tensor>& params, int64_t world,
                                     int64_t cap_elements) {
  std::vector<int64_t> numels;
  std::vector<int> kinds;
  for (const auto& p : params) numels.push_back(p.numel()), kinds.push_back(static_cast<int>(p.scalar_type()));
  return deal_buckets(numels, kinds, world, cap_elements);
}

ZeroShards::ZeroShards(int64_t stage, std::vector<torch::Tensor> params,
                       std::shared_ptr<Ranks> ranks, int64_t cap_elements,
                       std::vector<bool> bf16_replicas)
    : stage_(stage), params_(std::move(params)), bf16_(std::move(bf16_replicas)), ranks_(std::move(ranks)) {
  if (bf16_.empty()) bf16_.assign(params_.size(), false);
  TREG_CHECK(bf16_.size() == params_.size(), "ZeroShards", "one bf16_replicas flag per tensor");
  TREG_CHECK(!has_bf16_replicas() || stage_ >= 2, "zero_stage",
             "bf16 replicas need stage 2 (their gradients go to the fp32 masters during the backward)");
  std::vector<int64_t> numels;
  std::vector<int> kinds;
  for (size_t t = 0; t < params_.size(); ++t) {
    numels.push_back(params_[t].numel());
    kinds.push_back(bf16_[t] ? -1 : static_cast<int>(params_[t].scalar_type()));
  }
  buckets_ = deal_buckets(numels, kinds, ranks_->world_size(), cap_elements);
  owner_.assign(params_.size(), 0);
  bucket_of_.assign(params_.size(), 0);
  for (size_t b = 0; b < buckets_.size(); ++b)
    for (size_t t : buckets_[b].tensors) owner_[t] = buckets_[b].owner, bucket_of_[t] = b;
  master_ = params_;
  {
    torch::NoGradGuard no_grad;
    for (size_t t = 0; t < params_.size(); ++t) {
      if (!bf16_[t]) continue;
      torch::Tensor& p = params_[t];
      // The master is the current fp32 tensor on its owner; the others keep only the dtype.
      master_[t] = mine(t) ? p.detach().clone() : torch::empty({0}, p.options());
      master_[t].set_requires_grad(true);
      // Before the hooks: set_data to another dtype gives the tensor a new grad accumulator.
      p.set_data(p.detach().to(torch::kBFloat16));
    }
  }
  if (stage_ < 2) return;
  arrived_.resize(params_.size());
  rearm(arrived_, waiting_, buckets_);
  flat_.resize(buckets_.size());
  pending_.resize(buckets_.size());
  // After AccumulateGrad has added a micro-batch's gradient into .grad, as DDP's reducer hooks it.
  // The accumulator is kept alive with the hook (autograd holds it weakly).
  for (size_t t = 0; t < params_.size(); ++t) {
    GradAccumulator acc = torch::autograd::impl::grad_accumulator(params_[t]);
    const uintptr_t key = acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, t](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          on_gradient(t);
          return outputs;
        }));
    hooks_.emplace_back(std::move(acc), key);
  }
}

ZeroShards::~ZeroShards() {
  for (auto& [acc, key] : hooks_) acc->del_post_hook(key);
}

std::string ZeroShards::describe() const {
  int64_t mine_n = 0, all = 0, tensors = 0, buckets = 0;
  for (size_t t = 0; t < params_.size(); ++t) {
    all += params_[t].numel();
    if (mine(t)) mine_n += params_[t].numel(), ++tensors;
  }
  for (const auto& b : buckets_) buckets += b.owner == ranks_->rank();
  int64_t replicas = 0;
  for (size_t t = 0; t < params_.size(); ++t) replicas += bf16_[t] ? params_[t].numel() : 0;
  return fmt::format("ZeRO-{}: rank {} holds the AdamW state{} of {} of {} tensors ({:.1f}% of {} elements, {} of {} buckets){}",
                     stage_, ranks_->rank(), stage_ >= 2 ? " and gradients" : "", tensors,
                     params_.size(), 100.0 * static_cast<double>(mine_n) / static_cast<double>(all),
                     all, buckets, buckets_.size(),
                     replicas == 0 ? std::string()
                                   : fmt::format("; {} elements in bf16 replicas, their fp32 masters with their owners",
                                                 replicas));
}

std::vector<bool> ZeroShards::owned() const {
  std::vector<bool> out(params_.size());
  for (size_t t = 0; t < params_.size(); ++t) out[t] = mine(t);
  return out;
}

bool ZeroShards::has_bf16_replicas() const {
  return std::find(bf16_.begin(), bf16_.end(), true) != bf16_.end();
}

void ZeroShards::begin_backward() {
  if (stage_ < 2) return;
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = true;
}

void ZeroShards::on_gradient(size_t t) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return;
  if (arrived_[t])
    fail("zero_stage: 2", "the gradient of parameter tensor " + std::to_string(t) +
                              " was accumulated twice in one backward",
         "use zero_stage: 1 for this model and report it");
  arrived_[t] = true;
  if (--waiting_[bucket_of_[t]] > 0) return;
  // Every rank starts the reduces in the same order: a finished bucket waits for those before it.
  while (next_ < buckets_.size() && waiting_[next_] == 0) launch(next_++);
}

void ZeroShards::launch(size_t b) {
  std::vector<torch::Tensor> parts;
  for (size_t t : buckets_[b].tensors) {
    torch::Tensor& p = params_[t];
    const torch::Tensor g = p.grad();
    // Summed in the master's dtype: a replica's bf16 gradient is what autocast's cast back to the
    // fp32 weight would pass on, and its owner adds it to the fp32 sum so far as AccumulateGrad
    // adds into a fp32 .grad.
    const auto options = master_[t].options();
    torch::Tensor part = g.defined() ? g.reshape(-1).to(options.dtype()) : torch::zeros({p.numel()}, options);
    if (bf16_[t] && master_[t].grad().defined()) part = part + master_[t].grad().reshape(-1);
    parts.push_back(part);
    p.mutable_grad() = torch::Tensor();  // the owner gets the sum back in end_backward
    master_[t].mutable_grad() = torch::Tensor();
  }
  flat_[b] = parts.size() == 1 ? parts[0].contiguous() : torch::cat(parts);
  pending_[b] = ranks_->start_reduce(flat_[b], buckets_[b].owner);
}

void ZeroShards::end_backward() {
  if (stage_ < 2) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    armed_ = false;
    // Buckets with a tensor this backward did not reach (its gradient is zero here).
    for (; next_ < buckets_.size(); ++next_) launch(next_);
  }
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    pending_[b]();
    pending_[b] = nullptr;
    if (buckets_[b].owner == ranks_->rank()) {
      int64_t at = 0;
      for (size_t t : buckets_[b].tensors) {
        master_[t].mutable_grad() = alias(flat_[b], at, params_[t]);
        at += params_[t].numel();
      }
    }
    flat_[b] = torch::Tensor();
  }
  rearm(arrived_, waiting_, buckets_);
  next_ = 0;
}

double ZeroShards::clip_grad_norm(double max_norm) {
  if (stage_ < 2) return torch::nn::utils::clip_grad_norm_(params_, max_norm);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  for (size_t t = 0; t < params_.size(); ++t)
    if (mine(t) && master_[t].grad().defined()) norms.push_back(master_[t].grad().norm(2));
  std::vector<torch::Tensor> squares = {
      norms.empty() ? torch::zeros({1}, torch::kFloat64)
                    : torch::stack(norms).to(torch::kFloat64).pow(2).sum().reshape({1}).cpu()};
  ranks_->all_reduce_sum(squares);
  const double total = std::sqrt(squares[0].item<double>());
  const double coef = max_norm / (total + 1e-6);  // as torch.nn.utils.clip_grad_norm_
  if (coef < 1)
    for (size_t t = 0; t < params_.size(); ++t)
      if (mine(t) && master_[t].grad().defined()) master_[t].mutable_grad().mul_(coef);
  return total;
}

void ZeroShards::step(torch::optim::AdamW& optimizer) {
  for (size_t t = 0; t < params_.size(); ++t)
    if (!mine(t)) master_[t].mutable_grad() = torch::Tensor();
  optimizer.step();
  torch::NoGradGuard no_grad;
  for (size_t t = 0; t < params_.size(); ++t)
    if (bf16_[t] && mine(t)) params_[t].detach().copy_(master_[t]);  // round to nearest, as autocast
  // A broadcast copies bits: bf16 goes as fp16 of the same bits, which every c10d backend carries
  // (LibTorch 1.13's Gloo has neither bf16 nor int16).
  auto bits = [](const torch::Tensor& t) {
    return t.scalar_type() == torch::kBFloat16 ? t.view(torch::kHalf) : t;
  };
  for (const auto& b : buckets_) {
    if (b.tensors.size() == 1) {
      torch::Tensor p = bits(params_[b.tensors[0]].detach());  // the same storage, outside autograd
      ranks_->broadcast_tensor(p, b.owner);
      continue;
    }
    const bool owner = b.owner == ranks_->rank();
    std::vector<torch::Tensor> parts;
    if (owner)
      for (size_t t : b.tensors) parts.push_back(params_[t].detach().reshape(-1));
    torch::Tensor flat = owner ? torch::cat(parts) : torch::empty({b.numel}, params_[b.tensors[0]].options());
    torch::Tensor sent = bits(flat);
    ranks_->broadcast_tensor(sent, b.owner);
    if (owner) continue;
    int64_t at = 0;
    for (size_t t : b.tensors) {
      params_[t].detach().copy_(flat.narrow(0, at, params_[t].numel()).view_as(params_[t]));
      at += params_[t].numel();
    }
  }
}

void ZeroShards::drop_foreign_state(torch::optim::AdamW& optimizer) const {
  auto& state = optimizer.state();
  for (size_t t = 0; t < params_.size(); ++t)
    if (!mine(t)) state.erase(optimizer_state_key(state, master_[t]));
}

std::vector<torch::Tensor> ZeroShards::gather_masters_to_main() {
  std::vector<torch::Tensor> out(params_.size());
  torch::NoGradGuard no_grad;
  for (size_t t = 0; t < params_.size(); ++t) {
    if (!bf16_[t]) continue;
    torch::Tensor v = mine(t) ? master_[t].detach().contiguous()
                              : torch::empty(params_[t].sizes(), master_[t].options());
    if (owner_[t] != 0) ranks_->broadcast_tensor(v, owner_[t]);
    if (ranks_->is_main()) out[t] = v.to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true);
  }
  return out;
}

void ZeroShards::load_masters(const std::function<torch::Tensor(size_t)>& read) {
  torch::NoGradGuard no_grad;
  for (size_t t = 0; t < params_.size(); ++t)
    if (bf16_[t] && mine(t)) master_[t].copy_(read(t));
}

}  // namespace treg
