// config.json -> ModelArgs. The ONLY place `model_type` is read: everything below the decoder sees
// fields (embed_scale, norm_offset, post_norms, softcaps, qkv_bias, sliding_window, ...).
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "treg/error.h"
#include "treg/io.h"
#include "treg/model.h"

namespace treg {

namespace {

using nlohmann::json;

// Typed access to config.json keys with the HF config class defaults; errors name the key.
class ConfigReader {
 public:
  ConfigReader(const json& c, std::string where) : c_(c), where_(std::move(where)) {}

  bool has(const std::string& key) const { return c_.contains(key) && !c_[key].is_null(); }

  int64_t require_int(const std::string& key) const {
    if (!has(key)) fail(where_, "missing required key '" + key + "'");
    return as_int(key);
  }
  int64_t get_int(const std::string& key, int64_t fallback) const {
    return has(key) ? as_int(key) : fallback;
  }
  double get_double(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    if (!c_[key].is_number()) fail(where_, "'" + key + "' must be a number, got " + c_[key].dump());
    return c_[key].get<double>();
  }
  bool get_bool(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!c_[key].is_boolean())
      fail(where_, "'" + key + "' must be true or false, got " + c_[key].dump());
    return c_[key].get<bool>();
  }
  std::string get_string(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!c_[key].is_string()) fail(where_, "'" + key + "' must be a string, got " + c_[key].dump());
    return c_[key].get<std::string>();
  }
  const json& at(const std::string& key) const { return c_[key]; }
  const std::string& where() const { return where_; }

 private:
  int64_t as_int(const std::string& key) const {
    const json& v = c_[key];
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>())
      return static_cast<int64_t>(v.get<double>());
    fail(where_, "'" + key + "' must be an integer, got " + v.dump());
  }
  const json& c_;
  std::string where_;
};

HiddenAct parse_act(const std::string& name, const std::string& where) {
  if (name == "silu" || name == "swish") return HiddenAct::kSilu;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new" || name == "gelu_fast")
    return HiddenAct::kGeluTanh;
  if (name == "gelu") return HiddenAct::kGeluErf;
  fail(where, "unsupported hidden activation '" + name + "'",
       "supported: silu, gelu_pytorch_tanh, gelu_new, gelu");
}

double yarn_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

// One rope dict (transformers 4 `rope_scaling`, 5 `rope_parameters`, or one layer type's entry of
// the nested form) -> RopeParams, with transformers' defaults and derived values resolved.
// `top` is config.json itself: its `original_max_position_embeddings` (Phi-3 keeps it there) wins,
// as in transformers' standardize_rope_params.
RopeParams parse_rope(const json& s, double theta, const ModelArgs& a, const ConfigReader& top,
                      bool phi3, const std::string& where) {
  RopeParams r;
  r.theta = theta;
  if (s.is_null()) return r;
  if (!s.is_object()) fail(where, "rope parameters must be an object or null, got " + s.dump());
  ConfigReader rs(s, where);
  r.theta = rs.get_double("rope_theta", theta);
  std::string type = rs.get_string("rope_type", rs.get_string("type", "default"));
  if (phi3 && (type == "su" || type == "yarn")) type = "longrope";  // Phi-3's older spellings
  if (type == "default") return r;
  static const std::vector<std::string> known = {"linear", "llama3", "dynamic", "yarn", "longrope"};
  if (std::find(known.begin(), known.end(), type) == known.end())
    fail(where, "unsupported rope type '" + type + "'",
         "supported: default, linear, llama3, dynamic, yarn, longrope");
  r.type = type;
  r.original_max_position_embeddings =
      top.has("original_max_position_embeddings")
          ? top.get_int("original_max_position_embeddings", 0)
          : rs.get_int("original_max_position_embeddings", phi3 ? 4096 : a.max_position_embeddings);
  if (r.original_max_position_embeddings <= 0)
    fail(where, "original_max_position_embeddings must be positive");
  const bool factor_derived = type == "yarn" || type == "longrope";
  if (!rs.has("factor") && !factor_derived) fail(where, "missing 'factor' for rope type " + type);
  r.factor = rs.has("factor") ? rs.get_double("factor", 1.0)
                              : static_cast<double>(a.max_position_embeddings) /
                                    static_cast<double>(r.original_max_position_embeddings);
  if (type == "llama3") {
    for (const char* k : {"low_freq_factor", "high_freq_factor"})
      if (!rs.has(k)) fail(where, std::string("llama3 scaling needs '") + k + "'");
    r.low_freq_factor = rs.get_double("low_freq_factor", 1.0);
    r.high_freq_factor = rs.get_double("high_freq_factor", 4.0);
    if (r.high_freq_factor == r.low_freq_factor)
      fail(where,
           "high_freq_factor equals low_freq_factor (division by zero in the smooth factor)");
  } else if (type == "yarn") {
    // Python's `x or default`: a 0 or null beta takes the default.
    r.beta_fast = rs.get_double("beta_fast", 0.0);
    if (r.beta_fast == 0.0) r.beta_fast = 32.0;
    r.beta_slow = rs.get_double("beta_slow", 0.0);
    if (r.beta_slow == 0.0) r.beta_slow = 1.0;
    r.truncate = rs.get_bool("truncate", true);
    const double mscale = rs.get_double("mscale", 0.0),
                 mscale_all = rs.get_double("mscale_all_dim", 0.0);
    r.attention_factor = rs.has("attention_factor") ? rs.get_double("attention_factor", 1.0)
                         : (mscale != 0.0 && mscale_all != 0.0)
                             ? yarn_mscale(r.factor, mscale) / yarn_mscale(r.factor, mscale_all)
                             : yarn_mscale(r.factor, 1.0);
  } else if (type == "longrope") {
    for (auto [key, out] :
         {std::pair<const char*, std::vector<double>*>{"short_factor", &r.short_factor},
          {"long_factor", &r.long_factor}}) {
      const json& f = rs.has(key) ? rs.at(key) : json();
      if (!f.is_array() || static_cast<int64_t>(f.size()) != a.rotary_dim / 2)
        fail(where, std::string("longrope needs '") + key + "': a list of rotary_dim / 2 = " +
                        std::to_string(a.rotary_dim / 2) + " numbers");
      for (const auto& x : f) {
        if (!x.is_number()) fail(where, std::string("'") + key + "' has a non-number: " + x.dump());
        out->push_back(x.get<double>());
      }
    }
    r.attention_factor =
        rs.has("attention_factor") ? rs.get_double("attention_factor", 1.0)
        : r.factor <= 1.0
            ? 1.0
            : std::sqrt(1.0 + std::log(r.factor) / std::log(static_cast<double>(
                                                       r.original_max_position_embeddings)));
  }
  return r;
}

