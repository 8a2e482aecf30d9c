// Ranks over c10d: a TCPStore on rank 0 for the rendezvous and small values, and a c10d backend for
// the collectives: ProcessGroupNCCL for CUDA tensors (one GPU per rank, LOCAL_RANK), or
// ProcessGroupGloo (CPU tensors; CUDA tensors go through the host).
#include "treg/distributed.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

#include "treg/error.h"

#if defined(TREG_HAS_C10D_GLOO) || defined(TREG_HAS_C10D_NCCL)
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef TREG_HAS_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef TREG_HAS_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace treg {

namespace {

int64_t env_int(const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  if (*end != '\0' || x < lo || x > hi)
    fail(std::string("environment variable ") + name,
         std::string("'") + v + "' is not an integer in [" + std::to_string(lo) + ", " +
             std::to_string(hi) + "]",
         "launch ranks with torchrun, or set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and "
         "MASTER_PORT as it does");
  return x;
}

class SingleRank final : public Ranks {
 public:
  void all_reduce_sum(std::vector<torch::Tensor>&) override {}
  void broadcast_tensor(torch::Tensor&, int64_t) override {}
  std::function<void()> start_reduce(torch::Tensor&, int64_t) override { return [] {}; }
  void barrier(const std::string&) override {}
  std::string broadcast(const std::string&, const std::string& value) override { return value; }
};

#if defined(TREG_HAS_C10D_GLOO) || defined(TREG_HAS_C10D_NCCL)
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// The store, the messages and the timeouts; `Group` is the c10d backend class. `make_group(store)`
// builds it once the store has every rank.
template <class Group>
class C10dRanks final : public Ranks {
 public:
  template <class MakeGroup>
  C10dRanks(const LaunchEnv& env, std::chrono::seconds timeout, std::string backend,
            torch::Device device, MakeGroup&& make_group)
      : timeout_(timeout), backend_(std::move(backend)), device_(device) {
    rank_ = env.rank;
    world_size_ = env.world_size;
    where_ = "rank " + std::to_string(rank_) + " of " + std::to_string(world_size_);
    try {
      c10d::TCPStoreOptions o;
      o.port = static_cast<uint16_t>(env.master_port);
      o.isServer = rank_ == 0;
      o.numWorkers = static_cast<size_t>(world_size_);
      o.waitWorkers = true;
      o.timeout = timeout;
      store_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
      group_ = make_group(store_);
    } catch (const std::exception& e) {
      fail(where_, "could not join the other ranks (" + backend_ + ") at MASTER_ADDR:MASTER_PORT = " +
                       env.master_addr + ":" + std::to_string(env.master_port) + " within " +
                       std::to_string(timeout.count()) + " s: " + first_line(e.what()),
           "start every rank (torchrun does) with the same MASTER_ADDR/MASTER_PORT, a port that is "
           "free on rank 0's host; ddp_timeout sets how long to wait");
    }
  }

  bool grouped() const override { return true; }
  std::string backend() const override { return backend_; }

  void all_reduce_sum(std::vector<torch::Tensor>& tensors) override {
    // One collective per tensor: c10d reads a list as one tensor per device of this process.
    for (torch::Tensor& t : tensors)
      collective(t, "all-reduce", [&](std::vector<torch::Tensor>& one) { return group_->allreduce(one); });
  }

  void broadcast_tensor(torch::Tensor& t, int64_t root) override {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    collective(t, "broadcast from rank " + std::to_string(root),
               [&](std::vector<torch::Tensor>& one) { return group_->broadcast(one, o); });
  }

  std::function<void()> start_reduce(torch::Tensor& t, int64_t root) override {
    c10d::ReduceOptions o;
    o.rootRank = root;
    // Gloo reduces host tensors only.
    return start(t, "reduce to rank " + std::to_string(root), backend_ == "gloo",
                 [&](std::vector<torch::Tensor>& one) { return group_->reduce(one, o); });
  }

  void barrier(const std::string& what) override {
    guarded(what, [&] { group_->barrier()->wait(); });
  }

  std::string broadcast(const std::string& key, const std::string& value) override {
    std::string out;
    guarded("broadcast of " + key, [&] {
      const std::string k = "treg/" + key;
      if (is_main()) store_->set(k, std::vector<uint8_t>(value.begin(), value.end()));
      std::vector<uint8_t> v = store_->get(k);
      out.assign(v.begin(), v.end());
    });
    return out;
  }

 private:
  // Starts `begin` (a c10d collective) on `t`; the returned function waits for it. NCCL takes
  // device tensors only, so host values (counts, metrics) travel through the GPU and back; with
  // `host_only` (Gloo's reduce) device tensors travel through the host.
  template <class Begin>
  std::function<void()> start(torch::Tensor& t, const std::string& what, bool host_only, Begin&& begin) {
    const bool staged = host_only ? t.is_cuda() : device_.is_cuda() && !t.is_cuda();
    std::vector<torch::Tensor> one = {!staged ? t : host_only ? t.cpu() : t.to(device_)};
    auto work = guarded(what, [&] { return begin(one); });
    return [this, work, one, t, what, staged]() mutable {
      guarded(what, [&] { work->wait(); });
      if (staged) t.copy_(one[0]);
    };
  }

  template <class Begin>
  void collective(torch::Tensor& t, const std::string& what, Begin&& begin) {
    start(t, what, false, std::forward<Begin>(begin))();
  }

  template <class F>
  auto guarded(const std::string& what, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const std::exception& e) {
      fail(where_, what + " failed (" + backend_ + "): " + first_line(e.what()),
           "another rank stopped or did not answer within ddp_timeout (" +
               std::to_string(timeout_.count()) + " s); its own log says why. Resume all ranks "
               "with resume_from_checkpoint=auto");
    }
  }

  std::chrono::seconds timeout_;
  std::string backend_, where_;
  torch::Device device_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<Group> group_;
};
#endif

}  // namespace

