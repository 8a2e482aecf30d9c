// safetensors read (mmap, bounds-checked) and write (atomic, HF-compatible layout).
#include "treg/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "treg/error.h"
#include "treg/io.h"
#include "treg/safetensors_header.h"

namespace treg {

namespace {

const std::pair<const char*, torch::ScalarType> kDtypes[] = {
    {"F64", torch::kFloat64},   {"F32", torch::kFloat32}, {"F16", torch::kFloat16},
    {"BF16", torch::kBFloat16}, {"I64", torch::kInt64},   {"I32", torch::kInt32},
    {"I16", torch::kInt16},     {"I8", torch::kInt8},     {"U8", torch::kUInt8},
    {"BOOL", torch::kBool}};

}  // namespace

torch::ScalarType safetensors_dtype(const std::string& name, const std::string& where) {
  for (const auto& [dtype, type] : kDtypes)
    if (name == dtype) return type;
  fail(where, "unknown dtype '" + name + "'", "supported: " + safetensors_dtype_names());
}

std::string safetensors_dtype_name(torch::ScalarType type) {
  for (const auto& [dtype, t] : kDtypes)
    if (t == type) return dtype;
  fail("safetensors", std::string("cannot store dtype ") + c10::toString(type),
       "convert to one of " + safetensors_dtype_names());
}

// ---- reading ----

struct SafetensorsFile::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr && addr != MAP_FAILED) ::munmap(addr, size);
  }
  const uint8_t* bytes() const { return static_cast<const uint8_t*>(addr); }
};

SafetensorsFile::SafetensorsFile(const std::string& path)
    : path_(path), map_(std::make_shared<Mapping>()) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path, std::string("cannot open safetensors file: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(path, "cannot stat");
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    fail(path, "truncated safetensors file: " + std::to_string(file_size) +
                   " bytes, less than the 8-byte header length");
  }
  map_->size = static_cast<size_t>(file_size);
  map_->addr = ::mmap(nullptr, map_->size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);
  if (map_->addr == MAP_FAILED) {
    map_->addr = nullptr;
    fail(path, std::string("mmap failed: ") + std::strerror(map_errno));
  }
  SafetensorsHeader header = parse_safetensors_header(map_->bytes(), file_size, path);
  data_start_ = header.data_start;
  metadata_ = std::move(header.metadata);
  for (auto& h : header.entries) {
    SafetensorsEntry e;
    e.scalar_type = safetensors_dtype(h.dtype, path + ": tensor '" + h.name + "'");
    e.name = std::move(h.name);
    e.dtype = std::move(h.dtype);
    e.shape = std::move(h.shape);
    e.begin = h.begin;
    e.end = h.end;
    entries_.emplace(e.name, std::move(e));
  }
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(path_, "no tensor named '" + name + "'");
  return it->second;
}

torch::Tensor SafetensorsFile::view(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  auto options = torch::TensorOptions().dtype(e.scalar_type).device(torch::kCPU);
  const uint8_t* src = map_->bytes() + data_start_ + e.begin;
  const uint64_t elem = safetensors_dtype_bytes(e.dtype);
  if (e.end == e.begin) return torch::empty(e.shape, options);
  if (reinterpret_cast<uintptr_t>(src) % elem != 0) {
    // Misaligned data (a header length that is not a multiple of 8): copy instead of viewing.
    torch::Tensor t = torch::empty(e.shape, options);
    std::memcpy(t.data_ptr(), src, e.end - e.begin);
    return t;
  }
  std::shared_ptr<Mapping> keep = map_;
  return torch::from_blob(
      const_cast<uint8_t*>(src), e.shape, [keep](void*) mutable { keep.reset(); }, options);
}

torch::Tensor SafetensorsFile::load(const std::string& name,
                                    const torch::TensorOptions& options) const {
  torch::Tensor v = view(name);
  auto dtype = options.has_dtype() ? c10::typeMetaToScalarType(options.dtype()) : v.scalar_type();
  auto device = options.has_device() ? options.device() : v.device();
  // copy=true: the result owns its memory even when dtype and device already match.
  return v.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
}

// ---- checkpoint directories ----

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::string& dir_or_file) : root_(dir_or_file) {
  struct stat st;
  if (::stat(dir_or_file.c_str(), &st) != 0) fail(dir_or_file, "no such file or directory");
  auto add_file = [&](const std::string& path) {
    files_.push_back(std::make_unique<SafetensorsFile>(path));
    return files_.size() - 1;
  };
  if (!S_ISDIR(st.st_mode)) {
    size_t idx = add_file(dir_or_file);
    for (const auto& [name, e] : files_[idx]->entries()) where_[name] = idx;
    return;
  }
  const std::string index_path = path_join(dir_or_file, "model.safetensors.index.json");
  const std::string single_path = path_join(dir_or_file, "model.safetensors");
  if (file_exists(index_path)) {
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(read_file(index_path));
    } catch (const nlohmann::json::exception& e) {
      fail(index_path, std::string("not valid JSON: ") + e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail(index_path, "missing object 'weight_map' (tensor name -> shard file)");
    std::map<std::string, size_t> shard_index;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it->is_string()) fail(index_path, "weight_map['" + it.key() + "'] is not a file name");
      const std::string shard = it->get<std::string>();
      if (shard.find('/') != std::string::npos || shard.empty())
        fail(index_path,
             "weight_map['" + it.key() + "'] = '" + shard + "' is not a plain file name");
      auto s = shard_index.find(shard);
      if (s == shard_index.end()) {
        const std::string shard_path = path_join(dir_or_file, shard);
        if (!file_exists(shard_path))
          fail(index_path, "shard '" + shard + "' (holding '" + it.key() + "') does not exist in " +
                               dir_or_file);
        s = shard_index.emplace(shard, add_file(shard_path)).first;
      }
      if (!files_[s->second]->contains(it.key()))
        fail(index_path, "weight_map says '" + it.key() + "' is in " + shard +
                             ", but that shard has no such tensor");
      where_[it.key()] = s->second;
    }
    return;
  }
  if (!file_exists(single_path))
    fail(dir_or_file, "no model.safetensors or model.safetensors.index.json",
         "point --model at a Hugging Face checkpoint directory (safetensors weights)");
  size_t idx = add_file(single_path);
  for (const auto& [name, e] : files_[idx]->entries()) where_[name] = idx;
}