enum class Arch { kLlama, kMistral, kQwen2, kQwen3, kGemma2, kGemma3, kPhi3 };

const std::vector<std::pair<std::string, Arch>>& arch_names() {
  static const std::vector<std::pair<std::string, Arch>> names = {
      {"llama", Arch::kLlama}, {"mistral", Arch::kMistral}, {"qwen2", Arch::kQwen2},
      {"qwen3", Arch::kQwen3}, {"gemma2", Arch::kGemma2},   {"gemma3_text", Arch::kGemma3},
      {"phi3", Arch::kPhi3}};
  return names;
}

}  // namespace

std::string supported_model_types() {
  std::string out;
  for (const auto& [name, arch] : arch_names()) out += (out.empty() ? "" : ", ") + name;
  return out;
}

ModelArgs model_args_from_json(const json& config, const std::string& where) {
  if (!config.is_object()) fail(where, "config is not a JSON object");
  ConfigReader c(config, where);
  ModelArgs a;
  a.raw = config;
  a.model_type = c.get_string("model_type", "");
  if (a.model_type == "gemma3" && c.has("text_config"))
    fail(where, "model_type 'gemma3' is the multimodal Gemma-3 checkpoint",
         "treg trains the text decoder: use a text-only checkpoint (model_type gemma3_text, e.g. "
         "google/gemma-3-1b-it, or the language model saved on its own with Gemma3ForCausalLM)");
  const auto found = std::find_if(arch_names().begin(), arch_names().end(),
                                  [&](const auto& n) { return n.first == a.model_type; });
  if (found == arch_names().end())
    fail(where, "unsupported model_type '" + a.model_type + "'",
         "supported: " + supported_model_types());
  const Arch arch = found->second;
  const bool gemma2 = arch == Arch::kGemma2, gemma3 = arch == Arch::kGemma3;
  const bool gemma = gemma2 || gemma3, phi3 = arch == Arch::kPhi3;

  a.vocab_size = c.require_int("vocab_size");
  a.hidden_size = c.require_int("hidden_size");
  a.intermediate_size = c.require_int("intermediate_size");
  a.num_layers = c.require_int("num_hidden_layers");
  a.num_heads = c.require_int("num_attention_heads");
  a.num_kv_heads = c.get_int("num_key_value_heads", a.num_heads);
  if (a.num_heads <= 0 || a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0)
    fail(where, "num_attention_heads (" + std::to_string(a.num_heads) +
                    ") must be a positive multiple of num_key_value_heads (" +
                    std::to_string(a.num_kv_heads) + ")");
  a.head_dim = c.get_int("head_dim", gemma                  ? 256
                                     : arch == Arch::kQwen3 ? 128
                                                            : a.hidden_size / a.num_heads);
  if (a.head_dim <= 0 || a.head_dim % 2 != 0)
    fail(where, "head_dim must be positive and even, got " + std::to_string(a.head_dim));
  for (auto [key, v] : {std::pair<const char*, int64_t>{"vocab_size", a.vocab_size},
                        {"hidden_size", a.hidden_size},
                        {"intermediate_size", a.intermediate_size},
                        {"num_hidden_layers", a.num_layers}})
    if (v <= 0)
      fail(where, std::string("'") + key + "' must be positive, got " + std::to_string(v));
  a.max_position_embeddings = c.get_int("max_position_embeddings", gemma2                 ? 8192
                                                                   : gemma3               ? 131072
                                                                   : arch == Arch::kLlama ? 2048
                                                                   : phi3                 ? 4096
                                                                                          : 32768);
  a.rms_norm_eps = c.get_double("rms_norm_eps", phi3 ? 1e-5 : 1e-6);

  // RoPE: rope_theta + rope_scaling (transformers 4) or rope_parameters (5), which may also be
  // nested per layer type ({"full_attention": {...}, "sliding_attention": {...}}, Gemma-3).
  const json no_rope;
  const json& rp = c.has("rope_parameters") ? c.at("rope_parameters")
                   : c.has("rope_scaling")  ? c.at("rope_scaling")
                                            : no_rope;
  double partial = c.get_double("partial_rotary_factor", 1.0);
  if (rp.is_object() && rp.contains("partial_rotary_factor") &&
      rp["partial_rotary_factor"].is_number())
    partial = rp["partial_rotary_factor"].get<double>();
  a.rotary_dim = static_cast<int64_t>(static_cast<double>(a.head_dim) * partial);
  if (a.rotary_dim <= 0 || a.rotary_dim % 2 != 0 || a.rotary_dim > a.head_dim)
    fail(where, "partial_rotary_factor " + std::to_string(partial) + " gives " +
                    std::to_string(a.rotary_dim) + " rotary dims of head_dim " +
                    std::to_string(a.head_dim) + "; expected an even number in (0, head_dim]");
  const double theta = c.get_double("rope_theta", gemma3 ? 1e6 : 10000.0);
  const bool nested =
      rp.is_object() && (rp.contains("full_attention") || rp.contains("sliding_attention"));
  if (nested) {
    a.rope = parse_rope(rp.value("full_attention", json()), theta, a, c, phi3,
                        where + ": rope_parameters.full_attention");
    a.local_rope = parse_rope(rp.value("sliding_attention", json()), theta, a, c, phi3,
                              where + ": rope_parameters.sliding_attention");
    a.has_local_rope = true;
  } else {
    a.rope =
        parse_rope(rp, theta, a, c, phi3,
                   where + (c.has("rope_parameters") ? ": rope_parameters" : ": rope_scaling"));
    if (gemma3) {
      // transformers 4: rope_scaling and rope_theta are the global layers'; local layers rotate
      // with rope_local_base_freq, unscaled.
      a.local_rope.theta = c.get_double("rope_local_base_freq", 10000.0);
      a.has_local_rope = true;
    }
  }

  // Gemma names its activation `hidden_activation` (configs carry both).
  std::string act =
      gemma ? c.get_string("hidden_activation", c.get_string("hidden_act", "gelu_pytorch_tanh"))
            : c.get_string("hidden_act", "silu");
  a.hidden_act = parse_act(act, where);

  // Qwen2: biased q/k/v, plain o. Phi-3: no biases, fused projections. Others: attention_bias.
  const bool attention_bias = phi3 ? false : c.get_bool("attention_bias", false);
  a.qkv_bias = arch == Arch::kQwen2 ? true : attention_bias;
  a.o_bias = arch == Arch::kQwen2 ? false : attention_bias;
  a.mlp_bias = arch == Arch::kLlama ? c.get_bool("mlp_bias", false) : false;
  a.qk_norm = arch == Arch::kQwen3 || gemma3;
  a.fused_qkv = a.fused_gate_up = phi3;
  a.tie_embeddings = c.get_bool("tie_word_embeddings", gemma);

  a.query_scale = 1.0 / std::sqrt(static_cast<double>(a.head_dim));
  a.layer_sliding.assign(static_cast<size_t>(a.num_layers), false);
  if (gemma) {
    if (c.get_bool("use_bidirectional_attention", false))
      fail(where, "use_bidirectional_attention is not supported (treg trains causal decoders)");
    a.embed_scale = std::sqrt(static_cast<double>(a.hidden_size));
    a.norm_offset = 1.0;
    a.post_norms = true;
    a.attn_softcap = c.get_double("attn_logit_softcapping", 0.0);
    a.final_softcap = c.get_double("final_logit_softcapping", 0.0);
    a.query_scale = 1.0 / std::sqrt(c.get_double("query_pre_attn_scalar", 256.0));
    a.sliding_window = c.has("sliding_window") ? c.get_int("sliding_window", 0) : 4096;
    // Gemma-2: even layers slide. Gemma-3: every `sliding_window_pattern`-th layer is global.
    const int64_t pattern = gemma3 ? c.get_int("sliding_window_pattern", 6) : 2;
    if (pattern <= 0) fail(where, "sliding_window_pattern must be positive");
    for (int64_t i = 0; i < a.num_layers; ++i)
      a.layer_sliding[i] = gemma3 ? (i + 1) % pattern != 0 : (i % 2) == 0;
  } else if (phi3) {
    a.sliding_window = c.get_int("sliding_window", 0);  // null: full attention
    a.layer_sliding.assign(static_cast<size_t>(a.num_layers), true);
  } else if (arch == Arch::kMistral) {
    // MistralConfig defaults to 4096; null (Mistral v0.2+) switches it off. Every layer slides.
    a.sliding_window = config.contains("sliding_window") ? c.get_int("sliding_window", 0) : 4096;
    a.layer_sliding.assign(static_cast<size_t>(a.num_layers), true);
  } else if (arch == Arch::kQwen2 || arch == Arch::kQwen3) {
    if (c.get_bool("use_sliding_window", false)) {
      a.sliding_window = c.get_int("sliding_window", 4096);
      const int64_t max_window_layers = c.get_int("max_window_layers", 28);
      for (int64_t i = 0; i < a.num_layers; ++i) a.layer_sliding[i] = i >= max_window_layers;
    }
  }
  // Newer configs state the pattern explicitly.
  if (c.has("layer_types") && c.at("layer_types").is_array()) {
    const json& lt = c.at("layer_types");
    if (static_cast<int64_t>(lt.size()) != a.num_layers)
      fail(where, "layer_types has " + std::to_string(lt.size()) +
                      " entries, expected num_hidden_layers = " + std::to_string(a.num_layers));
    for (int64_t i = 0; i < a.num_layers; ++i) {
      std::string t = lt[i].is_string() ? lt[i].get<std::string>() : "";
      if (t != "sliding_attention" && t != "full_attention")
        fail(where, "layer_types[" + std::to_string(i) + "] = " + lt[i].dump() +
                        ", expected sliding_attention or full_attention");
      a.layer_sliding[i] = t == "sliding_attention";
    }
  }
  if (a.sliding_window < 0)
    fail(where, "sliding_window must be positive, got " + std::to_string(a.sliding_window));

  a.bos_token_id = c.get_int("bos_token_id", -1);
  if (c.has("eos_token_id")) {
    const json& e = c.at("eos_token_id");
    if (e.is_array()) {
      for (const auto& x : e)
        if (x.is_number_integer()) a.eos_token_ids.push_back(x.get<int64_t>());
    } else {
      a.eos_token_ids.push_back(c.get_int("eos_token_id", -1));
    }
  }
  return a;
}

