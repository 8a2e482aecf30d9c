// Preference data: JSONL rows in the UltraFeedback shapes (princeton-nlp / HuggingFaceH4) become
// token ids laid out exactly as training and scoring use them.
//
// Layout of one pair (all ids, no text reaches the model), as one of two reference pipelines lays
// it out (config key pair_tokenization; README "How pairs are tokenised"):
//  kTrl   TRL's DPOTrainer (2025-): prompt = render(prompt, add_generation_prompt=true); chosen =
//         the rest of render(prompt + chosen answer), whatever the template puts after the
//         answer included (Qwen's and Gemma's "\n" after the end-of-turn token). BOS only where
//         the template writes it; no EOS added.
//  kSimpo SimPO's run_simpo.py (the T-REG paper's pipeline; also the alignment-handbook's):
//         an empty system message first where the template mentions "system" or "<|im_start|>";
//         prompt = render(prompt) without generation prompt; chosen = render([the answer alone])
//         less a leading BOS text, so the assistant header belongs to the response; BOS put first
//         where the prompt lacks it (Zephyr), EOS appended where a response does not end in it.
// Either way prompt_ids + chosen_ids are the tokens of the whole text. Where the tokenizer merges a
// token across the prompt/answer boundary, the split moves to the last token that lies wholly in
// the prompt (counted as a boundary merge), as SimPO does; TRL warns and splits at the prompt's
// length, which drops or repeats a token.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "treg/chat_template.h"
#include "treg/tokenizer.h"

namespace treg {

// A row as read from JSONL, before tokenization.
struct RawPair {
  int64_t line = 0;              // 1-based line number in the file
  std::vector<Message> prompt;   // system? (user assistant)* user
  std::string chosen, rejected;  // the answers' text
};

// A bad row: what is wrong with it, where.
struct BadRow {
  std::string file;
  int64_t line = 0;
  std::string reason;
};

// Parses one JSONL line. Throws treg::Error "<file>:<line>: <reason>" for a bad row.
RawPair parse_pair_line(const std::string& text, const std::string& file, int64_t line);

enum class PairTokenization { kTrl, kSimpo };
PairTokenization parse_pair_tokenization(const std::string& name);  // "trl" | "simpo"

struct DataOptions {
  PairTokenization pair_tokenization = PairTokenization::kTrl;
  int64_t max_length = 2048;          // prompt + longer response, in tokens
  int64_t max_prompt_length = 1800;   // the prompt keeps its end (and its BOS)
  int64_t max_completion_length = 0;  // TRL: a response keeps its first this many tokens; 0 = all
  bool skip_bad_rows = false;         // false: the first bad row is an error
  std::string bad_rows_report;        // skip mode: JSONL report of skipped rows ("" = none written)
};

struct TokenizedPair {
  int64_t source_line = 0;
  std::vector<Message> prompt;                    // for the revision prompt's {instruction}
  std::string chosen_text, rejected_text;         // the answers' text as in the data ({answer})
  std::vector<int64_t> prompt_ids;                // [P]
  std::vector<int64_t> chosen_ids, rejected_ids;  // [C], [R], each holding the end-of-turn unless cut
  // What truncate_pair cut: the revision prompt then quotes the cut text, not the full one.
  bool prompt_cut = false, chosen_cut = false, rejected_cut = false;
  // kSimpo: how many leading response tokens are the template's assistant header, not the answer
  // (score-tokens gives them reward 0 and quotes only the answer in the revision prompts).
  size_t chosen_header = 0, rejected_header = 0;
};

// Everything that happened to the rows; nothing disappears without being counted here.
struct DataStats {
  int64_t rows = 0;               // non-blank lines read
  int64_t bad_rows = 0;           // skipped (skip_bad_rows) rows
  int64_t kept = 0;               // pairs produced
  int64_t prompts_truncated = 0;  // prompts cut to max_prompt_length (keeping their end)
  int64_t chosen_truncated = 0;   // responses cut to fit max_length
  int64_t rejected_truncated = 0;
  int64_t dropped_empty = 0;    // pairs dropped because a response was empty after truncation
  int64_t boundary_merges = 0;  // responses whose first token merged with the prompt's last
  int64_t prompt_tokens = 0, response_tokens = 0;  // after truncation
  std::string summary() const;
};

struct PreferenceData {
  std::vector<TokenizedPair> pairs;
  std::vector<BadRow> bad_rows;
  DataStats stats;
};

// The end-of-turn token id of `chat`; an error when the tokenizer does not have it as one token.
int64_t end_of_turn_id(const Tokenizer& tok, const ChatTemplate& chat);

// Tokenizes one row (no truncation). `stats` gets boundary merges. Throws treg::Error on rows the
// template or tokenizer cannot lay out (e.g. a role the template refuses).
TokenizedPair tokenize_pair(const RawPair& row, const Tokenizer& tok, const ChatTemplate& chat,
                            DataStats* stats, PairTokenization how = PairTokenization::kTrl);

// SimPO/WPO truncation: when prompt + longer response > max_length the prompt keeps its last
// max_prompt_length tokens (BOS stays first), then each response is cut to max_length - prompt.
// Before that, max_completion_length (TRL's) cuts each response to its first that-many tokens.
// Returns false when the pair must be dropped (a response is empty after truncation).
bool truncate_pair(TokenizedPair& pair, int64_t bos_id, const DataOptions& opts, DataStats* stats);

// Reads, validates, tokenizes and truncates a whole JSONL file.
PreferenceData load_preference_data(const std::string& path, const Tokenizer& tok,
                                    const ChatTemplate& chat, const DataOptions& opts);

// ---- supervised fine-tuning rows (treg sft) ----
// TRL's SFT shapes: {"prompt": text | [messages], "completion": text | [messages ending in the
// assistant's answer]} (prompt-completion) or {"messages": [..., assistant]} (conversational: the
// last assistant turn is the completion, the turns before it the prompt). A row becomes a
// TokenizedPair whose chosen and rejected are both the completion, laid out, truncated and checked
// exactly as a preference pair's chosen response, so the sequences SFT trains on are token for
// token those score-tokens and train read later.
RawPair parse_sft_line(const std::string& text, const std::string& file, int64_t line);
PreferenceData load_sft_data(const std::string& path, const Tokenizer& tok,
                             const ChatTemplate& chat, const DataOptions& opts);

// Number of non-blank lines of a JSONL file (the "rows" recorded in reward-dump metadata).
int64_t count_rows(const std::string& path);

}  // namespace treg
