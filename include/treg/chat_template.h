// Chat templates rendered exactly as transformers' apply_chat_template renders the real Jinja
// templates of the supported model families.
#pragma once
#include <string>
#include <vector>

namespace treg {

struct Message {
  std::string role;     // "system" | "user" | "assistant"
  std::string content;
};

enum class ChatFormat { Llama3, Gemma, ChatML, Mistral, Zephyr };

class ChatTemplate {
 public:
  explicit ChatTemplate(ChatFormat format) : format_(format) {}
  ChatFormat format() const { return format_; }
  // Text of the conversation, including BOS text where the real template writes it.
  std::string render(const std::vector<Message>& messages, bool add_generation_prompt) const;
  // What closes an assistant turn: "<|eot_id|>", "<end_of_turn>", "<|im_end|>", "</s>", ...
  std::string end_of_turn() const;

 private:
  ChatFormat format_;
};

// "llama3" | "gemma" | "chatml" | "mistral" | "zephyr"; an unknown name is an error listing them.
ChatFormat chat_format_from_name(const std::string& name);
std::string chat_format_name(ChatFormat format);
// Recognises a tokenizer_config.json `chat_template` by its markers; an unrecognised one is an error
// that tells the user to set `chat_template:` in the config.
ChatFormat detect_chat_format(const std::string& jinja_source);

}  // namespace treg
