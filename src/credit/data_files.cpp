// The benchmark's JSONL files: SFT rows (the task and revision demonstrations) and preference
// pairs with their planted-error positions, all drawn from one seed.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "treg/build_info.h"
#include "treg/credit_task.h"
#include "treg/error.h"
#include "treg/io.h"

namespace treg {
namespace {

using OrderedJson = nlohmann::ordered_json;  // keys in the order written, for readable rows

// The independent streams of one seed, one per file (so that adding rows to one file leaves the
// others unchanged).
enum CreditStream : uint64_t {
  kSftStream = 1,
  kRevisionStream = 2,
  kTrainStream = 3,
  kHeldoutStream = 4,
  kShuffleStream = 5,
};

std::string join_rows(const std::vector<std::string>& rows) {
  std::string s;
  for (const auto& r : rows) s += r + "\n";
  return s;
}

}  // namespace

std::string credit_revision_prompt_path() {
  return path_join(source_dir(), "configs/prompts/credit_revision.txt");
}

std::string credit_sft_row(const std::string& user, const std::string& assistant) {
  OrderedJson row;
  row["prompt"] = OrderedJson::array({{{"role", "user"}, {"content", user}}});
  row["completion"] = OrderedJson::array({{{"role", "assistant"}, {"content", assistant}}});
  return row.dump();
}

std::string credit_revision_row(const CreditExample& ex, const std::vector<int>& shown,
                                const std::string& direction, const RevisionSpec& spec,
                                CreditRng& rng, int64_t max_extra_errors) {
  if (direction != "better" && direction != "worse")
    fail("credit_revision_row", "direction '" + direction + "' must be better or worse");
  if (shown.size() != ex.correct.size())
    fail("credit_revision_row", "the shown answer has " + std::to_string(shown.size()) +
                                    " digits, the question " + std::to_string(ex.correct.size()));
  const bool better = direction == "better";
  // Exactly the user turn score-tokens builds (revision_context_ids), so the demonstrations teach
  // the very contexts r̂ is read from.
  const std::string user = render_revision_prompt(
      spec.template_text, instruction_text({{"user", ex.prompt}}), credit_answer_text(shown),
      direction, better ? spec.better_description : spec.worse_description);
  std::vector<int> answer = ex.correct;
  if (!better) {
    // "Worse" keeps the shown answer's mistakes and spoils 1..max_extra_errors of its right digits.
    answer = shown;
    std::vector<int64_t> right;
    for (size_t i = 0; i < shown.size(); ++i)
      if (shown[i] == ex.correct[i]) right.push_back(static_cast<int64_t>(i));
    if (right.empty() || max_extra_errors < 1)
      fail("credit_revision_row",
           "cannot make '" + credit_answer_text(shown) +
               "' worse: " + (right.empty() ? "no digit is right" : "max_extra_errors < 1"));
    const int64_t n_right = static_cast<int64_t>(right.size());
    const int64_t extra = rng.uniform(1, std::min(max_extra_errors, n_right));
    for (int64_t j : rng.distinct(n_right, extra)) {
      int& d = answer[static_cast<size_t>(right[static_cast<size_t>(j)])];
      d = static_cast<int>((d + rng.uniform(1, kCreditAlphabet - 1)) % kCreditAlphabet);
    }
  }
  // With a non-empty prefix the completion text is prefix + answer, while score-tokens encodes the
  // prefix apart from the answer's ids; the benchmark uses assistant_prefix "" so the two agree.
  return credit_sft_row(
      user, render_assistant_prefix(spec.assistant_prefix, direction) + credit_answer_text(answer));
}

std::string credit_pair_row(const CreditExample& ex) {
  OrderedJson row;
  row["prompt"] = ex.prompt;
  row["chosen"] = ex.chosen;
  row["rejected"] = ex.rejected;
  row["error_items"] = ex.error_items;
  return row.dump();
}

CreditDataFiles write_credit_data(const std::string& dir, const CreditDataOptions& opts,
                                  const RevisionSpec& spec) {
  check_credit_task_options(opts.task);
  check_revision_template(spec.template_text, "credit benchmark revision template");
  for (const auto& [name, v] : {std::pair<const char*, int64_t>{"sft_examples", opts.sft_examples},
                                {"revision_examples", opts.revision_examples},
                                {"train_pairs", opts.train_pairs},
                                {"heldout_pairs", opts.heldout_pairs}})
    if (v < 0) fail("credit data options", std::string(name) + " = " + std::to_string(v) + " < 0");
  if (opts.max_extra_errors < 1)
    fail("credit data options",
         "max_extra_errors = " + std::to_string(opts.max_extra_errors) + " must be >= 1");
  make_dirs(dir);
  CreditDataFiles files{path_join(dir, "sft_task.jsonl"), path_join(dir, "sft_revision.jsonl"),
                        path_join(dir, "sft.jsonl"), path_join(dir, "pairs.train.jsonl"),
                        path_join(dir, "pairs.heldout.jsonl")};
  std::set<std::vector<int>> seen;  // questions of every file but the held-out one

  std::vector<std::string> task_rows;
  for (const CreditExample& ex : make_credit_examples(opts.task, opts.sft_examples, kSftStream)) {
    task_rows.push_back(credit_sft_row(ex.prompt, ex.chosen));
    seen.insert(ex.input);
  }

  // Each question is shown once, half the time correct and half the time with 1..k mistakes, and
  // asked for in both directions, so "better" and "worse" differ only in the direction words.
  std::vector<std::string> revision_rows;
  CreditRng rng(opts.task.seed, kRevisionStream);
  for (int64_t i = 0; i < opts.revision_examples; ++i) {
    CreditTaskOptions task = opts.task;
    const bool corrupted = rng.uniform(0, 1) == 1;
    task.num_errors = rng.uniform(1, opts.task.num_errors);
    const CreditExample ex = make_credit_example(rng, task);
    const std::vector<int>& shown = corrupted ? ex.corrupted : ex.correct;
    for (const char* direction : {"better", "worse"})
      revision_rows.push_back(
          credit_revision_row(ex, shown, direction, spec, rng, opts.max_extra_errors));
    seen.insert(ex.input);
  }

  std::vector<std::string> train_rows;
  for (const CreditExample& ex : make_credit_examples(opts.task, opts.train_pairs, kTrainStream)) {
    train_rows.push_back(credit_pair_row(ex));
    seen.insert(ex.input);
  }

  // Held-out questions appear nowhere else, so greedy accuracy on them measures generalisation.
  std::vector<std::string> heldout_rows;
  CreditRng held(opts.task.seed, kHeldoutStream);
  const int64_t max_draws = 100 * opts.heldout_pairs + 10000;
  for (int64_t draws = 0; static_cast<int64_t>(heldout_rows.size()) < opts.heldout_pairs; ++draws) {
    if (draws == max_draws)
      fail("credit data options",
           "found only " + std::to_string(heldout_rows.size()) + " of " +
               std::to_string(opts.heldout_pairs) + " held-out questions unseen in " +
               std::to_string(draws) + " draws",
           "raise task.max_items (more distinct questions) or lower the example counts");
    const CreditExample ex = make_credit_example(held, opts.task);
    if (!seen.insert(ex.input).second) continue;
    heldout_rows.push_back(credit_pair_row(ex));
  }

  // sft.jsonl: both kinds, shuffled (Fisher-Yates, own generator) so no batch is all one kind.
  std::vector<std::string> all = task_rows;
  all.insert(all.end(), revision_rows.begin(), revision_rows.end());
  CreditRng shuffle(opts.task.seed, kShuffleStream);
  for (int64_t i = static_cast<int64_t>(all.size()) - 1; i > 0; --i)
    std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(shuffle.uniform(0, i))]);

  write_file_atomic(files.sft_task, join_rows(task_rows));
  write_file_atomic(files.sft_revision, join_rows(revision_rows));
  write_file_atomic(files.sft, join_rows(all));
  write_file_atomic(files.train_pairs, join_rows(train_rows));
  write_file_atomic(files.heldout_pairs, join_rows(heldout_rows));
  return files;
}

}  // namespace treg
