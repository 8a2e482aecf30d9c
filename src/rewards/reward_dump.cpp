// The reward dump file format (layout in include/treg/reward_dump.h): writer with resumable
// .partial files, random-access reader, metadata identity checks.
#include "treg/reward_dump.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "treg/error.h"
#include "treg/io.h"

namespace treg {
namespace {

using nlohmann::json;

constexpr char kMagic[8] = {'T', 'R', 'E', 'G', 'R', 'W', 'D', '\0'};
constexpr char kEndMagic[8] = {'T', 'R', 'E', 'G', 'E', 'N', 'D', '\0'};
constexpr uint32_t kRecordMagic = 0x52494150;   // "PAIR" little-endian
constexpr size_t kHeaderFixed = 8 + 4 + 4 + 8;  // magic, version, reserved, metadata length
constexpr size_t kFooterSize = 8 + 8 + 4 + 4 + 8;
constexpr uint64_t kMaxMetadata = 64ull << 20;

static_assert(sizeof(float) == 4, "float must be IEEE binary32");

bool little_endian() {
  const uint16_t one = 1;
  uint8_t b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

// ---- little-endian byte buffers ----
struct Out {
  std::string buf;
  template <typename T>
  void put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    buf.append(b, sizeof(T));
  }
  void put_ids(const std::vector<int64_t>& ids, const std::string& what) {
    put<uint32_t>(static_cast<uint32_t>(ids.size()));
    for (int64_t id : ids) {
      if (id < 0 || id > INT32_MAX)
        fail("reward dump", what + ": token id " + std::to_string(id) + " out of int32 range");
      put<int32_t>(static_cast<int32_t>(id));
    }
  }
  void put_floats(const std::vector<float>& v, size_t n, const std::string& what) {
    if (v.size() != n)
      fail("reward dump", what + " has " + std::to_string(v.size()) + " values for " +
                              std::to_string(n) + " tokens");
    buf.append(reinterpret_cast<const char*>(v.data()), n * sizeof(float));
  }
};

struct In {
  const char* p;
  const char* end;
  std::string where;
  template <typename T>
  T get() {
    if (static_cast<size_t>(end - p) < sizeof(T)) fail(where, "record ends early (corrupt file)");
    T v;
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    return v;
  }
  std::vector<int64_t> get_ids(uint32_t n) {
    if (static_cast<size_t>(end - p) / 4 < n) fail(where, "record ends early (corrupt file)");
    std::vector<int64_t> out(n);
    for (uint32_t i = 0; i < n; ++i) out[i] = get<int32_t>();
    return out;
  }
  std::vector<float> get_floats(uint32_t n) {
    if (static_cast<size_t>(end - p) / 4 < n) fail(where, "record ends early (corrupt file)");
    std::vector<float> out(n);
    if (n > 0)
      std::memcpy(out.data(), p, n * sizeof(float));  // data() of an empty vector may be null
    p += n * sizeof(float);
    return out;
  }
};

std::string encode_payload(const PairRecord& r) {
  Out o;
  o.put<int64_t>(r.index);
  o.put<int64_t>(r.source_line);
  o.put_ids(r.prompt_ids, "prompt");
  for (const auto* s : {&r.chosen, &r.rejected}) {
    const char* name = s == &r.chosen ? "chosen" : "rejected";
    o.put_ids(s->ids, name);
    o.put_floats(s->ref_logps, s->ids.size(), std::string(name) + ".ref_logps");
    o.put_floats(s->logp_better, s->ids.size(), std::string(name) + ".logp_better");
    o.put_floats(s->logp_worse, s->ids.size(), std::string(name) + ".logp_worse");
    o.put_floats(s->rewards, s->ids.size(), std::string(name) + ".rewards");
  }
  return std::move(o.buf);
}

PairRecord decode_payload(const char* p, size_t n, const std::string& where) {
  In in{p, p + n, where};
  PairRecord r;
  r.index = in.get<int64_t>();
  r.source_line = in.get<int64_t>();
  r.prompt_ids = in.get_ids(in.get<uint32_t>());
  for (ResponseScores* s : {&r.chosen, &r.rejected}) {
    uint32_t len = in.get<uint32_t>();
    s->ids = in.get_ids(len);
    s->ref_logps = in.get_floats(len);
    s->logp_better = in.get_floats(len);
    s->logp_worse = in.get_floats(len);
    s->rewards = in.get_floats(len);
  }
  if (in.p != in.end) fail(where, "record has trailing bytes (corrupt file)");
  return r;
}

std::string encode_record(const PairRecord& r) {
  std::string payload = encode_payload(r);
  Out o;
  o.put<uint32_t>(kRecordMagic);
  o.put<uint64_t>(payload.size());
  o.buf += payload;
  o.put<uint32_t>(crc32_update(0, payload.data(), payload.size()));
  return std::move(o.buf);
}

std::string encode_header(const json& metadata) {
  std::string meta = metadata.dump();
  Out o;
  o.buf.append(kMagic, 8);
  o.put<uint32_t>(kRewardDumpVersion);
  o.put<uint32_t>(0);
  o.put<uint64_t>(meta.size());
  o.buf += meta;
  o.put<uint32_t>(crc32_update(0, meta.data(), meta.size()));
  return std::move(o.buf);
}

// ---- raw file access ----
void pread_exact(int fd, void* dst, size_t n, uint64_t off, const std::string& where) {
  char* d = static_cast<char*>(dst);
  while (n > 0) {
    ssize_t got = ::pread(fd, d, n, static_cast<off_t>(off));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0)
      fail(where, "file ends early at byte " + std::to_string(off) + " (truncated file)",
           "re-run `treg score-tokens` to regenerate it");
    d += got;
    n -= static_cast<size_t>(got);
    off += static_cast<uint64_t>(got);
  }
}

void write_all(int fd, const std::string& bytes, const std::string& where) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      fail(where, std::string("write failed: ") + std::strerror(errno), "check free disk space");
    off += static_cast<size_t>(n);
  }
}

