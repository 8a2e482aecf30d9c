// An untrusted chat template (a model's tokenizer_config.json / chat_template.jinja) rendered with
// untrusted messages. Input: the template, then after a NUL byte one message per line as
// "role:content".
#include <vector>

#include "fuzz_util.h"
#include "treg/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = treg::fuzz::split_at_nul(data, size);
  const std::string& source = parts.head;
  std::vector<treg::Message> messages;
  for (const std::string& line : parts.lines) {
    const size_t colon = line.find(':');
    messages.push_back(
        {line.substr(0, colon), colon == std::string::npos ? "" : line.substr(colon + 1)});
  }
  if (!parts.has_lines)
    messages = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}};
  treg::SpecialTokens tokens;
  tokens.bos_token = "<s>";
  tokens.eos_token = "</s>";
  tokens.special_texts = {"<s>", "</s>", "<|eot_id|>", "<end_of_turn>", "<|im_end|>"};
  try {
    treg::ChatTemplate chat(source, "fuzz.jinja", tokens);
    (void)chat.render(messages, true);
    (void)chat.render(messages, false);
  } catch (const treg::Error&) {
  }
  return 0;
}
