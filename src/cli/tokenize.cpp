// `treg tokenize`: JSONL text, chat messages or preference rows on stdin -> token ids on stdout, to
// inspect exactly what the trainer will see.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "treg/chat_template.h"
#include "treg/data.h"
#include "treg/error.h"
#include "treg/tokenizer.h"

namespace treg::cli {
namespace {

using nlohmann::json;

struct TokenizeOptions {
  std::string tokenizer;
  bool chat = false;
  bool add_special = false;
  std::string chat_template;  // a built-in format; empty: the tokenizer's own template
  std::string pairs;          // "": no; trl | simpo: rows laid out as pair_tokenization says
};

std::vector<Message> parse_messages(const json& j, const std::string& where) {
  if (!j.contains("messages") || !j["messages"].is_array())
    fail(where, "expected {\"messages\": [{\"role\": ..., \"content\": ...}, ...]}, got " +
                    j.dump().substr(0, 200));
  std::vector<Message> out;
  for (const auto& m : j["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
        !m["content"].is_string())
      fail(where,
           "each message needs string \"role\" and \"content\", got " + m.dump().substr(0, 200));
    out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return out;
}

int run_tokenize(const TokenizeOptions& opts) {
  auto tok = load_tokenizer(opts.tokenizer);
  std::optional<ChatTemplate> chat;
  if (opts.chat || !opts.pairs.empty()) chat = make_chat_template(*tok, opts.chat_template);
  std::optional<PairTokenization> layout;
  if (!opts.pairs.empty()) layout = parse_pair_tokenization(opts.pairs);
  std::string line;
  for (int64_t line_no = 1; std::getline(std::cin, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = "stdin line " + std::to_string(line_no);
    if (layout) {  // a preference row, exactly as the trainer lays it out (before truncation)
      const TokenizedPair p =
          tokenize_pair(parse_pair_line(line, "stdin", line_no), *tok, *chat, nullptr, *layout);
      json out = {{"prompt_ids", p.prompt_ids},
                  {"chosen_ids", p.chosen_ids},
                  {"rejected_ids", p.rejected_ids},
                  {"chosen_header", p.chosen_header},
                  {"rejected_header", p.rejected_header}};
      std::cout << out.dump() << '\n';
      continue;
    }
    json in;
    try {
      in = json::parse(line);
    } catch (const json::exception& e) {
      fail(where, std::string("invalid JSON: ") + e.what(),
           opts.chat ? "each line must be {\"messages\": [...], \"add_generation_prompt\": false}"
                     : "each line must be {\"text\": \"...\"}");
    }
    std::string text;
    if (chat) {
      // The rendered text carries BOS where the template writes it, so add_special stays off
      // unless asked for explicitly.
      text = chat->render(parse_messages(in, where), in.value("add_generation_prompt", false));
    } else {
      if (!in.is_object() || !in.contains("text") || !in["text"].is_string())
        fail(where, "expected {\"text\": \"...\"}, got " + line.substr(0, 200),
             "use --chat for {\"messages\": ...}");
      text = in["text"].get<std::string>();
    }
    json out;
    out["ids"] = tok->encode(text, opts.add_special);
    json pieces = json::array();
    for (int64_t id : out["ids"].get<std::vector<int64_t>>())
      pieces.push_back(tok->id_to_piece(id));
    out["pieces"] = pieces;
    std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
  }
  std::cout.flush();
  return 0;
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* sub = app.add_subcommand(
      "tokenize",
      "Tokenize JSONL from stdin: {\"text\":...}; with --chat, {\"messages\":[...]}; with "
      "--pairs, preference rows");
  sub->add_option("--tokenizer", opts->tokenizer,
                  "Model directory, tokenizer.json or tokenizer.model")
      ->required();
  sub->add_flag("--chat", opts->chat,
                "Input lines are conversations rendered with the chat template");
  sub->add_flag("--add-special", opts->add_special,
                "Add BOS/EOS as the tokenizer's post-processor would");
  sub->add_option("--pairs", opts->pairs,
                  "Input lines are preference rows (as in train_file): print prompt/chosen/rejected "
                  "ids as pair_tokenization trl|simpo lays them out")
      ->check(CLI::IsMember({"trl", "simpo"}));
  sub->add_option("--chat-template", opts->chat_template,
                  "Render with a built-in format instead of the tokenizer's own template: "
                  "llama3|gemma|chatml|mistral|zephyr");
  set_action(sub, [opts]() { return run_tokenize(*opts); });
}

}  // namespace treg::cli
