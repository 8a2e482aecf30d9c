// Chat templates through minja against Jinja2 renderings made the way transformers renders them:
// tests/data/chat_templates.jsonl (the five built-in formats' real templates,
// scripts/make_chat_template_goldens.py) and tests/data/tokenizer_chat_templates.jsonl (the
// templates of the real tokenizer fixtures, scripts/make_tokenizer_chat_goldens.py); plus where a
// template comes from, its errors, and the end-of-turn marker.
#include "treg/chat_template.h"

#include <gtest/gtest.h>

#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"
#include "treg/data.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/tiny_tokenizer.h"

namespace {

using nlohmann::json;
using treg::ChatTemplate;
using treg::Message;
using treg::test::error_of;

std::vector<json> read_jsonl(const std::string& rel) {
  std::vector<json> out;
  std::istringstream lines(treg::read_file(treg::test::source_path(rel)));
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

std::vector<Message> messages_of(const json& v) {
  std::vector<Message> out;
  for (const auto& m : v) out.push_back({m["role"], m["content"]});
  return out;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// ---- the built-in formats ----

// The special tokens scripts/make_chat_template_goldens.py renders each real template with.
treg::SpecialTokens golden_tokens(const std::string& format) {
  static const std::map<std::string, std::pair<std::string, std::string>> bos_eos = {
      {"llama3", {"<|begin_of_text|>", "<|eot_id|>"}},
      {"gemma", {"<bos>", "<eos>"}},
      {"chatml", {"", "<|im_end|>"}},
      {"mistral", {"<s>", "</s>"}},
      {"zephyr", {"<s>", "</s>"}}};
  treg::SpecialTokens t;
  t.bos_token = bos_eos.at(format).first;
  t.eos_token = bos_eos.at(format).second;
  return t;
}

// The script folds a system message into the first user turn for the formats whose real template
// rejects it.
std::vector<Message> folded(const std::string& format, std::vector<Message> m) {
  if ((format != "gemma" && format != "mistral") || m.empty() || m[0].role != "system") return m;
  m[1].content = m[0].content + "\n\n" + m[1].content;
  return {m.begin() + 1, m.end()};
}

TEST(ChatTemplate, RealTemplatesAndBuiltinsMatchJinja2) {
  auto all = read_jsonl("tests/data/chat_templates.jsonl");
  ASSERT_EQ(all.size(), 70u);
  for (const auto& g : all) {
    const std::string format = g["format"];
    const std::vector<Message> messages = messages_of(g["messages"]);
    const bool gen = g["add_generation_prompt"];
    SCOPED_TRACE(format + " " + g["messages"].dump() + " gen=" + (gen ? "true" : "false"));
    // The real template text itself, through minja.
    ChatTemplate real(g["template"], "golden " + format, golden_tokens(format));
    EXPECT_EQ(real.render(folded(format, messages), gen), g["text"].get<std::string>());
    // `chat_template: NAME`: the same text from the unfolded conversation.
    EXPECT_EQ(treg::builtin_chat_template(format).render(messages, gen),
              g["text"].get<std::string>());
  }
}

TEST(ChatTemplate, BuiltinsAreTheRealTemplateTexts) {
  std::map<std::string, std::string> by_format;
  for (const auto& g : read_jsonl("tests/data/chat_templates.jsonl"))
    by_format[g["format"]] = g["template"];
  ASSERT_EQ(by_format.size(), treg::builtin_chat_template_names().size());
  for (const auto& [format, source] : by_format) {
    const std::string builtin = treg::builtin_chat_template(format).source();
    // gemma and mistral: a system-folding prefix, then the real text.
    ASSERT_GE(builtin.size(), source.size()) << format;
    EXPECT_EQ(builtin.substr(builtin.size() - source.size()), source) << format;
    EXPECT_EQ(builtin.size() == source.size(), format != "gemma" && format != "mistral") << format;
  }
  EXPECT_EQ(treg::real_chat_template("llama"), by_format["llama3"]);
  EXPECT_EQ(treg::real_chat_template("gemma2"), by_format["gemma"]);
  EXPECT_EQ(treg::real_chat_template("qwen2"), by_format["chatml"]);
}

const std::vector<Message> kSysUser = {{"system", "Be brief."}, {"user", "Hi"}};
const std::vector<Message> kTurns = {{"user", "Hi"}, {"assistant", "Hello!"}};

TEST(ChatTemplate, Llama3Literal) {
  const ChatTemplate t = treg::builtin_chat_template("llama3");
  EXPECT_EQ(t.render(kSysUser, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|"
            "end_header_id|>\n\n");
  EXPECT_EQ(t.render({{"user", " Hi \n"}}, false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
  EXPECT_EQ(t.end_of_turn(), "<|eot_id|>");
  EXPECT_EQ(t.name(), "llama3");
}

TEST(ChatTemplate, GemmaLiteralFoldsSystem) {
  const ChatTemplate t = treg::builtin_chat_template("gemma");
  EXPECT_EQ(t.render(kSysUser, true),
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(
      t.render(kTurns, false),
      "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n");
  EXPECT_EQ(t.end_of_turn(), "<end_of_turn>");
  std::string e = error_of([&] { t.render({{"assistant", "x"}}, false); });
  EXPECT_TRUE(contains(e, "built-in chat template 'gemma'")) << e;
  EXPECT_TRUE(contains(e, "Conversation roles must alternate")) << e;
  e = error_of([&] { t.render({{"system", "S"}, {"assistant", "x"}}, false); });
  EXPECT_TRUE(contains(e, "a system message must be followed by a user message")) << e;
}

TEST(ChatTemplate, ChatmlLiteralAddsQwenDefaultSystem) {
  const ChatTemplate t = treg::builtin_chat_template("chatml");
  EXPECT_EQ(
      t.render({{"user", "Hi"}}, true),
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
      "<|im_start|>assistant\n");
  EXPECT_EQ(t.render(kSysUser, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(t.end_of_turn(), "<|im_end|>");
}

TEST(ChatTemplate, MistralLiteral) {
  const ChatTemplate t = treg::builtin_chat_template("mistral");
  EXPECT_EQ(t.render(kTurns, true), "<s>[INST] Hi [/INST]Hello!</s>");
  EXPECT_EQ(t.render(kSysUser, false), "<s>[INST] Be brief.\n\nHi [/INST]");
  EXPECT_EQ(t.end_of_turn(), "</s>");
}

TEST(ChatTemplate, ZephyrLiteral) {
  const ChatTemplate t = treg::builtin_chat_template("zephyr");
  EXPECT_EQ(t.render(kSysUser, true),
            "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n");
  EXPECT_EQ(t.render(kTurns, false), "<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n");
  EXPECT_EQ(t.end_of_turn(), "</s>");
}

TEST(ChatTemplate, UnknownBuiltinNameListsTheNames) {
  std::string e = error_of([] { treg::builtin_chat_template("vicuna"); });
  EXPECT_TRUE(contains(e, "unknown chat template 'vicuna'")) << e;
  EXPECT_TRUE(contains(e, "llama3, gemma, chatml, mistral, zephyr")) << e;
}

// ---- the engine: errors, functions, end of turn ----

TEST(ChatTemplate, RaiseExceptionIsAnErrorNamingTheOrigin) {
  treg::SpecialTokens none;
  ChatTemplate t(
      "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('No tools "
      "here, got ' + m.role) }}{% endif %}{{ m.content }}{% endfor %}",
      "models/x/tokenizer_config.json: chat_template", none);
  EXPECT_EQ(t.render({{"user", "fine"}}, false), "fine");
  std::string e = error_of([&] { t.render({{"tool", "x"}}, false); });
  EXPECT_EQ(e.rfind("models/x/tokenizer_config.json: chat_template: ", 0), 0u) << e;
  EXPECT_TRUE(contains(e, "raised an exception: No tools here, got tool")) << e;
  EXPECT_TRUE(contains(e, "HINT:")) << e;
}

TEST(ChatTemplate, SyntaxErrorNamesTheOriginAndThePlace) {
  treg::SpecialTokens none;
  std::string e = error_of([&] {
    ChatTemplate("{% for m in messages %}\n{{ m.content + }}\n{% endfor %}",
                 "models/x/chat_template.jinja", none);
  });
  EXPECT_EQ(e.rfind("models/x/chat_template.jinja: chat template syntax error: ", 0), 0u) << e;
  EXPECT_TRUE(contains(e, "line 2")) << e;
  EXPECT_TRUE(contains(e, "{{ m.content + }}")) << e;
  e = error_of(
      [&] { ChatTemplate("{% if messages %}open", "models/x/chat_template.jinja", none); });
  EXPECT_TRUE(contains(e, "Unterminated if")) << e;
  // A failure while rendering (not a raise_exception) also names the origin and the place.
  ChatTemplate t("{{ messages[3].content }}", "models/y/chat_template.jinja", none);
  e = error_of([&] { t.render({{"user", "a"}}, false); });
  EXPECT_EQ(e.rfind("models/y/chat_template.jinja: cannot render the chat template: ", 0), 0u) << e;
}

TEST(ChatTemplate, StrftimeNowRendersTheLocalDate) {
  auto today = [] {
    std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buf[64];
    return std::string(buf, std::strftime(buf, sizeof buf, "%d %b %Y", &local));
  };
  treg::SpecialTokens none;
  // As Llama-3.1's template writes its "Today Date".
  ChatTemplate t("{%- set date_string = strftime_now(\"%d %b %Y\") %}Today Date: {{ date_string }}",
                 "test", none);
  const std::string before = today();
  const std::string got = t.render({{"user", "Hi"}}, false);
  const std::string after = today();
  EXPECT_TRUE(got == "Today Date: " + before || got == "Today Date: " + after) << got;
}

TEST(ChatTemplate, EndOfTurnIsTheSpecialTokenAfterTheAnswerElseEos) {
  treg::SpecialTokens tokens;
  tokens.eos_token = "</s>";
  tokens.special_texts = {"</s>", "<|end|>", "<|end|><|x|>"};
  // The longest special token directly after the answer.
  ChatTemplate a("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|><|x|>\n{% endfor %}",
                 "a", tokens);
  EXPECT_EQ(a.end_of_turn(), "<|end|><|x|>");
  // Plain text after the answer: eos_token.
  ChatTemplate b("{% for m in messages %}{{ m.role }}: {{ m.content }}\n\n{% endfor %}", "b",
                 tokens);
  EXPECT_EQ(b.end_of_turn(), "</s>");
}

// ---- the real tokenizer fixtures: templates as tokenizer_config.json ships them ----

// The real tokenizer files, unpacked for this test alone.
std::string unpack(const std::string& name) { return treg::test::unpack_tokenizer_fixture(name); }

class ChatTemplateReal : public ::testing::TestWithParam<std::string> {};

// Every rendering (generation prompt on and off, system messages, multi-turn, Qwen3's <think>
// split) equals Jinja2's, and every conversation the template refuses is a treg::Error naming
// tokenizer_config.json and the template's own message.
TEST_P(ChatTemplateReal, RendersAsTransformersJinja2) {
  const std::string dir = unpack(GetParam());
  auto tok = treg::load_tokenizer(dir);
  const ChatTemplate chat = treg::make_chat_template(*tok, "");
  const std::string origin = dir + "/tokenizer_config.json: chat_template";
  EXPECT_EQ(chat.origin(), origin);
  EXPECT_EQ(chat.name(), "");
  int n = 0;
  for (const auto& g : read_jsonl("tests/data/tokenizer_chat_templates.jsonl")) {
    if (g["tokenizer"] != GetParam()) continue;
    ++n;
    const bool gen = g["add_generation_prompt"];
    SCOPED_TRACE(g["messages"].dump() + " gen=" + (gen ? "true" : "false"));
    if (g.contains("error")) {
      std::string e = error_of([&] { chat.render(messages_of(g["messages"]), gen); });
      EXPECT_EQ(e.rfind(origin + ": the chat template raised an exception: " +
                            g["error"].get<std::string>(),
                        0),
                0u)
          << e;
    } else {
      EXPECT_EQ(chat.render(messages_of(g["messages"]), gen), g["text"].get<std::string>());
    }
  }
  EXPECT_EQ(n, 22);
  // The end-of-turn marker is read off the template, and is one token of the tokenizer.
  const std::map<std::string, std::string> eot = {{"llama3", "<|eot_id|>"},
                                                  {"llama3_1", "<|eot_id|>"},
                                                  {"qwen3", "<|im_end|>"},
                                                  {"gemma3", "<end_of_turn>"},
                                                  {"deepseek_v3", "<｜end▁of▁sentence｜>"}};
  EXPECT_EQ(chat.end_of_turn(), eot.at(GetParam()));
  EXPECT_EQ(treg::end_of_turn_id(*tok, chat), tok->piece_to_id(eot.at(GetParam())));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ChatTemplateReal,
                         ::testing::Values("llama3", "llama3_1", "qwen3", "gemma3", "deepseek_v3"));

// Where the template comes from, on Llama-2's tokenizer (it ships none).
TEST(ChatTemplateSource, NoTemplateNeedsAnOverrideThatThenWorks) {
  const std::string dir = unpack("llama2");
  auto tok = treg::load_tokenizer(dir);
  EXPECT_EQ(tok->chat_template_source(), "");
  std::string e = error_of([&] { treg::make_chat_template(*tok, ""); });
  EXPECT_EQ(e.rfind(dir + ": the tokenizer has no chat template", 0), 0u) << e;
  EXPECT_TRUE(contains(e, "chat_template: NAME")) << e;
  EXPECT_TRUE(contains(e, "llama3, gemma, chatml, mistral, zephyr")) << e;
  const ChatTemplate chat = treg::make_chat_template(*tok, "mistral");
  EXPECT_EQ(chat.name(), "mistral");
  EXPECT_EQ(chat.render(kTurns, false), "<s>[INST] Hi [/INST]Hello!</s>");
  EXPECT_EQ(treg::end_of_turn_id(*tok, chat), tok->piece_to_id("</s>"));
}

TEST(ChatTemplateSource, ChatTemplateJinjaWinsOverTokenizerConfig) {
  const std::string dir = unpack("llama2");
  auto config = json::parse(treg::read_file(dir + "/tokenizer_config.json"));
  // transformers' list form: the entry named "default".
  config["chat_template"] = json::array({{{"name", "tool_use"}, {"template", "TOOLS"}},
                                         {{"name", "default"}, {"template", "{{ bos_token }}D"}}});
  treg::write_file_atomic(dir + "/tokenizer_config.json", config.dump());
  auto from_config = treg::load_tokenizer(dir);
  EXPECT_EQ(from_config->chat_template_origin(),
            dir + "/tokenizer_config.json: chat_template[name=default]");
  EXPECT_EQ(treg::make_chat_template(*from_config, "").render(kTurns, false), "<s>D");

  // Special tokens as transformers passes them: unk_token too; pad_token is null here (undefined).
  treg::write_file_atomic(dir + "/chat_template.jinja",
                          "{{ bos_token }}|{{ eos_token }}|{{ unk_token }}|{{ pad_token }}|"
                          "{{ messages[0].content }}\n");
  auto from_jinja = treg::load_tokenizer(dir);
  EXPECT_EQ(from_jinja->chat_template_origin(), dir + "/chat_template.jinja");
  // The trailing newline of the file is dropped, as Jinja does by default.
  EXPECT_EQ(treg::make_chat_template(*from_jinja, "").render(kTurns, false), "<s>|</s>|<unk>||Hi");
  // The file is part of the tokenizer's identity (reward dumps made with the other are stale).
  EXPECT_NE(from_jinja->fingerprint(), from_config->fingerprint());
  // An explicit name still wins.
  EXPECT_EQ(treg::make_chat_template(*from_jinja, "zephyr").render({{"user", "Hi"}}, false),
            "<|user|>\nHi</s>\n");

  // A syntax error in the file names the file.
  treg::write_file_atomic(dir + "/chat_template.jinja", "{% for m in messages %}{{ m.content }}");
  auto broken = treg::load_tokenizer(dir);
  std::string e = error_of([&] { treg::make_chat_template(*broken, ""); });
  EXPECT_EQ(e.rfind(dir + "/chat_template.jinja: chat template syntax error", 0), 0u) << e;
}

}  // namespace
