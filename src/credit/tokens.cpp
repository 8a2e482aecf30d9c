// Digits as tokens: the check that every digit is one token of the answer as tokenize_pair lays it
// out, and the per-token truth (planted error or not) of a pair.
#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "treg/credit_task.h"
#include "treg/error.h"

namespace treg {
namespace {

const char* kTokenHint =
    "the credit benchmark needs every digit, bare and after a space, as one token of the model's "
    "vocabulary (the tiny llama tokenizer of `treg make-tiny --arch llama` has them)";

std::string show_pieces(const Tokenizer& tok, const std::vector<int64_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", '" : "'") + tok.id_to_piece(ids[i]) + "'";
  return s + "]";
}

std::string show_ids(const std::vector<int64_t>& ids, size_t from) {
  std::string s = "[";
  for (size_t i = from; i < ids.size(); ++i) s += (i > from ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\n");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\n") - a + 1);
}

}  // namespace

CreditTokenMap check_credit_tokenizer(const Tokenizer& tok, const ChatTemplate& chat,
                                      PairTokenization how) {
  const std::string where = "credit benchmark tokenizer check (" + chat.origin() + ")";
  // The answer's tokens (less a simpo header), as training and scoring see them.
  auto lay_out = [&](const std::vector<int>& digits) {
    RawPair row;
    row.prompt = {{"user", credit_prompt_text({7, 1, 4, 0})}};
    row.chosen = row.rejected = credit_answer_text(digits);
    const TokenizedPair p = tokenize_pair(row, tok, chat, nullptr, how);
    return std::vector<int64_t>(p.chosen_ids.begin() + static_cast<std::ptrdiff_t>(p.chosen_header),
                                p.chosen_ids.end());
  };
  CreditTokenMap map;
  map.first_ids.assign(kCreditAlphabet, -1);
  map.later_ids.assign(kCreditAlphabet, -1);
  std::vector<int64_t> trailing_ids;
  for (int x = 0; x < kCreditAlphabet; ++x) {
    // "x" alone gives x's first-position token and the tokens after the answer; "x 0 x 1 ... x 9"
    // puts x first, and every digit after x and x after every digit.
    const std::vector<int64_t> alone = lay_out({x});
    std::vector<int> digits;
    for (int y = 0; y < kCreditAlphabet; ++y) digits.insert(digits.end(), {x, y});
    const std::vector<int64_t> ids = lay_out(digits);
    const size_t n = digits.size();
    if (alone.size() < 1 || ids.size() != n + alone.size() - 1)
      fail(where,
           "the answer '" + credit_answer_text(digits) + "' (" + std::to_string(n) +
               " digits) became " + std::to_string(ids.size()) + " tokens " +
               show_pieces(tok, ids) + " and '" + std::to_string(x) + "' alone became " +
               show_pieces(tok, alone) + ": a digit is not one token",
           kTokenHint);
    const std::vector<int64_t> trailing(alone.begin() + 1, alone.end());
    if (x == 0) trailing_ids = trailing;
    if (trailing != trailing_ids ||
        !std::equal(trailing.begin(), trailing.end(),
                    ids.end() - static_cast<std::ptrdiff_t>(trailing.size())))
      fail(where,
           "the tokens after the answer differ between answers: " + show_pieces(tok, alone) +
               " vs " + show_pieces(tok, ids),
           kTokenHint);
    auto set = [&](std::vector<int64_t>& table, int digit, int64_t id, size_t pos) {
      if (table[static_cast<size_t>(digit)] >= 0 && table[static_cast<size_t>(digit)] != id)
        fail(where,
             "digit " + std::to_string(digit) + " is token '" + tok.id_to_piece(id) +
                 "' at position " + std::to_string(pos) + " of " + show_pieces(tok, ids) +
                 " but '" + tok.id_to_piece(table[static_cast<size_t>(digit)]) + "' elsewhere",
             kTokenHint);
      table[static_cast<size_t>(digit)] = id;
    };
    if (alone[0] != ids[0])
      fail(where,
           "digit " + std::to_string(x) + " starts '" + std::to_string(x) + "' as " +
               show_pieces(tok, alone) + " but '" + credit_answer_text(digits) + "' as " +
               show_pieces(tok, ids),
           kTokenHint);
    set(map.first_ids, x, ids[0], 0);
    for (size_t i = 1; i < n; ++i) set(map.later_ids, digits[i], ids[i], i);
  }
  map.trailing = static_cast<int64_t>(trailing_ids.size());
  // Each token must stand for its digit and nothing else (not a piece that merely starts with it).
  for (const auto* table : {&map.first_ids, &map.later_ids})
    for (int d = 0; d < kCreditAlphabet; ++d) {
      const int64_t id = (*table)[static_cast<size_t>(d)];
      const std::string text = trim(tok.decode({id}, /*skip_special=*/false));
      if (text != std::string(1, static_cast<char>('0' + d)))
        fail(where,
             "digit " + std::to_string(d) + "'s token '" + tok.id_to_piece(id) + "' decodes to '" +
                 text + "'",
             kTokenHint);
      for (int e = 0; e < d; ++e)
        if ((*table)[static_cast<size_t>(e)] == id)
          fail(where,
               "digits " + std::to_string(e) + " and " + std::to_string(d) +
                   " are the same token '" + tok.id_to_piece(id) + "'",
               kTokenHint);
    }
  return map;
}

