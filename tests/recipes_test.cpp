// Published recipes of SimPO, WPO and the alignment-handbook (copied unchanged into
// tests/data/recipes/, source and commit on their first line) load as their own trainers read them,
// or stop with one error naming the key to add; their dataset mixtures select rows from local JSONL
// files as the handbook does; the handbook recipe trains a couple of steps on the tiny model.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "test_util.h"
#include "treg/chat_template.h"
#include "treg/config.h"
#include "treg/data_sources.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/losses.h"
#include "treg/tokenizer.h"

namespace treg {
namespace {

using test::error_of;

std::string recipe(const std::string& name) {
  return test::source_path("tests/data/recipes/" + name);
}

std::vector<std::string> lines_of(const std::string& path, size_t n = SIZE_MAX) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; out.size() < n && std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

// `n` rows of the bundled pairs (train or eval file) written to `path`.
std::vector<std::string> write_rows(const std::string& path, const std::string& bundled, size_t n) {
  std::vector<std::string> rows = lines_of(test::source_path("configs/data/" + bundled), n);
  std::string text;
  for (const auto& r : rows) text += r + "\n";
  write_file_atomic(path, text);
  return rows;
}

// ---- SimPO ----

// SimPO's Llama-3-Instruct v0.2 recipe sets no loss_type (SimPO's trainer has one loss) but
// gamma_beta_ratio: it trains SimPO with the recipe's β and γ/β, on pairs laid out as run_simpo.py
// lays them out.
TEST(Recipes, SimpoRecipeTrainsSimpo) {
  Config c =
      load_config(recipe("simpo-llama-3-8b-instruct-simpo-v2.yaml"), {"model_name_or_path=/m"});
  EXPECT_EQ(c.loss_type, "simpo");
  EXPECT_EQ(LossConfig::from_config(c).type, LossType::kSimpo);
  EXPECT_EQ(c.pair_tokenization, "simpo");  // run_simpo.py lays out the pairs
  EXPECT_DOUBLE_EQ(c.beta, 10);
  EXPECT_DOUBLE_EQ(c.gamma_beta_ratio, 0.3);
  EXPECT_DOUBLE_EQ(c.learning_rate, 1e-6);
  EXPECT_EQ(c.lr_scheduler_type, "cosine");
  EXPECT_DOUBLE_EQ(c.warmup_ratio, 0.1);
  EXPECT_EQ(c.max_length, 2048);
  EXPECT_EQ(c.max_prompt_length, 1800);
  EXPECT_EQ(c.per_device_train_batch_size, 2);
  EXPECT_EQ(c.gradient_accumulation_steps, 16);
  EXPECT_EQ(c.eval_strategy, "steps");  // from evaluation_strategy
  EXPECT_EQ(c.eval_steps, 400);
  EXPECT_EQ(c.save_steps, 1000000);
  EXPECT_EQ(c.save_total_limit, 20);
  EXPECT_TRUE(c.bf16);
  EXPECT_FALSE(c.use_weighting);
  ASSERT_EQ(c.dataset_mixer.size(), 1u);
  EXPECT_EQ(c.dataset_mixer[0],
            (std::pair<std::string, double>{"princeton-nlp/llama3-ultrafeedback-armorm", 1.0}));
  EXPECT_EQ(c.dataset_splits, (std::vector<std::string>{"train", "test"}));
  // The Hub dataset is not on disk: reading the data names the key and how to point it at files.
  std::string e = error_of([&] { split_data_file(c, "train"); });
  EXPECT_NE(e.find("config key 'dataset_mixer': 'princeton-nlp/llama3-ultrafeedback-armorm' is "
                   "neither a local "
                   "JSONL file"),
            std::string::npos)
      << e;
  // An explicit loss_type on the command line is honoured.
  EXPECT_EQ(load_config(recipe("simpo-llama-3-8b-instruct-simpo-v2.yaml"),
                        {"model_name_or_path=/m", "loss_type=sigmoid"})
                .loss_type,
            "sigmoid");
}

// A dataset_mixer directory gives <dir>/<split>.jsonl per dataset_splits: the train split's first
// int(fraction × rows) rows (the handbook's select(range(...))), the test split whole.
TEST(Recipes, SimpoMixerDirectoryGivesTrainPrefixAndWholeTestSplit) {
  const std::string dir = test::fresh_dir("recipe_simpo_mixer");
  make_dirs(dir + "/armorm");
  std::vector<std::string> train =
      write_rows(dir + "/armorm/train.jsonl", "tiny_prefs.train.jsonl", 9);
  std::vector<std::string> test =
      write_rows(dir + "/armorm/test.jsonl", "tiny_prefs.eval.jsonl", 3);
  Config c = load_config(recipe("simpo-llama-3-8b-instruct-simpo-v2.yaml"),
                         {"model_name_or_path=/m", "output_dir=" + dir + "/out",
                          "dataset_mixer={" + dir + "/armorm: 0.5}"});
  MixtureRows rows = select_mixture_rows(c);
  EXPECT_EQ(rows.train,
            std::vector<std::string>(train.begin(), train.begin() + 4));  // int(0.5 × 9)
  EXPECT_EQ(rows.eval, test);
  EXPECT_TRUE(has_eval_split(c));
  const std::string train_file = split_data_file(c, "train");
  EXPECT_EQ(train_file, dir + "/out/data/train.jsonl");
  EXPECT_EQ(lines_of(train_file), rows.train);
  EXPECT_EQ(lines_of(split_data_file(c, "eval")), test);
  // eval_strategy "no": no eval split at all.
  c.eval_strategy = "no";
  EXPECT_FALSE(has_eval_split(c));
  EXPECT_EQ(split_data_file(c, "eval"), "");
}

// SimPO's Gemma-2 recipe carries its chat template as Jinja text (a system message folded into the
// first user turn): treg renders that text, not the model's own template.
TEST(Recipes, SimpoGemmaRecipeRendersItsJinjaChatTemplate) {
  Config c = load_config(recipe("simpo-gemma-2-9b-it-simpo.yaml"), {"model_name_or_path=/m"});
  EXPECT_EQ(c.loss_type, "simpo");
  EXPECT_DOUBLE_EQ(c.beta, 10);
  EXPECT_DOUBLE_EQ(c.gamma_beta_ratio, 0.5);
  EXPECT_DOUBLE_EQ(c.learning_rate, 8e-7);
  auto tok = load_tokenizer(test::tiny_model("llama"));
  const ChatTemplate chat = make_chat_template(*tok, c.chat_template);
  EXPECT_EQ(chat.origin(), "config key 'chat_template'");
  EXPECT_EQ(chat.render({{"system", " S "}, {"user", "Q"}}, /*add_generation_prompt=*/true),
            tok->special().bos_token +
                "<start_of_turn>user\nS\n\nQ<end_of_turn>\n<start_of_turn>model\n");
}

// ---- WPO ----

// WPO's recipe is a plain DPOConfig file, but WPO's trainer weights every pair: treg cannot tell
// from the keys alone, so a recipe named for WPO must say use_weighting.
TEST(Recipes, WpoRecipeAsksForUseWeightingThenTrainsWpo) {
  const std::string path = recipe("wpo-llama3_instruct.yaml");
  std::string e = error_of([&] { load_config(path, {"model_name_or_path=/m"}); });
  EXPECT_NE(e.find(path + ": a recipe of another trainer"), std::string::npos) << e;
  EXPECT_NE(
      e.find("add: `use_weighting: true` (hub_model_id 'llama-8b-instruct-wpo' names a WPO recipe"),
      std::string::npos)
      << e;
  EXPECT_EQ(e.find("learning_rate"), std::string::npos) << "only the missing key: " << e;

  Config c = load_config(path, {"model_name_or_path=/m", "use_weighting=true"});
  EXPECT_TRUE(c.use_weighting);
  EXPECT_TRUE(LossConfig::from_config(c).use_weighting);
  EXPECT_EQ(c.loss_type, "sigmoid");
  EXPECT_DOUBLE_EQ(c.beta, 0.01);
  EXPECT_DOUBLE_EQ(c.learning_rate, 1e-6);
  EXPECT_DOUBLE_EQ(c.num_train_epochs, 2);
  EXPECT_DOUBLE_EQ(c.warmup_ratio, 0.1);
  EXPECT_EQ(c.max_length, 2048);
  EXPECT_EQ(c.max_prompt_length, 1800);
  EXPECT_EQ(c.gradient_accumulation_steps, 8);
  EXPECT_EQ(c.per_device_eval_batch_size, 8);
  EXPECT_EQ(c.eval_steps, 10000);
  EXPECT_EQ(c.save_total_limit, 1);
  EXPECT_EQ(c.dataset_splits, (std::vector<std::string>{"train_prefs", "test_prefs"}));
  ASSERT_EQ(c.dataset_mixer.size(), 1u);
  EXPECT_EQ(c.dataset_mixer[0].first, "HuggingFaceH4/ultrafeedback_binarized");
  // use_weighting: false is an answer too (plain DPO).
  EXPECT_FALSE(load_config(path, {"model_name_or_path=/m", "use_weighting=false"}).use_weighting);

  // The UltraFeedback splits saved as <dir>/train_prefs.jsonl and test_prefs.jsonl.
  const std::string dir = test::fresh_dir("recipe_wpo_mixer");
  make_dirs(dir + "/uf");
  std::vector<std::string> train =
      write_rows(dir + "/uf/train_prefs.jsonl", "tiny_prefs.train.jsonl", 7);
  std::vector<std::string> test =
      write_rows(dir + "/uf/test_prefs.jsonl", "tiny_prefs.eval.jsonl", 2);
  c = load_config(
      path, {"model_name_or_path=/m", "use_weighting=true", "dataset_mixer={" + dir + "/uf: 1.0}"});
  MixtureRows rows = select_mixture_rows(c);
  EXPECT_EQ(rows.train, train);
  EXPECT_EQ(rows.eval, test);
  // A split the directory lacks is named.
  c.dataset_splits = {"train_prefs", "test_gen"};
  e = error_of([&] { select_mixture_rows(c); });
  EXPECT_NE(e.find("has no test_gen.jsonl"), std::string::npos) << e;
}

// ---- alignment-handbook ----

TEST(Recipes, HandbookDpoRecipeResolvesAsTrl) {
  Config c = load_config(recipe("handbook-zephyr-7b-beta-dpo-config_full.yaml"),
                         {"model_name_or_path=/m"});
  EXPECT_EQ(c.loss_type, "sigmoid");
  EXPECT_DOUBLE_EQ(c.beta, 0.01);
  EXPECT_DOUBLE_EQ(c.learning_rate, 5e-7);
  EXPECT_EQ(c.lr_scheduler_type, "cosine");
  EXPECT_DOUBLE_EQ(c.warmup_ratio, 0.1);
  EXPECT_DOUBLE_EQ(c.warmup_steps, 0);
  EXPECT_EQ(c.max_length, 1024);
  EXPECT_EQ(c.max_prompt_length, 512);
  EXPECT_EQ(c.per_device_train_batch_size, 8);
  EXPECT_EQ(c.gradient_accumulation_steps, 2);
  EXPECT_EQ(c.eval_strategy, "steps");
  EXPECT_EQ(c.eval_steps, 100);
  EXPECT_EQ(c.save_strategy, "steps");
  EXPECT_EQ(c.save_total_limit, 1);
  EXPECT_FALSE(c.use_weighting);
  const DatasetMixture& m = c.dataset_mixture;
  ASSERT_EQ(m.datasets.size(), 2u);
  EXPECT_EQ(m.datasets[0].id, "HuggingFaceH4/ultrafeedback_binarized");
  EXPECT_EQ(m.datasets[0].split, "train_prefs");
  EXPECT_EQ(m.datasets[1].split, "test_prefs");
  EXPECT_EQ(m.datasets[0].config, "default");
  EXPECT_DOUBLE_EQ(m.datasets[1].weight, 1.0);
  EXPECT_DOUBLE_EQ(m.test_split_size, 2000);
  EXPECT_EQ(m.seed, 0);
  // TRL keys on the command line: warmup_steps wins over the recipe's warmup_ratio (in the
  // trainer), max_completion_length caps responses, rpo_alpha is the NLL term, save_strategy "no".
  c = load_config(recipe("handbook-zephyr-7b-beta-dpo-config_full.yaml"),
                  {"model_name_or_path=/m", "warmup_steps=20", "max_completion_length=256",
                   "rpo_alpha=1.0", "save_strategy=no"});
  EXPECT_DOUBLE_EQ(c.warmup_steps, 20);
  EXPECT_EQ(c.max_completion_length, 256);
  EXPECT_DOUBLE_EQ(c.sft_alpha, 1.0);
  EXPECT_EQ(c.save_strategy, "no");
}

// dataset_mixture over local files: int(weight × rows) rows per dataset, then test_split_size rows
// of the concatenation become the eval split; deterministic in the seed.
TEST(Recipes, HandbookMixtureSubsamplesAndSplits) {
  const std::string dir = test::fresh_dir("recipe_mixture_rows");
  std::vector<std::string> a = write_rows(dir + "/a.jsonl", "tiny_prefs.train.jsonl", 20);
  make_dirs(dir + "/b");
  std::vector<std::string> b = write_rows(dir + "/b/test_prefs.jsonl", "tiny_prefs.eval.jsonl", 6);
  const std::string mixture = "dataset_mixture={datasets: [{id: " + dir +
                              "/a.jsonl, weight: 0.25}, {id: " + dir +
                              "/b, split: test_prefs}], test_split_size: 3, seed: 0}";
  Config c = load_config(recipe("handbook-zephyr-7b-beta-dpo-config_full.yaml"),
                         {"model_name_or_path=/m", mixture});
  MixtureRows rows = select_mixture_rows(c);
  EXPECT_EQ(rows.train.size() + rows.eval.size(), 5u + 6u);  // int(0.25 × 20) + all 6
  EXPECT_EQ(rows.eval.size(), 3u);
  std::multiset<std::string> from_a, from_b;
  for (const auto* split : {&rows.train, &rows.eval})
    for (const auto& r : *split) (std::count(a.begin(), a.end(), r) ? from_a : from_b).insert(r);
  EXPECT_EQ(from_a.size(), 5u);
  EXPECT_EQ(from_b, std::multiset<std::string>(b.begin(), b.end()));
  // Same seed, same rows; another seed, other rows (20 choose 5 = 15504 subsets).
  EXPECT_EQ(select_mixture_rows(c).train, rows.train);
  c.dataset_mixture.seed = 1;
  MixtureRows other = select_mixture_rows(c);
  EXPECT_EQ(other.eval.size(), 3u);
  EXPECT_NE(other.train, rows.train);
  // A fractional test size is ceil(size × rows), as datasets' train_test_split.
  c.dataset_mixture.test_split_size = 0.1;
  EXPECT_EQ(select_mixture_rows(c).eval.size(), 2u);  // ceil(0.1 × 11)
  c.dataset_mixture.test_split_size = 11;
  EXPECT_NE(error_of([&] { select_mixture_rows(c); }).find("test_split_size"), std::string::npos);
  // The published recipe's Hub ids are not local files: the error names the mixture entry.
  Config hub = load_config(recipe("handbook-zephyr-7b-beta-dpo-config_full.yaml"),
                           {"model_name_or_path=/m"});
  std::string e = error_of([&] { select_mixture_rows(hub); });
  EXPECT_NE(e.find("config key 'dataset_mixture.datasets[0].id': "
                   "'HuggingFaceH4/ultrafeedback_binarized' is neither"),
            std::string::npos)
      << e;
}

// The handbook's Zephyr DPO recipe, unchanged, trains two steps on the tiny llama with the bundled
// pairs given as a local mixture (scoring the token rewards first); logs TRL's metrics.
TEST(Recipes, HandbookRecipeTrainsOnTinyModelWithLocalMixture) {
  const std::string dir = test::fresh_dir("recipe_handbook_run");
  write_rows(dir + "/train.jsonl", "tiny_prefs.train.jsonl", 12);
  write_rows(dir + "/test_prefs.jsonl", "tiny_prefs.eval.jsonl", 4);
  const std::string out = dir + "/run";
  std::string log;
  const std::string cmd =
      test::treg_binary() + " train --config " +
      recipe("handbook-zephyr-7b-beta-dpo-config_full.yaml") +
      " model_name_or_path=" + test::tiny_model("llama") + " output_dir=" + out +
      " 'dataset_mixture={datasets: [{id: " + dir + "/train.jsonl, weight: 0.5}, {id: " + dir +
      ", split: test_prefs}], test_split_size: 4, seed: 0}'" +
      " device=cpu max_steps=2 per_device_train_batch_size=2 gradient_accumulation_steps=1"
      " per_device_eval_batch_size=4 eval_steps=1 logging_steps=1 score_batch_size=4 "
      "report_pairs=1 2>&1";
  ASSERT_EQ(test::run_command(cmd, &log), 0) << log;
  EXPECT_NE(log.find("accepted without effect"), std::string::npos)
      << log;                                                 // hub_model_id, push_to_hub, ...
  EXPECT_EQ(lines_of(out + "/data/train.jsonl").size(), 6u);  // 6 + 4 rows, 4 of them held out
  EXPECT_EQ(lines_of(out + "/data/eval.jsonl").size(), 4u);
  EXPECT_TRUE(file_exists(out + "/checkpoint-2/model.safetensors"));
  const std::string resolved = read_file(out + "/config.yaml");
  EXPECT_NE(resolved.find("beta: 0.01\n"), std::string::npos) << resolved;
  EXPECT_NE(resolved.find("loss_type: \"sigmoid\"\n"), std::string::npos) << resolved;
  EXPECT_NE(resolved.find("learning_rate: 5e-07\n"), std::string::npos) << resolved;
  const std::string metrics = read_file(out + "/metrics.jsonl");
  EXPECT_NE(metrics.find("\"logits/chosen\""), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"eval_logits/rejected\""), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"eval_rewards/accuracies\""), std::string::npos) << metrics;
}

}  // namespace
}  // namespace treg
