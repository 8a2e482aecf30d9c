// treg plan: memory per GPU by part for a training config, before any GPU time is spent.
#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "treg/config.h"
#include "treg/error.h"
#include "treg/memory_plan.h"

namespace treg::cli {

namespace {
struct PlanOptions {
  std::string config = "configs/tiny.yaml";
  std::vector<std::string> overrides;
  std::string model_config;  // "" = <model_name_or_path>/config.json
  std::string lora_targets;  // comma-separated; "" = the config's (use_peft) or all-linear
  PlanSetup setup;
};

}  // namespace

void add_plan_command(CLI::App& app) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* sub = app.add_subcommand(
      "plan",
      "Memory per GPU of a training config by part (weights, gradients, optimizer, activations), "
      "and whether it fits; exit code 3 when it does not");
  sub->add_option("--config", o->config, "YAML training config")->capture_default_str();
  sub->add_option("overrides", o->overrides,
                  "key=value overrides, e.g. per_device_train_batch_size=1");
  sub->add_option("--model-config", o->model_config,
                  "a model's config.json (default: <model_name_or_path>/config.json); "
                  "configs/models/ has Llama-3-8B-Instruct's and Gemma-2-9B-it's");
  sub->add_option("--world-size", o->setup.world_size, "GPUs (ranks)")->capture_default_str();
  sub->add_option("--gpu-memory", o->setup.gpu_memory_gib, "GiB per GPU")->capture_default_str();
  CLI::Option* zero = sub->add_option("--zero", o->setup.zero_stage,
                                      "0: every rank holds everything; 1: the optimizer state "
                                      "sharded (zero_stage: 1); 2: gradients too (zero_stage: 2); "
                                      "3: weights too (planned, not built) (default: the config's "
                                      "zero_stage)");
  CLI::Option* lora_r = sub->add_option(
      "--lora-r", o->setup.lora_r,
      "LoRA rank; 0 = full fine-tuning (default: the config's lora_r with use_peft)");
  sub->add_option("--lora-target-modules", o->lora_targets,
                  "projections (comma-separated), or all-linear (default: the config's "
                  "lora_target_modules with use_peft, else all-linear)");
  sub->add_option("--device", o->setup.device, "cuda | cpu")->capture_default_str();
  set_action(sub, [o, lora_r, zero] {
    Config config = load_config(o->config, o->overrides);
    const std::string model = o->model_config.empty() ? config.model_name_or_path : o->model_config;
    ModelArgs args;
    try {
      args = load_model_args(model);
    } catch (const Error& e) {
      fail(o->config, std::string("no model config to plan with: ") + e.what(),
           "pass --model-config PATH/config.json (only config.json is read, no weights)");
    }
    if (lora_r->count() == 0 && config.use_peft) o->setup.lora_r = config.lora_r;
    if (zero->count() == 0) o->setup.zero_stage = static_cast<int>(config.zero_stage);
    o->setup.lora_target_modules.clear();
    std::stringstream names(o->lora_targets);
    for (std::string name; std::getline(names, name, ',');)
      if (!name.empty()) o->setup.lora_target_modules.push_back(name);
    if (o->lora_targets.empty())
      o->setup.lora_target_modules =
          config.use_peft ? config.lora_target_modules : std::vector<std::string>{"all-linear"};
    const MemoryPlan plan = plan_memory(args, config, o->setup);
    std::fputs(format_plan(plan, args, config, o->setup).c_str(), stdout);
    return plan.fits ? 0 : 3;
  });
}

}  // namespace treg::cli