ModelArgs load_model_args(const std::string& model_dir) {
  const std::string path =
      model_dir.size() >= 5 && model_dir.substr(model_dir.size() - 5) == ".json"
          ? model_dir
          : path_join(model_dir, "config.json");
  if (!file_exists(path) && file_exists(path_join(model_dir, "adapter_config.json")))
    fail(path, "not found: " + model_dir + " holds LoRA adapters, not a model",
         "the final checkpoint of a LoRA run has the merged model in " +
             path_join(model_dir, "merged") + "; adapters load onto their base model (peft)");
  if (!file_exists(path))
    fail(path, "not found", "a model directory needs the Hugging Face config.json");
  json config;
  try {
    config = json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
  return model_args_from_json(config, path);
}

std::vector<Projection> layer_projections(const ModelArgs& a) {
  const int64_t D = a.hidden_size, q = a.num_heads * a.head_dim, kv = a.num_kv_heads * a.head_dim;
  const int64_t F = a.intermediate_size;
  std::vector<Projection> p;
  if (a.fused_qkv)
    p.push_back({"qkv_proj", D, q + 2 * kv});
  else
    p.insert(p.end(), {{"q_proj", D, q}, {"k_proj", D, kv}, {"v_proj", D, kv}});
  p.push_back({"o_proj", q, D});
  if (a.fused_gate_up)
    p.push_back({"gate_up_proj", D, 2 * F});
  else
    p.insert(p.end(), {{"gate_proj", D, F}, {"up_proj", D, F}});
  p.push_back({"down_proj", F, D});
  return p;
}

bool is_layer_projection_weight(const ModelArgs& a, const std::string& name) {
  const std::string prefix = "model.layers.", suffix = ".weight";
  if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  const std::string module = name.substr(0, name.size() - suffix.size());
  const std::string leaf = module.substr(module.rfind('.') + 1);
  for (const Projection& p : layer_projections(a))
    if (p.name == leaf) return true;
  return false;
}

}  // namespace treg
