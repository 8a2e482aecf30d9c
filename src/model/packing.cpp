// pack_sequences: per group a compressed trie of its sequences (nodes = maximal runs of tokens
// shared by the same set of sequences), trees first-fit into rows.
#include "treg/packing.h"

#include <algorithm>
#include <numeric>

#include "treg/error.h"

namespace treg {
namespace {

struct Node {
  int64_t parent = -1;  // index into the tree's nodes, -1 = root
  int64_t seq = 0;      // a sequence whose tokens [begin, end) the node holds
  int64_t begin = 0, end = 0;
};

struct TreeLayout {
  std::vector<Node> nodes;  // parent before children (depth-first)
  // Per member sequence: (sequence, node holding each of its tokens, offset inside the node).
  std::vector<std::pair<size_t, std::vector<std::pair<int64_t, int64_t>>>> members;
  int64_t size = 0;  // tokens
};

// Nodes for the sequences `members` (all equal on [0, depth)) below node `parent`.
void build(const std::vector<std::vector<int64_t>>& seqs, std::vector<size_t> members, int64_t depth,
           int64_t parent, TreeLayout& tree,
           std::vector<std::vector<std::pair<int64_t, int64_t>>>& where) {
  // Sequences ending at `depth` are complete; the rest split by their token at `depth`.
  std::vector<size_t> live;
  for (size_t s : members)
    if (static_cast<int64_t>(seqs[s].size()) > depth) live.push_back(s);
  std::stable_sort(live.begin(), live.end(),
                   [&](size_t a, size_t b) { return seqs[a][depth] < seqs[b][depth]; });
  for (size_t i = 0; i < live.size();) {
    size_t j = i;
    while (j < live.size() && seqs[live[j]][depth] == seqs[live[i]][depth]) ++j;
    std::vector<size_t> group(live.begin() + static_cast<std::ptrdiff_t>(i),
                              live.begin() + static_cast<std::ptrdiff_t>(j));
    // The node runs while every sequence of the group continues with the same token.
    auto all_continue = [&](int64_t t) {
      for (size_t s : group)
        if (static_cast<int64_t>(seqs[s].size()) <= t || seqs[s][t] != seqs[group[0]][t])
          return false;
      return true;
    };
    int64_t end = depth + 1;
    while (all_continue(end)) ++end;
    const int64_t id = static_cast<int64_t>(tree.nodes.size());
    tree.nodes.push_back({parent, static_cast<int64_t>(group[0]), depth, end});
    tree.size += end - depth;
    for (size_t s : group)  // every one of them is at least `end` long
      for (int64_t t = depth; t < end; ++t) where[s][static_cast<size_t>(t)] = {id, t - depth};
    build(seqs, group, end, id, tree, where);
    i = j;
  }
}

}  // namespace

PackedSequences pack_sequences(const std::vector<std::vector<int64_t>>& seqs,
                               const std::vector<std::vector<size_t>>& groups,
                               int64_t row_capacity) {
  const size_t N = seqs.size();
  std::vector<std::vector<size_t>> all = groups;
  {
    std::vector<bool> grouped(N, false);
    for (const auto& g : groups)
      for (size_t s : g) {
        if (s >= N || grouped[s])
          fail("pack_sequences", "sequence " + std::to_string(s) +
                                     (s >= N ? " does not exist" : " is in two groups"));
        grouped[s] = true;
      }
    for (size_t s = 0; s < N; ++s)
      if (!grouped[s]) all.push_back({s});
  }
  std::vector<std::vector<std::pair<int64_t, int64_t>>> where(N);
  for (size_t s = 0; s < N; ++s) {
    if (seqs[s].empty()) fail("pack_sequences", "sequence " + std::to_string(s) + " is empty");
    where[s].resize(seqs[s].size());
  }
  std::vector<TreeLayout> trees(all.size());
  for (size_t g = 0; g < all.size(); ++g) {
    build(seqs, all[g], 0, -1, trees[g], where);
    for (size_t s : all[g]) trees[g].members.push_back({s, where[s]});
  }
  // First-fit decreasing.
  std::vector<size_t> order(trees.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return trees[a].size > trees[b].size; });
  const int64_t capacity =
      row_capacity > 0 ? row_capacity : (trees.empty() ? 0 : trees[order.front()].size);
  std::vector<int64_t> fill, nodes_in_row, tree_row(trees.size()), tree_col(trees.size()),
      tree_first_node(trees.size());
  int64_t T = 0;
  for (size_t g : order) {
    size_t r = 0;
    while (r < fill.size() && fill[r] + trees[g].size > capacity) ++r;
    if (r == fill.size()) fill.push_back(0), nodes_in_row.push_back(0);
    tree_row[g] = static_cast<int64_t>(r);
    tree_col[g] = fill[r];
    tree_first_node[g] = nodes_in_row[r];
    fill[r] += trees[g].size;
    nodes_in_row[r] += static_cast<int64_t>(trees[g].nodes.size());
    T = std::max(T, fill[r]);
  }
  const int64_t rows = static_cast<int64_t>(fill.size());
  const int64_t S1 = (nodes_in_row.empty() ? 0 : *std::max_element(nodes_in_row.begin(), nodes_in_row.end())) + 1;
  PackedSequences p;
  p.ids = torch::zeros({rows, T}, torch::kInt64);
  p.segments = torch::zeros({rows, T}, torch::kInt64);
  p.parents = torch::zeros({rows, S1}, torch::kInt64);
  p.row.resize(N);
  p.columns.resize(N);
  auto ids = p.ids.accessor<int64_t, 2>();
  auto seg = p.segments.accessor<int64_t, 2>();
  auto par = p.parents.accessor<int64_t, 2>();
  for (size_t g = 0; g < trees.size(); ++g) {
    const TreeLayout& tree = trees[g];
    const int64_t r = tree_row[g];
    std::vector<int64_t> node_col(tree.nodes.size());
    int64_t col = tree_col[g];
    for (size_t k = 0; k < tree.nodes.size(); ++k) {
      const Node& n = tree.nodes[k];
      const int64_t id = tree_first_node[g] + static_cast<int64_t>(k) + 1;  // segment id
      node_col[k] = col;
      par[r][id] = n.parent < 0 ? 0 : tree_first_node[g] + n.parent + 1;
      for (int64_t t = n.begin; t < n.end; ++t, ++col) {
        ids[r][col] = seqs[static_cast<size_t>(n.seq)][static_cast<size_t>(t)];
        seg[r][col] = id;
      }
    }
    for (const auto& [s, at] : tree.members) {
      p.row[s] = r;
      for (const auto& [node, offset] : at) p.columns[s].push_back(node_col[static_cast<size_t>(node)] + offset);
    }
    p.tokens += tree.size;
  }
  return p;
}

}  // namespace treg
