// credit_report.html: the benchmark's results per method over seeds, as a table and bar charts,
// self-contained (no scripts, no external files) like the trainer's report.html.
//
// The bar chart lives here, not beside svg_chart in src/train/report.cpp: only this report draws
// bars, and its error bars and per-seed dots are specific to results over seeds.
#include <cmath>
#include <cstdio>
#include <sstream>

#include "treg/credit_task.h"
#include "treg/error.h"
#include "treg/token_html.h"

namespace treg {
namespace {

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

std::string fixed3(double v) {
  if (std::isnan(v)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

std::string num(double v) {
  std::ostringstream s;
  s.precision(4);
  s << v;
  return s.str();
}

double mean_or_nan(const std::vector<double>& v) { return v.empty() ? NAN : mean_of(v); }

// "0.873 ± 0.012", "0.873" for one seed, "—" when not measured.
std::string mean_std(const std::vector<double>& v) {
  if (v.empty()) return "&mdash;";
  const double s = sample_std(v);
  return fixed3(mean_of(v)) + (std::isnan(s) ? "" : " &plusmn; " + fixed3(s));
}

}  // namespace

std::string svg_bar_chart(const std::string& title, const std::vector<std::string>& labels,
                          const std::vector<double>& means, const std::vector<double>& stds,
                          const std::vector<std::vector<double>>& points) {
  if (means.size() != labels.size() || stds.size() != labels.size() ||
      points.size() != labels.size())
    fail("svg_bar_chart", "'" + title + "': " + std::to_string(labels.size()) + " labels, " +
                              std::to_string(means.size()) + " means, " +
                              std::to_string(stds.size()) + " stds, " +
                              std::to_string(points.size()) + " point lists; expected equal");
  const double slot = 96, L = 44, R = 12, T = 26, Bm = 40, H = 240;
  const double W = std::max(300.0, L + R + slot * static_cast<double>(labels.size()));
  auto py = [&](double y) { return T + (1 - std::clamp(y, 0.0, 1.0)) * (H - T - Bm); };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" style=\"font:11px sans-serif\"><text x=\"" << W / 2
    << "\" y=\"16\" text-anchor=\"middle\" style=\"font-weight:bold\">" << html_escape(title)
    << "</text>";
  for (int i = 0; i <= 4; ++i) {
    const double y = i / 4.0;
    o << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << py(y) << "\" y2=\"" << py(y)
      << "\" stroke=\"" << (i == 2 ? "#bbb\" stroke-dasharray=\"4 3" : "#eee") << "\"/>"
      << "<text x=\"" << L - 4 << "\" y=\"" << py(y) + 4 << "\" text-anchor=\"end\">" << num(y)
      << "</text>";
  }
  for (size_t k = 0; k < labels.size(); ++k) {
    const double cx = L + slot * (static_cast<double>(k) + 0.5), bw = slot * 0.5;
    const char* color = kColors[k % 6];
    o << "<text x=\"" << cx << "\" y=\"" << H - Bm + 14 << "\" text-anchor=\"middle\">"
      << html_escape(labels[k]) << "</text>";
    if (std::isnan(means[k])) {
      o << "<text x=\"" << cx << "\" y=\"" << py(0) - 4
        << "\" text-anchor=\"middle\" fill=\"#999\">"
        << "n/a</text>";
      continue;
    }
    o << "<rect x=\"" << cx - bw / 2 << "\" y=\"" << py(means[k]) << "\" width=\"" << bw
      << "\" height=\"" << py(0) - py(means[k]) << "\" fill=\"" << color
      << "\" fill-opacity=\"0.55\"><title>" << html_escape(labels[k]) << ": " << fixed3(means[k])
      << (std::isnan(stds[k]) ? "" : " ± " + fixed3(stds[k])) << "</title></rect>";
    o << "<text x=\"" << cx << "\" y=\"" << H - Bm + 28
      << "\" text-anchor=\"middle\" fill=\"#555\">" << fixed3(means[k]) << "</text>";
    if (!std::isnan(stds[k])) {
      const double lo = py(means[k] - stds[k]), hi = py(means[k] + stds[k]);
      o << "<path d=\"M" << cx << "," << lo << "V" << hi << "M" << cx - 6 << "," << lo << "h12M"
        << cx - 6 << "," << hi << "h12\" stroke=\"#222\" stroke-width=\"1.2\" fill=\"none\"/>";
    }
    // Each seed's value, spread a little sideways so equal values stay visible.
    const auto& pts = points[k];
    for (size_t s = 0; s < pts.size(); ++s) {
      const double dx =
          pts.size() > 1 ? (static_cast<double>(s) / (pts.size() - 1) - 0.5) * bw * 0.6 : 0.0;
      o << "<circle cx=\"" << cx + dx << "\" cy=\"" << py(pts[s]) << "\" r=\"2.5\" fill=\"#222\"/>";
    }
  }
  o << "</svg>";
  return o.str();
}

std::string render_credit_report(const CreditReport& report) {
  std::vector<std::string> names;
  bool any_self = false;
  for (const CreditMethodResult& m : report.methods) {
    const auto check = [&](const std::vector<double>& v, const char* what, bool optional) {
      if (v.size() != m.seeds.size() && !(optional && v.empty()))
        fail("credit report, method '" + m.name + "'",
             std::string(what) + " has " + std::to_string(v.size()) + " values for " +
                 std::to_string(m.seeds.size()) + " seeds",
             "give one value per seed, in the order of `seeds`");
    };
    check(m.reward_auroc, "reward_auroc", true);
    check(m.self_reward_auroc, "self_reward_auroc", true);
    check(m.greedy_accuracy, "greedy_accuracy", true);
    names.push_back(m.name);
    any_self = any_self || !m.self_reward_auroc.empty();
  }
  std::ostringstream o;
  o << "<h1>" << html_escape(report.title) << "</h1>\n"
    << "<p>Token credit assignment on a task with known token-level truth: the rejected answer is "
       "the chosen one with planted wrong digits. <b>Reward AUROC</b>: how well a method's learned "
       "token reward &beta;&middot;log &pi;<sub>&theta;</sub>/&pi;<sub>ref</sub> ranks "
       "planted-error "
       "tokens below correct ones (1 = perfectly, 0.5 = chance; computed with the reward negated, "
       "so an error token scoring lower counts as a success). <b>r&#770; AUROC</b>: the same for "
       "the self-generated reward of Eq. 3. <b>Greedy accuracy</b>: exact-match answers on "
       "held-out questions. Mean &plusmn; sample std over seeds.</p>\n";
  if (!report.settings.empty()) {
    o << "<table class=\"settings\">";
    for (const auto& [k, v] : report.settings)
      o << "<tr><td>" << html_escape(k) << "</td><td>" << html_escape(v) << "</td></tr>";
    o << "</table>\n";
  }
  o << "<table class=\"results\"><tr><th>method</th><th>seeds</th><th>reward AUROC</th>"
    << "<th>r&#770; AUROC</th><th>greedy accuracy</th><th>per seed: reward AUROC / r&#770; AUROC "
    << "/ accuracy</th></tr>\n";
  for (const CreditMethodResult& m : report.methods) {
    o << "<tr><td>" << html_escape(m.name) << "</td><td>" << m.seeds.size() << "</td><td>"
      << mean_std(m.reward_auroc) << "</td><td>" << mean_std(m.self_reward_auroc) << "</td><td>"
      << mean_std(m.greedy_accuracy) << "</td><td class=\"seeds\">";
    for (size_t s = 0; s < m.seeds.size(); ++s) {
      auto at = [&](const std::vector<double>& v) { return v.empty() ? "&mdash;" : fixed3(v[s]); };
      o << (s ? "<br>" : "") << "seed " << m.seeds[s] << ": " << at(m.reward_auroc) << " / "
        << at(m.self_reward_auroc) << " / " << at(m.greedy_accuracy);
    }
    o << "</td></tr>\n";
  }
  o << "</table>\n<div>";
  auto chart = [&](const std::string& title, std::vector<double> CreditMethodResult::*field) {
    std::vector<double> means, stds;
    std::vector<std::vector<double>> points;
    for (const CreditMethodResult& m : report.methods) {
      const std::vector<double>& v = m.*field;
      means.push_back(mean_or_nan(v));
      stds.push_back(sample_std(v));
      points.push_back(v);
    }
    return svg_bar_chart(title, names, means, stds, points);
  };
  o << chart("Reward AUROC (planted errors)", &CreditMethodResult::reward_auroc);
  if (any_self) o << chart("r\u0302 AUROC (Eq. 3)", &CreditMethodResult::self_reward_auroc);
  o << chart("Greedy accuracy (held-out)", &CreditMethodResult::greedy_accuracy);
  o << "</div>";
  return html_page(report.title,
                   "<style>svg{margin:4px;border:1px solid #eee}"
                   "table{border-collapse:collapse;margin:12px 0}"
                   "td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}"
                   "td.seeds{font-family:ui-monospace,monospace;font-size:12px}</style>\n" +
                       o.str());
}

std::string render_credit_markdown(const CreditReport& report) {
  auto cell = [](const std::vector<double>& v) {
    if (v.empty()) return std::string("—");
    const double s = sample_std(v);
    return fixed3(mean_of(v)) + (std::isnan(s) ? "" : " ± " + fixed3(s));
  };
  std::ostringstream o;
  o << "| method | reward AUROC | r̂ AUROC | greedy accuracy |\n|---|---|---|---|\n";
  for (const CreditMethodResult& m : report.methods)
    o << "| " << m.name << " | " << cell(m.reward_auroc) << " | " << cell(m.self_reward_auroc)
      << " | " << cell(m.greedy_accuracy) << " |\n";
  return o.str();
}

}  // namespace treg
