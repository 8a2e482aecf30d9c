// Memory per GPU by part. Sizes: P parameters, W ranks, D hidden, H/K query/key-value heads, E head
// dim, F MLP width, V vocabulary, T tokens of a row.
#include "treg/memory_plan.h"

#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "model/layers.h"
#include "treg/error.h"

namespace treg {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// Bytes per element of x^2 that an RMSNorm keeps: LibTorch 1.13's mean() keeps its input for the
// backward, 2.x's only the sizes (measured by the counting-allocator test on both).
#if TORCH_VERSION_MAJOR >= 2
constexpr double kSquareKept = 0;
#else
constexpr double kSquareKept = 4;
#endif

// Keys per query whose scores the reference attention keeps, averaged over a row: it runs in
// blocks of queries, each against the keys from the first one any of them sees (0, or the sliding
// window's start) up to its own last column on the CPU (layers.cpp, attention_reference), and
// against all T keys on CUDA.
double reference_keys_per_query(const ModelArgs& a, int64_t batch_rows, int64_t T, bool cpu,
                                int64_t window) {
  const int64_t rows = model::reference_attention_block_rows(batch_rows * a.num_heads * T, T, cpu);
  if (rows >= T || !cpu) return static_cast<double>(T);
  double kept = 0;
  for (int64_t r = 0; r < T; r += rows) {
    const int64_t n = std::min(rows, T - r);
    const int64_t lo = window > 0 ? std::max<int64_t>(0, r - window + 1) : 0;
    kept += static_cast<double>(n) * static_cast<double>(r + n - lo);
  }
  return kept / static_cast<double>(T);
}

std::string billions(double n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, n >= 1e9 ? "%.2fB" : "%.1fM", n >= 1e9 ? n / 1e9 : n / 1e6);
  return buf;
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", bytes / kGiB);
  return buf;
}

}  // namespace

ParameterCounts parameter_counts(const ModelArgs& a) {
  ParameterCounts c;
  const int64_t D = a.hidden_size, E = a.head_dim, H = a.num_heads, K = a.num_kv_heads;
  const int64_t F = a.intermediate_size;
  c.embedding = a.vocab_size * D;
  c.lm_head = a.tie_embeddings ? 0 : a.vocab_size * D;
  for (const Projection& p : layer_projections(a)) c.projections += p.in * p.out;
  int64_t layer = c.projections;
  if (a.qkv_bias) layer += (H + 2 * K) * E;
  if (a.o_bias) layer += D;
  if (a.mlp_bias) layer += 2 * F + D;
  if (a.qk_norm) layer += 2 * E;
  layer += (a.post_norms ? 4 : 2) * D;
  c.per_layer = layer;
  c.total = c.embedding + c.lm_head + a.num_layers * layer + D;  // + the final norm
  c.largest = c.embedding;
  for (const Projection& p : layer_projections(a)) c.largest = std::max(c.largest, p.in * p.out);
  return c;
}

int64_t lora_parameter_count(const ModelArgs& a, int64_t r,
                             const std::vector<std::string>& target_modules) {
  const std::vector<std::string> names = lora_target_names(a, target_modules);
  int64_t per_layer = 0;
  for (const Projection& p : layer_projections(a))
    if (std::find(names.begin(), names.end(), p.name) != names.end()) per_layer += r * (p.in + p.out);
  return per_layer * a.num_layers;
}

namespace {
// The final norm per token: its input, (x^2,) the normalised x and the hidden states it returns.
double final_norm_bytes(const ModelArgs& a) {
  return static_cast<double>(a.hidden_size) * (12 + kSquareKept);
}
}  // namespace

