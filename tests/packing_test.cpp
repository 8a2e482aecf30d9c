// pack_sequences: the trie of a group of sequences, rows filled first-fit, and where every token of
// every sequence ends up; errors name the sequence.
#include <gtest/gtest.h>

#include "test_util.h"
#include "treg/packing.h"

namespace treg {
namespace {

// A = 1 2 3 4, B = 1 2 5, C = 1 2 3 (a prefix of A) share one tree: [1 2] -> ([3] -> [4]), [5]
// (children in token order); D = 9 8 is a group of its own and E = 7 in none. Rows are as long as
// the largest tree (5 tokens): the tree fills row 0, D and E go side by side in row 1.
TEST(PackSequences, TrieNodesRowsAndColumns) {
  const std::vector<std::vector<int64_t>> seqs = {{1, 2, 3, 4}, {1, 2, 5}, {1, 2, 3}, {9, 8}, {7}};
  PackedSequences p = pack_sequences(seqs, {{0, 1, 2}, {3}});
  ASSERT_EQ(p.ids.sizes(), (std::vector<int64_t>{2, 5}));
  EXPECT_TRUE(torch::equal(p.ids, torch::tensor({1, 2, 3, 4, 5, 9, 8, 7, 0, 0}, torch::kInt64).view({2, 5})));
  EXPECT_TRUE(torch::equal(p.segments, torch::tensor({1, 1, 2, 3, 4, 1, 1, 2, 0, 0}, torch::kInt64).view({2, 5})));
  EXPECT_TRUE(torch::equal(p.parents, torch::tensor({0, 0, 1, 2, 1, 0, 0, 0, 0, 0}, torch::kInt64).view({2, 5})));
  EXPECT_EQ(p.tokens, 8);
  EXPECT_EQ(p.row, (std::vector<int64_t>{0, 0, 0, 1, 1}));
  EXPECT_EQ(p.columns[0], (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(p.columns[1], (std::vector<int64_t>{0, 1, 4}));
  EXPECT_EQ(p.columns[2], (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(p.columns[3], (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(p.columns[4], (std::vector<int64_t>{2}));
  // Token 2 of B (id 5) is predicted by its token 1 (id 2) at column 1 of row 0; D's token 1 by
  // row 1, column 0.
  EXPECT_EQ(p.predictor(1, 2), 1);
  EXPECT_EQ(p.predictor(3, 1), 5);
  // Every token sits where the sequence says.
  for (size_t s = 0; s < seqs.size(); ++s)
    for (size_t t = 0; t < seqs[s].size(); ++t)
      EXPECT_EQ(p.ids[p.row[s]][p.columns[s][t]].item<int64_t>(), seqs[s][t]) << s << " " << t;
  // A row capacity puts D, E beside the tree when it fits: 8 tokens in one row.
  PackedSequences wide = pack_sequences(seqs, {{0, 1, 2}, {3}}, 8);
  EXPECT_EQ(wide.ids.sizes(), (std::vector<int64_t>{1, 8}));
  EXPECT_TRUE(torch::equal(wide.parents[0], torch::tensor({0, 0, 1, 2, 1, 0, 0}, torch::kInt64)));
  // Without groups nothing is shared: 13 tokens.
  EXPECT_EQ(pack_sequences(seqs, {}).tokens, 13);
}

TEST(PackSequences, IdenticalSequencesShareEveryToken) {
  PackedSequences p = pack_sequences({{4, 5, 6}, {4, 5, 6}}, {{0, 1}});
  EXPECT_EQ(p.tokens, 3);
  EXPECT_EQ(p.columns[0], p.columns[1]);
}

TEST(PackSequences, ErrorsNameTheSequence) {
  std::string m = test::error_of([] { pack_sequences({{1}, {2}}, {{0, 1}, {1}}); });
  EXPECT_NE(m.find("sequence 1 is in two groups"), std::string::npos) << m;
  m = test::error_of([] { pack_sequences({{1}, {}}, {}); });
  EXPECT_NE(m.find("sequence 1 is empty"), std::string::npos) << m;
  m = test::error_of([] { pack_sequences({{1}}, {{3}}); });
  EXPECT_NE(m.find("sequence 3 does not exist"), std::string::npos) << m;
}

}  // namespace
}  // namespace treg
