// The AdamW state of a sharded run on disk: each rank writes the state of the tensors it owns to
// its own file in the checkpoint, optimizer_shard-<r>-of-<W>.safetensors, as DeepSpeed writes one
// optimizer file per rank. Nothing is gathered (an 8B model's moments are 64 GB), and the ranks
// write at once. Tensors are keyed by parameter name, so a run resumes from the shards on any rank
// count and layout: each rank reads the states it needs from whichever files hold them (memory-
// mapped, so a rank reads its share only).
//   <name>.exp_avg, <name>.exp_avg_sq  fp32 (the master's dtype), <name>.step  int64 [1]
// A tensor with no step yet has no entries.
#pragma once
#include <torch/torch.h>

#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace treg {

// The key of a tensor in an optimizer's state map: LibTorch 1.x spells the TensorImpl's address as
// a string (c10::guts::to_string), 2.x uses the pointer itself.
template <class Map>
typename Map::key_type optimizer_state_key(const Map&, const torch::Tensor& p) {
  if constexpr (std::is_same_v<typename Map::key_type, std::string>) {
    std::ostringstream os;
    os << p.unsafeGetTensorImpl();
    return os.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

std::string optimizer_shard_name(int64_t rank, int64_t world);
// Whether `dir` holds optimizer shards (and how many files their names say there are; 0 = none).
int64_t optimizer_shard_count(const std::string& dir);

// Writes the state of `tensors[i]` (the optimizer's tensors, named `names[i]`) where `mine[i]`,
// to <dir>/optimizer_shard_name(rank, world).
void save_optimizer_shard(const std::string& dir, int64_t rank, int64_t world,
                          torch::optim::AdamW& optimizer, const std::vector<std::string>& names,
                          const std::vector<torch::Tensor>& tensors, const std::vector<bool>& mine);
// Sets the state of each `tensors[i]` where `mine[i]` from the shards in `dir` (on the tensor's
// device and dtype). Every file the names promise must be there; a tensor with a step in none of
// them starts without state, as it would before its first update; a shape mismatch is an error
// naming the file.
void load_optimizer_shards(const std::string& dir, torch::optim::AdamW& optimizer,
                           const std::vector<std::string>& names,
                           const std::vector<torch::Tensor>& tensors, const std::vector<bool>& mine);

}  // namespace treg
