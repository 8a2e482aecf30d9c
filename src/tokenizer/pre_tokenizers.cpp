#include "tokenizer/pre_tokenizers.h"

#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"
#include "treg/error.h"

namespace treg {
namespace {

// GPT-2's pre-tokenization pattern, used by ByteLevel when `use_regex` is true.
const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior behavior_from_name(const std::string& name, const std::string& file) {
  if (name == "Removed") return Behavior::Removed;
  if (name == "Isolated") return Behavior::Isolated;
  if (name == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::MergedWithNext;
  if (name == "Contiguous") return Behavior::Contiguous;
  fail(file, "unknown Split behavior '" + name + "'",
       "expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
}

// Splits every piece at the matches of `regex`, keeping the delimiters as `behavior` says.
void split_pieces(std::vector<Piece>& pieces, const Regex& regex, Behavior behavior, bool invert) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (auto& piece : pieces) {
    const std::string& s = piece.text;
    // Alternating (begin, end, is_delimiter) spans covering s.
    struct Span {
      size_t b, e;
      bool delim;
    };
    std::vector<Span> spans;
    size_t last = 0;
    for (auto [b, e] : regex.find_all(s)) {
      if (b > last) spans.push_back({last, b, invert});
      spans.push_back({b, e, !invert});
      last = e;
    }
    if (last < s.size()) spans.push_back({last, s.size(), invert});

    std::vector<std::pair<size_t, size_t>> parts;  // [b, e) of the resulting pieces
    for (size_t i = 0; i < spans.size(); ++i) {
      const Span& sp = spans[i];
      switch (behavior) {
        case Behavior::Removed:
          if (!sp.delim) parts.emplace_back(sp.b, sp.e);
          break;
        case Behavior::Isolated:
          parts.emplace_back(sp.b, sp.e);
          break;
        case Behavior::MergedWithPrevious:
          if (sp.delim && !parts.empty() && !spans[i - 1].delim)
            parts.back().second = sp.e;
          else
            parts.emplace_back(sp.b, sp.e);
          break;
        case Behavior::MergedWithNext:
          if (i > 0 && spans[i - 1].delim && !sp.delim && !parts.empty())
            parts.back().second = sp.e;
          else
            parts.emplace_back(sp.b, sp.e);
          break;
        case Behavior::Contiguous:
          if (sp.delim && i > 0 && spans[i - 1].delim && !parts.empty())
            parts.back().second = sp.e;
          else
            parts.emplace_back(sp.b, sp.e);
          break;
      }
    }
    bool first = true;
    for (auto [b, e] : parts) {
      if (e <= b) continue;
      out.push_back({s.substr(b, e - b), piece.at_start && first && b == 0});
      first = false;
    }
  }
  pieces.swap(out);
}

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(const nlohmann::json& config, const std::string& file)
      : add_prefix_space_(config.value("add_prefix_space", true)) {
    if (config.value("use_regex", true))
      regex_ = std::make_unique<Regex>(kGpt2Pattern, false, file);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_)
      for (auto& p : pieces)
        if (p.text.empty() || p.text[0] != ' ') p.text = " " + p.text;  // (insert(0) trips a GCC 12 false warning)
    if (regex_) split_pieces(pieces, *regex_, Behavior::Isolated, false);
    const auto& table = byte_to_unicode();
    for (auto& p : pieces) {
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (unsigned char c : p.text) mapped += table[c];
      p.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class Metaspace : public PreTokenizer {
 public:
  Metaspace(const nlohmann::json& config, const std::string& file)
      : replacement_(config.value("replacement", "\xE2\x96\x81")),
        split_(config.value("split", true)) {
    if (config.contains("prepend_scheme"))
      scheme_ = config["prepend_scheme"].get<std::string>();
    else
      scheme_ = config.value("add_prefix_space", true) ? "always" : "never";
    if (scheme_ != "always" && scheme_ != "first" && scheme_ != "never")
      fail(file, "Metaspace prepend_scheme must be always, first or never, got '" + scheme_ + "'");
    delimiter_ = std::make_unique<Regex>(replacement_, true, file);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (auto& p : pieces) {
      std::string out;
      for (char c : p.text) {
        if (c == ' ')
          out += replacement_;
        else
          out += c;
      }
      bool starts = out.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == "always" || (scheme_ == "first" && p.at_start)))
        out.insert(0, replacement_);
      p.text.swap(out);
    }
    if (split_) split_pieces(pieces, *delimiter_, Behavior::MergedWithNext, false);
  }

 private:
  std::string replacement_, scheme_;
  bool split_;
  std::unique_ptr<Regex> delimiter_;
};

// Split (pattern from the file) and the fixed-pattern Digits, Whitespace, WhitespaceSplit, Punctuation.
class RegexSplit : public PreTokenizer {
 public:
  RegexSplit(std::unique_ptr<Regex> regex, Behavior behavior, bool invert)
      : regex_(std::move(regex)),
        behavior_(behavior),
        invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, *regex_, behavior_, invert_);
  }

 private:
  std::unique_ptr<Regex> regex_;
  Behavior behavior_;
  bool invert_;
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : parts_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

const std::vector<std::string>& byte_to_unicode() {
  // Printable Latin-1 bytes stand for themselves; the others map to U+0100 upwards, in byte order.
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      utf8::append(t[b], printable ? static_cast<uint32_t>(b) : next++);
    }
    return t;
  }();
  return table;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& config,
                                                 const std::string& file) {
  if (config.is_null()) return nullptr;
  const std::string type = config.value("type", "");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const auto& c : config.at("pretokenizers"))
      if (auto p = make_pre_tokenizer(c, file)) parts.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(parts));
  }
  if (type == "Split")
    return std::make_unique<RegexSplit>(
        regex_from_json(config.at("pattern"), file),
        behavior_from_name(config.at("behavior").get<std::string>(), file),
        config.value("invert", false));
  if (type == "ByteLevel") return std::make_unique<ByteLevel>(config, file);
  if (type == "Metaspace") return std::make_unique<Metaspace>(config, file);
  if (type == "Digits")
    return std::make_unique<RegexSplit>(
        std::make_unique<Regex>(config.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)",
                                false, file),
        Behavior::Isolated, false);
  if (type == "WhitespaceSplit")
    return std::make_unique<RegexSplit>(std::make_unique<Regex>(R"(\s+)", false, file), Behavior::Removed, false);
  if (type == "Whitespace")
    return std::make_unique<RegexSplit>(std::make_unique<Regex>(R"(\w+|[^\w\s]+)", false, file), Behavior::Removed, true);
  if (type == "Punctuation")
    return std::make_unique<RegexSplit>(std::make_unique<Regex>(R"(\p{P})", false, file), Behavior::Isolated, false);
  fail(file, "unsupported pre_tokenizer type '" + type + "'",
       "supported: Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit, "
       "Punctuation");
}

}  // namespace treg
