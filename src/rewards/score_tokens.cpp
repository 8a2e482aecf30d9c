// score-tokens (paper §3.3): for every response token, log pi_ref under the plain prompt and under
// the two contrastive revision prompts, and the token reward of Eq. 3, written to the reward dump.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <functional>

#include "treg/autocast.h"
#include "treg/build_info.h"
#include "treg/config.h"
#include "treg/data_sources.h"
#include "treg/distributed.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/model.h"
#include "treg/packing.h"
#include "treg/policy_logprobs.h"
#include "treg/progress.h"
#include "treg/rewards.h"
#include "treg/runtime.h"

namespace treg {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string split_dump_path(const Config& c, const std::string& split) {
  return split == "train" ? c.reward_dump_path() : c.eval_reward_dump_path();
}

std::string revision_template_path(const Config& c) {
  return c.revision_prompt.empty() ? default_revision_prompt_path() : c.revision_prompt;
}

// The checked part of the metadata, from already-loaded pieces.
json expected_metadata(const Config& c, const std::string& split, const std::string& data,
                       const Tokenizer& tok, const ChatTemplate& chat) {
  if (data.empty())
    fail("config key '" + std::string(split == "train" ? "train_file" : "eval_file") + "'",
         "is not set", split == "train" ? "set train_file, dataset_mixer or dataset_mixture" : "");
  if (!file_exists(data))
    fail(data, "data file not found", "check `train_file` / `eval_file` in the config");
  json m;
  m["format"] = "treg-reward-dump";
  m["split"] = split;
  m["model"] = model_identity(c.model_name_or_path);
  m["tokenizer"] = tok.fingerprint();
  m["data"] = {{"sha256", sha256_file(data)}, {"rows", count_rows(data)}};
  // The built-in format's name ("model" for the model's own template) and the template's hash.
  m["chat_template"] = {{"name", chat.name().empty() ? "model" : chat.name()},
                        {"sha256", sha256_hex(chat.source())}};
  m["pair_tokenization"] = c.pair_tokenization;
  m["max_length"] = c.max_length;
  m["max_prompt_length"] = c.max_prompt_length;
  m["max_completion_length"] = c.max_completion_length;
  m["skip_bad_rows"] = c.skip_bad_rows;
  m["reward_source"] = c.reward_source;
  // The reference log-probs must come from the forward the policy will run (treg/autocast.h).
  m["precision"] = c.bf16 ? "fp32 weights, bf16 autocast" : "fp32";
  // TF32 rounds the fp32 matmuls' inputs: other log-probs on a GPU, so another dump.
  if (c.tf32) m["precision"] = m["precision"].get<std::string>() + ", TF32 matmuls";
  if (c.reward_source == "prompt") {
    m["revision_prompt"] = {
        {"sha256", sha256_hex(load_revision_template(revision_template_path(c)))},
        {"better_description", c.better_description},
        {"worse_description", c.worse_description},
        {"assistant_prefix", c.assistant_prefix}};
  } else {
    m["dpo_model"] = model_identity(c.dpo_model);
  }
  return m;
}

// Per-sequence log-probs of the tokens from `starts[s]` on, from one forward under NoGradGuard:
// result[s][j] = log p(seqs[s][starts[s] + j] | seqs[s][..starts[s] + j)). Padded rows, or with
// `packed` rows of prefix trees (pack_sequences: the sequences of a group share their common
// prefix). Only the scored positions reach the LM head. `fed` counts the tokens run.
std::vector<std::vector<float>> response_logps(CausalLM& model,
                                               const std::vector<std::vector<int64_t>>& seqs,
                                               const std::vector<int64_t>& starts,
                                               const std::vector<std::vector<size_t>>& groups,
                                               bool packed, torch::Device device, int64_t& fed) {
  const size_t S = seqs.size();
  for (size_t s = 0; s < S; ++s)
    if (starts[s] < 1)
      fail("score-tokens", "a scoring context is empty (nothing to condition the first token on)");
  torch::NoGradGuard no_grad;
  torch::Tensor hidden;  // [rows, T, D]
  std::function<int64_t(size_t, int64_t)> at;  // flat index of sequence s's token t
  PackedSequences pk;
  if (packed) {
    pk = pack_sequences(seqs, groups);
    hidden = model->forward_packed(pk.ids.to(device), pk.segments, pk.parents);
    const int64_t T = pk.ids.size(1);
    at = [&pk, T](size_t s, int64_t t) { return pk.row[s] * T + pk.columns[s][static_cast<size_t>(t)]; };
    fed += pk.tokens;
  } else {
    int64_t T = 0;
    for (const auto& q : seqs) T = std::max<int64_t>(T, static_cast<int64_t>(q.size()));
    torch::Tensor ids = torch::zeros({static_cast<int64_t>(S), T}, torch::kInt64);  // right-padded
    torch::Tensor mask = torch::zeros_like(ids);
    auto ia = ids.accessor<int64_t, 2>();
    auto ma = mask.accessor<int64_t, 2>();
    for (size_t s = 0; s < S; ++s)
      for (size_t t = 0; t < seqs[s].size(); ++t) {
        ia[static_cast<int64_t>(s)][static_cast<int64_t>(t)] = seqs[s][t];
        ma[static_cast<int64_t>(s)][static_cast<int64_t>(t)] = 1;
        ++fed;
      }
    hidden = model->forward(ids.to(device), mask.to(device));
    at = [T](size_t s, int64_t t) { return static_cast<int64_t>(s) * T + t; };
  }
  std::vector<int64_t> from, targets;
  for (size_t s = 0; s < S; ++s)
    for (int64_t t = starts[s]; t < static_cast<int64_t>(seqs[s].size()); ++t) {
      from.push_back(at(s, t - 1));  // the previous token's hidden state predicts token t
      targets.push_back(seqs[s][static_cast<size_t>(t)]);
    }
  torch::Tensor lp = selected_token_outputs(model, hidden, torch::tensor(from, torch::kInt64),
                                            torch::tensor(targets, torch::kInt64), false, false)
                         .logps.to(torch::kCPU, torch::kFloat32)
                         .contiguous();  // [N]
  const float* v = lp.data_ptr<float>();
  std::vector<std::vector<float>> out(S);
  for (size_t s = 0; s < S; ++s) {
    const auto n = static_cast<std::ptrdiff_t>(seqs[s].size()) - starts[s];
    out[s].assign(v, v + n);
    v += n;
  }
  return out;
}

struct Scorer {
  const Config& c;
  const Tokenizer& tok;
  const ChatTemplate& chat;
  RevisionSpec spec;
  torch::Device device;
  CausalLM ref{nullptr}, dpo{nullptr};
  int64_t context_tokens = 0, unshared_tokens = 0;
  bool warned_length = false;

