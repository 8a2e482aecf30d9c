// Per-rank AdamW state files of sharded runs (include/treg/optimizer_shards.h).
#include "treg/optimizer_shards.h"

#include <filesystem>
#include <memory>
#include <regex>

#include "treg/error.h"
#include "treg/io.h"
#include "treg/safetensors.h"

namespace treg {

namespace fs = std::filesystem;

std::string optimizer_shard_name(int64_t rank, int64_t world) {
  return "optimizer_shard-" + std::to_string(rank) + "-of-" + std::to_string(world) + ".safetensors";
}

int64_t optimizer_shard_count(const std::string& dir) {
  static const std::regex name(R"(optimizer_shard-(\d+)-of-(\d+)\.safetensors)");
  int64_t world = 0;
  if (!fs::is_directory(dir)) return 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string f = e.path().filename().string();
    if (!std::regex_match(f, m, name)) continue;
    const int64_t w = std::stoll(m[2].str());
    if (world != 0 && w != world)
      fail(dir, "holds optimizer shards of " + std::to_string(world) + " and of " + std::to_string(w) + " ranks",
           "a checkpoint is written by one run; remove the stray files");
    world = w;
  }
  return world;
}

void save_optimizer_shard(const std::string& dir, int64_t rank, int64_t world,
                          torch::optim::AdamW& optimizer, const std::vector<std::string>& names,
                          const std::vector<torch::Tensor>& tensors, const std::vector<bool>& mine) {
  auto& state = optimizer.state();
  NamedTensors out;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!mine[i]) continue;
    auto it = state.find(optimizer_state_key(state, tensors[i]));
    if (it == state.end()) continue;
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    out.emplace_back(names[i] + ".step", torch::tensor({s.step()}, torch::kInt64));
    out.emplace_back(names[i] + ".exp_avg", s.exp_avg().detach().to(torch::kCPU).contiguous());
    out.emplace_back(names[i] + ".exp_avg_sq", s.exp_avg_sq().detach().to(torch::kCPU).contiguous());
  }
  save_safetensors(path_join(dir, optimizer_shard_name(rank, world)), out,
                   {{"format", "pt"}, {"treg", "AdamW state of rank " + std::to_string(rank) + " of " + std::to_string(world)}});
}

void load_optimizer_shards(const std::string& dir, torch::optim::AdamW& optimizer,
                           const std::vector<std::string>& names,
                           const std::vector<torch::Tensor>& tensors, const std::vector<bool>& mine) {
  const int64_t world = optimizer_shard_count(dir);
  TREG_CHECK(world > 0, dir, "has no optimizer shards");
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  for (int64_t r = 0; r < world; ++r) {
    const std::string path = path_join(dir, optimizer_shard_name(r, world));
    if (!file_exists(path))
      fail(dir, "is missing " + optimizer_shard_name(r, world) + " (the AdamW state of rank " + std::to_string(r) + ")",
           "the checkpoint is incomplete; resume from an earlier one");
    files.push_back(std::make_unique<SafetensorsFile>(path));
  }
  auto& state = optimizer.state();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!mine[i]) continue;
    const std::string& n = names[i];
    for (const auto& f : files) {
      if (!f->contains(n + ".step")) continue;
      const auto options = tensors[i].options();
      auto read = [&](const std::string& key) {
        if (!f->contains(key) || f->entry(key).shape != tensors[i].sizes().vec())
          fail(f->path(), "has no '" + key + "' of the shape of parameter " + n,
               "the checkpoint belongs to another model, or is damaged");
        return f->load(key, options);
      };
      auto s = std::make_unique<torch::optim::AdamWParamState>();
      s->step(f->load(n + ".step", torch::kInt64).item<int64_t>());
      s->exp_avg(read(n + ".exp_avg"));
      s->exp_avg_sq(read(n + ".exp_avg_sq"));
      state[optimizer_state_key(state, tensors[i])] = std::move(s);
      break;
    }
  }
}

}  // namespace treg