// What autograd keeps for the backward, per token and layer (layers.cpp, op by op; the fp32
// case is checked against a counting allocator in tests/memory_plan_test.cpp).
//   residual stream: the layer input x and h = x + attn, fp32                       2D x 4
//   RMSNorm: x^2 (LibTorch 1.13's mean() keeps its input), the normalised x before the weight
//   (fp32 for Gemma's offset form, a bf16 copy under autocast for Llama's), and in fp32 its
//   output, which the next linear keeps; Gemma-2's post-norms also keep an fp32 copy of their
//   (bf16) input
//   under autocast each linear casts its fp32 input to bf16 anew: q/k/v (3, or 1 fused) and
//   gate/up (2, or 1 fused) keep a copy each; in fp32 they share the norm's output
//   attention: q and k after RoPE, v (repeated to H heads for GQA), the output copy fed to
//   o_proj; the fused kernel also keeps its output and a logsumexp per head; the reference one
//   its softmax (fp32, plus a bf16 copy under autocast), under autocast or softcapped its mask
//   (1 B per key; else the mask is a bias added in the forward) and, softcapped, the tanh, over
//   the keys each query block reads
//   Qwen3/Gemma-3 q/k norms: as RMSNorm, per head
//   MLP: the activation's input, its output, up, and the product fed to down_proj      4F
double activation_bytes_per_token(const ModelArgs& a, bool autocast, bool fused_attention,
                                  bool cpu, int64_t batch_rows, int64_t row_tokens) {
  const double D = static_cast<double>(a.hidden_size), F = static_cast<double>(a.intermediate_size);
  const double HE = static_cast<double>(a.num_heads * a.head_dim);
  const double KE = static_cast<double>(a.num_kv_heads * a.head_dim);
  const double H = static_cast<double>(a.num_heads);
  const double s = autocast ? 2 : 4;  // bytes of what the linears output
  const bool gemma_norm = a.norm_offset != 0.0;
  // Bytes per element an RMSNorm keeps besides its input: x^2, the normalised x, and in fp32 the
  // output (a separate tensor the next op keeps).
  const double norm = kSquareKept + (gemma_norm || !autocast ? 4 : 2) + (autocast ? 0 : 4);
  double b = 2 * D * 4;  // x, h
  b += 2 * D * norm;     // input norm, pre-MLP norm
  if (autocast) b += ((a.fused_qkv ? 1 : 3) + (a.fused_gate_up ? 1 : 2)) * D * 2;
  if (a.post_norms) b += 2 * D * (8 + kSquareKept);  // input copy, normalised (and x^2): fp32
  b += 4 * HE * s;                    // q, k, v (H heads), o_proj input
  // q/k norms run on the projections' output (bf16 under autocast): an fp32 copy of it there.
  if (a.qk_norm) b += (HE + KE) * (kSquareKept + (autocast ? 4 + (gemma_norm ? 4 : 2) : 8));
  b += 4 * F * s;
  b *= static_cast<double>(a.num_layers);
  for (int64_t layer = 0; layer < a.num_layers; ++layer) {
    if (fused_attention) {
      b += HE * s + H * 4;
    } else {
      const double keys = reference_keys_per_query(
          a, batch_rows, row_tokens, cpu, a.uses_sliding_window(layer) ? a.sliding_window : 0);
      const double mask =
          model::reference_attention_mask_is_bias(a.attn_softcap, autocast, /*fp32 weights*/ true)
              ? 0
              : 1;
      b += keys * (mask + H * (4 + (autocast ? 2 : 0) + (a.attn_softcap > 0 ? s : 0)));
    }
  }
  return b + final_norm_bytes(a);
}

double checkpointed_bytes_per_token(const ModelArgs& a, int64_t row_tokens) {
  // Each layer's fp32 input; the final norm as above; the attention masks [B, 1, T, T] (bool), one
  // more for sliding-window layers, which the checkpointed layers keep for their recompute.
  bool sliding = false;
  for (int64_t layer = 0; layer < a.num_layers; ++layer) sliding |= a.uses_sliding_window(layer);
  const double D = static_cast<double>(a.hidden_size);
  return static_cast<double>(a.num_layers) * D * 4 + final_norm_bytes(a) +
         static_cast<double>(row_tokens) * (sliding ? 2 : 1);
}

