// Each format is the real Jinja template written out as code; tests/data/chat_templates.jsonl
// holds Jinja2 renderings of the real templates that these must equal.
#include "treg/chat_template.h"

#include "treg/error.h"

namespace treg {
namespace {

// Jinja's `trim` filter (Python's str.strip) on the whitespace that occurs in practice.
std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v\x1c\x1d\x1e\x1f";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) + 1 - b);
}

// Gemma and Mistral have no system role: prepend it to the first user turn.
std::vector<Message> fold_system(const std::vector<Message>& messages, const std::string& format) {
  if (messages.empty() || messages[0].role != "system") return messages;
  if (messages.size() < 2 || messages[1].role != "user")
    fail("chat template " + format, "a system message must be followed by a user message");
  std::vector<Message> out(messages.begin() + 1, messages.end());
  out[0].content = messages[0].content + "\n\n" + out[0].content;
  return out;
}

// The real templates raise unless roles go user, assistant, user, ...
void check_alternating(const std::vector<Message>& messages, const std::string& format) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const char* want = i % 2 == 0 ? "user" : "assistant";
    if (messages[i].role != want)
      fail("chat template " + format,
           "message " + std::to_string(i) + " has role '" + messages[i].role + "', expected '" +
               want + "'",
           "conversation roles must alternate user/assistant/user/assistant/...");
  }
}

std::string render_llama3(const std::vector<Message>& messages, bool gen) {
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i == 0) out += "<|begin_of_text|>";
    out += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n" +
           trim(messages[i].content) + "<|eot_id|>";
  }
  if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

std::string render_gemma(const std::vector<Message>& raw, bool gen) {
  std::vector<Message> messages = fold_system(raw, "gemma");
  check_alternating(messages, "gemma");
  std::string out = "<bos>";
  for (const auto& m : messages) {
    const std::string role = m.role == "assistant" ? "model" : m.role;
    out += "<start_of_turn>" + role + "\n" + trim(m.content) + "<end_of_turn>\n";
  }
  if (gen) out += "<start_of_turn>model\n";
  return out;
}

std::string render_chatml(const std::vector<Message>& messages, bool gen) {
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i == 0 && messages[0].role != "system")
      out += "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
    out += "<|im_start|>" + messages[i].role + "\n" + messages[i].content + "<|im_end|>\n";
  }
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

// Mistral's template ignores add_generation_prompt: "[/INST]" already cues the answer.
std::string render_mistral(const std::vector<Message>& raw, bool /*gen*/) {
  std::vector<Message> messages = fold_system(raw, "mistral");
  check_alternating(messages, "mistral");
  std::string out = "<s>";
  for (const auto& m : messages) {
    if (m.role == "user")
      out += "[INST] " + m.content + " [/INST]";
    else
      out += m.content + "</s>";
  }
  return out;
}

std::string render_zephyr(const std::vector<Message>& messages, bool gen) {
  std::string out;
  for (const auto& m : messages) {
    if (m.role != "user" && m.role != "system" && m.role != "assistant")
      fail("chat template zephyr", "unknown role '" + m.role + "'",
           "use system, user or assistant");
    out += "<|" + m.role + "|>\n" + m.content + "</s>\n";
  }
  // The real template writes the prompt inside the loop, so an empty conversation gets none.
  if (gen && !messages.empty()) out += "<|assistant|>\n";
  return out;
}

}  // namespace

std::string ChatTemplate::render(const std::vector<Message>& messages,
                                 bool add_generation_prompt) const {
  for (const auto& m : messages)
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
      fail("chat template " + chat_format_name(format_), "unknown role '" + m.role + "'",
           "use system, user or assistant");
  switch (format_) {
    case ChatFormat::Llama3:
      return render_llama3(messages, add_generation_prompt);
    case ChatFormat::Gemma:
      return render_gemma(messages, add_generation_prompt);
    case ChatFormat::ChatML:
      return render_chatml(messages, add_generation_prompt);
    case ChatFormat::Mistral:
      return render_mistral(messages, add_generation_prompt);
    case ChatFormat::Zephyr:
      return render_zephyr(messages, add_generation_prompt);
  }
  return "";
}

std::string ChatTemplate::end_of_turn() const {
  switch (format_) {
    case ChatFormat::Llama3:
      return "<|eot_id|>";
    case ChatFormat::Gemma:
      return "<end_of_turn>";
    case ChatFormat::ChatML:
      return "<|im_end|>";
    case ChatFormat::Mistral:
      return "</s>";
    case ChatFormat::Zephyr:
      return "</s>";
  }
  return "";
}

ChatFormat chat_format_from_name(const std::string& name) {
  if (name == "llama3") return ChatFormat::Llama3;
  if (name == "gemma") return ChatFormat::Gemma;
  if (name == "chatml") return ChatFormat::ChatML;
  if (name == "mistral") return ChatFormat::Mistral;
  if (name == "zephyr") return ChatFormat::Zephyr;
  fail("chat_template", "unknown chat format '" + name + "'",
       "use one of: llama3, gemma, chatml, mistral, zephyr");
}

std::string chat_format_name(ChatFormat format) {
  switch (format) {
    case ChatFormat::Llama3:
      return "llama3";
    case ChatFormat::Gemma:
      return "gemma";
    case ChatFormat::ChatML:
      return "chatml";
    case ChatFormat::Mistral:
      return "mistral";
    case ChatFormat::Zephyr:
      return "zephyr";
  }
  return "";
}

ChatFormat detect_chat_format(const std::string& jinja_source) {
  if (jinja_source.find("<|start_header_id|>") != std::string::npos) return ChatFormat::Llama3;
  if (jinja_source.find("<start_of_turn>") != std::string::npos) return ChatFormat::Gemma;
  if (jinja_source.find("<|im_start|>") != std::string::npos) return ChatFormat::ChatML;
  if (jinja_source.find("[INST]") != std::string::npos) return ChatFormat::Mistral;
  if (jinja_source.find("<|assistant|>") != std::string::npos) return ChatFormat::Zephyr;
  fail("tokenizer_config.json chat_template",
       jinja_source.empty() ? "the tokenizer has no chat template"
                            : "the chat template is not one treg recognises (no "
                              "llama3/gemma/chatml/mistral/zephyr markers)",
       "set `chat_template:` in the config to one of: llama3, gemma, chatml, mistral, zephyr");
}

}  // namespace treg
