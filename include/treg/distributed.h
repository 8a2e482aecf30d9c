// The processes of one training run and what they exchange. Ranks are launched the way PyTorch
// launches anything: `torchrun --nproc_per_node N --no-python treg train --config ...` (or any
// launcher that sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, as torchrun does).
// Rank 0 hosts the rendezvous (c10d TCPStore); collectives run on PyTorch's own c10d engine: NCCL
// for CUDA ranks (when LibTorch has it), Gloo otherwise (`ddp_backend`, HF's key, picks one).
// Every collective waits at most `ddp_timeout` seconds (HF's key), so a rank that dies makes the
// others stop with an error naming it instead of hanging.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <functional>
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
  bool launched = false;  // RANK was set: a launcher (torchrun) started this process
};
LaunchEnv launch_env_from_environment();

class Ranks {
 public:
  virtual ~Ranks() = default;
  int64_t rank() const { return rank_; }
  int64_t world_size() const { return world_size_; }
  bool is_main() const { return rank_ == 0; }
  // A process group exists (also for one rank launched with an explicit ddp_backend), so the
  // collectives really run; without one they are no-ops and callers may skip their packing.
  virtual bool grouped() const { return false; }
  virtual std::string backend() const { return "none"; }
  // Sums every tensor over the ranks, in place (same shapes and dtypes on every rank).
  virtual void all_reduce_sum(std::vector<torch::Tensor>& tensors) = 0;
  // Starts summing `tensor` over the ranks into `root`'s copy (the others' copies are then
  // unspecified) and returns at once; the returned function waits for the sum. Several may be in
  // flight, started in the same order on every rank (ZeRO-2 reduces gradient buckets this way
  // while the backward goes on).
  virtual std::function<void()> start_reduce(torch::Tensor& tensor, int64_t root) = 0;
  // Returns when every rank has reached it.
  virtual void barrier(const std::string& what) = 0;
  // `root`'s values of `tensor` on every rank, in place (same shape and dtype everywhere).
  virtual void broadcast_tensor(torch::Tensor& tensor, int64_t root) = 0;
  // Rank 0's `value` on every rank (e.g. the checkpoint all ranks resume from).
  virtual std::string broadcast(const std::string& key, const std::string& value) = 0;

 protected:
  int64_t rank_ = 0, world_size_ = 1;
};

// This process alone: collectives are no-ops.
std::shared_ptr<Ranks> single_rank();
// Connects the ranks `env` describes. One rank gets single_rank(), unless a launcher started it and
// `backend` names one (a 1-GPU torchrun with ddp_backend: nccl runs the NCCL path). `backend`:
// "" picks nccl for a CUDA `device` when this LibTorch has it, else gloo. Errors name the launcher
// variable, the address or the backend that failed; a build without the backend refuses it.
std::shared_ptr<Ranks> connect_ranks(const LaunchEnv& env, std::chrono::seconds timeout,
                                     const std::string& backend, torch::Device device);
// The device of this rank: a CUDA `device` becomes cuda:LOCAL_RANK under a launcher (one GPU per
// rank, as torchrun's users expect), or cuda:<its index or 0> alone.
torch::Device rank_device(torch::Device device, const LaunchEnv& env);
// The backends this build can run ("gloo", "nccl"), for messages and `treg --version`.
std::vector<std::string> available_ddp_backends();

}  // namespace treg
