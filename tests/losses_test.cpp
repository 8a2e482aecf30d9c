// Losses against hand derivations and an independent python3-torch computation of TRL's / SimPO's /
// the T-REG paper's formulas; gradient checks in double precision.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "test_util.h"
#include "treg/losses.h"

using namespace treg;

namespace {

torch::Tensor t1(std::vector<double> v) { return torch::tensor(v, torch::kFloat64); }

// A [2, 4] batch: pair 0 has 3 chosen / 4 rejected tokens, pair 1 has 4 / 2.
struct Fixture {
  ResponseTokens c, r;
  Fixture(bool grad = false) {
    auto opt = torch::TensorOptions().dtype(torch::kFloat64);
    c.logps = torch::tensor({-1.0, -0.5, -2.0, 0.0, -0.3, -1.2, -0.7, -0.9}, opt).view({2, 4});
    r.logps = torch::tensor({-1.5, -0.8, -2.2, -0.4, -0.6, -2.5, 0.0, 0.0}, opt).view({2, 4});
    c.ref_logps = torch::tensor({-1.1, -0.6, -1.9, 0.0, -0.5, -1.0, -0.8, -1.0}, opt).view({2, 4});
    r.ref_logps = torch::tensor({-1.2, -0.9, -2.0, -0.6, -0.5, -2.0, 0.0, 0.0}, opt).view({2, 4});
    c.rewards = torch::tensor({0.4, -0.1, 0.3, 0.0, 0.2, 0.5, -0.45, 0.1}, opt).view({2, 4});
    r.rewards = torch::tensor({-0.3, 0.2, -0.5, -0.2, 0.1, -0.4, 0.0, 0.0}, opt).view({2, 4});
    c.mask = torch::tensor({1., 1., 1., 0., 1., 1., 1., 1.}, opt).view({2, 4});
    r.mask = torch::tensor({1., 1., 1., 1., 1., 1., 0., 0.}, opt).view({2, 4});
    c.log_sq_mass = torch::tensor({-0.9, -0.4, -1.5, 0.0, -0.2, -1.0, -0.5, -0.6}, opt).view({2, 4});
    r.log_sq_mass = torch::tensor({-1.0, -0.7, -1.8, -0.3, -0.5, -2.0, 0.0, 0.0}, opt).view({2, 4});
    if (grad) {
      c.logps.requires_grad_(true);
      r.logps.requires_grad_(true);
    }
  }
};

// The same fixture and the formulas, written independently in python3-torch from TRL's dpo_loss,
// SimPO's simpo_loss and the paper's Eq. 1-2; prints "name value" lines.
const char* kPythonGolden = R"PY(
import torch, torch.nn.functional as F
d = torch.float64
cl = torch.tensor([[-1.0,-0.5,-2.0,0.0],[-0.3,-1.2,-0.7,-0.9]],dtype=d)
rl = torch.tensor([[-1.5,-0.8,-2.2,-0.4],[-0.6,-2.5,0.0,0.0]],dtype=d)
cr = torch.tensor([[-1.1,-0.6,-1.9,0.0],[-0.5,-1.0,-0.8,-1.0]],dtype=d)
rr = torch.tensor([[-1.2,-0.9,-2.0,-0.6],[-0.5,-2.0,0.0,0.0]],dtype=d)
cw = torch.tensor([[0.4,-0.1,0.3,0.0],[0.2,0.5,-0.45,0.1]],dtype=d)
rw = torch.tensor([[-0.3,0.2,-0.5,-0.2],[0.1,-0.4,0.0,0.0]],dtype=d)
cm = torch.tensor([[1,1,1,0],[1,1,1,1]],dtype=d)
rm = torch.tensor([[1,1,1,1],[1,1,0,0]],dtype=d)
cq = torch.tensor([[-0.9,-0.4,-1.5,0.0],[-0.2,-1.0,-0.5,-0.6]],dtype=d)
rq = torch.tensor([[-1.0,-0.7,-1.8,-0.3],[-0.5,-2.0,0.0,0.0]],dtype=d)
def S(x,m): return (x*m).sum(-1)
def A(x,m): return (x*m).sum(-1)/m.sum(-1)
def dpo(kind,b,ls,pw,pl,rw_,rl_):
    z=(pw-pl)-(rw_-rl_)
    if kind=='sigmoid': return -F.logsigmoid(b*z)*(1-ls)-F.logsigmoid(-b*z)*ls
    if kind=='robust': return (-F.logsigmoid(b*z)*(1-ls)+F.logsigmoid(-b*z)*ls)/(1-2*ls)
    if kind=='hinge': return torch.relu(1-b*z)
    if kind=='ipo': return (z-1/(2*b))**2
def full(kind,b,ls,alpha,static,sft,wpo,g=0.5):
    avg = kind in ('ipo','simpo')
    f = A if avg else S
    pw,pl = f(cl,cm),f(rl,rm)
    if kind=='simpo':
        z=pw-pl-g
        pref=-F.logsigmoid(b*z)*(1-ls)-F.logsigmoid(-b*z)*ls
        w=torch.sigmoid(-b*z)
        reg=-b*A(cw*cl,cm)-b*A(rw*rl,rm)
    else:
        pref=dpo(kind,b,ls,pw,pl,f(cr,cm),f(rr,rm))
        rwd=b*(pw-f(cr,cm)); rjd=b*(pl-f(rr,rm))
        w=torch.sigmoid(rjd-rwd)
        reg=-b*S(cw*cl,cm)-b*S(rw*rl,rm)
    if static: w=torch.ones_like(w)
    tot=pref+alpha*w*reg+sft*(-A(cl,cm))
    if wpo:
        pw_=torch.clamp(torch.exp(A(cl-cq,cm)+A(rl-rq,rm)),max=1)
        tot=tot*pw_
    return tot.mean().item()
for name,args in [
  ('sigmoid',('sigmoid',0.1,0.0,0,0,0,0)),('cdpo',('sigmoid',0.5,0.2,0,0,0,0)),
  ('robust',('robust',0.5,0.2,0,0,0,0)),('hinge',('hinge',2.0,0.0,0,0,0,0)),
  ('ipo',('ipo',0.1,0.0,0,0,0,0)),('simpo',('simpo',2.5,0.0,0,0,0,0,0.55)),
  ('dpo_reg',('sigmoid',0.5,0.0,0.25,0,0,0)),('dpo_reg_static',('sigmoid',0.5,0.0,0.25,1,0,0)),
  ('dpo_sft',('sigmoid',0.5,0.0,0,0,0.3,0)),('simpo_reg',('simpo',2.5,0.0,0.5,0,0,0,0.55)),
  ('ipo_reg',('ipo',0.1,0.0,0.1,0,0,0)),('hinge_reg',('hinge',2.0,0.0,0.5,0,0,0)),
  ('wpo_reg',('sigmoid',0.5,0.0,0.25,0,0,1))]:
    print(name, repr(full(*args)))
)PY";

