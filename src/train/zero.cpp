// ZeRO-1: sharded AdamW state (include/treg/zero.h).
#include "treg/zero.h"

#include <algorithm>
#include <numeric>
#include <sstream>
#include <type_traits>

namespace treg {

namespace {

// The key of a tensor in the optimizer's state map: LibTorch 1.x spells the TensorImpl's address
// as a string (c10::guts::to_string), 2.x uses the pointer itself.
template <class Map>
typename Map::key_type state_key(const Map&, const torch::Tensor& p) {
  if constexpr (std::is_same_v<typename Map::key_type, std::string>) {
    std::ostringstream os;
    os << p.unsafeGetTensorImpl();
    return os.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

}  // namespace

std::vector<int64_t> deal_parameters(const std::vector<torch::Tensor>& params, int64_t world) {
  std::vector<size_t> order(params.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return params[a].numel() > params[b].numel(); });
  std::vector<int64_t> load(static_cast<size_t>(world), 0), owner(params.size(), 0);
  for (size_t i : order) {
    const auto least = std::min_element(load.begin(), load.end()) - load.begin();
    owner[i] = least;
    load[static_cast<size_t>(least)] += params[i].numel();
  }
  return owner;
}

void drop_foreign_state(torch::optim::AdamW& optimizer, const std::vector<torch::Tensor>& params,
                        const std::vector<int64_t>& owner, int64_t rank) {
  auto& state = optimizer.state();
  for (size_t i = 0; i < params.size(); ++i)
    if (owner[i] != rank) state.erase(state_key(state, params[i]));
}

void gather_state_to_main(torch::optim::AdamW& optimizer, const std::vector<torch::Tensor>& params,
                          const std::vector<int64_t>& owner, Ranks& ranks) {
  auto& state = optimizer.state();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    const torch::Tensor& p = params[i];
    if (owner[i] == 0) continue;
    const bool mine = owner[i] == ranks.rank();
    auto it = mine ? state.find(state_key(state, p)) : state.end();
    auto* own = it != state.end() ? static_cast<torch::optim::AdamWParamState*>(it->second.get()) : nullptr;
    // The step first: -1 says the owner has no state for it yet.
    torch::Tensor step = torch::full({1}, own ? own->step() : int64_t{-1}, p.options().dtype(torch::kInt64));
    ranks.broadcast_tensor(step, owner[i]);
    const int64_t n = step.item<int64_t>();
    if (n < 0) continue;
    torch::Tensor m = own ? own->exp_avg().contiguous() : torch::empty_like(p, at::MemoryFormat::Contiguous);
    torch::Tensor v = own ? own->exp_avg_sq().contiguous() : torch::empty_like(p, at::MemoryFormat::Contiguous);
    ranks.broadcast_tensor(m, owner[i]);
    ranks.broadcast_tensor(v, owner[i]);
    if (ranks.is_main()) {
      auto s = std::make_unique<torch::optim::AdamWParamState>();
      s->step(n);
      s->exp_avg(m);
      s->exp_avg_sq(v);
      state[state_key(state, p)] = std::move(s);
    }
  }
}

void sharded_step(torch::optim::AdamW& optimizer, const std::vector<torch::Tensor>& params,
                  const std::vector<int64_t>& owner, Ranks& ranks) {
  for (size_t i = 0; i < params.size(); ++i)
    if (owner[i] != ranks.rank()) params[i].mutable_grad() = torch::Tensor();
  optimizer.step();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    torch::Tensor p = params[i].detach();  // the same storage, outside autograd
    ranks.broadcast_tensor(p, owner[i]);
  }
}

}  // namespace treg
