#include "tokenizer/decoders.h"

#include <unordered_map>

#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"
#include "treg/error.h"

namespace treg {
namespace {

// Maps GPT-2's byte characters back to bytes; other characters pass through as their UTF-8.
class ByteLevel : public Decoder {
 public:
  ByteLevel() {
    const auto& table = byte_to_unicode();
    for (int b = 0; b < 256; ++b) to_byte_[utf8::decode_at(table[b], 0)] = static_cast<char>(b);
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      for (size_t i = 0; i < t.size();) {
        size_t n = utf8::char_len_at(t, i);
        auto it = to_byte_.find(utf8::decode_at(t, i));
        if (it != to_byte_.end())
          bytes += it->second;
        else
          bytes.append(t, i, n);
        i += n;
      }
    }
    tokens.assign(1, utf8::make_valid(bytes));
  }

 private:
  std::unordered_map<uint32_t, char> to_byte_;
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "<0xE3><0x81><0x82>" -> the bytes they name, decoded as UTF-8 (one U+FFFD per byte if invalid).
class ByteFallback : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&]() {
      if (pending.empty()) return;
      std::string valid = utf8::make_valid(pending);
      if (valid == pending) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending.size(); ++i) out.push_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (auto& t : tokens) {
      int byte = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        const int hi = hex_digit(t[3]), lo = hex_digit(t[4]);
        if (hi >= 0 && lo >= 0) byte = hi * 16 + lo;
      }
      if (byte >= 0) {
        pending += static_cast<char>(byte);
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class Fuse : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, all);
  }
};

class Replace : public Decoder {
 public:
  Replace(const nlohmann::json& config, const std::string& file)
      : pattern_(regex_from_json(config.at("pattern"), file)),
        content_(config.at("content").get<std::string>()) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      auto matches = pattern_->find_all(t);
      if (matches.empty()) continue;
      std::string out;
      size_t last = 0;
      for (auto [b, e] : matches) {
        out.append(t, last, b - last);
        out += content_;
        last = e;
      }
      out.append(t, last, std::string::npos);
      t.swap(out);
    }
  }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

// Removes up to `start` leading and `stop` trailing copies of `content` from every token.
class Strip : public Decoder {
 public:
  explicit Strip(const nlohmann::json& config)
      : content_(config.at("content").get<std::string>()),
        start_(config.value("start", 0)),
        stop_(config.value("stop", 0)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      for (int i = 0; i < start_ && t.compare(0, content_.size(), content_) == 0 && !t.empty(); ++i)
        t.erase(0, content_.size());
      for (int i = 0;
           i < stop_ && t.size() >= content_.size() &&
           t.compare(t.size() - content_.size(), content_.size(), content_) == 0 && !t.empty();
           ++i)
        t.erase(t.size() - content_.size());
    }
  }

 private:
  std::string content_;
  int start_, stop_;
};

class Metaspace : public Decoder {
 public:
  explicit Metaspace(const nlohmann::json& config)
      : replacement_(config.value("replacement", "\xE2\x96\x81")) {
    if (config.contains("prepend_scheme"))
      strip_first_ = config["prepend_scheme"].get<std::string>() != "never";
    else
      strip_first_ = config.value("add_prefix_space", true);
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t k = 0; k < t.size();) {
        if (t.compare(k, replacement_.size(), replacement_) == 0) {
          out += ' ';
          k += replacement_.size();
        } else {
          out += t[k++];
        }
      }
      if (i == 0 && strip_first_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
      tokens[i].swap(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class Sequence : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& config, const std::string& file) {
  if (config.is_null()) return nullptr;
  const std::string type = config.value("type", "");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const auto& c : config.at("decoders"))
      if (auto p = make_decoder(c, file)) parts.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(parts));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevel>();
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Replace") return std::make_unique<Replace>(config, file);
  if (type == "Strip") return std::make_unique<Strip>(config);
  if (type == "Metaspace") return std::make_unique<Metaspace>(config);
  fail(file, "unsupported decoder type '" + type + "'",
       "supported: Sequence, ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace");
}

}  // namespace treg
