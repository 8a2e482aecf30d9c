// Chat templates rendered exactly as transformers' apply_chat_template(tokenize=False) renders the
// real Jinja templates of the supported model families:
//   llama3   Meta-Llama-3-8B-Instruct
//   <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n...<|eot_id|> gemma gemma-2-9b-it
//   <bos><start_of_turn>user\n...<end_of_turn>\n (assistant -> model) chatml   Qwen2-7B-Instruct
//   <|im_start|>user\n...<|im_end|>\n, with Qwen2's default system
//                                      message "You are a helpful assistant." when none is given
//   mistral  Mistral-7B-Instruct-v0.2  <s>[INST] ... [/INST]...</s>
//   zephyr   zephyr-7b-beta            <|user|>\n...</s>\n
// Gemma's and Mistral's real templates reject a system message; here it is folded into the first
// user turn as system + "\n\n" + user (as the SimPO Gemma-2 setup does), the rest unchanged.
//
// The rendered text already contains BOS where the template writes it (llama3, gemma, mistral), so
// callers must encode it with add_special=false; add_special=true would double the BOS.
#pragma once
#include <string>
#include <vector>

namespace treg {

struct Message {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

enum class ChatFormat { Llama3, Gemma, ChatML, Mistral, Zephyr };

class ChatTemplate {
 public:
  explicit ChatTemplate(ChatFormat format) : format_(format) {}
  ChatFormat format() const { return format_; }
  // Text of the conversation, including BOS text where the real template writes it. Roles that the
  // real template rejects (e.g. gemma: not alternating user/assistant) are a treg::Error.
  std::string render(const std::vector<Message>& messages, bool add_generation_prompt) const;
  // What closes an assistant turn: "<|eot_id|>", "<end_of_turn>", "<|im_end|>", "</s>", ...
  std::string end_of_turn() const;

 private:
  ChatFormat format_;
};

// "llama3" | "gemma" | "chatml" | "mistral" | "zephyr"; an unknown name is an error listing them.
ChatFormat chat_format_from_name(const std::string& name);
std::string chat_format_name(ChatFormat format);
// Recognises a tokenizer_config.json `chat_template` by its markers; an unrecognised one is an
// error that tells the user to set `chat_template:` in the config.
ChatFormat detect_chat_format(const std::string& jinja_source);

}  // namespace treg