  // Every context takes the attention path the trainer's policy takes (kAuto: the fused kernel on
  // CUDA; on the CPU the reference path, which computes long rows block by block against only
  // the keys each block sees), so at step 0 the policy reproduces the reference log-probs.
  // Sequences of a group may share their common prefix, computed once (when `packed`; never with
  // a rope whose table depends on the length, which a shared prefix cannot serve).
  std::vector<std::vector<float>> run(CausalLM& model,
                                      const std::vector<std::vector<int64_t>>& seqs,
                                      const std::vector<int64_t>& starts,
                                      const std::vector<std::vector<size_t>>& groups, bool packed) {
    for (const auto& s : seqs) {
      unshared_tokens += static_cast<int64_t>(s.size());
      if (!warned_length &&
          static_cast<int64_t>(s.size()) > model->args().max_position_embeddings) {
        spdlog::warn(
            "a scoring context has {} tokens, more than the model's max_position_embeddings {}",
            s.size(), model->args().max_position_embeddings);
        warned_length = true;
      }
    }
    model->set_attention_impl(AttentionImpl::kAuto);
    AutocastGuard autocast(device, c.bf16);  // the trainer's precision recipe (treg/autocast.h)
    static const std::vector<std::vector<size_t>> none;
    return response_logps(model, seqs, starts,
                          model->args().rope_depends_on_length() ? none : groups, packed, device,
                          context_tokens);
  }

