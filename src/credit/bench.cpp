// treg credit-bench: data -> SFT'd reference -> token rewards -> the Table-2 methods -> measurements,
// per seed, with every stage's result on disk so that a stopped bench continues where it was.
#include "treg/credit_bench.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "treg/chat_template.h"
#include "treg/config.h"
#include "treg/data_sources.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/reward_dump.h"
#include "treg/rewards.h"
#include "treg/runtime.h"
#include "treg/sft.h"
#include "treg/trainer.h"

namespace treg {

const std::vector<CreditMethod>& credit_bench_methods() {
  static const std::vector<CreditMethod> methods = {
      {"dpo", "DPO", "", false, false},
      {"dpo-reg", "DPO-REG", "sequence", false, false},
      {"dpo-reg-static", "DPO-REG static w", "static", false, false},
      {"dpo-sft", "DPO-SFT", "", true, false},
      {"dpo-reg-dpo-rewards", "DPO-REG (DPO rewards)", "sequence", false, true},
  };
  return methods;
}

namespace {

using nlohmann::json;

double nan_if_null(const json& j) { return j.is_null() ? NAN : j.get<double>(); }
json null_if_nan(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

// What every run of a seed shares; the stages below set model, data and objective.
Config seed_config(const CreditBenchOptions& o, uint64_t seed, const std::string& seed_dir) {
  Config c;
  c.device = o.device;
  c.max_length = 512;
  c.max_prompt_length = 384;
  c.revision_prompt = credit_revision_prompt_path();
  // The revision demonstrations are rendered SFT rows, which a prefix tokenised apart from the
  // answer would not reproduce (make-sft-data says the same).
  c.assistant_prefix = "";
  c.seed = static_cast<int64_t>(seed);
  c.score_batch_size = 32;
  c.per_device_eval_batch_size = o.eval_batch_size;
  c.lr_scheduler_type = "cosine";
  c.warmup_ratio = 0.1;
  c.logging_steps = 10;
  c.eval_strategy = "no";  // the bench measures on its own held-out pairs
  c.save_strategy = "no";  // the final checkpoint only
  c.save_total_limit = 1;
  c.overwrite_output_dir = true;
  c.reward_dump = path_join(seed_dir, "rewards/prompt.bin");
  return c;
}

// A finished stage's record, or null.
json read_record(const std::string& path) {
  if (!file_exists(path)) return nullptr;
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    spdlog::warn("credit-bench: {} is unreadable ({}); redoing that stage", path, e.what());
    return nullptr;
  }
}

// The seed's held-out pairs, their labels, and the reference's log-probs of them.
struct Heldout {
  std::vector<TokenizedPair> pairs;
  std::vector<CreditTokenLabels> labels;
  std::vector<std::vector<float>> ref_logps;
  int64_t error_tokens = 0, correct_tokens = 0;  // digit tokens of both answers, by label
};

// r̂ of the held-out dump at the planted errors; the dump's pairs must be `h.pairs`.
double dump_reward_auroc(const std::string& dump, const Heldout& h) {
  RewardDumpReader reader(dump);
  if (reader.size() != static_cast<int64_t>(h.pairs.size()))
    fail(dump, std::to_string(reader.size()) + " pairs, but the held-out file has " +
                   std::to_string(h.pairs.size()));
  std::vector<double> scores;
  std::vector<int> labels;
  for (int64_t i = 0; i < reader.size(); ++i) {
    const PairRecord r = reader.read(i);
    const TokenizedPair& p = h.pairs[static_cast<size_t>(i)];
    if (r.chosen.ids != p.chosen_ids || r.rejected.ids != p.rejected_ids)
      fail(dump, "pair " + std::to_string(i) + " holds other tokens than held-out line " +
                     std::to_string(p.source_line));
    const CreditTokenLabels& l = h.labels[static_cast<size_t>(i)];
    append_item_scores(r.chosen.rewards, l.chosen, l.chosen_item, &scores, &labels);
    append_item_scores(r.rejected.rewards, l.rejected, l.rejected_item, &scores, &labels);
  }
  return credit_reward_auroc(scores, labels);
}

// Measures `model_dir` on the held-out set; `heldout_dump` ("" = none) holds the run's r̂. The
// reference has no log-ratio reward (it would be 0 everywhere).
CreditEval evaluate_model(const CreditBenchOptions& o, const std::string& model_dir,
                          const Heldout& h, const Tokenizer& tok, const ChatTemplate& chat,
                          const std::string& heldout_dump, bool is_reference) {
  CreditEval e;
  CausalLM model = load_model(model_dir, parse_device(o.device, "--device"), torch::kFloat32);
  model->eval();
  e.reward_auroc =
      is_reference ? NAN
                   : credit_logratio_auroc(response_logprobs(model, h.pairs, o.eval_batch_size),
                                           h.ref_logps, h.labels, o.beta);
  e.self_reward_auroc = heldout_dump.empty() ? NAN : dump_reward_auroc(heldout_dump, h);
  e.greedy_accuracy =
      credit_greedy_accuracy(model, tok, chat, h.pairs, o.data.task.max_items, o.eval_batch_size);
  e.error_tokens = h.error_tokens;
  e.correct_tokens = h.correct_tokens;
  return e;
}

json eval_json(const CreditEval& e, const std::string& checkpoint) {
  return {{"checkpoint", checkpoint},
          {"reward_auroc", null_if_nan(e.reward_auroc)},
          {"self_reward_auroc", null_if_nan(e.self_reward_auroc)},
          {"greedy_accuracy", e.greedy_accuracy},
          {"error_tokens", e.error_tokens},
          {"correct_tokens", e.correct_tokens}};
}

// Progress over the runs of the whole bench (SFT and each method of each seed), with an ETA from
// the mean time of the runs done so far.
class BenchClock {
 public:
  explicit BenchClock(int64_t total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  void begin(const std::string& what) {
    spdlog::info("credit-bench [{}/{}] {}{}", done_ + 1, total_, what, eta());
  }
  void end(bool computed) {
    ++done_;
    if (computed) ++computed_;
  }

 private:
  std::string eta() const {
    if (computed_ == 0) return "";
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double left = s / static_cast<double>(computed_) * static_cast<double>(total_ - done_);
    return fmt::format(" (elapsed {:.0f} s, about {:.0f} s left)", s, left);
  }
  int64_t total_, done_ = 0, computed_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

CreditReport run_credit_bench(const CreditBenchOptions& o) {
  if (o.model.empty()) fail("credit-bench", "no base model", "pass --model DIR (treg make-tiny)");
  if (o.out.empty()) fail("credit-bench", "no output directory", "pass --out DIR");
  if (o.seeds.empty()) fail("credit-bench", "no seeds");
  std::vector<CreditMethod> methods;
  for (const CreditMethod& m : credit_bench_methods())
    if (o.methods.empty() || std::find(o.methods.begin(), o.methods.end(), m.id) != o.methods.end())
      methods.push_back(m);
  for (const std::string& id : o.methods)
    if (std::none_of(methods.begin(), methods.end(), [&](const CreditMethod& m) { return m.id == id; }))
      fail("credit-bench --methods", "unknown method '" + id + "'",
           "choose among dpo, dpo-reg, dpo-reg-static, dpo-sft, dpo-reg-dpo-rewards");
  const bool need_dpo = std::any_of(methods.begin(), methods.end(),
                                    [](const CreditMethod& m) { return m.dpo_rewards; });
  if (need_dpo && std::none_of(methods.begin(), methods.end(),
                               [](const CreditMethod& m) { return m.id == "dpo"; }))
    fail("credit-bench --methods", "dpo-reg-dpo-rewards takes its rewards from the dpo run",
         "list dpo too");
  check_credit_task_options(o.data.task);
  make_dirs(o.out);

  CreditReport report;
  report.settings = {
      {"base model", o.model},
      {"seeds", std::to_string(o.seeds.size())},
      {"task", "shift each digit by " + std::to_string(kCreditShift) + ", " +
                   std::to_string(o.data.task.min_items) + "-" + std::to_string(o.data.task.max_items) +
                   " digits, " + std::to_string(o.data.task.num_errors) + " planted error(s) per rejected answer"},
      {"data", fmt::format("{} task + {} revision SFT examples, {} train pairs, {} held-out pairs",
                           o.data.sft_examples, o.data.revision_examples, o.data.train_pairs,
                           o.data.heldout_pairs)},
      {"sft", fmt::format("lr {}, {} epochs, batch {}", o.sft_learning_rate, o.sft_epochs,
                          o.sft_batch_size)},
      {"preference training", fmt::format("lr {}, {} epochs, batch {}, beta {}, alpha {}",
                                          o.learning_rate, o.epochs, o.batch_size, o.beta, o.alpha)},
      {"device", o.device}};
  CreditMethodResult ref_row{"SFT reference", o.seeds, {}, {}, {}};
  std::vector<CreditMethodResult> rows;
  for (const CreditMethod& m : methods) rows.push_back({m.label, o.seeds, {}, {}, {}});
  json results = {{"settings", json::object()}, {"seeds", json::object()}};
  for (const auto& [k, v] : report.settings) results["settings"][k] = v;

  BenchClock clock(static_cast<int64_t>(o.seeds.size() * (methods.size() + 1)));
  for (uint64_t seed : o.seeds) {
    const std::string seed_dir = path_join(o.out, "seed-" + std::to_string(seed));
    Config base = seed_config(o, seed, seed_dir);
    const RevisionSpec spec = revision_spec(base);
    CreditDataOptions data = o.data;
    data.task.seed = seed;
    const CreditDataFiles files = write_credit_data(path_join(seed_dir, "data"), data, spec);

    // The reference: the base model fine-tuned on the task and the revision demonstrations.
    const std::string sft_dir = path_join(seed_dir, "sft");
    clock.begin(fmt::format("seed {}: SFT of the reference", seed));
    json ref_rec = read_record(path_join(sft_dir, "credit_eval.json"));
    std::string ref_model = ref_rec.is_null() ? "" : ref_rec.at("checkpoint").get<std::string>();
    if (ref_model.empty()) {
      Config c = base;
      c.model_name_or_path = o.model;
      c.train_file = files.sft;
      c.output_dir = sft_dir;
      c.learning_rate = o.sft_learning_rate;
      c.num_train_epochs = o.sft_epochs;
      c.per_device_train_batch_size = o.sft_batch_size;
      c.packing = false;  // short rows of similar length: padding wastes little
      validate_config(c);
      ref_model = run_sft(c).last_checkpoint;
    }

    // Token rewards (Eq. 3) and reference log-probs of the train and held-out pairs.
    Config pref = base;
    pref.model_name_or_path = ref_model;
    pref.train_file = files.train_pairs;
    pref.eval_file = files.heldout_pairs;
    pref.learning_rate = o.learning_rate;
    pref.num_train_epochs = o.epochs;
    pref.per_device_train_batch_size = o.batch_size;
    pref.beta = o.beta;
    {
      Config score = pref;
      score.eval_strategy = "steps";  // so that the held-out split is scored too
      validate_config(score);
      ensure_reward_dumps(score);
    }

    auto tok = load_tokenizer(ref_model);
    const ChatTemplate chat = make_chat_template(*tok, base.chat_template);
    const CreditTokenMap map = check_credit_tokenizer(*tok, chat, PairTokenization::kTrl);
    Heldout h;
    h.pairs = load_preference_data(files.heldout_pairs, *tok, chat,
                                   data_options(pref, path_join(seed_dir, "bad_rows.heldout.jsonl")))
                  .pairs;
    const auto errors = read_credit_error_items(files.heldout_pairs);
    for (const TokenizedPair& p : h.pairs) {
      h.labels.push_back(credit_token_labels(p, errors.at(p.source_line), map));
      const CreditTokenLabels& l = h.labels.back();
      for (size_t t = 0; t < l.rejected.size(); ++t)
        if (l.rejected_item[t]) (l.rejected[t] ? h.error_tokens : h.correct_tokens) += 1;
      for (uint8_t is_item : l.chosen_item) h.correct_tokens += is_item;
    }
    {
      CausalLM ref = load_model(ref_model, parse_device(o.device, "--device"), torch::kFloat32);
      ref->eval();
      h.ref_logps = response_logprobs(ref, h.pairs, o.eval_batch_size);
    }
    if (ref_rec.is_null()) {
      const CreditEval e = evaluate_model(o, ref_model, h, *tok, chat,
                                          pref.eval_reward_dump_path(), /*is_reference=*/true);
      ref_rec = eval_json(e, ref_model);
      write_file_atomic(path_join(sft_dir, "credit_eval.json"), ref_rec.dump(2) + "\n");
      clock.end(true);
    } else {
      clock.end(false);
    }
    spdlog::info("credit-bench seed {}: reference r̂ AUROC {:.3f}, greedy accuracy {:.3f}", seed,
                 nan_if_null(ref_rec["self_reward_auroc"]), ref_rec["greedy_accuracy"].get<double>());
    ref_row.self_reward_auroc.push_back(nan_if_null(ref_rec["self_reward_auroc"]));
    ref_row.greedy_accuracy.push_back(ref_rec["greedy_accuracy"].get<double>());
    results["seeds"][std::to_string(seed)]["SFT reference"] = ref_rec;

    std::string dpo_checkpoint;
    for (size_t k = 0; k < methods.size(); ++k) {
      const CreditMethod& m = methods[k];
      const std::string run_dir = path_join(seed_dir, m.id);
      clock.begin(fmt::format("seed {}: {}", seed, m.label));
      json rec = read_record(path_join(run_dir, "credit_eval.json"));
      if (rec.is_null()) {
        Config c = pref;
        c.output_dir = run_dir;
        std::string heldout_dump;
        if (!m.treg_weighting.empty()) {
          c.treg_alpha = o.alpha;
          c.treg_weighting = m.treg_weighting;
          heldout_dump = pref.eval_reward_dump_path();
        }
        if (m.sft) c.sft_alpha = o.alpha;
        if (m.dpo_rewards) {
          c.reward_source = "dpo";
          c.dpo_model = dpo_checkpoint;
          c.reward_dump = path_join(seed_dir, "rewards/dpo.bin");
          Config score = c;
          score.eval_strategy = "steps";  // so that the held-out split is scored too
          validate_config(score);
          ensure_reward_dumps(score);
          heldout_dump = c.eval_reward_dump_path();
        }
        validate_config(c);
        const TrainResult r = run_training(c);
        const CreditEval e = evaluate_model(o, r.last_checkpoint, h, *tok, chat, heldout_dump, false);
        rec = eval_json(e, r.last_checkpoint);
        write_file_atomic(path_join(run_dir, "credit_eval.json"), rec.dump(2) + "\n");
        clock.end(true);
      } else {
        clock.end(false);
      }
      if (m.id == "dpo") dpo_checkpoint = rec.at("checkpoint").get<std::string>();
      spdlog::info("credit-bench seed {}: {}: reward AUROC {:.3f}, r̂ AUROC {:.3f}, greedy {:.3f}",
                   seed, m.label, nan_if_null(rec["reward_auroc"]),
                   nan_if_null(rec["self_reward_auroc"]), rec["greedy_accuracy"].get<double>());
      rows[k].reward_auroc.push_back(nan_if_null(rec["reward_auroc"]));
      if (!rec["self_reward_auroc"].is_null())
        rows[k].self_reward_auroc.push_back(rec["self_reward_auroc"].get<double>());
      rows[k].greedy_accuracy.push_back(rec["greedy_accuracy"].get<double>());
      results["seeds"][std::to_string(seed)][m.label] = rec;
    }
  }
  report.methods.push_back(ref_row);
  for (auto& r : rows) report.methods.push_back(r);
  write_file_atomic(path_join(o.out, "results.json"), results.dump(2) + "\n");
  write_file_atomic(path_join(o.out, "report.html"), render_credit_report(report));
  spdlog::info("credit-bench: results in {} and {}\n{}", path_join(o.out, "report.html"),
               path_join(o.out, "results.json"), render_credit_markdown(report));
  return report;
}

}  // namespace treg
