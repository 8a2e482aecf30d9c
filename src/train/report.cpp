// report.html: self-contained (no scripts, no external files) training report with inline SVG curves
// and the per-token rewards β·log π_θ/π_ref of a few eval pairs under the trained policy (paper Fig. 3).
#include <algorithm>
#include <cmath>
#include <sstream>

#include "treg/token_html.h"
#include "treg/trainer.h"

namespace treg {
namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string num(double v) {
  std::ostringstream s;
  s.precision(4);
  s << v;
  return s.str();
}

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

}  // namespace

std::string svg_chart(const std::string& title,
                      const std::vector<std::pair<std::string, std::vector<std::pair<double, double>>>>& series) {
  const double W = 420, H = 240, L = 56, R = 12, T = 26, Bm = 34;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : series)
    for (const auto& [x, y] : s.second) {
      if (!std::isfinite(y)) continue;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" style=\"font:11px sans-serif\"><text x=\"" << W / 2 << "\" y=\"16\" text-anchor=\"middle\""
    << " style=\"font-weight:bold\">" << esc(title) << "</text>";
  if (!std::isfinite(x0)) return o.str() + "<text x=\"20\" y=\"120\">no data</text></svg>";
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + (y0 == 0 ? 1 : std::abs(y0) * 0.1);
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return T + (1 - (y - y0) / (y1 - y0)) * (H - T - Bm); };
  o << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - Bm
    << "\" fill=\"none\" stroke=\"#999\"/>";
  for (int i = 0; i <= 4; ++i) {
    const double y = y0 + (y1 - y0) * i / 4, x = x0 + (x1 - x0) * i / 4;
    o << "<text x=\"" << L - 4 << "\" y=\"" << py(y) + 4 << "\" text-anchor=\"end\">" << num(y) << "</text>";
    o << "<text x=\"" << px(x) << "\" y=\"" << H - Bm + 14 << "\" text-anchor=\"middle\">" << num(x) << "</text>";
  }
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 4 << "\" text-anchor=\"middle\">step</text>";
  size_t k = 0;
  for (const auto& s : series) {
    const char* color = kColors[k % 6];
    o << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\" points=\"";
    for (const auto& [x, y] : s.second)
      if (std::isfinite(y)) o << px(x) << "," << py(y) << " ";
    o << "\"/>";
    if (s.second.size() == 1)
      o << "<circle cx=\"" << px(s.second[0].first) << "\" cy=\"" << py(s.second[0].second) << "\" r=\"3\" fill=\""
        << color << "\"/>";
    o << "<text x=\"" << L + 6 + 110 * static_cast<double>(k) << "\" y=\"" << T + 12 << "\" fill=\"" << color << "\">"
      << esc(s.first) << "</text>";
    ++k;
  }
  o << "</svg>";
  return o.str();
}

std::string render_report(const std::string& title, const std::vector<LogEvent>& history,
                          const std::vector<std::string>& curves,
                          const std::vector<TokenRewardView>& pairs) {
  auto series = [&](const std::string& key) {
    std::vector<std::pair<double, double>> pts;
    for (const auto& e : history) {
      auto it = e.values.find(key);
      if (it != e.values.end()) pts.emplace_back(static_cast<double>(e.step), it->second);
    }
    return pts;
  };
  std::ostringstream o;
  o << "<h1>" << esc(title) << "</h1><h2>Training curves</h2><div>";
  for (const std::string& key : curves)
    o << svg_chart(key, {{"train", series(key)}, {"eval", series("eval_" + key)}});
  o << svg_chart("learning_rate", {{"train", series("learning_rate")}});
  if (!series("rewards/chosen").empty() || !series("eval_rewards/chosen").empty())
    o << svg_chart("rewards", {{"chosen", series("rewards/chosen")},
                                {"rejected", series("rewards/rejected")},
                                {"eval chosen", series("eval_rewards/chosen")},
                                {"eval rejected", series("eval_rewards/rejected")}});
  o << "</div>";
  if (!pairs.empty()) {
    double scale = 1e-6;
    for (const auto& p : pairs) {
      for (float r : p.chosen_rewards) scale = std::max(scale, static_cast<double>(std::abs(r)));
      for (float r : p.rejected_rewards) scale = std::max(scale, static_cast<double>(std::abs(r)));
    }
    const std::string label = "beta*log(pi_theta/pi_ref)";
    o << "<h2>Token rewards under the trained policy</h2><p>&beta;&middot;log &pi;<sub>&theta;</sub>(y<sub>t</sub>|x,y<sub>&lt;t</sub>)"
      << " / &pi;<sub>ref</sub>(y<sub>t</sub>|x,y<sub>&lt;t</sub>) per response token (paper Fig. 3): red positive,"
      << " blue negative.</p>" << html_legend(scale, label);
    for (size_t i = 0; i < pairs.size(); ++i) {
      const auto& p = pairs[i];
      std::string prompt;
      for (const auto& s : p.prompt_pieces) prompt += s;
      o << "<h3>Eval pair " << i << "</h3><div class=\"tok\" style=\"color:#666\">" << esc(prompt) << "</div>"
        << "<p>chosen</p><div>" << html_colored_tokens(p.chosen_pieces, p.chosen_rewards, scale, label) << "</div>"
        << "<p>rejected</p><div>" << html_colored_tokens(p.rejected_pieces, p.rejected_rewards, scale, label)
        << "</div>";
    }
  }
  return html_page(title, "<style>svg{margin:4px;border:1px solid #eee}</style>\n" + o.str());
}

}  // namespace treg