uint64_t file_size(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_size);
}

// Whether a stored checksum matches. Fuzzing builds (tests/fuzz) accept any checksum, so that
// mutated inputs reach the parsing behind it instead of stopping at the first CRC.
bool checksum_matches(uint32_t stored, const void* data, size_t n) {
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  (void)stored, (void)data, (void)n;
  return true;
#else
  return stored == crc32_update(0, data, n);
#endif
}

// Reads and validates the header; returns the metadata and sets *records_start.
json read_header(int fd, const std::string& where, uint64_t* records_start) {
  uint64_t size = file_size(fd);
  if (size < kHeaderFixed)
    fail(where,
         "not a treg reward dump: " + std::to_string(size) + " bytes is shorter than the header",
         "re-run `treg score-tokens` to regenerate it");
  char fixed[kHeaderFixed];
  pread_exact(fd, fixed, kHeaderFixed, 0, where);
  if (std::memcmp(fixed, kMagic, 8) != 0)
    fail(where, "not a treg reward dump (bad magic number)",
         "pass the file `treg score-tokens` wrote");
  uint32_t version;
  uint64_t meta_len;
  std::memcpy(&version, fixed + 8, 4);
  std::memcpy(&meta_len, fixed + 16, 8);
  if (version != kRewardDumpVersion)
    fail(where,
         "reward dump format version " + std::to_string(version) + ", this treg reads version " +
             std::to_string(kRewardDumpVersion),
         "re-run `treg score-tokens` with this treg to regenerate it");
  if (meta_len > kMaxMetadata || kHeaderFixed + meta_len + 4 > size)
    fail(where,
         "metadata block of " + std::to_string(meta_len) +
             " bytes does not fit the file (truncated or corrupt)",
         "re-run `treg score-tokens` to regenerate it");
  std::string meta(meta_len, '\0');
  pread_exact(fd, meta.data(), meta_len, kHeaderFixed, where);
  uint32_t crc;
  pread_exact(fd, &crc, 4, kHeaderFixed + meta_len, where);
  if (!checksum_matches(crc, meta.data(), meta.size()))
    fail(where, "metadata checksum mismatch (corrupt file)",
         "re-run `treg score-tokens` to regenerate it");
  *records_start = kHeaderFixed + meta_len + 4;
  try {
    return json::parse(meta);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
    fail(where, std::string("metadata is not valid JSON: ") + e.what());
  }
}

