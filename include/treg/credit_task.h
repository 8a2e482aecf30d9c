// The token credit-assignment benchmark (`treg credit-bench`): a synthetic task whose token-level
// truth is known, so that how well a method assigns credit to tokens can be measured, not guessed.
//
// The task: "Shift each digit by 3: 7 1 4" -> "0 4 7" (each digit d becomes (d + 3) mod 10). Every
// answer digit is one token of the tiny llama tokenizer (the first one bare, "0", the others with
// sentencepiece's space, "▁4"), so answer token i is item i. A preference pair is the correct
// answer (chosen) against the same answer with k digits replaced by wrong ones (rejected); the
// replaced positions are the planted errors. A method's learned token reward is then scored by its
// AUROC at telling planted-error tokens from correct ones.
//
// So that the paper's contrastive revision prompts (§3.3, Eq. 3) mean something at tiny scale, the
// reference model is also fine-tuned on revision demonstrations: asked for a "better" answer it
// writes the correct one, asked for a "worse" one it copies the shown answer with more mistakes.
// Under x_better an error token is then unlikely and under x_worse likely, so r̂ < 0 there.
//
// Everything here is pure and deterministic: generation (seeded, no std distributions, whose output
// differs across standard libraries), the JSONL files, token labels, AUROC, and the HTML report.
#pragma once
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "treg/chat_template.h"
#include "treg/data.h"
#include "treg/rewards.h"
#include "treg/tokenizer.h"

namespace treg {

// ---- The task ----

// Each digit d of the question becomes (d + kCreditShift) mod 10 in the answer.
constexpr int kCreditShift = 3;
constexpr int kCreditAlphabet = 10;  // the items are the digits 0..9

struct CreditTaskOptions {
  int64_t min_items = 4;  // digits per question, drawn uniformly in [min_items, max_items]
  int64_t max_items = 8;
  int64_t num_errors = 1;  // k: wrong digits in a rejected answer, in [1, min_items - 1]
  uint64_t seed = 0;       // make_credit_examples and write_credit_data draw from it
};
// Throws treg::Error naming the option when the ranges are empty or k leaves no correct item.
void check_credit_task_options(const CreditTaskOptions& opts);

// A generator of its own (mt19937_64 through seed_seq, integers by rejection sampling), so the
// same seed gives the same data with any compiler and standard library.
class CreditRng {
 public:
  CreditRng(uint64_t seed, uint64_t stream);
  int64_t uniform(int64_t lo, int64_t hi);  // inclusive range, no modulo bias
  // `k` distinct values of [0, n), ascending.
  std::vector<int64_t> distinct(int64_t n, int64_t k);

