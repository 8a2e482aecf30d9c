// safetensors (https://huggingface.co/docs/safetensors): 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the raw tensor bytes.
// Reading is memory-mapped and bounds-checked: a malformed file is a treg::Error naming the file
// and tensor, never a crash. Writing is atomic and produces files Hugging Face's `safetensors`
// loads.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace treg {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // as written: "F32", "BF16", ...
  torch::ScalarType scalar_type;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the start of the data section
};

// One .safetensors file, memory-mapped for as long as this object or a tensor viewing it lives.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  const SafetensorsEntry& entry(const std::string& name) const;
  // A CPU tensor in the file's dtype; read-only view of the mapping when aligned, else a copy.
  torch::Tensor view(const std::string& name) const;
  // A fresh copy converted to `options` (dtype/device); never aliases the mapping.
  torch::Tensor load(const std::string& name, const torch::TensorOptions& options) const;

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> map_;
  uint64_t data_start_ = 0;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, SafetensorsEntry> entries_;
};

// A checkpoint directory: model.safetensors, or the shards listed in model.safetensors.index.json
// (`weight_map`: tensor name -> shard file). A path to a single .safetensors file also works.
class SafetensorsCheckpoint {
 public:
  explicit SafetensorsCheckpoint(const std::string& dir_or_file);
  std::vector<std::string> keys() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  const SafetensorsEntry& entry(const std::string& name) const;
  const std::string& file_of(const std::string& name) const;
  torch::Tensor load(const std::string& name, const torch::TensorOptions& options) const;

 private:
  size_t where_index(const std::string& name) const;
  std::string root_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // name -> index into files_
};

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// "F32" etc. <-> torch dtype; an unknown name or type is a treg::Error naming `where`.
torch::ScalarType safetensors_dtype(const std::string& name, const std::string& where);
std::string safetensors_dtype_name(torch::ScalarType type);

// Writes one file atomically (temp file + rename). Tensors are copied to CPU contiguous bytes as
// they are (convert dtypes first); offsets follow the sorted names; header padded with spaces to 8
// bytes. `metadata` defaults to {"format": "pt"}.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
// Writes <dir>/model.safetensors when everything fits into max_shard_bytes, else
// model-0000i-of-0000n.safetensors plus model.safetensors.index.json. Returns the files written.
std::vector<std::string> save_safetensors_sharded(const std::string& dir,
                                                  const NamedTensors& tensors,
                                                  int64_t max_shard_bytes);

}  // namespace treg
