// Self-generated token-level rewards (paper §3.3, Eq. 3):
//   r_t = sigmoid(log pi_ref(y_t | x_better, y<t) - log pi_ref(y_t | x_worse, y<t)) - 0.5
// where x_better / x_worse are the contrastive revision prompts of Figure 2 (the same model, asked
// to rewrite the answer better / worse). The same pass stores log pi_ref(y_t | x, y<t) for the
// plain prompt, the reference log-probs every preference loss needs.
//
// reward_source: dpo (Table 2 ablation): r_t = sigmoid(log pi_dpo(y_t|x,y<t) - log
// pi_ref(y_t|x,y<t))
// - 0.5; the dump then stores log pi_dpo in logp_better and log pi_ref in logp_worse.
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "treg/chat_template.h"
#include "treg/data.h"
#include "treg/reward_dump.h"
#include "treg/tokenizer.h"

namespace treg {

struct Config;
class Ranks;

// ---- The revision prompt (Figure 2) ----
// The placeholders a revision template must use, each at least once.
const std::vector<std::string>&
revision_placeholders();  // instruction answer direction detailed_description
// Path of the bundled configs/prompts/revision.txt.
std::string default_revision_prompt_path();
// Reads a template and checks its placeholders: a missing or unknown {name} is an error naming it.
std::string load_revision_template(const std::string& path);
void check_revision_template(const std::string& text, const std::string& where);
// Replaces {instruction}, {answer}, {direction}, {detailed_description} (in one pass: text inside
// the substituted values is never substituted again).
std::string render_revision_prompt(const std::string& tmpl, const std::string& instruction,
                                   const std::string& answer, const std::string& direction,
                                   const std::string& detailed_description);
// {instruction} of a prompt: a single user turn is its text; otherwise the earlier turns are a
// transcript "System: ...\n\nUser: ...\n\nAssistant: ...\n\nUser: <last question>" (last user turn
// last).
std::string instruction_text(const std::vector<Message>& prompt);
// assistant_prefix with {direction} replaced.
std::string render_assistant_prefix(const std::string& prefix, const std::string& direction);

// ---- Eq. 3 ----
inline float token_reward(float logp_better, float logp_worse) {
  return 1.0f / (1.0f + std::exp(-(logp_better - logp_worse))) - 0.5f;
}

// The three scoring contexts of one response, as ids: each is context_ids + response ids, and the
// response starts at `*_start`. The plain context holds the whole response; the revision contexts
// hold it less its first `header` tokens (a template header, pair_tokenization: simpo).
struct ScoreContexts {
  std::vector<int64_t> plain, better, worse;
  int64_t plain_start = 0, better_start = 0, worse_start = 0;
  int64_t header = 0;
};

// What the revision contexts are built from (resolved from the config once).
struct RevisionSpec {
  std::string template_text;
  std::string better_description, worse_description;
  std::string assistant_prefix;
};

// The spec of a config: its revision_prompt file (or the bundled one), descriptions and prefix.
RevisionSpec revision_spec(const Config& config);

// Revision demonstrations: SFT rows that teach a model what the two revision prompts ask, from a
// preference pair. For each shown answer (chosen, then rejected), the "better" prompt is completed
// by the chosen answer and the "worse" prompt by the rejected one -- four rows per pair. The user
// turn is exactly the one score-tokens builds (same template, instruction text and descriptions), so
// a model SFT'd on them is scored on contexts it has learned. The scorer appends assistant_prefix
// as separately tokenized text, which no chat-rendered completion reproduces token for token:
// a non-empty prefix is an error (set `assistant_prefix: ""`).
struct RevisionDemo {
  std::string direction;   // "better" | "worse"
  std::string user;        // the rendered revision prompt
  std::string completion;  // the answer the model should give
};
std::vector<RevisionDemo> revision_demonstrations(const RawPair& pair, const RevisionSpec& spec);

// Context for `direction` ("better" | "worse"): the revision prompt as a user turn through the chat
// template with the generation prompt, then the assistant prefix as text without specials; the
// response ids are appended by the caller. `instruction` is instruction_text of the prompt.
std::vector<int64_t> revision_context_ids(const std::string& instruction, const std::string& answer,
                                          const std::string& direction, const RevisionSpec& spec,
                                          const Tokenizer& tok, const ChatTemplate& chat);
// All three contexts for the chosen (chosen=true) or rejected response of `pair`. Where
// truncate_pair cut the prompt or the response, the revision prompt quotes the cut text (the last
// prompt tokens, the response tokens scored), so every context stays within about twice
// max_length plus the revision template, whatever the length of the row.
ScoreContexts build_score_contexts(const TokenizedPair& pair, bool chosen, const RevisionSpec& spec,
                                   const Tokenizer& tok, const ChatTemplate& chat);

// ---- score-tokens ----
struct ScoreSummary {
  int64_t pairs = 0;            // pairs in the dump
  int64_t scored = 0;           // pairs scored by this run (the rest were resumed or reused)
  int64_t response_tokens = 0;  // tokens scored by this run
  int64_t context_tokens = 0;  // tokens fed to the model(s) by this run (every context, no padding)
  // The same contexts' tokens, each context counted alone: what the model would run without prefix
  // sharing. unshared / context is the most sharing can save where every token costs the same.
  int64_t unshared_tokens = 0;
  double seconds = 0;
  double mean_reward_chosen = 0, mean_reward_rejected = 0;  // over every token in the dump
  DataStats data;
};

// Scores `split` ("train" | "eval") of `config` into its dump path (resuming a partial dump).
// Per step, up to score_batch_size pairs: the plain contexts of chosen+rejected go through the
// model in one forward (padded rows, or with `packing` one prefix tree per pair as the trainer lays
// pairs out) and their better+worse revision contexts in a second one (they are ~5x longer; one
// prefix tree per answer, pack_sequences), under NoGradGuard, with the trainer's precision recipe
// (fp32 weights, bf16 autocast when `bf16`); a resumed run redoes the
// last incomplete batch so that its batches, and so its bytes, equal an uninterrupted run's. Writes
// "<dump>.config.yaml" (the resolved config) beside it. `progress` draws a bar on stderr.
// With several `ranks` (torchrun) each scores every W-th batch into its own resumable shard
// ("<dump>.rank<r>-of-<W>"), and rank 0 merges them in batch order into the dump: the same batches,
// so the same records, as one process. Only rank 0's summary counts the dump (pairs, means).
ScoreSummary score_tokens(const Config& config, const std::string& split, bool progress = true,
                          std::shared_ptr<Ranks> ranks = nullptr);

}  // namespace treg
