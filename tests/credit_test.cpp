// The credit benchmark's pure parts: the seeded task and its planted errors, one token per digit
// with the tiny llama tokenizer (and a clear error with Llama-3's, which splits " 7"), per-token
// labels, the JSONL files read back by the project's own loaders, AUROC against hand-worked values
// and a brute-force python count, and the report.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "test_util.h"
#include "treg/config.h"
#include "treg/credit_task.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/tiny_tokenizer.h"

namespace treg {
namespace {

using nlohmann::json;
using test::error_of;

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

// The tiny llama tokenizer (sentencepiece BPE, Llama-3 chat template) the benchmark runs on.
struct TinyLlama {
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<ChatTemplate> chat;
};
const TinyLlama& tiny_llama() {
  static TinyLlama t = [] {
    const std::string dir = test::fresh_dir("credit-tiny-llama-tokenizer");
    write_tiny_tokenizer("llama", dir);
    TinyLlama x;
    x.tok = load_tokenizer(dir);
    x.chat = std::make_unique<ChatTemplate>(make_chat_template(*x.tok, ""));
    return x;
  }();
  return t;
}

RevisionSpec credit_spec() {
  RevisionSpec spec;
  spec.template_text = load_revision_template(credit_revision_prompt_path());
  spec.better_description = "helpful, correct, coherent, concise";
  spec.worse_description = "unhelpful, incorrect, incoherent, verbose";
  spec.assistant_prefix = "";
  return spec;
}

// ---- The task ----

TEST(CreditTask, SameSeedSameExamplesErrorsExactlyAtTheStatedItems) {
  CreditTaskOptions opts;
  opts.min_items = 3, opts.max_items = 9, opts.num_errors = 2, opts.seed = 11;
  const auto a = make_credit_examples(opts, 300, 1), b = make_credit_examples(opts, 300, 1);
  const auto other_stream = make_credit_examples(opts, 300, 2);
  opts.seed = 12;
  const auto other_seed = make_credit_examples(opts, 300, 1);
  int differ_stream = 0, differ_seed = 0;
  std::set<size_t> lengths;
  for (size_t i = 0; i < a.size(); ++i) {
    const CreditExample& e = a[i];
    EXPECT_EQ(e.input, b[i].input);
    EXPECT_EQ(e.corrupted, b[i].corrupted);
    EXPECT_EQ(e.error_items, b[i].error_items);
    differ_stream += e.input != other_stream[i].input;
    differ_seed += e.input != other_seed[i].input;
    const size_t n = e.input.size();
    lengths.insert(n);
    ASSERT_GE(n, 3u);
    ASSERT_LE(n, 9u);
    ASSERT_EQ(e.error_items.size(), 2u);
    EXPECT_LT(e.error_items[0], e.error_items[1]);  // ascending, distinct
    for (size_t j = 0; j < n; ++j) {
      EXPECT_EQ(e.correct[j], (e.input[j] + 3) % 10);
      const bool is_error =
          j == static_cast<size_t>(e.error_items[0]) || j == static_cast<size_t>(e.error_items[1]);
      EXPECT_EQ(e.corrupted[j] != e.correct[j], is_error) << "example " << i << " item " << j;
      EXPECT_GE(e.corrupted[j], 0);
      EXPECT_LE(e.corrupted[j], 9);
    }
    EXPECT_EQ(e.prompt, "Shift each digit by 3: " + credit_answer_text(e.input));
    EXPECT_EQ(e.chosen, credit_answer_text(e.correct));
    EXPECT_EQ(e.rejected, credit_answer_text(e.corrupted));
    EXPECT_EQ(parse_credit_prompt(e.prompt, "t"), e.input);
  }
  EXPECT_GT(differ_stream, 250);
  EXPECT_GT(differ_seed, 250);
  EXPECT_EQ(lengths.size(), 7u);  // every length in [3, 9] occurs
}

// A tripwire, not a golden: seed_seq and mt19937_64 are fully specified by the standard and no std
// distribution is used, so these values hold with every compiler; if they change, every
// benchmark's data changes with them.
TEST(CreditTask, PinnedFirstExampleOfSeedZero) {
  CreditTaskOptions opts;  // 4..8 items, 1 error, seed 0
  const CreditExample e = make_credit_examples(opts, 1, 1)[0];
  const std::string got = e.prompt + " | " + e.chosen + " | " + e.rejected;
  EXPECT_EQ(got, "Shift each digit by 3: 1 2 1 8 1 1 8 8 | 4 5 4 1 4 4 1 1 | 4 5 4 1 4 4 9 1");
}

TEST(CreditTask, OptionsAreChecked) {
  CreditTaskOptions opts;
  opts.min_items = 3, opts.max_items = 5, opts.num_errors = 3;
  CreditRng rng(0, 0);
  std::string e = error_of([&] { make_credit_example(rng, opts); });
  EXPECT_NE(e.find("num_errors = 3 must be in [1, min_items - 1] = [1, 2]"), std::string::npos)
      << e;
  opts.num_errors = 1, opts.max_items = 2;
  e = error_of([&] { make_credit_example(rng, opts); });
  EXPECT_NE(e.find("min_items = 3, max_items = 2"), std::string::npos) << e;
}

TEST(CreditTask, RngUniformCoversTheRangeAndDistinctIsASubset) {
  CreditRng rng(5, 0);
  std::vector<int> count(7, 0);
  for (int i = 0; i < 7000; ++i) ++count[static_cast<size_t>(rng.uniform(-3, 3) + 3)];
  for (int c : count) EXPECT_NEAR(c, 1000, 150);
  for (int i = 0; i < 100; ++i) {
    const auto d = rng.distinct(10, 4);
    ASSERT_EQ(d.size(), 4u);
    EXPECT_TRUE(std::is_sorted(d.begin(), d.end()));
    EXPECT_EQ(std::set<int64_t>(d.begin(), d.end()).size(), 4u);
    EXPECT_GE(d.front(), 0);
    EXPECT_LT(d.back(), 10);
  }
}

TEST(CreditTask, ParseAndGrade) {
  EXPECT_EQ(parse_credit_answer("0 4 7", "t"), (std::vector<int>{0, 4, 7}));
  for (const char* bad : {"", "0  4", "04", "0 4 ", " 0", "0 a"})
    EXPECT_NE(error_of([&] { parse_credit_answer(bad, "here"); }).find("here: '"),
              std::string::npos)
        << bad;
  EXPECT_NE(error_of([&] { parse_credit_prompt("Add 3: 1 2", "p"); }).find("not a credit-task"),
            std::string::npos);
  const std::string q = "Shift each digit by 3: 7 1 4";
  CreditGrade g = grade_credit_answer(q, "0 4 7");
  EXPECT_TRUE(g.exact);
  EXPECT_EQ(g.items_correct, 3);
  EXPECT_EQ(g.items, 3);
  g = grade_credit_answer(q, " 0 4 7\n");  // surrounding whitespace is not a mistake
  EXPECT_TRUE(g.exact);
  g = grade_credit_answer(q, "0 5 7");
  EXPECT_FALSE(g.exact);
  EXPECT_EQ(g.items_correct, 2);
  g = grade_credit_answer(q, "0 4");  // a missing digit counts wrong
  EXPECT_FALSE(g.exact);
  EXPECT_EQ(g.items_correct, 2);
  g = grade_credit_answer(q, "0 4 7 1");  // so does an extra one (no exact match)
  EXPECT_FALSE(g.exact);
  EXPECT_EQ(g.items_correct, 3);
  g = grade_credit_answer(q, "the answer");
  EXPECT_EQ(g.items_correct, 0);
}

// ---- Tokens ----

TEST(CreditTokens, EveryDigitIsOneTokenOfTheTinyLlamaTokenizer) {
  const TinyLlama& t = tiny_llama();
  for (PairTokenization how : {PairTokenization::kTrl, PairTokenization::kSimpo}) {
    const CreditTokenMap map = check_credit_tokenizer(*t.tok, *t.chat, how);
    for (int d = 0; d < 10; ++d) {
      // The answer's first digit follows the header's "\n\n" bare; the others carry the space.
      EXPECT_EQ(t.tok->id_to_piece(map.first_ids[static_cast<size_t>(d)]), std::to_string(d));
      EXPECT_EQ(t.tok->id_to_piece(map.later_ids[static_cast<size_t>(d)]),
                "\xe2\x96\x81" + std::to_string(d));  // "▁d"
    }
    EXPECT_EQ(map.trailing, 1);  // <|eot_id|>
  }
}

TEST(CreditTokens, ATokenizerThatSplitsSpaceAndDigitIsRefusedNamingIt) {
  // Llama-3's pre-tokenizer cuts " 7" into " " and "7".
  auto tok = load_tokenizer(test::unpack_tokenizer_fixture("llama3"));
  const ChatTemplate chat = builtin_chat_template("llama3");
  const std::string e =
      error_of([&] { check_credit_tokenizer(*tok, chat, PairTokenization::kTrl); });
  EXPECT_NE(e.find("credit benchmark tokenizer check"), std::string::npos) << e;
  EXPECT_NE(e.find("a digit is not one token"), std::string::npos) << e;
  EXPECT_NE(e.find("HINT: the credit benchmark needs every digit"), std::string::npos) << e;
}

TEST(CreditTokens, LabelsMarkThePlantedErrorTokensOnly) {
  const TinyLlama& t = tiny_llama();
  CreditTaskOptions opts;
  opts.num_errors = 2, opts.seed = 3;
  for (PairTokenization how : {PairTokenization::kTrl, PairTokenization::kSimpo}) {
    const CreditTokenMap map = check_credit_tokenizer(*t.tok, *t.chat, how);
    for (const CreditExample& ex : make_credit_examples(opts, 20, 9)) {
      RawPair row = parse_pair_line(credit_pair_row(ex), "pairs.jsonl", 4);
      const TokenizedPair pair = tokenize_pair(row, *t.tok, *t.chat, nullptr, how);
      const CreditTokenLabels l = credit_token_labels(pair, ex.error_items, map);
      ASSERT_EQ(l.rejected.size(), pair.rejected_ids.size());
      ASSERT_EQ(l.chosen.size(), pair.chosen_ids.size());
      ASSERT_EQ(l.rejected_item.size(), pair.rejected_ids.size());
      const size_t h = pair.rejected_header, n = ex.input.size();
      for (size_t i = 0; i < l.rejected.size(); ++i) {
        const bool item = i >= h && i < h + n;
        EXPECT_EQ(l.rejected_item[i], item ? 1 : 0);
        const bool error = item && std::count(ex.error_items.begin(), ex.error_items.end(),
                                              static_cast<int64_t>(i - h)) == 1;
        EXPECT_EQ(l.rejected[i], error ? 1 : 0) << "token " << i;
        // The token itself is the corrupted digit.
        if (item) {
          EXPECT_EQ(t.tok->decode({pair.rejected_ids[i]}).back(),
                    static_cast<char>('0' + ex.corrupted[i - h]));
        }
      }
      EXPECT_EQ(std::count(l.chosen.begin(), l.chosen.end(), 1), 0);
      EXPECT_EQ(std::count(l.chosen_item.begin(), l.chosen_item.end(), 1), static_cast<long>(n));
      // The last token (end-of-turn) is no item.
      EXPECT_EQ(l.chosen_item.back(), 0);
      EXPECT_EQ(l.rejected_item.back(), 0);
    }
  }
}

TEST(CreditTokens, LabelsRefuseWrongErrorItemsCutOrForeignTokens) {
  const TinyLlama& t = tiny_llama();
  const CreditTokenMap map = check_credit_tokenizer(*t.tok, *t.chat, PairTokenization::kTrl);
  CreditTaskOptions opts;
  const CreditExample ex = make_credit_examples(opts, 1, 4)[0];
  const RawPair row = parse_pair_line(credit_pair_row(ex), "pairs.jsonl", 7);
  const TokenizedPair pair = tokenize_pair(row, *t.tok, *t.chat, nullptr, PairTokenization::kTrl);

  std::vector<int64_t> wrong = {ex.error_items[0] == 0 ? 1 : 0};
  std::string e = error_of([&] { credit_token_labels(pair, wrong, map); });
  EXPECT_NE(e.find("credit pair at line 7: the digits that differ"), std::string::npos) << e;

  TokenizedPair cut = pair;
  cut.rejected_ids.pop_back();
  cut.rejected_cut = true;
  e = error_of([&] { credit_token_labels(cut, ex.error_items, map); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  EXPECT_NE(e.find("HINT: raise max_length"), std::string::npos) << e;

  TokenizedPair split = pair;  // as if the first digit had come out as two tokens
  split.chosen_ids.insert(split.chosen_ids.begin(), t.tok->piece_to_id("\xe2\x96\x81"));
  e = error_of([&] { credit_token_labels(split, ex.error_items, map); });
  EXPECT_NE(e.find("chosen has " + std::to_string(split.chosen_ids.size()) + " tokens"),
            std::string::npos)
      << e;

  TokenizedPair swapped = pair;  // a token that is not the digit's
  swapped.rejected_ids[1] = map.later_ids[static_cast<size_t>((ex.corrupted[1] + 1) % 10)];
  e = error_of([&] { credit_token_labels(swapped, ex.error_items, map); });
  EXPECT_NE(e.find("rejected token 1 is id"), std::string::npos) << e;
}

TEST(CreditTokens, AppendItemScoresKeepsOnlyDigits) {
  std::vector<double> scores;
  std::vector<int> labels;
  append_item_scores({0.5f, -1.f, 2.f, 9.f}, {0, 1, 0, 0}, {1, 1, 1, 0}, &scores, &labels);
  EXPECT_EQ(scores, (std::vector<double>{0.5, -1.0, 2.0}));
  EXPECT_EQ(labels, (std::vector<int>{0, 1, 0}));
  EXPECT_NE(error_of([&] {
              append_item_scores({1.f}, {0, 1}, {1, 1}, &scores, &labels);
            }).find("sizes differ"),
            std::string::npos);
}

// ---- Statistics ----

TEST(CreditStats, AurocHandWorkedValues) {
  EXPECT_DOUBLE_EQ(auroc({0.1, 0.2, 0.8, 0.9}, {0, 0, 1, 1}), 1.0);  // perfect
  EXPECT_DOUBLE_EQ(auroc({0.1, 0.2, 0.8, 0.9}, {1, 1, 0, 0}), 0.0);  // reversed
  EXPECT_DOUBLE_EQ(auroc({3, 3, 3, 3}, {0, 1, 0, 1}), 0.5);          // all tied
  // Positives 0.35, 0.8 vs negatives 0.1, 0.4: of 4 pairs the positive wins 3.
  EXPECT_DOUBLE_EQ(auroc({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}), 0.75);
  // Positives 0.5, 0.9 vs negatives 0.2, 0.5: wins 1 + 1/2 (tie) + 1 + 1 = 3.5 of 4.
  EXPECT_DOUBLE_EQ(auroc({0.2, 0.5, 0.5, 0.9}, {0, 1, 0, 1}), 0.875);
  // One positive, three negatives, one tied and one below: (1 + 0.5) / 3.
  EXPECT_DOUBLE_EQ(auroc({1, 2, 2, 3}, {0, 1, 0, 0}), 0.5);
  // Rewards: an error token scoring lower is a success.
  EXPECT_DOUBLE_EQ(credit_reward_auroc({0.4, -0.3, 0.2}, {0, 1, 0}), 1.0);
}

TEST(CreditStats, AurocRefusesBadInput) {
  EXPECT_NE(error_of([] {
              auroc({1, 2}, {1, 1});
            }).find("needs both classes, got 2 positives"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              auroc({1, 2}, {0, 0});
            }).find("0 positives and 2 negatives"),
            std::string::npos);
  EXPECT_NE(error_of([] { auroc({1, 2}, {0, 2}); }).find("label 1 is 2"), std::string::npos);
  EXPECT_NE(error_of([] { auroc({1, NAN}, {0, 1}); }).find("score 1 is NaN"), std::string::npos);
  EXPECT_NE(error_of([] { auroc({1}, {0, 1}); }).find("1 scores but 2 labels"), std::string::npos);
}

// Against an independent count in python: every (positive, negative) pair compared directly
// (O(n1 n0), no ranks), many ties; and statistics.stdev for the sample std.
TEST(CreditStats, AurocAndStdMatchPython) {
  CreditRng rng(42, 0);
  std::vector<double> scores;
  std::vector<int> labels;
  for (int i = 0; i < 400; ++i) {
    const int label = static_cast<int>(rng.uniform(0, 1));
    // Scores in tenths, shifted up for positives: overlapping classes with many ties.
    scores.push_back(static_cast<double>(rng.uniform(0, 20) + 4 * label) / 10.0);
    labels.push_back(label);
  }
  const std::vector<double> seeds = {0.71, 0.8125, 0.6, 0.93};
  json in = {{"scores", scores}, {"labels", labels}, {"seeds", seeds}};
  const std::string dir = test::fresh_dir("credit-auroc-python");
  write_file_atomic(dir + "/in.json", in.dump());
  write_file_atomic(
      dir + "/auc.py",
      "import json, statistics, sys\n"
      "d = json.load(open(sys.argv[1]))\n"
      "pos = [s for s, l in zip(d['scores'], d['labels']) if l == 1]\n"
      "neg = [s for s, l in zip(d['scores'], d['labels']) if l == 0]\n"
      "wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)\n"
      "print(repr(wins / (len(pos) * len(neg))))\n"
      "print(repr(statistics.mean(d['seeds'])))\n"
      "print(repr(statistics.stdev(d['seeds'])))\n");
  std::string out;
  ASSERT_EQ(test::run_command("/usr/bin/python3 " + dir + "/auc.py " + dir + "/in.json", &out), 0)
      << out;
  std::istringstream lines(out);
  double want_auc = 0, want_mean = 0, want_std = 0;
  lines >> want_auc >> want_mean >> want_std;
  EXPECT_NEAR(auroc(scores, labels), want_auc, 1e-12);
  EXPECT_GT(want_auc, 0.6);  // the data are what the comment says
  EXPECT_LT(want_auc, 0.9);
  EXPECT_NEAR(mean_of(seeds), want_mean, 1e-15);
  EXPECT_NEAR(sample_std(seeds), want_std, 1e-15);
  EXPECT_TRUE(std::isnan(sample_std({0.5})));
  EXPECT_NE(error_of([] { mean_of({}); }).find("of no values"), std::string::npos);
}

// ---- Data files ----

CreditDataOptions small_data() {
  CreditDataOptions o;
  o.task.seed = 17;
  o.task.num_errors = 2;
  o.sft_examples = 60;
  o.revision_examples = 40;
  o.train_pairs = 30;
  o.heldout_pairs = 25;
  return o;
}

TEST(CreditData, FilesParseWithTheProjectsLoadersAndAreDeterministic) {
  const TinyLlama& t = tiny_llama();
  const RevisionSpec spec = credit_spec();
  const CreditDataOptions opts = small_data();
  const CreditDataFiles f = write_credit_data(test::fresh_dir("credit-data-a"), opts, spec);
  const CreditDataFiles g = write_credit_data(test::fresh_dir("credit-data-b"), opts, spec);
  for (const auto& [a, b] :
       std::vector<std::pair<std::string, std::string>>{{f.sft_task, g.sft_task},
                                                        {f.sft_revision, g.sft_revision},
                                                        {f.sft, g.sft},
                                                        {f.train_pairs, g.train_pairs},
                                                        {f.heldout_pairs, g.heldout_pairs}})
    EXPECT_EQ(read_file(a), read_file(b)) << a;
  EXPECT_EQ(read_lines(f.sft_task).size(), 60u);
  EXPECT_EQ(read_lines(f.sft_revision).size(), 80u);  // a better and a worse row per question
  EXPECT_EQ(read_lines(f.sft).size(), 140u);
  EXPECT_EQ(read_lines(f.train_pairs).size(), 30u);
  EXPECT_EQ(read_lines(f.heldout_pairs).size(), 25u);

  // Pairs: parse_pair_line takes every row (error_items ignored); the full loader lays them out
  // and every held-out pair gets labels whose errors are the row's error_items.
  std::set<std::string> other_questions;
  for (const std::string& path : {f.train_pairs, f.heldout_pairs}) {
    int64_t line = 0;
    for (const std::string& text : read_lines(path)) {
      const RawPair row = parse_pair_line(text, path, ++line);
      ASSERT_EQ(row.prompt.size(), 1u);
      EXPECT_EQ(row.prompt[0].role, "user");
      const json j = json::parse(text);
      EXPECT_EQ(nlohmann::ordered_json::parse(text).begin().key(),
                "prompt");  // written in the order prompt, chosen, rejected
      EXPECT_EQ(j["error_items"].size(), 2u);
      if (path == f.train_pairs) other_questions.insert(row.prompt[0].content);
    }
  }
  const CreditTokenMap map = check_credit_tokenizer(*t.tok, *t.chat, PairTokenization::kTrl);
  DataOptions dopts;
  dopts.max_length = 256, dopts.max_prompt_length = 128;
  const PreferenceData held = load_preference_data(f.heldout_pairs, *t.tok, *t.chat, dopts);
  ASSERT_EQ(held.pairs.size(), 25u);
  const auto errors = read_credit_error_items(f.heldout_pairs);
  int64_t error_tokens = 0;
  for (const TokenizedPair& p : held.pairs) {
    const CreditTokenLabels l = credit_token_labels(p, errors.at(p.source_line), map);
    error_tokens += std::count(l.rejected.begin(), l.rejected.end(), 1);
  }
  EXPECT_EQ(error_tokens, 2 * 25);

  // SFT rows: TRL's conversational prompt-completion shape; task rows answer correctly.
  auto sft_row = [](const std::string& text) {
    const json j = json::parse(text);
    EXPECT_EQ(j.size(), 2u);
    EXPECT_EQ(j["prompt"].size(), 1u);
    EXPECT_EQ(j["prompt"][0]["role"], "user");
    EXPECT_EQ(j["completion"].size(), 1u);
    EXPECT_EQ(j["completion"][0]["role"], "assistant");
    return std::make_pair(j["prompt"][0]["content"].get<std::string>(),
                          j["completion"][0]["content"].get<std::string>());
  };
  for (const std::string& text : read_lines(f.sft_task)) {
    const auto [user, answer] = sft_row(text);
    EXPECT_TRUE(grade_credit_answer(user, answer).exact) << text;
    other_questions.insert(user);
  }

  // Revision rows: the user turn is what score-tokens builds; "better" is the correct answer,
  // "worse" the shown one with 1..2 more mistakes and its own kept.
  const std::vector<std::string> rev = read_lines(f.sft_revision);
  int shown_correct = 0;
  for (size_t i = 0; i < rev.size(); i += 2) {
    const auto [better_user, better] = sft_row(rev[i]);
    const auto [worse_user, worse] = sft_row(rev[i + 1]);
    // Recover question and shown answer from the template's lines.
    const std::string question = better_user.substr(0, better_user.find('\n'));
    const size_t a = better_user.find("\nAnswer: ") + 9;
    const std::string shown_text = better_user.substr(a, better_user.find('\n', a) - a);
    other_questions.insert(question);
    EXPECT_EQ(better_user, render_revision_prompt(spec.template_text, question, shown_text,
                                                  "better", spec.better_description));
    EXPECT_EQ(worse_user, render_revision_prompt(spec.template_text, question, shown_text, "worse",
                                                 spec.worse_description));
    EXPECT_TRUE(grade_credit_answer(question, better).exact) << rev[i];
    const std::vector<int> input = parse_credit_prompt(question, "q");
    const std::vector<int> shown = parse_credit_answer(shown_text, "shown");
    const std::vector<int> worse_digits = parse_credit_answer(worse, "worse");
    ASSERT_EQ(worse_digits.size(), input.size());
    int shown_wrong = 0, extra = 0;
    for (size_t j = 0; j < input.size(); ++j) {
      const int truth = (input[j] + 3) % 10;
      shown_wrong += shown[j] != truth;
      if (shown[j] != truth) {
        EXPECT_EQ(worse_digits[j], shown[j]) << rev[i + 1];  // its mistakes are kept
      } else {
        extra += worse_digits[j] != truth;
      }
    }
    EXPECT_LE(shown_wrong, 2);
    shown_correct += shown_wrong == 0;
    EXPECT_GE(extra, 1) << rev[i + 1];
    EXPECT_LE(extra, 2) << rev[i + 1];
  }
  EXPECT_GT(shown_correct, 5);  // both kinds of shown answers occur
  EXPECT_LT(shown_correct, 35);

  // Held-out questions are in no other file.
  for (const std::string& text : read_lines(f.heldout_pairs))
    EXPECT_EQ(other_questions.count(json::parse(text)["prompt"].get<std::string>()), 0u) << text;

  // sft.jsonl holds exactly the rows of the other two.
  std::multiset<std::string> both, mixed;
  for (const auto& path : {f.sft_task, f.sft_revision})
    for (const auto& l : read_lines(path)) both.insert(l);
  for (const auto& l : read_lines(f.sft)) mixed.insert(l);
  EXPECT_EQ(both, mixed);
}

// The revision rows' user turn, rendered with the generation prompt, is token for token the
// context score-tokens scores under (revision_context_ids with assistant_prefix ""), so SFT teaches
// the very contexts r̂ is read from; and an empty assistant_prefix is a valid config.
TEST(CreditData, RevisionRowsAreScoreTokensContextsAndEmptyPrefixIsAccepted) {
  const TinyLlama& t = tiny_llama();
  const RevisionSpec spec = credit_spec();
  CreditTaskOptions opts;
  const CreditExample ex = make_credit_examples(opts, 1, 8)[0];
  CreditRng rng(1, 1);
  for (const char* direction : {"better", "worse"}) {
    const json row = json::parse(credit_revision_row(ex, ex.corrupted, direction, spec, rng, 2));
    const std::string user = row["prompt"][0]["content"];
    const std::vector<int64_t> sft_context = t.tok->encode(
        t.chat->render({{"user", user}}, /*add_generation_prompt=*/true), /*add_special=*/false);
    EXPECT_EQ(sft_context, revision_context_ids(instruction_text({{"user", ex.prompt}}),
                                                ex.rejected, direction, spec, *t.tok, *t.chat));
  }
  const Config c = parse_config(
      "model_name_or_path: m\nrevision_prompt: configs/prompts/credit_revision.txt\n"
      "assistant_prefix: \"\"\n",
      "cfg.yaml");
  EXPECT_EQ(c.assistant_prefix, "");
  const Config o = parse_config("model_name_or_path: m\n", "cfg.yaml", {"assistant_prefix="});
  EXPECT_EQ(o.assistant_prefix, "");
}

TEST(CreditData, BadOptionsAndTemplatesAreRefused) {
  RevisionSpec spec = credit_spec();
  CreditDataOptions opts = small_data();
  const std::string dir = test::fresh_dir("credit-data-bad");
  opts.heldout_pairs = 2000;  // more 3-digit questions than exist (1000)
  opts.task.min_items = opts.task.max_items = 3;
  std::string e = error_of([&] { write_credit_data(dir, opts, spec); });
  EXPECT_NE(e.find("held-out questions unseen"), std::string::npos) << e;
  spec.template_text = "{instruction} {answer}";
  e = error_of([&] { write_credit_data(dir, small_data(), spec); });
  EXPECT_NE(e.find("missing placeholder(s) {direction}, {detailed_description}"), std::string::npos)
      << e;
}

// ---- Report ----

TEST(CreditReport, TableHoldsMeansStdsAndEverySeedsValues) {
  CreditReport r;
  r.settings = {{"num_errors", "2"}, {"items", "4..8"}};
  r.methods.push_back({"DPO", {1, 2, 3}, {0.8, 0.9, 1.0}, {}, {0.5, 0.25, 0.75}});
  r.methods.push_back(
      {"DPO-REG <a=0.25>", {1, 2, 3}, {0.9, 0.95, 1.0}, {0.7, 0.7, 0.7}, {0.6, 0.6, 0.6}});
  r.methods.push_back({"SFT", {1}, {0.55}, {}, {}});
  const std::string html = render_credit_report(r);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("0.900 &plusmn; 0.100"), std::string::npos);  // DPO reward AUROC
  EXPECT_NE(html.find("0.500 &plusmn; 0.250"), std::string::npos);  // DPO accuracy
  EXPECT_NE(html.find("0.950 &plusmn; 0.050"), std::string::npos);  // DPO-REG
  EXPECT_NE(html.find("0.700 &plusmn; 0.000"), std::string::npos);  // r̂ AUROC
  EXPECT_NE(html.find("<td>0.550</td>"), std::string::npos);        // one seed: no ±
  EXPECT_NE(html.find("seed 2: 0.900 / &mdash; / 0.250"), std::string::npos);
  EXPECT_NE(html.find("seed 3: 1.000 / 0.700 / 0.600"), std::string::npos);
  EXPECT_NE(html.find("DPO-REG &lt;a=0.25&gt;"), std::string::npos);  // names are escaped
  EXPECT_NE(html.find("<td>num_errors</td><td>2</td>"), std::string::npos);
  EXPECT_NE(html.find("Reward AUROC (planted errors)"), std::string::npos);
  EXPECT_NE(html.find("Greedy accuracy (held-out)"), std::string::npos);
  EXPECT_EQ(std::count(html.begin(), html.end(), '\n') > 0, true);
  size_t svgs = 0;
  for (size_t p = html.find("<svg"); p != std::string::npos; p = html.find("<svg", p + 1)) ++svgs;
  EXPECT_EQ(svgs, 3u);  // reward AUROC, r̂ AUROC, accuracy

  r.methods[0].greedy_accuracy.pop_back();
  const std::string e = error_of([&] { render_credit_report(r); });
  EXPECT_NE(e.find("method 'DPO'"), std::string::npos) << e;
  EXPECT_NE(e.find("greedy_accuracy has 2 values for 3 seeds"), std::string::npos) << e;
}

TEST(CreditReport, BarChartDrawsErrorBarsOnlyWhereThereIsASpread) {
  const std::string svg = svg_bar_chart("t", {"a", "b", "c"}, {0.5, 0.75, NAN}, {0.1, NAN, NAN},
                                        {{0.4, 0.6}, {0.75}, {}});
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n'), 0);
  size_t rects = 0, whiskers = 0, dots = 0;
  for (size_t p = svg.find("<rect"); p != std::string::npos; p = svg.find("<rect", p + 1)) ++rects;
  for (size_t p = svg.find("<path"); p != std::string::npos; p = svg.find("<path", p + 1))
    ++whiskers;
  for (size_t p = svg.find("<circle"); p != std::string::npos; p = svg.find("<circle", p + 1))
    ++dots;
  EXPECT_EQ(rects, 2u);
  EXPECT_EQ(whiskers, 1u);
  EXPECT_EQ(dots, 3u);
  EXPECT_NE(svg.find("n/a"), std::string::npos);
  EXPECT_NE(error_of([] { svg_bar_chart("t", {"a"}, {}, {}, {}); }).find("expected equal"),
            std::string::npos);
}

}  // namespace
}  // namespace treg
