#include <gtest/gtest.h>

#include "test_util.h"
#include "treg/config.h"
#include "treg/error.h"
#include "treg/io.h"

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
  EXPECT_NE(error_of("model_name_or_path: m\nbeta: [1, 2]\n").find("got a list"), std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: m\nbeta: 1\nbeta: 2\n").find("set twice"), std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: [\n").find("invalid YAML"), std::string::npos);
  EXPECT_NE(error_of("model_name_or_path: m\n", {"beta"}).find("key=value"), std::string::npos);
}

TEST(Config, HuggingFaceOnlyKeysAreAcceptedAndIgnored) {
  Config c = parse_config("model_name_or_path: m\nhub_model_id: x/y\nreport_to: [wandb]\n", "cfg.yaml");
  EXPECT_EQ(c.model_name_or_path, "m");
}

TEST(Config, ResolvedYamlRoundTrips) {
  Config a = parse_config("model_name_or_path: \"m: x\"\nbeta: 0.123456789\nassistant_prefix: \"a\\nb\"\n"
                          "learning_rate: 3e-7\nmax_steps: 7\nuse_weighting: true\n",
                          "cfg.yaml");
  Config b = parse_config(config_to_yaml(a), "resolved.yaml");
  EXPECT_EQ(config_to_yaml(a), config_to_yaml(b));
  EXPECT_EQ(b.model_name_or_path, "m: x");
  EXPECT_EQ(b.assistant_prefix, "a\nb");
  EXPECT_DOUBLE_EQ(b.beta, 0.123456789);
  EXPECT_DOUBLE_EQ(b.learning_rate, 3e-7);
}

TEST(Config, DumpPathsDeriveFromOutputDir) {
  Config c = parse_config("model_name_or_path: m\noutput_dir: run1\n", "cfg.yaml");
  EXPECT_EQ(c.reward_dump_path(), "run1/token_rewards.bin");
  EXPECT_EQ(c.eval_reward_dump_path(), "run1/token_rewards.eval.bin");
}

TEST(Config, BundledConfigsLoad) {
  for (const char* name : {"configs/tiny.yaml", "configs/llama3.yaml", "configs/gemma2.yaml"}) {
    std::string path = test::source_path(name);
    if (!file_exists(path)) continue;  // added with the training issue
    EXPECT_NO_THROW(load_config(path)) << name;
  }
}

}  // namespace
}  // namespace treg
