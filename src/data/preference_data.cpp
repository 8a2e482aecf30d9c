// JSONL preference pairs -> token ids (see include/treg/data.h for the layout).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "treg/data.h"
#include "treg/error.h"
#include "treg/io.h"

namespace treg {
namespace {

using nlohmann::json;

// A row-level problem; the caller adds file and line.
struct RowError {
  std::string reason;
};
[[noreturn]] void bad(const std::string& reason) { throw RowError{reason}; }

bool is_blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

std::vector<Message> parse_messages(const json& v, const std::string& field) {
  std::vector<Message> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const json& m = v[i];
    std::string at = "'" + field + "'[" + std::to_string(i) + "]";
    if (!m.is_object()) bad(at + " must be a message object {\"role\": ..., \"content\": ...}");
    if (!m.contains("role") || !m["role"].is_string()) bad(at + " has no string 'role'");
    if (!m.contains("content") || !m["content"].is_string()) bad(at + " has no string 'content'");
    std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant")
      bad("wrong role '" + role + "' in " + at + " (expected system, user or assistant)");
    out.push_back({role, m["content"].get<std::string>()});
  }
  return out;
}

// The answer of `field` (a string, or a message list ending in the assistant's answer); `context`
// gets the messages before it when the field is a list.
std::string parse_answer(const json& row, const std::string& field, std::vector<Message>* context) {
  if (!row.contains(field)) bad("missing field '" + field + "'");
  const json& v = row[field];
  std::string answer;
  if (v.is_string()) {
    answer = v.get<std::string>();
  } else if (v.is_array()) {
    if (v.empty()) bad("field '" + field + "' is an empty message list");
    std::vector<Message> msgs = parse_messages(v, field);
    if (msgs.back().role != "assistant")
      bad("wrong roles: the last message of '" + field + "' must be the assistant's answer, got '" +
          msgs.back().role + "'");
    answer = msgs.back().content;
    msgs.pop_back();
    if (context) *context = std::move(msgs);
  } else {
    bad("field '" + field + "' must be a string or a list of messages, got " + v.type_name());
  }
  if (is_blank(answer)) bad("empty " + field + " answer");
  return answer;
}

// system? then user, assistant, user, ... ending with user.
void check_prompt_roles(const std::vector<Message>& prompt) {
  if (prompt.empty()) bad("the prompt has no messages");
  size_t i = prompt[0].role == "system" ? 1 : 0;
  if (i == prompt.size()) bad("wrong roles: the prompt has only a system message");
  for (size_t k = i; k < prompt.size(); ++k) {
    const char* want = (k - i) % 2 == 0 ? "user" : "assistant";
    if (prompt[k].role != want)
      bad("wrong roles: prompt message " + std::to_string(k) + " should be '" + want + "', got '" +
          prompt[k].role + "'");
  }
  if (prompt.back().role != "user")
    bad("wrong roles: the prompt must end with a user message, got '" + prompt.back().role + "'");
  if (is_blank(prompt.back().content)) bad("empty prompt (the last user message is blank)");
}

RawPair parse_row(const std::string& text, int64_t line) {
  json row;
  try {
    row = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
    bad(std::string("invalid JSON: ") + e.what());
  }
  if (!row.is_object()) bad(std::string("a row must be a JSON object, got ") + row.type_name());
  RawPair out;
  out.line = line;
  std::vector<Message> chosen_ctx, rejected_ctx;
  out.chosen = parse_answer(row, "chosen", &chosen_ctx);
  out.rejected = parse_answer(row, "rejected", &rejected_ctx);
  if (row.contains("prompt") && !row["prompt"].is_null()) {
    const json& p = row["prompt"];
    if (p.is_string()) {
      out.prompt = {{"user", p.get<std::string>()}};
    } else if (p.is_array()) {
      out.prompt = parse_messages(p, "prompt");
    } else {
      bad(std::string("field 'prompt' must be a string or a list of messages, got ") +
          p.type_name());
    }
  } else {
    if (!row["chosen"].is_array())
      bad("missing field 'prompt' (and 'chosen' is not a message list)");
    out.prompt = chosen_ctx;
    if (rejected_ctx.size() != chosen_ctx.size() ||
        !std::equal(chosen_ctx.begin(), chosen_ctx.end(), rejected_ctx.begin(),
                    [](const Message& a, const Message& b) {
                      return a.role == b.role && a.content == b.content;
                    }))
      bad("without a 'prompt' field, 'chosen' and 'rejected' must share the messages before the "
          "answer");
  }
  check_prompt_roles(out.prompt);
  if (out.chosen == out.rejected) bad("chosen and rejected answers are identical");
  return out;
}

// An SFT row as a pair whose chosen and rejected are both the completion (tokenize_pair then lays
// it out as every other stage sees a response).
RawPair parse_sft_row(const std::string& text, int64_t line) {
  json row;
  try {
    row = json::parse(text);
  } catch (const json::exception& e) {
    bad(std::string("invalid JSON: ") + e.what());
  }
  if (!row.is_object()) bad(std::string("a row must be a JSON object, got ") + row.type_name());
  RawPair out;
  out.line = line;
  if (row.contains("messages") && !row.contains("completion")) {
    // Conversational: the last assistant turn is the completion, the turns before it the prompt.
    std::vector<Message> context;
    out.chosen = parse_answer(row, "messages", &context);
    out.prompt = std::move(context);
  } else {
    if (!row.contains("completion"))
      bad("missing field 'completion' (an SFT row is {\"prompt\", \"completion\"} or "
          "{\"messages\"})");
    std::vector<Message> context;
    out.chosen = parse_answer(row, "completion", &context);
    if (row.contains("prompt") && !row["prompt"].is_null()) {
      const json& p = row["prompt"];
      if (p.is_string())
        out.prompt = {{"user", p.get<std::string>()}};
      else if (p.is_array())
        out.prompt = parse_messages(p, "prompt");
      else
        bad(std::string("field 'prompt' must be a string or a list of messages, got ") +
            p.type_name());
    } else {
      out.prompt = std::move(context);
    }
  }
  check_prompt_roles(out.prompt);
  out.rejected = out.chosen;
  return out;
}

std::string where(const std::string& file, int64_t line) {
  return file + ":" + std::to_string(line);
}

const char* kBadRowHint =
    "fix the row, or set `skip_bad_rows: true` to skip bad rows (they are then counted and listed "
    "in <output_dir>/bad_rows.<split>.jsonl)";

}  // namespace

