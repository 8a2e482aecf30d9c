// treg generate: answers to benchmark prompts, in the files AlpacaEval and Arena-Hard read.
//   in:  JSONL or a JSON array of rows: AlpacaEval {"instruction": ...}, Arena-Hard question.jsonl
//        {"question_id": ..., "turns": [{"content": ...}]} (turns[0]), {"prompt": "text" or
//        [messages]}, or {"messages": [...]} (a trailing assistant turn is dropped)
//   out: alpaca_eval: a JSON array of {"instruction", "output", "generator", "dataset"?};
//        arena_hard: JSONL of {"question_id", "answer_id", "model_id", "choices": [{"index": 0,
//        "turns": [{"content", "token_len"}]}], "tstamp"}
// Each prompt is rendered by the chat template with the generation prompt and encoded without
// added special tokens (transformers' apply_chat_template(tokenize=True)); generation stops on
// every EOS id of the tokenizer and the model and on the template's end-of-turn token.
#include "treg/generate.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "treg/chat_template.h"
#include "treg/data.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/model.h"
#include "treg/progress.h"
#include "treg/runtime.h"
#include "treg/tokenizer.h"

namespace treg::cli {

namespace {

using nlohmann::json;

struct GenerateCliOptions {
  std::string model, prompts, out, format, chat_template, generator;
  std::string device = "cpu";
  bool bf16 = false, no_progress = false;
  GenerateOptions gen;
};

// One input row, ready to render.
struct PromptRow {
  std::string where;  // "<file>:<line>"
  std::vector<Message> messages;
  std::string instruction;  // the (last) user message: AlpacaEval's "instruction"
  // Copied into the output as they are (ordered_json: the output's type).
  nlohmann::ordered_json question_id;  // Arena-Hard's id (null when the input has none)
  nlohmann::ordered_json dataset;      // AlpacaEval's "dataset" (null when absent)
};

// The rows of a JSON array with the line each element starts on (JSON has no positions of its
// own): a scan that follows strings and nesting.
std::vector<std::pair<json, int64_t>> json_array_rows(const std::string& text,
                                                      const std::string& path) {
  json all;
  try {
    all = json::parse(text);
  } catch (const json::parse_error& e) {
    const auto end = text.begin() + static_cast<std::ptrdiff_t>(std::min(e.byte, text.size()));
    const int64_t line = 1 + std::count(text.begin(), end, '\n');
    fail(path + ":" + std::to_string(line), std::string("not valid JSON: ") + e.what(),
         "give a JSON array of objects, or JSONL (one object per line)");
  }
  std::vector<int64_t> lines;
  int64_t line = 1, depth = 0;
  bool in_string = false, escaped = false, want_element = false;
  for (char c : text) {
    if (c == '\n') ++line;
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    if (want_element && depth == 1 && c != ']') {
      lines.push_back(line);
      want_element = false;
    }
    if (c == '"') in_string = true;
    if (c == '[' || c == '{') {
      ++depth;
      if (depth == 1) want_element = true;
    }
    if (c == ']' || c == '}') --depth;
    if (c == ',' && depth == 1) want_element = true;
  }
  std::vector<std::pair<json, int64_t>> rows;
  for (size_t i = 0; i < all.size(); ++i)
    rows.emplace_back(all[i], i < lines.size() ? lines[i] : 0);
  return rows;
}

std::vector<std::pair<json, int64_t>> read_rows(const std::string& path) {
  if (!file_exists(path)) fail(path, "cannot open for reading", "check --prompts");
  const std::string text = read_file(path);
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') return json_array_rows(text, path);
  std::vector<std::pair<json, int64_t>> rows;
  std::istringstream in(text);
  std::string line;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      rows.emplace_back(json::parse(line), lineno);
    } catch (const json::exception& e) {
      fail(path + ":" + std::to_string(lineno), std::string("not valid JSON: ") + e.what(),
           "one JSON object per line, or a JSON array");
    }
  }
  return rows;
}

std::string string_field(const json& j, const char* key, const std::string& where) {
  if (!j[key].is_string())
    fail(where,
         std::string("\"") + key + "\" must be a string, got " + j[key].dump().substr(0, 80));
  return j[key].get<std::string>();
}

std::vector<Message> parse_messages(const json& list, const std::string& where,
                                    const std::string& key) {
  if (!list.is_array() || list.empty())
    fail(where, "\"" + key + "\" must be a non-empty array of {\"role\", \"content\"} messages");
  std::vector<Message> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& m = list[i];
    if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
        !m["content"].is_string())
      fail(where, key + "[" + std::to_string(i) + "] needs string \"role\" and \"content\", got " +
                      m.dump().substr(0, 120));
    out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return out;
}

