// Every config key, once: treg's settings (a Config field each), other trainers' names for them,
// the Hugging Face keys accepted only with the value treg follows anyway, and those accepted
// without effect. Readers and writers of the settings are generated from the Config member, so the
// key's name is the field's name.
#include "config/keys.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <type_traits>

#include "treg/error.h"
#include "treg/nearest.h"

namespace treg::config_keys_detail {
namespace {

[[noreturn]] void bad_value(const std::string& key, const std::string& where,
                            const std::string& expected, const YAML::Node& value) {
  std::string got = value.IsSequence() ? "a list"
                    : value.IsMap()    ? "a mapping"
                    : value.IsNull()   ? "null"
                                       : "'" + value.as<std::string>() + "'";
  fail(where, "key '" + key + "' must be " + expected + ", got " + got);
}

template <class T>
constexpr const char* type_name() {
  if constexpr (std::is_same_v<T, std::string>)
    return "string";
  else if constexpr (std::is_same_v<T, int64_t>)
    return "integer";
  else if constexpr (std::is_same_v<T, double>)
    return "number";
  else
    return "bool";
}

template <class T>
const char* expected_of() {
  if constexpr (std::is_same_v<T, std::string>)
    return "a string";
  else if constexpr (std::is_same_v<T, int64_t>)
    return "an integer";
  else if constexpr (std::is_same_v<T, double>)
    return "a number";
  else
    return "true or false";
}

// One YAML scalar as T. Integers may be written 1e3 but not 2.5; a string may be null (= "").
template <class T>
T scalar_as(const YAML::Node& v, const std::string& key, const std::string& where) {
  if (v.IsNull() && std::is_same_v<T, std::string>) return T();
  if (!v.IsScalar()) bad_value(key, where, expected_of<T>(), v);
  try {
    if constexpr (std::is_same_v<T, int64_t>) {
      const double d = v.as<double>();
      // Outside [-2^63, 2^63) the cast to int64 would be undefined behaviour (found by fuzzing).
      if (!std::isfinite(d) || d != std::floor(d) || d < -0x1p63 || d >= 0x1p63)
        bad_value(key, where, expected_of<T>(), v);
      return static_cast<int64_t>(d);
    } else if constexpr (std::is_same_v<T, double>) {
      // YAML reads .inf and .nan as numbers; every treg number is a finite setting, and an
      // infinite beta would only fail at the first step.
      const double d = v.as<double>();
      if (!std::isfinite(d)) bad_value(key, where, "a finite number", v);
      return d;
    } else {
      return v.as<T>();
    }
  } catch (const YAML::BadConversion&) {
    bad_value(key, where, expected_of<T>(), v);
  }
}

std::string yaml_string(const std::string& s) {
  YAML::Emitter e;
  e << YAML::DoubleQuoted << s;
  return e.c_str();
}

// The shortest decimal that reads back as exactly `v` (0.1, not 0.10000000000000001).
std::string yaml_double(double v) {
  std::string s;
  for (int precision = 15; precision <= 17; ++precision) {
    std::ostringstream ss;
    ss.precision(precision);
    ss << v;
    s = ss.str();
    if (std::strtod(s.c_str(), nullptr) == v) break;
  }
  // Keep it a float in YAML so it reads back as a number of the same type.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

template <class T>
std::string yaml_value(const T& v) {
  if constexpr (std::is_same_v<T, std::string>)
    return yaml_string(v);
  else if constexpr (std::is_same_v<T, double>)
    return yaml_double(v);
  else if constexpr (std::is_same_v<T, bool>)
    return v ? "true" : "false";
  else
    return std::to_string(v);
}

template <auto M>
void read_field(Config& c, const YAML::Node& v, const std::string& key, const std::string& where) {
  using T = std::remove_cvref_t<decltype(c.*M)>;
  c.*M = scalar_as<T>(v, key, where);
}

template <auto M>
std::string write_field(const Config& c) {
  return yaml_value(c.*M);
}

template <auto M>
constexpr const char* field_type() {
  return type_name<std::remove_cvref_t<decltype(std::declval<Config>().*M)>>();
}

// A Config field whose key is the field's name.
// clang-format off
#define TREG_SETTING(field, meaning)                                                             \
  KeySpec{#field, KeyRole::kSetting, field_type<&Config::field>(), meaning,                     \
          &read_field<&Config::field>, &write_field<&Config::field>}
// clang-format on

// ---- the structured settings: dataset_mixer, dataset_splits, dataset_mixture ----

std::vector<std::string> string_list(const YAML::Node& v, const std::string& key,
                                     const std::string& where) {
  if (v.IsScalar()) return {v.as<std::string>()};
  if (!v.IsSequence()) bad_value(key, where, "a list of strings", v);
  std::vector<std::string> out;
  for (const auto& item : v) out.push_back(scalar_as<std::string>(item, key, where));
  return out;
}

std::string yaml_list(const std::vector<std::string>& items) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + yaml_string(items[i]);
  return s + "]";
}

void read_mixer(Config& c, const YAML::Node& v, const std::string& key, const std::string& where) {
  c.dataset_mixer.clear();
  if (v.IsNull()) return;
  if (!v.IsMap()) bad_value(key, where, "a mapping of JSONL path: fraction", v);
  for (const auto& kv : v) {
    const std::string path = kv.first.as<std::string>();
    c.dataset_mixer.emplace_back(path,
                                 scalar_as<double>(kv.second, key + "['" + path + "']", where));
  }
}

std::string write_mixer(const Config& c) {
  if (c.dataset_mixer.empty()) return "null";
  std::string s = "{";
  for (size_t i = 0; i < c.dataset_mixer.size(); ++i)
    s += (i ? ", " : "") + yaml_string(c.dataset_mixer[i].first) + ": " +
         yaml_double(c.dataset_mixer[i].second);
  return s + "}";
}

void read_lora_targets(Config& c, const YAML::Node& v, const std::string& key,
                       const std::string& where) {
  c.lora_target_modules = v.IsNull() ? std::vector<std::string>() : string_list(v, key, where);
}

std::string write_lora_targets(const Config& c) {
  return c.lora_target_modules.empty() ? "null" : yaml_list(c.lora_target_modules);
}

void read_splits(Config& c, const YAML::Node& v, const std::string& key, const std::string& where) {
  c.dataset_splits = v.IsNull() ? Config().dataset_splits : string_list(v, key, where);
}

std::string write_splits(const Config& c) { return yaml_list(c.dataset_splits); }

// Sub-keys of a mapping must be among `known`: a typo in a nested key is as much an error as a
// typo at the top level.
void check_subkeys(const YAML::Node& map, std::initializer_list<const char*> known,
                   const std::string& key, const std::string& where) {
  for (const auto& kv : map) {
    const std::string k = kv.first.as<std::string>();
    if (std::none_of(known.begin(), known.end(), [&](const char* n) { return k == n; })) {
      std::string list;
      for (const char* n : known) list += (list.empty() ? "" : ", ") + std::string(n);
      fail(where, "key '" + key + "' has an unknown entry '" + k + "'", "its entries are: " + list);
    }
  }
}

void read_mixture(Config& c, const YAML::Node& v, const std::string& key,
                  const std::string& where) {
  c.dataset_mixture = DatasetMixture();
  if (v.IsNull()) return;
  if (!v.IsMap() || !v["datasets"]) bad_value(key, where, "a mapping with a 'datasets' list", v);
  check_subkeys(v, {"datasets", "seed", "test_split_size"}, key, where);
  const YAML::Node list = v["datasets"];
  if (!list.IsSequence())
    bad_value(key + ".datasets", where, "a list of {id, split, weight, ...}", list);
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node d = list[i];
    const std::string k = key + ".datasets[" + std::to_string(i) + "]";
    if (!d.IsMap() || !d["id"]) bad_value(k, where, "a mapping with an 'id'", d);
    check_subkeys(d, {"id", "config", "split", "columns", "weight"}, k, where);
    MixtureDataset m;
    m.id = scalar_as<std::string>(d["id"], k + ".id", where);
    if (d["config"]) m.config = scalar_as<std::string>(d["config"], k + ".config", where);
    if (d["split"]) m.split = scalar_as<std::string>(d["split"], k + ".split", where);
    if (d["columns"] && !d["columns"].IsNull())
      m.columns = string_list(d["columns"], k + ".columns", where);
    // The handbook treats a null weight as "take every row".
    if (d["weight"] && !d["weight"].IsNull())
      m.weight = scalar_as<double>(d["weight"], k + ".weight", where);
    c.dataset_mixture.datasets.push_back(m);
  }
  if (v["seed"]) c.dataset_mixture.seed = scalar_as<int64_t>(v["seed"], key + ".seed", where);
  if (v["test_split_size"] && !v["test_split_size"].IsNull())
    c.dataset_mixture.test_split_size =
        scalar_as<double>(v["test_split_size"], key + ".test_split_size", where);
}

std::string write_mixture(const Config& c) {
  const DatasetMixture& m = c.dataset_mixture;
  if (m.datasets.empty()) return "null";
  std::string s = "{datasets: [";
  for (size_t i = 0; i < m.datasets.size(); ++i) {
    const MixtureDataset& d = m.datasets[i];
    s += std::string(i ? ", " : "") + "{id: " + yaml_string(d.id) +
         ", config: " + yaml_string(d.config) + ", split: " + yaml_string(d.split) +
         ", columns: " + yaml_list(d.columns) + ", weight: " + yaml_double(d.weight) + "}";
  }
  return s + "], seed: " + std::to_string(m.seed) +
         ", test_split_size: " + yaml_double(m.test_split_size) + "}";
}

// ---- aliases: another trainer's name, stored into the treg setting ----

// A null alias (TRL's rpo_alpha: None) leaves the setting alone.
void read_alias(Config& c, const YAML::Node& v, const std::string& key, const std::string& where) {
  if (v.IsNull()) return;
  const KeySpec* target = find_key(find_key(key)->target);
  target->read(c, v, key, where);
}

KeySpec alias(const char* name, const char* target, const char* meaning) {
  return {name, KeyRole::kAlias, "(alias)", meaning, &read_alias, nullptr, target};
}
KeySpec guard(const char* name, const char* accepted, const char* meaning) {
  return {name, KeyRole::kGuard, "any", meaning, nullptr, nullptr, nullptr, accepted};
}
KeySpec ignored(const char* name, const char* meaning) {
  return {name, KeyRole::kIgnored, "any", meaning};
}

}  // namespace

