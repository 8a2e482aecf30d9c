// The tiny tokenizers: trained deterministically, special tokens atomic, files like a real model's.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "treg/io.h"
#include "treg/tiny_tokenizer.h"

namespace {

using treg::path_join;

TEST(TokTiny, WritesFilesAndSpecialTokensAreSinglePieces) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"llama",
       {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
        "<|eot_id|>"}},
      {"gemma2", {"<bos>", "<eos>", "<pad>", "<start_of_turn>", "<end_of_turn>"}},
      {"qwen2", {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}}};
  for (const auto& [arch, specials] : cases) {
    std::string dir = treg::test::fresh_dir("tok_tiny_" + arch);
    int64_t v = treg::write_tiny_tokenizer(arch, dir);
    EXPECT_GE(v, 900) << arch;
    EXPECT_LE(v, 1100) << arch;
    sentencepiece::SentencePieceProcessor sp;
    ASSERT_TRUE(sp.Load(path_join(dir, "tokenizer.model")).ok()) << arch;
    EXPECT_EQ(sp.GetPieceSize(), v) << arch;
    for (const auto& s : specials) EXPECT_NE(sp.PieceToId(s), sp.unk_id()) << arch << " " << s;
    EXPECT_TRUE(treg::file_exists(path_join(dir, "tokenizer.json")) == (arch != "gemma2")) << arch;
    auto config = nlohmann::json::parse(treg::read_file(path_join(dir, "tokenizer_config.json")));
    EXPECT_EQ(config["chat_template"].get<std::string>(), treg::real_chat_template(arch));
    EXPECT_TRUE(treg::file_exists(path_join(dir, "special_tokens_map.json")));
  }
}

TEST(TokTiny, TrainingIsDeterministic) {
  std::string a = treg::test::fresh_dir("tok_tiny_det_a"),
              b = treg::test::fresh_dir("tok_tiny_det_b");
  treg::write_tiny_tokenizer("qwen2", a);
  treg::write_tiny_tokenizer("qwen2", b);
  EXPECT_EQ(treg::sha256_file(path_join(a, "tokenizer.model")),
            treg::sha256_file(path_join(b, "tokenizer.model")));
  EXPECT_EQ(treg::sha256_file(path_join(a, "tokenizer.json")),
            treg::sha256_file(path_join(b, "tokenizer.json")));
}

TEST(TokTiny, UnknownArchIsAnError) {
  EXPECT_THROW(treg::write_tiny_tokenizer("gpt5", treg::test::fresh_dir("tok_tiny_bad")),
               std::exception);
}

}  // namespace

// Loading the tiny tokenizers: the tokenizer.json written for llama/qwen2 must encode exactly as
// the sentencepiece library encodes the .model, on the whole training corpus and on text it never
// saw.
#include <sstream>

#include "treg/tokenizer.h"

