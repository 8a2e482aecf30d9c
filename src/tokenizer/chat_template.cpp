// Jinja chat templates through minja, in the environment transformers' apply_chat_template sets
// up (see include/treg/chat_template.h). tests/data/chat_templates.jsonl and
// tests/data/tokenizer_chat_templates.jsonl hold Jinja2 renderings that these must equal.
#include "treg/chat_template.h"

#include <cstdio>
#include <ctime>
#include <minja/minja.hpp>
#include <optional>

#include "treg/error.h"

namespace treg {

struct ChatTemplate::Parsed {
  std::shared_ptr<minja::TemplateNode> root;
  // minja's built-in filters and functions, made once: templates only read them (`set` writes into
  // the per-render context below them).
  std::shared_ptr<minja::Context> globals = minja::Context::builtins();
};

namespace {

using ojson = nlohmann::ordered_json;

// transformers: ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True), and Jinja's
// default keep_trailing_newline=False.
const minja::Options kTransformersOptions{/*trim_blocks=*/true, /*lstrip_blocks=*/true,
                                          /*keep_trailing_newline=*/false};

// minja appends " at row R, column C:\n<source lines>\n<caret>" for the failing construct and again
// for every enclosing block. Keeps the message and the first (innermost) location, with a short
// excerpt of the template around it instead of whole lines (templates are often one long line).
std::string describe_minja_error(const std::string& what, const std::string& source) {
  const std::string key = " at row ";
  const size_t at = what.find(key);
  if (at == std::string::npos) return what;
  long row = 0, col = 0;
  if (std::sscanf(what.c_str() + at + key.size(), "%ld, column %ld", &row, &col) != 2 || row < 1 ||
      col < 1)
    return what.substr(0, at);
  size_t begin = 0;
  for (long r = 1; r < row && begin != std::string::npos; ++r) {
    begin = source.find('\n', begin);
    if (begin != std::string::npos) ++begin;
  }
  std::string out = what.substr(0, at) + " (template line " + std::to_string(row) + ", column " +
                    std::to_string(col);
  if (begin == std::string::npos) return out + ")";
  const std::string line = source.substr(begin, source.find('\n', begin) - begin);
  // 30 bytes either side, moved off UTF-8 continuation bytes.
  auto on_char = [&](size_t i) {
    while (i > 0 && i < line.size() && (static_cast<unsigned char>(line[i]) & 0xC0) == 0x80) --i;
    return i;
  };
  const size_t pos = std::min(static_cast<size_t>(col - 1), line.size());
  const size_t from = on_char(pos > 30 ? pos - 30 : 0);
  const size_t to = pos + 30 >= line.size() ? line.size() : on_char(pos + 30);
  return out + ": " + (from > 0 ? "..." : "") + line.substr(from, to - from) +
         (to < line.size() ? "..." : "") + ")";
}

// transformers' strftime_now: datetime.now().strftime(format), local time.
std::string strftime_now(const std::string& format) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::string buf(64 + 4 * format.size(), '\0');
  const size_t n = std::strftime(buf.data(), buf.size(), format.c_str(), &local);
  buf.resize(n);
  return buf;
}

// The real templates of each built-in format, verbatim from the tokenizer_config.json of the
// family's instruct model (scripts/make_chat_template_goldens.py holds the same strings).
const char* const kLlama3 =  // meta-llama/Meta-Llama-3-8B-Instruct
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim "
    "+ '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif "
    "%}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
const char* const kGemma2 =  // google/gemma-2-9b-it
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
    "supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% "
    "set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ "
    "'<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor "
    "%}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";
const char* const kQwen2 =  // Qwen/Qwen2-7B-Instruct
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' "
    "+ message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
const char* const kMistral =  // mistralai/Mistral-7B-Instruct-v0.2
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 "
    "% 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] "
    "' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
    "message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}";
const char* const kZephyr =  // HuggingFaceH4/zephyr-7b-beta
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
    "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' "
    "+ message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ "
    "'<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and "
    "add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";
// Gemma-2 and Mistral reject a system message: this prefix folds it into the first user turn.
const char* const kFoldSystem =
    "{% if messages and messages[0]['role'] == 'system' %}{% if messages|length < 2 or "
    "messages[1]['role'] != 'user' %}{{ raise_exception('a system message must be followed by a "
    "user message') }}{% endif %}{% set messages = [{'role': 'user', 'content': "
    "messages[0]['content'] + '\n\n' + messages[1]['content']}] + messages[2:] %}{% endif %}";

struct Builtin {
  std::string name, source, bos, eos;
  std::vector<std::string> specials;  // the family's special tokens (for end_of_turn)
};

const std::vector<Builtin>& builtins() {
  static const std::vector<Builtin> all = {
      {"llama3",
       kLlama3,
       "<|begin_of_text|>",
       "<|eot_id|>",
       {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}},
      {"gemma",
       std::string(kFoldSystem) + kGemma2,
       "<bos>",
       "<eos>",
       {"<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"}},
      {"chatml", kQwen2, "", "<|im_end|>", {"<|im_start|>", "<|im_end|>"}},
      {"mistral", std::string(kFoldSystem) + kMistral, "<s>", "</s>", {"<s>", "</s>"}},
      {"zephyr", kZephyr, "<s>", "</s>", {"<s>", "</s>"}},
  };
  return all;
}

std::string names_list() {
  std::string out;
  for (const auto& n : builtin_chat_template_names()) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// The model's own template refused or failed: the data may be at fault, or the template may need
// a built-in replacement.
std::string model_template_hint(const std::string& what) {
  return what +
         "; or set `chat_template: NAME` (treg tokenize: --chat-template NAME) to render with "
         "a built-in format instead: " +
         names_list();
}

}  // namespace

ChatTemplate::ChatTemplate(const std::string& source, const std::string& origin,
                           const SpecialTokens& tokens, const std::string& name)
    : source_(source), origin_(origin), name_(name) {
  auto parsed = std::make_shared<Parsed>();
  try {
    parsed->root = minja::Parser::parse(source_, kTransformersOptions);
  } catch (const std::exception& e) {
    fail(origin_, "chat template syntax error: " + describe_minja_error(e.what(), source_),
         name_.empty() ? model_template_hint("fix the template") : "");
  }
  parsed_ = std::move(parsed);
  auto add_variable = [&](const char* key, const std::string& text) {
    if (!text.empty()) variables_.emplace_back(key, text);
  };
  add_variable("bos_token", tokens.bos_token);
  add_variable("eos_token", tokens.eos_token);
  add_variable("unk_token", tokens.unk_token);
  add_variable("pad_token", tokens.pad_token);

  // End of turn: the longest special token right after a probe answer.
  const std::string probe = "treg-end-of-turn-probe";
  end_of_turn_ = tokens.eos_token;
  std::string text;
  try {
    text = render({{"user", "Hi"}, {"assistant", probe}}, /*add_generation_prompt=*/false);
  } catch (const Error&) {
    return;  // a template that cannot render one exchange fails later, with the caller's data
  }
  const size_t at = text.rfind(probe);
  if (at == std::string::npos) return;
  const std::string_view after = std::string_view(text).substr(at + probe.size());
  std::string best;
  for (const std::string& s : tokens.special_texts)
    if (s.size() > best.size() && after.substr(0, s.size()) == s) best = s;
  if (!best.empty()) end_of_turn_ = best;
}

std::string ChatTemplate::render(const std::vector<Message>& messages,
                                 bool add_generation_prompt) const {
  ojson msgs = ojson::array();
  for (const Message& m : messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
  ojson vars = {{"messages", std::move(msgs)}, {"add_generation_prompt", add_generation_prompt}};
  for (const auto& [key, text] : variables_) vars[key] = text;
  // transformers also passes tools=None and documents=None; minja treats None as undefined, so
  // leaving them out is the same to it.
  auto context = minja::Context::make(minja::Value(vars), parsed_->globals);

  std::optional<std::string> raised;  // the template called raise_exception(message)
  context->set("raise_exception",
               minja::Value::callable([&raised](const std::shared_ptr<minja::Context>&,
                                                minja::ArgumentsValue& args) -> minja::Value {
                 args.expectArgs("raise_exception", {1, 1}, {0, 0});
                 raised = args.args[0].to_str();
                 throw std::runtime_error(*raised);
               }));
  context->set("strftime_now", minja::Value::callable([](const std::shared_ptr<minja::Context>&,
                                                         minja::ArgumentsValue& args) {
                 args.expectArgs("strftime_now", {1, 1}, {0, 0});
                 return minja::Value(strftime_now(args.args[0].get<std::string>()));
               }));
  try {
    return parsed_->root->render(context);
  } catch (const std::exception& e) {
    const std::string hint =
        "transformers' apply_chat_template refuses this conversation too: fix "
        "the data";
    if (raised)
      fail(origin_, "the chat template raised an exception: " + *raised,
           name_.empty() ? model_template_hint(hint) : hint);
    fail(origin_, "cannot render the chat template: " + describe_minja_error(e.what(), source_),
         name_.empty() ? model_template_hint("check the data against the template") : "");
  }
}

const std::vector<std::string>& builtin_chat_template_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const Builtin& b : builtins()) out.push_back(b.name);
    return out;
  }();
  return names;
}

