#include "treg/token_html.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "treg/error.h"

namespace treg {

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string html_value_color(double value, double scale) {
  double a = scale > 0 ? std::min(1.0, std::fabs(value) / scale) : 0.0;
  if (!std::isfinite(value)) a = 0.0;
  char buf[64];
  // Red (positive) / blue (negative), as in Figure 3 of the paper.
  if (value >= 0) std::snprintf(buf, sizeof buf, "rgba(220,38,38,%.3f)", a * 0.85);
  else std::snprintf(buf, sizeof buf, "rgba(37,99,235,%.3f)", a * 0.85);
  return buf;
}

std::string html_colored_tokens(const std::vector<std::string>& pieces, const std::vector<float>& values,
                                double scale, const std::string& label) {
  if (pieces.size() != values.size())
    fail("html_colored_tokens", std::to_string(pieces.size()) + " tokens but " + std::to_string(values.size()) + " values");
  if (scale <= 0) {
    for (float v : values)
      if (std::isfinite(v)) scale = std::max(scale, static_cast<double>(std::fabs(v)));
    if (scale <= 0) scale = 1.0;
  }
  std::string out;
  for (size_t i = 0; i < pieces.size(); ++i) {
    char val[64];
    std::snprintf(val, sizeof val, "%.6g", static_cast<double>(values[i]));
    out += "<span class=\"tok\" style=\"background:" + html_value_color(values[i], scale) + "\" title=\"" +
           html_escape(label) + " = " + val + " (token " + std::to_string(i) + ")\">" + html_escape(pieces[i]) +
           "</span>";
  }
  return out;
}

std::vector<std::string> token_pieces(const Tokenizer& tok, const std::vector<int64_t>& ids) {
  constexpr size_t kContext = 4;
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    size_t from = i >= kContext ? i - kContext : 0;
    std::vector<int64_t> before(ids.begin() + static_cast<std::ptrdiff_t>(from), ids.begin() + static_cast<std::ptrdiff_t>(i));
    std::vector<int64_t> with = before;
    with.push_back(ids[i]);
    std::string a = before.empty() ? std::string() : tok.decode(before, false);
    std::string b = tok.decode(with, false);
    if (b.size() >= a.size() && b.compare(0, a.size(), a) == 0) out.push_back(b.substr(a.size()));
    else out.push_back(tok.id_to_piece(ids[i]));
  }
  return out;
}

std::string html_legend(double scale, const std::string& label) {
  char lo[32], hi[32];
  std::snprintf(lo, sizeof lo, "%.3g", -scale);
  std::snprintf(hi, sizeof hi, "+%.3g", scale);
  std::string out = "<div class=\"legend\">" + html_escape(label) + ": " + lo + " ";
  for (int k = -4; k <= 4; ++k)
    out += "<span class=\"swatch\" style=\"background:" + html_value_color(scale * k / 4.0, scale) + "\"></span>";
  out += std::string(" ") + hi + " <span class=\"note\">(hover a token for its exact value)</span></div>\n";
  return out;
}

std::string html_page(const std::string& title, const std::string& body) {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + html_escape(title) +
         "</title>\n<style>\n"
         "body{font-family:system-ui,sans-serif;margin:24px;color:#111;max-width:1400px}\n"
         ".tok{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:13px;border-radius:2px}\n"
         ".pair{border:1px solid #ddd;border-radius:6px;padding:12px;margin:16px 0}\n"
         ".prompt{background:#f6f6f6;padding:8px;white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12px;max-height:240px;overflow:auto}\n"
         ".cols{display:flex;gap:16px}.col{flex:1;min-width:0}\n"
         ".col h4{margin:8px 0}.stats{color:#555;font-size:12px}\n"
         ".legend{margin:8px 0}.swatch{display:inline-block;width:18px;height:12px;border:1px solid #ccc}\n"
         ".note{color:#777;font-size:12px}\n"
         "</style></head><body>\n" +
         body + "\n</body></html>\n";
}

}  // namespace treg
