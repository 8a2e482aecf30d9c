// Per-token log-probabilities log p(ids[t+1] | ids[..t]) without materialising [B, T, V] logits:
// the selected positions are processed in chunks, and the backward recomputes each chunk's logits.
// The same pass can sum each position's logits over the vocabulary (TRL's logits/* metrics).
#include "treg/autocast.h"
#include "treg/error.h"
#include "treg/model.h"
#include "treg/policy_logprobs.h"

namespace treg {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// fp32 for fp32/bf16/fp16 models; fp64 stays fp64 (finite-difference tests).
torch::ScalarType softmax_dtype(const torch::Tensor& t) {
  return at::promote_types(t.scalar_type(), torch::kFloat32);
}

// logits [n, V] in softmax_dtype (after the final softcap) for rows h [n, D].
torch::Tensor chunk_logits(const torch::Tensor& h, const torch::Tensor& weight, double softcap) {
  torch::Tensor logits =
      torch::nn::functional::linear(h, weight).to(softmax_dtype(weight));  // [n, V]
  if (softcap > 0) logits = torch::tanh(logits / softcap) * softcap;
  return logits;
}

struct ChunkedLogprobs : public torch::autograd::Function<ChunkedLogprobs> {
  // hidden [N, D], weight [V, D], targets [N] int64
  //   -> {logps [N], log_sq_mass [N] (or [0]), logit_sums [N] fp64 (or [0]), argmax_hits [N] fp64
  //   (or [0]); the last two not differentiable}
  static variable_list forward(AutogradContext* ctx, torch::Tensor hidden, torch::Tensor weight,
                               torch::Tensor targets, double softcap, int64_t chunk, bool with_sq,
                               bool with_sums) {
    const int64_t N = hidden.size(0);
    torch::Tensor logps = torch::empty({N}, hidden.options().dtype(softmax_dtype(weight)));
    torch::Tensor sq =
        with_sq ? torch::empty({N}, logps.options()) : torch::empty({0}, logps.options());
    // Summed in fp64: a sum over a 256k vocabulary in fp32 would lose digits of the mean.
    torch::Tensor sums = torch::empty({with_sums ? N : 0}, logps.options().dtype(torch::kFloat64));
    torch::Tensor hits = torch::empty({with_sums ? N : 0}, sums.options());
    for (int64_t s = 0; s < N; s += chunk) {
      const int64_t n = std::min(chunk, N - s);
      torch::Tensor logits = chunk_logits(hidden.narrow(0, s, n), weight, softcap);  // [n, V]
      if (with_sums) {
        sums.narrow(0, s, n).copy_(logits.sum(-1, /*keepdim=*/false, torch::kFloat64));
        hits.narrow(0, s, n).copy_(logits.argmax(-1).eq(targets.narrow(0, s, n)));
      }
      torch::Tensor lsm = torch::log_softmax(logits, -1);  // [n, V]
      logps.narrow(0, s, n).copy_(lsm.gather(1, targets.narrow(0, s, n).unsqueeze(1)).squeeze(1));
      // log sum_v p_v^2 = logsumexp_v(2 log p_v)
      if (with_sq) sq.narrow(0, s, n).copy_(torch::logsumexp(2 * lsm, -1));
    }
    ctx->mark_non_differentiable({sums, hits});
    ctx->save_for_backward({hidden, weight, targets});
    ctx->saved_data["softcap"] = softcap;
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["with_sq"] = with_sq;
    ctx->saved_data["hidden_grad"] = hidden.requires_grad();
    ctx->saved_data["weight_grad"] = weight.requires_grad();
    // The backward runs on autograd's thread, where autocast is off: it takes the forward's state,
    // so that under bf16 autocast its three [n, D] x [D, V] matmuls run in bf16 as the backward of
    // an autocast linear does (in fp32 they were most of a 1B model's step on an H200).
    const AutocastState autocast = current_autocast();
    ctx->saved_data["autocast_cuda"] = autocast.cuda;
    ctx->saved_data["autocast_cpu"] = autocast.cpu;
    return {logps, sq, sums, hits};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list saved = ctx->get_saved_variables();
    const torch::Tensor &hidden = saved[0], &weight = saved[1], &targets = saved[2];
    const double softcap = ctx->saved_data["softcap"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const bool with_sq = ctx->saved_data["with_sq"].toBool();
    const bool need_h = ctx->saved_data["hidden_grad"].toBool();
    const bool need_w = ctx->saved_data["weight_grad"].toBool();
    const torch::Tensor& g_lp = grads[0];  // [N]
    const torch::Tensor& g_sq = grads[1];  // [N] or [0]
    const int64_t N = hidden.size(0);
    const AutocastState forward_autocast{ctx->saved_data["autocast_cuda"].toBool(),
                                         ctx->saved_data["autocast_cpu"].toBool()};
    const bool autocast = hidden.is_cuda() ? forward_autocast.cuda : forward_autocast.cpu;
    AutocastGuard guard(forward_autocast);

    torch::Tensor grad_h = need_h ? torch::zeros_like(hidden) : torch::Tensor();  // [N, D]
    // With several chunks, accumulate dW in fp32 even for bf16 weights.
    const bool multi = N > chunk;
    torch::Tensor grad_w;
    if (need_w)
      grad_w = torch::zeros(weight.sizes(), weight.options().dtype(multi ? softmax_dtype(weight)
                                                                         : weight.scalar_type()));
    for (int64_t s = 0; s < N; s += chunk) {
      const int64_t n = std::min(chunk, N - s);
      torch::Tensor h = hidden.narrow(0, s, n);            // [n, D]
      torch::Tensor z = chunk_logits(h, weight, softcap);  // [n, V] fp32
      torch::Tensor p = torch::softmax(z, -1);             // [n, V]
      // d logp_target / dz = onehot(target) - p
      torch::Tensor g_lp_c = g_lp.defined() ? g_lp.narrow(0, s, n).to(z.scalar_type())
                                            : torch::zeros({n}, z.options());
      torch::Tensor gz = -p * g_lp_c.unsqueeze(1);
      gz.scatter_add_(1, targets.narrow(0, s, n).unsqueeze(1), g_lp_c.unsqueeze(1));
      if (with_sq && g_sq.defined() && g_sq.numel() == N) {
        // d log sum p^2 / dz = 2 (q - p) with q = softmax(2 z)
        torch::Tensor q = torch::softmax(2 * z, -1);
        gz += 2 * (q - p) * g_sq.narrow(0, s, n).to(z.scalar_type()).unsqueeze(1);
      }
      // softcap: z = c tanh(l / c)  =>  dz/dl = 1 - (z / c)^2
      if (softcap > 0) gz *= 1 - (z / softcap).pow(2);
      torch::Tensor gl = gz.to(weight.scalar_type());                       // [n, V]
      if (need_h) grad_h.narrow(0, s, n).copy_(torch::matmul(gl, weight));  // [n, D]
      if (need_w) {
        if (multi && autocast)
          grad_w.add_(torch::matmul(gz.t(), h));  // bf16 product, summed over chunks in fp32
        else if (multi)
          grad_w.addmm_(gz.t(), h.to(gz.scalar_type()));  // [V, D]
        else
          grad_w = torch::matmul(gl.t(), h);
      }
    }
    if (need_w) grad_w = grad_w.to(weight.scalar_type());
    return {grad_h,          grad_w,          torch::Tensor(), torch::Tensor(),
            torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

void check_chunk(int64_t chunk_tokens) {
  if (chunk_tokens <= 0)
    fail("next_token_logprobs",
         "chunk_tokens must be positive, got " + std::to_string(chunk_tokens));
}

// next_token_logprobs_from_hidden, optionally with the per-position logit sums.
PolicyTokenOutputs token_outputs(CausalLM& model, const torch::Tensor& hidden,
                                 const torch::Tensor& ids, const torch::Tensor& mask,
                                 bool with_sq_mass, bool with_logit_sums, int64_t chunk_tokens) {
  check_chunk(chunk_tokens);
  const int64_t B = ids.size(0), T = ids.size(1);
  if (hidden.dim() != 3 || hidden.size(0) != B || hidden.size(1) != T)
    fail("next_token_logprobs", "hidden shape " + c10::str(hidden.sizes()) +
                                    " does not match ids " + c10::str(ids.sizes()));
  const auto device = hidden.device();
  auto f32 = torch::TensorOptions()
                 .dtype(softmax_dtype(hidden))
                 .device(device);  // fp32 (fp64 for fp64 models)
  auto f64 = f32.dtype(torch::kFloat64);
  PolicyTokenOutputs out;
  if (T < 2) {
    out.logps = torch::zeros({B, 0}, f32);
    if (with_sq_mass) out.log_sq_mass = torch::zeros({B, 0}, f32);
    if (with_logit_sums) out.logit_sums = out.argmax_hits = torch::zeros({B, 0}, f64);
    return out;
  }
  // Position t (0..T-2) predicts ids[:, t+1]; only positions whose target is a token are computed.
  // Positions are found on the CPU (callers holding CPU ids and masks, as the trainer does, pay no
  // host sync on CUDA).
  torch::Tensor valid = mask.to(torch::kCPU).narrow(1, 1, T - 1).to(torch::kBool);  // [B, T-1]
  torch::Tensor cells = valid.reshape({-1}).nonzero().squeeze(1);                   // [N]
  torch::Tensor from = cells + cells.div(T - 1, "floor");  // b*(T-1) + t  ->  b*T + t
  torch::Tensor targets =
      ids.to(torch::kCPU).narrow(1, 1, T - 1).reshape({-1}).index_select(0, cells);
  cells = cells.to(device);
  PolicyTokenOutputs sel =
      selected_token_outputs(model, hidden, from, targets, with_sq_mass, with_logit_sums,
                             chunk_tokens);
  auto grid = [&](const torch::Tensor& v, const torch::TensorOptions& o) {
    return torch::zeros({B * (T - 1)}, o).index_copy(0, cells, v).view({B, T - 1});  // [B, T-1]
  };
  out.logps = grid(sel.logps, f32);
  if (with_sq_mass) out.log_sq_mass = grid(sel.log_sq_mass, f32);
  if (with_logit_sums) {
    out.logit_sums = grid(sel.logit_sums, f64);
    out.argmax_hits = grid(sel.argmax_hits, f64);
  }
  return out;
}

}  // namespace

TokenLogprobs next_token_logprobs_from_hidden(CausalLM& model, const torch::Tensor& hidden,
                                              const torch::Tensor& ids, const torch::Tensor& mask,
                                              bool with_sq_mass, int64_t chunk_tokens) {
  return token_outputs(model, hidden, ids, mask, with_sq_mass, /*with_logit_sums=*/false,
                       chunk_tokens);
}

TokenLogprobs next_token_logprobs(CausalLM& model, const torch::Tensor& ids,
                                  const torch::Tensor& mask, bool with_sq_mass,
                                  int64_t chunk_tokens) {
  torch::Tensor hidden = model->forward(ids, mask);  // [B, T, D]
  return next_token_logprobs_from_hidden(model, hidden, ids, mask, with_sq_mass, chunk_tokens);
}

PolicyTokenOutputs next_token_logprobs_and_logit_sums(CausalLM& model, const torch::Tensor& ids,
                                                      const torch::Tensor& mask, bool with_sq_mass,
                                                      int64_t chunk_tokens) {
  torch::Tensor hidden = model->forward(ids, mask);  // [B, T, D]
  return token_outputs(model, hidden, ids, mask, with_sq_mass, /*with_logit_sums=*/true,
                       chunk_tokens);
}

PolicyTokenOutputs policy_token_outputs(CausalLM& model, const torch::Tensor& hidden,
                                        const torch::Tensor& ids, const torch::Tensor& targets,
                                        int64_t chunk_tokens) {
  return token_outputs(model, hidden, ids, targets, /*with_sq_mass=*/false,
                       /*with_logit_sums=*/true, chunk_tokens);
}

PolicyTokenOutputs selected_token_outputs(CausalLM& model, const torch::Tensor& hidden,
                                          const torch::Tensor& from, const torch::Tensor& targets,
                                          bool with_sq_mass, bool with_logit_sums,
                                          int64_t chunk_tokens) {
  check_chunk(chunk_tokens);
  if (hidden.dim() != 3 || from.dim() != 1 || targets.sizes() != from.sizes())
    fail("selected_token_outputs", "expected hidden [B, T, D] and from/targets [N], got " +
                                       c10::str(hidden.sizes()) + ", " + c10::str(from.sizes()) +
                                       ", " + c10::str(targets.sizes()));
  const auto device = hidden.device();
  const int64_t V = model->args().vocab_size;
  if (targets.numel() > 0) {
    // An out-of-range id would be a device-side assert on CUDA. Checked where the targets are:
    // callers that keep them on the CPU (the trainer) pay no host sync.
    torch::Tensor bounds = torch::stack({targets.min(), targets.max()}).to(torch::kCPU);
    const int64_t lo = bounds[0].item<int64_t>(), hi = bounds[1].item<int64_t>();
    if (lo < 0 || hi >= V)
      fail("next_token_logprobs", "token id " + std::to_string(lo < 0 ? lo : hi) +
                                      " outside the vocabulary [0, " + std::to_string(V) + ")");
  }
  torch::Tensor t = targets.to(device);
  torch::Tensor h = hidden.reshape({-1, hidden.size(-1)}).index_select(0, from.to(device));  // [N, D]
  variable_list res = ChunkedLogprobs::apply(h, model->lm_head_weight(), t,
                                             model->args().final_softcap, chunk_tokens,
                                             with_sq_mass, with_logit_sums);
  PolicyTokenOutputs out;
  out.logps = res[0];
  if (with_sq_mass) out.log_sq_mass = res[1];
  if (with_logit_sums) {
    out.logit_sums = res[2];
    out.argmax_hits = res[3];
  }
  return out;
}

}  // namespace treg
