// An untrusted chat template (a model's tokenizer_config.json / chat_template.jinja) rendered with
// untrusted messages. Input: the template, then after a NUL byte one message per line as
// "role:content".
#include <sstream>
#include <vector>

#include "fuzz_util.h"
#include "treg/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(treg::fuzz::as_text(data, size));
  const size_t nul = input.find('\0');
  const std::string source = input.substr(0, nul);
  std::vector<treg::Message> messages;
  if (nul != std::string::npos) {
    std::istringstream rest(input.substr(nul + 1));
    for (std::string line; std::getline(rest, line);) {
      const size_t colon = line.find(':');
      messages.push_back(
          {line.substr(0, colon), colon == std::string::npos ? "" : line.substr(colon + 1)});
    }
  } else {
    messages = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}};
  }
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
