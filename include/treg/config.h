// The one configuration of a treg run. YAML (alignment-handbook / SimPO / WPO key names plus treg's
// own) becomes this typed struct once, here; nothing below config/ sees YAML.
//
// Every key a config may hold -- treg's settings, other trainers' names for them, and the Hugging
// Face keys accepted without effect -- is one row of the table in src/config/keys.cpp, with its
// type and one-line meaning: `treg config-keys` prints it. Recipes of SimPO, WPO and the
// alignment-handbook are read as their own trainers read them (src/config/recipes.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace treg {

// One dataset of an alignment-handbook `dataset_mixture` (its DatasetConfig), from local files.
struct MixtureDataset {
  std::string id;                    // a JSONL file, or a directory holding <split>.jsonl
  std::string config;                // Hub config name: kept, meaningless for local files
  std::string split = "train";       // which <split>.jsonl of a directory id
  std::vector<std::string> columns;  // kept; treg reads prompt/chosen/rejected whatever they say
  double weight = 1.0;               // fraction of the rows taken (a seeded random subset)
};

// The handbook's DatasetMixtureConfig: the datasets are subsampled, concatenated and, with
// test_split_size, split into train and test.
struct DatasetMixture {
  std::vector<MixtureDataset> datasets;  // empty: no mixture
  int64_t seed = 0;
  double test_split_size = 0;  // 0: no test split; < 1: a fraction of the rows; >= 1: a row count
};

struct Config {
  // ---- model and data (shared by score-tokens and train) ----
  std::string model_name_or_path;          // HF model directory
  std::string train_file;                  // JSONL preference pairs
  std::string eval_file;                   // optional held-out pairs
  // Instead of train_file / eval_file: alignment-handbook mixtures of local JSONL files
  // (src/data/dataset_mixture.cpp says how rows are chosen).
  std::vector<std::pair<std::string, double>> dataset_mixer;  // path -> fraction (handbook <= 0.4)
  // The splits a dataset_mixer directory holds as <split>.jsonl.
  std::vector<std::string> dataset_splits = {"train", "test"};
  DatasetMixture dataset_mixture;          // the newer list form
  std::string chat_template;               // "" = the model's own; a built-in name or Jinja text
  std::string pair_tokenization = "trl";   // trl | simpo: whose pipeline lays out a pair (data.h)
  int64_t max_length = 2048;
  int64_t max_prompt_length = 1800;
  int64_t max_completion_length = 0;  // TRL: each response cut to this many tokens; 0 = no cut
  bool skip_bad_rows = false;
  bool packing = false;  // sft: several sequences per row; train: prefix-shared pair trees (collate_pairs)
  std::string output_dir = "out";
  bool overwrite_output_dir = false;       // train: replace an earlier run in output_dir (HF's key)
  std::string device = "auto";             // auto | cpu | cuda
  bool bf16 = false;                       // fp32 weights, forwards under bf16 autocast (autocast.h)
  bool tf32 = false;                       // CUDA fp32 matmuls in TF32 (HF's tf32); false = full fp32

  // ---- token rewards (paper §3.3) ----
  std::string reward_dump;                 // "" = <output_dir>/token_rewards.bin
  std::string reward_source = "prompt";    // prompt (contrastive revision prompts) | dpo
  std::string dpo_model;                   // reward_source=dpo: the DPO-trained model
  std::string revision_prompt;             // "" = configs/prompts/revision.txt of the install
  std::string better_description = "helpful, correct, coherent, concise";
  std::string worse_description = "unhelpful, incorrect, incoherent, verbose";
  std::string assistant_prefix = "[The start of a rewritten {direction} answer]\n";
  int64_t score_batch_size = 4;

  // ---- preference loss and T-REG ----
  std::string loss_type = "sigmoid";       // sigmoid | ipo | hinge | robust | simpo
  double beta = 0.1;
  double label_smoothing = 0.0;
  double gamma_beta_ratio = 0.5;           // simpo
  double treg_alpha = 0.0;                 // 0 turns the regulariser off
  std::string treg_weighting = "sequence"; // sequence | static
  double sft_alpha = 0.0;                  // "DPO-SFT" ablation: alpha * NLL(y_w)
  bool use_weighting = false;              // WPO

