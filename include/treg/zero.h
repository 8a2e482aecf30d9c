// ZeRO over the ranks of one run (`zero_stage`), as DeepSpeed's stages 1 and 2 and PyTorch's
// ZeroRedundancyOptimizer. The trainable tensors are grouped into buckets of whole tensors, in the
// order the backward produces their gradients, and each bucket is dealt to one rank, its owner,
// which alone keeps the AdamW state of its tensors, updates them and broadcasts the new values.
//   stage 1: every rank holds every gradient (the trainer all-reduces them).
//   stage 2: each bucket's gradients are summed into its owner alone (c10d reduce) as soon as the
//            backward has produced them, while it goes on; the other ranks drop them. A rank then
//            holds the gradients of its share, plus what is in flight.
// Weights stay replicated on every rank: in fp32, or (stage 2, bf16 autocast, as DeepSpeed's bf16
// mode) the decoder layers' projections in bf16 with their fp32 master weights sharded like the
// moments: only the owner of a projection keeps its fp32 master, adds the gradients into it in fp32,
// updates it and broadcasts its bf16 rounding. Autocast runs every such matmul on the bf16 rounding
// of the fp32 weight anyway, so the replicas change the memory, not the arithmetic: a run with them
// computes what a run with fp32 replicas does. In a checkpoint each rank writes the AdamW state of
// its share (optimizer_shards.h) and rank 0 the fp32 weights (the masters gathered to its host), so
// a run resumes on any rank count, with or without sharding.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "treg/distributed.h"

namespace treg {

struct ZeroBucket {
  // Tensors of one kind only (a bucket is flattened into one buffer): one dtype, replica or not.
  std::vector<size_t> tensors;  // indices into the parameter list
  int64_t owner = 0;
  int64_t numel = 0;
};

// The buckets: tensors taken last to first (the order the backward produces gradients), a bucket
// closed before it would pass `cap_elements`, or a world_size-th of the elements (so that small
// models are shared as well); each bucket goes to the rank with the fewest elements so far (ties:
// the lower rank). A bucket also closes where the kind of tensor changes. The same on every rank.
std::vector<ZeroBucket> deal_buckets(const std::vector<int64_t>& numels, const std::vector<int>& kinds,
                                     int64_t world, int64_t cap_elements);
// Kinds by dtype.
std::vector<ZeroBucket> deal_buckets(const std::vector<torch::Tensor>& params, int64_t world,
                                     int64_t cap_elements);

class ZeroShards {
 public:
  // `params`: the trainable tensors, in the module's order. Stage 2 hooks every tensor's gradient
  // accumulation; the destructor removes the hooks. `bf16_replicas[t]` (stage 2 only; empty = none):
  // tensor t becomes a bf16 replica (its storage changes, the tensor stays the module's), its
  // current values the fp32 master on its owner.
  ZeroShards(int64_t stage, std::vector<torch::Tensor> params, std::shared_ptr<Ranks> ranks,
             int64_t cap_elements, std::vector<bool> bf16_replicas = {});
  ~ZeroShards();
  ZeroShards(const ZeroShards&) = delete;
  ZeroShards& operator=(const ZeroShards&) = delete;

  int64_t stage() const { return stage_; }
  // "rank r holds ... of N tensors (x% of M elements) in B buckets", for the log.
  std::string describe() const;

  // What AdamW steps, one per tensor: the module's own tensor, or a bf16 replica's fp32 master (an
  // empty tensor of the master's dtype on the ranks that do not own it). Build the optimizer on these.
  const std::vector<torch::Tensor>& optimizer_tensors() const { return master_; }
  bool has_bf16_replicas() const;

  // Stage 2, around each micro-batch's backward. After end_backward the owner of a bucket holds
  // the sum over the ranks of every micro-batch so far; the other ranks hold no gradient for it.
  // A no-op at stage 1.
  void begin_backward();
  void end_backward();

  // torch.nn.utils.clip_grad_norm_ over the gradients of all ranks: at stage 2 each rank adds up
  // its owned share and the squares are summed over the ranks. Returns the total norm.
  double clip_grad_norm(double max_norm);

  // One AdamW step of the owned tensors (the others' gradients are dropped, so AdamW skips them),
  // then each bucket broadcast from its owner.
  void step(torch::optim::AdamW& optimizer);

  // Per tensor: whether this rank owns it (keeps its AdamW state and master).
  std::vector<bool> owned() const;
  // Forgets the AdamW state of the tensors this rank does not own (after loading a whole
  // optimizer.pt).
  void drop_foreign_state(torch::optim::AdamW& optimizer) const;
  // Collective: the fp32 masters of the bf16 replicas, on the host of rank 0 (undefined elsewhere
  // and for the other tensors), one tensor in flight at a time. For checkpoints.
  std::vector<torch::Tensor> gather_masters_to_main();
  // Sets the owned masters to `read(t)` (a resumed run's fp32 weights); the replicas are the
  // caller's (loaded with the module).
  void load_masters(const std::function<torch::Tensor(size_t)>& read);

 private:
  bool mine(size_t tensor) const { return owner_[tensor] == ranks_->rank(); }
  void on_gradient(size_t tensor);  // a tensor's gradient is accumulated (stage 2 hook)
  void launch(size_t bucket);       // flatten, drop, start the reduce

  int64_t stage_;
  std::vector<torch::Tensor> params_;
  std::vector<bool> bf16_;            // per tensor: a bf16 replica
  std::vector<torch::Tensor> master_;  // per tensor: see optimizer_tensors()
  std::shared_ptr<Ranks> ranks_;
  std::vector<ZeroBucket> buckets_;
  std::vector<int64_t> owner_;      // per tensor
  std::vector<size_t> bucket_of_;   // per tensor
  // Stage 2: the hooks, and the state of the backward in progress.
  // A tensor's AccumulateGrad node: std::shared_ptr in LibTorch 1.x, c10::intrusive_ptr in 2.x.
  using GradAccumulator = decltype(torch::autograd::impl::grad_accumulator(std::declval<const torch::Tensor&>()));
  std::vector<std::pair<GradAccumulator, uintptr_t>> hooks_;
  std::mutex mutex_;
  bool armed_ = false;
  std::vector<bool> arrived_;       // per tensor
  std::vector<size_t> waiting_;     // per bucket: tensors not yet arrived
  size_t next_ = 0;                 // buckets start in order: the first not started
  std::vector<torch::Tensor> flat_;                 // per bucket in flight
  std::vector<std::function<void()>> pending_;      // per bucket in flight
};

}  // namespace treg
