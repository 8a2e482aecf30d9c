// The credit-benchmark task: seeded questions, their answers, planted errors, and grading.
#include <algorithm>
#include <sstream>

#include "treg/credit_task.h"
#include "treg/error.h"

namespace treg {
namespace {

const std::string kPromptHead = "Shift each digit by " + std::to_string(kCreditShift) + ": ";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && is_space(s[a])) ++a;
  while (b > a && is_space(s[b - 1])) --b;
  return s.substr(a, b - a);
}

}  // namespace

void check_credit_task_options(const CreditTaskOptions& o) {
  const std::string where = "credit task options";
  if (o.min_items < 2 || o.max_items < o.min_items)
    fail(where,
         "min_items = " + std::to_string(o.min_items) + ", max_items = " +
             std::to_string(o.max_items) + ": expected 2 <= min_items <= max_items",
         "a question needs a correct digit beside each planted error");
  if (o.num_errors < 1 || o.num_errors >= o.min_items)
    fail(where,
         "num_errors = " + std::to_string(o.num_errors) + " must be in [1, min_items - 1] = [1, " +
             std::to_string(o.min_items - 1) + "]",
         "every rejected answer keeps a correct digit, and a 'worse' revision needs one to spoil");
}

CreditRng::CreditRng(uint64_t seed, uint64_t stream) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32),
                    0x6372u /* "cr" */};
  gen_.seed(seq);
}

int64_t CreditRng::uniform(int64_t lo, int64_t hi) {
  if (hi < lo)
    fail("CreditRng::uniform",
         "empty range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  const uint64_t range = static_cast<uint64_t>(hi - lo) + 1;
  if (range == 0) return static_cast<int64_t>(gen_());  // the whole int64 range
  // Rejection: a plain `gen() % range` would favour small values.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % range;
  uint64_t r;
  do r = gen_();
  while (r >= limit);
  return lo + static_cast<int64_t>(r % range);
}

std::vector<int64_t> CreditRng::distinct(int64_t n, int64_t k) {
  if (k < 0 || k > n)
    fail("CreditRng::distinct",
         "cannot draw " + std::to_string(k) + " distinct values of [0, " + std::to_string(n) + ")");
  // The first k steps of a Fisher-Yates shuffle.
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
  for (int64_t i = 0; i < k; ++i)
    std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(uniform(i, n - 1))]);
  std::vector<int64_t> out(all.begin(), all.begin() + k);
  std::sort(out.begin(), out.end());
  return out;
}

std::string credit_answer_text(const std::vector<int>& items) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) s += ' ';
    s += static_cast<char>('0' + items[i]);
  }
  return s;
}

std::string credit_prompt_text(const std::vector<int>& input) {
  return kPromptHead + credit_answer_text(input);
}

std::vector<int> parse_credit_answer(const std::string& text, const std::string& where) {
  // "d d d": digits at even offsets, single spaces at odd ones, so the length is odd.
  bool ok = text.size() % 2 == 1;
  for (size_t i = 0; ok && i < text.size(); ++i)
    ok = i % 2 == 0 ? text[i] >= '0' && text[i] <= '9' : text[i] == ' ';
  if (!ok)
    fail(where,
         "'" + text + "' is not a credit-task answer: expected digits separated by single spaces",
         "the rows must come from write_credit_data");
  std::vector<int> out;
  for (size_t i = 0; i < text.size(); i += 2) out.push_back(text[i] - '0');
  return out;
}

std::vector<int> parse_credit_prompt(const std::string& text, const std::string& where) {
  if (text.compare(0, kPromptHead.size(), kPromptHead) != 0)
    fail(where,
         "'" + text + "' is not a credit-task question: expected it to start with '" + kPromptHead +
             "'",
         "the rows must come from write_credit_data");
  return parse_credit_answer(text.substr(kPromptHead.size()), where);
}

CreditExample make_credit_example(CreditRng& rng, const CreditTaskOptions& opts) {
  check_credit_task_options(opts);
  CreditExample ex;
  const int64_t n = rng.uniform(opts.min_items, opts.max_items);
  for (int64_t i = 0; i < n; ++i) {
    const int d = static_cast<int>(rng.uniform(0, kCreditAlphabet - 1));
    ex.input.push_back(d);
    ex.correct.push_back((d + kCreditShift) % kCreditAlphabet);
  }
  ex.corrupted = ex.correct;
  ex.error_items = rng.distinct(n, opts.num_errors);
  // A wrong digit: any of the other nine, uniformly.
  for (int64_t e : ex.error_items) {
    int& d = ex.corrupted[static_cast<size_t>(e)];
    d = static_cast<int>((d + rng.uniform(1, kCreditAlphabet - 1)) % kCreditAlphabet);
  }
  ex.prompt = credit_prompt_text(ex.input);
  ex.chosen = credit_answer_text(ex.correct);
  ex.rejected = credit_answer_text(ex.corrupted);
  return ex;
}

std::vector<CreditExample> make_credit_examples(const CreditTaskOptions& opts, int64_t count,
                                                uint64_t stream) {
  CreditRng rng(opts.seed, stream);
  std::vector<CreditExample> out;
  out.reserve(static_cast<size_t>(std::max<int64_t>(count, 0)));
  for (int64_t i = 0; i < count; ++i) out.push_back(make_credit_example(rng, opts));
  return out;
}

CreditGrade grade_credit_answer(const std::string& prompt, const std::string& answer) {
  const std::vector<int> input = parse_credit_prompt(prompt, "grade_credit_answer");
  std::vector<int> truth;
  for (int d : input) truth.push_back((d + kCreditShift) % kCreditAlphabet);
  CreditGrade g;
  g.items = static_cast<int64_t>(truth.size());
  const std::string a = trim(answer);
  g.exact = a == credit_answer_text(truth);
  // Position by position over whitespace-separated words, so one wrong digit costs one item.
  std::istringstream words(a);
  std::string w;
  for (size_t i = 0; i < truth.size() && words >> w; ++i)
    if (w.size() == 1 && w[0] == static_cast<char>('0' + truth[i])) ++g.items_correct;
  return g;
}

}  // namespace treg