// One key per line, so the table reads as `treg config-keys` prints it.
// clang-format off
const std::vector<KeySpec>& key_specs() {
  static const std::vector<KeySpec> specs = {
      // ---- model and data ----
      TREG_SETTING(model_name_or_path, "local Hugging Face model directory (config.json, safetensors, tokenizer); required"),
      TREG_SETTING(train_file, "JSONL preference pairs (prompt, chosen, rejected); or use dataset_mixer / dataset_mixture"),
      TREG_SETTING(eval_file, "JSONL held-out pairs; empty = no eval unless a mixture has a test split"),
      {"dataset_mixer", KeyRole::kSetting, "mapping", "handbook <= 0.4: {path: fraction}; a .jsonl file gives its first fraction of rows to train, a directory its <split>.jsonl per dataset_splits", &read_mixer, &write_mixer},
      {"dataset_splits", KeyRole::kSetting, "list", "dataset_mixer: splits read from a directory; names with 'train' are subsampled, with 'test' become the eval set", &read_splits, &write_splits},
      {"dataset_mixture", KeyRole::kSetting, "mapping", "handbook: {datasets: [{id, split, weight, ...}], seed, test_split_size}; id = local .jsonl or directory of <split>.jsonl", &read_mixture, &write_mixture},
      TREG_SETTING(chat_template, "\"\" = the model's own template; a built-in name (llama3, gemma, chatml, mistral, zephyr) or a Jinja template string"),
      TREG_SETTING(max_length, "prompt + longer response, in tokens; longer pairs are truncated as SimPO/TRL do"),
      TREG_SETTING(max_prompt_length, "a prompt of an over-long pair keeps its last this-many tokens (and its BOS)"),
      TREG_SETTING(pair_tokenization, "whose pipeline turns a row into prompt/chosen/rejected ids: trl (TRL's DPOTrainer: prompt with generation prompt, response = the rest of the conversation) | simpo (SimPO's run_simpo.py, the T-REG paper's: response = the answer rendered alone, assistant header included; BOS and EOS added where missing)"),
      TREG_SETTING(max_completion_length, "TRL: each response keeps its first this-many tokens; 0 = no limit"),
      TREG_SETTING(skip_bad_rows, "skip (and report) malformed rows instead of stopping at the first"),
      TREG_SETTING(packing, "sft: several sequences per row of max_length tokens (TRL's packing), each attending only to itself; train: each pair as one tree [prompt | chosen | rejected] (prompt computed once, rejected does not see chosen), several pairs per row; log-probs equal the padded layout's"),
      TREG_SETTING(output_dir, "where checkpoints, metrics.jsonl, report.html, reward dumps and mixture files go"),
      TREG_SETTING(overwrite_output_dir, "train: start over in an output_dir holding an earlier run (its checkpoints, config.yaml, metrics.jsonl are removed); false = refuse it unless resume_from_checkpoint is set"),
      TREG_SETTING(device, "auto | cpu | cuda"),
      TREG_SETTING(bf16, "fp32 weights, every forward (scoring and training) under bf16 autocast, CUDA or CPU: what HF's bf16=True does"),
      TREG_SETTING(tf32, "CUDA, Ampere and later: the fp32 matmuls (all of them without bf16, those autocast leaves in fp32 with it) in TF32, as HF's tf32=True; false = full fp32, LibTorch's default; no effect on the CPU"),
      // ---- token rewards (paper §3.3) ----
      TREG_SETTING(reward_dump, "token-reward dump of the train split; \"\" = <output_dir>/token_rewards.bin"),
      TREG_SETTING(reward_source, "prompt (contrastive revision prompts, paper §3.3) | dpo (a DPO model's log-ratio)"),
      TREG_SETTING(dpo_model, "reward_source dpo: the DPO-trained model directory"),
      TREG_SETTING(revision_prompt, "revision prompt template; \"\" = configs/prompts/revision.txt (paper Figure 2)"),
      TREG_SETTING(better_description, "{detailed_description} of the 'better' revision prompt"),
      TREG_SETTING(worse_description, "{detailed_description} of the 'worse' revision prompt"),
      TREG_SETTING(assistant_prefix, "text the revision prompts put before the scored answer"),
      TREG_SETTING(score_batch_size, "pairs per forward when scoring token rewards"),
      // ---- preference loss and T-REG ----
      TREG_SETTING(loss_type, "sigmoid (DPO) | ipo | hinge | robust | simpo; unset in a SimPO recipe = simpo"),
      TREG_SETTING(beta, "β: DPO's KL strength, SimPO's reward scale (also scales the T-REG term)"),
      TREG_SETTING(label_smoothing, "ε of cDPO / rDPO / SimPO, in [0, 0.5)"),
      TREG_SETTING(gamma_beta_ratio, "SimPO's target margin γ/β"),
      TREG_SETTING(treg_alpha, "α of T-REG (paper Eq. 2); 0 turns the token regulariser off"),
      TREG_SETTING(treg_weighting, "sequence (paper's w) | static (w = 1, Table 2 ablation)"),
      TREG_SETTING(sft_alpha, "weight of the length-normalised NLL of y_w (DPO-SFT; SimPO's sft_weight, TRL's rpo_alpha)"),
      TREG_SETTING(use_weighting, "WPO: weight each pair by its detached policy probability (TRL's use_weighting)"),
      // ---- optimisation ----
      TREG_SETTING(learning_rate, "peak AdamW learning rate"),
      TREG_SETTING(lr_scheduler_type, "cosine | linear | constant | constant_with_warmup (transformers' schedules)"),
      TREG_SETTING(warmup_ratio, "linear warmup over ceil(ratio × total steps)"),
      TREG_SETTING(warmup_steps, "> 0 overrides warmup_ratio (as HF): >= 1 a step count, < 1 a fraction (transformers 5)"),
      TREG_SETTING(weight_decay, "AdamW weight decay (not on biases and norms, as HF)"),
      TREG_SETTING(adam_beta1, "AdamW β1"),
      TREG_SETTING(adam_beta2, "AdamW β2"),
      TREG_SETTING(adam_epsilon, "AdamW ε"),
      TREG_SETTING(max_grad_norm, "gradient clipping norm; 0 = no clipping"),
      TREG_SETTING(num_train_epochs, "epochs over the train pairs (fractions allowed)"),
      TREG_SETTING(max_steps, "> 0: this many optimizer steps, overriding num_train_epochs"),
      TREG_SETTING(per_device_train_batch_size, "pairs per micro-batch of one rank (the global batch multiplies it by gradient_accumulation_steps and WORLD_SIZE, as HF)"),
      TREG_SETTING(per_device_eval_batch_size, "pairs per eval forward"),
      TREG_SETTING(gradient_accumulation_steps, "micro-batches per optimizer step"),
      TREG_SETTING(gradient_checkpointing, "recompute layer activations in backward (less memory, same gradients)"),
      TREG_SETTING(seed, "data order and mixture subsampling seed"),
      // ---- LoRA ----
      TREG_SETTING(use_peft, "LoRA: train adapters B·A on lora_target_modules, base weights frozen (bf16 with bf16: true); checkpoints hold the adapters in PEFT's layout, the final one also merged/"),
      TREG_SETTING(lora_r, "LoRA rank r"),
      TREG_SETTING(lora_alpha, "LoRA alpha: the update is (alpha / r) · B·A"),
      TREG_SETTING(lora_dropout, "dropout on the adapters' input while training"),
      {"lora_target_modules", KeyRole::kSetting, "list", "projections that get adapters (q_proj, v_proj, ... or all-linear); null = PEFT's default for the model type", &read_lora_targets, &write_lora_targets},
      TREG_SETTING(use_rslora, "rank-stabilised LoRA: scaling alpha / sqrt(r)"),
      // ---- logging, evaluation, checkpoints ----
      TREG_SETTING(logging_steps, "log train metrics every this many steps"),
      TREG_SETTING(eval_strategy, "steps (every eval_steps) | epoch | no (no eval at all, the eval split is not scored)"),
      TREG_SETTING(eval_steps, "eval_strategy steps: eval every this many steps; 0 = only at the end"),
      TREG_SETTING(save_strategy, "steps (every save_steps) | epoch | no (only the final checkpoint)"),
      TREG_SETTING(save_steps, "save_strategy steps: checkpoint every this many steps; 0 = only at the end"),
      TREG_SETTING(save_total_limit, "keep the newest this-many checkpoints; 0 = keep all"),
      TREG_SETTING(save_dtype, "dtype of a checkpoint's HF model: \"\" = float32 (a LoRA run's merged export: the base's dtype) | float32 | bfloat16 (half the size; fp32 master weights kept beside it for resuming)"),
      TREG_SETTING(resume_from_checkpoint, "\"\" | auto (newest in output_dir) | a checkpoint directory"),
      TREG_SETTING(report_pairs, "eval pairs whose token rewards report.html draws"),
      TREG_SETTING(zero_stage, "several ranks: 0 = every rank holds the AdamW state of every parameter | 1 = each holds that of its share (ZeRO-1: buckets of whole tensors dealt out; the owner updates, then broadcasts) | 2 = the gradients too (ZeRO-2: each bucket reduced to its owner during the backward; with bf16 the layers' projections become bf16 replicas and their fp32 master weights are sharded too, as DeepSpeed's bf16 mode)"),
      TREG_SETTING(ddp_bucket_cap_mb, "several ranks with zero_stage 1|2: MiB of gradients/weights per bucket (HF's key; 25)"),
      TREG_SETTING(ddp_backend, "several ranks (torchrun): \"\" = nccl for CUDA ranks (a CUDA LibTorch), else gloo | nccl | gloo (HF's key; naming one also gives a 1-process torchrun run its process group)"),
      TREG_SETTING(ddp_timeout, "several ranks (torchrun): seconds a collective waits for the others before the run stops with an error (HF's key; 1800)"),

      // ---- other trainers' names for treg settings ----
      alias("sft_weight", "sft_alpha", "SimPO's SFT weight; in a recipe without loss_type it also selects simpo"),
      alias("rpo_alpha", "sft_alpha", "TRL's RPO NLL weight (null = off)"),
      alias("evaluation_strategy", "eval_strategy", "the older HF name of eval_strategy"),
      alias("max_seq_length", "max_length", "TRL's older SFTConfig name of max_length"),

      // ---- Hugging Face keys accepted only with the value treg follows ----
      guard("use_dora", "false", "DoRA adapters; treg's adapters are plain LoRA"),
      guard("lora_modules_to_save", "null", "fully trained modules beside the adapters; treg trains adapters only"),
      guard("lora_task_type", "CAUSAL_LM", "PEFT task type; treg trains causal LMs"),
      guard("load_in_4bit", "false", "quantised (QLoRA) training; treg keeps the frozen base in bf16 or fp32"),
      guard("load_in_8bit", "false", "quantised training; treg trains fp32 master weights"),
      guard("fp16", "false", "fp16 mixed precision; treg has fp32 and bf16 autocast (bf16: true)"),
      guard("optim", "adamw_torch|adamw_torch_fused|adamw_hf|adamw_apex_fused", "the optimizer; treg has AdamW only"),
      guard("lr_scheduler_kwargs", "null", "scheduler arguments; treg's schedules take none (cosine_with_min_lr is not there)"),
      guard("reference_free", "false", "DPO without a reference; treg's reference-free loss is loss_type: simpo"),
      guard("sync_ref_model", "false", "TR-DPO's moving reference; treg's reference is fixed (the reward dump)"),
      guard("ld_alpha", "null", "LD-DPO length weighting; not in treg"),
      guard("loss_weights", "null", "TRL's weighted mixture of several losses; treg trains one loss_type"),
      guard("f_divergence_type", "reverse_kl", "TRL's f-DPO divergences; treg's DPO is the reverse-KL one"),
      guard("completion_only_loss", "true|null", "sft: the loss is on completion tokens only, as TRL's default for prompt-completion data"),
      guard("truncation_mode", "keep_end", "how over-long prompts are cut; treg keeps the prompt's end as SimPO/TRL's keep_end"),

      // ---- Hugging Face keys that do not change what is trained ----
      ignored("dataset_text_field", "sft: treg reads prompt/completion or messages rows, not a text column"),
      ignored("dataset_num_proc", "tokenisation worker count; treg tokenises in one process, same rows"),
      ignored("preprocessing_num_workers", "tokenisation worker count; treg tokenises in one process, same rows"),
      ignored("dataset_configs", "Hub config names; local files have none"),
      ignored("torch_dtype", "the dtype HF loads weights in; treg keeps fp32 master weights (bf16: true autocasts)"),
      ignored("attn_implementation", "attention kernel; treg picks its own, the result is the same attention"),
      ignored("use_flash_attention_2", "attention kernel; treg picks its own"),
      ignored("gradient_checkpointing_kwargs", "use_reentrant and friends; gradients are the same"),
      ignored("precompute_ref_log_probs", "treg always precomputes them (into the reward dump)"),
      ignored("padding_free", "a speed option; the loss is the same"),
      ignored("use_liger_kernel", "a speed option; the loss is the same"),
      ignored("use_logits_to_keep", "a speed option; the loss is the same"),
      ignored("label_pad_token_id", "treg masks padding itself"),
      ignored("padding_value", "treg masks padding itself"),
      ignored("disable_dropout", "treg's decoders have no dropout"),
      ignored("max_target_length", "encoder-decoder models only"),
      ignored("is_encoder_decoder", "treg trains decoder-only models"),
      ignored("generate_during_eval", "sampling at eval time; treg does not generate"),
      ignored("model_init_kwargs", "from_pretrained arguments; treg loads the directory as it is"),
      ignored("ref_model_init_kwargs", "from_pretrained arguments; the reference is the reward dump"),
      ignored("model_revision", "Hub revision; model_name_or_path is a local directory"),
      ignored("trust_remote_code", "treg runs no model code from the Hub"),
      ignored("do_train", "treg train always trains"),
      ignored("do_eval", "eval_strategy decides whether treg evaluates"),
      ignored("logging_strategy", "treg logs every logging_steps"),
      ignored("logging_first_step", "treg logs every logging_steps"),
      ignored("logging_dir", "metrics go to <output_dir>/metrics.jsonl"),
      ignored("log_level", "treg logs at info"),
      ignored("report_to", "metrics go to <output_dir>/metrics.jsonl and report.html"),
      ignored("run_name", "a tracker's run name"),
      ignored("wandb_entity", "Weights & Biases; not used"),
      ignored("wandb_project", "Weights & Biases; not used"),
      ignored("wandb_run_group", "Weights & Biases; not used"),
      ignored("wandb_tags", "Weights & Biases; not used"),
      ignored("push_to_hub", "treg never uploads"),
      ignored("hub_model_id", "treg never uploads"),
      ignored("hub_strategy", "treg never uploads"),
      ignored("hub_private_repo", "treg never uploads"),
      ignored("hub_model_revision", "treg never uploads"),
      ignored("push_to_hub_revision", "treg never uploads"),
      ignored("save_only_model", "treg checkpoints always hold the optimizer state (for resume)"),
      ignored("save_safetensors", "treg always saves safetensors"),
      ignored("remove_unused_columns", "treg reads prompt/chosen/rejected and ignores other columns"),
      ignored("dataloader_num_workers", "data loading workers; same batches"),
      ignored("dataloader_pin_memory", "data loading option; same batches"),
      ignored("ddp_find_unused_parameters", "treg's all-reduce covers every parameter (unused ones add zeros)"),
      ignored("max_source_length", "not used by DPO trainers"),
  };
  return specs;
}
// clang-format on

