// AUROC (Mann-Whitney U) and the mean ± sample std the benchmark reports over seeds.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "treg/credit_task.h"
#include "treg/error.h"

namespace treg {

double auroc(const std::vector<double>& scores, const std::vector<int>& labels) {
  if (scores.size() != labels.size())
    fail("auroc", std::to_string(scores.size()) + " scores but " + std::to_string(labels.size()) +
                      " labels");
  double n1 = 0, n0 = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] != 0 && labels[i] != 1)
      fail("auroc",
           "label " + std::to_string(i) + " is " + std::to_string(labels[i]) + ", expected 0 or 1");
    if (std::isnan(scores[i])) fail("auroc", "score " + std::to_string(i) + " is NaN");
    (labels[i] ? n1 : n0) += 1;
  }
  if (n1 == 0 || n0 == 0)
    fail("auroc",
         "needs both classes, got " + std::to_string(static_cast<int64_t>(n1)) + " positives and " +
             std::to_string(static_cast<int64_t>(n0)) + " negatives",
         "score responses that hold planted errors and correct tokens");
  // Rank all scores (1-based; a run of ties shares its average rank), then
  // U = (sum of the positives' ranks) - n1 (n1 + 1) / 2 counts the (positive, negative) pairs the
  // positive wins, a tie counting 1/2; AUROC = U / (n1 n0).
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double rank_sum = 0;  // of the positives; halves and integers below 2^53 are exact in a double
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) ++j;
    const double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t t = i; t < j; ++t)
      if (labels[order[t]]) rank_sum += avg_rank;
    i = j;
  }
  return (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0);
}

double credit_reward_auroc(const std::vector<double>& rewards, const std::vector<int>& labels) {
  std::vector<double> negated(rewards.size());
  for (size_t i = 0; i < rewards.size(); ++i) negated[i] = -rewards[i];
  return auroc(negated, labels);
}

double mean_of(const std::vector<double>& values) {
  if (values.empty()) fail("mean_of", "of no values");
  return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

double sample_std(const std::vector<double>& values) {
  if (values.size() < 2) return NAN;  // one seed says nothing about the spread
  const double m = mean_of(values);
  double ss = 0;
  for (double v : values) ss += (v - m) * (v - m);
  return std::sqrt(ss / static_cast<double>(values.size() - 1));
}

}  // namespace treg
