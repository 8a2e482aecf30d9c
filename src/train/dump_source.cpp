// Pairs read on demand from a reward dump (random access through its index).
#include "treg/train_parts.h"

namespace treg {
namespace {

class DumpSource : public PairSource {
 public:
  explicit DumpSource(const std::string& path) : path_(path), reader_(path) {}
  int64_t size() const override { return reader_.size(); }
  PairRecord get(int64_t i) const override { return reader_.read(i); }
  std::string name() const override { return path_; }

 private:
  std::string path_;
  RewardDumpReader reader_;
};

}  // namespace

std::shared_ptr<PairSource> open_dump_source(const std::string& path) {
  return std::make_shared<DumpSource>(path);
}

}  // namespace treg