std::vector<std::string> SafetensorsCheckpoint::keys() const {
  std::vector<std::string> out;
  for (const auto& [name, idx] : where_) out.push_back(name);
  return out;
}

const SafetensorsEntry& SafetensorsCheckpoint::entry(const std::string& name) const {
  return files_[where_index(name)]->entry(name);
}

const std::string& SafetensorsCheckpoint::file_of(const std::string& name) const {
  return files_[where_index(name)]->path();
}

torch::Tensor SafetensorsCheckpoint::load(const std::string& name,
                                          const torch::TensorOptions& options) const {
  return files_[where_index(name)]->load(name, options);
}

size_t SafetensorsCheckpoint::where_index(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail(root_, "checkpoint has no tensor named '" + name + "'");
  return it->second;
}

// ---- writing ----

namespace {

// Streams `parts` to "<path>.tmp.<pid>", fsyncs and renames, so readers never see half a file.
class AtomicWriter {
 public:
  explicit AtomicWriter(const std::string& path)
      : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd_ < 0) fail(tmp_, std::string("cannot open for writing: ") + std::strerror(errno));
  }
  ~AtomicWriter() {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(tmp_.c_str());
    }
  }
  void write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail(tmp_, std::string("write failed: ") + std::strerror(errno), "check free disk space");
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  void commit() {
    if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
      fd_ = -1;
      ::unlink(tmp_.c_str());
      fail(tmp_, std::string("fsync/close failed: ") + std::strerror(errno));
    }
    fd_ = -1;
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
      int e = errno;
      ::unlink(tmp_.c_str());
      fail(path_, std::string("rename failed: ") + std::strerror(e));
    }
  }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

uint64_t tensor_bytes(const torch::Tensor& t) {
  return static_cast<uint64_t>(t.numel()) * static_cast<uint64_t>(t.element_size());
}

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::map<std::string, torch::Tensor> sorted;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail(path, "'__metadata__' is reserved and cannot name a tensor");
    if (!t.defined()) fail(path, "tensor '" + name + "' is undefined");
    safetensors_dtype_name(t.scalar_type());  // rejects unsupported dtypes by name
    if (!sorted.emplace(name, t).second) fail(path, "tensor '" + name + "' given twice");
  }
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : sorted) {
    const uint64_t n = tensor_bytes(t);
    header[name] = {{"dtype", safetensors_dtype_name(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned (as HF's writer does).
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  uint8_t len[8];
  for (int i = 0; i < 8; ++i)
    len[i] = static_cast<uint8_t>((static_cast<uint64_t>(text.size()) >> (8 * i)) & 0xff);
  AtomicWriter out(path);
  out.write(len, 8);
  out.write(text.data(), text.size());
  for (const auto& [name, t] : sorted) {
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    if (c.numel() > 0) out.write(c.data_ptr(), tensor_bytes(c));
  }
  out.commit();
}

std::vector<std::string> save_safetensors_sharded(const std::string& dir,
                                                  const NamedTensors& tensors,
                                                  int64_t max_shard_bytes) {
  if (max_shard_bytes <= 0)
    fail(dir, "max shard size must be positive, got " + std::to_string(max_shard_bytes));
  make_dirs(dir);
  std::map<std::string, torch::Tensor> sorted(tensors.begin(), tensors.end());
  // Greedy in name order: a shard closes when the next tensor would push it past the limit
  // (a single tensor larger than the limit gets a shard of its own, as in HF).
  std::vector<NamedTensors> shards(1);
  uint64_t cur = 0, total = 0;
  for (const auto& [name, t] : sorted) {
    const uint64_t n = tensor_bytes(t);
    if (!shards.back().empty() && cur + n > static_cast<uint64_t>(max_shard_bytes)) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().emplace_back(name, t);
    cur += n;
    total += n;
  }
  std::vector<std::string> written;
  const std::string index_path = path_join(dir, "model.safetensors.index.json");
  if (shards.size() == 1) {
    const std::string path = path_join(dir, "model.safetensors");
    save_safetensors(path, shards[0]);
    if (file_exists(index_path))
      ::unlink(index_path.c_str());  // a stale index would shadow the file
    written.push_back(path);
    return written;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  char name_buf[64];
  for (size_t i = 0; i < shards.size(); ++i) {
    std::snprintf(name_buf, sizeof(name_buf), "model-%05zu-of-%05zu.safetensors", i + 1,
                  shards.size());
    save_safetensors(path_join(dir, name_buf), shards[i]);
    for (const auto& [name, t] : shards[i]) weight_map[name] = name_buf;
    written.push_back(path_join(dir, name_buf));
  }
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_file_atomic(index_path, index.dump(2) + "\n");
  const std::string single = path_join(dir, "model.safetensors");
  if (file_exists(single)) ::unlink(single.c_str());  // the index now describes the checkpoint
  written.push_back(index_path);
  return written;
}

}  // namespace treg