std::map<std::string, double> python_goldens() {
  std::string dir = test::fresh_dir("losses_py");
  std::string script = dir + "/golden.py";
  {
    std::ofstream f(script);
    f << kPythonGolden;
  }
  std::string out;
  int rc = test::run_command(test::python_with_torch() + " " + script, &out);
  EXPECT_EQ(rc, 0) << out;
  std::map<std::string, double> g;
  std::istringstream in(out);
  std::string name;
  double v;
  while (in >> name >> v) g[name] = v;
  return g;
}

LossConfig make(LossType type, double beta, double ls = 0, double alpha = 0) {
  LossConfig c;
  c.type = type;
  c.beta = beta;
  c.label_smoothing = ls;
  c.treg_alpha = alpha;
  return c;
}

}  // namespace

// Hand derivations with z = (πw - πl) - (rw - rl).
// z = 0: sigmoid -> log 2; robust (ε=0.1) -> ((0.9 - 0.1)·log 2)/0.8 = log 2; hinge -> 1;
//        ipo (β=0.1) -> (0 - 5)² = 25.
// z = 10, β = 0.1: sigmoid -> -log σ(1) = log(1 + e^-1) = 0.31326168751822286; hinge -> 0;
//        ipo -> (10 - 5)² = 25.
TEST(Losses, DpoFamilyHandDerived) {
  auto pc = t1({-10.0, -5.0}), pr = t1({-12.0, -15.0}), rc = t1({-11.0, -11.0}), rr = t1({-13.0, -11.0});
  // pair 0: z = 2 - 2 = 0; pair 1: z = 10 - 0 = 10
  auto sig = dpo_family_losses(LossType::kSigmoid, 0.1, 0.0, pc, pr, rc, rr);
  EXPECT_NEAR(sig[0].item<double>(), std::log(2.0), 1e-15);
  EXPECT_NEAR(sig[1].item<double>(), std::log1p(std::exp(-1.0)), 1e-15);
  auto rob = dpo_family_losses(LossType::kRobust, 0.1, 0.1, pc, pr, rc, rr);
  EXPECT_NEAR(rob[0].item<double>(), std::log(2.0), 1e-15);
  auto hin = dpo_family_losses(LossType::kHinge, 0.1, 0.0, pc, pr, rc, rr);
  EXPECT_DOUBLE_EQ(hin[0].item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(hin[1].item<double>(), 0.0);
  auto ipo = dpo_family_losses(LossType::kIpo, 0.1, 0.0, pc, pr, rc, rr);
  EXPECT_NEAR(ipo[0].item<double>(), 25.0, 1e-12);
  EXPECT_NEAR(ipo[1].item<double>(), 25.0, 1e-12);
}

// SimPO, β = 2, γ/β = 0.5: avg_w - avg_l = 0.5 -> z = 0 -> log 2; avg_w - avg_l = 1 -> βz = 1 ->
// log(1 + e^-1).
TEST(Losses, SimpoHandDerived) {
  auto l = simpo_losses(2.0, 0.5, 0.0, t1({-1.0, -0.5}), t1({-1.5, -1.5}));
  EXPECT_NEAR(l[0].item<double>(), std::log(2.0), 1e-15);
  EXPECT_NEAR(l[1].item<double>(), std::log1p(std::exp(-1.0)), 1e-15);
}

// L_reg = -β Σ r̂_t log π: β = 0.5, r̂ = (0.4, -0.2), log π = (-1, -2), third token padded:
// -0.5·(0.4·-1 + -0.2·-2) = -0.5·(-0.4 + 0.4) = 0; with r̂ = (0.5, 0.1): -0.5·(-0.5 - 0.2) = 0.35,
// length-normalised (|y| = 2): 0.175.
TEST(Losses, RegularizerHandDerived) {
  auto lp = t1({-1.0, -2.0, -7.0, -1.0, -2.0, -7.0}).view({2, 3});
  auto rw = t1({0.4, -0.2, 9.0, 0.5, 0.1, 9.0}).view({2, 3});
  auto m = t1({1, 1, 0, 1, 1, 0}).view({2, 3});
  auto reg = token_regularizer(lp, rw, m, 0.5, false);
  EXPECT_NEAR(reg[0].item<double>(), 0.0, 1e-15);
  EXPECT_NEAR(reg[1].item<double>(), 0.35, 1e-15);
  EXPECT_NEAR(token_regularizer(lp, rw, m, 0.5, true)[1].item<double>(), 0.175, 1e-15);
}

TEST(Losses, MatchPythonGoldens) {
  auto g = python_goldens();
  ASSERT_EQ(g.size(), 13u);
  Fixture f;
  auto check = [&](const std::string& name, LossConfig cfg) {
    double v = preference_loss(cfg, f.c, f.r).loss.item<double>();
    EXPECT_NEAR(v, g.at(name), 1e-12 * std::max(1.0, std::abs(v))) << name;
  };
  check("sigmoid", make(LossType::kSigmoid, 0.1));
  check("cdpo", make(LossType::kSigmoid, 0.5, 0.2));
  check("robust", make(LossType::kRobust, 0.5, 0.2));
  check("hinge", make(LossType::kHinge, 2.0));
  check("ipo", make(LossType::kIpo, 0.1));
  auto simpo = make(LossType::kSimpo, 2.5);
  simpo.gamma_beta_ratio = 0.55;
  check("simpo", simpo);
  check("dpo_reg", make(LossType::kSigmoid, 0.5, 0, 0.25));
  auto st = make(LossType::kSigmoid, 0.5, 0, 0.25);
  st.treg_static_weight = true;
  check("dpo_reg_static", st);
  auto sft = make(LossType::kSigmoid, 0.5);
  sft.sft_alpha = 0.3;
  check("dpo_sft", sft);
  auto simpo_reg = simpo;
  simpo_reg.treg_alpha = 0.5;
  check("simpo_reg", simpo_reg);
  check("ipo_reg", make(LossType::kIpo, 0.1, 0, 0.1));
  check("hinge_reg", make(LossType::kHinge, 2.0, 0, 0.5));
  auto wpo = make(LossType::kSigmoid, 0.5, 0, 0.25);
  wpo.use_weighting = true;
  check("wpo_reg", wpo);
}

// At α = 0 T-REG is plain DPO, exactly (same bits), value and gradient.
TEST(Losses, AlphaZeroIsDpoExactly) {
  Fixture a(true), b(true);
  auto out = preference_loss(make(LossType::kSigmoid, 0.1, 0.0, 0.0), a.c, a.r);
  auto dpo = dpo_family_losses(LossType::kSigmoid, 0.1, 0.0, masked_sum(b.c.logps, b.c.mask),
                               masked_sum(b.r.logps, b.r.mask), masked_sum(b.c.ref_logps, b.c.mask),
                               masked_sum(b.r.ref_logps, b.r.mask))
                 .mean();
  EXPECT_TRUE(torch::equal(out.loss, dpo));
  out.loss.backward();
  dpo.backward();
  EXPECT_TRUE(torch::equal(a.c.logps.grad(), b.c.logps.grad()));
  EXPECT_TRUE(torch::equal(a.r.logps.grad(), b.r.logps.grad()));
}

// Central finite differences of the regulariser in double precision.
TEST(Losses, RegularizerGradientMatchesFiniteDifferences) {
  Fixture f(true);
  for (bool norm : {false, true}) {
    auto lp = f.c.logps.detach().clone().requires_grad_(true);
    auto reg = token_regularizer(lp, f.c.rewards, f.c.mask, 0.7, norm).sum();
    auto grad = torch::autograd::grad({reg}, {lp})[0];
    const double h = 1e-6;
    for (int64_t i = 0; i < lp.numel(); ++i) {
      auto p = lp.detach().clone(), m = lp.detach().clone();
      p.view(-1)[i] += h;
      m.view(-1)[i] -= h;
      double fd = (token_regularizer(p, f.c.rewards, f.c.mask, 0.7, norm).sum().item<double>() -
                   token_regularizer(m, f.c.rewards, f.c.mask, 0.7, norm).sum().item<double>()) /
                  (2 * h);
      EXPECT_NEAR(grad.view(-1)[i].item<double>(), fd, 1e-8) << "token " << i << " norm " << norm;
    }
  }
}

// w is detached: the autograd gradient of L = mean_b[DPO_b + α·w_b·(Lreg_w + Lreg_l)] w.r.t. a chosen
// token log-prob is exactly the analytic one with w held constant:
//   ∂L/∂logπ(y_w,t) = (1/B)·[-β·σ(-βz_b) - α·w_b·β·r̂_t]·mask_t,  w_b = σ(-βz_b)
//   ∂L/∂logπ(y_l,t) = (1/B)·[+β·σ(-βz_b) - α·w_b·β·r̂_t]·mask_t
TEST(Losses, SequenceWeightIsDetached) {
  Fixture f(true);
  const double beta = 0.5, alpha = 0.25;
  auto out = preference_loss(make(LossType::kSigmoid, beta, 0.0, alpha), f.c, f.r);
  out.loss.backward();
  torch::NoGradGuard ng;
  auto z = masked_sum(f.c.logps, f.c.mask) - masked_sum(f.r.logps, f.r.mask) -
           (masked_sum(f.c.ref_logps, f.c.mask) - masked_sum(f.r.ref_logps, f.r.mask));
  auto s = torch::sigmoid(-beta * z).unsqueeze(1);  // [B, 1]
  const double B = 2;
  auto gc = ((-beta * s) - alpha * s * beta * f.c.rewards) * f.c.mask / B;
  auto gr = ((beta * s) - alpha * s * beta * f.r.rewards) * f.r.mask / B;
  EXPECT_TRUE(torch::allclose(f.c.logps.grad(), gc, 1e-14, 1e-15)) << f.c.logps.grad() << gc;
  EXPECT_TRUE(torch::allclose(f.r.logps.grad(), gr, 1e-14, 1e-15));
  EXPECT_TRUE(torch::allclose(out.treg_weights, s.squeeze(1)));
}

// The WPO weight is detached too and is min(1, ·): with weights fixed the gradient is w_pair times the
// unweighted one.
TEST(Losses, WpoWeightIsDetachedAndClamped) {
  Fixture a(true), b(true);
  auto cfg = make(LossType::kSigmoid, 0.5, 0.0, 0.25);
  auto plain = preference_loss(cfg, a.c, a.r);
  cfg.use_weighting = true;
  auto wpo = preference_loss(cfg, b.c, b.r);
  EXPECT_TRUE((wpo.policy_weights <= 1.0).all().item<bool>());
  EXPECT_TRUE((wpo.policy_weights > 0.0).all().item<bool>());
  // per-pair gradient scale: compute each pair's gradient separately
  plain.loss.backward();
  wpo.loss.backward();
  auto scale = wpo.policy_weights.unsqueeze(1);
  EXPECT_TRUE(torch::allclose(b.c.logps.grad(), a.c.logps.grad() * scale, 1e-13, 1e-15));
  EXPECT_TRUE(torch::allclose(b.r.logps.grad(), a.r.logps.grad() * scale, 1e-13, 1e-15));
}

TEST(Losses, MetricsFollowTrl) {
  Fixture f;
  auto out = preference_loss(make(LossType::kSigmoid, 0.1), f.c, f.r);
  // rewards/chosen of pair 0: 0.1·((-1 - 0.5 - 2) - (-1.1 - 0.6 - 1.9)) = 0.1·0.1 = 0.01
  EXPECT_NEAR(out.chosen_rewards[0].item<double>(), 0.01, 1e-15);
  EXPECT_NEAR(out.chosen_logps[0].item<double>(), -3.5, 1e-15);
  auto simpo = preference_loss(make(LossType::kSimpo, 2.0), f.c, f.r);
  // simpo rewards = β·avg: pair 0 chosen avg = -3.5/3
  EXPECT_NEAR(simpo.chosen_rewards[0].item<double>(), 2.0 * -3.5 / 3, 1e-14);
}