std::string DataStats::summary() const {
  std::ostringstream s;
  s << rows << " rows -> " << kept << " pairs; bad rows skipped " << bad_rows
    << ", prompts truncated " << prompts_truncated << ", chosen cut " << chosen_truncated
    << ", rejected cut " << rejected_truncated << ", dropped (empty after truncation) "
    << dropped_empty << ", boundary merges " << boundary_merges << "; tokens: prompt "
    << prompt_tokens << ", responses " << response_tokens;
  return s.str();
}

RawPair parse_pair_line(const std::string& text, const std::string& file, int64_t line) {
  try {
    return parse_row(text, line);
  } catch (const RowError& e) {
    fail(where(file, line), e.reason, kBadRowHint);
  }
}

int64_t end_of_turn_id(const Tokenizer& tok, const ChatTemplate& chat) {
  const std::string& eot = chat.end_of_turn();
  if (eot.empty())
    fail(chat.origin(),
         "the chat template has no end-of-turn marker: no special token follows the assistant's "
         "answer and the tokenizer has no eos_token",
         "set `chat_template:` to the model's real chat format");
  std::vector<int64_t> ids = tok.encode(eot, false);
  if (ids.size() != 1)
    fail("tokenizer",
         "the end-of-turn marker '" + eot + "' of " + chat.origin() + " is " +
             std::to_string(ids.size()) + " tokens, expected 1",
         "set `chat_template:` to the model's real chat format");
  return ids[0];
}

