// treg sft: SFT rows -> the same token layout as preference pairs, the completion-only loss, its
// step normalisation (micro-batch × accumulation equivalence), training in the shared loop, and the
// CLI end to end.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "train_test_util.h"
#include "treg/chat_template.h"
#include "treg/data.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/rewards.h"
#include "treg/sft.h"
#include "treg/tokenizer.h"

using namespace treg;
using test::error_of;
using test::fresh_dir;
using test::load_tiny;

namespace {

// n sequences of a learnable pattern: prompt 2-5 tokens from [3, 13), completion below.
std::vector<SftSequence> pattern_sequences(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<SftSequence> out;
  for (int64_t i = 0; i < n; ++i) {
    SftSequence s;
    // A pattern a tiny model learns in a hundred steps: the first prompt token (of ten) + 100,
    // repeated once per prompt token, then EOS (completions of different lengths).
    for (int64_t k = 2 + g() % 4; k > 0; --k) s.prompt_ids.push_back(3 + g() % 10);
    for (size_t k = 0; k < s.prompt_ids.size(); ++k) s.completion_ids.push_back(s.prompt_ids[0] + 100);
    s.completion_ids.push_back(2);
    out.push_back(s);
  }
  return out;
}

Config sft_config(const std::string& dir) {
  Config c = test::tiny_train_config(dir);
  c.max_length = 64;
  c.learning_rate = 3e-3;
  c.warmup_ratio = 0;
  c.lr_scheduler_type = "constant";
  return c;
}

}  // namespace

TEST(SftData, RowShapesParseToPromptAndCompletion) {
  RawPair a = parse_sft_line(R"({"prompt": "Hi?", "completion": "Hello."})", "f.jsonl", 3);
  ASSERT_EQ(a.prompt.size(), 1u);
  EXPECT_EQ(a.prompt[0].role, "user");
  EXPECT_EQ(a.prompt[0].content, "Hi?");
  EXPECT_EQ(a.chosen, "Hello.");
  EXPECT_EQ(a.line, 3);
  RawPair b = parse_sft_line(
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},)"
      R"( {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"},)"
      R"( {"role": "assistant", "content": "A2"}]})",
      "f.jsonl", 1);
  ASSERT_EQ(b.prompt.size(), 4u);  // the last assistant turn is the completion
  EXPECT_EQ(b.prompt[3].content, "Q2");
  EXPECT_EQ(b.chosen, "A2");
  RawPair c = parse_sft_line(
      R"({"prompt": [{"role": "user", "content": "Q"}], "completion": [{"role": "assistant", "content": "A"}]})",
      "f.jsonl", 1);
  EXPECT_EQ(c.prompt[0].content, "Q");
  EXPECT_EQ(c.chosen, "A");
}

TEST(SftData, BadRowsNameFileLineAndField) {
  EXPECT_NE(error_of([] { parse_sft_line(R"({"prompt": "x"})", "d.jsonl", 7); })
                .find("d.jsonl:7: missing field 'completion'"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse_sft_line(R"({"messages": [{"role": "user", "content": "x"}]})", "d.jsonl", 2);
            }).find("d.jsonl:2: wrong roles"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_sft_line(R"({"prompt": "x", "completion": " "})", "d.jsonl", 4); })
                .find("d.jsonl:4: empty completion"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_sft_line("{oops", "d.jsonl", 9); }).find("d.jsonl:9: invalid JSON"),
            std::string::npos);
}

