// Chat templates against Jinja2 renderings of the real templates
// (scripts/make_chat_template_goldens.py) and against literal strings written from the real
// template texts.
#include "treg/chat_template.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/tiny_tokenizer.h"

namespace {

using nlohmann::json;
using treg::ChatFormat;
using treg::ChatTemplate;
using treg::Message;

std::vector<json> goldens() {
  std::vector<json> out;
  std::istringstream lines(
      treg::read_file(treg::test::source_path("tests/data/chat_templates.jsonl")));
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

TEST(ChatTemplate, MatchesJinjaRenderingsOfRealTemplates) {
  auto all = goldens();
  ASSERT_EQ(all.size(), 70u);
  for (const auto& g : all) {
    std::vector<Message> messages;
    for (const auto& m : g["messages"]) messages.push_back({m["role"], m["content"]});
    ChatTemplate t(treg::chat_format_from_name(g["format"]));
    EXPECT_EQ(t.render(messages, g["add_generation_prompt"]), g["text"].get<std::string>())
        << g["format"] << " " << g["messages"].dump() << " gen=" << g["add_generation_prompt"];
    // The format is recognised from the real template text.
    EXPECT_EQ(treg::detect_chat_format(g["template"]), t.format()) << g["format"];
  }
}

TEST(ChatTemplate, TinyTokenizersShipTheRealTemplates) {
  std::map<std::string, std::string> by_format;
  for (const auto& g : goldens()) by_format[g["format"]] = g["template"];
  EXPECT_EQ(treg::real_chat_template("llama"), by_format["llama3"]);
  EXPECT_EQ(treg::real_chat_template("gemma2"), by_format["gemma"]);
  EXPECT_EQ(treg::real_chat_template("qwen2"), by_format["chatml"]);
}

const std::vector<Message> kSysUser = {{"system", "Be brief."}, {"user", "Hi"}};
const std::vector<Message> kTurns = {{"user", "Hi"}, {"assistant", "Hello!"}};

TEST(ChatTemplate, Llama3Literal) {
  ChatTemplate t(ChatFormat::Llama3);
  EXPECT_EQ(t.render(kSysUser, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|"
            "end_header_id|>\n\n");
  EXPECT_EQ(t.render({{"user", " Hi \n"}}, false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
  EXPECT_EQ(t.end_of_turn(), "<|eot_id|>");
}

TEST(ChatTemplate, GemmaLiteralFoldsSystem) {
  ChatTemplate t(ChatFormat::Gemma);
  EXPECT_EQ(t.render(kSysUser, true),
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(
      t.render(kTurns, false),
      "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n");
  EXPECT_EQ(t.end_of_turn(), "<end_of_turn>");
  EXPECT_THROW(t.render({{"assistant", "x"}}, false), treg::Error);
}

TEST(ChatTemplate, ChatmlLiteralAddsQwenDefaultSystem) {
  ChatTemplate t(ChatFormat::ChatML);
  EXPECT_EQ(
      t.render({{"user", "Hi"}}, true),
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
      "<|im_start|>assistant\n");
  EXPECT_EQ(t.render(kSysUser, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(t.end_of_turn(), "<|im_end|>");
}

TEST(ChatTemplate, MistralLiteral) {
  ChatTemplate t(ChatFormat::Mistral);
  EXPECT_EQ(t.render(kTurns, true), "<s>[INST] Hi [/INST]Hello!</s>");
  EXPECT_EQ(t.render(kSysUser, false), "<s>[INST] Be brief.\n\nHi [/INST]");
  EXPECT_EQ(t.end_of_turn(), "</s>");
}

TEST(ChatTemplate, ZephyrLiteral) {
  ChatTemplate t(ChatFormat::Zephyr);
  EXPECT_EQ(t.render(kSysUser, true),
            "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n");
  EXPECT_EQ(t.render(kTurns, false), "<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n");
  EXPECT_EQ(t.end_of_turn(), "</s>");
}

TEST(ChatTemplate, DetectsRealTokenizerConfigs) {
  auto detect = [](const std::string& name) {
    auto config = json::parse(treg::read_file(
        treg::test::source_path("tests/data/tokenizers/" + name + "/tokenizer_config.json")));
    return treg::detect_chat_format(config["chat_template"].get<std::string>());
  };
  EXPECT_EQ(detect("llama3"), ChatFormat::Llama3);
  EXPECT_EQ(detect("qwen3"), ChatFormat::ChatML);
  EXPECT_EQ(detect("gemma3"), ChatFormat::Gemma);
}

TEST(ChatTemplate, UnknownTemplateAndNameAreErrorsWithHints) {
  try {
    treg::detect_chat_format("{{ messages }}");
    FAIL();
  } catch (const treg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("chat_template:"), std::string::npos) << e.what();
  }
  try {
    treg::chat_format_from_name("vicuna");
    FAIL();
  } catch (const treg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("llama3, gemma, chatml, mistral, zephyr"),
              std::string::npos)
        << e.what();
  }
  for (auto f : {ChatFormat::Llama3, ChatFormat::Gemma, ChatFormat::ChatML, ChatFormat::Mistral,
                 ChatFormat::Zephyr})
    EXPECT_EQ(treg::chat_format_from_name(treg::chat_format_name(f)), f);
}

}  // namespace