ChatTemplate builtin_chat_template(const std::string& name) {
  for (const Builtin& b : builtins()) {
    if (b.name != name) continue;
    SpecialTokens tokens;
    tokens.bos_token = b.bos;
    tokens.eos_token = b.eos;
    tokens.special_texts = b.specials;
    return ChatTemplate(b.source, "built-in chat template '" + name + "'", tokens, name);
  }
  fail("chat_template", "unknown chat template '" + name + "'", "use one of: " + names_list());
}

ChatTemplate make_chat_template(const Tokenizer& tok, const std::string& override_name) {
  // A recipe's chat_template is the template text itself (the handbook sets tokenizer.chat_template
  // to it); a name never contains Jinja delimiters.
  if (override_name.find("{{") != std::string::npos ||
      override_name.find("{%") != std::string::npos)
    return ChatTemplate(override_name, "config key 'chat_template'", tok.special());
  if (!override_name.empty()) return builtin_chat_template(override_name);
  if (tok.chat_template_source().empty())
    fail(tok.chat_template_origin(),
         "the tokenizer has no chat template (no chat_template.jinja, no `chat_template` in "
         "tokenizer_config.json)",
         "set `chat_template: NAME` in the config (treg tokenize: --chat-template NAME) to one "
         "of: " +
             names_list());
  return ChatTemplate(tok.chat_template_source(), tok.chat_template_origin(), tok.special());
}

}  // namespace treg