// The sequence SFT trains on is, token for token, the chosen side of the same row as a preference
// pair: a model SFT'd here is scored and trained on exactly what it learned.
TEST(SftData, SequencesAreLaidOutAsPreferencePairsAre) {
  const std::string dir = fresh_dir("sft_layout");
  const std::string sft = path_join(dir, "sft.jsonl"), pairs = path_join(dir, "pairs.jsonl");
  write_file_atomic(sft, R"({"prompt": "What is 2+2?", "completion": "It is 4."})"
                         "\n"
                         R"({"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]})"
                         "\n");
  write_file_atomic(pairs,
                    R"({"prompt": "What is 2+2?", "chosen": "It is 4.", "rejected": "Five."})"
                    "\n"
                    R"({"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Seven."})"
                    "\n");
  auto tok = load_tokenizer(test::tiny_model("llama"));
  const ChatTemplate chat = make_chat_template(*tok, "");
  for (auto how : {PairTokenization::kTrl, PairTokenization::kSimpo}) {
    DataOptions opts;
    opts.pair_tokenization = how;
    PreferenceData s = load_sft_data(sft, *tok, chat, opts);
    PreferenceData p = load_preference_data(pairs, *tok, chat, opts);
    ASSERT_EQ(s.pairs.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(s.pairs[i].prompt_ids, p.pairs[i].prompt_ids);
      EXPECT_EQ(s.pairs[i].chosen_ids, p.pairs[i].chosen_ids);
    }
  }
}