PairTokenization parse_pair_tokenization(const std::string& name) {
  if (name == "trl") return PairTokenization::kTrl;
  if (name == "simpo") return PairTokenization::kSimpo;
  fail("config key 'pair_tokenization'", "unknown value '" + name + "'",
       "trl (TRL's DPOTrainer) or simpo (SimPO's run_simpo.py, the T-REG paper's)");
}

namespace {

// A pair's texts the way its pipeline renders them (data.h): the prompt, and each answer's
// continuation of it.
struct PairTexts {
  std::string prompt, chosen, rejected;
  std::string header;  // kSimpo: the text every rendered answer starts with (the assistant header)
};

PairTexts render_trl(const RawPair& row, const ChatTemplate& chat) {
  PairTexts t;
  t.prompt = chat.render(row.prompt, /*add_generation_prompt=*/true);
  auto rest = [&](const std::string& answer) {
    std::vector<Message> msgs = row.prompt;
    msgs.push_back({"assistant", answer});
    std::string full = chat.render(msgs, /*add_generation_prompt=*/false);
    if (full.compare(0, t.prompt.size(), t.prompt) != 0)
      fail(chat.origin(),
           "rendering prompt+answer does not start with the rendered prompt (with generation "
           "prompt)",
           "pair_tokenization: simpo renders the answer on its own");
    return full.substr(t.prompt.size());
  };
  t.chosen = rest(row.chosen);
  t.rejected = rest(row.rejected);
  return t;
}

PairTexts render_simpo(const RawPair& row, const Tokenizer& tok, const ChatTemplate& chat) {
  std::vector<Message> prompt = row.prompt;
  // alignment-handbook's maybe_insert_system_message (run_simpo.py's auto_insert_empty_system_msg).
  if (!prompt.empty() && prompt[0].role != "system" &&
      (chat.source().find("system") != std::string::npos ||
       chat.source().find("<|im_start|>") != std::string::npos))
    prompt.insert(prompt.begin(), Message{"system", ""});
  PairTexts t;
  t.prompt = chat.render(prompt, /*add_generation_prompt=*/false);
  const std::string& bos = tok.special().bos_token;
  auto alone = [&](const std::string& answer) {
    std::string text = chat.render({{"assistant", answer}}, /*add_generation_prompt=*/false);
    if (!bos.empty() && text.compare(0, bos.size(), bos) == 0) text.erase(0, bos.size());
    return text;
  };
  t.chosen = alone(row.chosen);
  t.rejected = alone(row.rejected);
  // Two answers that differ in their first character share exactly the header.
  const std::string a = alone("a"), b = alone("b");
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  t.header = a.substr(0, n);
  return t;
}

}  // namespace

