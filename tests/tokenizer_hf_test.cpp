// tokenizer.json tokenizers against golden encodings of the real Llama-3, Qwen3, Gemma-3 and
// Llama-2 tokenizers, made by the independent reference encoder (transformers.js) with
// scripts/make_tokenizer_goldens.mjs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "test_util.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/tokenizer.h"

namespace {

using nlohmann::json;

// The real tokenizer files, unpacked for this test alone.
std::string unpack(const std::string& name) { return treg::test::unpack_tokenizer_fixture(name); }

std::string show(const treg::Tokenizer& tok, const std::vector<int64_t>& ids) {
  std::ostringstream s;
  for (int64_t id : ids) s << id << ":" << json(tok.id_to_piece(id)).dump() << " ";
  return s.str();
}

struct Golden {
  std::string text;
  std::vector<int64_t> ids;
};

std::vector<Golden> read_goldens(const std::string& name) {
  std::vector<Golden> out;
  std::istringstream lines(
      treg::read_file(treg::test::source_path("tests/data/tokenizers/" + name + "/golden.jsonl")));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    json j = json::parse(line);
    out.push_back({j["text"].get<std::string>(), j["ids"].get<std::vector<int64_t>>()});
  }
  return out;
}

// Every golden string encodes to exactly the reference ids.
void expect_goldens(const std::string& name, bool round_trip) {
  auto tok = treg::load_tokenizer(unpack(name));
  auto goldens = read_goldens(name);
  ASSERT_GT(goldens.size(), 300u);
  int mismatches = 0;
  for (const auto& g : goldens) {
    auto ids = tok->encode(g.text, /*add_special=*/false);
    if (ids != g.ids && ++mismatches <= 10)
      ADD_FAILURE() << name << " text " << json(g.text).dump() << "\n  expected "
                    << show(*tok, g.ids) << "\n  actual   " << show(*tok, ids);
    if (round_trip)
      EXPECT_EQ(tok->decode(g.ids), g.text) << name << " decode of " << json(g.text).dump();
  }
  EXPECT_EQ(mismatches, 0) << name << ": " << mismatches << " of " << goldens.size()
                           << " strings differ";
}

TEST(TokHf, Llama3MatchesReference) { expect_goldens("llama3", /*round_trip=*/true); }
TEST(TokHf, Qwen3MatchesReference) { expect_goldens("qwen3", /*round_trip=*/false); }
TEST(TokHf, Gemma3MatchesReference) { expect_goldens("gemma3", /*round_trip=*/false); }
TEST(TokHf, Llama2MatchesReference) { expect_goldens("llama2", /*round_trip=*/false); }

TEST(TokHf, Qwen3RoundTripsNfcText) {
  auto tok = treg::load_tokenizer(unpack("qwen3"));
  for (const auto& g : read_goldens("qwen3")) {
    // Text that NFC changes cannot round-trip; the golden strings that are not NFC use these.
    bool not_nfc = false;
    for (const char* cp : {"\xCC\x81", "\xCC\x8A", "\xE2\x84\xA6", "\xE1\x84\x80"})
      not_nfc |= g.text.find(cp) != std::string::npos;
    if (!not_nfc) EXPECT_EQ(tok->decode(tok->encode(g.text)), g.text);
  }
}

// The word cache is shared: threads encoding at once must get the reference ids too.
TEST(TokHf, ConcurrentEncodeMatchesReference) {
  auto tok = treg::load_tokenizer(unpack("llama3"));
  auto goldens = read_goldens("llama3");
  std::vector<int> wrong(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t]() {
      for (int rep = 0; rep < 5; ++rep)
        for (size_t i = t; i < goldens.size() * 5; i += 3) {
          const auto& g = goldens[i % goldens.size()];
          if (tok->encode(g.text) != g.ids) ++wrong[t];
        }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(wrong[t], 0) << "thread " << t;
}

TEST(TokHf, Llama3SpecialTokens) {
  auto tok = treg::load_tokenizer(unpack("llama3"));
  // Ids from Meta-Llama-3's tokenizer.json added_tokens.
  EXPECT_EQ(tok->piece_to_id("<|begin_of_text|>"), 128000);
  EXPECT_EQ(tok->piece_to_id("<|eot_id|>"), 128009);
  EXPECT_EQ(tok->vocab_size(), 128256);
  EXPECT_EQ(tok->special().bos_id, 128000);
  EXPECT_EQ(tok->special().eos_ids, std::vector<int64_t>{128001});
  // The real post-processor here is ByteLevel only (no TemplateProcessing), so nothing is added.
  EXPECT_EQ(tok->encode("Hi", true), tok->encode("Hi", false));
  auto ids = tok->encode("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
  EXPECT_EQ(ids.front(), 128006);
  EXPECT_EQ(ids.back(), 128009);
  EXPECT_EQ(tok->decode(ids, /*skip_special=*/true), "user\n\nHi");
  EXPECT_EQ(tok->decode(ids), "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

TEST(TokHf, DeepSeekV3SpecialTokensFollowThePostProcessor) {
  // tokenizer_config.json says add_bos_token: true, but tokenizer.json's post-processor is
  // ByteLevel only: the tokenizers library (and transformers 5) add nothing, and so does treg.
  auto tok = treg::load_tokenizer(unpack("deepseek_v3"));
  EXPECT_EQ(tok->special().bos_id, 0);  // <｜begin▁of▁sentence｜>
  EXPECT_FALSE(tok->special().add_bos);
  EXPECT_EQ(tok->encode("Hi there", true), tok->encode("Hi there", false));
}

TEST(TokHf, Gemma3AddsBosFromConfig) {
  auto tok = treg::load_tokenizer(unpack("gemma3"));
  EXPECT_TRUE(tok->special().add_bos);
  EXPECT_EQ(tok->special().bos_id, 2);  // <bos> in Gemma-3's vocabulary
  auto ids = tok->encode("Hello", true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 2);
  EXPECT_EQ(tok->decode(tok->encode("Hello world, how are you?")), "Hello world, how are you?");
}

TEST(TokHf, Llama2DecodesSentencepieceStyle) {
  auto tok = treg::load_tokenizer(unpack("llama2"));
  EXPECT_EQ(tok->encode("Hi", true).front(), 1);  // <s>
  EXPECT_EQ(tok->decode(tok->encode(" two  spaces and 東京 and 😀")), " two  spaces and 東京 and 😀");
}

TEST(TokHf, UnsupportedComponentNamesTypeAndFile) {
  std::string dir = treg::test::fresh_dir("tok_hf_bad");
  json j = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", json::array()}}},
            {"pre_tokenizer", {{"type", "BertPreTokenizerX"}}},
            {"added_tokens", json::array()}};
  treg::write_file_atomic(dir + "/tokenizer.json", j.dump());
  try {
    treg::load_tokenizer(dir);
    FAIL() << "expected an error";
  } catch (const treg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("BertPreTokenizerX"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
}

TEST(TokHf, MissingTokenizerIsAnError) {
  std::string dir = treg::test::fresh_dir("tok_hf_missing");
  EXPECT_THROW(treg::load_tokenizer(dir), treg::Error);
  EXPECT_THROW(treg::load_tokenizer(dir + "/tokenizer.json"), treg::Error);
}

}  // namespace
