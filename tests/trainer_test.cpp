// Trainer invariants on the tiny llama model: micro-batch × accumulation equivalence, overfitting
// one batch, resume == uninterrupted (bit for bit on CPU), NaN handling, SIGINT, checkpoint reload,
// rising eval accuracy / margins on held-out pairs, TRL's logits/* metrics, HF's eval/save
// strategies and warmup_steps.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "train_test_util.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/policy_logprobs.h"
#include "treg/safetensors.h"
#include "treg/trainer.h"

using namespace treg;
using namespace treg::test;

namespace {

struct Data {
  std::vector<PairRecord> train, eval;
};
const Data& data() {
  static Data d = [] {
    CausalLM ref = load_tiny();
    return Data{synthetic_pairs(ref, 16, 1), synthetic_pairs(ref, 8, 2)};
  }();
  return d;
}

std::shared_ptr<PairSource> train_src() { return memory_source(data().train, "synthetic-train"); }
std::shared_ptr<PairSource> eval_src() { return memory_source(data().eval, "synthetic-eval"); }

double last(const TrainResult& r, const std::string& key) {
  for (auto it = r.history.rbegin(); it != r.history.rend(); ++it)
    if (it->values.count(key)) return it->values.at(key);
  ADD_FAILURE() << "no " << key;
  return NAN;
}

}  // namespace

// One big batch of 4 pairs vs 2 × 2 vs 4 × 1: the accumulated gradients agree (to fp32 summation
// order) and so do the parameters after three optimizer steps.
TEST(Trainer, MicroBatchAccumulationEquivalence) {
  std::vector<std::vector<torch::Tensor>> grads, params;
  for (auto [b, a] : std::vector<std::pair<int64_t, int64_t>>{{4, 1}, {2, 2}, {1, 4}}) {
    Config c = tiny_train_config(fresh_dir("accum_" + std::to_string(b)));
    c.per_device_train_batch_size = b;
    c.gradient_accumulation_steps = a;
    c.max_steps = 3;
    c.max_grad_norm = 0.5;  // clipping is on the accumulated gradient, so it must agree too
    CausalLM model = load_tiny();
    Trainer t(c, model, train_src(), nullptr);
    // Gradient of step 0 assembled the way train() does.
    for (int64_t m = 0; m < a; ++m) {
      std::vector<PairRecord> recs;
      for (auto i : t.plan().micro_batch_pairs(0, m)) recs.push_back(data().train[static_cast<size_t>(i)]);
      auto& objective = dynamic_cast<PreferenceObjective&>(t.objective());
      (objective.compute_loss(model, collate_pairs(recs, "x")).loss / static_cast<double>(a))
          .backward();
    }
    std::vector<torch::Tensor> g;
    for (auto& p : model->parameters()) g.push_back(p.grad().clone());
    grads.push_back(g);
    model->zero_grad();
    t.train();
    std::vector<torch::Tensor> p;
    for (auto& q : model->parameters()) p.push_back(q.detach().clone());
    params.push_back(p);
  }
  for (size_t k = 1; k < grads.size(); ++k)
    for (size_t i = 0; i < grads[0].size(); ++i) {
      EXPECT_TRUE(torch::allclose(grads[k][i], grads[0][i], 1e-4, 1e-7)) << "grad " << i << " config " << k;
      EXPECT_TRUE(torch::allclose(params[k][i], params[0][i], 1e-4, 1e-6)) << "param " << i << " config " << k;
    }
}

// Four pairs, trained on repeatedly: every pair ends up ranked right.
TEST(Trainer, OverfitsOneBatch) {
  Config c = tiny_train_config(fresh_dir("overfit"));
  c.per_device_train_batch_size = 4;
  c.gradient_accumulation_steps = 1;
  c.max_steps = 25;
  c.lr_scheduler_type = "constant";
  std::vector<PairRecord> four(data().train.begin(), data().train.begin() + 4);
  Trainer t(c, load_tiny(), memory_source(four, "four"), nullptr);
  TrainResult r = t.train();
  EXPECT_EQ(r.steps_done, 25);
  EXPECT_DOUBLE_EQ(last(r, "rewards/accuracies"), 1.0);
  EXPECT_GT(last(r, "rewards/margins"), 0.5);
  EXPECT_LT(last(r, "loss"), r.history.front().values.at("loss"));
}

