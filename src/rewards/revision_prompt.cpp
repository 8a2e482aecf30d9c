// The contrastive revision prompts of Figure 2 and the id contexts they become (paper §3.3).
#include <algorithm>
#include <set>

#include "treg/build_info.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/rewards.h"

namespace treg {
namespace {

// Splits a template into literal text and {name} placeholders; {{ and }} are literal braces.
// Calls on_text(text) / on_name(name, offset) in order.
template <typename OnText, typename OnName>
void scan_template(const std::string& t, OnText on_text, OnName on_name) {
  std::string lit;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '{' && i + 1 < t.size() && t[i + 1] == '{') {
      lit += '{';
      ++i;
    } else if (t[i] == '}' && i + 1 < t.size() && t[i + 1] == '}') {
      lit += '}';
      ++i;
    } else if (t[i] == '{') {
      size_t j = i + 1;
      while (j < t.size() && (std::isalnum(static_cast<unsigned char>(t[j])) || t[j] == '_')) ++j;
      if (j < t.size() && t[j] == '}' && j > i + 1) {
        on_text(lit);
        lit.clear();
        on_name(t.substr(i + 1, j - i - 1), i);
        i = j;
      } else {
        lit += t[i];
      }
    } else {
      lit += t[i];
    }
  }
  on_text(lit);
}

std::string role_label(const std::string& role) {
  if (role == "system") return "System";
  if (role == "assistant") return "Assistant";
  return "User";
}

}  // namespace

const std::vector<std::string>& revision_placeholders() {
  static const std::vector<std::string> names = {"instruction", "answer", "direction",
                                                 "detailed_description"};
  return names;
}

std::string default_revision_prompt_path() {
  return path_join(source_dir(), "configs/prompts/revision.txt");
}

void check_revision_template(const std::string& text, const std::string& where) {
  const auto& known = revision_placeholders();
  std::set<std::string> seen;
  std::vector<std::string> unknown;
  scan_template(
      text, [](const std::string&) {},
      [&](const std::string& name, size_t) {
        if (std::find(known.begin(), known.end(), name) == known.end())
          unknown.push_back("{" + name + "}");
        seen.insert(name);
      });
  std::string missing;
  for (const auto& k : known)
    if (!seen.count(k)) missing += (missing.empty() ? "{" : ", {") + k + "}";
  if (!unknown.empty()) {
    std::string list;
    for (const auto& u : unknown) list += (list.empty() ? "" : ", ") + u;
    fail(where, "revision prompt has unknown placeholder(s) " + list,
         "the placeholders are {instruction}, {answer}, {direction}, {detailed_description}; write "
         "literal braces as {{ and }}");
  }
  if (!missing.empty())
    fail(where, "revision prompt is missing placeholder(s) " + missing,
         "every one of {instruction}, {answer}, {direction}, {detailed_description} must appear "
         "(see configs/prompts/revision.txt)");
}

std::string load_revision_template(const std::string& path) {
  if (!file_exists(path))
    fail(path, "revision prompt file not found", "check `revision_prompt` in the config");
  std::string text = read_file(path);
  check_revision_template(text, path);
  return text;
}

std::string render_revision_prompt(const std::string& tmpl, const std::string& instruction,
                                   const std::string& answer, const std::string& direction,
                                   const std::string& detailed_description) {
  std::string out;
  scan_template(
      tmpl, [&](const std::string& text) { out += text; },
      [&](const std::string& name, size_t) {
        if (name == "instruction")
          out += instruction;
        else if (name == "answer")
          out += answer;
        else if (name == "direction")
          out += direction;
        else if (name == "detailed_description")
          out += detailed_description;
        else
          fail("revision prompt", "unknown placeholder {" + name + "}");
      });
  return out;
}

std::string instruction_text(const std::vector<Message>& prompt) {
  if (prompt.size() == 1 && prompt[0].role == "user") return prompt[0].content;
  std::string out;
  for (const Message& m : prompt) {
    if (!out.empty()) out += "\n\n";
    out += role_label(m.role) + ": " + m.content;
  }
  return out;
}

std::string render_assistant_prefix(const std::string& prefix, const std::string& direction) {
  std::string out;
  const std::string key = "{direction}";
  size_t i = 0;
  while (true) {
    size_t j = prefix.find(key, i);
    out += prefix.substr(i, j == std::string::npos ? std::string::npos : j - i);
    if (j == std::string::npos) break;
    out += direction;
    i = j + key.size();
  }
  return out;
}

std::vector<int64_t> revision_context_ids(const std::string& instruction, const std::string& answer,
                                          const std::string& direction, const RevisionSpec& spec,
                                          const Tokenizer& tok, const ChatTemplate& chat) {
  const std::string& desc =
      direction == "better" ? spec.better_description : spec.worse_description;
  const std::string user =
      render_revision_prompt(spec.template_text, instruction, answer, direction, desc);
  std::vector<int64_t> ids =
      tok.encode(chat.render({{"user", user}}, /*add_generation_prompt=*/true),
                 /*add_special=*/false);
  std::vector<int64_t> prefix =
      tok.encode(render_assistant_prefix(spec.assistant_prefix, direction),
                 /*add_special=*/false);
  ids.insert(ids.end(), prefix.begin(), prefix.end());
  return ids;
}

ScoreContexts build_score_contexts(const TokenizedPair& pair, bool chosen, const RevisionSpec& spec,
                                   const Tokenizer& tok, const ChatTemplate& chat) {
  const std::vector<int64_t>& full = chosen ? pair.chosen_ids : pair.rejected_ids;
  // The revision prompts quote and score the answer; a leading template header (kSimpo) is not
  // part of it.
  const size_t header = std::min(full.size(), chosen ? pair.chosen_header : pair.rejected_header);
  const std::vector<int64_t> response(full.begin() + static_cast<std::ptrdiff_t>(header), full.end());
  // An uncut row is quoted as written (decoding ids would not give back the data's text exactly).
  const std::string answer = (chosen ? pair.chosen_cut : pair.rejected_cut)
                                 ? tok.decode(response, /*skip_special=*/true)
                                 : (chosen ? pair.chosen_text : pair.rejected_text);
  std::string instruction = instruction_text(pair.prompt);
  if (pair.prompt_cut) {
    const std::vector<int64_t> ids = tok.encode(instruction, /*add_special=*/false);
    const size_t keep = std::min(ids.size(), pair.prompt_ids.size());
    instruction =
        tok.decode(std::vector<int64_t>(ids.end() - static_cast<std::ptrdiff_t>(keep), ids.end()),
                   /*skip_special=*/true);
  }
  ScoreContexts c;
  c.header = static_cast<int64_t>(header);
  auto with_response = [&](std::vector<int64_t> ctx, int64_t* start) {
    *start = static_cast<int64_t>(ctx.size());
    ctx.insert(ctx.end(), response.begin(), response.end());
    return ctx;
  };
  c.plain = pair.prompt_ids;
  c.plain_start = static_cast<int64_t>(c.plain.size());
  c.plain.insert(c.plain.end(), full.begin(), full.end());
  c.better = with_response(revision_context_ids(instruction, answer, "better", spec, tok, chat),
                           &c.better_start);
  c.worse = with_response(revision_context_ids(instruction, answer, "worse", spec, tok, chat),
                          &c.worse_start);
  return c;
}

}  // namespace treg
