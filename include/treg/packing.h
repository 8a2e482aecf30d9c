// One packing primitive for every stage that runs many sequences through the model: sequences that
// share a prefix (a prompt with its two answers, the "better" and "worse" revision contexts of one
// answer) become a prefix tree whose shared part is computed once, and whole trees are packed
// side by side into rows without padding, for CausalLM::forward_packed (segments + parents).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace treg {

struct PackedSequences {
  torch::Tensor ids;       // [rows, T] int64, 0 at padding
  torch::Tensor segments;  // [rows, T] int64: a tree node's tokens share an id (1, 2, ...), 0 = padding
  torch::Tensor parents;   // [rows, S1] int64: the node each node continues (0 = a root)
  std::vector<int64_t> row;                   // per sequence: its row
  std::vector<std::vector<int64_t>> columns;  // per sequence: the column of each of its tokens
  int64_t tokens = 0;                         // non-padding tokens of the rows
  // Flat index (row * T + column) of the hidden state that predicts token t >= 1 of sequence s.
  int64_t predictor(size_t s, size_t t) const {
    return row[s] * ids.size(1) + columns[s][t - 1];
  }
};

// Packs `seqs` (each non-empty). Each group of sequence indices becomes one tree: a compressed trie
// of its sequences, so their common prefixes are laid out once (a sequence that is a prefix of
// another lies inside the other's path); sequences in different groups never share, and a
// sequence in no group is a tree of its own. Trees go first-fit, longest first, into rows of
// `row_capacity` tokens (0: the longest tree; a longer tree gets a row of its own). Nodes are laid
// out parent before children, as forward_packed requires.
PackedSequences pack_sequences(const std::vector<std::vector<int64_t>>& seqs,
                               const std::vector<std::vector<size_t>>& groups,
                               int64_t row_capacity = 0);

}  // namespace treg