  // Scores pairs [begin, end) of `pairs`; record i gets index begin + i.
  std::vector<PairRecord> score(const std::vector<TokenizedPair>& pairs, size_t begin, size_t end) {
    std::vector<PairRecord> recs;
    for (size_t i = begin; i < end; ++i) {
      PairRecord r;
      r.index = static_cast<int64_t>(i);
      r.source_line = pairs[i].source_line;
      r.prompt_ids = pairs[i].prompt_ids;
      r.chosen.ids = pairs[i].chosen_ids;
      r.rejected.ids = pairs[i].rejected_ids;
      recs.push_back(std::move(r));
    }
    if (c.reward_source == "prompt") {
      // chosen + rejected x (plain, better, worse) of every pair of the batch: the plain contexts
      // in one forward, the (about 5x longer) revision contexts in another. The plain ones take the
      // trainer's layout (`packing`: x shared by y_w and y_l, as collate_pairs lays a pair out), so
      // the policy reproduces them at step 0. The "better" and "worse" contexts of one answer are
      // a tree sharing everything before {direction} (the instruction and the answer). Not all
      // four of a pair: the second answer's branches would sit beside the first's in one row, and
      // their attention over it (masked, but computed) cost more than sharing the instruction
      // saved (bench_score_tokens, 100M model: 0.15 vs 0.19 pairs/s).
      std::vector<std::vector<int64_t>> plain, revision;
      std::vector<int64_t> plain_starts, revision_starts, headers;
      std::vector<std::vector<size_t>> plain_groups, revision_groups;
      for (size_t i = begin; i < end; ++i) {
        plain_groups.push_back({plain.size(), plain.size() + 1});
        revision_groups.push_back({revision.size(), revision.size() + 1});
        revision_groups.push_back({revision.size() + 2, revision.size() + 3});
        for (bool chosen : {true, false}) {
          ScoreContexts ctx = build_score_contexts(pairs[i], chosen, spec, tok, chat);
          headers.push_back(ctx.header);
          plain.push_back(std::move(ctx.plain));
          plain_starts.push_back(ctx.plain_start);
          revision.push_back(std::move(ctx.better));
          revision_starts.push_back(ctx.better_start);
          revision.push_back(std::move(ctx.worse));
          revision_starts.push_back(ctx.worse_start);
        }
      }
      auto lp_plain = run(ref, plain, plain_starts, plain_groups, c.packing);
      auto lp_rev = run(ref, revision, revision_starts, revision_groups, true);
      for (size_t k = 0; k < recs.size(); ++k)
        for (size_t which = 0; which < 2; ++which) {
          ResponseScores& r = which == 0 ? recs[k].chosen : recs[k].rejected;
          const size_t s = k * 2 + which;
          // A template header gets the same log-prob under both prompts: reward 0.
          const auto h = static_cast<std::ptrdiff_t>(headers[s]);
          r.logp_better.assign(lp_plain[s].begin(), lp_plain[s].begin() + h);
          r.logp_better.insert(r.logp_better.end(), lp_rev[2 * s].begin(), lp_rev[2 * s].end());
          r.logp_worse.assign(lp_plain[s].begin(), lp_plain[s].begin() + h);
          r.logp_worse.insert(r.logp_worse.end(), lp_rev[2 * s + 1].begin(),
                              lp_rev[2 * s + 1].end());
          r.ref_logps = std::move(lp_plain[s]);
        }
    } else {
      // Table 2 ablation: the DPO model is the "strong" model, pi_ref the "weak" one, both on the
      // plain prompt.
      std::vector<std::vector<int64_t>> seqs;
      std::vector<int64_t> starts;
      for (size_t i = begin; i < end; ++i)
        for (const auto* resp : {&pairs[i].chosen_ids, &pairs[i].rejected_ids}) {
          std::vector<int64_t> s = pairs[i].prompt_ids;
          s.insert(s.end(), resp->begin(), resp->end());
          seqs.push_back(std::move(s));
          starts.push_back(static_cast<int64_t>(pairs[i].prompt_ids.size()));
        }
      std::vector<std::vector<size_t>> groups;
      for (size_t k = 0; k < seqs.size(); k += 2) groups.push_back({k, k + 1});
      auto lp_ref = run(ref, seqs, starts, groups, c.packing);
      auto lp_dpo = run(dpo, seqs, starts, groups, c.packing);
      for (size_t k = 0; k < recs.size(); ++k)
        for (int which = 0; which < 2; ++which) {
          ResponseScores& r = which == 0 ? recs[k].chosen : recs[k].rejected;
          const size_t s = k * 2 + static_cast<size_t>(which);
          r.ref_logps = lp_ref[s];
          r.logp_better = std::move(lp_dpo[s]);
          r.logp_worse = std::move(lp_ref[s]);
        }
    }
    for (PairRecord& rec : recs)
      for (ResponseScores* r : {&rec.chosen, &rec.rejected}) {
        r->rewards.resize(r->ids.size());
        for (size_t t = 0; t < r->ids.size(); ++t)
          r->rewards[t] = token_reward(r->logp_better[t], r->logp_worse[t]);
        check_finite(rec, *r, r == &rec.chosen ? "chosen" : "rejected");
      }
    return recs;
  }