TokenizedPair tokenize_pair(const RawPair& row, const Tokenizer& tok, const ChatTemplate& chat,
                            DataStats* stats, PairTokenization how) {
  const std::string& eot = chat.end_of_turn();
  const int64_t eot_id = end_of_turn_id(tok, chat);
  const bool simpo = how == PairTokenization::kSimpo;
  const PairTexts text = simpo ? render_simpo(row, tok, chat) : render_trl(row, chat);
  std::vector<int64_t> prompt_ids = tok.encode(text.prompt, /*add_special=*/false);
  const int64_t bos = tok.special().bos_id;
  if (bos >= 0 && prompt_ids.size() >= 2 && prompt_ids[0] == bos && prompt_ids[1] == bos)
    fail("chat template", "the prompt starts with BOS twice",
         "report this: the template text carries BOS");
  std::vector<int64_t> full_c = tok.encode(text.prompt + text.chosen, /*add_special=*/false);
  std::vector<int64_t> full_r = tok.encode(text.prompt + text.rejected, /*add_special=*/false);

  // Split at the last token that lies wholly in the prompt for both answers.
  auto common = [&](const std::vector<int64_t>& full) {
    size_t k = 0;
    while (k < prompt_ids.size() && k < full.size() && prompt_ids[k] == full[k]) ++k;
    return k;
  };
  const size_t kc = common(full_c), kr = common(full_r);
  const size_t k = std::min(kc, kr);
  if (stats) stats->boundary_merges += (kc < prompt_ids.size()) + (kr < prompt_ids.size());

  TokenizedPair out;
  out.source_line = row.line;
  out.prompt = row.prompt;
  out.chosen_text = row.chosen;
  out.rejected_text = row.rejected;
  out.prompt_ids.assign(prompt_ids.begin(), prompt_ids.begin() + static_cast<std::ptrdiff_t>(k));
  out.chosen_ids.assign(full_c.begin() + static_cast<std::ptrdiff_t>(k), full_c.end());
  out.rejected_ids.assign(full_r.begin() + static_cast<std::ptrdiff_t>(k), full_r.end());
  if (simpo) {
    // The header's tokens, as they continue the prompt; a token merged across the header/answer
    // boundary counts as the answer's.
    const std::vector<int64_t> hdr = tok.encode(text.prompt + text.header, /*add_special=*/false);
    auto header_len = [&](const std::vector<int64_t>& ids) {
      size_t n = 0;
      while (k + n < hdr.size() && n < ids.size() && ids[n] == hdr[k + n]) ++n;
      return n;
    };
    out.chosen_header = header_len(out.chosen_ids);
    out.rejected_header = header_len(out.rejected_ids);
    // SimPOTrainer.tokenize_row: BOS first unless already there, EOS last unless already there.
    if (bos >= 0 && (out.prompt_ids.empty() || out.prompt_ids[0] != bos))
      out.prompt_ids.insert(out.prompt_ids.begin(), bos);
    // HF's eos_token_id: eos_token's id, which the tokenizer lists first among its eos ids.
    const SpecialTokens& sp = tok.special();
    const int64_t eos = sp.eos_token.empty() || sp.eos_ids.empty() ? -1 : sp.eos_ids.front();
    for (auto* ids : {&out.chosen_ids, &out.rejected_ids})
      if (eos >= 0 && (ids->empty() || ids->back() != eos)) ids->push_back(eos);
  }
  for (const auto* ids : {&out.chosen_ids, &out.rejected_ids})
    if (std::find(ids->begin(), ids->end(), eot_id) == ids->end() || ids->size() < 2)
      fail(chat.origin(), "the rendered answer is not closed by the end-of-turn token '" + eot +
                              "' (id " + std::to_string(eot_id) + ")");
  return out;
}

bool truncate_pair(TokenizedPair& p, int64_t bos_id, const DataOptions& opts, DataStats* stats) {
  const size_t chosen_before = p.chosen_ids.size(), rejected_before = p.rejected_ids.size();
  if (opts.max_completion_length > 0) {
    const size_t cap = static_cast<size_t>(opts.max_completion_length);
    p.chosen_ids.resize(std::min(p.chosen_ids.size(), cap));
    p.rejected_ids.resize(std::min(p.rejected_ids.size(), cap));
  }
  const int64_t longer = static_cast<int64_t>(std::max(p.chosen_ids.size(), p.rejected_ids.size()));
  if (static_cast<int64_t>(p.prompt_ids.size()) + longer > opts.max_length) {
    const int64_t P = static_cast<int64_t>(p.prompt_ids.size());
    if (P > opts.max_prompt_length) {
      // Keep the end of the prompt (the question nearest the answer), and BOS in front.
      const bool keep_bos = bos_id >= 0 && p.prompt_ids[0] == bos_id;
      const int64_t tail = opts.max_prompt_length - (keep_bos ? 1 : 0);
      std::vector<int64_t> cut;
      if (keep_bos) cut.push_back(bos_id);
      cut.insert(cut.end(), p.prompt_ids.end() - tail, p.prompt_ids.end());
      p.prompt_ids = std::move(cut);
      p.prompt_cut = true;
      if (stats) ++stats->prompts_truncated;
    }
    const size_t room =
        static_cast<size_t>(opts.max_length - static_cast<int64_t>(p.prompt_ids.size()));
    p.chosen_ids.resize(std::min(p.chosen_ids.size(), room));
    p.rejected_ids.resize(std::min(p.rejected_ids.size(), room));
  }
  p.chosen_cut = p.chosen_ids.size() < chosen_before;
  p.rejected_cut = p.rejected_ids.size() < rejected_before;
  p.chosen_header = std::min(p.chosen_header, p.chosen_ids.size());
  p.rejected_header = std::min(p.rejected_header, p.rejected_ids.size());
  if (stats) {
    stats->chosen_truncated += p.chosen_cut;
    stats->rejected_truncated += p.rejected_cut;
  }
  if (p.chosen_ids.empty() || p.rejected_ids.empty()) {
    if (stats) ++stats->dropped_empty;
    return false;
  }
  return true;
}

