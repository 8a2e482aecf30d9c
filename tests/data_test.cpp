// Preference data: row shapes, token layout against hand-written conversation text, boundary
// merges, truncation counts, and every bad-row class (error with file:line:reason; skip mode with a
// report). The tokenizer here is a small mock (test code, not the code under test): chat markers
// are single special tokens, other text is greedy longest match over a few multi-byte pieces and
// single bytes.
#include "treg/data.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "treg/error.h"
#include "treg/io.h"

namespace treg {
namespace {

class MockTokenizer : public Tokenizer {
 public:
  explicit MockTokenizer(std::vector<std::string> merges = {}) {
    specials_ = {
        "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<bos>",
        "<start_of_turn>",   "<end_of_turn>",       "<|im_start|>",      "<|im_end|>",  "<s>",
        "</s>",              "<|user|>",            "<|assistant|>",     "<|system|>"};
    pieces_ = std::move(merges);
    special_.bos_id = 1;  // <|begin_of_text|> (ids of specials are 1 + position)
    special_.bos_token = "<|begin_of_text|>";
  }
  void set_bos(int64_t id) { special_.bos_id = id; }
  // BOS and EOS by their text (both must be among the specials).
  void set_bos_eos(const std::string& bos, const std::string& eos) {
    special_.bos_token = bos;
    special_.bos_id = piece_to_id(bos);
    special_.eos_token = eos;
    special_.eos_ids = {piece_to_id(eos)};
  }
  std::vector<int64_t> encode(const std::string& text, bool add_special) const override {
    std::vector<int64_t> out;
    if (add_special && special_.bos_id >= 0) out.push_back(special_.bos_id);
    size_t i = 0;
    while (i < text.size()) {
      int64_t best = -1;
      size_t best_len = 0;
      for (size_t s = 0; s < specials_.size(); ++s)
        if (text.compare(i, specials_[s].size(), specials_[s]) == 0 &&
            specials_[s].size() > best_len)
          best = static_cast<int64_t>(1 + s), best_len = specials_[s].size();
      for (size_t p = 0; p < pieces_.size(); ++p)
        if (text.compare(i, pieces_[p].size(), pieces_[p]) == 0 && pieces_[p].size() > best_len)
          best = static_cast<int64_t>(50 + p), best_len = pieces_[p].size();
      if (best < 0) best = 1000 + static_cast<unsigned char>(text[i]), best_len = 1;
      out.push_back(best);
      i += best_len;
    }
    return out;
  }
  std::string decode(const std::vector<int64_t>& ids, bool) const override {
    std::string s;
    for (int64_t id : ids) s += id_to_piece(id);
    return s;
  }
  std::string id_to_piece(int64_t id) const override {
    if (id >= 1000) return std::string(1, static_cast<char>(id - 1000));
    if (id >= 50) return pieces_.at(static_cast<size_t>(id - 50));
    return specials_.at(static_cast<size_t>(id - 1));
  }
  int64_t piece_to_id(const std::string& piece) const override {
    auto ids = encode(piece, false);
    return ids.size() == 1 ? ids[0] : -1;
  }
  int64_t vocab_size() const override { return 1256; }

