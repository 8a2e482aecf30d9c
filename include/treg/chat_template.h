// Chat templates: the model's own Jinja template rendered as transformers'
// apply_chat_template(tokenize=False) renders it, by Google's minja engine (header-only, the one
// llama.cpp uses).
//
// transformers' environment, reproduced here: trim_blocks and lstrip_blocks on, the trailing
// newline of the template dropped; variables `messages` ([{role, content}]),
// `add_generation_prompt` and the tokenizer's special tokens bos_token, eos_token, unk_token,
// pad_token (those it has); functions raise_exception(message) (-> treg::Error naming the
// template's origin) and strftime_now(format) (local time). No polyfills: a template that rejects a
// system message rejects it here too.
//
// Where the template comes from (make_chat_template): `chat_template: NAME` in the config (or
// `treg tokenize --chat-template NAME`) picks one of the built-in formats; otherwise the model's
// chat_template.jinja, else the `chat_template` of its tokenizer_config.json, as transformers does.
//
// The rendered text already contains BOS where the template writes it (Llama-3, Gemma, Mistral), so
// callers encode it with add_special=false; add_special=true would double the BOS.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "treg/tokenizer.h"

namespace treg {

struct Message {
  std::string role;  // "system" | "user" | "assistant" (the template decides what it accepts)
  std::string content;
};

class ChatTemplate {
 public:
  // Parses `source`. `origin` says where it came from and starts every error message (e.g.
  // "<dir>/tokenizer_config.json: chat_template"); `name` is the built-in format's name, "" for a
  // model's own template. `tokens` gives bos/eos/unk/pad_token to the template and the special
  // tokens end_of_turn() is chosen among. A syntax error is a treg::Error naming origin and where.
  ChatTemplate(const std::string& source, const std::string& origin, const SpecialTokens& tokens,
               const std::string& name = "");

  // Text of the conversation. A template that raises (e.g. roles that do not alternate) or fails is
  // a treg::Error naming the origin and the template's message.
  std::string render(const std::vector<Message>& messages, bool add_generation_prompt) const;

  // What closes an assistant turn: the special token the template writes right after the answer
  // (rendering [user, assistant] and looking behind the answer: "<|eot_id|>", "<end_of_turn>",
  // "<|im_end|>", "</s>", ...), or eos_token when no special token follows it directly.
  const std::string& end_of_turn() const { return end_of_turn_; }

  const std::string& name() const { return name_; }  // "llama3", ...; "" for the model's own
  const std::string& origin() const { return origin_; }
  const std::string& source() const { return source_; }

 private:
  struct Parsed;  // the minja syntax tree (kept out of this header)
  std::shared_ptr<const Parsed> parsed_;
  std::string source_, origin_, name_;
  std::vector<std::pair<std::string, std::string>> variables_;  // ("bos_token", "<s>"), ...
  std::string end_of_turn_;
};

// The built-in formats, for `chat_template: NAME`: the real template text of each family's instruct
// model with that family's special tokens.
//   llama3   Meta-Llama-3-8B-Instruct
//   gemma    gemma-2-9b-it, a leading system message folded into the first user turn as
//            system + "\n\n" + user (the real template rejects it; the SimPO Gemma-2 setup folds)
//   chatml   Qwen2-7B-Instruct (adds the default system message "You are a helpful assistant.")
//   mistral  Mistral-7B-Instruct-v0.2, a system message folded as for gemma
//   zephyr   zephyr-7b-beta
const std::vector<std::string>& builtin_chat_template_names();
// An unknown name is an error listing the names.
ChatTemplate builtin_chat_template(const std::string& name);

// The template a run renders with: `override_name` when it is not empty -- Jinja text (a recipe's
// chat_template, recognised by "{{" or "{%") or a built-in name -- else the tokenizer's own
// (chat_template.jinja or tokenizer_config.json). A tokenizer without a template and no override is
// an error that says to set `chat_template: NAME`.
ChatTemplate make_chat_template(const Tokenizer& tok, const std::string& override_name);

}  // namespace treg