// Flattens {"a": {"b": 1}} into {"a.b": 1} (leaves only).
void flatten(const json& j, const std::string& prefix,
             std::vector<std::pair<std::string, json>>* out) {
  if (j.is_object() && !j.empty()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out->emplace_back(prefix, j);
  }
}

const json* lookup(const json& j, const std::string& dotted) {
  const json* cur = &j;
  size_t start = 0;
  while (true) {
    size_t dot = dotted.find('.', start);
    std::string key =
        dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object() || !cur->contains(key)) return nullptr;
    cur = &(*cur)[key];
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

}  // namespace

uint32_t crc32_update(uint32_t crc, const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

// ======================= reader =======================
// The descriptor is closed by Impl, so that a constructor that throws (a corrupt file) leaks none.
struct RewardDumpReader::Impl {
  std::string path;
  int fd = -1;
  json metadata;
  std::vector<uint64_t> offsets;
  uint64_t index_offset = 0;
  ~Impl() {
    if (fd >= 0) ::close(fd);
  }
};

RewardDumpReader::RewardDumpReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  if (!little_endian()) fail(path, "reward dumps are little-endian; this machine is not");
  impl_->path = path;
  impl_->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (impl_->fd < 0) {
    std::string hint = file_exists(path + ".partial")
                           ? "only an unfinished " + path +
                                 ".partial exists: re-run `treg score-tokens` to finish it"
                           : "run `treg score-tokens --config <your config>` to create it";
    fail(path, std::string("cannot open reward dump: ") + std::strerror(errno), hint);
  }
  const int fd = impl_->fd;
  uint64_t records_start = 0;
  impl_->metadata = read_header(fd, path, &records_start);
  const uint64_t size = file_size(fd);
  const std::string regen =
      "the file is truncated or was not finished: re-run `treg score-tokens` to regenerate it";
  if (size < records_start + kFooterSize)
    fail(path, "no footer (truncated or unfinished dump)", regen);
  char footer[kFooterSize];
  pread_exact(fd, footer, kFooterSize, size - kFooterSize, path);
  if (std::memcmp(footer + 24, kEndMagic, 8) != 0)
    fail(path, "no footer (truncated or unfinished dump)", regen);
  uint64_t index_offset, count;
  uint32_t index_crc;
  std::memcpy(&index_offset, footer, 8);
  std::memcpy(&count, footer + 8, 8);
  std::memcpy(&index_crc, footer + 16, 4);
  if (index_offset < records_start || count > (size - kFooterSize - index_offset) / 8 ||
      index_offset + count * 8 + kFooterSize != size)
    fail(path, "footer does not describe this file (corrupt or truncated)", regen);
  impl_->offsets.resize(count);
  pread_exact(fd, impl_->offsets.data(), count * 8, index_offset, path);
  if (!checksum_matches(index_crc, impl_->offsets.data(), count * 8))
    fail(path, "index checksum mismatch (corrupt file)", regen);
  for (uint64_t i = 0; i < count; ++i)
    if (impl_->offsets[i] < records_start || impl_->offsets[i] + 16 > index_offset ||
        (i > 0 && impl_->offsets[i] <= impl_->offsets[i - 1]))
      fail(path, "index entry " + std::to_string(i) + " points outside the records (corrupt file)",
           regen);
  impl_->index_offset = index_offset;
}