int64_t count_rows(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open data file");
  int64_t n = 0;
  std::string line;
  while (std::getline(in, line))
    if (!is_blank(line)) ++n;
  return n;
}

namespace {

// Reads, validates, tokenizes and truncates the rows of one JSONL file; `parse` reads one row.
PreferenceData load_rows(const std::string& path, const Tokenizer& tok, const ChatTemplate& chat,
                         const DataOptions& opts, RawPair (*parse)(const std::string&, int64_t),
                         const char* what) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open data file", "check `train_file` / `eval_file` in the config");
  PreferenceData data;
  DataStats& st = data.stats;
  std::string text;
  int64_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (is_blank(text)) continue;
    ++st.rows;
    try {
      RawPair row;
      try {
        row = parse(text, line);
      } catch (const RowError& e) {
        fail(where(path, line), e.reason, kBadRowHint);
      }
      TokenizedPair pair;
      try {
        pair = tokenize_pair(row, tok, chat, &st, opts.pair_tokenization);
      } catch (const Error& e) {
        fail(where(path, line), e.what(), kBadRowHint);
      }
      if (!truncate_pair(pair, tok.special().bos_id, opts, &st)) continue;
      st.prompt_tokens += static_cast<int64_t>(pair.prompt_ids.size());
      st.response_tokens += static_cast<int64_t>(pair.chosen_ids.size() + pair.rejected_ids.size());
      data.pairs.push_back(std::move(pair));
    } catch (const Error& e) {
      if (!opts.skip_bad_rows) throw;
      std::string msg = e.what();
      std::string prefix = where(path, line) + ": ";
      if (msg.compare(0, prefix.size(), prefix) == 0) msg = msg.substr(prefix.size());
      auto hint = msg.find("\n  HINT:");
      if (hint != std::string::npos) msg = msg.substr(0, hint);
      data.bad_rows.push_back({path, line, msg});
      ++st.bad_rows;
    }
  }
  st.kept = static_cast<int64_t>(data.pairs.size());
  if (opts.skip_bad_rows && !opts.bad_rows_report.empty()) {
    std::string report;
    for (const BadRow& b : data.bad_rows)
      // A reason may quote the row's invalid UTF-8 (the parser's "last read"): replaced, not fatal.
      report += json{{"file", b.file}, {"line", b.line}, {"reason", b.reason}}.dump(
                    -1, ' ', false, json::error_handler_t::replace) +
                "\n";
    write_file_atomic(opts.bad_rows_report, report);
    if (!data.bad_rows.empty())
      spdlog::warn("{}: skipped {} bad rows (listed in {})", path, data.bad_rows.size(),
                   opts.bad_rows_report);
  }
  if (data.pairs.empty()) fail(path, std::string("no usable ") + what + " (" + st.summary() + ")");
  return data;
}

}  // namespace

PreferenceData load_preference_data(const std::string& path, const Tokenizer& tok,
                                    const ChatTemplate& chat, const DataOptions& opts) {
  return load_rows(path, tok, chat, opts, &parse_row, "preference pairs");
}

PreferenceData load_sft_data(const std::string& path, const Tokenizer& tok,
                             const ChatTemplate& chat, const DataOptions& opts) {
  return load_rows(path, tok, chat, opts, &parse_sft_row, "SFT rows");
}

RawPair parse_sft_line(const std::string& text, const std::string& file, int64_t line) {
  try {
    return parse_sft_row(text, line);
  } catch (const RowError& e) {
    fail(where(file, line), e.reason, kBadRowHint);
  }
}

}  // namespace treg