// Stopped at step 3 (as SIGINT does) and resumed with resume_from_checkpoint=auto, the run ends with
// exactly the parameters and metrics of an uninterrupted run.
TEST(Trainer, ResumeEqualsUninterruptedBitForBit) {
  auto run = [&](const std::string& dir, bool interrupt) {
    Config c = tiny_train_config(dir);
    c.max_steps = 6;
    c.save_steps = 2;
    c.save_total_limit = 2;
    CausalLM model = load_tiny();
    if (interrupt) {
      TrainerHooks hooks;
      hooks.after_step = [](int64_t s) {
        if (s == 3) std::raise(SIGINT);  // the real signal path
      };
      TrainResult first = Trainer(c, model, train_src(), eval_src(), hooks).train();
      EXPECT_TRUE(first.interrupted);
      EXPECT_EQ(first.steps_done, 3);
      model = load_tiny();  // a fresh process: weights come from the checkpoint
      c.resume_from_checkpoint = "auto";
    }
    TrainResult r = Trainer(c, model, train_src(), eval_src()).train();
    return std::make_pair(model, r);
  };
  const std::string dir_b = fresh_dir("resume_b");
  auto [m1, r1] = run(fresh_dir("resume_a"), false);
  auto [m2, r2] = run(dir_b, true);
  auto p1 = m1->parameters(), p2 = m2->parameters();
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(torch::equal(p1[i], p2[i])) << "param " << i;
  ASSERT_EQ(r1.history.size(), r2.history.size());
  for (size_t i = 0; i < r1.history.size(); ++i)
    for (const char* k : {"loss", "rewards/margins", "grad_norm", "learning_rate", "eval_loss"})
      if (r1.history[i].values.count(k))
        EXPECT_EQ(r1.history[i].values.at(k), r2.history[i].values.at(k)) << k << " event " << i;
  // save_total_limit 2: checkpoint-4 and the final checkpoint-6 remain.
  EXPECT_EQ(list_checkpoints(dir_b), (std::vector<std::string>{dir_b + "/checkpoint-4", dir_b + "/checkpoint-6"}));
}

// save_dtype bfloat16: the checkpoint's HF model is bf16 (half the bytes; config.json says so),
// the fp32 master weights sit beside it, and a run resumed from such a checkpoint ends exactly where
// an uninterrupted one does. The default writes no master file (the model is the master).
TEST(Trainer, Bf16ExportKeepsFp32MasterWeightsForResume) {
  auto run = [&](const std::string& dir, bool interrupt, const std::string& save_dtype) {
    Config c = tiny_train_config(dir);
    c.max_steps = 4;
    c.save_steps = 2;
    c.save_dtype = save_dtype;
    CausalLM model = load_tiny();
    if (interrupt) {
      TrainerHooks hooks;
      hooks.after_step = [](int64_t s) {
        if (s == 3) std::raise(SIGINT);
      };
      EXPECT_TRUE(Trainer(c, model, train_src(), nullptr, hooks).train().interrupted);
      model = load_tiny();
      c.resume_from_checkpoint = "auto";
    }
    Trainer(c, model, train_src(), nullptr).train();
    return model;
  };
  const std::string dir = fresh_dir("bf16_export_b");
  CausalLM m1 = run(fresh_dir("bf16_export_a"), false, "bfloat16");
  CausalLM m2 = run(dir, true, "bfloat16");
  auto p1 = m1->named_parameters(), p2 = m2->named_parameters();
  SafetensorsFile model(dir + "/checkpoint-4/model.safetensors");
  SafetensorsFile master(dir + "/checkpoint-4/master_weights.safetensors");
  for (const auto& p : p1) {
    EXPECT_TRUE(torch::equal(p.value(), p2[p.key()])) << p.key();
    EXPECT_EQ(model.entry(p.key()).dtype, "BF16") << p.key();
    EXPECT_EQ(master.entry(p.key()).dtype, "F32") << p.key();
    EXPECT_TRUE(torch::equal(master.load(p.key(), torch::kFloat32), p.value())) << p.key();
    EXPECT_TRUE(torch::equal(model.load(p.key(), torch::kFloat32),
                             p.value().to(torch::kBFloat16).to(torch::kFloat32)))
        << p.key();
  }
  const auto cfg = nlohmann::json::parse(read_file(dir + "/checkpoint-4/config.json"));
  EXPECT_EQ(cfg["torch_dtype"], "bfloat16");
  const std::string plain = fresh_dir("bf16_export_default");
  run(plain, false, "");
  EXPECT_FALSE(file_exists(plain + "/checkpoint-4/master_weights.safetensors"));
  EXPECT_EQ(SafetensorsFile(plain + "/checkpoint-4/model.safetensors")
                .entry("model.norm.weight")
                .dtype,
            "F32");
}