 private:
  std::vector<std::string> specials_, pieces_;
};

std::vector<int64_t> cat(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::string write_jsonl(const std::string& name, const std::vector<std::string>& lines) {
  std::string dir = test::fresh_dir("data_" + name);
  std::string path = dir + "/" + name + ".jsonl";
  std::ofstream f(path);
  for (const auto& l : lines) f << l << "\n";
  return path;
}

using test::error_of;

// ---- shapes ----
TEST(Data, ParsesTheUltraFeedbackShapes) {
  RawPair a =
      parse_pair_line(R"({"prompt":"Q?","chosen":"good","rejected":"bad","extra":1})", "f", 1);
  ASSERT_EQ(a.prompt.size(), 1u);
  EXPECT_EQ(a.prompt[0].role, "user");
  EXPECT_EQ(a.prompt[0].content, "Q?");
  EXPECT_EQ(a.chosen, "good");
  EXPECT_EQ(a.rejected, "bad");

  RawPair h4 = parse_pair_line(
      R"({"prompt":"Q?","chosen":[{"role":"user","content":"Q?"},{"role":"assistant","content":"good"}],)"
      R"("rejected":[{"role":"user","content":"Q?"},{"role":"assistant","content":"bad"}],"score_chosen":8})",
      "f", 2);
  EXPECT_EQ(h4.prompt.size(), 1u);
  EXPECT_EQ(h4.chosen, "good");
  EXPECT_EQ(h4.rejected, "bad");

  RawPair sys = parse_pair_line(
      R"({"prompt":[{"role":"system","content":"S"},{"role":"user","content":"Q?"}],)"
      R"("chosen":[{"role":"assistant","content":"good"}],"rejected":[{"role":"assistant","content":"bad"}]})",
      "f", 3);
  ASSERT_EQ(sys.prompt.size(), 2u);
  EXPECT_EQ(sys.prompt[0].role, "system");

  RawPair multi = parse_pair_line(
      R"({"chosen":[{"role":"user","content":"A"},{"role":"assistant","content":"B"},{"role":"user","content":"C"},)"
      R"({"role":"assistant","content":"good"}],"rejected":[{"role":"user","content":"A"},)"
      R"({"role":"assistant","content":"B"},{"role":"user","content":"C"},{"role":"assistant","content":"bad"}]})",
      "f", 4);
  ASSERT_EQ(multi.prompt.size(), 3u);
  EXPECT_EQ(multi.prompt[2].content, "C");
  EXPECT_EQ(multi.chosen, "good");
  EXPECT_EQ(multi.line, 4);
}

// ---- token layout, per chat format, against hand-written conversation text ----
struct LayoutCase {
  std::string format;  // a built-in chat template
  std::string
      prompt_text;  // what the real template renders for [user "What is 2 plus 2?"] + gen prompt
  std::string eot;
  std::string after;  // what the template writes after the end-of-turn token
  int64_t bos;        // -1: none
};

TEST(Data, PromptPlusResponseIsTheWholeConversation) {
  const std::vector<LayoutCase> cases = {
      {"llama3",
       "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2 plus 2?<|eot_id|>"
       "<|start_header_id|>assistant<|end_header_id|>\n\n",
       "<|eot_id|>", "", 1},
      {"gemma", "<bos><start_of_turn>user\nWhat is 2 plus 2?<end_of_turn>\n<start_of_turn>model\n",
       "<end_of_turn>", "\n", 5},
      {"chatml",
       "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2 "
       "plus 2?<|im_end|>\n"
       "<|im_start|>assistant\n",
       "<|im_end|>", "\n", -1},
      // TRL adds no BOS: Zephyr's template writes none.
      {"zephyr", "<|user|>\nWhat is 2 plus 2?</s>\n<|assistant|>\n", "</s>", "\n", -1},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.format);
    MockTokenizer tok;
    tok.set_bos(c.bos);
    const ChatTemplate chat = builtin_chat_template(c.format);
    RawPair row = parse_pair_line(
        R"({"prompt":"What is 2 plus 2?","chosen":"Sure! 4.","rejected":"Ugh, 5."})", "f", 1);
    DataStats st;
    TokenizedPair p = tokenize_pair(row, tok, chat, &st);
    EXPECT_EQ(p.prompt_ids, tok.encode(c.prompt_text, false));
    // TRL: the completion is the rest of the rendered conversation, "\n" after the turn included.
    EXPECT_EQ(p.chosen_ids, tok.encode("Sure! 4." + c.eot + c.after, false));
    EXPECT_EQ(p.rejected_ids, tok.encode("Ugh, 5." + c.eot + c.after, false));
    EXPECT_EQ(cat(p.prompt_ids, p.chosen_ids),
              tok.encode(c.prompt_text + "Sure! 4." + c.eot + c.after, false));
    EXPECT_EQ(p.chosen_header, 0u);
    EXPECT_EQ(st.boundary_merges, 0);
    // BOS exactly once, first.
    int64_t bos_count = std::count(p.prompt_ids.begin(), p.prompt_ids.end(), c.bos);
    EXPECT_EQ(bos_count, c.bos >= 0 ? 1 : 0);
    if (c.bos >= 0) EXPECT_EQ(p.prompt_ids[0], c.bos);
    EXPECT_EQ(end_of_turn_id(tok, chat),
              p.chosen_ids[p.chosen_ids.size() - 1 - tok.encode(c.after, false).size()]);
  }
}

// SimPO's run_simpo.py (the paper's pipeline): the prompt without generation prompt (an empty system
// message first where the template mentions "system"), the answer rendered alone so that its
// assistant header is part of the response, BOS put first where the prompt lacks it, EOS appended
// where a response does not end in it.
TEST(Data, SimpoLayoutRendersTheAnswerAloneWithItsHeaderBosAndEos) {
  RawPair row = parse_pair_line(
      R"({"prompt":"What is 2 plus 2?","chosen":"Sure! 4.","rejected":"Ugh, 5."})", "f", 1);
  {
    SCOPED_TRACE("llama3: BOS and <|eot_id|> (its eos_token) are there already");
    MockTokenizer tok;
    tok.set_bos_eos("<|begin_of_text|>", "<|eot_id|>");
    const ChatTemplate chat = builtin_chat_template("llama3");
    DataStats st;
    TokenizedPair p = tokenize_pair(row, tok, chat, &st, PairTokenization::kSimpo);
    EXPECT_EQ(p.prompt_ids,
              tok.encode("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2 "
                         "plus 2?<|eot_id|>",
                         false));
    const std::string header = "<|start_header_id|>assistant<|end_header_id|>\n\n";
    EXPECT_EQ(p.chosen_ids, tok.encode(header + "Sure! 4.<|eot_id|>", false));
    EXPECT_EQ(p.rejected_ids, tok.encode(header + "Ugh, 5.<|eot_id|>", false));
    EXPECT_EQ(p.chosen_header, tok.encode(header, false).size());
    EXPECT_EQ(p.rejected_header, p.chosen_header);
    EXPECT_EQ(st.boundary_merges, 0);
  }
  {
    SCOPED_TRACE("zephyr: BOS added, an empty system turn, EOS appended after the template's \\n");
    MockTokenizer tok;
    tok.set_bos_eos("<s>", "</s>");
    const ChatTemplate chat = builtin_chat_template("zephyr");
    TokenizedPair p = tokenize_pair(row, tok, chat, nullptr, PairTokenization::kSimpo);
    EXPECT_EQ(p.prompt_ids, tok.encode("<s><|system|>\n</s>\n<|user|>\nWhat is 2 plus 2?</s>\n", false));
    EXPECT_EQ(p.chosen_ids, tok.encode("<|assistant|>\nSure! 4.</s>\n</s>", false));
    EXPECT_EQ(p.chosen_header, tok.encode("<|assistant|>\n", false).size());
    // TRL's layout of the same row has neither the BOS nor the system turn.
    TokenizedPair t = tokenize_pair(row, tok, chat, nullptr, PairTokenization::kTrl);
    EXPECT_EQ(t.prompt_ids, tok.encode("<|user|>\nWhat is 2 plus 2?</s>\n<|assistant|>\n", false));
  }
  EXPECT_THROW(parse_pair_tokenization("handbook"), Error);
}

TEST(Data, MultiTurnAndSystemPromptsLayOutLikeTheTemplate) {
  MockTokenizer tok;
  const ChatTemplate chat = builtin_chat_template("llama3");
  RawPair row = parse_pair_line(
      R"({"prompt":[{"role":"system","content":"Be nice."},{"role":"user","content":"A"},)"
      R"({"role":"assistant","content":"B"},{"role":"user","content":"C"}],"chosen":"good","rejected":"bad"})",
      "f", 1);
  TokenizedPair p = tokenize_pair(row, tok, chat, nullptr);
  const std::string prompt =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe nice.<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nA<|eot_id|><|start_header_id|>assistant<|end_"
      "header_id|>\n\nB<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nC<|eot_id|><|start_header_id|>assistant<|end_"
      "header_id|>\n\n";
  EXPECT_EQ(p.prompt_ids, tok.encode(prompt, false));
  EXPECT_EQ(p.rejected_ids, tok.encode("bad<|eot_id|>", false));
}

TEST(Data, BoundaryMergeMovesTheSplitAndIsCounted) {
  // "\n\nSure" is one token: the prompt's trailing "\n\n" merges with the chosen answer's first
  // word.
  MockTokenizer tok({"\n\nSure"});
  const ChatTemplate chat = builtin_chat_template("llama3");
  RawPair row =
      parse_pair_line(R"({"prompt":"Q","chosen":"Sure thing","rejected":"No way"})", "f", 1);
  DataStats st;
  TokenizedPair p = tokenize_pair(row, tok, chat, &st);
  EXPECT_EQ(st.boundary_merges, 1);  // chosen only
  const std::string prompt =
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|><|start_header_id|>"
      "assistant<|end_header_id|>\n\n";
  EXPECT_EQ(cat(p.prompt_ids, p.chosen_ids), tok.encode(prompt + "Sure thing<|eot_id|>", false));
  EXPECT_EQ(cat(p.prompt_ids, p.rejected_ids), tok.encode(prompt + "No way<|eot_id|>", false));
  // The shared prompt stops before the merged "\n\n", which both responses now start with.
  std::vector<int64_t> full_prompt = tok.encode(prompt, false);
  EXPECT_EQ(p.prompt_ids, std::vector<int64_t>(full_prompt.begin(), full_prompt.end() - 2));
  EXPECT_EQ(p.chosen_ids.front(), tok.piece_to_id("\n\nSure"));
  EXPECT_EQ(p.rejected_ids.front(), 1000 + '\n');
}

// ---- truncation ----
TEST(Data, TruncationKeepsPromptEndAndBosThenCutsResponses) {
  MockTokenizer tok;
  const ChatTemplate chat = builtin_chat_template("llama3");
  std::string path =
      write_jsonl("trunc", {R"({"prompt":"0123456789","chosen":"abcdefghij","rejected":"xyz"})",
                            R"({"prompt":"Q","chosen":"ab","rejected":"cd"})"});
  // Pair 1 by hand: prompt = BOS, <sh>, "user" (4 bytes), <eh>, "\n\n" (2), 10 digits, <eot>, <sh>,
  // "assistant" (9), <eh>, "\n\n" (2) = 33 tokens; chosen = 10 + eot = 11; rejected = 3 + eot = 4.
  // Pair 2: prompt 24 tokens, answers 3 each.
  const std::vector<int64_t> full_prompt = tok.encode(
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n0123456789<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\n",
      false);
  ASSERT_EQ(full_prompt.size(), 33u);
  const std::vector<int64_t> chosen = tok.encode("abcdefghij<|eot_id|>", false);
  struct Case {
    int64_t max_length, max_prompt_length;
    size_t prompt, chosen, rejected;
    int64_t chosen_cut, rejected_cut;
  };
  // 33 + 11 > L: the prompt keeps BOS + its last (M - 1) tokens; responses are cut to L - M.
  for (const Case& c : {Case{40, 30, 30, 10, 4, 1, 0}, Case{30, 26, 26, 4, 4, 1, 0},
                        Case{28, 26, 26, 2, 2, 1, 1}}) {
    SCOPED_TRACE(c.max_length);
    DataOptions o;
    o.max_length = c.max_length;
    o.max_prompt_length = c.max_prompt_length;
    PreferenceData d = load_preference_data(path, tok, chat, o);
    ASSERT_EQ(d.pairs.size(), 2u);
    const TokenizedPair& p = d.pairs[0];
    ASSERT_EQ(p.prompt_ids.size(), c.prompt);
    EXPECT_EQ(p.prompt_ids[0], 1);  // BOS kept
    EXPECT_EQ(std::vector<int64_t>(p.prompt_ids.begin() + 1, p.prompt_ids.end()),
              std::vector<int64_t>(full_prompt.end() - static_cast<std::ptrdiff_t>(c.prompt - 1),
                                   full_prompt.end()));
    EXPECT_EQ(p.chosen_ids,
              std::vector<int64_t>(chosen.begin(),
                                   chosen.begin() + static_cast<std::ptrdiff_t>(c.chosen)));
    EXPECT_EQ(p.rejected_ids.size(), c.rejected);
    EXPECT_EQ(d.stats.prompts_truncated, 1);
    EXPECT_EQ(d.stats.chosen_truncated, c.chosen_cut);
    EXPECT_EQ(d.stats.rejected_truncated, c.rejected_cut);
    EXPECT_EQ(d.stats.dropped_empty, 0);
    // Pair 2 (24 + 3 tokens) fits every case untouched.
    EXPECT_EQ(d.pairs[1].prompt_ids.size(), 24u);
    EXPECT_EQ(d.pairs[1].chosen_ids.size(), 3u);
    EXPECT_EQ(d.stats.rows, 2);
    EXPECT_EQ(d.stats.kept, 2);
  }
}

// TRL's max_completion_length: each response keeps its first N tokens (end-of-turn included in the
// count), before the max_length rule; a response cut by both is counted once.
TEST(Data, MaxCompletionLengthKeepsEachResponsesStart) {
  MockTokenizer tok;
  const ChatTemplate chat = builtin_chat_template("llama3");
  std::string path = write_jsonl(
      "trunc_completion", {R"({"prompt":"0123456789","chosen":"abcdefghij","rejected":"xyz"})"});
  const std::vector<int64_t> chosen = tok.encode("abcdefghij<|eot_id|>", false);  // 11 tokens
  const std::vector<int64_t> rejected = tok.encode("xyz<|eot_id|>", false);       // 4 tokens
  DataOptions o;
  o.max_completion_length = 5;  // max_length 2048: only the completion cut applies
  PreferenceData d = load_preference_data(path, tok, chat, o);
  ASSERT_EQ(d.pairs.size(), 1u);
  EXPECT_EQ(d.pairs[0].prompt_ids.size(), 33u);
  EXPECT_EQ(d.pairs[0].chosen_ids, std::vector<int64_t>(chosen.begin(), chosen.begin() + 5));
  EXPECT_EQ(d.pairs[0].rejected_ids, rejected);
  EXPECT_EQ(d.stats.chosen_truncated, 1);
  EXPECT_EQ(d.stats.rejected_truncated, 0);
  // 33 + 5 > 30: then the prompt keeps 26 tokens and the responses 30 - 26 = 4.
  o.max_length = 30;
  o.max_prompt_length = 26;
  d = load_preference_data(path, tok, chat, o);
  EXPECT_EQ(d.pairs[0].prompt_ids.size(), 26u);
  EXPECT_EQ(d.pairs[0].chosen_ids, std::vector<int64_t>(chosen.begin(), chosen.begin() + 4));
  EXPECT_EQ(d.pairs[0].rejected_ids, rejected);
  EXPECT_EQ(d.stats.chosen_truncated, 1);
  EXPECT_EQ(d.stats.rejected_truncated, 0);
}

// ---- bad rows ----
TEST(Data, EachBadRowClassStopsTheRunWithFileLineAndReason) {
  MockTokenizer tok;
  const ChatTemplate chat = builtin_chat_template("llama3");
  const std::string good = R"({"prompt":"Q","chosen":"a","rejected":"b"})";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"prompt":"Q","chosen":"a",)", "invalid JSON"},
      {R"({"prompt":"Q","rejected":"b"})", "missing field 'chosen'"},
      {R"({"chosen":"a","rejected":"b"})", "missing field 'prompt'"},
      {R"({"prompt":"Q","chosen":[{"role":"user","content":"a"}],"rejected":"b"})",
       "last message of 'chosen' must be the assistant's answer"},
      {R"({"prompt":[{"role":"assistant","content":"Q"}],"chosen":"a","rejected":"b"})",
       "wrong roles"},
      {R"({"prompt":[{"role":"robot","content":"Q"}],"chosen":"a","rejected":"b"})",
       "wrong role 'robot'"},
      {R"({"prompt":"Q","chosen":"   ","rejected":"b"})", "empty chosen answer"},
      {R"({"prompt":"Q","chosen":"a","rejected":""})", "empty rejected answer"},
      {R"({"prompt":"Q","chosen":"same","rejected":"same"})", "identical"},
      {R"({"prompt":"Q","chosen":5,"rejected":"b"})", "must be a string or a list of messages"},
      {R"([1,2])", "must be a JSON object"},
  };
  for (const auto& [row, reason] : bad) {
    SCOPED_TRACE(row);
    std::string path = write_jsonl("bad", {good, "", row, good});
    std::string e = error_of([&] { load_preference_data(path, tok, chat, DataOptions{}); });
    EXPECT_NE(e.find(path + ":3: "), std::string::npos)
        << e;  // the blank line 2 still counts as a line
    EXPECT_NE(e.find(reason), std::string::npos) << e;
    EXPECT_NE(e.find("skip_bad_rows"), std::string::npos) << e;
  }
}

