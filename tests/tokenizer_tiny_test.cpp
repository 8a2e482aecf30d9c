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