  // A dump of NaN would train on garbage with exit code 0; stop at the first bad value instead.
  void check_finite(const PairRecord& rec, const ResponseScores& r, const char* which) const {
    const std::pair<const char*, const std::vector<float>*> series[] = {
        {"reference log-prob", &r.ref_logps},
        {"log-prob under the 'better' prompt", &r.logp_better},
        {"log-prob under the 'worse' prompt", &r.logp_worse}};
    for (const auto& [what, values] : series)
      for (size_t t = 0; t < values->size(); ++t)
        if (!std::isfinite((*values)[t]))
          fail("score-tokens",
               std::string("the model gives a non-finite ") + what + " (" +
                   std::to_string((*values)[t]) + ") for " + which + " token " + std::to_string(t) +
                   " of the pair on data line " + std::to_string(rec.source_line),
               "the checkpoint's weights hold NaN/inf or overflow in this dtype; check it with "
               "`treg logprobs`, or score in float32 (bf16: false)");
  }
};

struct RewardMeans {
  double chosen = 0, rejected = 0;
};

// Reads every record, so every checksum is checked (a damaged record is an error naming it), and
// returns the mean token rewards.
RewardMeans verify_records(const RewardDumpReader& reader) {
  double rc = 0, rr = 0;
  int64_t nc = 0, nr = 0;
  for (int64_t i = 0; i < reader.size(); ++i) {
    PairRecord p = reader.read(i);
    for (float v : p.chosen.rewards) rc += v, ++nc;
    for (float v : p.rejected.rewards) rr += v, ++nr;
  }
  return {nc ? rc / static_cast<double>(nc) : 0.0, nr ? rr / static_cast<double>(nr) : 0.0};
}

int64_t kill_after_pairs() {
  const char* v = std::getenv("TREG_TEST_KILL_AFTER_PAIRS");
  return v ? std::atoll(v) : -1;
}

}  // namespace

RevisionSpec revision_spec(const Config& c) {
  return {load_revision_template(revision_template_path(c)), c.better_description,
          c.worse_description, c.assistant_prefix};
}

nlohmann::json expected_dump_metadata(const Config& c, const std::string& split) {
  auto tok = load_tokenizer(c.model_name_or_path);
  return expected_metadata(c, split, split_data_file(c, split), *tok,
                           make_chat_template(*tok, c.chat_template));
}

