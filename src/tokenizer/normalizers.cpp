#include "tokenizer/normalizers.h"

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include <vector>

#include "tokenizer/regex.h"
#include "treg/error.h"

namespace treg {
namespace {

// Unicode normalization forms come from ICU, the same tables every other implementation uses.
class UnicodeForm : public Normalizer {
 public:
  UnicodeForm(const std::string& type, const std::string& file) {
    UErrorCode status = U_ZERO_ERROR;
    if (type == "NFC")
      form_ = icu::Normalizer2::getNFCInstance(status);
    else if (type == "NFKC")
      form_ = icu::Normalizer2::getNFKCInstance(status);
    else if (type == "NFD")
      form_ = icu::Normalizer2::getNFDInstance(status);
    else
      form_ = icu::Normalizer2::getNFKDInstance(status);
    if (U_FAILURE(status)) fail(file, "ICU has no " + type + " normalizer: " + u_errorName(status));
  }
  void normalize(std::string& text) const override {
    UErrorCode status = U_ZERO_ERROR;
    icu::UnicodeString in = icu::UnicodeString::fromUTF8(text);
    // Most text is already normalized; the quick check skips the copy.
    if (form_->isNormalized(in, status) && U_SUCCESS(status)) return;
    status = U_ZERO_ERROR;
    icu::UnicodeString out = form_->normalize(in, status);
    if (U_FAILURE(status)) return;
    text.clear();
    out.toUTF8String(text);
  }

 private:
  const icu::Normalizer2* form_ = nullptr;
};

class Lowercase : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    icu::UnicodeString s = icu::UnicodeString::fromUTF8(text);
    s.toLower();
    text.clear();
    s.toUTF8String(text);
  }
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);  // HF leaves empty text empty
  }

 private:
  std::string prefix_;
};

class Replace : public Normalizer {
 public:
  Replace(const nlohmann::json& config, const std::string& file)
      : pattern_(regex_from_json(config.at("pattern"), file)),
        content_(config.at("content").get<std::string>()) {}
  void normalize(std::string& text) const override {
    auto matches = pattern_->find_all(text);
    if (matches.empty()) return;
    std::string out;
    size_t last = 0;
    for (auto [b, e] : matches) {
      out.append(text, last, b - last);
      out += content_;
      last = e;
    }
    out.append(text, last, std::string::npos);
    text.swap(out);
  }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    const char* ws = " \t\n\r\f\v";
    if (right_) text.erase(text.find_last_not_of(ws) + 1);
    if (left_) text.erase(0, text.find_first_not_of(ws));
  }

 private:
  bool left_, right_;
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& text) const override {
    for (const auto& p : parts_) p->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& config, const std::string& file) {
  if (config.is_null()) return nullptr;
  const std::string type = config.value("type", "");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const auto& c : config.at("normalizers"))
      if (auto p = make_normalizer(c, file)) parts.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(parts));
  }
  if (type == "NFC" || type == "NFKC" || type == "NFD" || type == "NFKD")
    return std::make_unique<UnicodeForm>(type, file);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Prepend") return std::make_unique<Prepend>(config.at("prepend").get<std::string>());
  if (type == "Replace") return std::make_unique<Replace>(config, file);
  if (type == "Strip")
    return std::make_unique<Strip>(config.value("left", true), config.value("right", true));
  fail(file, "unsupported normalizer type '" + type + "'",
       "supported: Sequence, NFC, NFKC, NFD, NFKD, Lowercase, Prepend, Replace, Strip");
}

}  // namespace treg
