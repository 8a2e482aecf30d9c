// The credit benchmark's measurements (log-ratio AUROC, response log-probs) against hand-worked and
// independently computed values, and `treg credit-bench` end to end on a tiny configuration:
// every method trained and measured, the report written, a rerun continuing instead of redoing.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "treg/credit_bench.h"
#include "treg/io.h"

namespace treg {
namespace {

using nlohmann::json;

// Two pairs, digits only: the rejected answer's token 1 of pair 0 and token 0 of pair 1 are errors.
std::vector<CreditTokenLabels> two_pair_labels() {
  CreditTokenLabels a, b;
  a.chosen = {0, 0, 0};
  a.chosen_item = {1, 1, 0};  // the last token (end-of-turn) is left out
  a.rejected = {0, 1, 0};
  a.rejected_item = {1, 1, 0};
  b.chosen = {0, 0};
  b.chosen_item = {1, 1};
  b.rejected = {1, 0};
  b.rejected_item = {1, 1};
  return {a, b};
}

TEST(CreditBenchEval, LogRatioAurocCountsErrorTokensRankedBelowCorrectOnes) {
  const auto labels = two_pair_labels();
  std::vector<std::vector<float>> ref = {{-1, -1, -9}, {-1, -1, -9}, {-2, -2}, {-2, -2}};
  // Log-ratios: chosen digits +0.5, +0.5 | rejected 0, -1 | chosen +1, 0 | rejected -2, +0.2;
  // the end-of-turn ratios (+100) are not digits and must not count.
  std::vector<std::vector<float>> pol = {
      {-0.5f, -0.5f, 91}, {-1, -2, 91}, {-1, -2}, {-4, -1.8f}};
  // Errors {-1, -2} against correct {0.5, 0.5, 0, 1, 0, 0.2}: each error is below all six.
  EXPECT_DOUBLE_EQ(credit_logratio_auroc(pol, ref, labels, 0.1), 1.0);
  // One error now ties the two correct zeros (below 0.5, 0.5, 1, 0.2: 4 + 2 halves), the other
  // (0.3) is below 0.5, 0.5, 1 only: (5 + 3) / 12.
  pol[1][1] = -1;
  pol[3][0] = -1.7f;
  EXPECT_NEAR(credit_logratio_auroc(pol, ref, labels, 0.1), 8 / 12.0, 1e-12);
  // β scales every ratio alike: the ranking, hence the AUROC, does not change.
  EXPECT_NEAR(credit_logratio_auroc(pol, ref, labels, 2.0), 8 / 12.0, 1e-12);
  EXPECT_NE(test::error_of([&] { credit_logratio_auroc(pol, ref, {labels[0]}, 0.1); })
                .find("for 1 pairs"),
            std::string::npos);
}

// A padded batch of responses of different prompt lengths gives each response the log-probs of
// its own sequence run alone (next_token_logprobs, itself checked against transformers).
TEST(CreditBenchEval, ResponseLogprobsEqualEachSequenceAlone) {
  CausalLM m = load_model(test::tiny_model("llama"), torch::kCPU, torch::kFloat32);
  std::vector<TokenizedPair> pairs(2);
  pairs[0].prompt_ids = {1, 30, 31, 32, 33, 34};
  pairs[0].chosen_ids = {40, 41, 2};
  pairs[0].rejected_ids = {42, 2};
  pairs[1].prompt_ids = {1, 50};
  pairs[1].chosen_ids = {60, 61, 62, 63, 2};
  pairs[1].rejected_ids = {64, 2};
  const auto got = response_logprobs(m, pairs, /*batch_size=*/3);  // a batch boundary mid-pair
  ASSERT_EQ(got.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const TokenizedPair& p = pairs[i / 2];
    const std::vector<int64_t>& r = i % 2 ? p.rejected_ids : p.chosen_ids;
    std::vector<int64_t> ids = p.prompt_ids;
    ids.insert(ids.end(), r.begin(), r.end());
    torch::Tensor t = torch::tensor(ids, torch::kInt64).unsqueeze(0);
    torch::NoGradGuard ng;
    torch::Tensor lp = next_token_logprobs(m, t, torch::ones_like(t)).logps[0];
    ASSERT_EQ(got[i].size(), r.size());
    for (size_t k = 0; k < r.size(); ++k)
      EXPECT_NEAR(got[i][k], lp[static_cast<int64_t>(p.prompt_ids.size() + k - 1)].item<float>(),
                  1e-5)
          << "response " << i << " token " << k;
  }
}

double value(const json& j) { return j.is_null() ? NAN : j.get<double>(); }

// The whole chain on a tiny configuration: every method's run, measured; the report; a rerun that
// reuses every stage (the results are read back, nothing is trained again).
TEST(CreditBenchCli, RunsEveryMethodAndContinuesWhereItStopped) {
  const std::string dir = test::fresh_dir("credit_bench_cli");
  const std::string out = path_join(dir, "bench");
  const std::string cmd = test::treg_binary() + " credit-bench --model " + test::tiny_model("llama") +
                          " --out " + out +
                          " --seeds 5 --min-items 3 --max-items 4 --sft-examples 24"
                          " --revision-examples 12 --train-pairs 16 --heldout-pairs 8"
                          " --sft-epochs 1 --sft-batch-size 16 --batch-size 8 --epochs 1";
  std::string log;
  ASSERT_EQ(test::run_command(cmd, &log), 0) << log;
  const json r = json::parse(read_file(path_join(out, "results.json")));
  const json& s = r.at("seeds").at("5");
  ASSERT_EQ(s.size(), 6u) << s.dump(2);  // the reference and five methods
  EXPECT_TRUE(s.at("SFT reference").at("reward_auroc").is_null());
  for (const std::string m : {"DPO", "DPO-REG", "DPO-REG static w", "DPO-SFT", "DPO-REG (DPO rewards)"}) {
    const double a = value(s.at(m).at("reward_auroc"));
    EXPECT_TRUE(a >= 0 && a <= 1) << m << " " << a;
    const double acc = s.at(m).at("greedy_accuracy").get<double>();
    EXPECT_TRUE(acc >= 0 && acc <= 1) << m;
    EXPECT_TRUE(file_exists(path_join(s.at(m).at("checkpoint").get<std::string>(), "model.safetensors")));
    EXPECT_GT(s.at(m).at("error_tokens").get<int64_t>(), 0);
  }
  // Only runs with token rewards have an r̂ AUROC; DPO-REG and its static variant share the
  // reference's prompt rewards, the DPO-reward variant has its own.
  EXPECT_TRUE(s.at("DPO").at("self_reward_auroc").is_null());
  EXPECT_TRUE(s.at("DPO-SFT").at("self_reward_auroc").is_null());
  const double ref_self = value(s.at("SFT reference").at("self_reward_auroc"));
  EXPECT_EQ(value(s.at("DPO-REG").at("self_reward_auroc")), ref_self);
  EXPECT_EQ(value(s.at("DPO-REG static w").at("self_reward_auroc")), ref_self);
  EXPECT_FALSE(std::isnan(value(s.at("DPO-REG (DPO rewards)").at("self_reward_auroc"))));
  const std::string html = read_file(path_join(out, "report.html"));
  EXPECT_NE(html.find("DPO-REG (DPO rewards)"), std::string::npos);
  EXPECT_NE(log.find("| method | reward AUROC |"), std::string::npos) << log;

  // A rerun trains nothing and reports the same numbers.
  ASSERT_EQ(test::run_command(cmd, &log), 0) << log;
  EXPECT_EQ(log.find("sft: policy"), std::string::npos) << log;
  EXPECT_EQ(log.find("train: policy"), std::string::npos) << log;
  EXPECT_EQ(json::parse(read_file(path_join(out, "results.json"))), r);

  // A method that is not one is named.
  ASSERT_NE(test::run_command(cmd + " --methods dpo,dpo-rag", &log), 0);
  EXPECT_NE(log.find("unknown method 'dpo-rag'"), std::string::npos) << log;
}

}  // namespace
}  // namespace treg
