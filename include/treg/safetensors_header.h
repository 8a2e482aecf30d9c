// The JSON header of a safetensors file, parsed and checked without LibTorch, so that the part of
// the format an untrusted file controls can be fuzzed on its own (tests/fuzz). SafetensorsFile
// (treg/safetensors.h) maps the file and turns these entries into tensors.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace treg {

struct SafetensorsHeaderEntry {
  std::string name;
  std::string
      dtype;  // as written: "F32", "BF16", ...; always one of safetensors_dtype_bytes' names
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the start of the data section
};

struct SafetensorsHeader {
  uint64_t data_start = 0;  // 8 + header length
  std::map<std::string, std::string> metadata;
  std::vector<SafetensorsHeaderEntry> entries;  // in header order
};

// Bytes per element of a safetensors dtype name; 0 for a name treg does not read.
uint64_t safetensors_dtype_bytes(const std::string& dtype);
// "F64, F32, ..." for error messages.
std::string safetensors_dtype_names();

// `bytes` holds the whole file (`file_size` bytes). Every offset, size and shape is checked against
// the file: a malformed header is a treg::Error naming `path` (and the tensor), never a crash.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t file_size,
                                           const std::string& path);

}  // namespace treg
