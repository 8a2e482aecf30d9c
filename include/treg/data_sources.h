// Which JSONL file each split of a run reads: train_file / eval_file, or the rows that an
// alignment-handbook `dataset_mixer` / `dataset_mixture` selects from local files, written once to
// <output_dir>/data/<split>.jsonl so that scoring, the reward-dump metadata and error messages see
// one ordinary file per split.
//
// dataset_mixer {path: fraction} (handbook <= 0.4, mix_datasets): a .jsonl path is a train split
// and gives its FIRST int(fraction × rows) rows, as the handbook's select(range(...)); a directory
// gives <dir>/<split>.jsonl for each of dataset_splits, train splits subsampled the same way, test
// splits whole (the handbook's local fallback load_from_disk(<dir>/<split>)). Rows keep mixer
// order. dataset_mixture (handbook get_dataset): each dataset (a .jsonl path, or
// <id>/<split>.jsonl) gives int(weight × rows) rows drawn by a permutation seeded with the
// mixture's seed; the concatenation is split into train and test when test_split_size is set
// (ceil(size × rows) rows for a fraction, else that many), test rows drawn by a permutation seeded
// the same way. The handbook draws with numpy's generator, so the same counts but not the same
// rows; chosen rows keep their file order.
#pragma once
#include <string>
#include <vector>

#include "treg/data.h"

namespace treg {

struct Config;

// How the config's keys tokenise and truncate rows (max_length, max_prompt_length,
// max_completion_length, skip_bad_rows, pair_tokenization); skipped rows are listed in
// `bad_rows_report`.
DataOptions data_options(const Config& c, const std::string& bad_rows_report);

struct MixtureRows {
  std::vector<std::string> train, eval;  // JSONL lines as in their files
  std::vector<std::string> sources;      // one "<file> (<split>): k of n rows" per file read
};
// The rows a mixture selects. Errors name the mixture key and the missing or unreadable path.
MixtureRows select_mixture_rows(const Config& c);

// Whether the run evaluates: eval_strategy is not "no" and an eval_file or a mixture test split
// exists.
bool has_eval_split(const Config& c);
// The JSONL file of split "train" or "eval" ("" when the run has none). For a mixture it is
// <output_dir>/data/<split>.jsonl, rewritten only when its rows change (so reward dumps stay
// valid).
std::string split_data_file(const Config& c, const std::string& split);

}  // namespace treg
