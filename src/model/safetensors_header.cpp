// safetensors header validation (layout in include/treg/safetensors.h).
#include "treg/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "treg/error.h"

namespace treg {

namespace {

// Hugging Face's reader refuses headers above 100 MB; so do we (a garbage length is caught early).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DtypeSize {
  const char* name;
  uint64_t bytes;
};
constexpr DtypeSize kDtypes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
                                 {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafetensorsHeaderEntry parse_entry(const std::string& name, const nlohmann::json& v,
                                   uint64_t data_size, const std::string& where) {
  if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
    fail(where, "entry must be an object with dtype, shape and data_offsets");
  if (!v["dtype"].is_string()) fail(where, "dtype is not a string");
  SafetensorsHeaderEntry e;
  e.name = name;
  e.dtype = v["dtype"].get<std::string>();
  const uint64_t elem = safetensors_dtype_bytes(e.dtype);
  if (elem == 0)
    fail(where, "unknown dtype '" + e.dtype + "'", "supported: " + safetensors_dtype_names());
  if (!v["shape"].is_array()) fail(where, "shape is not an array");
  uint64_t numel = 1;
  bool overflow = false;
  for (const auto& d : v["shape"]) {
    if (!d.is_number_unsigned())
      fail(where, "shape " + v["shape"].dump() + " has a non-integer or negative dimension");
    const uint64_t dim = d.get<uint64_t>();
    // A dimension beyond int64 cannot become a tensor size; count it as an overflow.
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      overflow = true;
      e.shape.push_back(std::numeric_limits<int64_t>::max());
      continue;
    }
    if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim) overflow = true;
    numel *= dim;
    e.shape.push_back(static_cast<int64_t>(dim));
  }
  const auto& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned())
    fail(where, "data_offsets must be [begin, end] with non-negative integers, got " + off.dump());
  e.begin = off[0].get<uint64_t>();
  e.end = off[1].get<uint64_t>();
  if (e.begin > e.end) fail(where, "data_offsets " + off.dump() + ": begin after end");
  if (e.end > data_size)
    fail(where,
         "data_offsets " + off.dump() + " out of range: the data section has " +
             std::to_string(data_size) + " bytes",
         "the file is truncated or its header is corrupt");
  if (overflow || numel > std::numeric_limits<uint64_t>::max() / elem ||
      numel * elem != e.end - e.begin)
    fail(where, "byte size " + std::to_string(e.end - e.begin) + " does not match dtype " +
                    e.dtype + " x shape " + shape_str(e.shape) + " (expected " +
                    (overflow ? std::string("overflow") : std::to_string(numel * elem)) + ")");
  return e;
}

}  // namespace

uint64_t safetensors_dtype_bytes(const std::string& dtype) {
  for (const auto& d : kDtypes)
    if (dtype == d.name) return d.bytes;
  return 0;
}

std::string safetensors_dtype_names() {
  std::string s;
  for (const auto& d : kDtypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* p, uint64_t file_size,
                                           const std::string& path) {
  if (file_size < 8)
    fail(path, "truncated safetensors file: " + std::to_string(file_size) +
                   " bytes, less than the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | p[i];
  if (header_len > file_size - 8)
    fail(path,
         "header length " + std::to_string(header_len) + " runs past the end of the file (" +
             std::to_string(file_size) + " bytes)",
         "the file is truncated or not a safetensors file");
  if (header_len > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the 100 MB limit");
  SafetensorsHeader out;
  out.data_start = 8 + header_len;
  const uint64_t data_size = file_size - out.data_start;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(p + 8),
                                   reinterpret_cast<const char*>(p + 8 + header_len));
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it->is_object()) fail(path, "__metadata__ is not an object of strings");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) fail(path, "__metadata__ value of '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    out.entries.push_back(parse_entry(name, *it, data_size, path + ": tensor '" + name + "'"));
  }

  // Overlap check: sorted by begin, each tensor must start at or after the previous one's end.
  std::vector<const SafetensorsHeaderEntry*> by_offset;
  for (const auto& e : out.entries)
    if (e.end > e.begin) by_offset.push_back(&e);  // empty tensors occupy no bytes
  std::sort(by_offset.begin(), by_offset.end(), [](const auto* a, const auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const auto* prev = by_offset[i - 1];
    const auto* cur = by_offset[i];
    if (cur->begin < prev->end)
      fail(path, "tensors '" + prev->name + "' [" + std::to_string(prev->begin) + ", " +
                     std::to_string(prev->end) + ") and '" + cur->name + "' [" +
                     std::to_string(cur->begin) + ", " + std::to_string(cur->end) + ") overlap");
  }
  return out;
}

}  // namespace treg