  // ---- optimisation (HF Trainer defaults) ----
  double learning_rate = 5e-7;
  std::string lr_scheduler_type = "cosine"; // cosine | linear | constant | constant_with_warmup
  double warmup_ratio = 0.1;
  double warmup_steps = 0;  // > 0 overrides warmup_ratio: >= 1 steps, < 1 a fraction
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;
  double num_train_epochs = 1.0;
  int64_t max_steps = -1;                  // > 0 overrides num_train_epochs
  int64_t per_device_train_batch_size = 2;
  int64_t per_device_eval_batch_size = 4;
  int64_t gradient_accumulation_steps = 1;
  bool gradient_checkpointing = false;
  int64_t seed = 42;

  // ---- LoRA (TRL's ModelConfig keys; model.h LoraSpec) ----
  bool use_peft = false;                   // adapters on lora_target_modules, base weights frozen
  int64_t lora_r = 16;
  double lora_alpha = 32;
  double lora_dropout = 0.05;
  std::vector<std::string> lora_target_modules;  // empty = PEFT's default for the model type
  bool use_rslora = false;                 // scaling alpha/sqrt(r) instead of alpha/r

  // ---- logging, evaluation, checkpoints ----
  int64_t logging_steps = 10;
  std::string eval_strategy = "steps";     // steps | epoch | no (no eval at all)
  int64_t eval_steps = 100;                // 0 = only at the end
  std::string save_strategy = "steps";     // steps | epoch | no (only the final checkpoint)
  int64_t save_steps = 500;                // 0 = only at the end
  int64_t save_total_limit = 2;            // 0 = keep all
  // dtype of the HF model a checkpoint holds: "" = float32 (the master weights themselves), and for
  // a LoRA run's merged export the frozen base's dtype; "bfloat16" halves the export (the fp32
  // master weights then go to master_weights.safetensors beside it, for resuming)
  std::string save_dtype;
  std::string resume_from_checkpoint;      // "" | auto | PATH
  int64_t report_pairs = 4;                // eval pairs drawn in report.html
  int64_t zero_stage = 0;                 // 1: AdamW state sharded (ZeRO-1); 2: gradients too (ZeRO-2)
  int64_t ddp_bucket_cap_mb = 25;         // ZeRO: gradients/weights travel in buckets of at most this
  std::string ddp_backend;                // "" = nccl on CUDA (when built with it), else gloo
  int64_t ddp_timeout = 1800;              // seconds any collective of a multi-rank run may wait
  // Not a key: the ranks of the launch (WORLD_SIZE), set by `treg train`. config_to_yaml notes it
  // when > 1, so a resumed run can tell the global batch of the run it continues.
  int64_t world_size = 1;

  // Resolved paths.
  std::string reward_dump_path() const;       // train split
  std::string eval_reward_dump_path() const;  // beside it, "<stem>.eval.bin"
  // Data comes from dataset_mixer / dataset_mixture rather than train_file.
  bool uses_mixture() const { return !dataset_mixer.empty() || !dataset_mixture.datasets.empty(); }
};

// Reads YAML, applies `overrides` ("key=value", the value in YAML syntax: `beta=0.1`,
// `dataset_mixer={data/a.jsonl: 0.5}`), applies the recipe rules, validates. Errors name the file,
// line and key; an unknown key suggests the nearest known one. Keys of HF TrainingArguments that
// have no meaning here (hub_model_id, report_to, ...) are accepted with one warning that lists
// them.
Config load_config(const std::string& yaml_path, const std::vector<std::string>& overrides = {});
// Same, from YAML text (`where` names it in errors).
Config parse_config(const std::string& yaml_text, const std::string& where,
                    const std::vector<std::string>& overrides = {});
// All keys with their resolved values, as YAML that load_config reads back to the same Config.
std::string config_to_yaml(const Config& config);
// Throws a treg::Error naming the first invalid key.
void validate_config(const Config& config);
// The names of all known keys (settings, other trainers' names, accepted-and-ignored keys).
std::vector<std::string> config_keys();
// What `treg config-keys` prints: every key with its type, default and one-line meaning.
std::string config_keys_table();

}  // namespace treg
