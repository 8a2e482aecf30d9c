// The processes of one training run and what they exchange. Ranks are launched the way PyTorch
// launches anything: `torchrun --nproc_per_node N --no-python treg train --config ...` (or any
// launcher that sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, as torchrun does).
// Rank 0 hosts the rendezvous (c10d TCPStore); collectives run on PyTorch's own c10d engine (Gloo).
// Every collective waits at most `ddp_timeout` seconds (HF's key), so a rank that dies makes the
// others stop with an error naming it instead of hanging.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace treg {

// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT as the launcher set them; one rank when
// WORLD_SIZE is unset. A malformed or inconsistent variable is an error naming it.
struct LaunchEnv {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
};
LaunchEnv launch_env_from_environment();

class Ranks {
 public:
  virtual ~Ranks() = default;
  int64_t rank() const { return rank_; }
  int64_t world_size() const { return world_size_; }
  bool is_main() const { return rank_ == 0; }
  // Sums every tensor over the ranks, in place (same shapes and dtypes on every rank).
  virtual void all_reduce_sum(std::vector<torch::Tensor>& tensors) = 0;
  // Returns when every rank has reached it.
  virtual void barrier(const std::string& what) = 0;
  // Rank 0's `value` on every rank (e.g. the checkpoint all ranks resume from).
  virtual std::string broadcast(const std::string& key, const std::string& value) = 0;

 protected:
  int64_t rank_ = 0, world_size_ = 1;
};

// This process alone: collectives are no-ops.
std::shared_ptr<Ranks> single_rank();
// Connects the ranks `env` describes (single_rank() for one). Errors name the launcher variable or
// the address that failed; a build without c10d Gloo refuses WORLD_SIZE > 1.
std::shared_ptr<Ranks> connect_ranks(const LaunchEnv& env, std::chrono::seconds timeout);

}  // namespace treg
