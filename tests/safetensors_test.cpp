// safetensors: round trips for every dtype, a named treg::Error for every malformed header, an
// independent python parser for what we write, and sharded checkpoints.
#include "treg/safetensors.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "treg/error.h"
#include "treg/io.h"

namespace treg {
namespace {

// A file of 8-byte length + `header` + `data`, built by hand.
std::string write_raw(const std::string& dir, const std::string& name, const std::string& header,
                      const std::string& data, int64_t len_override = -1) {
  std::string bytes(8, '\0');
  uint64_t n = len_override >= 0 ? static_cast<uint64_t>(len_override) : header.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  bytes += header + data;
  std::string path = path_join(dir, name);
  write_file_atomic(path, bytes);
  return path;
}

// Expects opening `path` to fail with a treg::Error whose message contains every one of `parts`.
void expect_error(const std::string& path, const std::vector<std::string>& parts) {
  try {
    SafetensorsFile f(path);
    FAIL() << "no error for " << path;
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

TEST(Safetensors, RoundTripEveryDtype) {
  std::string dir = test::fresh_dir("st_roundtrip");
  NamedTensors tensors = {
      {"f64", torch::randn({3, 2}, torch::kFloat64)},
      {"f32", torch::randn({2, 3, 4})},
      {"f16", torch::randn({5}).to(torch::kFloat16)},
      {"bf16", torch::randn({4, 4}).to(torch::kBFloat16)},
      {"i64", torch::arange(-5, 5, torch::kInt64)},
      {"i32", torch::arange(0, 7, torch::kInt32).view({7, 1})},
      {"i16", torch::arange(-3, 3, torch::kInt16)},
      {"i8", torch::arange(-8, 8, torch::kInt8)},
      {"u8", torch::arange(0, 255, torch::kUInt8)},
      {"bool", torch::tensor({true, false, true})},
      {"scalar", torch::scalar_tensor(3.5)},
      {"empty", torch::empty({0, 4})},
  };
  std::string path = path_join(dir, "all.safetensors");
  save_safetensors(path, tensors);
  SafetensorsFile f(path);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_EQ(f.entries().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    torch::Tensor back = f.view(name);
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(back.sizes(), t.sizes()) << name;
    EXPECT_TRUE(torch::equal(back, t)) << name;
    torch::Tensor as_f32 = f.load(name, torch::kFloat32);
    EXPECT_TRUE(torch::equal(as_f32, t.to(torch::kFloat32))) << name;
  }
  // A loaded copy owns its memory: writing to it leaves the file (and later views) intact.
  torch::Tensor copy = f.load("f32", torch::kFloat32);
  copy.fill_(0);
  EXPECT_TRUE(torch::equal(f.view("f32"), tensors[1].second));
}

TEST(Safetensors, ViewOutlivesFileObject) {
  std::string dir = test::fresh_dir("st_lifetime");
  std::string path = path_join(dir, "a.safetensors");
  torch::Tensor t = torch::randn({16, 16});
  save_safetensors(path, {{"t", t}});
  torch::Tensor v;
  {
    SafetensorsFile f(path);
    v = f.view("t");
  }
  EXPECT_TRUE(torch::equal(v, t));  // the mapping lives as long as the view
}

TEST(Safetensors, LayoutMatchesSpecForIndependentParser) {
  std::string dir = test::fresh_dir("st_python");
  std::string path = path_join(dir, "py.safetensors");
  save_safetensors(path, {{"b.weight", torch::arange(6, torch::kFloat32).view({2, 3})},
                          {"a.ids", torch::arange(5, torch::kInt64)},
                          {"c.half", torch::arange(4, torch::kFloat32).to(torch::kBFloat16)},
                          {"d.mask", torch::tensor({true, false})}});
  // Independent check: struct + json + numpy; the rules HF's reader enforces (8-byte aligned data,
  // offsets contiguous from 0 in sorted order, sizes = dtype x shape, __metadata__ format pt).
  std::string script = R"PY(
import json, struct, sys
import numpy as np
blob = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", blob[:8])
assert (8 + n) % 8 == 0, "data not 8-byte aligned"
h = json.loads(blob[8:8 + n])
assert h.pop("__metadata__") == {"format": "pt"}
size = {"F32": 4, "I64": 8, "BF16": 2, "BOOL": 1}
pos = 0
for name, info in sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0]):
    b, e = info["data_offsets"]
    assert b == pos, (name, b, pos)
    assert e - b == size[info["dtype"]] * int(np.prod(info["shape"])), name
    pos = e
assert 8 + n + pos == len(blob)
data = blob[8 + n:]
def arr(name, dt):
    b, e = h[name]["data_offsets"]
    return np.frombuffer(data[b:e], dtype=dt).reshape(h[name]["shape"])
assert arr("b.weight", "<f4").tolist() == [[0, 1, 2], [3, 4, 5]]
assert arr("a.ids", "<i8").tolist() == [0, 1, 2, 3, 4]
bf = arr("c.half", "<u2").astype(np.uint32) << 16
assert bf.view(np.float32).tolist() == [0, 1, 2, 3]
assert arr("d.mask", "u1").tolist() == [1, 0]
print("PY_OK")
)PY";
  std::string script_path = path_join(dir, "check.py");
  write_file_atomic(script_path, script);
  std::string out;
  int rc = test::run_command(test::python_with_torch() + " " + script_path + " " + path, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("PY_OK"), std::string::npos) << out;
}

TEST(Safetensors, MalformedFilesGiveNamedErrors) {
  std::string dir = test::fresh_dir("st_malformed");
  const std::string ok_entry = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string data(8, '\0');

  // Shorter than the 8-byte length.
  std::string p = path_join(dir, "tiny.safetensors");
  write_file_atomic(p, std::string("abc"));
  expect_error(p, {p, "truncated", "3 bytes"});

  // Header length past the end of the file.
  p = write_raw(dir, "len.safetensors", "{" + ok_entry + "}", data, 1 << 20);
  expect_error(p, {p, "header length 1048576", "past the end"});

  // Not JSON.
  p = write_raw(dir, "json.safetensors", "{\"w\": [1, 2", data);
  expect_error(p, {p, "not valid JSON"});

  // Offsets beyond the data section (also what a truncated data section looks like).
  p = write_raw(dir, "range.safetensors",
                R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data);
  expect_error(p, {p, "'w'", "out of range", "8 bytes"});

  // Truncated file: a valid file cut short.
  std::string full = path_join(dir, "full.safetensors");
  save_safetensors(full, {{"big", torch::randn({64})}});
  std::string bytes = read_file(full);
  p = path_join(dir, "cut.safetensors");
  write_file_atomic(p, bytes.substr(0, bytes.size() - 10));
  expect_error(p, {p, "'big'", "out of range"});

  // Overlapping tensors.
  p = write_raw(
      dir, "overlap.safetensors",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      std::string(12, '\0'));
  expect_error(p, {p, "'a'", "'b'", "overlap"});

  // Byte size not dtype x shape.
  p = write_raw(dir, "size.safetensors",
                R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data);
  expect_error(p, {p, "'w'", "byte size 8", "F32", "[3]", "expected 12"});

  // Unknown dtype.
  p = write_raw(dir, "dtype.safetensors",
                R"({"w":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", data);
  expect_error(p, {p, "'w'", "unknown dtype 'F8_E4M3'"});

  // Begin after end, negative dimensions, missing fields, non-string metadata.
  p = write_raw(dir, "order.safetensors",
                R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", data);
  expect_error(p, {p, "'w'", "begin after end"});
  p = write_raw(dir, "neg.safetensors", R"({"w":{"dtype":"U8","shape":[-8],"data_offsets":[0,8]}})",
                data);
  expect_error(p, {p, "'w'", "shape"});
  p = write_raw(dir, "fields.safetensors", R"({"w":{"dtype":"U8","shape":[8]}})", data);
  expect_error(p, {p, "'w'", "data_offsets"});
  p = write_raw(dir, "meta.safetensors", R"({"__metadata__":{"format":1}})", "");
  expect_error(p, {p, "__metadata__"});
  p = write_raw(dir, "array.safetensors", "[1,2]", "");
  expect_error(p, {p, "not a JSON object"});

  // A missing file.
  expect_error(path_join(dir, "nope.safetensors"), {"nope.safetensors", "cannot open"});
}

TEST(Safetensors, ShardedCheckpointRoundTrip) {
  std::string dir = test::fresh_dir("st_sharded");
  NamedTensors tensors;
  for (int i = 0; i < 6; ++i)
    tensors.emplace_back("layer." + std::to_string(i) + ".w", torch::randn({8, 8}));  // 256 B each
  auto files = save_safetensors_sharded(dir, tensors, /*max_shard_bytes=*/600);
  ASSERT_EQ(files.size(), 4u);  // 3 shards of 2 tensors + the index
  EXPECT_TRUE(file_exists(path_join(dir, "model-00001-of-00003.safetensors")));
  EXPECT_FALSE(file_exists(path_join(dir, "model.safetensors")));
  auto index = nlohmann::json::parse(read_file(path_join(dir, "model.safetensors.index.json")));
  EXPECT_EQ(index["metadata"]["total_size"].get<int64_t>(), 6 * 256);
  EXPECT_EQ(index["weight_map"]["layer.5.w"], "model-00003-of-00003.safetensors");
  SafetensorsCheckpoint ckpt(dir);
  EXPECT_EQ(ckpt.keys().size(), 6u);
  for (const auto& [name, t] : tensors)
    EXPECT_TRUE(torch::equal(ckpt.load(name, torch::kFloat32), t)) << name;

  // Everything fits: one model.safetensors and no index.
  std::string dir1 = test::fresh_dir("st_single");
  files = save_safetensors_sharded(dir1, tensors, 1 << 20);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(file_exists(path_join(dir1, "model.safetensors")));
  EXPECT_FALSE(file_exists(path_join(dir1, "model.safetensors.index.json")));
}

TEST(Safetensors, BadIndexNamesShardAndKey) {
  std::string dir = test::fresh_dir("st_badindex");
  save_safetensors_sharded(dir, {{"a", torch::zeros({4})}, {"b", torch::zeros({4})}}, 16);
  const std::string index_path = path_join(dir, "model.safetensors.index.json");
  auto index = nlohmann::json::parse(read_file(index_path));
  index["weight_map"]["a"] = "model-00002-of-00002.safetensors";  // wrong shard
  write_file_atomic(index_path, index.dump());
  try {
    SafetensorsCheckpoint c(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'a'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model-00002-of-00002.safetensors"), std::string::npos)
        << e.what();
  }
  index["weight_map"]["a"] = "missing.safetensors";
  write_file_atomic(index_path, index.dump());
  try {
    SafetensorsCheckpoint c(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.safetensors"), std::string::npos) << e.what();
  }
  try {
    SafetensorsCheckpoint c(test::fresh_dir("st_empty_dir"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no model.safetensors"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace treg
