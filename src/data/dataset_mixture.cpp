// alignment-handbook dataset mixtures over local JSONL files (the rules are in data_sources.h).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "treg/config.h"
#include "treg/data_sources.h"
#include "treg/error.h"
#include "treg/io.h"

namespace treg {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> read_rows(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open data file");
  std::vector<std::string> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) rows.push_back(line);
  }
  return rows;
}

// A seeded permutation of [0, n): mt19937_64 and Fisher-Yates with rejection sampling, so the rows
// a mixture takes do not depend on the standard library's distributions.
std::vector<size_t> permutation(size_t n, int64_t seed) {
  std::seed_seq seq{static_cast<uint32_t>(seed),
                    static_cast<uint32_t>(static_cast<uint64_t>(seed) >> 32),
                    0x6d6978u /* "mix" */};
  std::mt19937_64 gen(seq);
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  for (size_t i = n; i-- > 1;) {
    const uint64_t range = i + 1, limit = UINT64_MAX - UINT64_MAX % range;
    uint64_t r;
    do r = gen();
    while (r >= limit);
    std::swap(order[i], order[r % range]);
  }
  return order;
}

// The rows at the first k positions of a seeded permutation, in file order.
std::vector<std::string> seeded_subset(const std::vector<std::string>& rows, size_t k,
                                       int64_t seed) {
  std::vector<size_t> pick = permutation(rows.size(), seed);
  pick.resize(k);
  std::sort(pick.begin(), pick.end());
  std::vector<std::string> out;
  for (size_t i : pick) out.push_back(rows[i]);
  return out;
}

std::string not_local(const std::string& id, const std::string& split_file) {
  return "'" + id + "' is neither a local JSONL file nor a directory holding " + split_file +
         "; treg reads local files only (export the split with datasets' to_json and point the "
         "key at it, e.g. as key=value after --config)";
}

std::string split_path(const std::string& dir, const std::string& split) {
  return (fs::path(dir) / (split + ".jsonl")).string();
}

void select_mixer(const Config& c, MixtureRows& out) {
  for (const auto& [path, fraction] : c.dataset_mixer) {
    std::vector<std::pair<std::string, std::string>> files;  // (split, file)
    if (fs::is_regular_file(path)) {
      files.emplace_back("train", path);
    } else if (fs::is_directory(path)) {
      for (const std::string& split : c.dataset_splits) {
        const std::string f = split_path(path, split);
        if (!fs::is_regular_file(f))
          fail("config key 'dataset_mixer'",
               "'" + path + "' has no " + split + ".jsonl (dataset_splits names " + split + ")",
               "save each split of dataset_splits as <dir>/<split>.jsonl, or set dataset_splits");
        files.emplace_back(split, f);
      }
    } else {
      fail("config key 'dataset_mixer'", not_local(path, "<split>.jsonl"));
    }
    for (const auto& [split, file] : files) {
      std::vector<std::string> rows = read_rows(file);
      const size_t n = rows.size();
      // Only train splits are subsampled: the handbook keeps test sets whole for fair comparisons.
      const bool train = split.find("train") != std::string::npos;
      const size_t k = train ? static_cast<size_t>(fraction * static_cast<double>(n)) : n;
      rows.resize(k);
      auto& dest = train ? out.train : out.eval;
      dest.insert(dest.end(), rows.begin(), rows.end());
      out.sources.push_back(file + " (" + split + "): " + std::to_string(k) + " of " +
                            std::to_string(n) + " rows");
    }
  }
}