PromptRow parse_row(const json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "expected a JSON object, got " + j.dump().substr(0, 80));
  PromptRow row;
  row.where = where;
  auto copy = [](const json& v) { return nlohmann::ordered_json::parse(v.dump()); };
  if (j.contains("question_id")) row.question_id = copy(j["question_id"]);
  if (row.question_id.is_null() && j.contains("uid")) row.question_id = copy(j["uid"]);
  if (j.contains("dataset")) row.dataset = copy(j["dataset"]);
  if (j.contains("instruction")) {
    row.messages = {{"user", string_field(j, "instruction", where)}};
  } else if (j.contains("turns")) {
    const json& turns = j["turns"];
    if (!turns.is_array() || turns.empty() || !turns[0].is_object() ||
        !turns[0].contains("content") || !turns[0]["content"].is_string())
      fail(where, "\"turns\" must be an array whose first entry has a string \"content\"",
           "Arena-Hard question.jsonl rows look like {\"question_id\": ..., \"turns\": "
           "[{\"content\": ...}]}");
    row.messages = {{"user", turns[0]["content"].get<std::string>()}};
  } else if (j.contains("prompt")) {
    if (j["prompt"].is_string())
      row.messages = {{"user", j["prompt"].get<std::string>()}};
    else
      row.messages = parse_messages(j["prompt"], where, "prompt");
  } else if (j.contains("messages")) {
    row.messages = parse_messages(j["messages"], where, "messages");
    if (row.messages.back().role == "assistant") row.messages.pop_back();  // the answer to redo
    if (row.messages.empty()) fail(where, "\"messages\" holds only an assistant turn");
  } else {
    fail(where, "no prompt: expected a key \"instruction\", \"turns\", \"prompt\" or \"messages\"",
         "AlpacaEval {\"instruction\": ...}, Arena-Hard {\"question_id\": ..., \"turns\": "
         "[{\"content\": ...}]}, {\"prompt\": ...} or {\"messages\": [...]}");
  }
  for (auto it = row.messages.rbegin(); it != row.messages.rend(); ++it)
    if (it->role == "user") {
      row.instruction = it->content;
      break;
    }
  return row;
}

