// Strict loading from, and saving to, the Hugging Face checkpoint layout; random init for tiny
// models.
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <map>
#include <set>

#include "model/layers.h"

#include "treg/error.h"
#include "treg/io.h"
#include "treg/model.h"
#include "treg/runtime.h"
#include "treg/safetensors.h"

namespace treg {

namespace {

// Keys some HF checkpoints carry that are not parameters (old Llama exports saved the RoPE buffer).
bool ignorable_key(const std::string& key, const ModelArgs& args) {
  const std::string suffix = "rotary_emb.inv_freq";
  if (key.size() >= suffix.size() &&
      key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0)
    return true;
  // A tied model's checkpoint may still store the (identical) lm_head.weight.
  return args.tie_embeddings && key == "lm_head.weight";
}

std::string list_keys(const std::vector<std::string>& keys, size_t limit = 30) {
  std::string s;
  for (size_t i = 0; i < keys.size() && i < limit; ++i) s += "\n    " + keys[i];
  if (keys.size() > limit) s += "\n    ... and " + std::to_string(keys.size() - limit) + " more";
  return s;
}

}  // namespace

CausalLM load_model(const std::string& dir, torch::Device device, torch::ScalarType dtype) {
  ModelArgs args = load_model_args(dir);
  SafetensorsCheckpoint ckpt(dir);
  auto options = torch::TensorOptions().device(device).dtype(dtype);
  CausalLM model(args, options);

  auto params = model->named_parameters(/*recurse=*/true);
  std::vector<std::string> missing, unexpected, mismatched;
  std::set<std::string> expected;
  for (const auto& item : params) {
    expected.insert(item.key());
    if (!ckpt.contains(item.key())) {
      missing.push_back(item.key());
      continue;
    }
    const auto& e = ckpt.entry(item.key());
    if (e.shape != item.value().sizes().vec())
      mismatched.push_back(item.key() + ": model expects " + c10::str(item.value().sizes()) + ", " +
                           ckpt.file_of(item.key()) + " has " +
                           c10::str(c10::IntArrayRef(e.shape)));
  }
  for (const auto& key : ckpt.keys())
    if (!expected.count(key) && !ignorable_key(key, args)) unexpected.push_back(key);
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string msg =
        "checkpoint does not match the " + args.model_type + " model its config.json describes";
    if (!missing.empty())
      msg += "\n  missing keys (" + std::to_string(missing.size()) + "):" + list_keys(missing);
    if (!unexpected.empty())
      msg += "\n  unexpected keys (" + std::to_string(unexpected.size()) +
             "):" + list_keys(unexpected);
    if (!mismatched.empty())
      msg += "\n  shape mismatches (" + std::to_string(mismatched.size()) +
             "):" + list_keys(mismatched);
    fail(dir, msg, "check that config.json and the safetensors files belong to the same model");
  }
  torch::NoGradGuard no_grad;
  for (auto& item : params) item.value().copy_(ckpt.load(item.key(), options));
  return model;
}

void save_model(CausalLM& model, const std::string& dir, torch::ScalarType dtype,
                int64_t max_shard_bytes, const std::map<std::string, torch::Tensor>& fp32_weights) {
  const ModelArgs& args = model->args();
  if (!args.raw.is_object() || args.raw.empty())
    fail(dir, "cannot save: the model's ModelArgs has no raw config.json to write back");
  make_dirs(dir);
  // Adapted projections: "<module>.weight" is saved merged.
  std::map<std::string, const model::LinearImpl*> adapted;
  for (const auto& [name, linear] : model::adapted_linears(*model)) adapted[name + ".weight"] = linear;
  NamedTensors tensors;
  {
    torch::NoGradGuard no_grad;
    for (const auto& item : model->named_parameters(/*recurse=*/true)) {
      if (is_lora_parameter(item.key())) continue;
      auto it = adapted.find(item.key());
      auto held = fp32_weights.find(item.key());
      const torch::Tensor t = it != adapted.end()          ? it->second->merged_weight()
                              : held != fp32_weights.end() ? held->second
                                                           : item.value();
      tensors.emplace_back(item.key(), t.detach().to(torch::kCPU, dtype).contiguous());
    }
  }
  save_safetensors_sharded(dir, tensors, max_shard_bytes);
  nlohmann::json config = args.raw;
  config["torch_dtype"] = dtype_name(dtype);
  if (config.contains("dtype")) config["dtype"] = dtype_name(dtype);  // transformers >= 4.56 spelling
  config["vocab_size"] = model->lm_head_weight().size(0);
  write_file_atomic(path_join(dir, "config.json"), config.dump(2) + "\n");
}

void init_model_weights(CausalLM& model, uint64_t seed, double std) {
  auto gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard no_grad;
  const double neutral = model->args().norm_offset != 0.0 ? 0.0 : 1.0;
  // named_parameters() is in registration order, so the draw is the same on every run.
  for (auto& item : model->named_parameters(/*recurse=*/true)) {
    torch::Tensor draw = at::normal(0.0, std, item.value().sizes(), gen, torch::kFloat32);
    const bool is_norm = item.key().find("norm.weight") != std::string::npos;
    if (is_norm) draw += neutral;
    item.value().copy_(draw);
  }
}

}  // namespace treg