namespace {

std::vector<std::string> probe_texts() {
  std::vector<std::string> out;
  std::istringstream lines(treg::read_file(treg::tiny_corpus_path()));
  for (std::string line; std::getline(lines, line);) out.push_back(line);
  for (const char* s :
       {"", " ", "  two  spaces ", "tabs\tand\nnewlines\n", "unseen: Ωmega ☃ 𝔘 ğ 한",
        "x<|im_start|>y", "<|eot_id|> <start_of_turn>model\n", "12345678901234567890",
        "😀👨‍👩‍👧"})
    out.push_back(s);
  return out;
}

TEST(TokTiny, JsonAndModelEncodeLikeSentencepiece) {
  for (const std::string arch : {"llama", "qwen2"}) {
    std::string dir = treg::test::fresh_dir("tok_tiny_eq_" + arch);
    treg::write_tiny_tokenizer(arch, dir);
    auto from_json = treg::load_tokenizer(dir);  // tokenizer.json wins in a directory
    auto from_model = treg::load_tokenizer(path_join(dir, "tokenizer.model"));
    sentencepiece::SentencePieceProcessor sp;
    ASSERT_TRUE(sp.Load(path_join(dir, "tokenizer.model")).ok());
    EXPECT_EQ(from_json->vocab_size(), sp.GetPieceSize());
    EXPECT_EQ(from_model->vocab_size(), sp.GetPieceSize());
    int differ = 0;
    for (const auto& text : probe_texts()) {
      auto ids = from_model->encode(text);
      if (text.find('<') == std::string::npos) {  // no special tokens: the library's own encoding
        std::vector<int> ref;
        ASSERT_TRUE(sp.Encode(text, &ref).ok());
        EXPECT_EQ(ids, std::vector<int64_t>(ref.begin(), ref.end())) << arch << " " << text;
      }
      if (from_json->encode(text) != ids && ++differ <= 5)
        ADD_FAILURE() << arch << " json differs on: " << text;
      // With a dummy prefix, text after an added token gets its own leading "▁" (transformers'
      // legacy Llama behaviour), so only text without added tokens round-trips there.
      if (arch == "qwen2" || text.find('<') == std::string::npos) {
        EXPECT_EQ(from_model->decode(ids), text) << arch;
        EXPECT_EQ(from_json->decode(ids), text) << arch;
      }
    }
    EXPECT_EQ(differ, 0) << arch;
  }
}

TEST(TokTiny, SpecialTokensAreSingleIdsAfterLoading) {
  struct Case {
    std::string arch;
    std::string bos, eos, turn_end;
    bool add_bos;
  };
  for (const Case& c : {Case{"llama", "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>", true},
                        Case{"gemma2", "<bos>", "<eos>", "<end_of_turn>", true},
                        Case{"qwen2", "", "<|im_end|>", "<|im_end|>", false}}) {
    std::string dir = treg::test::fresh_dir("tok_tiny_sp_" + c.arch);
    treg::write_tiny_tokenizer(c.arch, dir);
    auto tok = treg::load_tokenizer(dir);
    const auto& s = tok->special();
    EXPECT_EQ(s.add_bos, c.add_bos) << c.arch;
    EXPECT_EQ(s.bos_token, c.bos) << c.arch;
    if (!c.bos.empty()) EXPECT_EQ(s.bos_id, tok->piece_to_id(c.bos)) << c.arch;
    ASSERT_FALSE(s.eos_ids.empty()) << c.arch;
    EXPECT_EQ(s.eos_ids[0], tok->piece_to_id(c.eos)) << c.arch;
    auto ids = tok->encode("Hi" + c.turn_end + "there");
    EXPECT_EQ(std::count(ids.begin(), ids.end(), tok->piece_to_id(c.turn_end)), 1) << c.arch;
    auto with = tok->encode("Hi", true), without = tok->encode("Hi", false);
    EXPECT_EQ(with.size(), without.size() + (c.add_bos ? 1 : 0)) << c.arch;
    if (c.add_bos) EXPECT_EQ(with.front(), s.bos_id) << c.arch;
    EXPECT_EQ(tok->fingerprint().size(), 64u);
    EXPECT_FALSE(tok->chat_template_source().empty());
  }
}

TEST(TokTiny, GenerationConfigEosIdsJoinEosIds) {
  std::string dir = treg::test::fresh_dir("tok_tiny_gen");
  treg::write_tiny_tokenizer("llama", dir);
  auto before = treg::load_tokenizer(dir);
  int64_t eot = before->piece_to_id("<|eot_id|>"),
          eot_text = before->piece_to_id("<|end_of_text|>");
  treg::write_file_atomic(
      path_join(dir, "generation_config.json"),
      "{\"eos_token_id\": [" + std::to_string(eot_text) + ", " + std::to_string(eot) + "]}");
  auto tok = treg::load_tokenizer(dir);
  EXPECT_EQ(tok->special().eos_ids, (std::vector<int64_t>{eot, eot_text}));
  EXPECT_NE(tok->fingerprint(), before->fingerprint());
}

TEST(TokTiny, TokenizeCommandWritesIdsAndNamesBadLines) {
  std::string dir = treg::test::fresh_dir("tok_tiny_cli");
  treg::write_tiny_tokenizer("qwen2", dir);
  auto tok = treg::load_tokenizer(dir);
  treg::write_file_atomic(path_join(dir, "in.jsonl"),
                          "{\"text\": \"Hello world\"}\n{\"text\": \"a<|im_end|>\"}\n");
  std::string out;
  ASSERT_EQ(treg::test::run_command(treg::test::treg_binary() + " tokenize --tokenizer " + dir +
                                        " < " + dir + "/in.jsonl 2>/dev/null",
                                    &out),
            0)
      << out;
  std::istringstream lines(out);
  std::string l1, l2;
  std::getline(lines, l1);
  std::getline(lines, l2);
  EXPECT_EQ(nlohmann::json::parse(l1)["ids"].get<std::vector<int64_t>>(),
            tok->encode("Hello world"));
  auto j2 = nlohmann::json::parse(l2);
  EXPECT_EQ(j2["pieces"].back().get<std::string>(), "<|im_end|>");

  treg::write_file_atomic(path_join(dir, "chat.jsonl"),
                          "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], "
                          "\"add_generation_prompt\": true}\n");
  ASSERT_EQ(treg::test::run_command(treg::test::treg_binary() + " tokenize --chat --tokenizer " +
                                        dir + " < " + dir + "/chat.jsonl 2>/dev/null",
                                    &out),
            0)
      << out;
  std::string rendered =
      "<|im_start|>system\nYou are a helpful "
      "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(nlohmann::json::parse(out)["ids"].get<std::vector<int64_t>>(), tok->encode(rendered));

  // --chat-template overrides the format detected from tokenizer_config.json.
  ASSERT_EQ(treg::test::run_command(treg::test::treg_binary() +
                                        " tokenize --chat --chat-template zephyr --tokenizer " +
                                        dir + " < " + dir + "/chat.jsonl 2>/dev/null",
                                    &out),
            0)
      << out;
  EXPECT_EQ(nlohmann::json::parse(out)["ids"].get<std::vector<int64_t>>(),
            tok->encode("<|user|>\nHi</s>\n<|assistant|>\n"));

  treg::write_file_atomic(path_join(dir, "bad.jsonl"), "{\"text\": \"ok\"}\n{\"text\": oops}\n");
  EXPECT_NE(treg::test::run_command(treg::test::treg_binary() + " tokenize --tokenizer " + dir +
                                        " < " + dir + "/bad.jsonl",
                                    &out),
            0);
  EXPECT_NE(out.find("line 2"), std::string::npos) << out;
}

}  // namespace