MemoryPlan plan_memory(const ModelArgs& a, const Config& c, const PlanSetup& setup) {
  TREG_CHECK(setup.world_size >= 1, "--world-size", "must be at least 1");
  TREG_CHECK(setup.zero_stage >= 0 && setup.zero_stage <= 3, "--zero",
             "must be 0, 1, 2 or 3, not " + std::to_string(setup.zero_stage));
  TREG_CHECK(setup.gpu_memory_gib > 0, "--gpu-memory", "must be positive");
  TREG_CHECK(setup.device == "cuda" || setup.device == "cpu", "--device", "must be cuda or cpu");
  MemoryPlan m;
  m.params = parameter_counts(a);
  const double P = static_cast<double>(m.params.total), W = static_cast<double>(setup.world_size);
  const std::string Ps = billions(P), Ws = std::to_string(setup.world_size);
  const bool lora = setup.lora_r > 0;
  const bool bf16 = c.bf16 && setup.device == "cuda";
  const double wbytes = bf16 ? 2 : 4;
  auto add = [&m](std::string name, double bytes, std::string how) {
    m.parts.push_back({std::move(name), bytes, std::move(how)});
  };
  if (lora) {
    const double A = static_cast<double>(lora_parameter_count(a, setup.lora_r, setup.lora_target_modules));
    m.trainable = static_cast<int64_t>(A);
    // load_policy stores the layers' projections in bf16 when bf16 autocasts; embeddings, norms
    // and lm_head stay fp32.
    const double proj = static_cast<double>(m.params.projections * a.num_layers);
    const double pb = c.bf16 ? 2 : 4;
    add(c.bf16 ? "base weights (projections bf16, rest fp32; frozen)" : "base weights (fp32, frozen)",
        pb * proj + 4 * (P - proj),
        std::to_string(static_cast<int>(pb)) + " B x " + billions(proj) + " + 4 B x " +
            billions(P - proj));
    add("LoRA adapters: weights, grads, AdamW (fp32)", 16 * A, "16 B x " + billions(A) + " (r " +
                                                                   std::to_string(setup.lora_r) + ")");
  } else if (setup.zero_stage <= 2) {
    // What `treg train` builds (zero.h): fp32 weights on every rank under autocast; ZeRO-1 shards
    // the moments, ZeRO-2 the gradients too, and under bf16 keeps the layers' projections as bf16
    // replicas with their fp32 masters sharded. Whole tensors are dealt out, so a share is P / W
    // to within one bucket.
    m.trainable = m.params.total;
    const bool replicas = setup.zero_stage == 2 && c.bf16 && setup.world_size > 1;
    const double proj = static_cast<double>(m.params.projections * a.num_layers);
    if (replicas) {
      add("weights (projections bf16, rest fp32; replicated)", 2 * proj + 4 * (P - proj),
          "2 B x " + billions(proj) + " + 4 B x " + billions(P - proj));
      add("fp32 master weights of the projections (share)", 4 * proj / W,
          "4 B x " + billions(proj) + " / " + Ws);
    } else {
      add("weights (fp32, replicated)", 4 * P, "4 B x " + Ps);
    }
    if (setup.zero_stage < 2) {
      add("gradients (fp32)", 4 * P, "4 B x " + Ps);
    } else {
      // A gradient leaves for its owner with its bucket: a rank holds its share, the largest
      // tensor's gradient and two buckets in flight.
      const double largest = static_cast<double>(m.params.largest);
      const double buckets = 2.0 * static_cast<double>(c.ddp_bucket_cap_mb) * (1 << 20);
      add("gradients (fp32, this rank's share + in flight)", 4 * P / W + 4 * largest + buckets,
          "4 B x " + Ps + " / " + Ws + " + largest tensor + 2 x " +
              std::to_string(c.ddp_bucket_cap_mb) + " MiB buckets");
    }
    if (setup.zero_stage == 0)
      add("AdamW moments (fp32)", 8 * P, "8 B x " + Ps);
    else
      add("AdamW moments (fp32, this rank's share)", 8 * P / W, "8 B x " + Ps + " / " + Ws);
    // Autocast keeps a bf16 copy of each fp32 weight it casts; with replicas only lm_head's.
    const double head = static_cast<double>(a.vocab_size * a.hidden_size);
    if (bf16 && replicas)
      add("bf16 copy of lm_head (autocast cache)", 2 * head, "2 B x " + billions(head));
    else if (bf16)
      add("bf16 weight copies (autocast cache)", 2 * P, "2 B x " + Ps);
  } else {
    // ZeRO-3 (planned, not built): bf16 weights sharded and gathered a layer at a time, fp32
    // master weights and moments sharded.
    m.trainable = m.params.total;
    const double largest = static_cast<double>(m.params.largest);
    const double gathered = 2 * static_cast<double>(m.params.per_layer) + largest;
    add(std::string("weights (") + (bf16 ? "bf16" : "fp32") + " shard + gathered)",
        wbytes * (P / W + gathered),
        std::to_string(static_cast<int>(wbytes)) + " B x (" + Ps + " / " + Ws +
            " + 2 layers + embedding)");
    const double buckets = 2 * 25e6 * wbytes;
    add("gradients (fp32 shard + in flight)", 4 * P / W + wbytes * largest + buckets,
        "4 B x " + Ps + " / " + Ws + " + largest tensor + 2 buckets");
    if (bf16) {
      add("master weights + AdamW moments (fp32, sharded)", 12 * P / W, "12 B x " + Ps + " / " + Ws);
    } else {
      add("AdamW moments (fp32, sharded)", 8 * P / W, "8 B x " + Ps + " / " + Ws);
    }
  }
  // Activations: one micro-batch, chosen and rejected padded to max_length.
  const int64_t rows = 2 * c.per_device_train_batch_size, T = c.max_length;
  m.tokens = rows * T;
  const double tokens = static_cast<double>(m.tokens), L = static_cast<double>(a.num_layers);
  const bool fused = setup.device == "cuda" && a.attn_softcap == 0.0;
  const double full =
      activation_bytes_per_token(a, bf16, fused, setup.device == "cpu", rows, T) * tokens;
  m.activations_full = full;
  // Checkpointed: what the forward keeps, plus one layer at a time recomputed in the backward.
  const double final_norm = final_norm_bytes(a) * tokens;
  m.activations_checkpointed =
      checkpointed_bytes_per_token(a, T) * tokens + (full - final_norm) / L;
  const std::string per_token = " x " + std::to_string(m.tokens) + " tokens";
  if (c.gradient_checkpointing) {
    add("activations (gradient checkpointing)", m.activations_checkpointed,
        "layer inputs 4 B x D x L" + per_token + " + one layer recomputed");
  } else {
    add("activations (no checkpointing)", m.activations_full,
        gib(full / tokens * 1024) + " GiB per 1k tokens" + per_token);
  }
  // Log-probs, per chunk of 1024 positions: fp32 logits, their log-softmax and, in the backward,
  // the recomputed logits' gradient.
  const double V = static_cast<double>(a.vocab_size);
  const double chunk = static_cast<double>(std::min<int64_t>(1024, m.tokens));
  add("log-prob chunk", 3 * 4 * chunk * V, "3 x 4 B x 1024 x V");
  double tensors = 0;
  for (const auto& p : m.parts) tensors += p.bytes;
  if (setup.device == "cuda") {
    const double reserve = (setup.world_size > 1 ? 3.0 : 1.5) * kGiB + 0.05 * tensors;
    add("CUDA context, workspaces, allocator slack", reserve,
        std::string(setup.world_size > 1 ? "3 GiB (NCCL buffers)" : "1.5 GiB") + " + 5%");
  }
  for (const auto& p : m.parts) m.total += p.bytes;
  m.capacity = setup.gpu_memory_gib * kGiB;
  m.fits = m.total <= m.capacity;
  return m;
}