namespace {

// Several ranks: each scores the batches k with k % W == rank (the batches of a single process, so
// the same records) into "<dump>.rank<r>-of-<W>" (resumable as any dump), then rank 0 merges them in
// batch order into the dump.
std::string shard_path(const std::string& dump, int64_t rank, int64_t world) {
  return dump + ".rank" + std::to_string(rank) + "-of-" + std::to_string(world);
}

// Shards of another world size (a run resumed with another rank count) are scored again; their
// files would only take space.
void remove_foreign_shards(const std::string& dump, int64_t world) {
  const fs::path p(dump);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  const std::string prefix = p.filename().string() + ".rank";
  const std::string mine = "-of-" + std::to_string(world);
  if (!fs::is_directory(dir)) return;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const size_t of = rest.find("-of-");
    if (of == std::string::npos) continue;
    const std::string tail = rest.substr(of);
    if (tail == mine || tail == mine + ".partial") continue;
    spdlog::info("removing {}: a shard of a run with another number of ranks", e.path().string());
    fs::remove(e.path());
  }
}

// This rank's batches of `pairs` (k = rank, rank + W, ...: all of them with one rank) into
// `out_path`, resuming its .partial; a complete shard that a failed launch left is kept.
void score_batches(Scorer& scorer, const std::vector<TokenizedPair>& pairs, int64_t bs,
                   int64_t rank, int64_t world, const std::string& out_path, const json& meta,
                   const std::string& what, bool progress, ScoreSummary& sum) {
  const int64_t n = static_cast<int64_t>(pairs.size()), batches = (n + bs - 1) / bs;
  int64_t mine = 0;
  for (int64_t k = rank; k < batches; k += world) mine += std::min(bs, n - k * bs);
  if (world > 1 && file_exists(out_path)) {
    try {
      RewardDumpReader r(out_path);
      if (r.metadata() == meta && r.size() == mine) {
        spdlog::info("{}: this rank's shard is complete; not scoring it again", out_path);
        return;
      }
    } catch (const Error&) {  // damaged: scored again
    }
  }
  RewardDumpWriter writer(out_path, meta, /*align=*/bs);
  if (writer.size() > mine)
    fail(out_path + ".partial", "holds more pairs than the data has", "delete it and re-run");
  const int64_t kill_after = kill_after_pairs();
  int64_t written = 0;
  ProgressBar bar(what, mine, writer.size(), "pairs", progress);
  for (int64_t k = rank + writer.size() / bs * world; k < batches; k += world) {
    const size_t b = static_cast<size_t>(k * bs), e = static_cast<size_t>(std::min(n, (k + 1) * bs));
    int64_t tokens = 0;
    for (PairRecord& rec : scorer.score(pairs, b, e)) {
      tokens += static_cast<int64_t>(rec.chosen.ids.size() + rec.rejected.ids.size());
      if (world > 1) rec.index = writer.size();  // a shard numbers its own records (merge_shards)
      writer.append(rec);
      if (kill_after >= 0 && ++written >= kill_after) std::raise(SIGKILL);  // tests: interrupted run
    }
    sum.scored += static_cast<int64_t>(e - b);
    sum.response_tokens += tokens;
    bar.advance(static_cast<int64_t>(e - b), tokens);
  }
  writer.finish();
  bar.finish();
}

// Rank 0: the shards' records in batch order into `dump` (resuming a merge that was cut short).
void merge_shards(const std::string& dump, const json& meta, int64_t n, int64_t bs, int64_t world) {
  std::vector<std::unique_ptr<RewardDumpReader>> shards;
  for (int64_t r = 0; r < world; ++r)
    shards.push_back(std::make_unique<RewardDumpReader>(shard_path(dump, r, world)));
  RewardDumpWriter out(dump, meta, bs);
  for (int64_t at = out.size(); at < n; ++at) {
    const int64_t batch = at / bs;
    PairRecord rec =
        shards[static_cast<size_t>(batch % world)]->read((batch / world) * bs + at % bs);
    rec.index = at;  // the pair's place in the dump
    out.append(rec);
  }
  out.finish();
  shards.clear();
  for (int64_t r = 0; r < world; ++r) fs::remove(shard_path(dump, r, world));
}

}  // namespace