TEST(SftBatch, UnpackedAndPackedLayouts) {
  SftSequence a{{5, 6}, {7, 8, 9}}, b{{10}, {11, 12}}, c{{13, 14, 15}, {16}};
  SftBatch u = collate_sft({&a, &b, &c}, /*packing=*/false, 8);
  ASSERT_EQ(u.ids.sizes(), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(u.segments[1].sum().item<int64_t>(), 3);  // b: 3 tokens of segment 1, then padding
  EXPECT_TRUE(torch::equal(u.targets[0], torch::tensor(std::vector<int64_t>{0, 0, 1, 1, 1}))) << u.targets[0];
  EXPECT_EQ(u.completion_tokens, 6);
  EXPECT_EQ(u.tokens, 12);
  // Packed into rows of 8: a (5) + b (3) fill row 0, c (4) opens row 1.
  SftBatch p = collate_sft({&a, &b, &c}, /*packing=*/true, 8);
  ASSERT_EQ(p.ids.sizes(), (std::vector<int64_t>{2, 8}));
  EXPECT_TRUE(torch::equal(p.ids[0], torch::tensor(std::vector<int64_t>{5, 6, 7, 8, 9, 10, 11, 12}))) << p.ids[0];
  EXPECT_TRUE(torch::equal(p.segments[0], torch::tensor(std::vector<int64_t>{1, 1, 1, 1, 1, 2, 2, 2}))) << p.segments[0];
  EXPECT_TRUE(torch::equal(p.segments[1], torch::tensor(std::vector<int64_t>{1, 1, 1, 1, 0, 0, 0, 0}))) << p.segments[1];
  EXPECT_TRUE(torch::equal(p.targets[0], torch::tensor(std::vector<int64_t>{0, 0, 1, 1, 1, 0, 1, 1}))) << p.targets[0];
  EXPECT_EQ(p.completion_tokens, 6);
  EXPECT_FALSE(u.packed);
  EXPECT_TRUE(p.packed);
  EXPECT_EQ(p.tokens, 12);
}

// The loss is -Σ log p over completion tokens only, each sequence conditioned on its own prompt:
// the same number as the log-probs of each sequence alone (next_token_logprobs, itself checked
// against transformers).
TEST(SftLoss, IsTheCompletionNllOfEachSequenceAlone) {
  CausalLM m = load_tiny();
  auto seqs = pattern_sequences(3, 1);
  std::vector<const SftSequence*> ptrs;
  double want = 0, want_hits = 0;
  for (auto& s : seqs) {
    ptrs.push_back(&s);
    std::vector<int64_t> ids = s.prompt_ids;
    ids.insert(ids.end(), s.completion_ids.begin(), s.completion_ids.end());
    auto t = torch::tensor(ids, torch::kInt64).unsqueeze(0);
    torch::NoGradGuard ng;
    auto lp = next_token_logprobs(m, t, torch::ones_like(t)).logps[0];
    const int64_t P = static_cast<int64_t>(s.prompt_ids.size());
    const int64_t C = static_cast<int64_t>(s.completion_ids.size());
    want -= lp.narrow(0, P - 1, C).sum().item<double>();
    // mean_token_accuracy's hits from the full logits of the sequence alone.
    torch::Tensor argmax = m->lm_logits(m->forward(t, torch::ones_like(t)))[0].argmax(-1);  // [T]
    want_hits += argmax.narrow(0, P - 1, C).eq(t[0].narrow(0, P, C)).sum().item<double>();
  }
  SftLoss got = sft_loss(m, collate_sft(ptrs, false, 64), false);
  EXPECT_NEAR(got.nll_sum.item<double>(), want, 1e-4 * std::abs(want));
  EXPECT_EQ(got.hits.item<double>(), want_hits);
}

// Packing changes the layout, not the numbers: the packed loss, its gradient and the argmax hits
// equal the unpacked ones (forward_packed gives each sequence the hidden states it gets alone).
TEST(SftLoss, PackedEqualsUnpacked) {
  auto seqs = pattern_sequences(6, 2);
  std::vector<const SftSequence*> ptrs;
  for (auto& s : seqs) ptrs.push_back(&s);
  std::vector<double> nll, hits;
  std::vector<std::vector<torch::Tensor>> grads;
  for (bool packing : {false, true}) {
    CausalLM m = load_tiny();
    SftBatch b = collate_sft(ptrs, packing, 64);
    ASSERT_EQ(b.packed, packing);
    SftLoss l = sft_loss(m, b, false);
    l.nll_sum.backward();
    nll.push_back(l.nll_sum.item<double>());
    hits.push_back(l.hits.item<double>());
    std::vector<torch::Tensor> g;
    for (auto& p : m->parameters()) g.push_back(p.grad().clone());
    grads.push_back(g);
  }
  EXPECT_NEAR(nll[1], nll[0], 1e-5 * std::abs(nll[0]));
  EXPECT_EQ(hits[1], hits[0]);
  for (size_t i = 0; i < grads[0].size(); ++i)
    EXPECT_TRUE(torch::allclose(grads[0][i], grads[1][i], 1e-4, 1e-6)) << "param " << i;
}

// Sequences of different lengths: the step's loss is the mean over all its completion tokens, so
// 4 × 1, 2 × 2 and 1 × 4 give the same gradient (a per-micro-batch mean would weigh them
// differently).
TEST(SftTrainer, MicroBatchAccumulationEquivalence) {
  auto seqs = pattern_sequences(8, 3);
  std::vector<std::vector<torch::Tensor>> grads;
  for (auto [b, a] : std::vector<std::pair<int64_t, int64_t>>{{4, 1}, {2, 2}, {1, 4}}) {
    Config c = sft_config(fresh_dir("sft_accum_" + std::to_string(b)));
    c.per_device_train_batch_size = b;
    c.gradient_accumulation_steps = a;
    c.max_steps = 1;
    CausalLM model = load_tiny();
    auto obj = std::make_shared<SftObjective>(c, seqs, std::vector<SftSequence>{}, "seqs");
    Trainer t(c, model, obj);
    double units = 0;
    for (int64_t m = 0; m < a; ++m) units += obj->units(t.plan().micro_batch_pairs(0, m));
    for (int64_t m = 0; m < a; ++m)
      obj->micro_batch(model, t.plan().micro_batch_pairs(0, m), 1, units, a).backward.backward();
    std::vector<torch::Tensor> g;
    for (auto& p : model->parameters()) g.push_back(p.grad().clone());
    grads.push_back(g);
  }
  for (size_t k = 1; k < grads.size(); ++k)
    for (size_t i = 0; i < grads[0].size(); ++i)
      EXPECT_TRUE(torch::allclose(grads[0][i], grads[k][i], 1e-4, 1e-6)) << "param " << i;
}

// The shared loop learns the pattern: loss falls and token accuracy rises; metrics.jsonl, the
// checkpoint (HF layout with the tokenizer) and report.html are there.
TEST(SftTrainer, LearnsAPatternInTheSharedLoop) {
  const std::string dir = fresh_dir("sft_learn");
  Config c = sft_config(dir);
  c.per_device_train_batch_size = 8;
  c.gradient_accumulation_steps = 1;
  c.max_steps = 150;
  c.logging_steps = 10;
  c.eval_steps = 150;
  auto obj = std::make_shared<SftObjective>(c, pattern_sequences(64, 5), pattern_sequences(16, 6),
                                            "pattern");
  CausalLM model = load_tiny();
  // The untrained model's eval numbers, measured by the same objective.
  const auto before = obj->evaluate(model);
  TrainResult r = Trainer(c, model, obj).train();
  ASSERT_EQ(r.steps_done, 150);
  double last = NAN, acc1 = NAN;
  for (const auto& e : r.history)
    if (e.values.count("eval_loss")) {
      last = e.values.at("eval_loss");
      acc1 = e.values.at("eval_mean_token_accuracy");
    }
  const double first = before.at("loss"), acc0 = before.at("mean_token_accuracy");
  EXPECT_LT(last, 0.5 * first) << first << " -> " << last;
  EXPECT_GT(acc1, acc0 + 0.3) << acc0 << " -> " << acc1;
  EXPECT_TRUE(file_exists(path_join(r.last_checkpoint, "model.safetensors")));
  EXPECT_TRUE(file_exists(path_join(r.last_checkpoint, "tokenizer_config.json")));
  EXPECT_TRUE(file_exists(path_join(dir, "report.html")));
  const std::string report = read_file(path_join(dir, "report.html"));
  EXPECT_NE(report.find("mean_token_accuracy"), std::string::npos);
}

// treg sft end to end: rows -> checkpoint the other commands load; a bad row names its line.
TEST(SftCli, TrainsFromJsonlAndReportsBadRows) {
  const std::string dir = fresh_dir("sft_cli");
  const std::string data = path_join(dir, "sft.jsonl"), cfg = path_join(dir, "sft.yaml");
  std::string rows;
  for (int i = 0; i < 12; ++i)
    rows += nlohmann::json{{"prompt", "Count to " + std::to_string(i % 4 + 1) + "."},
                           {"completion", std::string("1 2 3 4").substr(0, 2 * (i % 4) + 1)}}
                .dump() +
            "\n";
  write_file_atomic(data, rows);
  write_file_atomic(cfg, "model_name_or_path: " + test::tiny_model("llama") + "\ntrain_file: " +
                             data + "\noutput_dir: " + path_join(dir, "out") +
                             "\ndevice: cpu\nlearning_rate: 1.0e-3\nmax_steps: 3\n"
                             "per_device_train_batch_size: 4\nlogging_steps: 1\nmax_length: 64\n"
                             "max_prompt_length: 32\n");
  std::string out;
  ASSERT_EQ(test::run_command(test::treg_binary() + " sft --config " + cfg, &out), 0) << out;
  const std::string metrics = read_file(path_join(dir, "out/metrics.jsonl"));
  EXPECT_NE(metrics.find("mean_token_accuracy"), std::string::npos) << metrics;
  EXPECT_TRUE(file_exists(path_join(dir, "out/checkpoint-3/config.json")));
  // The result is a model the rest of treg reads.
  EXPECT_EQ(error_of([&] { load_model(path_join(dir, "out/checkpoint-3"), torch::kCPU, torch::kFloat32); }),
            "");

  write_file_atomic(data, rows + "{\"prompt\": \"x\"}\n");
  EXPECT_NE(test::run_command(test::treg_binary() + " sft --config " + cfg +
                                  " overwrite_output_dir=true",
                              &out),
            0);
  EXPECT_NE(out.find("sft.jsonl:13: missing field 'completion'"), std::string::npos) << out;
}

// A revision demonstration, read back as an SFT row, is token for token the context score-tokens
// builds for that direction followed by the answer's ids as the pair lays them out: the model is
// taught exactly what it is later asked.
TEST(RevisionDemos, SftRowsAreTheScoringContextsPlusTheAnswer) {
  auto tok = load_tokenizer(test::tiny_model("llama"));
  const ChatTemplate chat = make_chat_template(*tok, "");
  RawPair pair = parse_pair_line(
      R"({"prompt": "What is the capital of Peru?", "chosen": "Sure! It is Lima.", "rejected": "Ugh. Oslo I guess."})",
      "p.jsonl", 1);
  RevisionSpec spec{load_revision_template(default_revision_prompt_path()), "good", "bad", ""};
  std::vector<RevisionDemo> demos = revision_demonstrations(pair, spec);
  ASSERT_EQ(demos.size(), 4u);
  TokenizedPair tp = tokenize_pair(pair, *tok, chat, nullptr);
  for (size_t i = 0; i < demos.size(); ++i) {
    const RevisionDemo& d = demos[i];
    const std::string& shown = i < 2 ? pair.chosen : pair.rejected;
    const bool better = d.direction == "better";
    EXPECT_EQ(d.completion, better ? pair.chosen : pair.rejected);
    nlohmann::json row = {{"prompt", {{{"role", "user"}, {"content", d.user}}}},
                          {"completion", d.completion}};
    TokenizedPair sft = tokenize_pair(parse_sft_line(row.dump(), "s.jsonl", 1), *tok, chat, nullptr);
    std::vector<int64_t> got = sft.prompt_ids;
    got.insert(got.end(), sft.chosen_ids.begin(), sft.chosen_ids.end());
    std::vector<int64_t> want =
        revision_context_ids(instruction_text(pair.prompt), shown, d.direction, spec, *tok, chat);
    const auto& answer = better ? tp.chosen_ids : tp.rejected_ids;
    want.insert(want.end(), answer.begin(), answer.end());
    EXPECT_EQ(got, want) << "demo " << i;
  }
  spec.assistant_prefix = "[The start of a rewritten {direction} answer]\n";
  EXPECT_NE(error_of([&] { revision_demonstrations(pair, spec); }).find("assistant_prefix"),
            std::string::npos);
}

// treg make-sft-data: per pair one task row and four revision demonstrations, written into a
// directory it makes; treg sft reads them back; a non-empty assistant_prefix is refused.
TEST(SftCli, MakeSftDataWritesTaskAndRevisionRows) {
  const std::string dir = fresh_dir("make_sft_data");
  const std::string pairs = path_join(dir, "pairs.jsonl"), cfg = path_join(dir, "c.yaml");
  write_file_atomic(pairs,
                    R"({"prompt": "Capital of Peru?", "chosen": "Lima.", "rejected": "Oslo."})"
                    "\n\n"
                    R"({"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Seven."})"
                    "\n");
  write_file_atomic(cfg, "model_name_or_path: " + test::tiny_model("llama") + "\ntrain_file: " +
                             pairs + "\nassistant_prefix: \"\"\n");
  const std::string out = path_join(dir, "new/dir/sft.jsonl");
  std::string log;
  ASSERT_EQ(test::run_command(test::treg_binary() + " make-sft-data --config " + cfg + " --out " + out,
                              &log),
            0)
      << log;
  std::ifstream in(out);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 10u);  // 2 pairs x (1 task + 4 revision)
  EXPECT_EQ(rows[0]["completion"][0]["content"], "Lima.");
  EXPECT_EQ(rows[0]["prompt"][0]["content"], "Capital of Peru?");
  // Rows 1-4: shown chosen / rejected x better / worse; "worse" is completed by the rejected answer.
  EXPECT_EQ(rows[2]["completion"][0]["content"], "Oslo.");
  EXPECT_NE(rows[2]["prompt"][0]["content"].get<std::string>().find("worse"), std::string::npos);
  auto tok = load_tokenizer(test::tiny_model("llama"));
  EXPECT_EQ(load_sft_data(out, *tok, make_chat_template(*tok, ""), DataOptions{}).pairs.size(), 10u);

  write_file_atomic(cfg, "model_name_or_path: " + test::tiny_model("llama") + "\ntrain_file: " +
                             pairs + "\n");
  EXPECT_NE(test::run_command(test::treg_binary() + " make-sft-data --config " + cfg + " --out " + out,
                              &log),
            0);
  EXPECT_NE(log.find("assistant_prefix"), std::string::npos) << log;
}