// A NaN at step 4 stops the run naming the step and the metric; checkpoint-2 stays intact and no later
// state is saved.
TEST(Trainer, NanStopsAndKeepsLastGoodCheckpoint) {
  const std::string dir = fresh_dir("nan");
  Config c = tiny_train_config(dir);
  c.max_steps = 6;
  c.save_steps = 2;
  TrainerHooks hooks;
  hooks.after_loss = [](int64_t step, LossOutput& out) {
    if (step == 4) out.loss = out.loss * std::numeric_limits<double>::quiet_NaN();
  };
  try {
    Trainer(c, load_tiny(), train_src(), nullptr, hooks).train();
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("step 4"), std::string::npos) << msg;
    EXPECT_NE(msg.find("loss is nan"), std::string::npos) << msg;
    EXPECT_NE(msg.find("checkpoint-2"), std::string::npos) << msg;
  }
  EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"checkpoint-2", "config.yaml", "metrics.jsonl"}));
  CausalLM m = load_tiny();
  Config c2 = c;
  Trainer t(c2, m, train_src(), nullptr);
  TrainerState s = load_checkpoint_dir(dir + "/checkpoint-2", m, t.optimizer());
  EXPECT_EQ(s.global_step, 2);
}

// A poisoned reward-dump value (NaN reference log-prob) is caught the same way.
TEST(Trainer, PoisonedDumpValueNamesStep) {
  auto pairs = data().train;
  for (auto& p : pairs) p.chosen.ref_logps[0] = std::numeric_limits<float>::quiet_NaN();
  Config c = tiny_train_config(fresh_dir("poison"));
  c.max_steps = 2;
  try {
    Trainer(c, load_tiny(), memory_source(pairs, "poisoned.bin"), nullptr).train();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("step 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("poisoned.bin"), std::string::npos) << e.what();
  }
}

// The saved checkpoint is a loadable HF directory that reproduces the trained policy's log-probs.
TEST(Trainer, CheckpointReloadsWithSameLogprobs) {
  const std::string dir = fresh_dir("reload");
  Config c = tiny_train_config(dir);
  c.max_steps = 3;
  CausalLM model = load_tiny();
  TrainResult r = Trainer(c, model, train_src(), nullptr).train();
  EXPECT_EQ(r.last_checkpoint, dir + "/checkpoint-3");
  CausalLM back = load_model(r.last_checkpoint, torch::kCPU, torch::kFloat32);
  auto ids = torch::tensor({5, 70, 80, 160, 9, 100}, torch::kInt64).unsqueeze(0);
  torch::NoGradGuard ng;
  auto a = next_token_logprobs(model, ids, torch::ones_like(ids)).logps;
  auto b = next_token_logprobs(back, ids, torch::ones_like(ids)).logps;
  EXPECT_TRUE(torch::equal(a, b));
  for (const char* f : {"config.json", "model.safetensors", "optimizer.pt", "trainer_state.pt", "trainer_state.json"})
    EXPECT_TRUE(file_exists(r.last_checkpoint + "/" + f)) << f;
  EXPECT_TRUE(file_exists(dir + "/report.html"));
  EXPECT_TRUE(file_exists(dir + "/config.yaml"));
  EXPECT_EQ(load_config(dir + "/config.yaml").treg_alpha, 0.25);
}

// Held-out pairs share the preference (chosen tokens from one range, rejected from another): DPO-REG
// on the training pairs raises eval accuracy and margins.
TEST(Trainer, EvalAccuracyAndMarginsRise) {
  Config c = tiny_train_config(fresh_dir("eval_rise"));
  c.max_steps = 40;
  c.eval_steps = 20;
  c.beta = 0.5;
  c.learning_rate = 2e-3;
  c.lr_scheduler_type = "constant_with_warmup";
  Trainer t(c, load_tiny(), train_src(), eval_src());
  auto before = t.evaluate();
  TrainResult r = t.train();
  EXPECT_NEAR(before.at("eval_rewards/margins"), 0.0, 1e-5);  // policy == reference at the start
  EXPECT_GE(last(r, "eval_rewards/accuracies"), 0.875);
  EXPECT_GT(last(r, "eval_rewards/margins"), before.at("eval_rewards/margins") + 0.1);
  const std::string jsonl = read_file(c.output_dir + "/metrics.jsonl");
  EXPECT_NE(jsonl.find("\"eval_rewards/accuracies\""), std::string::npos);
  EXPECT_NE(jsonl.find("\"treg/weight\""), std::string::npos);
  const std::string html = read_file(c.output_dir + "/report.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("Token rewards"), std::string::npos);
}

// TRL's logits/chosen and logits/rejected: the mean of the policy's logits over the positions that
// predict a response token and the whole vocabulary, here from the full [2B, T, V] logits (final
// softcap included: gemma2) against treg's chunked pass, which never builds them; and the value the
// trainer's eval logs for one batch.
TEST(Trainer, LogitMetricsEqualTheMeanOfTheFullLogits) {
  for (const char* arch : {"llama", "gemma2"}) {
    SCOPED_TRACE(arch);
    CausalLM model = load_tiny(arch);
    const int64_t V = model->args().vocab_size, B = 3;
    ASSERT_GT(V, 210);  // synthetic_pairs draws ids below 210
    std::vector<PairRecord> pairs = synthetic_pairs(model, B, 11);
    PairBatch b = collate_pairs(pairs, "x");
    torch::NoGradGuard no_grad;
    torch::Tensor logits =
        model->lm_logits(model->forward(b.ids, b.mask)).to(torch::kFloat64);  // [2B, T, V]
    // TRL's mean over the positions predicting each response token, moved by `shift` positions.
    auto reference = [&](int side, int64_t shift, double* count) {
      double sum = 0;
      *count = 0;
      for (int64_t i = 0; i < B; ++i) {
        const PairRecord& p = pairs[static_cast<size_t>(i)];
        const int64_t P = static_cast<int64_t>(p.prompt_ids.size());
        const int64_t R = static_cast<int64_t>((side == 0 ? p.chosen : p.rejected).ids.size());
        sum += logits[side * B + i].narrow(0, P - 1 + shift, R).sum().item<double>();
        *count += static_cast<double>(R * V);
      }
      return sum / *count;
    };
    // Response token j sits at position P + j and is predicted by position P + j - 1.
    double ref_count[2], unused;
    const double ref_chosen = reference(0, 0, &ref_count[0]),
                 ref_rejected = reference(1, 0, &ref_count[1]);
    const double tol = 1e-6 * std::abs(ref_chosen) + 1e-9;

    PolicyTokenOutputs out =
        next_token_logprobs_and_logit_sums(model, b.ids, b.mask, false, /*chunk_tokens=*/5);
    LogitStats s = response_logit_stats(b, response_outputs(model, b, false, true).logit_sums, V);
    EXPECT_EQ(s.chosen_count, ref_count[0]);
    EXPECT_EQ(s.rejected_count, ref_count[1]);
    EXPECT_NEAR(s.chosen_sum.item<double>() / s.chosen_count, ref_chosen, tol);
    EXPECT_NEAR(s.rejected_sum.item<double>() / s.rejected_count, ref_rejected, tol);
    // The tolerance tells positions apart: one position later is far off.
    EXPECT_GT(std::abs(reference(0, 1, &unused) - ref_chosen), 100 * tol);
    EXPECT_GT(std::abs(ref_rejected - ref_chosen), 100 * tol);
    // Asking for the sums leaves the log-probs as they are.
    EXPECT_TRUE(torch::equal(out.logps, next_token_logprobs(model, b.ids, b.mask, false, 5).logps));

    Config c = tiny_train_config(fresh_dir(std::string("logit_metrics_") + arch));
    c.model_name_or_path = tiny_model(arch);
    c.per_device_eval_batch_size = B;
    c.gradient_accumulation_steps = 1;
    Trainer t(c, model, memory_source(pairs, "p"), memory_source(pairs, "p"));
    auto eval = t.evaluate();
    EXPECT_NEAR(eval.at("eval_logits/chosen"), ref_chosen, tol);
    EXPECT_NEAR(eval.at("eval_logits/rejected"), ref_rejected, tol);
  }
}

// HF's strategies: "no" evaluates never and saves only the final checkpoint; "epoch" acts at every
// epoch's end (16 pairs / (2 × 2) = 4 steps per epoch); warmup_steps overrides warmup_ratio.
TEST(Trainer, EvalSaveStrategiesAndWarmupSteps) {
  auto eval_steps_of = [](const TrainResult& r) {
    std::vector<int64_t> steps;
    for (const auto& e : r.history)
      if (e.values.count("eval_loss")) steps.push_back(e.step);
    return steps;
  };
  auto checkpoint_names = [](const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& p : list_checkpoints(dir))
      names.push_back(std::filesystem::path(p).filename().string());
    return names;
  };
  Config c = tiny_train_config(fresh_dir("strategy_no"));
  c.max_steps = 4;
  c.eval_steps = 1;
  c.save_steps = 1;
  c.eval_strategy = "no";
  c.save_strategy = "no";
  c.warmup_ratio = 0.5;
  c.warmup_steps = 3;
  c.lr_scheduler_type = "constant_with_warmup";
  TrainResult r = Trainer(c, load_tiny(), train_src(), eval_src()).train();
  EXPECT_TRUE(eval_steps_of(r).empty());
  EXPECT_EQ(checkpoint_names(c.output_dir), (std::vector<std::string>{"checkpoint-4"}));
  std::vector<double> lrs;
  for (const auto& e : r.history) lrs.push_back(e.values.at("learning_rate"));
  ASSERT_EQ(lrs.size(), 4u);
  for (size_t s = 0; s < 4; ++s)
    EXPECT_NEAR(lrs[s], c.learning_rate * std::min(1.0, s / 3.0), 1e-12) << s;

  c = tiny_train_config(fresh_dir("strategy_epoch"));
  c.max_steps = 8;
  c.eval_steps = 1;
  c.save_steps = 1;
  c.eval_strategy = "epoch";
  c.save_strategy = "epoch";
  r = Trainer(c, load_tiny(), train_src(), eval_src()).train();
  EXPECT_EQ(eval_steps_of(r), (std::vector<int64_t>{0, 4, 8}));
  EXPECT_EQ(checkpoint_names(c.output_dir),
            (std::vector<std::string>{"checkpoint-4", "checkpoint-8"}));
}

// `packing: true` lays each pair out as one tree [x | y_w | y_l] (collate_pairs kPrefixShared): the
// loss and every gradient equal the padded layout's, for DPO (sigmoid, with WPO weighting: the
// per-token log Σπ² comes from the same positions) and SimPO, with gradient checkpointing too, and
// the architectures with a sliding window (gemma2) and qk-norm (qwen3).
TEST(Trainer, PrefixSharedPairsGiveThePaddedLossAndGradients) {
  for (const char* arch : {"llama", "gemma2", "qwen3"})
    for (const char* loss : {"sigmoid", "simpo"})
      for (bool checkpointing : {false, true}) {
        SCOPED_TRACE(std::string(arch) + " " + loss + (checkpointing ? " checkpointing" : ""));
        CausalLM model = load_tiny(arch);
        model->set_gradient_checkpointing(checkpointing);
        std::vector<PairRecord> pairs = synthetic_pairs(model, 5, 21);
        auto run = [&](bool packing) {
          Config c = tiny_train_config(fresh_dir(std::string("prefix_shared_") + arch));
          c.model_name_or_path = tiny_model(arch);
          c.loss_type = loss;
          c.use_weighting = std::string(loss) == "sigmoid";
          c.packing = packing;
          PreferenceObjective objective(c, memory_source(pairs, "p"), nullptr);
          PairBatch batch = objective.collate(pairs, "p", model->args());
          EXPECT_EQ(batch.layout, packing ? PairLayout::kPrefixShared : PairLayout::kPadded);
          model->zero_grad();
          LogitStats logits;
          LossOutput out = objective.compute_loss(model, batch, &logits);
          out.loss.backward();
          std::vector<torch::Tensor> g;
          for (auto& p : model->parameters()) g.push_back(p.grad().clone());
          return std::make_tuple(out, logits, g, batch.forward_tokens);
        };
        auto [padded, padded_logits, padded_grads, padded_tokens] = run(false);
        auto [shared, shared_logits, shared_grads, shared_tokens] = run(true);
        EXPECT_LT(shared_tokens, padded_tokens);  // the prompt once instead of twice
        EXPECT_NEAR(shared.loss.item<double>(), padded.loss.item<double>(),
                    1e-5 * std::abs(padded.loss.item<double>()));
        EXPECT_TRUE(torch::allclose(shared.chosen_rewards, padded.chosen_rewards, 1e-4, 1e-6));
        EXPECT_TRUE(torch::allclose(shared.rejected_rewards, padded.rejected_rewards, 1e-4, 1e-6));
        EXPECT_NEAR(shared_logits.chosen_sum.item<double>(), padded_logits.chosen_sum.item<double>(),
                    1e-5 * std::abs(padded_logits.chosen_sum.item<double>()) + 1e-6);
        EXPECT_EQ(shared_logits.rejected_count, padded_logits.rejected_count);
        for (size_t i = 0; i < padded_grads.size(); ++i) {
          const double scale = padded_grads[i].abs().max().item<double>();
          EXPECT_LE((shared_grads[i] - padded_grads[i]).abs().max().item<double>(),
                    1e-4 * scale + 1e-8)
              << "parameter " << i;
        }
      }
}

// Three optimizer steps with `packing: true` end where the padded run ends (to fp32 rounding), and
// log the same metrics.
TEST(Trainer, PackedTrainingFollowsThePaddedRun) {
  std::vector<std::vector<torch::Tensor>> params;
  std::vector<double> losses;
  for (bool packing : {false, true}) {
    Config c = tiny_train_config(fresh_dir(std::string("packed_run_") + (packing ? "on" : "off")));
    c.max_steps = 3;
    c.packing = packing;
    CausalLM model = load_tiny();
    Trainer t(c, model, train_src(), eval_src());
    TrainResult r = t.train();
    losses.push_back(last(r, "loss"));
    std::vector<torch::Tensor> p;
    for (auto& q : model->parameters()) p.push_back(q.detach().clone());
    params.push_back(p);
  }
  EXPECT_NEAR(losses[1], losses[0], 1e-5 * std::abs(losses[0]));
  for (size_t i = 0; i < params[0].size(); ++i)
    EXPECT_TRUE(torch::allclose(params[1][i], params[0][i], 1e-4, 1e-6)) << "parameter " << i;
}
