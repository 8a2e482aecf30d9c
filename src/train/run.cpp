// run_training: what `treg train` does around the Trainer — the output_dir check, reward dumps
// (scored when missing), then the policy, then the loop.
#include <spdlog/spdlog.h>

#include "treg/data_sources.h"
#include "treg/distributed.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/losses.h"
#include "treg/reward_dump.h"
#include "treg/runtime.h"
#include "treg/trainer.h"

namespace treg {

CausalLM load_policy(const Config& config, torch::Device device) {
  if (!config.use_peft) return load_model(config.model_name_or_path, device, torch::kFloat32);
  // LoRA: the base is read and its projections cast to bf16 on the host, so the device never holds
  // the fp32 copy of the whole model (32 GB for an 8B one).
  CausalLM policy = load_model(config.model_name_or_path, torch::kCPU, torch::kFloat32);
  LoraSpec spec;
  spec.r = config.lora_r;
  spec.alpha = config.lora_alpha;
  spec.dropout = config.lora_dropout;
  spec.rslora = config.use_rslora;
  spec.target_modules = config.lora_target_modules;
  policy->add_lora(spec, static_cast<uint64_t>(config.seed),
                   config.bf16 ? std::optional<torch::ScalarType>(torch::kBFloat16) : std::nullopt);
  int64_t trainable = 0, all = 0;
  for (const auto& p : policy->parameters()) {
    all += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  policy->to(device);
  std::string targets;
  for (const auto& t : policy->lora()->target_modules) targets += (targets.empty() ? "" : ",") + t;
  spdlog::info("LoRA r {} alpha {} on {}: trainable params {} of {} ({:.4f}%), base frozen{}",
               spec.r, spec.alpha, targets, trainable, all,
               100.0 * static_cast<double>(trainable) / static_cast<double>(all),
               config.bf16 ? " (projections in bf16)" : "");
  return policy;
}

TrainResult run_training(const Config& launched, const std::string& config_args) {
  const LaunchEnv launch = launch_env_from_environment();
  const torch::Device device =
      rank_device(parse_device(launched.device, "config key 'device'"), launch);
  apply_tf32(launched.tf32, device);
  std::shared_ptr<Ranks> ranks = connect_ranks(launch, std::chrono::seconds(launched.ddp_timeout),
                                               launched.ddp_backend, device);
  Config config = launched;
  config.world_size = ranks->world_size();
  if (!ranks->is_main()) spdlog::set_level(spdlog::level::warn);  // rank 0 speaks for the run
  const std::string train_dump = config.reward_dump_path();
  const std::string eval_dump = config.eval_reward_dump_path();
  const bool with_eval = has_eval_split(config);
  if (ranks->is_main()) {
    // Trainer::train checks again; this first check refuses a used output_dir before hours of
    // scoring or minutes of loading a policy.
    make_dirs(config.output_dir);
    prepare_output_dir(config);
    if (!file_exists(train_dump) || (with_eval && !file_exists(eval_dump)))
      spdlog::info("train: no reward dump at {}; scoring the token rewards first (score-tokens)",
                   train_dump);
  }
  // Reuses matching dumps, scores missing ones (every rank its share), refuses stale ones.
  ensure_reward_dumps(config, config_args, ranks);

  const std::string dev = device.str();

  auto train = open_dump_source(train_dump);
  std::shared_ptr<PairSource> eval;
  if (with_eval) eval = open_dump_source(eval_dump);
  const LossConfig loss = LossConfig::from_config(config);
  spdlog::info("train: policy {} on {} (fp32 master weights{}), loss {} β={} α={}{}",
               config.model_name_or_path, dev, config.bf16 ? ", bf16 autocast forward" : "",
               loss_type_name(loss.type), loss.beta, loss.treg_alpha,
               loss.treg_alpha > 0 ? " (" + config.treg_weighting + " weighting)" : std::string());
  CausalLM policy = load_policy(config, device);
  Trainer trainer(config, policy, train, eval, {}, ranks);
  return trainer.train();
}

}  // namespace treg
