// Ranks over c10d: a TCPStore on rank 0 for the rendezvous and small values, ProcessGroupGloo for
// the collectives (CPU tensors; CUDA tensors go through the host).
#include "treg/distributed.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "treg/error.h"

#ifdef TREG_HAS_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
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
  void barrier(const std::string&) override {}
  std::string broadcast(const std::string&, const std::string& value) override { return value; }
};

#ifdef TREG_HAS_C10D_GLOO
class GlooRanks final : public Ranks {
 public:
  GlooRanks(const LaunchEnv& env, std::chrono::seconds timeout) : timeout_(timeout) {
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
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      const bool loopback = env.master_addr == "localhost" || env.master_addr.rfind("127.", 0) == 0;
      options->devices.push_back(
          ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
          : loopback        ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                            : c10d::ProcessGroupGloo::createDefaultDevice());
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, static_cast<int>(rank_),
                                                           static_cast<int>(world_size_), options);
    } catch (const std::exception& e) {
      fail(where_, "could not join the other ranks at MASTER_ADDR:MASTER_PORT = " +
                       env.master_addr + ":" + std::to_string(env.master_port) + " within " +
                       std::to_string(timeout.count()) + " s: " + first_line(e.what()),
           "start every rank (torchrun does) with the same MASTER_ADDR/MASTER_PORT, a port that is "
           "free on rank 0's host; ddp_timeout sets how long to wait");
    }
  }

  void all_reduce_sum(std::vector<torch::Tensor>& tensors) override {
    // One collective per tensor: c10d reads a list as one tensor per device of this process.
    for (torch::Tensor& t : tensors) {
      std::vector<torch::Tensor> one = {t};
      guarded("all-reduce", [&] { group_->allreduce(one)->wait(); });
    }
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
  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

  template <class F>
  void guarded(const std::string& what, F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      fail(where_, what + " failed: " + first_line(e.what()),
           "another rank stopped or did not answer within ddp_timeout (" +
               std::to_string(timeout_.count()) + " s); its own log says why. Resume all ranks "
               "with resume_from_checkpoint=auto");
    }
  }

  std::chrono::seconds timeout_;
  std::string where_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
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
  if (e.world_size > 1 && !std::getenv("RANK"))
    fail("environment variable RANK", "not set while WORLD_SIZE is " + std::to_string(e.world_size),
         "every rank needs its RANK (torchrun sets it)");
  return e;
}

std::shared_ptr<Ranks> single_rank() { return std::make_shared<SingleRank>(); }

std::shared_ptr<Ranks> connect_ranks(const LaunchEnv& env, std::chrono::seconds timeout) {
  if (env.world_size == 1) return single_rank();
#ifdef TREG_HAS_C10D_GLOO
  spdlog::info("rank {} of {}: joining the rendezvous at {}:{}", env.rank, env.world_size,
               env.master_addr, env.master_port);
  return std::make_shared<GlooRanks>(env, timeout);
#else
  (void)timeout;
  fail("WORLD_SIZE=" + std::to_string(env.world_size),
       "this treg was built without c10d Gloo, so it runs one process",
       "install the Gloo headers (Debian: libgloo-dev) and rebuild");
#endif
}

}  // namespace treg
