// Supervised fine-tuning as an objective of the shared training loop (sft.h).
#include "treg/sft.h"

#include <spdlog/spdlog.h>

#include "treg/autocast.h"
#include "treg/chat_template.h"
#include "treg/data.h"
#include "treg/data_sources.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/policy_logprobs.h"
#include "treg/runtime.h"
#include "treg/tokenizer.h"

namespace treg {

SftBatch collate_sft(const std::vector<const SftSequence*>& seqs, bool packing,
                     int64_t max_length) {
  // Rows as lists of sequences.
  std::vector<std::vector<const SftSequence*>> rows;
  std::vector<int64_t> row_len;
  for (const SftSequence* s : seqs) {
    const int64_t n = static_cast<int64_t>(s->prompt_ids.size() + s->completion_ids.size());
    size_t r = rows.size();
    if (packing)
      for (size_t k = 0; k < rows.size(); ++k)
        if (row_len[k] + n <= max_length) {
          r = k;
          break;
        }
    if (r == rows.size()) {
      rows.emplace_back();
      row_len.push_back(0);
    }
    rows[r].push_back(s);
    row_len[r] += n;
  }
  const int64_t B = static_cast<int64_t>(rows.size());
  const int64_t T = rows.empty() ? 0 : *std::max_element(row_len.begin(), row_len.end());
  SftBatch b;
  b.packed = rows.size() < seqs.size();
  b.ids = torch::zeros({B, T}, torch::kInt64);
  b.segments = torch::zeros({B, T}, torch::kInt64);
  b.targets = torch::zeros({B, T}, torch::kInt64);
  auto ids = b.ids.accessor<int64_t, 2>();
  auto seg = b.segments.accessor<int64_t, 2>();
  auto tgt = b.targets.accessor<int64_t, 2>();
  for (int64_t r = 0; r < B; ++r) {
    int64_t t = 0, k = 0;
    for (const SftSequence* s : rows[static_cast<size_t>(r)]) {
      ++k;
      for (int64_t id : s->prompt_ids) ids[r][t] = id, seg[r][t++] = k;
      for (int64_t id : s->completion_ids) ids[r][t] = id, seg[r][t] = k, tgt[r][t++] = 1;
      b.completion_tokens += static_cast<int64_t>(s->completion_ids.size());
    }
    b.tokens += t;
  }
  return b;
}

SftLoss sft_loss(CausalLM& policy, const SftBatch& batch, bool bf16) {
  // The ids, segments and targets stay on the CPU: the model and the log-prob pass move what they
  // need, and nothing here waits for the device.
  const torch::Device device = policy->parameters().front().device();
  const torch::Tensor &ids = batch.ids, &segments = batch.segments;
  PolicyTokenOutputs lp;
  {
    AutocastGuard autocast(device, bf16);
    torch::Tensor targets = batch.targets;
    torch::Tensor hidden;
    if (batch.packed) {
      hidden = policy->forward_packed(ids, segments);
      // A segment's first token is never predicted from the previous segment's last one.
      targets = targets * packed_target_mask(segments);
    } else {
      hidden = policy->forward(ids, segments.gt(0).to(torch::kInt64));
    }
    lp = policy_token_outputs(policy, hidden, ids, targets);  // [B, T-1]
  }
  SftLoss out;
  out.nll_sum = -lp.logps.sum();
  out.hits = lp.argmax_hits.sum();
  return out;
}

SftObjective::SftObjective(const Config& config, std::vector<SftSequence> train,
                           std::vector<SftSequence> eval, std::string name)
    : config_(config), train_(std::move(train)), eval_(std::move(eval)), name_(std::move(name)) {}

double SftObjective::units(const std::vector<int64_t>& examples) const {
  double n = 0;
  for (int64_t i : examples)
    n += static_cast<double>(train_.at(static_cast<size_t>(i)).completion_ids.size());
  return n;
}

MicroBatchLoss SftObjective::micro_batch(CausalLM& policy, const std::vector<int64_t>& examples,
                                         int64_t /*step*/, double step_units,
                                         int64_t /*accumulation*/) {
  std::vector<const SftSequence*> seqs;
  for (int64_t i : examples) seqs.push_back(&train_.at(static_cast<size_t>(i)));
  SftBatch batch = collate_sft(seqs, config_.packing, config_.max_length);
  SftLoss l = sft_loss(policy, batch, config_.bf16);
  const double n = static_cast<double>(batch.completion_tokens);
  sums_.add(l, n);
  // Σ over the step's micro-batches of nll_sum / step_units = the step's token-mean NLL.
  return {l.nll_sum / step_units, l.nll_sum.detach() / std::max(1.0, n), batch.tokens};
}

void SftObjective::Sums::add(const SftLoss& l, double completion_tokens) {
  const torch::Tensor nll_d = l.nll_sum.detach().to(torch::kFloat64);
  nll = nll.defined() ? nll + nll_d : nll_d;
  hits = hits.defined() ? hits + l.hits : l.hits;
  tokens += completion_tokens;
}

std::map<std::string, double> SftObjective::means(const Sums& s) {
  if (s.tokens == 0) return {};
  return {{"loss", s.nll.item<double>() / s.tokens},
          {"mean_token_accuracy", s.hits.item<double>() / s.tokens},
          {"num_tokens", s.tokens}};
}

std::map<std::string, double> SftObjective::metrics() const { return means(sums_); }

std::map<std::string, double> SftObjective::evaluate(CausalLM& policy) {
  Sums s;
  const size_t bs = static_cast<size_t>(std::max<int64_t>(1, config_.per_device_eval_batch_size));
  for (size_t start = 0; start < eval_.size(); start += bs) {
    std::vector<const SftSequence*> seqs;
    for (size_t i = start; i < std::min(eval_.size(), start + bs); ++i) seqs.push_back(&eval_[i]);
    SftBatch batch = collate_sft(seqs, config_.packing, config_.max_length);
    s.add(sft_loss(policy, batch, config_.bf16), static_cast<double>(batch.completion_tokens));
  }
  return means(s);
}

std::string SftObjective::summary(const std::map<std::string, double>& v,
                                  const std::string& prefix) const {
  auto get = [&](const std::string& k) {
    auto it = v.find(prefix + k);
    return it == v.end() ? 0.0 : it->second;
  };
  return fmt::format("loss {:.4f} token_acc {:.3f}", get("loss"), get("mean_token_accuracy"));
}

namespace {

std::vector<SftSequence> read_split(const Config& c, const std::string& split,
                                    const Tokenizer& tok, const ChatTemplate& chat) {
  const DataOptions opts =
      data_options(c, path_join(c.output_dir, "bad_rows.sft." + split + ".jsonl"));
  const std::string path = split_data_file(c, split);
  PreferenceData data = load_sft_data(path, tok, chat, opts);
  spdlog::info("sft {} ({}): {} rows -> {} sequences; {} bad rows skipped, {} prompts and {} "
               "completions cut; {} prompt + {} completion tokens",
               path, split, data.stats.rows, data.stats.kept, data.stats.bad_rows,
               data.stats.prompts_truncated, data.stats.chosen_truncated, data.stats.prompt_tokens,
               data.stats.response_tokens / 2);
  std::vector<SftSequence> out;
  out.reserve(data.pairs.size());
  for (TokenizedPair& p : data.pairs)
    out.push_back({std::move(p.prompt_ids), std::move(p.chosen_ids)});
  return out;
}

}  // namespace

TrainResult run_sft(const Config& config) {
  make_dirs(config.output_dir);
  prepare_output_dir(config);  // refuses a used output_dir before the data is read
  auto tok = load_tokenizer(config.model_name_or_path);
  const ChatTemplate chat = make_chat_template(*tok, config.chat_template);
  std::vector<SftSequence> train = read_split(config, "train", *tok, chat);
  std::vector<SftSequence> eval;
  if (has_eval_split(config)) eval = read_split(config, "eval", *tok, chat);
  const torch::Device device = parse_device(config.device, "config key 'device'");
  apply_tf32(config.tf32, device);
  const std::string dev = device.is_cuda() ? "cuda" : "cpu";
  spdlog::info("sft: policy {} on {} (fp32 master weights{}){}", config.model_name_or_path, dev,
               config.bf16 ? ", bf16 autocast forward" : "",
               config.packing ? ", packed rows of up to max_length tokens" : "");
  CausalLM policy = load_policy(config, device);
  auto objective = std::make_shared<SftObjective>(config, std::move(train), std::move(eval),
                                                  split_data_file(config, "train"));
  Trainer trainer(config, policy, objective);
  return trainer.train();
}

}  // namespace treg