RewardDumpReader::~RewardDumpReader() = default;

const nlohmann::json& RewardDumpReader::metadata() const { return impl_->metadata; }

int64_t RewardDumpReader::size() const { return static_cast<int64_t>(impl_->offsets.size()); }

PairRecord RewardDumpReader::read(int64_t i) const {
  if (i < 0 || i >= size())
    fail(impl_->path,
         "pair " + std::to_string(i) + " out of range [0, " + std::to_string(size()) + ")");
  const std::string where = impl_->path + ": pair " + std::to_string(i);
  const uint64_t off = impl_->offsets[static_cast<size_t>(i)];
  const uint64_t limit =
      (i + 1 < size()) ? impl_->offsets[static_cast<size_t>(i + 1)] : impl_->index_offset;
  char head[12];
  pread_exact(impl_->fd, head, 12, off, where);
  uint32_t magic;
  uint64_t len;
  std::memcpy(&magic, head, 4);
  std::memcpy(&len, head + 4, 8);
  // Compared without overflow: a corrupt len near 2^64 must not wrap around to a matching sum.
  if (magic != kRecordMagic || limit < off + 16 || len != limit - off - 16)
    fail(where, "record header is corrupt", "re-run `treg score-tokens` to regenerate the dump");
  std::string payload(len + 4, '\0');
  pread_exact(impl_->fd, payload.data(), len + 4, off + 12, where);
  uint32_t crc;
  std::memcpy(&crc, payload.data() + len, 4);
  if (!checksum_matches(crc, payload.data(), len))
    fail(where, "record checksum mismatch (corrupt file)",
         "re-run `treg score-tokens` to regenerate the dump");
  PairRecord r = decode_payload(payload.data(), len, where);
  if (r.index != i)
    fail(where, "record says it is pair " + std::to_string(r.index) + " (corrupt file)");
  return r;
}

// ======================= writer =======================
struct RewardDumpWriter::Impl {
  std::string path, partial;
  int fd = -1;
  std::vector<uint64_t> offsets;
  uint64_t end = 0;  // where the next record goes
  int64_t resumed = 0;
  int64_t fsync_every = 64;
  int64_t since_sync = 0;
  bool finished = false;
  ~Impl() {
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }
};

// Why a .partial cannot be resumed, for the log: the first metadata field that differs (a
// different model, data, thread count, ...), or that the file is unreadable.
static std::string metadata_difference(int fd, const std::string& where, const json& now) {
  json before;
  try {
    uint64_t records_start = 0;
    before = read_header(fd, where, &records_start);
  } catch (const Error& e) {
    return std::string("unreadable header (") + e.what() + ")";
  }
  std::vector<std::pair<std::string, json>> fields;
  flatten(now, "", &fields);
  for (const auto& [key, value] : fields) {
    const json* old = lookup(before, key);
    if (!old || *old != value)
      return "left by a run with " + key + " = " + (old ? old->dump() : std::string("(absent)")) +
             ", this run has " + value.dump();
  }
  return "left by a run with different metadata";
}