#undef TREG_SETTING

const KeySpec* find_key(const std::string& name) {
  for (const auto& s : key_specs())
    if (name == s.name) return &s;
  return nullptr;
}

std::string nearest_key(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& s : key_specs()) names.push_back(s.name);
  return nearest_name(name, names);
}

bool guard_accepts(const KeySpec& spec, const YAML::Node& value) {
  std::istringstream list(spec.accepted);
  std::string a;
  while (std::getline(list, a, '|')) {
    if (a == "null") {
      if (value.IsNull() || ((value.IsMap() || value.IsSequence()) && value.size() == 0))
        return true;
    } else if (a == "false" || a == "true") {
      bool b;
      if (value.IsScalar() && YAML::convert<bool>::decode(value, b) && b == (a == "true"))
        return true;
    } else if (value.IsScalar() && value.as<std::string>() == a) {
      return true;
    }
  }
  return false;
}

}  // namespace treg::config_keys_detail

namespace treg {

using namespace config_keys_detail;

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  for (const auto& s : key_specs()) out.push_back(s.name);
  return out;
}

std::string config_keys_table() {
  const Config defaults;
  size_t w_name = 0, w_type = 0;
  for (const auto& s : key_specs()) {
    w_name = std::max(w_name, std::string(s.name).size());
    w_type = std::max(w_type, std::string(s.type).size());
  }
  auto row = [&](const std::string& name, const std::string& type, const std::string& def,
                 const std::string& meaning) {
    std::string line = name + std::string(w_name + 2 - name.size(), ' ') + type +
                       std::string(w_type + 2 - type.size(), ' ');
    return line + def + "  # " + meaning + "\n";
  };
  std::string out =
      "# treg config keys: NAME  TYPE  DEFAULT  # meaning. Set them in the YAML of --config or\n"
      "# as key=value after it (YAML syntax: `beta=0.1`, `dataset_mixer={data/a.jsonl: 0.5}`).\n";
  const std::pair<KeyRole, const char*> sections[] = {
      {KeyRole::kSetting, "treg settings (the resolved config.yaml of a run lists them all)"},
      {KeyRole::kAlias, "other trainers' names for treg settings (DEFAULT: the setting they set)"},
      {KeyRole::kGuard,
       "Hugging Face keys accepted only with the value shown (others change training in a way "
       "treg cannot follow)"},
      {KeyRole::kIgnored, "Hugging Face keys accepted and ignored: they do not change training"},
  };
  for (const auto& [role, title] : sections) {
    out += std::string("\n# ---- ") + title + " ----\n";
    for (const auto& s : key_specs()) {
      if (s.role != role) continue;
      std::string def = role == KeyRole::kSetting ? s.write(defaults)
                        : role == KeyRole::kAlias ? std::string("-> ") + s.target
                        : role == KeyRole::kGuard ? std::string(s.accepted)
                                                  : std::string("-");
      out +=
          row(s.name, role == KeyRole::kAlias ? find_key(s.target)->type : s.type, def, s.meaning);
    }
  }
  return out;
}

}  // namespace treg