// skip_bad_rows with the report next to the data file.
DataOptions skipping(const std::string& path) {
  DataOptions o;
  o.skip_bad_rows = true;
  o.bad_rows_report = path + ".bad_rows.jsonl";
  return o;
}

TEST(Data, SkipModeCountsAndReportsEveryBadRow) {
  MockTokenizer tok;
  const ChatTemplate chat = builtin_chat_template("llama3");
  std::string path =
      write_jsonl("skip", {R"({"prompt":"Q","chosen":"a","rejected":"b"})", "not json",
                           R"({"prompt":"Q","chosen":"x","rejected":"x"})",
                           R"({"prompt":"Q2","chosen":"c","rejected":"d"})"});
  DataOptions o = skipping(path);
  PreferenceData d = load_preference_data(path, tok, chat, o);
  EXPECT_EQ(d.stats.rows, 4);
  EXPECT_EQ(d.stats.kept, 2);
  EXPECT_EQ(d.stats.bad_rows, 2);
  EXPECT_EQ(d.pairs[1].source_line, 4);
  std::ifstream rep(o.bad_rows_report);
  std::string l1, l2, l3;
  std::getline(rep, l1);
  std::getline(rep, l2);
  EXPECT_FALSE(std::getline(rep, l3));
  auto j1 = nlohmann::json::parse(l1), j2 = nlohmann::json::parse(l2);
  EXPECT_EQ(j1["line"], 2);
  EXPECT_EQ(j1["file"], path);
  EXPECT_NE(j1["reason"].get<std::string>().find("invalid JSON"), std::string::npos);
  EXPECT_EQ(j2["line"], 3);
  EXPECT_NE(j2["reason"].get<std::string>().find("identical"), std::string::npos);
  EXPECT_EQ(count_rows(path), 4);
}