RewardDumpWriter::RewardDumpWriter(const std::string& path, const nlohmann::json& metadata,
                                   int64_t align, int64_t fsync_every)
    : impl_(std::make_unique<Impl>()) {
  if (!little_endian()) fail(path, "reward dumps are little-endian; this machine is not");
  Impl& w = *impl_;
  w.path = path;
  w.partial = path + ".partial";
  w.fsync_every = std::max<int64_t>(1, fsync_every);
  align = std::max<int64_t>(1, align);
  const std::string header = encode_header(metadata);

  if (file_exists(w.partial)) {
    int fd = ::open(w.partial.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) fail(w.partial, std::string("cannot open: ") + std::strerror(errno));
    bool same = false;
    uint64_t pos = 0;
    try {
      const uint64_t size = file_size(fd);
      if (size >= header.size()) {
        std::string head(header.size(), '\0');
        pread_exact(fd, head.data(), head.size(), 0, w.partial);
        same = head == header;
      }
      if (same) {
        // Keep every record whose header, checksum and index are intact; stop at the first that is
        // not.
        pos = header.size();
        std::vector<uint64_t> offs;
        while (pos + 16 <= size) {
          char head[12];
          pread_exact(fd, head, 12, pos, w.partial);
          uint32_t magic;
          uint64_t len;
          std::memcpy(&magic, head, 4);
          std::memcpy(&len, head + 4, 8);
          if (magic != kRecordMagic || len > size - pos - 16) break;
          std::string payload(len + 4, '\0');
          pread_exact(fd, payload.data(), len + 4, pos + 12, w.partial);
          uint32_t crc;
          std::memcpy(&crc, payload.data() + len, 4);
          if (crc != crc32_update(0, payload.data(), len) || len < 8) break;
          int64_t index;
          std::memcpy(&index, payload.data(), 8);
          if (index != static_cast<int64_t>(offs.size())) break;
          offs.push_back(pos);
          pos += 12 + len + 4;
        }
        const uint64_t valid_end = pos;
        const size_t keep = offs.size() / static_cast<size_t>(align) * static_cast<size_t>(align);
        pos = keep < offs.size() ? offs[keep] : valid_end;
        offs.resize(keep);
        if (pos < size)
          spdlog::info("{}: dropping {} bytes after the last complete batch", w.partial,
                       size - pos);
        w.offsets = std::move(offs);
      }
    } catch (const Error& e) {
      same = false;
    }
    if (same) {
      w.fd = fd;
      if (::ftruncate(fd, static_cast<off_t>(pos)) != 0 || ::fsync(fd) != 0)
        fail(w.partial, std::string("cannot truncate torn tail: ") + std::strerror(errno));
      w.end = pos;
      w.resumed = static_cast<int64_t>(w.offsets.size());
      spdlog::info("{}: resuming after {} scored pairs", w.partial, w.resumed);
    } else {
      spdlog::warn("{}: {}; starting over (its records cannot be mixed with this run's)", w.partial,
                   metadata_difference(fd, w.partial, metadata));
      ::close(fd);
    }
  }
  if (w.fd < 0) {
    w.fd = ::open(w.partial.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd < 0) fail(w.partial, std::string("cannot create: ") + std::strerror(errno));
    write_all(w.fd, header, w.partial);
    if (::fsync(w.fd) != 0) fail(w.partial, std::string("fsync failed: ") + std::strerror(errno));
    w.end = header.size();
  }
  if (::lseek(w.fd, static_cast<off_t>(w.end), SEEK_SET) < 0)
    fail(w.partial, std::string("seek failed: ") + std::strerror(errno));
}

RewardDumpWriter::~RewardDumpWriter() = default;

int64_t RewardDumpWriter::size() const { return static_cast<int64_t>(impl_->offsets.size()); }
int64_t RewardDumpWriter::resumed() const { return impl_->resumed; }

void RewardDumpWriter::append(const PairRecord& record) {
  Impl& w = *impl_;
  if (w.finished) fail(w.path, "append after finish()");
  if (record.index != size())
    fail(w.partial, "pair " + std::to_string(record.index) + " appended at position " +
                        std::to_string(size()));
  std::string bytes = encode_record(record);
  write_all(w.fd, bytes, w.partial);
  w.offsets.push_back(w.end);
  w.end += bytes.size();
  if (++w.since_sync >= w.fsync_every) {
    if (::fsync(w.fd) != 0) fail(w.partial, std::string("fsync failed: ") + std::strerror(errno));
    w.since_sync = 0;
  }
}