std::string resolve_format(const std::string& format, const std::string& out) {
  if (!format.empty()) return format;
  auto ends_with = [&](const std::string& s) {
    return out.size() >= s.size() && out.compare(out.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with(".jsonl")) return "arena_hard";
  if (ends_with(".json")) return "alpaca_eval";
  fail("--out", "cannot tell the format from '" + out + "'",
       "name it *.json (alpaca_eval) or *.jsonl (arena_hard), or pass --format");
}

std::string dir_basename(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  return slash == std::string::npos ? dir : dir.substr(slash + 1);
}

int run_generate(GenerateCliOptions o) {
  const std::string format = resolve_format(o.format, o.out);
  const torch::Device device = parse_device(o.device);
  if (o.generator.empty()) o.generator = dir_basename(o.model);
  // --chat-template: a built-in name, Jinja text, or a file holding Jinja text.
  std::string template_arg = o.chat_template;
  if (!template_arg.empty() && template_arg.find("{{") == std::string::npos &&
      template_arg.find("{%") == std::string::npos && file_exists(template_arg))
    template_arg = read_file(template_arg);

  auto tok = load_tokenizer(o.model);
  const ChatTemplate chat = make_chat_template(*tok, template_arg);
  std::vector<PromptRow> rows;
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& [j, line] : read_rows(o.prompts)) {
    rows.push_back(parse_row(j, o.prompts + ":" + std::to_string(line)));
    std::string text;
    try {
      text = chat.render(rows.back().messages, /*add_generation_prompt=*/true);
    } catch (const Error& e) {
      fail(rows.back().where, e.what());
    }
    prompts.push_back(tok->encode(text, /*add_special=*/false));
    if (prompts.back().empty()) fail(rows.back().where, "the prompt renders to no tokens");
  }
  if (rows.empty()) fail(o.prompts, "no prompts", "one JSON object per line, or a JSON array");

  CausalLM model = load_model(o.model, device, torch::kFloat32);
  model->eval();
  o.gen.bf16 = o.bf16;
  o.gen.stop_ids = generation_stop_ids(*tok, model->args(), chat);
  spdlog::info(
      "generate: {} prompts from {} with {} on {}{} (max {} new tokens, temperature {}, top_p {}, "
      "top_k {}, seed {}, batch {}, template {})",
      rows.size(), o.prompts, o.model, o.device, o.bf16 ? " bf16" : "", o.gen.max_new_tokens,
      o.gen.temperature, o.gen.top_p, o.gen.top_k, o.gen.seed, o.gen.batch_size, chat.origin());

  ProgressBar bar("generate", static_cast<int64_t>(rows.size()), 0, "prompts", !o.no_progress);
  GenerateResult res = generate(model, prompts, o.gen,
                                [&](int64_t done, int64_t tokens) { bar.advance(done, tokens); });
  bar.finish();

  const double tstamp =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // ordered_json: the fields in the order the benchmarks' own files list them.
  using ojson = nlohmann::ordered_json;
  std::string text;
  ojson alpaca = ojson::array();
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string output = tok->decode(res.ids[i], /*skip_special=*/true);
    if (format == "alpaca_eval") {
      ojson r = {
          {"instruction", rows[i].instruction}, {"output", output}, {"generator", o.generator}};
      if (!rows[i].dataset.is_null()) r["dataset"] = rows[i].dataset;
      alpaca.push_back(std::move(r));
    } else {
      const ojson qid = rows[i].question_id.is_null() ? ojson(i) : rows[i].question_id;
      // Deterministic where Arena-Hard draws a shortuuid: the same answer keeps its id.
      const std::string answer_id =
          sha256_hex(o.generator + "\n" + qid.dump() + "\n" + output).substr(0, 22);
      ojson turn = {{"content", output}, {"token_len", res.ids[i].size()}};
      ojson r = {{"question_id", qid},
                 {"answer_id", answer_id},
                 {"model_id", o.generator},
                 {"choices", ojson::array({{{"index", 0}, {"turns", ojson::array({turn})}}})},
                 {"tstamp", tstamp}};
      text += r.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n";
    }
  }
  if (format == "alpaca_eval")
    text = alpaca.dump(2, ' ', false, ojson::error_handler_t::replace) + "\n";
  write_file_atomic(o.out, text);
  const int64_t stopped = std::count(res.stopped.begin(), res.stopped.end(), true);
  spdlog::info(
      "generate: {} answers ({} stopped, {} hit --max-new-tokens), {} new tokens in "
      "{:.1f}s ({:.0f} tok/s) -> {} ({})",
      rows.size(), stopped, static_cast<int64_t>(rows.size()) - stopped, res.new_tokens,
      res.seconds, res.seconds > 0 ? static_cast<double>(res.new_tokens) / res.seconds : 0.0, o.out,
      format);
  return 0;
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto opts = std::make_shared<GenerateCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "generate", "Answer benchmark prompts (AlpacaEval / Arena-Hard files) with a model");
  sub->add_option("--model", opts->model, "Hugging Face model directory (weights + tokenizer)")
      ->required();
  sub->add_option("--prompts", opts->prompts,
                  "JSONL or JSON array: {\"instruction\"} | {\"question_id\", \"turns\"} | "
                  "{\"prompt\"} | {\"messages\"}")
      ->required();
  sub->add_option("--out", opts->out, "answers, written atomically")->required();
  sub->add_option("--format", opts->format,
                  "alpaca_eval (JSON array) | arena_hard (JSONL); default from --out: .json / "
                  ".jsonl")
      ->check(CLI::IsMember({"alpaca_eval", "arena_hard"}));
  sub->add_option("--max-new-tokens", opts->gen.max_new_tokens, "new tokens per answer at most")
      ->capture_default_str();
  sub->add_option("--temperature", opts->gen.temperature, "0 = greedy")->capture_default_str();
  sub->add_option("--top-p", opts->gen.top_p, "nucleus sampling; 1 = off")->capture_default_str();
  sub->add_option("--top-k", opts->gen.top_k, "0 = off")->capture_default_str();
  sub->add_option("--seed", opts->gen.seed, "sampling seed (each prompt its own stream)")
      ->capture_default_str();
  sub->add_option("--batch-size", opts->gen.batch_size, "prompts generated together")
      ->capture_default_str();
  sub->add_option("--chat-template", opts->chat_template,
                  "a built-in format (llama3|gemma|chatml|mistral|zephyr), Jinja text, or a file "
                  "of Jinja; default: the model's own");
  sub->add_option("--generator", opts->generator,
                  "the name written as generator / model_id (default: the model dir's name)");
  sub->add_option("--device", opts->device, "cpu | cuda | cuda:N")->capture_default_str();
  sub->add_flag("--bf16", opts->bf16, "bf16 autocast (weights stay fp32)");
  sub->add_flag("--no-progress", opts->no_progress, "no progress bar on stderr");
  set_action(sub, [opts] { return run_generate(*opts); });
}

}  // namespace treg::cli