ScoreSummary score_tokens(const Config& c, const std::string& split, bool progress,
                          std::shared_ptr<Ranks> ranks) {
  if (!ranks) ranks = single_rank();
  const bool main = ranks->is_main();
  const int64_t rank = ranks->rank(), world = ranks->world_size();
  ScoreSummary sum;
  const std::string dump = split_dump_path(c, split);
  const std::string data_path = split_data_file(c, split);
  auto tok = load_tokenizer(c.model_name_or_path);
  const ChatTemplate chat = make_chat_template(*tok, c.chat_template);
  const json expected = expected_metadata(c, split, data_path, *tok, chat);

  const std::string dump_dir =
      dump.find('/') == std::string::npos ? "." : dump.substr(0, dump.rfind('/'));
  make_dirs(dump_dir);
  make_dirs(c.output_dir);
  if (main) write_file_atomic(dump + ".config.yaml", config_to_yaml(c));

  const DataOptions opts =
      data_options(c, path_join(c.output_dir, "bad_rows." + split + ".jsonl"));
  PreferenceData data = load_preference_data(data_path, *tok, chat, opts);
  sum.data = data.stats;
  spdlog::info("{} ({}): {}", data_path, split, data.stats.summary());

  const torch::Device device =
      rank_device(parse_device(c.device, "config key 'device'"), launch_env_from_environment());
  apply_tf32(c.tf32, device);

  json meta = expected;
  meta["treg_version"] = build_version();
  meta["run"] = {{"model_path", c.model_name_or_path},
                 {"data_file", data_path},
                 {"dpo_model_path", c.dpo_model},
                 {"pairs", data.pairs.size()},
                 {"score_batch_size", c.score_batch_size},
                 {"device", device.is_cuda() ? "cuda" : "cpu"},
                 {"dtype", "float32"},
                 {"autocast", c.bf16 ? "bfloat16" : "none"},
                 // CPU reductions are split by thread, so the bytes depend on the count: a
                 // .partial made with another count is scored again rather than mixed.
                 {"cpu_threads", device.is_cuda() ? 0 : torch::get_num_threads()},
                 {"data_stats",
                  {{"rows", data.stats.rows},
                   {"bad_rows", data.stats.bad_rows},
                   {"prompts_truncated", data.stats.prompts_truncated},
                   {"chosen_truncated", data.stats.chosen_truncated},
                   {"rejected_truncated", data.stats.rejected_truncated},
                   {"dropped_empty", data.stats.dropped_empty},
                   {"boundary_merges", data.stats.boundary_merges}}}};

  // A complete dump that matches, every record intact, is reused; a stale, damaged or unreadable
  // one is scored again.
  // Rank 0 decides for all.
  bool reuse = false;
  if (main && file_exists(dump)) {
    try {
      RewardDumpReader r(dump);
      check_dump_matches(r.metadata(), expected, dump);
      reuse = r.size() == static_cast<int64_t>(data.pairs.size());
      if (reuse) {
        verify_records(r);
        spdlog::info("{}: complete, intact and up to date; nothing to score", dump);
      }
    } catch (const Error& e) {
      reuse = false;
      spdlog::warn("{}\n  -> scoring it again", e.what());
    }
  }

  reuse = ranks->broadcast("score-tokens/" + split + "/reuse", reuse ? "1" : "0") == "1";
  auto t0 = std::chrono::steady_clock::now();
  if (!reuse) {
    Scorer scorer{c, *tok, chat, {}, device};
    if (c.reward_source == "prompt")
      scorer.spec = revision_spec(c);
    // fp32 weights, as the trainer's policy; bf16 comes from autocast (Scorer::run).
    scorer.ref = load_model(c.model_name_or_path, device, torch::kFloat32);
    scorer.ref->eval();
    if (c.reward_source == "dpo") {
      scorer.dpo = load_model(c.dpo_model, device, torch::kFloat32);
      scorer.dpo->eval();
      if (scorer.dpo->args().vocab_size != scorer.ref->args().vocab_size)
        fail("config key 'dpo_model'",
             "vocabulary " + std::to_string(scorer.dpo->args().vocab_size) +
                 " differs from the reference model's " +
                 std::to_string(scorer.ref->args().vocab_size),
             "the DPO model must share the reference model's tokenizer");
    }
    const int64_t bs = c.score_batch_size;
    const int64_t n = static_cast<int64_t>(data.pairs.size());
    json shard_meta = meta;
    if (world > 1) {
      shard_meta["shard"] = {{"rank", rank}, {"world_size", world}};
      if (main) remove_foreign_shards(dump, world);
      ranks->barrier("score-tokens: waiting for rank 0 to clear old shards");
    }
    score_batches(scorer, data.pairs, bs, rank, world,
                  world > 1 ? shard_path(dump, rank, world) : dump, shard_meta,
                  "score-tokens " + split, progress && main, sum);
    sum.context_tokens = scorer.context_tokens;
    sum.unshared_tokens = scorer.unshared_tokens;
    if (world > 1) {
      ranks->barrier("score-tokens: waiting for every rank's shard of " + split);
      if (main) merge_shards(dump, meta, n, bs, world);
    }
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Every rank returns once the dump is complete.
  ranks->barrier("score-tokens: waiting for rank 0 to write " + dump);
  if (!main) return sum;

  RewardDumpReader reader(dump);
  sum.pairs = reader.size();
  const RewardMeans means = verify_records(reader);
  sum.mean_reward_chosen = means.chosen;
  sum.mean_reward_rejected = means.rejected;
  return sum;
}

void ensure_reward_dumps(const Config& c, const std::string& config_path,
                         std::shared_ptr<Ranks> ranks) {
  if (!ranks) ranks = single_rank();
  std::vector<std::string> splits = {"train"};
  if (has_eval_split(c)) splits.push_back("eval");
  for (const std::string& split : splits) {
    const std::string dump = split_dump_path(c, split);
    // Rank 0 decides; every rank scores.
    if (!ranks->is_main()) {
      if (ranks->broadcast("ensure/" + split, "") == "score") score_tokens(c, split, true, ranks);
      continue;
    }
    if (file_exists(dump)) {
      // Every record is checked before the first step, not when training reaches a damaged one;
      // a damaged dump is scored again, a stale one is refused (its hint names the command).
      std::string damage;
      nlohmann::json meta;
      int64_t pairs = 0;
      try {
        RewardDumpReader r(dump);
        meta = r.metadata();
        pairs = r.size();
        verify_records(r);
      } catch (const Error& e) {
        damage = e.what();
      }
      if (damage.empty()) {
        check_dump_matches(meta, expected_dump_metadata(c, split), dump, config_path);
        spdlog::info("reward dump {} ({}): {} pairs, intact, matches the config; reusing it", dump,
                     split, pairs);
        ranks->broadcast("ensure/" + split, "reuse");
        continue;
      }
      spdlog::warn("{}\n  -> scoring it again before training", damage);
    } else {
      spdlog::info("reward dump {} ({}) {}; scoring now", dump, split,
                   file_exists(dump + ".partial") ? "is unfinished" : "is missing");
    }
    ranks->broadcast("ensure/" + split, "score");
    ScoreSummary s = score_tokens(c, split, true, ranks);
    spdlog::info("scored {} pairs ({} tokens) in {:.1f}s", s.scored, s.response_tokens, s.seconds);
  }
}

}  // namespace treg