void RewardDumpWriter::finish() {
  Impl& w = *impl_;
  if (w.finished) return;
  Out o;
  const uint64_t index_offset = w.end;
  for (uint64_t off : w.offsets) o.put<uint64_t>(off);
  const uint32_t index_crc = crc32_update(0, o.buf.data(), o.buf.size());
  o.put<uint64_t>(index_offset);
  o.put<uint64_t>(w.offsets.size());
  o.put<uint32_t>(index_crc);
  o.put<uint32_t>(0);
  o.buf.append(kEndMagic, 8);
  write_all(w.fd, o.buf, w.partial);
  if (::fsync(w.fd) != 0) fail(w.partial, std::string("fsync failed: ") + std::strerror(errno));
  ::close(w.fd);
  w.fd = -1;
  if (::rename(w.partial.c_str(), w.path.c_str()) != 0)
    fail(w.path, std::string("rename from .partial failed: ") + std::strerror(errno));
  std::string dir =
      w.path.find('/') == std::string::npos ? "." : w.path.substr(0, w.path.rfind('/'));
  if (dir.empty()) dir = "/";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  w.finished = true;
}

// ======================= metadata checks =======================
void check_dump_matches(const nlohmann::json& dump_meta, const nlohmann::json& expected,
                        const std::string& dump_path, const std::string& config_path) {
  std::vector<std::pair<std::string, json>> fields;
  flatten(expected, "", &fields);
  for (const auto& [key, want] : fields) {
    const json* got = lookup(dump_meta, key);
    if (got && *got == want) continue;
    const std::string regen = "treg score-tokens --config " +
                              (config_path.empty() ? std::string("<your config>") : config_path);
    fail("reward dump" + (dump_path.empty() ? std::string() : " " + dump_path),
         "stale: field '" + key + "' is " + (got ? got->dump() : std::string("absent")) +
             " in the dump but " + want.dump() + " for this config",
         "regenerate it with `" + regen +
             "` (it replaces the stale dump), or restore the setting the dump was made with");
  }
}

nlohmann::json model_identity(const std::string& model_dir) {
  const std::string cfg = path_join(model_dir, "config.json");
  if (!file_exists(cfg))
    fail(model_dir, "no config.json: not a model directory", "check `model_name_or_path`");
  // Weights: every *.safetensors file's JSON header (names, dtypes, shapes, offsets) plus the first
  // and last MiB of its tensor data, so two checkpoints of one shape but different values differ,
  // without hashing gigabytes.
  std::vector<std::string> files;
  if (DIR* d = ::opendir(model_dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) files.push_back(n);
    }
    ::closedir(d);
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) fail(model_dir, "no *.safetensors weights found");
  std::string digest_input;
  constexpr uint64_t kSample = 1 << 20;
  for (const std::string& name : files) {
    const std::string path = path_join(model_dir, name);
    std::ifstream in(path, std::ios::binary);
    uint64_t header_len = 0;
    if (!in.read(reinterpret_cast<char*>(&header_len), 8) || header_len > (100u << 20))
      fail(path, "not a safetensors file (bad header length)");
    std::string header(header_len, '\0');
    if (!in.read(header.data(), static_cast<std::streamsize>(header_len)))
      fail(path, "truncated safetensors header");
    in.seekg(0, std::ios::end);
    const uint64_t size = static_cast<uint64_t>(in.tellg());
    const uint64_t data_start = 8 + header_len;
    const uint64_t data_len = size - data_start;
    std::string head(std::min(kSample, data_len), '\0'), tail(std::min(kSample, data_len), '\0');
    in.seekg(static_cast<std::streamoff>(data_start));
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    in.seekg(static_cast<std::streamoff>(size - tail.size()));
    in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
    digest_input += name + "\n" + sha256_hex(header) + sha256_hex(head) + sha256_hex(tail) + "\n";
  }
  return json{{"config_sha256", sha256_file(cfg)}, {"weights_sha256", sha256_hex(digest_input)}};
}

}  // namespace treg