void select_mixture(const Config& c, MixtureRows& out) {
  const DatasetMixture& m = c.dataset_mixture;
  std::vector<std::string> all;
  for (size_t i = 0; i < m.datasets.size(); ++i) {
    const MixtureDataset& d = m.datasets[i];
    const std::string key = "dataset_mixture.datasets[" + std::to_string(i) + "].id";
    std::string file;
    if (fs::is_regular_file(d.id))
      file = d.id;
    else if (fs::is_directory(d.id) && fs::is_regular_file(split_path(d.id, d.split)))
      file = split_path(d.id, d.split);
    else
      fail("config key '" + key + "'", not_local(d.id, d.split + ".jsonl"));
    std::vector<std::string> rows = read_rows(file);
    const size_t n = rows.size();
    const size_t k = static_cast<size_t>(static_cast<double>(n) * d.weight);
    if (k < n) rows = seeded_subset(rows, k, m.seed);
    all.insert(all.end(), rows.begin(), rows.end());
    out.sources.push_back(file + " (" + d.split + "): " + std::to_string(k) + " of " +
                          std::to_string(n) + " rows");
  }
  if (m.test_split_size <= 0) {
    out.train = std::move(all);
    return;
  }
  // datasets' train_test_split: a fractional size is ceil(size × rows), a whole one a row count.
  const size_t n = all.size();
  const size_t n_test =
      m.test_split_size < 1
          ? static_cast<size_t>(std::ceil(m.test_split_size * static_cast<double>(n)))
          : static_cast<size_t>(m.test_split_size);
  if (n_test == 0 || n_test >= n)
    fail("config key 'dataset_mixture.test_split_size'",
         "asks for " + std::to_string(n_test) + " test rows of the mixture's " + std::to_string(n),
         "the test split must leave at least one train row and take at least one");
  std::vector<size_t> order = permutation(n, m.seed);
  std::vector<bool> is_test(n, false);
  for (size_t i = 0; i < n_test; ++i) is_test[order[i]] = true;
  for (size_t i = 0; i < n; ++i) (is_test[i] ? out.eval : out.train).push_back(all[i]);
}

std::string joined_sources(const MixtureRows& rows) {
  std::string s;
  for (const auto& src : rows.sources) s += (s.empty() ? "" : "; ") + src;
  return s;
}

}  // namespace

MixtureRows select_mixture_rows(const Config& c) {
  MixtureRows out;
  if (!c.dataset_mixer.empty())
    select_mixer(c, out);
  else
    select_mixture(c, out);
  const std::string key = c.dataset_mixer.empty() ? "dataset_mixture" : "dataset_mixer";
  if (out.train.empty())
    fail("config key '" + key + "'", "selects no train rows (" + joined_sources(out) + ")");
  if (!out.eval.empty() && !c.eval_file.empty())
    fail("config key 'eval_file'",
         "is set while the mixture also has a test split; keep one of them");
  return out;
}

bool has_eval_split(const Config& c) {
  if (c.eval_strategy == "no") return false;
  if (!c.eval_file.empty()) return true;
  if (c.dataset_mixture.test_split_size > 0) return true;
  for (const auto& [path, fraction] : c.dataset_mixer)
    if (fs::is_directory(path))
      for (const std::string& split : c.dataset_splits)
        if (split.find("test") != std::string::npos) return true;
  return false;
}

std::string split_data_file(const Config& c, const std::string& split) {
  if (split != "train" && split != "eval")
    fail("data", "unknown split '" + split + "' (expected train or eval)");
  if (split == "eval" && !has_eval_split(c)) return "";
  if (!c.uses_mixture()) return split == "train" ? c.train_file : c.eval_file;
  if (split == "eval" && !c.eval_file.empty()) {
    select_mixture_rows(c);  // refuses an eval_file next to a mixture test split
    return c.eval_file;
  }
  MixtureRows rows = select_mixture_rows(c);
  const std::vector<std::string>& lines = split == "train" ? rows.train : rows.eval;
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  const std::string path = path_join(path_join(c.output_dir, "data"), split + ".jsonl");
  if (!file_exists(path) || read_file(path) != text) {
    make_dirs(path_join(c.output_dir, "data"));
    write_file_atomic(path, text);
  }
  spdlog::info("{}: {} {} rows from {} -> {}",
               c.dataset_mixer.empty() ? "dataset_mixture" : "dataset_mixer", lines.size(), split,
               joined_sources(rows), path);
  return path;
}

DataOptions data_options(const Config& c, const std::string& bad_rows_report) {
  DataOptions opts;
  opts.max_length = c.max_length;
  opts.max_prompt_length = c.max_prompt_length;
  opts.max_completion_length = c.max_completion_length;
  opts.skip_bad_rows = c.skip_bad_rows;
  opts.pair_tokenization = parse_pair_tokenization(c.pair_tokenization);
  opts.bad_rows_report = bad_rows_report;
  return opts;
}

}  // namespace treg
