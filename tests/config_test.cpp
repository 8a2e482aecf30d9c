#include "treg/config.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <sstream>

#include "test_util.h"
#include "treg/data.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/runtime.h"

namespace treg {
namespace {

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, "cfg.yaml", overrides);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, ReadsKeysAndKeepsDefaults) {
  Config c = parse_config(
      "model_name_or_path: m\nbeta: 0.01\nloss_type: simpo\nmax_steps: 30\nbf16: true\n"
      "learning_rate: 1.0e-6\ngradient_accumulation_steps: 16\n",
      "cfg.yaml");
  EXPECT_EQ(c.model_name_or_path, "m");
  EXPECT_DOUBLE_EQ(c.beta, 0.01);
  EXPECT_EQ(c.loss_type, "simpo");
  EXPECT_EQ(c.max_steps, 30);
  EXPECT_TRUE(c.bf16);
  EXPECT_DOUBLE_EQ(c.learning_rate, 1e-6);
  EXPECT_EQ(c.gradient_accumulation_steps, 16);
  EXPECT_EQ(c.max_length, 2048);          // default
  EXPECT_DOUBLE_EQ(c.adam_beta2, 0.999);  // HF Trainer default
}

// HF's tf32 used to be accepted and ignored; it is a setting now (apply_tf32 sets LibTorch's flags).
TEST(Config, Tf32IsASettingThatSetsLibTorchsFlags) {
  EXPECT_FALSE(parse_config("model_name_or_path: m\n", "cfg.yaml").tf32);
  Config c = parse_config("model_name_or_path: m\ntf32: true\n", "cfg.yaml");
  EXPECT_TRUE(c.tf32);
  EXPECT_NE(config_to_yaml(c).find("tf32: true"), std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: m\ntf32: fast\n").find("tf32"), std::string::npos);

  auto& ctx = at::globalContext();
  const bool blas = ctx.allowTF32CuBLAS(), dnn = ctx.allowTF32CuDNN();
  ctx.setAllowTF32CuBLAS(false);
  ctx.setAllowTF32CuDNN(false);
  apply_tf32(false, torch::kCPU);  // false leaves LibTorch's setting as it is
  EXPECT_FALSE(ctx.allowTF32CuBLAS());
  EXPECT_FALSE(ctx.allowTF32CuDNN());
  apply_tf32(true, torch::kCPU);
  EXPECT_TRUE(ctx.allowTF32CuBLAS());
  EXPECT_TRUE(ctx.allowTF32CuDNN());
  ctx.setAllowTF32CuBLAS(blas);
  ctx.setAllowTF32CuDNN(dnn);
}

TEST(Config, OverridesWinOverFile) {
  Config c = parse_config("model_name_or_path: m\nbeta: 0.01\n", "cfg.yaml",
                          {"beta=0.5", "output_dir=/tmp/x", "eval_file="});
  EXPECT_DOUBLE_EQ(c.beta, 0.5);
  EXPECT_EQ(c.output_dir, "/tmp/x");
  EXPECT_EQ(c.eval_file, "");
}

TEST(Config, UnknownKeyNamesLineAndNearestKey) {
  std::string e = error_of("model_name_or_path: m\nlearning_rat: 1e-6\n");
  EXPECT_NE(e.find("cfg.yaml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("'learning_rat'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'learning_rate'"), std::string::npos) << e;
  e = error_of("model_name_or_path: m\n", {"tre_alpha=0.1"});
  EXPECT_NE(e.find("did you mean 'treg_alpha'"), std::string::npos) << e;
}

TEST(Config, WrongTypesAndValuesAreNamed) {
  std::string e = error_of("model_name_or_path: m\nmax_steps: ten\n");
  EXPECT_NE(e.find("cfg.yaml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("must be an integer"), std::string::npos) << e;
  EXPECT_NE(error_of("model_name_or_path: m\nmax_steps: 2.5\n").find("integer"), std::string::npos);
  e = error_of("model_name_or_path: m\nloss_type: dpo\n");
  EXPECT_NE(e.find("loss_type"), std::string::npos) << e;
  EXPECT_NE(e.find("sigmoid, ipo, hinge, robust, simpo"), std::string::npos) << e;
  EXPECT_NE(error_of("beta: 0.1\n").find("model_name_or_path"), std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: m\nmax_prompt_length: 4096\n").find("max_prompt_length"),
            std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: m\nbeta: [1, 2]\n").find("got a list"),
            std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: m\nbeta: 1\nbeta: 2\n").find("set twice"),
            std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: [\n").find("invalid YAML"), std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: m\n", {"beta"}).find("key=value"), std::string::npos);
}

// YAML reads .inf / .nan as numbers; none is a usable setting, and beta=.inf used to fail only at
// the first training step.
TEST(Config, InfiniteAndNanNumbersAreNamedAtLoad) {
  for (const char* ov : {"beta=.inf", "beta=-.inf", "learning_rate=.nan", "treg_alpha=.Inf",
                         "max_steps=.inf", "warmup_steps=.inf"}) {
    SCOPED_TRACE(ov);
    std::string e = error_of("model_name_or_path: m\n", {ov});
    const std::string key = std::string(ov).substr(0, std::string(ov).find('='));
    EXPECT_NE(e.find("'" + key + "'"), std::string::npos) << e;
    EXPECT_TRUE(e.find("finite") != std::string::npos || e.find("integer") != std::string::npos)
        << e;
  }
  EXPECT_EQ(error_of("model_name_or_path: m\n", {"beta=2.5e-1"}), "");
}

// Found by tests/fuzz/config_fuzz (UBSan: 1.1e28 cast to int64; input kept as
// tests/fuzz/corpus/config_fuzz/regress-huge-integer): an integer key beyond int64 is named.
TEST(Config, IntegersBeyondInt64AreNamed) {
  for (const char* ov :
       {"save_steps=10888888888888888888888888888", "max_steps=9.3e18", "seed=-1e19"}) {
    SCOPED_TRACE(ov);
    std::string e = error_of("model_name_or_path: m\n", {ov});
    const std::string key = std::string(ov).substr(0, std::string(ov).find('='));
    EXPECT_NE(e.find("'" + key + "'"), std::string::npos) << e;
    EXPECT_NE(e.find("an integer"), std::string::npos) << e;
  }
  EXPECT_EQ(error_of("model_name_or_path: m\n", {"save_steps=1e3"}), "");
}

// Found by tests/fuzz/config_fuzz (a mapping used as a key inside dataset_mixture escaped as an
// uncaught YAML::TypedBadConversion; input kept as .../regress-mapping-key): a named error.
TEST(Config, MappingKeysAreNamedErrors) {
  std::string e = error_of(
      "model_name_or_path: m\ndataset_mixture:\n  datasets: []\n  ? {columns: [a]}\n  : 1\n", {});
  EXPECT_NE(e.find("dataset_mixture"), std::string::npos) << e;
  e = error_of("model_name_or_path: m\n? [beta]\n: 1\n", {});
  EXPECT_NE(e.find("a key must be a plain name"), std::string::npos) << e;
}

// The settings whose treg default differs from Hugging Face's, as a recipe sets them.
const char* const kRecipeBasics =
    "learning_rate: 1.0e-6\nlr_scheduler_type: cosine\nwarmup_ratio: 0.1\nnum_train_epochs: 1\n"
    "per_device_train_batch_size: 2\nmax_length: 1024\nmax_prompt_length: 512\n";

TEST(Config, HuggingFaceOnlyKeysAreAcceptedAndIgnored) {
  Config c =
      parse_config(std::string("model_name_or_path: m\nhub_model_id: x/y\nreport_to: [wandb]\n"
                               "dataset_num_proc: 12\ntorch_dtype: bfloat16\nuse_peft: false\n") +
                       kRecipeBasics,
                   "cfg.yaml");
  EXPECT_EQ(c.model_name_or_path, "m");
  EXPECT_EQ(config_to_yaml(c).find("hub_model_id"), std::string::npos);  // not a setting
}

// A recipe (it sets Hugging Face keys) that leaves out a key whose treg default differs from the
// Hugging Face trainers' stops with ONE error naming every key to add, with HF's value.
TEST(Config, RecipeMissingKeysWithOtherDefaultsIsOneErrorNamingThem) {
  std::string e = error_of("model_name_or_path: m\nhub_model_id: x/y\n");
  for (const char* add :
       {"`learning_rate: 5.0e-5`", "`lr_scheduler_type: linear`", "`warmup_ratio: 0.0`",
        "`num_train_epochs: 3`", "`per_device_train_batch_size: 8`", "`max_length: 1024`",
        "`max_prompt_length: 512`"})
    EXPECT_NE(e.find(add), std::string::npos) << add << "\n" << e;
  EXPECT_NE(e.find("hub_model_id"), std::string::npos) << e;
  // warmup_steps instead of warmup_ratio, max_steps instead of num_train_epochs also do.
  e = error_of(
      std::string("model_name_or_path: m\noptim: adamw_torch\nwarmup_steps: 10\nmax_steps: 5\n") +
      "learning_rate: 1.0e-6\nlr_scheduler_type: cosine\nper_device_train_batch_size: 2\n"
      "max_length: 1024\n");
  EXPECT_EQ(e.find("warmup_ratio"), std::string::npos) << e;
  EXPECT_EQ(e.find("num_train_epochs"), std::string::npos) << e;
  EXPECT_NE(e.find("`max_prompt_length: 512`"), std::string::npos) << e;
  // treg's own configs (no Hugging Face-only keys) keep treg's defaults.
  EXPECT_EQ(error_of("model_name_or_path: m\n"), "");
}

TEST(Config, GuardedKeysRefuseWhatTregCannotTrain) {
  const std::string base = std::string("model_name_or_path: m\n") + kRecipeBasics;
  std::string e = error_of(base + "use_dora: true\n");
  EXPECT_NE(e.find("cfg.yaml:9"), std::string::npos) << e;
  EXPECT_NE(e.find("'use_dora'"), std::string::npos) << e;
  EXPECT_NE(e.find("set it to false"), std::string::npos) << e;
  EXPECT_NE(error_of(base + "optim: adafactor\n").find("AdamW only"), std::string::npos);
  EXPECT_NE(
      error_of(base + "lr_scheduler_kwargs: {min_lr_rate: 0.1}\n").find("lr_scheduler_kwargs"),
      std::string::npos);
  EXPECT_NE(error_of(base + "truncation_mode: keep_start\n").find("keep_end"), std::string::npos);
  EXPECT_EQ(
      error_of(base +
               "optim: adamw_torch_fused\nlr_scheduler_kwargs: {}\nfp16: false\nld_alpha: null\n"),
      "");
}

// SimPO's trainer has one loss: its recipes set no loss_type. gamma_beta_ratio or sft_weight (keys
// only SimPO's trainer reads) without loss_type select simpo, with SimPOConfig's defaults
// (beta 2.0, gamma_beta_ratio 0.25) for what the recipe leaves out.
TEST(Config, SimpoKeysWithoutLossTypeTrainSimpo) {
  Config c = parse_config("model_name_or_path: m\nbeta: 10\ngamma_beta_ratio: 0.3\n", "cfg.yaml");
  EXPECT_EQ(c.loss_type, "simpo");
  EXPECT_DOUBLE_EQ(c.beta, 10);
  EXPECT_DOUBLE_EQ(c.gamma_beta_ratio, 0.3);
  c = parse_config(std::string("model_name_or_path: m\nsft_weight: 0.2\n") + kRecipeBasics,
                   "cfg.yaml");
  EXPECT_EQ(c.loss_type, "simpo");
  EXPECT_DOUBLE_EQ(c.beta, 2.0);
  EXPECT_DOUBLE_EQ(c.gamma_beta_ratio, 0.25);
  EXPECT_DOUBLE_EQ(c.sft_alpha, 0.2);
  // An explicit loss_type wins; without SimPO keys nothing changes.
  c = parse_config("model_name_or_path: m\ngamma_beta_ratio: 0.3\n", "cfg.yaml",
                   {"loss_type=sigmoid"});
  EXPECT_EQ(c.loss_type, "sigmoid");
  EXPECT_DOUBLE_EQ(c.beta, 0.1);
  EXPECT_EQ(parse_config("model_name_or_path: m\n", "cfg.yaml").loss_type, "sigmoid");
}

TEST(Config, OtherTrainersNamesSetTregSettings) {
  Config c = parse_config(
      "model_name_or_path: m\nrpo_alpha: 0.5\nevaluation_strategy: epoch\n", "cfg.yaml",
      {"learning_rate=1e-6", "lr_scheduler_type=cosine", "warmup_ratio=0", "num_train_epochs=1",
       "per_device_train_batch_size=2", "max_length=64", "max_prompt_length=32"});
  EXPECT_DOUBLE_EQ(c.sft_alpha, 0.5);
  EXPECT_EQ(c.eval_strategy, "epoch");
  EXPECT_DOUBLE_EQ(
      parse_config(std::string("model_name_or_path: m\nrpo_alpha: null\n") + kRecipeBasics,
                   "cfg.yaml")
          .sft_alpha,
      0.0);
  std::string e = error_of("model_name_or_path: m\nsft_alpha: 0.1\nsft_weight: 0.2\n");
  EXPECT_NE(e.find("cfg.yaml:3"), std::string::npos) << e;
  EXPECT_NE(e.find("'sft_alpha' and 'sft_weight' both set sft_alpha"), std::string::npos) << e;
}

TEST(Config, WarmupStepsStrategiesAndCompletionLength) {
  Config c = parse_config(
      "model_name_or_path: m\nwarmup_steps: 10\neval_strategy: \"no\"\nsave_strategy: epoch\n"
      "max_completion_length: 300\n",
      "cfg.yaml");
  EXPECT_DOUBLE_EQ(c.warmup_steps, 10);
  EXPECT_EQ(c.eval_strategy, "no");
  EXPECT_EQ(c.save_strategy, "epoch");
  EXPECT_EQ(c.max_completion_length, 300);
  EXPECT_NE(error_of("model_name_or_path: m\nwarmup_steps: 2.5\n").find("warmup_steps"),
            std::string::npos);
  EXPECT_EQ(error_of("model_name_or_path: m\nwarmup_steps: 0.05\n"), "");
  std::string e = error_of("model_name_or_path: m\nsave_strategy: best\n");
  EXPECT_NE(e.find("'best' is not one of: steps, epoch, no"), std::string::npos) << e;
}

TEST(Config, DatasetMixturesAreTypedAndChecked) {
  Config c = parse_config(
      "model_name_or_path: m\n"
      "dataset_mixture:\n  datasets:\n    - id: a.jsonl\n      weight: 0.5\n    - id: dir\n      "
      "split: test_prefs\n"
      "      columns: [chosen, rejected]\n      config: default\n  test_split_size: 10\n  seed: "
      "3\n",
      "cfg.yaml");
  ASSERT_EQ(c.dataset_mixture.datasets.size(), 2u);
  EXPECT_EQ(c.dataset_mixture.datasets[0].id, "a.jsonl");
  EXPECT_DOUBLE_EQ(c.dataset_mixture.datasets[0].weight, 0.5);
  EXPECT_EQ(c.dataset_mixture.datasets[0].split, "train");  // the handbook's default split
  EXPECT_EQ(c.dataset_mixture.datasets[1].split, "test_prefs");
  EXPECT_EQ(c.dataset_mixture.datasets[1].columns,
            (std::vector<std::string>{"chosen", "rejected"}));
  EXPECT_DOUBLE_EQ(c.dataset_mixture.datasets[1].weight, 1.0);
  EXPECT_EQ(c.dataset_mixture.seed, 3);
  EXPECT_DOUBLE_EQ(c.dataset_mixture.test_split_size, 10);
  // Mixer in file order; overrides in YAML flow syntax.
  c = parse_config("model_name_or_path: m\ndataset_mixer:\n  z.jsonl: 0.25\n  a.jsonl: 1.0\n",
                   "cfg.yaml", {"dataset_splits=[train_prefs]"});
  ASSERT_EQ(c.dataset_mixer.size(), 2u);
  EXPECT_EQ(c.dataset_mixer[0], (std::pair<std::string, double>{"z.jsonl", 0.25}));
  EXPECT_EQ(c.dataset_splits, (std::vector<std::string>{"train_prefs"}));
  c = parse_config("model_name_or_path: m\n", "cfg.yaml", {"dataset_mixer={/d/x.jsonl: 0.5}"});
  EXPECT_EQ(c.dataset_mixer[0].first, "/d/x.jsonl");

  EXPECT_NE(error_of("model_name_or_path: m\ndataset_mixture: {datasets: [{id: a, wieght: 1}]}\n")
                .find("unknown entry 'wieght'"),
            std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: m\ndataset_mixture: {datasets: [{id: a, weight: 1.5}]}\n")
                .find("dataset_mixture.datasets[0].weight"),
            std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: m\ndataset_mixture: [a]\n").find("'datasets' list"),
            std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: m\ndataset_mixer: {a.jsonl: 2}\n").find("[0, 1]"),
            std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: m\ndataset_splits: [validation]\n")
                .find("neither a train nor a test"),
            std::string::npos);
  std::string e =
      error_of("model_name_or_path: m\ntrain_file: t.jsonl\ndataset_mixer: {a.jsonl: 1}\n");
  EXPECT_NE(e.find("config key 'train_file'"), std::string::npos) << e;
  EXPECT_NE(e.find("`dataset_mixture=`"), std::string::npos) << e;
  EXPECT_NE(error_of("model_name_or_path: m\ndataset_mixer: {a.jsonl: 1}\ndataset_mixture: "
                     "{datasets: [{id: b}]}\n")
                .find("both set"),
            std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: m\neval_file: e.jsonl\n"
                     "dataset_mixture: {datasets: [{id: b}], test_split_size: 0.1}\n")
                .find("config key 'eval_file'"),
            std::string::npos);
  // The recipe's train_file-less mixture can be replaced from the command line.
  c = parse_config("model_name_or_path: m\ndataset_mixer: {a.jsonl: 1}\n", "cfg.yaml",
                   {"dataset_mixer=", "train_file=t.jsonl"});
  EXPECT_TRUE(c.dataset_mixer.empty());
  EXPECT_EQ(c.train_file, "t.jsonl");
}

// ---- treg config-keys ----

// Every key the parser accepts is listed with its type and default, from the same table: a
// setting's printed default, read back, gives the default config; an alias names a setting; a
// guarded key's accepted value parses and the parser refuses another.
TEST(ConfigKeys, ListsEveryKeyWithItsDefault) {
  const std::string table = config_keys_table();
  std::map<std::string, std::string> lines;  // key -> its line
  std::istringstream in(table);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') lines[line.substr(0, line.find(' '))] = line;
  const std::vector<std::string> keys = config_keys();
  EXPECT_EQ(lines.size(), keys.size());
  const std::string defaults = config_to_yaml(parse_config("model_name_or_path: m\n", "cfg.yaml"));
  for (const std::string& key : keys) {
    SCOPED_TRACE(key);
    ASSERT_TRUE(lines.count(key));
    std::istringstream cols(lines[key].substr(0, lines[key].find("  # ")));
    std::string name, type, def;
    cols >> name >> type;
    std::getline(cols, def);
    def = def.substr(def.find_first_not_of(' '));
    EXPECT_NE(lines[key].find("  # "), std::string::npos);  // a meaning
    if (key == "model_name_or_path") {
      EXPECT_EQ(def, "\"\"");
      continue;
    }
    if (def.rfind("-> ", 0) == 0) {  // an alias: it names a setting that is listed too
      EXPECT_TRUE(lines.count(def.substr(3)));
      continue;
    }
    if (type != "any") {  // a setting: its printed default is the default
      // (loss_type written out: gamma_beta_ratio alone would select SimPO.)
      const std::string loss = key == "loss_type" ? "" : "loss_type: sigmoid\n";
      Config d =
          parse_config("model_name_or_path: m\n" + loss + key + ": " + def + "\n", "cfg.yaml");
      EXPECT_EQ(config_to_yaml(d), defaults);
      continue;
    }
    // Hugging Face keys: accepted (the first accepted value of a guarded one, anything otherwise).
    const std::string value = def == "-" ? "[any, value]" : def.substr(0, def.find('|'));
    EXPECT_EQ(error_of("model_name_or_path: m\n" + key + ": " + value + "\n" + kRecipeBasics), "")
        << value;
    if (def != "-")  // guarded: another value is refused, naming the key
      EXPECT_NE(
          error_of("model_name_or_path: m\n" + key + ": something_else\n").find("'" + key + "'"),
          std::string::npos);
  }
  // A few defaults by hand.
  EXPECT_NE(lines["beta"].find("number"), std::string::npos);
  EXPECT_NE(lines["beta"].find(" 0.1 "), std::string::npos) << lines["beta"];
  EXPECT_NE(lines["learning_rate"].find(" 5e-07 "), std::string::npos) << lines["learning_rate"];
  EXPECT_NE(lines["loss_type"].find(" \"sigmoid\" "), std::string::npos);
  EXPECT_NE(lines["max_length"].find(" 2048 "), std::string::npos);
  EXPECT_NE(lines["sft_weight"].find("-> sft_alpha"), std::string::npos);
  EXPECT_NE(lines["dataset_splits"].find("[\"train\", \"test\"]"), std::string::npos);
}

TEST(ConfigKeys, CommandPrintsTheTableAndTheHintPointsAtIt) {
  std::string out;
  ASSERT_EQ(test::run_command(test::treg_binary() + " config-keys 2>/dev/null", &out), 0) << out;
  EXPECT_EQ(out, config_keys_table());
  // The unknown-key hint names the nearest key, including other trainers' names.
  for (auto [typo, nearest] : std::vector<std::pair<std::string, std::string>>{
           {"warmup_step", "warmup_steps"},
           {"evaluation_stratgy", "evaluation_strategy"},
           {"dataset_mixtur", "dataset_mixture"},
           {"gama_beta_ratio", "gamma_beta_ratio"}}) {
    std::string e = error_of("model_name_or_path: m\n" + typo + ": 1\n");
    EXPECT_NE(e.find("did you mean '" + nearest + "'? (`treg config-keys` lists every key)"),
              std::string::npos)
        << e;
  }
}

// CLI11 answered a mistyped subcommand with "A subcommand is required".
TEST(Cli, UnknownSubcommandNamesTheNearestOne) {
  std::string out;
  EXPECT_EQ(test::run_command(test::treg_binary() + " score-token --config x.yaml", &out), 2);
  EXPECT_NE(out.find("unknown subcommand 'score-token': did you mean 'score-tokens'?"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("train"), std::string::npos) << out;  // the list of subcommands
  EXPECT_EQ(test::run_command(test::treg_binary() + " trian", &out), 2);
  EXPECT_NE(out.find("did you mean 'train'?"), std::string::npos) << out;
  EXPECT_EQ(test::run_command(test::treg_binary() + " --version", &out), 0) << out;
}

TEST(Config, ResolvedYamlRoundTrips) {
  Config a = parse_config(
      "model_name_or_path: \"m: x\"\nbeta: 0.123456789\nassistant_prefix: \"a\\nb\"\n"
      "learning_rate: 3e-7\nmax_steps: 7\nuse_weighting: true\nwarmup_steps: 0.3\n"
      "dataset_mixture: {datasets: [{id: \"a b.jsonl\", weight: 0.3}, {id: d, split: test}], "
      "test_split_size: 0.1, seed: 5}\ndataset_splits: [train_prefs, test_prefs]\n",
      "cfg.yaml");
  Config b = parse_config(config_to_yaml(a), "resolved.yaml");
  EXPECT_EQ(config_to_yaml(a), config_to_yaml(b));
  EXPECT_EQ(b.model_name_or_path, "m: x");
  EXPECT_EQ(b.assistant_prefix, "a\nb");
  EXPECT_DOUBLE_EQ(b.beta, 0.123456789);
  EXPECT_DOUBLE_EQ(b.learning_rate, 3e-7);
  ASSERT_EQ(b.dataset_mixture.datasets.size(), 2u);
  EXPECT_EQ(b.dataset_mixture.datasets[0].id, "a b.jsonl");
  EXPECT_DOUBLE_EQ(b.dataset_mixture.datasets[0].weight, 0.3);
  EXPECT_EQ(b.dataset_mixture.datasets[1].split, "test");
  Config m =
      parse_config("model_name_or_path: m\ndataset_mixer: {\"x: y.jsonl\": 0.5}\n", "cfg.yaml");
  EXPECT_EQ(config_to_yaml(parse_config(config_to_yaml(m), "resolved.yaml")), config_to_yaml(m));
}

TEST(Config, DumpPathsDeriveFromOutputDir) {
  Config c = parse_config("model_name_or_path: m\noutput_dir: run1\n", "cfg.yaml");
  EXPECT_EQ(c.reward_dump_path(), "run1/token_rewards.bin");
  EXPECT_EQ(c.eval_reward_dump_path(), "run1/token_rewards.eval.bin");
}

// The paper trained with SimPO's code base: both paper configs lay pairs out as run_simpo.py does.
// Gemma-2's own template refuses an answer rendered alone; the SimPO recipe's template (in
// configs/gemma2.yaml) renders it, header first.
TEST(Config, PaperConfigsTokenisePairsAsRunSimpoDoes) {
  const Config llama = load_config(test::source_path("configs/llama3.yaml"));
  EXPECT_EQ(llama.pair_tokenization, "simpo");
  const Config gemma = load_config(test::source_path("configs/gemma2.yaml"));
  EXPECT_EQ(gemma.pair_tokenization, "simpo");
  auto tok = load_tokenizer(test::tiny_model("gemma2"));
  const RawPair row = parse_pair_line(R"({"prompt":"Hi?","chosen":"Hello.","rejected":"No."})", "f", 1);
  const std::string header = "<start_of_turn>model\n";
  EXPECT_THROW(tokenize_pair(row, *tok, make_chat_template(*tok, ""), nullptr,
                             PairTokenization::kSimpo),
               Error);
  const TokenizedPair p = tokenize_pair(row, *tok, make_chat_template(*tok, gemma.chat_template),
                                        nullptr, PairTokenization::kSimpo);
  EXPECT_EQ(p.chosen_ids, tok->encode(header + "Hello.<end_of_turn>\n<eos>", false));
  EXPECT_EQ(p.chosen_header, tok->encode(header, false).size());
  EXPECT_EQ(p.prompt_ids, tok->encode("<bos><start_of_turn>user\nHi?<end_of_turn>\n", false));
}

TEST(Config, BundledConfigsLoad) {
  for (const char* name : {"configs/tiny.yaml", "configs/llama3.yaml", "configs/gemma2.yaml"}) {
    std::string path = test::source_path(name);
    if (!file_exists(path)) continue;  // added with the training issue
    EXPECT_NO_THROW(load_config(path)) << name;
  }
}

// TRL's ModelConfig LoRA keys: a recipe's peft block reads as it is and survives the resolved
// config file; lora_target_modules takes a list, one name or null (PEFT's default).
TEST(Config, LoraKeysOfTrlRecipes) {
  Config c = parse_config(std::string("model_name_or_path: m\nuse_peft: true\nlora_r: 64\n"
                                      "lora_alpha: 16\nlora_dropout: 0.1\n"
                                      "lora_target_modules: [q_proj, k_proj, v_proj, o_proj]\n"
                                      "lora_task_type: CAUSAL_LM\nlora_modules_to_save: null\n") +
                              kRecipeBasics,
                          "cfg.yaml");
  EXPECT_TRUE(c.use_peft);
  EXPECT_EQ(c.lora_r, 64);
  EXPECT_EQ(c.lora_alpha, 16);
  EXPECT_EQ(c.lora_dropout, 0.1);
  EXPECT_EQ(c.lora_target_modules, (std::vector<std::string>{"q_proj", "k_proj", "v_proj", "o_proj"}));
  const Config back = parse_config(config_to_yaml(c), "resolved.yaml");
  EXPECT_EQ(back.lora_target_modules, c.lora_target_modules);
  EXPECT_EQ(back.lora_alpha, 16);
  EXPECT_EQ(parse_config("model_name_or_path: m\nlora_target_modules: all-linear\n", "c")
                .lora_target_modules,
            (std::vector<std::string>{"all-linear"}));
  Config d;
  d.model_name_or_path = "m";
  EXPECT_TRUE(parse_config(config_to_yaml(d), "c").lora_target_modules.empty());
  EXPECT_NE(error_of("model_name_or_path: m\nlora_dropout: 1.5\n").find("lora_dropout"),
            std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: m\nlora_r: 0\n").find("lora_r"), std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: m\nuse_dora: true\n").find("use_dora"),
            std::string::npos);
}

}  // namespace
}  // namespace treg