std::string format_plan(const MemoryPlan& m, const ModelArgs& a, const Config& c,
                        const PlanSetup& s) {
  std::string out;
  char line[512];
  const std::string layout = s.lora_r > 0 ? "LoRA r " + std::to_string(s.lora_r)
                             : s.zero_stage == 0 ? "every rank holds everything"
                                                 : "ZeRO-" + std::to_string(s.zero_stage);
  std::snprintf(line, sizeof line,
                "model: %s, %s parameters (%lld layers, hidden %lld, vocab %lld); trainable %s\n",
                a.model_type.c_str(), billions(static_cast<double>(m.params.total)).c_str(),
                static_cast<long long>(a.num_layers), static_cast<long long>(a.hidden_size),
                static_cast<long long>(a.vocab_size),
                billions(static_cast<double>(m.trainable)).c_str());
  out += line;
  std::snprintf(line, sizeof line,
                "run: %lld %s of %.1f GiB, %s, %s, micro-batch %lld pairs = %lld tokens "
                "(every sequence at max_length %lld)\n\n",
                static_cast<long long>(s.world_size), s.device != "cuda" ? "CPU(s)" : s.world_size > 1 ? "GPUs" : "GPU",
                s.gpu_memory_gib, layout.c_str(), c.bf16 && s.device == "cuda" ? "bf16" : "fp32",
                static_cast<long long>(c.per_device_train_batch_size),
                static_cast<long long>(m.tokens), static_cast<long long>(c.max_length));
  out += line;
  std::snprintf(line, sizeof line, "  %-48s %9s  %s\n", "per GPU", "GiB", "arithmetic");
  out += line;
  for (const auto& p : m.parts) {
    std::snprintf(line, sizeof line, "  %-48s %9s  %s\n", p.name.c_str(), gib(p.bytes).c_str(),
                  p.how.c_str());
    out += line;
  }
  std::snprintf(line, sizeof line, "  %-48s %9s  of %.1f GiB: %s\n", "total", gib(m.total).c_str(),
                s.gpu_memory_gib, m.fits ? "FITS" : "DOES NOT FIT");
  out += line;
  const double other = c.gradient_checkpointing ? m.activations_full : m.activations_checkpointed;
  const double current = c.gradient_checkpointing ? m.activations_checkpointed : m.activations_full;
  std::snprintf(line, sizeof line, "  (activations %s gradient checkpointing: %s GiB, total %s GiB)\n",
                c.gradient_checkpointing ? "without" : "with", gib(other).c_str(),
                gib(m.total - current + other).c_str());
  out += line;
  if (s.zero_stage > 2)
    out += "\nnote: `treg train` builds zero_stage 1 and 2; this plans the ZeRO-3 layout ahead "
           "of it.\n";
  if (!m.fits) {
    out += "\nTo fit: ";
    std::vector<std::string> tips;
    if (!c.gradient_checkpointing) tips.push_back("gradient_checkpointing: true");
    if (c.per_device_train_batch_size > 1)
      tips.push_back("a smaller per_device_train_batch_size (raise gradient_accumulation_steps)");
    if (s.lora_r == 0 && s.zero_stage < 3) tips.push_back("--zero " + std::to_string(s.zero_stage < 2 ? 2 : 3) + " over more GPUs");
    if (s.lora_r == 0) tips.push_back("LoRA (--lora-r 16)");
    for (size_t i = 0; i < tips.size(); ++i) out += (i ? "; " : "") + tips[i];
    out += "\n";
  }
  return out;
}

}  // namespace treg
