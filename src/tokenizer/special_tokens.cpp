#include "tokenizer/special_tokens.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "treg/error.h"
#include "treg/io.h"

namespace treg {
namespace {

using nlohmann::json;

json read_json_if_present(const std::string& path) {
  if (!file_exists(path)) return json::object();
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail(path, std::string("invalid JSON: ") + e.what());
  }
}

// A token is written as "<s>", as {"content": "<s>", ...} (an AddedToken) or as null.
std::string token_text(const json& config, const char* key) {
  if (!config.contains(key)) return "";
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v["content"].get<std::string>();
  return "";
}

std::vector<int64_t> ids_of(const json& v) {
  if (v.is_number_integer()) return {v.get<int64_t>()};
  if (v.is_array()) return v.get<std::vector<int64_t>>();
  return {};
}

}  // namespace

TokenizerConfig read_tokenizer_config(
    const std::string& dir, const std::function<int64_t(const std::string&)>& piece_to_id) {
  const std::string config_path = path_join(dir, "tokenizer_config.json");
  const std::string map_path = path_join(dir, "special_tokens_map.json");
  const std::string gen_path = path_join(dir, "generation_config.json");
  json config = read_json_if_present(config_path);
  json map = read_json_if_present(map_path);
  json gen = read_json_if_present(gen_path);

  TokenizerConfig out;
  SpecialTokens& s = out.special;
  auto resolve = [&](const char* key, std::string* text, int64_t* id) {
    std::string where = config_path;
    *text = token_text(config, key);
    if (text->empty()) {
      *text = token_text(map, key);
      where = map_path;
    }
    if (text->empty()) return;
    *id = piece_to_id(*text);
    if (*id < 0)
      fail(where, std::string("`") + key + "` is '" + *text + "', which is not in the vocabulary",
           "check that the tokenizer files belong to the same model");
  };
  int64_t eos_id = -1;
  resolve("bos_token", &s.bos_token, &s.bos_id);
  resolve("eos_token", &s.eos_token, &eos_id);
  resolve("pad_token", &s.pad_token, &s.pad_id);
  if (eos_id >= 0) s.eos_ids.push_back(eos_id);
  // generation_config.json lists every id that ends generation (Llama-3: <|end_of_text|>,
  // <|eot_id|>).
  if (gen.contains("eos_token_id"))
    for (int64_t id : ids_of(gen["eos_token_id"]))
      if (std::find(s.eos_ids.begin(), s.eos_ids.end(), id) == s.eos_ids.end())
        s.eos_ids.push_back(id);
  if (s.bos_id < 0 && gen.contains("bos_token_id") && gen["bos_token_id"].is_number_integer())
    s.bos_id = gen["bos_token_id"].get<int64_t>();
  if (s.pad_id < 0 && gen.contains("pad_token_id") && gen["pad_token_id"].is_number_integer())
    s.pad_id = gen["pad_token_id"].get<int64_t>();

  if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean())
    out.add_bos = config["add_bos_token"].get<bool>();
  if (config.contains("add_eos_token") && config["add_eos_token"].is_boolean())
    out.add_eos = config["add_eos_token"].get<bool>();

  s.unk_token = token_text(config, "unk_token");
  if (s.unk_token.empty()) s.unk_token = token_text(map, "unk_token");

  // transformers (>= 4.50) saves the template as chat_template.jinja; when present it wins.
  const std::string jinja_path = path_join(dir, "chat_template.jinja");
  out.chat_template_origin = dir;
  if (file_exists(jinja_path)) {
    out.chat_template = read_file(jinja_path);
    out.chat_template_origin = jinja_path;
  } else if (config.contains("chat_template")) {
    const json& t = config["chat_template"];
    if (t.is_string()) {
      out.chat_template = t.get<std::string>();
      out.chat_template_origin = config_path + ": chat_template";
    } else if (t.is_array()) {  // [{"name": "default", "template": ...}, ...]
      for (const auto& e : t)
        if (e.is_object() && e.value("name", "") == "default") {
          out.chat_template = e.value("template", "");
          out.chat_template_origin = config_path + ": chat_template[name=default]";
        }
    }
  }
  if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
    for (const auto& [id, tok] : config["added_tokens_decoder"].items()) {
      AddedToken a;
      a.id = std::stoll(id);
      a.content = tok.value("content", "");
      a.special = tok.value("special", false);
      a.lstrip = tok.value("lstrip", false);
      a.rstrip = tok.value("rstrip", false);
      a.single_word = tok.value("single_word", false);
      a.normalized = tok.value("normalized", false);
      out.added.push_back(a);
    }
  }
  return out;
}

std::string tokenizer_fingerprint(const std::string& dir, const std::string& model_file) {
  std::string summary;
  for (const std::string& path :
       {model_file, path_join(dir, "tokenizer_config.json"),
        path_join(dir, "special_tokens_map.json"), path_join(dir, "generation_config.json"),
        path_join(dir, "chat_template.jinja")}) {
    if (!file_exists(path)) continue;
    summary += path.substr(path.find_last_of('/') + 1) + " " + sha256_file(path) + "\n";
  }
  return sha256_hex(summary);
}

}  // namespace treg