CreditTokenLabels credit_token_labels(const TokenizedPair& pair,
                                      const std::vector<int64_t>& error_items,
                                      const CreditTokenMap& map) {
  const std::string where = "credit pair at line " + std::to_string(pair.source_line);
  if (pair.chosen_cut || pair.rejected_cut)
    fail(where, "a response was truncated, so some digits have no token",
         "raise max_length (and max_completion_length, or set it to 0)");
  const std::vector<int> chosen = parse_credit_answer(pair.chosen_text, where + ": chosen");
  const std::vector<int> rejected = parse_credit_answer(pair.rejected_text, where + ": rejected");
  if (chosen.size() != rejected.size())
    fail(where, "chosen has " + std::to_string(chosen.size()) + " digits, rejected " +
                    std::to_string(rejected.size()));
  std::vector<int64_t> differ;
  for (size_t i = 0; i < chosen.size(); ++i)
    if (chosen[i] != rejected[i]) differ.push_back(static_cast<int64_t>(i));
  if (differ != error_items)
    fail(where,
         "the digits that differ between chosen and rejected are " + show_ids(differ, 0) +
             ", but error_items is " + show_ids(error_items, 0),
         "the error_items must come from the same row as the pair (read_credit_error_items of "
         "the file the pairs were loaded from)");
  CreditTokenLabels out;
  auto label = [&](const std::vector<int64_t>& ids, size_t header, const std::vector<int>& digits,
                   const char* which, std::vector<int>* labels, std::vector<uint8_t>* is_item) {
    const size_t n = digits.size();
    if (ids.size() != header + n + static_cast<size_t>(map.trailing))
      fail(where,
           std::string(which) + " has " + std::to_string(ids.size()) + " tokens " +
               show_ids(ids, 0) + ", expected " + std::to_string(header) + " header + " +
               std::to_string(n) + " digits + " + std::to_string(map.trailing) + " after",
           "build the map with check_credit_tokenizer for the same tokenizer, chat template and "
           "pair_tokenization the pairs were loaded with");
    labels->assign(ids.size(), 0);
    is_item->assign(ids.size(), 0);
    for (size_t i = 0; i < n; ++i) {
      const auto& table = i == 0 ? map.first_ids : map.later_ids;
      const int64_t want = table[static_cast<size_t>(digits[i])];
      if (ids[header + i] != want)
        fail(where,
             std::string(which) + " token " + std::to_string(header + i) + " is id " +
                 std::to_string(ids[header + i]) + ", expected id " + std::to_string(want) +
                 " (digit " + std::to_string(digits[i]) + ")",
             "build the map with check_credit_tokenizer for the same tokenizer, chat template "
             "and pair_tokenization the pairs were loaded with");
      (*is_item)[header + i] = 1;
    }
  };
  label(pair.chosen_ids, pair.chosen_header, chosen, "chosen", &out.chosen, &out.chosen_item);
  label(pair.rejected_ids, pair.rejected_header, rejected, "rejected", &out.rejected,
        &out.rejected_item);
  for (int64_t e : error_items) out.rejected[pair.rejected_header + static_cast<size_t>(e)] = 1;
  return out;
}

std::map<int64_t, std::vector<int64_t>> read_credit_error_items(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open credit pairs file", "write it with write_credit_data");
  std::map<int64_t, std::vector<int64_t>> out;
  std::string text;
  int64_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line);
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail(where, std::string("invalid JSON: ") + e.what());
    }
    if (!row.is_object() || !row.contains("error_items") || !row["error_items"].is_array())
      fail(where, "no 'error_items' list", "credit pairs files are written by write_credit_data");
    std::vector<int64_t> items;
    for (const auto& v : row["error_items"]) {
      if (!v.is_number_integer()) fail(where, "'error_items' holds a non-integer " + v.dump());
      items.push_back(v.get<int64_t>());
    }
    out[line] = std::move(items);
  }
  return out;
}

void append_item_scores(const std::vector<float>& values, const std::vector<int>& labels,
                        const std::vector<uint8_t>& is_item, std::vector<double>* scores,
                        std::vector<int>* out_labels) {
  if (values.size() != labels.size() || is_item.size() != labels.size())
    fail("append_item_scores",
         "sizes differ: " + std::to_string(values.size()) + " values, " +
             std::to_string(labels.size()) + " labels, " + std::to_string(is_item.size()) +
             " item flags",
         "pass one response's token values with its CreditTokenLabels");
  for (size_t i = 0; i < values.size(); ++i)
    if (is_item[i]) {
      scores->push_back(static_cast<double>(values[i]));
      out_labels->push_back(labels[i]);
    }
}

}  // namespace treg
