// LoRA adapters on the decoder's projections, and PEFT's adapter layout on disk. The arithmetic is
// PEFT's (tuners/lora/layer.py): A is drawn kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(in),
// 1/sqrt(in)); B starts at zero; the update is scaling · B·A with scaling = alpha / r (rslora:
// alpha / sqrt(r)); dropout acts on the adapters' input only.
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "model/layers.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/model.h"
#include "treg/nearest.h"
#include "treg/safetensors.h"

namespace treg {

namespace {

constexpr const char* kAdapterConfig = "adapter_config.json";
constexpr const char* kAdapterWeights = "adapter_model.safetensors";
// PEFT's names: the LoRA model wraps the HF model as base_model.model.
const std::string kPeftPrefix = "base_model.model.";

std::string leaf(const std::string& module) { return module.substr(module.rfind('.') + 1); }

}  // namespace

double LoraSpec::scaling() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

bool is_lora_parameter(const std::string& name) {
  auto ends = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".lora_A") || ends(".lora_B");
}

std::vector<std::string> lora_target_names(const ModelArgs& args,
                                           const std::vector<std::string>& targets) {
  std::vector<std::string> known;
  for (const Projection& p : layer_projections(args)) known.push_back(p.name);
  std::vector<std::string> wanted = targets;
  if (wanted.empty())  // PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    wanted = args.fused_qkv ? std::vector<std::string>{"qkv_proj"}
                            : std::vector<std::string>{"q_proj", "v_proj"};
  std::set<std::string> chosen;
  for (const std::string& t : wanted) {
    if (t == "all-linear") {
      chosen.insert(known.begin(), known.end());
      continue;
    }
    if (std::find(known.begin(), known.end(), t) == known.end()) {
      std::vector<std::string> names = known;
      names.push_back("all-linear");
      fail("lora_target_modules",
           "'" + t + "' is not a projection of a " + args.model_type + " layer: did you mean '" +
               nearest_name(t, names) + "'?",
           "the projections are the HF module names of the layer, or all-linear");
    }
    chosen.insert(t);
  }
  std::vector<std::string> out;  // in layer order
  for (const std::string& k : known)
    if (chosen.count(k)) out.push_back(k);
  return out;
}

namespace model {

std::vector<std::pair<std::string, LinearImpl*>> adapted_linears(torch::nn::Module& module) {
  std::vector<std::pair<std::string, LinearImpl*>> out;
  for (const auto& item : module.named_modules()) {
    auto* linear = dynamic_cast<LinearImpl*>(item.value().get());
    if (linear && linear->lora_A.defined()) out.emplace_back(item.key(), linear);
  }
  return out;
}

void LinearImpl::add_lora(int64_t r, double scaling, double dropout, at::Generator& gen) {
  const auto dtype = at::promote_types(weight.scalar_type(), torch::kFloat32);
  const int64_t in = weight.size(1), out = weight.size(0);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  torch::Tensor a = at::empty({r, in}, torch::kFloat64).uniform_(-bound, bound, gen);
  lora_A = register_parameter("lora_A", a.to(weight.device(), dtype));
  lora_B = register_parameter("lora_B", torch::zeros({out, r}, weight.options().dtype(dtype)));
  lora_scaling = scaling;
  lora_dropout = dropout;
}

torch::Tensor LinearImpl::merged_weight() const {
  if (!lora_A.defined()) return weight;
  torch::NoGradGuard no_grad;
  const auto wide = at::promote_types(weight.scalar_type(), torch::kFloat32);
  return (weight.to(wide) + lora_scaling * lora_B.to(wide).mm(lora_A.to(wide)))
      .to(weight.scalar_type());
}

}  // namespace model

void CausalLMImpl::add_lora(const LoraSpec& spec, uint64_t seed,
                            std::optional<torch::ScalarType> base_dtype) {
  if (lora_) fail("LoRA", "this model already has adapters");
  if (spec.r <= 0) fail("lora_r", "must be > 0, got " + std::to_string(spec.r));
  const std::vector<std::string> names = lora_target_names(args_, spec.target_modules);
  for (auto& p : parameters()) p.set_requires_grad(false);
  auto gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard no_grad;
  // named_modules() is in registration order: the same draw on every run.
  for (const auto& item : named_modules()) {
    auto* linear = dynamic_cast<model::LinearImpl*>(item.value().get());
    if (!linear || item.key().rfind("model.layers.", 0) != 0) continue;
    // Every frozen projection, adapted or not. set_data keeps the registered parameter (the same
    // tensor) and changes its storage.
    if (base_dtype && *base_dtype != linear->weight.scalar_type())
      linear->weight.set_data(linear->weight.to(*base_dtype));
    if (std::find(names.begin(), names.end(), leaf(item.key())) != names.end())
      linear->add_lora(spec.r, spec.scaling(), spec.dropout, gen);
  }
  lora_ = spec;
  lora_->target_modules = names;
}

