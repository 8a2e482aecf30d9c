// Self-contained HTML (no network, no scripts) that colours tokens by a per-token value: red for
// positive, blue for negative, intensity |value| / scale, the exact value on hover — the picture of the
// paper's Figure 3. Used by `treg view-rewards` (token rewards) and the trainer's report.html
// (beta * log pi_theta / pi_ref).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "treg/tokenizer.h"

namespace treg {

std::string html_escape(const std::string& text);
// One <span> per token; `label` names the value in the hover text ("r = 0.1234").
// pieces.size() must equal values.size(). scale <= 0 means max |value|.
std::string html_colored_tokens(const std::vector<std::string>& pieces, const std::vector<float>& values,
                                double scale = 0.0, const std::string& label = "r");
// The background colour of one value: "rgba(R,G,B,A)".
std::string html_value_color(double value, double scale);
// The text each token adds when decoding, in order (decoded with a few tokens of left context, so
// sentencepiece's "▁" and byte-level BPE spaces show as spaces; special tokens show as written).
std::vector<std::string> token_pieces(const Tokenizer& tok, const std::vector<int64_t>& ids);
// <!DOCTYPE html> page with the shared stylesheet (token spans, side-by-side columns, legend).
std::string html_page(const std::string& title, const std::string& body);
// A red-white-blue legend for `scale`.
std::string html_legend(double scale, const std::string& label);

}  // namespace treg