// Found by tests/fuzz/jsonl_pairs_fuzz (a number like 3e333 escaped as an uncaught nlohmann
// out_of_range; input kept as tests/fuzz/corpus/jsonl_pairs_fuzz/regress-number-overflow): it is
// invalid JSON on its line like any other.
TEST(Data, NumberOverflowIsInvalidJsonOnItsLine) {
  MockTokenizer tok;
  const ChatTemplate chat = builtin_chat_template("llama3");
  const std::string good = R"({"prompt":"Q","chosen":"a","rejected":"b"})";
  std::string path = write_jsonl(
      "overflow", {good, R"({"prompt":"Q","chosen":"a","rejected":"b","score":3e333})"});
  std::string e = error_of([&] { load_preference_data(path, tok, chat, DataOptions{}); });
  EXPECT_NE(e.find(path + ":2: invalid JSON"), std::string::npos) << e;
  PreferenceData d = load_preference_data(path, tok, chat, skipping(path));
  EXPECT_EQ(d.stats.kept, 1);
  EXPECT_EQ(d.stats.bad_rows, 1);
}

// Invalid UTF-8 in a row is a bad row like any other: named with its line without skip_bad_rows,
// and listed (the bytes replaced) in the report with it.
TEST(Data, InvalidUtf8RowIsABadRowWithItsLine) {
  MockTokenizer tok;
  const ChatTemplate chat = builtin_chat_template("llama3");
  const std::string good = R"({"prompt":"Q","chosen":"a","rejected":"b"})";
  std::string path = write_jsonl(
      "utf8",
      {good, "{\"prompt\":\"hi \xff\xfe there\",\"chosen\":\"a\",\"rejected\":\"b\"}", good});
  std::string e = error_of([&] { load_preference_data(path, tok, chat, DataOptions{}); });
  EXPECT_NE(e.find(path + ":2: invalid JSON"), std::string::npos) << e;
  EXPECT_NE(e.find("UTF-8"), std::string::npos) << e;

  DataOptions o = skipping(path);
  PreferenceData d = load_preference_data(path, tok, chat, o);
  EXPECT_EQ(d.stats.kept, 2);
  EXPECT_EQ(d.stats.bad_rows, 1);
  std::ifstream rep(o.bad_rows_report);
  std::string l1, l2;
  ASSERT_TRUE(std::getline(rep, l1));
  EXPECT_FALSE(std::getline(rep, l2));
  auto j = nlohmann::json::parse(l1);
  EXPECT_EQ(j["line"], 2);
  EXPECT_NE(j["reason"].get<std::string>().find("UTF-8"), std::string::npos) << l1;
}

TEST(Data, BundledTinyDataParsesAndHasEveryShape) {
  for (const char* split : {"train", "eval"}) {
    std::string path =
        test::source_path(std::string("configs/data/tiny_prefs.") + split + ".jsonl");
    std::ifstream f(path);
    std::string line;
    int64_t n = 0, with_system = 0, multi = 0, string_prompt = 0;
    while (std::getline(f, line)) {
      RawPair r = parse_pair_line(line, path, ++n);
      with_system += r.prompt[0].role == "system";
      multi += r.prompt.size() > 2;
      string_prompt += r.prompt.size() == 1;
    }
    EXPECT_EQ(n, std::string(split) == "train" ? 300 : 50);
    EXPECT_GT(with_system, 0);
    EXPECT_GT(multi, 0);
    EXPECT_GT(string_prompt, 0);
  }
}

}  // namespace
}  // namespace treg