void save_lora_adapter(CausalLM& model, const std::string& dir, const std::string& base_model) {
  const LoraSpec* spec = model->lora();
  if (!spec) fail(dir, "cannot save adapters: the model has no LoRA adapters");
  make_dirs(dir);
  NamedTensors tensors;
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, linear] : model::adapted_linears(*model)) {
      tensors.emplace_back(kPeftPrefix + name + ".lora_A.weight",
                           linear->lora_A.detach().to(torch::kCPU, torch::kFloat32).contiguous());
      tensors.emplace_back(kPeftPrefix + name + ".lora_B.weight",
                           linear->lora_B.detach().to(torch::kCPU, torch::kFloat32).contiguous());
    }
  }
  save_safetensors(path_join(dir, kAdapterWeights), tensors, {{"format", "pt"}});
  // The fields PEFT's LoraConfig writes, with the values of plain LoRA.
  nlohmann::json c = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", base_model},
      {"r", spec->r},
      {"lora_alpha", spec->alpha},
      {"lora_dropout", spec->dropout},
      {"target_modules", spec->target_modules},
      {"use_rslora", spec->rslora},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"use_dora", false},
      {"modules_to_save", nullptr},
      {"layers_to_transform", nullptr},
      {"layers_pattern", nullptr},
      {"rank_pattern", nlohmann::json::object()},
      {"alpha_pattern", nlohmann::json::object()},
      {"revision", nullptr},
  };
  if (spec->alpha == std::floor(spec->alpha)) c["lora_alpha"] = static_cast<int64_t>(spec->alpha);
  write_file_atomic(path_join(dir, kAdapterConfig), c.dump(2) + "\n");
}

void load_lora_adapter(CausalLM& model, const std::string& dir) {
  const LoraSpec* spec = model->lora();
  const std::string config_path = path_join(dir, kAdapterConfig);
  if (!spec)
    fail(dir, "holds LoRA adapters (" + std::string(kAdapterConfig) + ") but the model has none",
         "train with use_peft: true and the LoRA keys of the run that wrote it");
  if (!file_exists(config_path)) fail(config_path, "missing: not a LoRA adapter directory");
  nlohmann::json c;
  try {
    c = nlohmann::json::parse(read_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    fail(config_path, std::string("not valid JSON: ") + e.what());
  }
  auto mismatch = [&](const std::string& key, const std::string& theirs, const std::string& ours) {
    fail(config_path, key + " is " + theirs + ", this run's adapters have " + ours,
         "use the LoRA keys of the run that wrote these adapters");
  };
  if (c.value("peft_type", std::string()) != "LORA")
    fail(config_path, "peft_type is not LORA: treg reads LoRA adapters only");
  const int64_t r = c.value("r", int64_t{-1});
  if (r != spec->r) mismatch("r", std::to_string(r), std::to_string(spec->r));
  LoraSpec theirs = *spec;
  theirs.alpha = c.value("lora_alpha", -1.0);
  theirs.rslora = c.value("use_rslora", false);
  if (std::abs(theirs.scaling() - spec->scaling()) > 1e-12 * spec->scaling())
    mismatch("the scaling (lora_alpha, use_rslora)", std::to_string(theirs.scaling()),
             std::to_string(spec->scaling()));
  std::vector<std::string> targets;
  if (c.contains("target_modules") && c["target_modules"].is_array())
    targets = c["target_modules"].get<std::vector<std::string>>();
  else if (c.contains("target_modules") && c["target_modules"].is_string())
    targets = {c["target_modules"].get<std::string>()};
  targets = lora_target_names(model->args(), targets);
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
  };
  if (targets != spec->target_modules)
    mismatch("target_modules", join(targets), join(spec->target_modules));

  const std::string weights = path_join(dir, kAdapterWeights);
  if (!file_exists(weights)) fail(weights, "missing: the adapter directory is incomplete");
  SafetensorsFile file(weights);
  const auto linears = model::adapted_linears(*model);
  std::set<std::string> expected;
  torch::NoGradGuard no_grad;
  for (const auto& [name, linear] : linears) {
    for (torch::Tensor* t : {&linear->lora_A, &linear->lora_B}) {
      const std::string key =
          kPeftPrefix + name + (t == &linear->lora_A ? ".lora_A.weight" : ".lora_B.weight");
      expected.insert(key);
      if (!file.contains(key)) fail(weights, "has no tensor '" + key + "'");
      if (file.entry(key).shape != t->sizes().vec())
        fail(weights, "'" + key + "' has shape " +
                          c10::str(c10::IntArrayRef(file.entry(key).shape)) +
                          ", the model's adapter " + c10::str(t->sizes()));
      t->copy_(file.load(key, t->options()));
    }
  }
  for (const auto& [key, entry] : file.entries())
    if (!expected.count(key))
      fail(weights, "has a tensor '" + key + "' the model has no adapter for",
           "use the LoRA keys of the run that wrote these adapters");
}

}  // namespace treg