LaunchEnv launch_env_from_environment() {
  LaunchEnv e;
  e.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  e.rank = env_int("RANK", 0, 0, e.world_size - 1);
  e.local_rank = env_int("LOCAL_RANK", e.rank, 0, e.world_size - 1);
  e.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.launched = std::getenv("RANK") != nullptr;
  if (e.world_size > 1 && !std::getenv("RANK"))
    fail("environment variable RANK", "not set while WORLD_SIZE is " + std::to_string(e.world_size),
         "every rank needs its RANK (torchrun sets it)");
  return e;
}

torch::Device rank_device(torch::Device device, const LaunchEnv& env) {
  if (!device.is_cuda()) return device;
  if (env.launched || env.world_size > 1)
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
  return torch::Device(torch::kCUDA, device.has_index() ? device.index() : c10::DeviceIndex(0));
}

std::shared_ptr<Ranks> single_rank() { return std::make_shared<SingleRank>(); }

std::vector<std::string> available_ddp_backends() {
  std::vector<std::string> out;
#ifdef TREG_HAS_C10D_GLOO
  out.push_back("gloo");
#endif
#ifdef TREG_HAS_C10D_NCCL
  out.push_back("nccl");
#endif
  return out;
}

std::shared_ptr<Ranks> connect_ranks(const LaunchEnv& env, std::chrono::seconds timeout,
                                     const std::string& backend, torch::Device device) {
  if (env.world_size == 1 && (backend.empty() || !env.launched)) return single_rank();
  const std::vector<std::string> have = available_ddp_backends();
  auto has = [&](const std::string& b) { return std::find(have.begin(), have.end(), b) != have.end(); };
  const std::string chosen = !backend.empty()                  ? backend
                             : device.is_cuda() && has("nccl") ? "nccl"
                                                               : "gloo";
  const std::string what = "WORLD_SIZE=" + std::to_string(env.world_size) + ", ddp_backend " + chosen;
  if (!has(chosen)) {
    std::string list;
    for (const auto& b : have) list += (list.empty() ? "" : ", ") + b;
    fail(what, "this treg was built without c10d " + chosen + " (it has: " + (list.empty() ? "none, so it runs one process" : list) + ")",
         chosen == "nccl" ? "build against a CUDA LibTorch (its nccl.h found; see README: CUDA)"
                          : "install the Gloo headers (Debian: libgloo-dev) and rebuild");
  }
  if (chosen == "nccl" && !device.is_cuda())
    fail(what, "NCCL reduces CUDA tensors, but the device is " + device.str(),
         "set device: cuda, or ddp_backend: gloo for CPU ranks");
  spdlog::info("rank {} of {}: joining the rendezvous at {}:{} ({})", env.rank, env.world_size,
               env.master_addr, env.master_port, chosen);
#ifdef TREG_HAS_C10D_NCCL
  if (chosen == "nccl") {
    // One GPU per rank, chosen before NCCL makes its communicator on the current device.
    c10::cuda::set_device(device.index());
    return std::make_shared<C10dRanks<c10d::ProcessGroupNCCL>>(
        env, timeout, chosen, device, [&](const c10::intrusive_ptr<c10d::Store>& store) {
          auto options = c10d::ProcessGroupNCCL::Options::create();
          options->timeout = timeout;
          return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, static_cast<int>(env.rank),
                                                             static_cast<int>(env.world_size), options);
        });
  }
#endif
#ifdef TREG_HAS_C10D_GLOO
  return std::make_shared<C10dRanks<c10d::ProcessGroupGloo>>(
      env, timeout, chosen, device, [&](const c10::intrusive_ptr<c10d::Store>& store) {
        auto options = c10d::ProcessGroupGloo::Options::create(timeout);
        const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
        const bool loopback = env.master_addr == "localhost" || env.master_addr.rfind("127.", 0) == 0;
        options->devices.push_back(
            ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
            : loopback        ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                              : c10d::ProcessGroupGloo::createDefaultDevice());
        return c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(env.rank),
                                                           static_cast<int>(env.world_size), options);
      });
#else
  fail(what, "unreachable: no c10d backend", "rebuild");
#endif
}

}  // namespace treg