 private:
  std::mt19937_64 gen_;
};

struct CreditExample {
  std::vector<int> input;            // the question's digits
  std::vector<int> correct;          // (input[i] + 3) mod 10
  std::vector<int> corrupted;        // correct, with a wrong digit at each error item
  std::vector<int64_t> error_items;  // ascending item indices where corrupted != correct
  std::string prompt;                // "Shift each digit by 3: 7 1 4"
  std::string chosen, rejected;      // "0 4 7", "0 5 7"
};

// One example with opts.num_errors planted errors; opts.seed is not used (the rng carries it).
CreditExample make_credit_example(CreditRng& rng, const CreditTaskOptions& opts);
// `count` examples from CreditRng(opts.seed, stream): distinct streams give independent sets.
std::vector<CreditExample> make_credit_examples(const CreditTaskOptions& opts, int64_t count,
                                                uint64_t stream);

std::string credit_prompt_text(const std::vector<int>& input);  // "Shift each digit by 3: 7 1 4"
std::string credit_answer_text(const std::vector<int>& items);  // "0 4 7"
// The digits of an answer ("0 4 7"); throws treg::Error naming `where` when it is not single
// digits separated by single spaces.
std::vector<int> parse_credit_answer(const std::string& text, const std::string& where);
// The digits of a question; throws treg::Error naming `where` when it is not a credit-task prompt.
std::vector<int> parse_credit_prompt(const std::string& text, const std::string& where);

// How a generated answer compares with the truth: exact match, and digits right position by
// position (a missing or extra digit counts wrong; unparsable text is all wrong).
struct CreditGrade {
  bool exact = false;
  int64_t items_correct = 0, items = 0;  // items = digits of the question
};
CreditGrade grade_credit_answer(const std::string& prompt, const std::string& answer);

// ---- Tokens ----

// Where each digit's token sits in an answer laid out as tokenize_pair lays it out.
struct CreditTokenMap {
  std::vector<int64_t> first_ids;  // [10] digit d as the answer's first token (llama: "0")
  std::vector<int64_t> later_ids;  // [10] digit d after a space (llama: "▁0")
  int64_t trailing = 0;            // tokens after the last digit (the end-of-turn; Gemma's "\n")
};
// Lays out answers holding every digit at the first position and after every other digit through
// tokenize_pair, and checks that each digit is exactly one token, always the same one. Throws
// treg::Error naming the digit and the pieces it became when the tokenizer splits or merges digits.
CreditTokenMap check_credit_tokenizer(const Tokenizer& tok, const ChatTemplate& chat,
                                      PairTokenization how);

// Per-token truth of one pair, aligned with chosen_ids / rejected_ids.
struct CreditTokenLabels {
  std::vector<int> chosen, rejected;  // [C], [R]: 1 = a planted-error token (chosen: all 0)
  // [C], [R]: 1 = the token is a digit; 0 = template header (simpo) or end-of-turn, which callers
  // leave out of the statistics.
  std::vector<uint8_t> chosen_item, rejected_item;
};
// `error_items` is the pair's "error_items" field. Throws treg::Error naming the pair's line when a
// response was truncated, its tokens are not one per digit of `map`, or the digits that differ
// between chosen and rejected are not exactly `error_items`.
CreditTokenLabels credit_token_labels(const TokenizedPair& pair,
                                      const std::vector<int64_t>& error_items,
                                      const CreditTokenMap& map);
// "error_items" of every row of a pairs file, by 1-based line number (TokenizedPair::source_line).
std::map<int64_t, std::vector<int64_t>> read_credit_error_items(const std::string& path);
// Appends the values of digit tokens (is_item = 1) and their labels to *scores / *labels.
void append_item_scores(const std::vector<float>& values, const std::vector<int>& labels,
                        const std::vector<uint8_t>& is_item, std::vector<double>* scores,
                        std::vector<int>* out_labels);

// ---- Data files ----

struct CreditDataOptions {
  CreditTaskOptions task;
  int64_t sft_examples = 4000;  // task demonstrations (prompt -> correct answer)
  // Questions shown for revision; each gives two rows, "better" and "worse".
  int64_t revision_examples = 2000;
  int64_t train_pairs = 2000;
  int64_t heldout_pairs = 500;   // questions seen in no other file
  int64_t max_extra_errors = 2;  // a "worse" revision adds 1..this many mistakes
};

// The bundled compact revision template, configs/prompts/credit_revision.txt.
std::string credit_revision_prompt_path();

// Rows in TRL's conversational prompt-completion shape:
// {"prompt": [{"role": "user", "content": ...}], "completion": [{"role": "assistant", ...}]}.
std::string credit_sft_row(const std::string& user, const std::string& assistant);
// One revision demonstration: the user turn is exactly what score-tokens builds,
// render_revision_prompt(template, instruction_text(prompt), shown, direction, description); the
// completion is render_assistant_prefix(prefix, direction) + the answer ("better": the correct
// answer; "worse": `shown` with 1..max_extra_errors more wrong digits where it was right).
std::string credit_revision_row(const CreditExample& ex, const std::vector<int>& shown,
                                const std::string& direction, const RevisionSpec& spec,
                                CreditRng& rng, int64_t max_extra_errors);
// {"prompt": x, "chosen": y, "rejected": y', "error_items": [...]} (the data loader ignores the
// extra field).
std::string credit_pair_row(const CreditExample& ex);

struct CreditDataFiles {
  std::string sft_task, sft_revision, sft;  // sft = both kinds, shuffled together
  std::string train_pairs, heldout_pairs;
};
// Writes <dir>/sft_task.jsonl, sft_revision.jsonl, sft.jsonl, pairs.train.jsonl and
// pairs.heldout.jsonl atomically; the same options give the same bytes. `spec` must be what
// score-tokens will use (revision_prompt, better/worse_description, assistant_prefix).
CreditDataFiles write_credit_data(const std::string& dir, const CreditDataOptions& opts,
                                  const RevisionSpec& spec);

// ---- Statistics ----

// Area under the ROC curve of `scores` for telling label 1 from label 0, higher score = more
// likely 1: the Mann-Whitney U / (n1 n0), a tie between the classes counting 1/2. Throws
// treg::Error when a class is empty, a label is not 0/1, a score is NaN, or the sizes differ.
double auroc(const std::vector<double>& scores, const std::vector<int>& labels);
// AUROC of token rewards (higher = better token) at finding the planted errors: auroc of the
// negated rewards, i.e. the chance that an error token's reward is below a correct token's.
double credit_reward_auroc(const std::vector<double>& rewards, const std::vector<int>& labels);
double mean_of(const std::vector<double>& values);     // an error when empty
double sample_std(const std::vector<double>& values);  // n - 1 denominator; NaN when n < 2

// ---- Report ----

// One method's results over seeds (index i of every vector is seeds[i]).
struct CreditMethodResult {
  std::string name;  // "DPO", "DPO-REG α=0.25", ...
  std::vector<uint64_t> seeds;
  std::vector<double> reward_auroc;  // AUROC of the learned β·log π_θ/π_ref at planted errors;
                                     // empty = not computed (the reference: its log-ratio is 0)
  std::vector<double> self_reward_auroc;  // AUROC of r̂ (Eq. 3) of the run; empty = not computed
  std::vector<double> greedy_accuracy;    // held-out exact-match accuracy of greedy answers
};

struct CreditReport {
  std::string title = "treg credit-bench";
  std::vector<std::pair<std::string, std::string>> settings;  // shown as a key/value table
  std::vector<CreditMethodResult> methods;
};
// A self-contained HTML page (no scripts): a table of mean ± sample std and the per-seed values,
// and inline SVG bar charts with ±std error bars. Throws treg::Error naming the method when a
// per-seed vector's length differs from its seeds'.
std::string render_credit_report(const CreditReport& report);
// The table of render_credit_report as Markdown (mean ± sample std over seeds; "—" = not measured).
std::string render_credit_markdown(const CreditReport& report);
// Bars of `means` with ±`stds` whiskers (skipped where NaN) and each seed's value as a dot; the
// y axis spans [0, 1].
std::string svg_bar_chart(const std::string& title, const std::vector<std::string>& labels,
                          const std::vector<double>& means, const std::vector<double>& stds,
                          const std::vector<std::vector<double>>& points);

}  // namespace treg
